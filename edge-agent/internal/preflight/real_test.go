package preflight

import (
	"context"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
)

// TestRealMachine runs every check against this machine and a real
// containerd started for the test: nothing may FAIL, and the checks that
// talk to the machine must have really talked to it. It needs root (the
// overlay mount and containerd) and Debian's containerd and runc.
func TestRealMachine(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it starts containerd and mounts an overlay")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "flotilla-check-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctd, err := harness.StartContainerd(ctx, filepath.Join(dir, "ctd"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ctd.Close(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	cfg := Config{
		StateDir:         filepath.Join(dir, "state"),
		ContainerdSocket: ctd.Socket,
		Snapshotter:      "overlayfs",
		Platform:         "linux/" + goruntime.GOARCH,
	}
	r := Run(ctx, cfg, RealHost(ctd.Root))
	var out strings.Builder
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("edge-agent check on this machine:\n%s", out.String())
	if r.Failed() {
		t.Fatalf("a check failed on this machine:\n%s", out.String())
	}
	for name, want := range map[string]string{
		CheckContainerd:   "version 1.",
		CheckRunc:         "runc version",
		CheckSnapshotter:  "mounted and wrote through a test overlay",
		CheckCgroupCPU:    "",
		CheckCgroupMemory: "",
		CheckClock:        "",
		CheckSeccomp:      "errno",
		CheckCNIPlugins:   "bridge, host-local, portmap, loopback in /usr/lib/cni",
		CheckBrNetfilter:  "",
	} {
		res, ok := r.Get(name)
		if !ok || res.Status != Pass || !strings.Contains(res.Detail, want) {
			t.Errorf("%s = %+v, want PASS with %q", name, res, want)
		}
	}
	// The overlay test leaves nothing behind.
	if left, _ := filepath.Glob(filepath.Join(ctd.Root, "flotilla-check-overlay-*")); len(left) != 0 {
		t.Errorf("overlay test left %v", left)
	}

	// With containerd gone, the check fails fast and says so.
	cfg.ContainerdSocket = filepath.Join(dir, "nothing.sock")
	cfg.Timeout = 2 * time.Second
	start := time.Now()
	r = Run(ctx, cfg, RealHost(ctd.Root))
	if res, _ := r.Get(CheckContainerd); res.Status != Fail || !r.Failed() {
		t.Fatalf("containerd check with no daemon = %+v", res)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the checks took %s with containerd down", d)
	}
}
