package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
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

	// Something else takes every byte left, and the hub starts again: it
	// opens its stores read-only, serves reads and refuses writes.
	data := filepath.Join(h.dir, "data")
	_ = h.proc.Stop()
	if _, err := fillTo2(filepath.Join(data, "filler")); err != nil {
		t.Fatal(err)
	}
	h.start()
	checkConfigMaps("after starting on a disk with no byte free")
	if _, errOut, err := h.cli(configMap("read-only", 1<<10), "apply", "-f", "-"); err == nil || !strings.Contains(errOut, "hub store: disk full, ") {
		t.Fatalf("an apply to the hub started on a disk with no byte free: %v %s", err, errOut)
	}

	// The disk grows: writes are taken again, with no restart.
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

// condition returns a node's condition of type typ ("" if it has none).
func condition(n *api.Node, typ string) api.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// TestAgentFullStateDisk runs an agent whose state directory is an 8 MiB
// tmpfs, cuts its link and fills the disk. Before, the agent died with
// SIGBUS in Badger and again at every start, its crash-looping pod left
// stopped, and the node stayed NotReady with its pods NodeLost once the
// link returned. Now the agent stays up: its pods keep running and the
// crash-looping one keeps restarting, the outbox stops growing with every
// refused report counted as dropped, and once the link is back the node
// is Ready with its pods Running and DiskPressure True, which clears when
// the space returns.
func TestAgentFullStateDisk(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	a := startSiteAgentOn(t, h, site, 8<<20, "--metrics-interval", "1s", "--metrics-offline-resolution", "2s")
	steady, crashy := uniq("steady"), uniq("crashy")
	h.applyYAML(daemonSet(steady, siteImage(site, "v1"), "", "sleep 3600"))
	h.applyYAML(daemonSet(crashy, siteImage(site, "v1"), "", "sleep 1; exit 1"))
	steadyPid := 0
	eventually(t, 60*time.Second, "the steady pod running and the crashy one restarted", func() error {
		for _, c := range running(t, a.ns) {
			if strings.HasPrefix(c.Labels["io.flotilla.pod.name"], steady) {
				steadyPid = int(c.Pid)
			}
		}
		if steadyPid == 0 {
			return fmt.Errorf("steady pod not running")
		}
		if n := crashRuns(t, a.ns, crashy); n < 1 {
			return fmt.Errorf("crashy pod at run %d", n)
		}
		return nil
	})

	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "hub sees the node NotReady", func() error {
		if h.node(a.node).IsReady() {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	// Something fills the card, leaving less than the state store keeps
	// in reserve.
	free, err := diskguard.Free(a.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(a.stateDir, "filler")
	if err := fillTo(filler, free-768<<10); err != nil {
		t.Fatal(err)
	}
	// Offline on the full disk for a while: the crash loop goes on.
	restartsBefore := crashRuns(t, a.ns, crashy)
	eventually(t, 150*time.Second, "the crash-looping container restarting on the full disk", func() error {
		if n := crashRuns(t, a.ns, crashy); n <= restartsBefore {
			return fmt.Errorf("%d runs, %d before the disk filled", n, restartsBefore)
		}
		return nil
	})
	select {
	case <-a.proc.Exited():
		t.Fatalf("the agent exited on the full disk:\n%s", a.proc.Logs())
	default:
	}
	if !steadyStillRunning(t, a.ns, steady, steadyPid) {
		t.Fatal("the steady pod's task did not survive the full disk")
	}

	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "node Ready with DiskPressure, its pods Running and drops counted", func() error {
		n := h.node(a.node)
		if !n.IsReady() {
			return fmt.Errorf("node not ready: %+v", n.Status)
		}
		if got := condition(n, api.NodeDiskPressure); got != api.ConditionTrue {
			return fmt.Errorf("DiskPressure %q", got)
		}
		if n.Status.Outbox.Dropped == 0 {
			return fmt.Errorf("no report counted as dropped: %+v", n.Status.Outbox)
		}
		if p := podOn(h.pods(), steady, a.node); p == nil || p.Status.Phase != api.PodRunning {
			return fmt.Errorf("steady pod = %+v", p)
		}
		return nil
	})
	t.Logf("outbox on the full disk: %+v", h.node(a.node).Status.Outbox)

	// The space returns: the pressure clears by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "DiskPressure cleared once the space returned", func() error {
		if got := condition(h.node(a.node), api.NodeDiskPressure); got != api.ConditionFalse {
			return fmt.Errorf("DiskPressure %q", got)
		}
		return nil
	})
}

// fillTo2 writes a new file at path until the disk is full.
func fillTo2(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fillTo writes n bytes to a new file at path.
func fillTo(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for n > 0 {
		w, err := f.Write(buf[:min(int64(len(buf)), n)])
		if err != nil {
			return err
		}
		n -= int64(w)
	}
	return nil
}

// crashRuns is the highest run number of the DaemonSet's container in
// containerd: its restart count.
func crashRuns(t *testing.T, ns, ds string) int {
	t.Helper()
	top := -1
	for _, c := range containers(t, ns) {
		if !strings.HasPrefix(c.Labels["io.flotilla.pod.name"], ds) {
			continue
		}
		run, _ := strconv.Atoi(c.Labels["io.flotilla.container.run"])
		top = max(top, run)
	}
	return top
}

// steadyStillRunning reports whether the DaemonSet's task pid still runs.
func steadyStillRunning(t *testing.T, ns, ds string, pid int) bool {
	t.Helper()
	for _, c := range running(t, ns) {
		if strings.HasPrefix(c.Labels["io.flotilla.pod.name"], ds) && int(c.Pid) == pid {
			return true
		}
	}
	return false
}
