package runtime

import (
	"context"
	"errors"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/opencontainers/image-spec/identity"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/test/images"
)

func TestEnsureImagePolicies(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, 2*time.Minute)

	// A tag pushed only for this test, so the first pull is a real one.
	img, err := images.BuildBusybox(goruntime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	ref := env.registry.Addr + "/flotilla/policy:v1"
	want, err := images.Push(ctx, img, ref)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := rt.EnsureImage(ctx, ref, api.PullNever); !errors.Is(err, reconcile.ErrImageNeverPull) {
		t.Fatalf("Never on an absent image: got %v, want ErrImageNeverPull", err)
	}
	start := time.Now()
	got, err := rt.EnsureImage(ctx, ref, api.PullIfNotPresent)
	if err != nil {
		t.Fatalf("IfNotPresent: %v", err)
	}
	t.Logf("first pull (and unpack) took %s", time.Since(start).Round(time.Millisecond))
	if got != want {
		t.Fatalf("IfNotPresent digest %s, want %s", got, want)
	}
	start = time.Now()
	if got, err := rt.EnsureImage(ctx, ref, api.PullIfNotPresent); err != nil || got != want {
		t.Fatalf("IfNotPresent (present): %s, %v", got, err)
	}
	t.Logf("IfNotPresent on a present image took %s", time.Since(start).Round(time.Millisecond))
	if got, err := rt.EnsureImage(ctx, ref, api.PullNever); err != nil || got != want {
		t.Fatalf("Never (present): %s, %v", got, err)
	}
	start = time.Now()
	if got, err := rt.EnsureImage(ctx, ref, api.PullAlways); err != nil || got != want {
		t.Fatalf("Always: %s, %v", got, err)
	}
	t.Logf("Always (re-pull, layers present) took %s", time.Since(start).Round(time.Millisecond))

	// Always pulls: a new image under the same tag is picked up.
	img2, err := images.BuildBusybox(goruntime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img2.ConfigFile()
	c := cfg.Config
	c.Env = append(c.Env, "VERSION=2")
	img2, err = mutateConfig(img2, c)
	if err != nil {
		t.Fatal(err)
	}
	want2, err := images.Push(ctx, img2, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rt.EnsureImage(ctx, ref, api.PullIfNotPresent); err != nil || got != want {
		t.Fatalf("IfNotPresent after a new push must keep the local image: %s, %v", got, err)
	}
	if got, err := rt.EnsureImage(ctx, ref, api.PullAlways); err != nil || got != want2 {
		t.Fatalf("Always after a new push: %s, %v; want %s", got, err, want2)
	}

	missing := env.registry.Addr + "/flotilla/no-such-repo:v1"
	if _, err := rt.EnsureImage(ctx, missing, api.PullIfNotPresent); !errors.Is(err, reconcile.ErrImagePull) {
		t.Fatalf("missing repo: got %v, want ErrImagePull", err)
	} else if !strings.Contains(err.Error(), "no-such-repo") {
		t.Fatalf("missing repo error does not name the ref: %v", err)
	}
	if _, err := rt.EnsureImage(ctx, ref, "Sometimes"); err == nil {
		t.Fatal("unknown policy accepted")
	}
}

func TestEnsureImageConcurrentPullsShare(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, 2*time.Minute)
	img, err := images.BuildBusybox(goruntime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	ref := env.registry.Addr + "/flotilla/shared:v1"
	want, err := images.Push(ctx, img, ref)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	digests := make([]string, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digests[i], errs[i] = rt.EnsureImage(ctx, ref, api.PullAlways)
		}()
	}
	wg.Wait()
	for i := range 4 {
		if errs[i] != nil || digests[i] != want {
			t.Errorf("caller %d: %s, %v", i, digests[i], errs[i])
		}
	}
	// A caller that gives up does not fail the pull for others.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rt.EnsureImage(cctx, ref, api.PullAlways); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	if _, err := rt.EnsureImage(ctx, ref, api.PullAlways); err != nil {
		t.Fatalf("pull after a cancelled caller: %v", err)
	}
}

