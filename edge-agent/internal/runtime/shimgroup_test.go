package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// TestShimGroupServesRunsAfterTheFirstGoes plays a restart the way the
// reconciler makes one: the next run is created and started in the group
// while the exited run still has its task, then the exited run is
// removed, though its bundle was the group's shim's working directory. The
// new run is served by the same shim, and keeps being served (exec, stop,
// list, a containerd restart) once the first run is gone.
func TestShimGroupServesRunsAfterTheFirstGoes(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, 2*time.Minute)
	group := uniqueID("pod")
	spec := func(id string) reconcile.ContainerSpec {
		return reconcile.ContainerSpec{ID: id, Command: []string{"sleep", "1000"}, ShimGroup: group,
			Labels: map[string]string{reconcile.LabelPodUID: group}}
	}
	first, second := group+"-0", group+"-1"
	run(t, rt, spec(first))
	c0 := waitState(t, rt, first, reconcile.TaskRunning)
	shim := parentPid(t, c0.Pid)

	// The first run crashes; the second starts beside its exited task.
	if err := signalPid(c0.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, first, reconcile.TaskExited)
	run(t, rt, spec(second))
	c1 := waitState(t, rt, second, reconcile.TaskRunning)
	if got := parentPid(t, c1.Pid); got != shim {
		t.Fatalf("second run's shim is pid %d, want the group's shim %d", got, shim)
	}

	// The first run goes, and with it the shim's working directory.
	if err := rt.Remove(ctx, first); err != nil {
		t.Fatalf("Remove first run: %v", err)
	}
	if _, err := find(ctx, rt, first); !isNotFoundErr(err) {
		t.Fatalf("first run still listed: %v", err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(shim)); err != nil {
		t.Fatalf("the group's shim exited with a run still in it: %v", err)
	}
	code, out, err := rt.Exec(ctx, second, []string{"echo", "still served"}, 10*time.Second)
	if err != nil || code != 0 || !strings.Contains(string(out), "still served") {
		t.Fatalf("exec in second run: code %d, out %q, err %v", code, out, err)
	}

	// containerd restarts and finds the run through its own bundle.
	if err := env.ctd.Restart(ctx); err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
	after := waitState(t, rt, second, reconcile.TaskRunning)
	if after.Pid != c1.Pid {
		t.Fatalf("after containerd restart pid %d, want %d", after.Pid, c1.Pid)
	}
	if err := rt.Stop(ctx, second, time.Second); err != nil {
		t.Fatalf("Stop second run: %v", err)
	}
	// The group's last task is gone: so is its shim.
	waitFor(t, 10*time.Second, "the group's shim to exit", func() (bool, error) {
		_, err := os.Stat("/proc/" + strconv.Itoa(shim))
		return os.IsNotExist(err), err
	})
}

// parentPid reads the parent of process pid (a container's main process:
// its shim).
func parentPid(t *testing.T, pid uint32) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

func signalPid(pid uint32, sig syscall.Signal) error {
	return syscall.Kill(int(pid), sig)
}

// TestCreateNextRun: the next run has the exited run's command,
// environment and mounts, a fresh writable layer, a cgroup of its own and
// the given labels and shim group, and starts while the exited run is
// still there.
func TestCreateNextRun(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)
	dir := t.TempDir()
	first := uniqueID("run")
	firstLog := run(t, rt, reconcile.ContainerSpec{ID: first, Env: []string{"RUN_VAR=kept"},
		Mounts:  []reconcile.Mount{{Source: dir, Destination: "/data"}},
		Command: []string{"sh", "-c", "ls /scratch 2>/dev/null || echo fresh; touch /scratch; echo $RUN_VAR >> /data/runs; exit 2"}})
	waitState(t, rt, first, reconcile.TaskExited)
	if log := waitLog(t, firstLog, "fresh"); !strings.Contains(log, "fresh") {
		t.Fatalf("first run: %q", log)
	}

	next := first + "-1"
	labels := map[string]string{reconcile.LabelPodUID: "uid-" + first, reconcile.LabelRun: "1"}
	if err := rt.CreateNextRun(ctx, first, next, labels, "group-"+first); err != nil {
		t.Fatalf("CreateNextRun: %v", err)
	}
	t.Cleanup(func() { rt.Remove(context.Background(), next) })
	if err := rt.CreateNextRun(ctx, first, next, labels, ""); !errors.Is(err, reconcile.ErrAlreadyExists) {
		t.Fatalf("second CreateNextRun: %v, want ErrAlreadyExists", err)
	}
	nextLog := filepath.Join(t.TempDir(), "next.log")
	if err := rt.Start(ctx, next, nextLog); err != nil {
		t.Fatalf("Start next run: %v", err)
	}
	c := waitState(t, rt, next, reconcile.TaskExited)
	if c.ExitCode != 2 || c.Labels[reconcile.LabelRun] != "1" || c.Labels[reconcile.LabelPodUID] != "uid-"+first {
		t.Fatalf("next run: %+v", c)
	}
	// A fresh writable layer: the first run's file is not there.
	if log := waitLog(t, nextLog, "fresh"); !strings.Contains(log, "fresh") {
		t.Fatalf("next run saw the first run's writable layer: %q", log)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "runs")); err != nil || string(b) != "kept\nkept\n" {
		t.Fatalf("mount and environment: %q, %v", b, err)
	}
	ctr, err := rt.client.LoadContainer(rt.ns(ctx), next)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ctr.Spec(rt.ns(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if want := "/" + testNamespace + "/" + next; spec.Linux.CgroupsPath != want || spec.Annotations[shimGroupAnnotation] != "group-"+first {
		t.Fatalf("cgroup %q (want %q), group %q", spec.Linux.CgroupsPath, want, spec.Annotations[shimGroupAnnotation])
	}
	if err := rt.CreateNextRun(ctx, uniqueID("missing"), uniqueID("x"), nil, ""); !errors.Is(err, reconcile.ErrNotFound) {
		t.Fatalf("CreateNextRun from a missing container: %v, want ErrNotFound", err)
	}
}
