package runtime

import (
	"context"
	"errors"
	"fmt"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/remotes/docker"
	remoteerrors "github.com/containerd/containerd/remotes/errors"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// pullKinds are the kinds of pull failure the adapter tells apart.
var pullKinds = []error{reconcile.ErrImageNotFound, reconcile.ErrRegistryDenied, reconcile.ErrInvalidImageRef, reconcile.ErrRegistryUnavailable}

// checkKind checks that err is a pull failure of kind (nil: of no kind)
// and no other, and whether the reconciler takes it as permanent.
func checkKind(t *testing.T, what string, err, kind error, permanent bool) {
	t.Helper()
	if !errors.Is(err, reconcile.ErrImagePull) {
		t.Fatalf("%s: %v is not ErrImagePull", what, err)
	}
	for _, k := range pullKinds {
		if errors.Is(err, k) != (k == kind) {
			t.Fatalf("%s: %v: errors.Is(%v) = %v, want the kind %v", what, err, k, !(k == kind), kind)
		}
	}
	if reconcile.PermanentPullError(err) != permanent {
		t.Fatalf("%s: %v: permanent = %v, want %v", what, err, !permanent, permanent)
	}
}

// TestPullFailuresAreClassified pulls from the real registry (Debian's
// docker-registry): a tag and a repository it does not have, a registry
// that demands credentials, a port nobody listens on, and a malformed
// reference. The message is the registry's own error.
func TestPullFailuresAreClassified(t *testing.T) {
	authReg := startAuthRegistry(t)
	closed := closedAddr(t)
	ctx := testCtx(t, 2*time.Minute)
	rt := newRuntimeWith(t, env.registry.Addr, authReg, closed)

	tag := env.registry.Addr + "/flotilla/busybox:does-not-exist"
	_, err := rt.EnsureImage(ctx, tag, api.PullIfNotPresent)
	checkKind(t, "missing tag", err, reconcile.ErrImageNotFound, true)
	if !strings.Contains(err.Error(), tag+": not found") {
		t.Fatalf("missing tag: message %q does not carry the registry's answer", err)
	}
	t.Logf("missing tag: %v", err)

	repo := env.registry.Addr + "/flotilla/no-such-repo:v1"
	_, err = rt.EnsureImage(ctx, repo, api.PullAlways)
	checkKind(t, "missing repository", err, reconcile.ErrImageNotFound, true)
	t.Logf("missing repository: %v", err)

	_, err = rt.EnsureImage(ctx, authReg+"/flotilla/busybox:test", api.PullIfNotPresent)
	checkKind(t, "registry demanding credentials", err, reconcile.ErrRegistryDenied, true)
	if !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Fatalf("401: message %q does not carry the registry's status", err)
	}
	t.Logf("unauthorized: %v", err)

	_, err = rt.EnsureImage(ctx, closed+"/flotilla/busybox:test", api.PullIfNotPresent)
	checkKind(t, "unreachable registry", err, reconcile.ErrRegistryUnavailable, false)
	if !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("unreachable: message %q does not say why", err)
	}
	t.Logf("unreachable: %v", err)

	_, err = rt.EnsureImage(ctx, env.registry.Addr+"/Flotilla/UPPER:v1", api.PullIfNotPresent)
	checkKind(t, "malformed reference", err, reconcile.ErrInvalidImageRef, true)
	t.Logf("malformed: %v", err)

	// Present images are still found, and pulled ones still pull.
	if _, err := rt.EnsureImage(ctx, env.busybox, api.PullAlways); err != nil {
		t.Fatalf("pull of a present tag: %v", err)
	}
}

// TestPullKind classifies the errors the real registry does not easily
// give: 403, server errors, rate limits, time-outs, refused credentials.
func TestPullKind(t *testing.T) {
	status := func(code int) error {
		return fmt.Errorf("resolve reference: %w", remoteerrors.ErrUnexpectedStatus{StatusCode: code, Status: http.StatusText(code)})
	}
	for _, tc := range []struct {
		what      string
		err       error
		resolving bool
		want      error
	}{
		{"403", status(http.StatusForbidden), true, reconcile.ErrRegistryDenied},
		{"401 from the token server", fmt.Errorf("failed to fetch anonymous token: %w", status(http.StatusUnauthorized)), true, reconcile.ErrRegistryDenied},
		{"credentials refused", fmt.Errorf("pull access denied: %w", docker.ErrInvalidAuthorization), true, reconcile.ErrRegistryDenied},
		{"500", status(http.StatusInternalServerError), true, reconcile.ErrRegistryUnavailable},
		{"503 while fetching", status(http.StatusServiceUnavailable), false, reconcile.ErrRegistryUnavailable},
		{"429", status(http.StatusTooManyRequests), true, reconcile.ErrRegistryUnavailable},
		{"pull time-out", fmt.Errorf("fetch: %w", context.DeadlineExceeded), false, reconcile.ErrRegistryUnavailable},
		{"not found while resolving", fmt.Errorf("x: %w", errdefs.ErrNotFound), true, reconcile.ErrImageNotFound},
		{"not found after resolving (may be the daemon's)", fmt.Errorf("x: %w", errdefs.ErrNotFound), false, nil},
		{"400", status(http.StatusBadRequest), true, nil},
		{"other", errors.New("unpack: no space left on device"), false, nil},
	} {
		if got := pullKind(tc.err, tc.resolving); got != tc.want {
			t.Errorf("%s: kind %v, want %v", tc.what, got, tc.want)
		}
	}
	err := &pullError{ref: "r", kind: reconcile.ErrRegistryUnavailable, err: errors.New("dial tcp: connection refused")}
	if err.Error() != "pull r: dial tcp: connection refused" || !errors.Is(err, reconcile.ErrImagePull) || !errors.Is(err, reconcile.ErrRegistryUnavailable) {
		t.Fatalf("pullError %q does not read or match as it should", err)
	}
}

// newRuntimeWith connects an adapter that speaks plain HTTP to registries.
func newRuntimeWith(t *testing.T, registries ...string) *Containerd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := New(ctx, Options{Socket: env.ctd.Socket, Namespace: testNamespace, InsecureRegistries: registries})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// startAuthRegistry starts a docker-registry that demands a user and
// password (htpasswd) and returns its address.
func startAuthRegistry(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	htpasswd := filepath.Join(dir, "htpasswd")
	// A bcrypt entry the test never logs in with: the pulls carry none.
	if err := os.WriteFile(htpasswd, []byte("flotilla:$2y$05$abcdefghijklmnopqrstuu5Yfs0Bd1gNPJvLFBMGd1n/9qErdJPCi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`version: 0.1
log: {level: info, formatter: text}
storage: {filesystem: {rootdirectory: %s}}
auth: {htpasswd: {realm: flotilla-test, path: %s}}
http: {addr: %s}
`, filepath.Join(dir, "data"), htpasswd, addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := harness.FindBinary("docker-registry")
	if err != nil {
		t.Fatal(err)
	}
	p, err := harness.StartProcess("docker-registry", filepath.Join(dir, "registry.log"), bin, "serve", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- auth registry log\n%s", p.Logs())
		}
		_ = p.Stop()
	})
	client := &http.Client{Timeout: 2 * time.Second}
	err = p.WaitReady(testCtx(t, 30*time.Second), func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/", nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("GET /v2/: %s, want 401", resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}
