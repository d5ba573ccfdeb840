package runtime

import (
	"errors"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/images"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

const (
	digestA = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	digestB = "sha256:" + "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func TestPinnedDigest(t *testing.T) {
	for _, tc := range []struct {
		ref, want string
		bad       bool
	}{
		{"busybox", "", false},
		{"registry:5000/team/app:1.2", "", false},
		{"registry:5000/team/app@" + digestA, digestA, false},
		{"registry:5000/team/app:1.2@" + digestA, digestA, false},
		{"busybox@" + digestA, digestA, false},
		{"busybox@sha256:abc", "", true},
		{"busybox@md5:" + strings.Repeat("0", 32), "", true},
		{"Bad Ref", "", true},
	} {
		got, err := PinnedDigest(tc.ref)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("PinnedDigest(%q) = %q, %v", tc.ref, got, err)
		}
	}
}

func TestVerifyDigest(t *testing.T) {
	if err := verifyDigest("app:1", digestB); err != nil {
		t.Errorf("unpinned: %v", err)
	}
	if err := verifyDigest("app@"+digestA, digestA); err != nil {
		t.Errorf("matching: %v", err)
	}
	if err := verifyDigest("app:1@"+digestA, digestA); err != nil {
		t.Errorf("matching with a tag: %v", err)
	}
	err := verifyDigest("app:1@"+digestA, digestB)
	if !errors.Is(err, reconcile.ErrImagePull) || !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), digestB) {
		t.Errorf("mismatch: %v", err)
	}
	if err := verifyDigest("app@sha256:short", digestA); !errors.Is(err, reconcile.ErrImagePull) || errors.Is(err, ErrDigestMismatch) {
		t.Errorf("malformed: %v", err)
	}
}

// TestEnsureImagePinnedByDigest pulls the test image by its digest, with
// and without its tag, and then refuses an image record that claims a
// digest it does not have (as anyone with access to containerd could make
// one), with ErrImagePull so that the reconciler backs off.
func TestEnsureImagePinnedByDigest(t *testing.T) {
	rt := newRuntime(t)
	repo := strings.TrimSuffix(env.busybox, ":test")
	for _, ref := range []string{repo + "@" + env.busyboxDigest, env.busybox + "@" + env.busyboxDigest} {
		for _, policy := range []api.PullPolicy{api.PullAlways, api.PullIfNotPresent} {
			got, err := rt.EnsureImage(testCtx(t, time.Minute), ref, policy)
			if err != nil || got != env.busyboxDigest {
				t.Fatalf("EnsureImage(%s, %s) = %s, %v", ref, policy, got, err)
			}
		}
	}

	// A record named for the entry image's digest, pointing at busybox.
	ctx := rt.ns(testCtx(t, time.Minute))
	img, err := rt.client.GetImage(ctx, repo+"@"+env.busyboxDigest)
	if err != nil {
		t.Fatal(err)
	}
	liar := strings.TrimSuffix(env.entry, ":test") + "@" + env.entryDigest
	liarName, _ := normalizeRef(liar)
	if _, err := rt.client.ImageService().Create(ctx, images.Image{Name: liarName, Target: img.Target()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.client.ImageService().Delete(rt.ns(testCtx(t, time.Minute)), liarName) })
	_, err = rt.EnsureImage(testCtx(t, time.Minute), liar, api.PullIfNotPresent)
	if !errors.Is(err, reconcile.ErrImagePull) || !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("a record with another digest was used: %v", err)
	}
	// A digest the registry does not have fails to pull, as any missing image.
	missing := repo + "@" + digestA
	if _, err := rt.EnsureImage(testCtx(t, time.Minute), missing, api.PullIfNotPresent); !errors.Is(err, reconcile.ErrImagePull) {
		t.Fatalf("missing digest: %v", err)
	}
}
