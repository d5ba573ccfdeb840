package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on dir (made if missing) until
// the test ends.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// configMap is a ConfigMap manifest with size bytes of incompressible data.
func configMap(name string, size int) string {
	b := make([]byte, size/2)
	_, _ = rand.Read(b)
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: default\ndata:\n  blob: %s\n", name, hex.EncodeToString(b))
}

// TestHubFullDisk applies ConfigMaps to a hub whose data directory is a
// 20 MiB tmpfs until the disk is full. Before, Badger's table builder
// faulted (SIGBUS) and the hub died, and died again at every start on the
// full disk. Now the hub refuses the write with 507 and the CLI says
// "hub store: disk full, N bytes free"; it keeps serving reads, starts
// again on the full disk, and takes writes again by itself when the disk
// grows.
func TestHubFullDisk(t *testing.T) {
	h := startHub(t, hubOptions{dataTmpfs: 20 << 20})
	var applied []string
	var refusal string
	for i := 0; refusal == ""; i++ {
		if i > 400 {
			t.Fatalf("applied %d ConfigMaps of 128 KiB to a 20 MiB disk and none was refused", i)
		}
		name := fmt.Sprintf("blob-%03d", i)
		out, errOut, err := h.cli(configMap(name, 128<<10), "apply", "-f", "-")
		switch {
		case err == nil:
			applied = append(applied, name)
		case strings.Contains(errOut, "hub store: disk full, ") && strings.Contains(errOut, " bytes free"):
			refusal = strings.TrimSpace(errOut)
		default:
			t.Fatalf("apply %s: %v\n%s%s", name, err, out, errOut)
		}
	}
	t.Logf("%d ConfigMaps applied, then: %s", len(applied), refusal)
	if !strings.Contains(refusal, "InsufficientStorage") {
		t.Errorf("the refusal does not say InsufficientStorage (507): %s", refusal)
	}
	select {
	case <-h.proc.Exited():
		t.Fatalf("the hub exited on the full disk:\n%s", h.proc.Logs())
	default:
	}
	checkConfigMaps := func(when string) {
		t.Helper()
		out := h.mustCLI("get", "configmaps", "-n", "default")
		for _, name := range applied {
			if !strings.Contains(out, name) {
				t.Fatalf("%s: ConfigMap %s was acknowledged but is not served:\n%s", when, name, out)
			}
		}
	}
	checkConfigMaps("on the full disk")

	// Started again on the full disk, it serves everything and still
	// refuses what does not fit.
	h.restart(false)
	checkConfigMaps("after a restart on the full disk")
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("after restarting on the full disk, 100 more ConfigMaps were taken")
		}
		name := fmt.Sprintf("again-%03d", i)
		out, errOut, err := h.cli(configMap(name, 128<<10), "apply", "-f", "-")
		if err == nil {
			applied = append(applied, name)
			continue
		}
		if !strings.Contains(errOut, "hub store: disk full, ") {
			t.Fatalf("apply %s after restarting on the full disk: %v\n%s%s", name, err, out, errOut)
		}
		break
	}

	// The disk grows: writes are taken again, with no restart.
	data := h.dir + "/data"
	if err := syscall.Mount("tmpfs", data, "tmpfs", syscall.MS_REMOUNT, "size=80m"); err != nil {
		t.Fatalf("grow the tmpfs: %v", err)
	}
	eventually(t, 15*time.Second, "an apply taken after the disk grew", func() error {
		out, errOut, err := h.cli(configMap("after-growth", 128<<10), "apply", "-f", "-")
		if err != nil {
			return fmt.Errorf("%v %s%s", err, out, errOut)
		}
		return nil
	})
	applied = append(applied, "after-growth")
	checkConfigMaps("after the disk grew")
}