func TestRunListAndLogs(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)
	ensure(t, rt, env.busybox)
	id := uniqueID("hello")
	labels := map[string]string{
		reconcile.LabelPodUID:       "uid-1",
		reconcile.LabelPodName:      "hello",
		reconcile.LabelPodNamespace: "default",
		reconcile.LabelSpecHash:     "abc",
		reconcile.LabelRevision:     "7",
		reconcile.LabelContainer:    "main",
	}
	before := time.Now()
	logPath := run(t, rt, reconcile.ContainerSpec{
		ID:      id,
		Labels:  labels,
		Command: []string{"sh", "-c", "echo hello; sleep 1000"},
	})
	t.Logf("create+start took %s", time.Since(before).Round(time.Millisecond))
	c := waitState(t, rt, id, reconcile.TaskRunning)
	for k, v := range labels {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if c.StartedAt.Before(before.Add(-time.Second)) || c.StartedAt.After(time.Now()) {
		t.Errorf("StartedAt %s not between %s and now", c.StartedAt, before)
	}
	if c.Pid == 0 {
		t.Error("running container has no pid")
	}
	if c.Image != env.busybox {
		t.Errorf("Image %q, want %q", c.Image, env.busybox)
	}
	start := time.Now()
	waitLog(t, logPath, "hello")
	t.Logf("first output seen %s after Start returned", time.Since(start).Round(time.Millisecond))

	// Starting a running container is refused.
	if err := rt.Start(ctx, id, logPath); !errors.Is(err, reconcile.ErrAlreadyExists) {
		t.Errorf("Start while running: got %v, want ErrAlreadyExists", err)
	}
	start = time.Now()
	if err := rt.Stop(ctx, id, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("Stop (SIGKILL) took %s", time.Since(start).Round(time.Millisecond))
	if c, err := find(ctx, rt, id); err != nil || c.State != reconcile.TaskNone {
		t.Errorf("after Stop: %+v, %v; want TaskNone", c, err)
	}
}

func TestCommandAndArgs(t *testing.T) {
	rt := newRuntime(t)
	for _, tc := range []struct {
		name          string
		command, args []string
		want          string
	}{
		{"image defaults", nil, nil, "entry default-cmd\n"},
		{"args only", nil, []string{"a1", "a2"}, "entry a1 a2\n"},
		{"command only", []string{"echo", "cmd"}, nil, "cmd\n"},
		{"command and args", []string{"echo", "cmd"}, []string{"a1"}, "cmd a1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, log := runToExit(t, rt, reconcile.ContainerSpec{
				ID: uniqueID("cmd"), Image: env.entry, Command: tc.command, Args: tc.args,
			})
			if log != tc.want || c.ExitCode != 0 {
				t.Errorf("output %q (exit %d), want %q", log, c.ExitCode, tc.want)
			}
		})
	}
}

func TestEnvAndWorkingDir(t *testing.T) {
	rt := newRuntime(t)
	_, log := runToExit(t, rt, reconcile.ContainerSpec{
		ID:         uniqueID("env"),
		Image:      env.entry,
		Command:    []string{"sh", "-c", `echo "greeting=$GREETING keep=$KEEP extra=$EXTRA path=$PATH"; pwd`},
		Env:        []string{"GREETING=spec", "EXTRA=x"},
		WorkingDir: "/tmp",
	})
	want := "greeting=spec keep=kept extra=x path=" + strings.TrimPrefix(images.DefaultPath, "PATH=") + "\n/tmp\n"
	if log != want {
		t.Errorf("output %q, want %q", log, want)
	}
}

func TestHostPathMounts(t *testing.T) {
	rt := newRuntime(t)
	rw, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "in"), []byte("from-host"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, log := runToExit(t, rt, reconcile.ContainerSpec{
		ID: uniqueID("mount"),
		Command: []string{"sh", "-c",
			"echo from-container > /data/out; cat /config/in; echo; echo x > /config/denied || echo ro-denied"},
		Mounts: []reconcile.Mount{
			{Source: rw, Destination: "/data"},
			{Source: ro, Destination: "/config", ReadOnly: true},
		},
	})
	if c.ExitCode != 0 {
		t.Errorf("exit code %d; log:\n%s", c.ExitCode, log)
	}
	b, err := os.ReadFile(filepath.Join(rw, "out"))
	if err != nil || string(b) != "from-container\n" {
		t.Errorf("file written inside: %q, %v", b, err)
	}
	if !strings.Contains(log, "from-host") || !strings.Contains(log, "ro-denied") {
		t.Errorf("log %q: want the host file and a refused write to the read-only mount", log)
	}
	if _, err := os.Stat(filepath.Join(ro, "denied")); err == nil {
		t.Error("write through a read-only mount reached the host")
	}
}

