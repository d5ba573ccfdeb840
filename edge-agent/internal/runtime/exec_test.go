package runtime

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/probe"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// The adapter is what runs the agent's exec probes.
var _ probe.Execer = (*Containerd)(nil)

// execNamespace keeps the exec tests' containers apart from the other tests'.
const execNamespace = "flotilla-rtexec"

// newExecRuntime connects an adapter in execNamespace whose exec FIFOs go to
// a directory of the test's own, returned so it can be checked for leftovers.
func newExecRuntime(t *testing.T) (*Containerd, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt, err := New(ctx, Options{
		Socket:             env.ctd.Socket,
		Namespace:          execNamespace,
		InsecureRegistries: []string{env.registry.Addr},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	rt.fifoDir = t.TempDir()
	return rt, rt.fifoDir
}

// runSleeper starts a busybox container that sleeps, with env, and waits
// until it runs.
func runSleeper(t *testing.T, rt *Containerd, prefix string, env ...string) string {
	t.Helper()
	id := uniqueID(prefix)
	run(t, rt, reconcile.ContainerSpec{
		ID:         id,
		Labels:     map[string]string{reconcile.LabelPodUID: "uid-" + id},
		Command:    []string{"sleep", "1000"},
		Env:        env,
		WorkingDir: "/tmp",
	})
	waitState(t, rt, id, reconcile.TaskRunning)
	return id
}

// assertOnlyMainProcess checks that the container's task has no process
// left but its main one.
func assertOnlyMainProcess(t *testing.T, rt *Containerd, id string) {
	t.Helper()
	ctx := rt.ns(testCtx(t, 10*time.Second))
	task, _, err := rt.runningTask(ctx, id)
	if err != nil {
		t.Fatalf("load task of %s: %v", id, err)
	}
	pids, err := task.Pids(ctx)
	if err != nil {
		t.Fatalf("pids of %s: %v", id, err)
	}
	if len(pids) != 1 || pids[0].Pid != task.Pid() {
		t.Errorf("task of %s has processes %+v, want only the main one (%d)", id, pids, task.Pid())
	}
}

// assertEmptyDir checks that Exec left nothing in its FIFO directory.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in the FIFO directory: %s", e.Name())
	}
}

func TestExec(t *testing.T) {
	rt, fifos := newExecRuntime(t)
	id := runSleeper(t, rt, "exec", "PROBE_GREETING=hello from env")
	ctx := testCtx(t, time.Minute)

	for _, tc := range []struct {
		name     string
		argv     []string
		wantCode int
		want     []string // substrings of the output
	}{
		{"success", []string{"true"}, 0, nil},
		{"exit code", []string{"sh", "-c", "exit 3"}, 3, nil},
		{"stdout and stderr", []string{"sh", "-c", "echo to-out; echo to-err >&2; exit 1"}, 1, []string{"to-out\n", "to-err\n"}},
		{"container env", []string{"sh", "-c", `echo "$PROBE_GREETING"`}, 0, []string{"hello from env\n"}},
		{"container cwd", []string{"pwd"}, 0, []string{"/tmp\n"}},
	} {
		start := time.Now()
		code, out, err := rt.Exec(ctx, id, tc.argv, 10*time.Second)
		t.Logf("%s: exec took %s", tc.name, time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Errorf("%s: Exec: %v", tc.name, err)
			continue
		}
		if code != tc.wantCode {
			t.Errorf("%s: exit code %d, want %d (output %q)", tc.name, code, tc.wantCode, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: output %q does not contain %q", tc.name, out, w)
			}
		}
	}

	// A missing executable is an error, not an exit code.
	if _, _, err := rt.Exec(ctx, id, []string{"/no/such/binary"}, 10*time.Second); err == nil {
		t.Error("Exec of a missing binary succeeded")
	}
	assertOnlyMainProcess(t, rt, id)
	assertEmptyDir(t, fifos)
}

