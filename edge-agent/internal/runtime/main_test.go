package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/test/harness"
	"github.com/flotilla-edge/flotilla/test/images"
)

// testNamespace keeps these tests' cgroups (/<namespace>/<id>) apart from
// any other containerd on the machine.
const testNamespace = "flotilla-rttest"

// env is what TestMain started; tests read it, never change it.
var env struct {
	ctd      *harness.Containerd
	registry *harness.Registry
	// busybox is the plain busybox image (Cmd ["sh"]); entry has an
	// entrypoint, a cmd and extra env to test Kubernetes' command rules.
	busybox, entry             string
	busyboxDigest, entryDigest string
}

// TestMain starts a real containerd and registry (it needs root, containerd,
// runc and docker-registry), pushes the test images, runs the tests, prints
// the daemons' logs if anything failed, and tears everything down.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Getenv(childEnv) != "" {
		return podAgentChild() // a pod agent the churn test runs, and kills
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "FAIL: runtime tests need root: they run containerd and runc")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "flotilla-rt-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	ctd, err := harness.StartContainerd(ctx, filepath.Join(dir, "ctd"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start containerd:", err)
		return 1
	}
	env.ctd = ctd
	defer func() {
		tctx, tcancel := context.WithTimeout(context.Background(), time.Minute)
		defer tcancel()
		if err := ctd.Close(tctx); err != nil {
			fmt.Fprintln(os.Stderr, "teardown containerd:", err)
		}
	}()
	reg, err := harness.StartRegistry(ctx, filepath.Join(dir, "registry"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: start registry:", err)
		return 1
	}
	env.registry = reg
	defer reg.Stop()

	if err := pushTestImages(ctx, reg.Addr); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		fmt.Fprintf(os.Stderr, "--- registry log (%s):\n%s\n", reg.LogPath(), reg.Logs())
		return 1
	}

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- containerd log (%s):\n%s\n", ctd.LogPath(), ctd.Logs())
		fmt.Fprintf(os.Stderr, "--- registry log (%s):\n%s\n", reg.LogPath(), reg.Logs())
	}
	return code
}

func pushTestImages(ctx context.Context, registry string) error {
	start := time.Now()
	img, err := images.BuildBusybox(goruntime.GOARCH)
	if err != nil {
		return err
	}
	env.busybox = registry + "/flotilla/busybox:test"
	if env.busyboxDigest, err = images.Push(ctx, img, env.busybox); err != nil {
		return err
	}
	entry, err := withEntrypoint(img)
	if err != nil {
		return err
	}
	env.entry = registry + "/flotilla/busybox-entry:test"
	if env.entryDigest, err = images.Push(ctx, entry, env.entry); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "built and pushed test images in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// withEntrypoint gives img an entrypoint and a cmd, and two env vars.
func withEntrypoint(img v1.Image) (v1.Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	c := cfg.Config
	c.Entrypoint = []string{"echo", "entry"}
	c.Cmd = []string{"default-cmd"}
	c.Env = append(c.Env, "GREETING=image", "KEEP=kept")
	return mutate.Config(img, c)
}

// newRuntime connects an adapter to the test containerd.
func newRuntime(t *testing.T) *Containerd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := New(ctx, Options{
		Socket:             env.ctd.Socket,
		Namespace:          testNamespace,
		InsecureRegistries: []string{env.registry.Addr},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// testCtx is a context bounded for one test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// uniqueID is a container ID that no other test or run uses.
func uniqueID(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// ensure pulls ref (IfNotPresent) or fails the test.
func ensure(t *testing.T, rt *Containerd, ref string) {
	t.Helper()
	if _, err := rt.EnsureImage(testCtx(t, time.Minute), ref, api.PullIfNotPresent); err != nil {
		t.Fatalf("EnsureImage %s: %v", ref, err)
	}
}

// run creates and starts spec, logging to a fresh file, and removes the
// container when the test ends. It returns the log path.
func run(t *testing.T, rt *Containerd, spec reconcile.ContainerSpec) string {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	if spec.Image == "" {
		spec.Image = env.busybox
	}
	ensure(t, rt, spec.Image)
	if err := rt.Create(ctx, spec); err != nil {
		t.Fatalf("Create %s: %v", spec.ID, err)
	}
	t.Cleanup(func() {
		if err := rt.Remove(context.Background(), spec.ID); err != nil {
			t.Errorf("Remove %s: %v", spec.ID, err)
		}
	})
	logPath := filepath.Join(t.TempDir(), "logs", spec.ID+".log")
	if err := rt.Start(ctx, spec.ID, logPath); err != nil {
		t.Fatalf("Start %s: %v", spec.ID, err)
	}
	return logPath
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLog waits until the log at path contains want and returns the log.
func waitLog(t *testing.T, path, want string) string {
	t.Helper()
	var log string
	waitFor(t, 30*time.Second, fmt.Sprintf("%q in %s", want, path), func() (bool, error) {
		b, err := os.ReadFile(path)
		log = string(b)
		return strings.Contains(log, want), err
	})
	return log
}

// find returns the listed container with id.
func find(ctx context.Context, rt *Containerd, id string) (reconcile.Container, error) {
	list, err := rt.List(ctx)
	if err != nil {
		return reconcile.Container{}, err
	}
	for _, c := range list {
		if c.ID == id {
			return c, nil
		}
	}
	return reconcile.Container{}, fmt.Errorf("container %s: %w", id, reconcile.ErrNotFound)
}

// waitState waits until List shows id in state and returns it.
func waitState(t *testing.T, rt *Containerd, id string, state reconcile.TaskState) reconcile.Container {
	t.Helper()
	var got reconcile.Container
	waitFor(t, 30*time.Second, fmt.Sprintf("%s to be %s", id, state), func() (bool, error) {
		c, err := find(testCtx(t, 5*time.Second), rt, id)
		got = c
		if err != nil {
			return false, err
		}
		return c.State == state, fmt.Errorf("state %s", c.State)
	})
	return got
}

// runToExit runs a container that exits by itself and returns its log.
func runToExit(t *testing.T, rt *Containerd, spec reconcile.ContainerSpec) (reconcile.Container, string) {
	t.Helper()
	logPath := run(t, rt, spec)
	c := waitState(t, rt, spec.ID, reconcile.TaskExited)
	// The shim copies the last output to the log after containerd may
	// already report the exit: on a loaded machine the file can still be
	// empty here (seen once in a full run). Output that ends in a newline,
	// or none for 5 s, is what the run wrote.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(logPath)
		if err != nil && !os.IsNotExist(err) {
			t.Fatalf("read log: %v", err)
		}
		if (len(b) > 0 && b[len(b)-1] == '\n') || time.Now().After(deadline) {
			return c, string(b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isNotFoundErr reports reconcile.ErrNotFound.
func isNotFoundErr(err error) bool { return errors.Is(err, reconcile.ErrNotFound) }