func TestResourceLimits(t *testing.T) {
	rt := newRuntime(t)
	const script = `
if [ -f /sys/fs/cgroup/memory.max ]; then
  echo "mem=$(cat /sys/fs/cgroup/memory.max)"
  echo "cpu=$(cat /sys/fs/cgroup/cpu.max)"
else
  echo "mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
  echo "cpu=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
  echo "shares=$(cat /sys/fs/cgroup/cpu/cpu.shares)"
fi`
	_, log := runToExit(t, rt, reconcile.ContainerSpec{
		ID:               uniqueID("limits"),
		Command:          []string{"sh", "-c", script},
		MemoryLimitBytes: 64 << 20,
		CPULimitMilli:    500,
		CPURequestMilli:  250,
	})
	if !strings.Contains(log, "mem=67108864\n") {
		t.Errorf("memory limit not in the cgroup: %q", log)
	}
	if !strings.Contains(log, "cpu=50000 100000\n") {
		t.Errorf("CPU quota not in the cgroup: %q", log)
	}
	if strings.Contains(log, "shares=") && !strings.Contains(log, "shares=256\n") {
		t.Errorf("cpu shares: %q, want 256", log)
	}
}

func TestStopGrace(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)

	t.Run("exits on TERM", func(t *testing.T) {
		id := uniqueID("term")
		logPath := run(t, rt, reconcile.ContainerSpec{ID: id, Command: []string{"sh", "-c",
			`trap "echo got-term; exit 0" TERM; echo ready; while true; do sleep 0.1; done`}})
		waitLog(t, logPath, "ready")
		start := time.Now()
		if err := rt.Stop(ctx, id, 10*time.Second); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if took := time.Since(start); took > 8*time.Second {
			t.Errorf("Stop took %s for a process that exits on TERM", took)
		} else {
			t.Logf("Stop of a TERM-handling process took %s", took.Round(time.Millisecond))
		}
		waitLog(t, logPath, "got-term")
	})

	t.Run("killed after grace", func(t *testing.T) {
		id := uniqueID("stubborn")
		logPath := run(t, rt, reconcile.ContainerSpec{ID: id, Command: []string{"sh", "-c",
			`trap "" TERM; echo ready; while true; do sleep 0.1; done`}})
		waitLog(t, logPath, "ready")
		const grace = 1500 * time.Millisecond
		start := time.Now()
		if err := rt.Stop(ctx, id, grace); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		took := time.Since(start)
		if took < grace || took > grace+5*time.Second {
			t.Errorf("Stop took %s, want about %s", took, grace)
		}
		t.Logf("Stop of a TERM-ignoring process with %s grace took %s", grace, took.Round(time.Millisecond))
		if c, err := find(ctx, rt, id); err != nil || c.State != reconcile.TaskNone {
			t.Errorf("after Stop: %+v, %v; want TaskNone", c, err)
		}
	})

	t.Run("no task", func(t *testing.T) {
		if err := rt.Stop(ctx, uniqueID("absent"), time.Second); err != nil {
			t.Errorf("Stop of a missing container: %v", err)
		}
		id := uniqueID("created")
		ensure(t, rt, env.busybox)
		if err := rt.Create(ctx, reconcile.ContainerSpec{ID: id, Image: env.busybox}); err != nil {
			t.Fatal(err)
		}
		defer rt.Remove(ctx, id)
		if err := rt.Stop(ctx, id, time.Second); err != nil {
			t.Errorf("Stop of a container never started: %v", err)
		}
	})
}

