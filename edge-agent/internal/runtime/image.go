package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/containerd"
	"github.com/distribution/reference"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// Image pull policies, as in Kubernetes.
const (
	PullAlways       = "Always"
	PullIfNotPresent = "IfNotPresent"
	PullNever        = "Never"
)

// EnsureImage makes ref available and unpacked according to policy and
// returns the digest of the image's target (its manifest or index). An empty
// policy means IfNotPresent. Concurrent calls for the same ref share one pull.
// A reference pinned by digest (repo@sha256:…, repo:tag@sha256:…) is
// refused, with reconcile.ErrImagePull and ErrDigestMismatch, unless the
// image's target is that digest.
func (c *Containerd) EnsureImage(ctx context.Context, ref, policy string) (string, error) {
	digest, err := c.ensureImage(ctx, ref, policy)
	if err != nil {
		return "", err
	}
	if err := verifyDigest(ref, digest); err != nil {
		return "", err
	}
	return digest, nil
}

func (c *Containerd) ensureImage(ctx context.Context, ref, policy string) (string, error) {
	name, err := normalizeRef(ref)
	if err != nil {
		return "", fmt.Errorf("ensure image %s: %w: %w", ref, reconcile.ErrImagePull, err)
	}
	ctx = c.ns(ctx)
	switch policy {
	case PullAlways:
		return c.pull(ctx, name)
	case PullIfNotPresent, "", PullNever:
		img, err := c.localImage(ctx, name)
		if err == nil {
			return img.Target().Digest.String(), nil
		}
		if !errors.Is(err, reconcile.ErrNotFound) {
			return "", fmt.Errorf("ensure image %s: %w", ref, err)
		}
		if policy == PullNever {
			return "", fmt.Errorf("ensure image %s: %w", ref, reconcile.ErrImageNeverPull)
		}
		return c.pull(ctx, name)
	}
	return "", fmt.Errorf("ensure image %s: unknown pull policy %q", ref, policy)
}

// localImage returns the stored image name, unpacking it into the
// snapshotter if it is not yet. A missing image wraps reconcile.ErrNotFound.
func (c *Containerd) localImage(ctx context.Context, name string) (containerd.Image, error) {
	img, err := c.client.GetImage(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("get image: %w", classify(err))
	}
	unpacked, err := img.IsUnpacked(ctx, c.opts.Snapshotter)
	if err != nil {
		// Content missing from the store (garbage collected, or a partial
		// import) counts as absent, so that the policy decides what to do.
		return nil, fmt.Errorf("check unpacked: %w", classify(err))
	}
	if !unpacked {
		if err := img.Unpack(ctx, c.opts.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack into %s: %w", c.opts.Snapshotter, classify(err))
		}
	}
	return img, nil
}

// pull fetches and unpacks name, sharing the pull with concurrent callers.
// The pull runs under the adapter's own context, bounded by PullTimeout, so
// that one caller giving up does not fail the others; each caller stops
// waiting when its own ctx ends.
func (c *Containerd) pull(ctx context.Context, name string) (string, error) {
	ch := c.pulls.DoChan(name, func() (any, error) {
		pctx, cancel := context.WithTimeout(c.ns(c.base), c.opts.PullTimeout)
		defer cancel()
		img, err := c.client.Pull(pctx, name,
			containerd.WithPullUnpack,
			containerd.WithPullSnapshotter(c.opts.Snapshotter),
			containerd.WithPlatformMatcher(c.platform),
			containerd.WithResolver(c.resolver),
		)
		if err != nil {
			if errors.Is(err, context.Canceled) && c.base.Err() != nil {
				return "", fmt.Errorf("pull %s: runtime closed: %w", name, err)
			}
			return "", fmt.Errorf("pull %s: %w: %w", name, reconcile.ErrImagePull, err)
		}
		return img.Target().Digest.String(), nil
	})
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("pull %s: %w", name, ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	}
}

// normalizeRef turns a Docker-style reference ("busybox",
// "registry:5000/app:v1") into the fully qualified name containerd stores.
func normalizeRef(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("parse image reference: %w", err)
	}
	return named.String(), nil
}
