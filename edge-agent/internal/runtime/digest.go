package runtime

import (
	"errors"
	"fmt"

	"github.com/distribution/reference"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// ErrDigestMismatch is wrapped, with reconcile.ErrImagePull, when the
// image a digest-pinned reference resolved to is not that digest.
var ErrDigestMismatch = errors.New("image digest does not match the pinned digest")

// PinnedDigest returns the digest a reference pins ("sha256:…"), as in
// "registry:5000/app@sha256:…" or "registry:5000/app:1.2@sha256:…", or ""
// when it pins none.
func PinnedDigest(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("parse image reference: %w", err)
	}
	d, ok := named.(reference.Digested)
	if !ok {
		return "", nil
	}
	return d.Digest().String(), nil
}

// verifyDigest refuses an image whose target digest got is not the digest
// ref pins. containerd checks every blob it fetches against its digest,
// so a pull by digest cannot bring anything else; this check also covers
// the image already on the board, which is found by name and whose record
// anyone with access to containerd could have pointed elsewhere.
func verifyDigest(ref, got string) error {
	want, err := PinnedDigest(ref)
	if err != nil {
		return fmt.Errorf("ensure image %s: %w: %w", ref, reconcile.ErrImagePull, err)
	}
	if want != "" && got != want {
		return fmt.Errorf("ensure image %s: %w: %w: the image is %s", ref, reconcile.ErrImagePull, ErrDigestMismatch, got)
	}
	return nil
}