func TestExitsAndRestart(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)
	exits := rt.Exits(ctx)
	id := uniqueID("exit3")
	logPath := run(t, rt, reconcile.ContainerSpec{ID: id, Command: []string{"sh", "-c", "echo run; exit 3"}})
	e := waitExit(t, exits, id, 15*time.Second)
	if e.ExitCode != 3 || e.ExitedAt.IsZero() {
		t.Errorf("exit %+v, want code 3 and a time", e)
	}
	c := waitState(t, rt, id, reconcile.TaskExited)
	if c.ExitCode != 3 || c.FinishedAt.IsZero() || c.Pid == 0 {
		t.Errorf("listed %+v, want exit code 3, a finish time and the pid", c)
	}
	first := c.StartedAt

	// Start again after the exit: a new task, a new start time, the log
	// appended to.
	if err := rt.Start(ctx, id, logPath); err != nil {
		t.Fatalf("restart: %v", err)
	}
	e = waitExit(t, exits, id, 15*time.Second)
	if e.ExitCode != 3 {
		t.Errorf("second exit %+v", e)
	}
	c = waitState(t, rt, id, reconcile.TaskExited)
	if !c.StartedAt.After(first) {
		t.Errorf("StartedAt %s after restart, want later than %s", c.StartedAt, first)
	}
	if log := waitLog(t, logPath, "run"); strings.Count(log, "run\n") != 2 {
		t.Errorf("log %q, want two runs", log)
	}
}

func TestExitsChannelClosesWithContext(t *testing.T) {
	rt := newRuntime(t)
	ctx, cancel := context.WithCancel(context.Background())
	exits := rt.Exits(ctx)
	cancel()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-exits:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatal("Exits channel still open 5s after its context ended")
		}
	}
}

// waitExit reads exits until id's arrives.
func waitExit(t *testing.T, exits <-chan reconcile.Exit, id string, timeout time.Duration) reconcile.Exit {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-exits:
			if !ok {
				t.Fatal("Exits channel closed")
			}
			if e.ContainerID == id {
				return e
			}
		case <-timer.C:
			t.Fatalf("no exit for %s within %s", id, timeout)
		}
	}
}

func TestRemove(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)
	ensure(t, rt, env.busybox)
	id := uniqueID("remove")
	if err := rt.Create(ctx, reconcile.ContainerSpec{ID: id, Image: env.busybox, Command: []string{"sleep", "1000"}}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Create(ctx, reconcile.ContainerSpec{ID: id, Image: env.busybox}); !errors.Is(err, reconcile.ErrAlreadyExists) {
		t.Fatalf("second Create: got %v, want ErrAlreadyExists", err)
	}
	if err := rt.Start(ctx, id, filepath.Join(t.TempDir(), "remove.log")); err != nil {
		t.Fatal(err)
	}
	waitState(t, rt, id, reconcile.TaskRunning)

	client, err := containerd.New(env.ctd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nctx := namespaces.WithNamespace(ctx, testNamespace)
	snapshots := client.SnapshotService(DefaultSnapshotter)
	if _, err := snapshots.Stat(nctx, id); err != nil {
		t.Fatalf("snapshot before Remove: %v", err)
	}

	start := time.Now()
	if err := rt.Remove(ctx, id); err != nil {
		t.Fatalf("Remove of a running container: %v", err)
	}
	t.Logf("Remove (kill, delete task, container and snapshot) took %s", time.Since(start).Round(time.Millisecond))
	if _, err := find(ctx, rt, id); !isNotFoundErr(err) {
		t.Errorf("container still listed: %v", err)
	}
	if _, err := snapshots.Stat(nctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot after Remove: %v, want not found", err)
	}
	if err := rt.Remove(ctx, id); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := rt.Start(ctx, id, filepath.Join(t.TempDir(), "x.log")); !errors.Is(err, reconcile.ErrNotFound) {
		t.Errorf("Start of a removed container: got %v, want ErrNotFound", err)
	}
}

func TestCreateWithoutImage(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)
	err := rt.Create(ctx, reconcile.ContainerSpec{ID: uniqueID("noimage"), Image: env.registry.Addr + "/flotilla/never-pulled:v1"})
	if !errors.Is(err, reconcile.ErrNotFound) {
		t.Fatalf("Create without the image: got %v, want ErrNotFound", err)
	}
}

