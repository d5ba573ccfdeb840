package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/remotes"
	"github.com/containerd/containerd/remotes/docker"
	remoteerrors "github.com/containerd/containerd/remotes/errors"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// EnsureImage makes ref available and unpacked according to policy and
// returns the digest of the image's target (its manifest or index). An empty
// policy means IfNotPresent. Concurrent calls for the same ref share one pull.
// A reference pinned by digest (repo@sha256:…, repo:tag@sha256:…) is
// refused, with reconcile.ErrImagePull and ErrDigestMismatch, unless the
// image's target is that digest.
func (c *Containerd) EnsureImage(ctx context.Context, ref string, policy api.PullPolicy) (string, error) {
	digest, err := c.ensureImage(ctx, ref, policy)
	if err != nil {
		return "", err
	}
	if err := verifyDigest(ref, digest); err != nil {
		return "", err
	}
	return digest, nil
}

func (c *Containerd) ensureImage(ctx context.Context, ref string, policy api.PullPolicy) (string, error) {
	name, err := normalizeRef(ref)
	if err != nil {
		return "", &pullError{ref: ref, kind: reconcile.ErrInvalidImageRef, err: err}
	}
	ctx = c.ns(ctx)
	switch policy {
	case api.PullAlways:
		return c.pull(ctx, name)
	case api.PullIfNotPresent, "", api.PullNever:
		img, err := c.localImage(ctx, name)
		if err == nil {
			return img.Target().Digest.String(), nil
		}
		if !errors.Is(err, reconcile.ErrNotFound) {
			return "", fmt.Errorf("ensure image %s: %w", ref, err)
		}
		if policy == api.PullNever {
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
//
// It resolves the reference first, on its own, so that a "not found" is
// known to be the registry's answer about the repository or tag (the
// client's Pull reports the daemon's own not-founds the same way), then
// pulls what it resolved without asking the registry again.
func (c *Containerd) pull(ctx context.Context, name string) (string, error) {
	ch := c.pulls.DoChan(name, func() (any, error) {
		pctx, cancel := context.WithTimeout(c.ns(c.base), c.opts.PullTimeout)
		defer cancel()
		resolved, desc, err := c.resolver.Resolve(pctx, name)
		if err != nil {
			return "", c.pullFailed(name, fmt.Errorf("resolve reference: %w", err), true)
		}
		img, err := c.client.Pull(pctx, name,
			containerd.WithPullUnpack,
			containerd.WithPullSnapshotter(c.opts.Snapshotter),
			containerd.WithPlatformMatcher(c.platform),
			containerd.WithResolver(resolvedRef{Resolver: c.resolver, ref: name, name: resolved, desc: desc}),
		)
		if err != nil {
			return "", c.pullFailed(name, err, false)
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

// pullFailed classifies a failed pull of name; resolving says whether it
// failed while resolving the reference.
func (c *Containerd) pullFailed(name string, err error, resolving bool) error {
	if errors.Is(err, context.Canceled) && c.base.Err() != nil {
		return fmt.Errorf("pull %s: runtime closed: %w", name, err)
	}
	return &pullError{ref: name, kind: pullKind(err, resolving), err: err}
}

// resolvedRef is a resolver that answers Resolve for ref from what was
// already resolved, and passes everything else on.
type resolvedRef struct {
	remotes.Resolver
	ref, name string
	desc      ocispec.Descriptor
}

func (r resolvedRef) Resolve(ctx context.Context, ref string) (string, ocispec.Descriptor, error) {
	if ref == r.ref {
		return r.name, r.desc, nil
	}
	return r.Resolver.Resolve(ctx, ref)
}

// pullError is a failed pull. Its text is the registry's (or containerd's)
// own error after the reference; it matches reconcile.ErrImagePull and the
// kind of failure it was classified as (reconcile.ErrImageNotFound,
// ErrRegistryDenied, ErrInvalidImageRef, ErrRegistryUnavailable), with
// errors.Is.
type pullError struct {
	ref  string
	kind error // nil when the failure could not be classified
	err  error
}

func (e *pullError) Error() string { return "pull " + e.ref + ": " + e.err.Error() }

func (e *pullError) Unwrap() []error {
	if e.kind == nil {
		return []error{reconcile.ErrImagePull, e.err}
	}
	return []error{reconcile.ErrImagePull, e.kind, e.err}
}

// pullKind classifies a pull's failure, once, for the reconciler:
// permanent when the registry said the repository or tag does not exist
// (only while resolving: later, a not-found may be the daemon's own) or
// refused access (HTTP 401, 403); transient when the registry could not
// be reached, timed out or failed (5xx, 429, 408). Anything else is left
// unclassified, which the reconciler takes as transient.
func pullKind(err error, resolving bool) error {
	var status remoteerrors.ErrUnexpectedStatus
	var netErr net.Error
	switch {
	case resolving && errdefs.IsNotFound(err):
		return reconcile.ErrImageNotFound
	case errors.Is(err, docker.ErrInvalidAuthorization):
		return reconcile.ErrRegistryDenied
	case errors.As(err, &status):
		switch {
		case status.StatusCode == http.StatusUnauthorized, status.StatusCode == http.StatusForbidden:
			return reconcile.ErrRegistryDenied
		case status.StatusCode >= 500, status.StatusCode == http.StatusTooManyRequests, status.StatusCode == http.StatusRequestTimeout:
			return reconcile.ErrRegistryUnavailable
		}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr):
		return reconcile.ErrRegistryUnavailable
	}
	return nil
}