func TestExecOutputIsBounded(t *testing.T) {
	rt, fifos := newExecRuntime(t)
	id := runSleeper(t, rt, "exec-big")
	// 100 KiB of output: the process must not block on a full pipe, and
	// only the first MaxExecOutput bytes are kept. dd's summary goes to
	// /dev/null: stdout and stderr are copied concurrently, so it could
	// otherwise land in the buffer first.
	code, out, err := rt.Exec(testCtx(t, time.Minute), id,
		[]string{"sh", "-c", "dd if=/dev/zero bs=1024 count=100 2>/dev/null"}, 10*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("Exec: code %d, %v", code, err)
	}
	if len(out) != MaxExecOutput {
		t.Errorf("kept %d bytes of output, want %d", len(out), MaxExecOutput)
	}
	if !bytes.Equal(out[:1024], make([]byte, 1024)) {
		t.Errorf("output does not start with the process's stdout: %q", out[:16])
	}
	assertEmptyDir(t, fifos)
}

func TestExecTimeoutKills(t *testing.T) {
	rt, fifos := newExecRuntime(t)
	id := runSleeper(t, rt, "exec-timeout")
	exits := rt.Exits(testCtx(t, time.Minute))
	ctx := testCtx(t, time.Minute)

	start := time.Now()
	code, _, err := rt.Exec(ctx, id, []string{"sleep", "100"}, 300*time.Millisecond)
	took := time.Since(start)
	t.Logf("timed-out exec returned after %s", took.Round(time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec past its timeout: code %d, err %v; want an error wrapping DeadlineExceeded", code, err)
	}
	if took > 5*time.Second {
		t.Errorf("Exec took %s to return after a 300ms timeout", took)
	}
	assertOnlyMainProcess(t, rt, id)
	assertEmptyDir(t, fifos)

	// The caller's cancellation kills the process too.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, _, err := rt.Exec(cctx, id, []string{"sleep", "100"}, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Exec past its context's deadline: %v", err)
	}
	assertOnlyMainProcess(t, rt, id)
	assertEmptyDir(t, fifos)

	// The killed exec'd processes were not reported as the container's
	// exits: the first exit seen is the main process's, killed by Stop.
	if err := rt.Stop(ctx, id, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	exit := waitExit(t, exits, id, 30*time.Second)
	if exit.ExitCode != 137 {
		t.Errorf("first exit reported for %s has code %d, want the main process's 137", id, exit.ExitCode)
	}
}

func TestExecWithoutRunningTask(t *testing.T) {
	rt, fifos := newExecRuntime(t)
	ctx := testCtx(t, time.Minute)
	if _, _, err := rt.Exec(ctx, uniqueID("exec-none"), []string{"true"}, time.Second); !errors.Is(err, reconcile.ErrNotFound) {
		t.Errorf("Exec in a missing container: %v, want ErrNotFound", err)
	}
	id := runSleeper(t, rt, "exec-stopped")
	if err := rt.Stop(ctx, id, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, _, err := rt.Exec(ctx, id, []string{"true"}, time.Second); !errors.Is(err, reconcile.ErrNotFound) {
		t.Errorf("Exec in a stopped container: %v, want ErrNotFound", err)
	}

	// An exited task that is not yet deleted is refused the same way.
	exited := uniqueID("exec-exited")
	runToExit(t, rt, reconcile.ContainerSpec{ID: exited, Command: []string{"true"},
		Labels: map[string]string{reconcile.LabelPodUID: "uid-" + exited}})
	if _, _, err := rt.Exec(ctx, exited, []string{"true"}, time.Second); !errors.Is(err, reconcile.ErrNotFound) {
		t.Errorf("Exec in an exited container: %v, want ErrNotFound", err)
	}
	if _, _, err := rt.Exec(ctx, exited, nil, time.Second); err == nil {
		t.Error("Exec with no command succeeded")
	}
	assertEmptyDir(t, fifos)
}

func TestBoundedBuffer(t *testing.T) {
	b := &boundedBuffer{max: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := string(b.Bytes()); got != "abcde" {
		t.Errorf("kept %q, want %q", got, "abcde")
	}
}