// TestContainerdRestart restarts the shared containerd: the running
// container's shim survives, List still reports it, and Exits resubscribes.
func TestContainerdRestart(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, 2*time.Minute)
	exits := rt.Exits(ctx)
	longID := uniqueID("survivor")
	run(t, rt, reconcile.ContainerSpec{ID: longID, Command: []string{"sleep", "1000"}})
	before := waitState(t, rt, longID, reconcile.TaskRunning)

	start := time.Now()
	if err := env.ctd.Restart(ctx); err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
	t.Logf("containerd restart took %s", time.Since(start).Round(time.Millisecond))

	after := waitState(t, rt, longID, reconcile.TaskRunning)
	if after.Pid != before.Pid || !after.StartedAt.Equal(before.StartedAt) {
		t.Errorf("after restart %+v, before %+v: want the same task", after, before)
	}

	// A new exit is delivered once Exits has resubscribed. The adapter
	// gives no signal for that, so start the short container again until
	// an exit arrives (bounded).
	id := uniqueID("after-restart")
	logPath := run(t, rt, reconcile.ContainerSpec{ID: id, Command: []string{"sh", "-c", "exit 5"}})
	for attempt := 1; ; attempt++ {
		if e, ok := exitWithin(exits, id, 3*time.Second); ok {
			if e.ExitCode != 5 {
				t.Errorf("exit %+v, want code 5", e)
			}
			t.Logf("exit delivered after containerd restart (attempt %d, %s after restart)", attempt, time.Since(start).Round(time.Millisecond))
			break
		}
		if attempt == 5 {
			t.Fatal("no exit delivered after containerd restart")
		}
		waitState(t, rt, id, reconcile.TaskExited)
		if err := rt.Start(ctx, id, logPath); err != nil {
			t.Fatalf("start again: %v", err)
		}
	}

	if err := rt.Stop(ctx, longID, time.Second); err != nil {
		t.Errorf("Stop after containerd restart: %v", err)
	}
}

func exitWithin(exits <-chan reconcile.Exit, id string, d time.Duration) (reconcile.Exit, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-exits:
			if !ok {
				return reconcile.Exit{}, false
			}
			if e.ContainerID == id {
				return e, true
			}
		case <-timer.C:
			return reconcile.Exit{}, false
		}
	}
}

func TestNewFailsWhenContainerdIsDown(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	start := time.Now()
	_, err := New(ctx, Options{Socket: filepath.Join(t.TempDir(), "none.sock"), DialTimeout: time.Second})
	if err == nil {
		t.Fatal("New succeeded without containerd")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("New took %s to fail", took)
	}
}

func mutateConfig(img v1.Image, c v1.Config) (v1.Image, error) { return mutate.Config(img, c) }

// TestCreateAfterAStaleSnapshot: an agent killed after taking a
// container's snapshot but before recording the container leaves the
// snapshot behind. Creating the container again removes it and succeeds,
// instead of reporting "already exists" for a container that does not
// exist (which left the pod failing to start for good).
func TestCreateAfterAStaleSnapshot(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)
	ensure(t, rt, env.busybox)
	id := uniqueID("stale")

	client, err := containerd.New(env.ctd.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nctx := namespaces.WithNamespace(ctx, testNamespace)
	img, err := client.GetImage(nctx, env.busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Unpack(nctx, DefaultSnapshotter); err != nil {
		t.Fatal(err)
	}
	diffIDs, err := img.RootFS(nctx)
	if err != nil {
		t.Fatal(err)
	}
	parent := identity.ChainID(diffIDs).String()
	if _, err := client.SnapshotService(DefaultSnapshotter).Prepare(nctx, id, parent); err != nil {
		t.Fatalf("prepare the stale snapshot: %v", err)
	}

	run(t, rt, reconcile.ContainerSpec{ID: id, Image: env.busybox, Command: []string{"sleep", "1000"}})
	waitState(t, rt, id, reconcile.TaskRunning)
	if err := rt.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
}
