package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/probe"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

type harness struct {
	t       *testing.T
	clock   *fakeClock
	rt      *fakeRuntime
	hist    *memHistory
	desired *snapshotHolder
	rec     *Reconciler
	reports []wire.PodStatusReport
	mu      sync.Mutex
	events  []wire.Event
	// net, if set before newReconciler, is the pod network.
	net PodNetwork
}

func (h *harness) eventReasons() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e.Reason)
	}
	h.events = nil
	return out
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, clock: &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, hist: newMemHistory(), desired: &snapshotHolder{}}
	h.rt = newFakeRuntime(h.clock.Now)
	h.rec = h.newReconciler()
	return h
}

func (h *harness) newReconciler() *Reconciler {
	return New(Config{
		Runtime: h.rt, History: h.hist, Desired: h.desired.get,
		Report: func(r wire.PodStatusReport) { h.reports = append(h.reports, r) },
		Event: func(e wire.Event) {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
		},
		DataDir: h.t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: h.clock.Now,
		Network: h.net, ResolvConf: h.resolvConf(),
	})
}

// resolvConf is the node's resolv.conf the harness's pods' are made from.
func (h *harness) resolvConf() string {
	path := filepath.Join(h.t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("search lan\nnameserver 192.0.2.53\n"), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// sync runs one pass and waits for the workers it started, then one more
// pass so that status reflects the workers' results.
func (h *harness) sync() time.Time {
	h.rec.Sync(context.Background())
	h.rec.wg.Wait()
	next := h.rec.Sync(context.Background())
	h.rec.wg.Wait()
	return next
}

func (h *harness) lastStatus(pod string) api.PodStatus {
	h.t.Helper()
	if len(h.reports) == 0 {
		h.t.Fatalf("no status reported")
	}
	for _, p := range h.reports[len(h.reports)-1].Pods {
		if p.Name == pod {
			return p.Status
		}
	}
	h.t.Fatalf("pod %s not in the last report", pod)
	return api.PodStatus{}
}

// restartCalls is what a restart asks of the runtime: a new run's
// container, its start, then the removal of the exited run.
var restartCalls = []string{"create-next main", "start main", "remove main"}

func pod(name, image string, policy api.RestartPolicy) wire.SnapshotPod {
	spec := api.PodSpec{
		RestartPolicy: policy,
		Containers:    []api.Container{{Name: "main", Image: image, ImagePullPolicy: api.PullIfNotPresent}},
	}
	return wire.SnapshotPod{UID: "uid-" + name, Name: name, Namespace: "default", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
}

func TestCreatesAndStartsDesiredPods(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	want := []string{"pull reg/web:v1", "create main", "start main"}
	if got := h.rt.takeCalls(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	c, ok := h.rt.get(ContainerID(&p, "main"))
	if !ok || c.State != TaskRunning {
		t.Fatalf("container not running: %+v", c)
	}
	for _, l := range []string{LabelPodUID, LabelPodName, LabelPodNamespace, LabelSpecHash, LabelContainer, LabelRevision} {
		if c.Labels[l] == "" {
			t.Errorf("label %s missing", l)
		}
	}
	st := h.lastStatus("web")
	if st.Phase != api.PodRunning || !st.ContainerStatuses[0].Ready {
		t.Fatalf("status = %+v", st)
	}
	if h.reports[len(h.reports)-1].ObservedRevision != 1 {
		t.Fatalf("observed revision not reported")
	}
	// A second pass with nothing changed does nothing and reports nothing new.
	n := len(h.reports)
	h.sync()
	if calls := h.rt.takeCalls(); len(calls) != 0 {
		t.Fatalf("idle pass made calls %v", calls)
	}
	if len(h.reports) != n {
		t.Fatalf("idle pass reported again")
	}
}

func TestReadoptsRunningContainers(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.rt.takeCalls()
	// A new agent process: fresh reconciler, same runtime and history.
	h.rec = h.newReconciler()
	h.sync()
	if calls := h.rt.takeCalls(); len(calls) != 0 {
		t.Fatalf("restarted agent touched running containers: %v", calls)
	}
}

func TestRestartBackoff(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	id := ContainerID(&p, "main")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.rt.takeCalls()

	// First crash: restarted at once.
	h.clock.Advance(time.Second)
	h.rt.exit(h.rt.current(&p, "main"), 1)
	h.sync()
	// A new run is created and started, and only then the exited one removed.
	if got := h.rt.takeCalls(); !slices.Equal(got, restartCalls) {
		t.Fatalf("first crash: calls = %v, want %v", got, restartCalls)
	}
	if cur := h.rt.current(&p, "main"); cur == id {
		t.Fatalf("restarted in the exited container %s, want a new run", cur)
	}
	if rc := h.lastStatus("web").ContainerStatuses[0].RestartCount; rc != 1 {
		t.Fatalf("restartCount = %d, want 1", rc)
	}

	// Second crash: waits 10 s, reports CrashLoopBackOff meanwhile.
	h.clock.Advance(time.Second)
	h.rt.exit(h.rt.current(&p, "main"), 2)
	next := h.sync()
	if got := h.rt.takeCalls(); len(got) != 0 {
		t.Fatalf("second crash restarted at once: %v", got)
	}
	if want := h.clock.Now().Add(10 * time.Second); !next.Equal(want) {
		t.Fatalf("next wake = %v, want %v", next, want)
	}
	st := h.lastStatus("web").ContainerStatuses[0]
	if st.State.Waiting == nil || st.State.Waiting.Reason != reasonCrashLoop {
		t.Fatalf("state = %+v, want CrashLoopBackOff", st.State)
	}
	if st.LastState.Terminated == nil || st.LastState.Terminated.ExitCode != 2 {
		t.Fatalf("lastState = %+v, want exit code 2", st.LastState)
	}
	if h.lastStatus("web").Phase != api.PodRunning {
		t.Fatalf("crash-looping pod phase = %s, want Running", h.lastStatus("web").Phase)
	}

	// The back-off survives an agent restart.
	h.rec = h.newReconciler()
	h.sync()
	if got := h.rt.takeCalls(); len(got) != 0 {
		t.Fatalf("restarted agent ignored the back-off: %v", got)
	}
	h.clock.Advance(10 * time.Second)
	h.sync()
	if got := h.rt.takeCalls(); !slices.Equal(got, restartCalls) {
		t.Fatalf("after back-off: calls = %v", got)
	}

	// Third crash: 20 s.
	h.clock.Advance(time.Second)
	h.rt.exit(h.rt.current(&p, "main"), 1)
	if next := h.sync(); !next.Equal(h.clock.Now().Add(20 * time.Second)) {
		t.Fatalf("third back-off ends %v, want +20s", next.Sub(h.clock.Now()))
	}
}

func TestBackoffResetsAfterCleanRun(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	for i := 0; i < 3; i++ { // crash loop builds up back-off
		h.clock.Advance(time.Second)
		h.rt.exit(h.rt.current(&p, "main"), 1)
		h.sync()
		h.clock.Advance(5 * time.Minute)
		h.sync()
	}
	h.rt.takeCalls()
	h.clock.Advance(11 * time.Minute) // a clean run
	h.rt.exit(h.rt.current(&p, "main"), 1)
	h.sync()
	if got := h.rt.takeCalls(); !slices.Equal(got, restartCalls) {
		t.Fatalf("after a clean run the restart should be immediate, calls = %v", got)
	}
}

func TestBackoffDelays(t *testing.T) {
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 300 * time.Second, 300 * time.Second}
	for n, w := range want {
		if got := backoffDelay(n); got != w {
			t.Errorf("backoffDelay(%d) = %s, want %s", n, got, w)
		}
	}
}

func TestRestartPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy    api.RestartPolicy
		exit      int32
		restarted bool
		phase     api.PodPhase
	}{
		{api.RestartAlways, 0, true, api.PodRunning},
		{api.RestartAlways, 1, true, api.PodRunning},
		{api.RestartOnFailure, 0, false, api.PodSucceeded},
		{api.RestartOnFailure, 1, true, api.PodRunning},
		{api.RestartNever, 0, false, api.PodSucceeded},
		{api.RestartNever, 3, false, api.PodFailed},
	} {
		t.Run(fmt.Sprintf("%s/exit%d", tc.policy, tc.exit), func(t *testing.T) {
			h := newHarness(t)
			p := pod("job", "reg/job:v1", tc.policy)
			h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
			h.sync()
			h.rt.takeCalls()
			h.rt.exit(ContainerID(&p, "main"), tc.exit)
			h.sync()
			restarted := slices.Equal(h.rt.takeCalls(), restartCalls)
			if restarted != tc.restarted {
				t.Fatalf("restarted = %v, want %v", restarted, tc.restarted)
			}
			if ph := h.lastStatus("job").Phase; ph != tc.phase {
				t.Fatalf("phase = %s, want %s", ph, tc.phase)
			}
		})
	}
}

func TestSpecChangeReplacesPodAfterPullingNewImage(t *testing.T) {
	h := newHarness(t)
	old := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{old}})
	h.sync()
	h.rt.takeCalls()

	next := pod("web", "reg/web:v2", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{next}})
	h.sync()
	want := []string{"pull reg/web:v2", "create main", "stop main 30s", "remove main", "start main"}
	if got := h.rt.takeCalls(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if _, ok := h.rt.get(ContainerID(&old, "main")); ok {
		t.Fatalf("old container still there")
	}
	if c, ok := h.rt.get(ContainerID(&next, "main")); !ok || c.State != TaskRunning || c.Image != "reg/web:v2" {
		t.Fatalf("new container = %+v", c)
	}
	if h.lastStatus("web").SpecHash != next.SpecHash {
		t.Fatalf("status does not carry the new spec hash")
	}
}

func TestFailedPullKeepsOldPodRunning(t *testing.T) {
	h := newHarness(t)
	old := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{old}})
	h.sync()
	h.rt.pullErr["reg/web:bad"] = fmt.Errorf("pull reg/web:bad: %w", ErrImagePull)
	bad := pod("web", "reg/web:bad", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{bad}})
	h.sync()
	if c, ok := h.rt.get(ContainerID(&old, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("old container stopped although the new image failed to pull: %+v", c)
	}
}

func TestImagePullBackOff(t *testing.T) {
	h := newHarness(t)
	h.rt.pullErr["reg/missing:v1"] = fmt.Errorf("pull reg/missing:v1: %w", ErrImagePull)
	p := pod("web", "reg/missing:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.rec.Sync(context.Background())
	h.rec.wg.Wait()
	h.rec.Sync(context.Background()) // reports ErrImagePull → ImagePullBackOff while backing off
	h.rec.wg.Wait()
	st := h.lastStatus("web")
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != reasonImagePullBack {
		t.Fatalf("state = %+v, want ImagePullBackOff", st.ContainerStatuses[0].State)
	}
	if st.Phase != api.PodPending {
		t.Fatalf("phase = %s, want Pending", st.Phase)
	}
	h.rt.takeCalls()
	h.sync()
	if calls := h.rt.takeCalls(); len(calls) != 0 {
		t.Fatalf("pulled again inside the back-off: %v", calls)
	}
	delete(h.rt.pullErr, "reg/missing:v1")
	h.clock.Advance(11 * time.Second)
	h.sync()
	if c, ok := h.rt.get(ContainerID(&p, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("not running after the image appeared: %+v", c)
	}
}

func TestRemovesUndesiredAndForeignContainers(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	grace := int64(5)
	p.Spec.TerminationGracePeriodSeconds = &grace
	p.SpecHash = api.HashPodSpec(&p.Spec)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.rt.containers["stray"] = &Container{ID: "stray", Labels: map[string]string{}, State: TaskRunning}
	h.rt.takeCalls()
	if err := h.hist.SaveRestarts(ContainerID(&p, "main"), RestartRecord{Restarts: 3}); err != nil {
		t.Fatal(err)
	}
	h.desired.set(wire.Snapshot{Revision: 2})
	h.sync()
	calls := h.rt.takeCalls()
	for _, want := range []string{"stop main 5s", "remove main"} {
		if !slices.Contains(calls, want) {
			t.Errorf("calls %v lack %q", calls, want)
		}
	}
	if len(h.rt.containers) != 0 {
		t.Fatalf("containers left: %v", h.rt.containers)
	}
	if rec, _ := h.hist.Restarts(ContainerID(&p, "main")); rec.Restarts != 0 {
		t.Fatalf("history of removed container kept")
	}
	if len(h.reports[len(h.reports)-1].Pods) != 0 {
		t.Fatalf("removed pod still reported")
	}
}

func TestContainerSpecFromPod(t *testing.T) {
	h := newHarness(t)
	hostDir := t.TempDir()
	spec := api.PodSpec{
		Containers: []api.Container{{
			Name: "app", Image: "reg/app:v1", Command: []string{"/bin/app"}, Args: []string{"-v"},
			Env:        []api.EnvVar{{Name: "A", Value: "1"}},
			WorkingDir: "/work",
			Resources: api.ResourceRequirements{
				Limits:   api.ResourceList{"cpu": "500m", "memory": "64Mi"},
				Requests: api.ResourceList{"cpu": "100m"},
			},
			VolumeMounts: []api.VolumeMount{{Name: "host", MountPath: "/host", ReadOnly: true}, {Name: "scratch", MountPath: "/scratch"}},
		}},
		Volumes: []api.Volume{
			{Name: "host", HostPath: &api.HostPathVolumeSource{Path: hostDir}},
			{Name: "scratch", EmptyDir: &api.EmptyDirVolumeSource{}},
		},
	}
	p := wire.SnapshotPod{UID: "u1", Name: "app", Namespace: "default", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
	cs, err := h.rec.containerSpec(&p, &p.Spec.Containers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	if cs.CPULimitMilli != 500 || cs.CPURequestMilli != 100 || cs.MemoryLimitBytes != 64<<20 {
		t.Errorf("resources = %d/%d/%d", cs.CPULimitMilli, cs.CPURequestMilli, cs.MemoryLimitBytes)
	}
	if !slices.Equal(cs.Env, []string{"A=1"}) || cs.WorkingDir != "/work" || cs.NetworkNamespace != "" {
		t.Errorf("spec = %+v", cs)
	}
	if len(cs.Mounts) != 2 || cs.Mounts[0].Source != hostDir || !cs.Mounts[0].ReadOnly ||
		!strings.HasSuffix(cs.Mounts[1].Source, "/pods/u1/volumes/scratch") {
		t.Errorf("mounts = %+v", cs.Mounts)
	}
	bad := p
	bad.Spec.Containers = []api.Container{{Name: "app", Image: "x", VolumeMounts: []api.VolumeMount{{Name: "nope", MountPath: "/x"}}}}
	if _, err := h.rec.containerSpec(&bad, &bad.Spec.Containers[0], 0); err == nil {
		t.Errorf("mount of an undeclared volume accepted")
	}
}

var containerdID = regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`)

func TestContainerIDs(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, p := range []wire.SnapshotPod{
		{UID: "1", Name: "web", Namespace: "default", SpecHash: "h1"},
		{UID: "2", Name: long + "." + long, Namespace: long, SpecHash: "h1"},
		{UID: "3", Name: "a--b", Namespace: "x-", SpecHash: "h"},
	} {
		id := ContainerID(&p, "main-")
		if len(id) > 76 || !containerdID.MatchString(id) {
			t.Errorf("ContainerID(%s) = %q is not a valid containerd ID", p.Name, id)
		}
		if ContainerID(&p, "main-") != id {
			t.Errorf("not deterministic")
		}
		other := p
		other.SpecHash = "h2"
		if ContainerID(&other, "main-") == id {
			t.Errorf("spec hash does not change the ID")
		}
	}
}

func TestRunWakesOnExit(t *testing.T) {
	h := newHarness(t)
	h.rec.cfg.Now = time.Now
	h.rec.now = time.Now
	h.rt.now = time.Now
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.rec.cfg.Resync = time.Hour // only events may wake it
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.rec.Run(ctx) }()
	id := ContainerID(&p, "main")
	waitFor(t, func() bool { c, ok := h.rt.get(id); return ok && c.State == TaskRunning })
	h.rt.exit(id, 1)
	h.rt.exits <- Exit{ContainerID: id, ExitCode: 1}
	waitFor(t, func() bool {
		c, _ := h.rt.get(h.rt.current(&p, "main"))
		return c.ID != id && c.State == TaskRunning
	})
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFailedStartBacksOff(t *testing.T) {
	h := newHarness(t)
	h.rt.startErr = errors.New("runc: exec format error")
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.rt.takeCalls()
	for i := 0; i < 5; i++ {
		h.sync()
	}
	if calls := h.rt.takeCalls(); len(calls) != 0 {
		t.Fatalf("a failing start was retried inside its back-off: %v", calls)
	}
	st := h.lastStatus("web").ContainerStatuses[0]
	if st.State.Waiting == nil || st.State.Waiting.Reason != reasonRunError || !strings.Contains(st.State.Waiting.Message, "exec format") {
		t.Fatalf("state = %+v", st.State)
	}
	h.rt.startErr = nil
	h.clock.Advance(11 * time.Second)
	h.sync()
	if c, _ := h.rt.get(ContainerID(&p, "main")); c.State != TaskRunning {
		t.Fatalf("not started after the back-off: %+v", c)
	}
}

func TestEventsTellWhatHappened(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	id := ContainerID(&p, "main")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	if got := h.eventReasons(); !slices.Equal(got, []string{"Pulled", "Created", "Started"}) {
		t.Fatalf("start events = %v", got)
	}
	h.clock.Advance(time.Second)
	h.rt.exit(id, 3)
	h.sync()
	if got := h.eventReasons(); !slices.Equal(got, []string{"Exited", "Restarted"}) {
		t.Fatalf("first crash events = %v", got)
	}
	h.clock.Advance(time.Second)
	h.rt.exit(h.rt.current(&p, "main"), 3)
	h.sync()
	h.sync() // no repeats on later passes
	if got := h.eventReasons(); !slices.Equal(got, []string{"Exited", "BackOff"}) {
		t.Fatalf("second crash events = %v", got)
	}
	h.clock.Advance(11 * time.Second) // past the back-off: running again
	h.sync()
	h.eventReasons()
	h.desired.set(wire.Snapshot{Revision: 2})
	h.sync()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) != 1 || h.events[0].Reason != "Killing" {
		t.Fatalf("removal events = %+v", h.events)
	}
	if e := h.events[0]; e.Object.Name != "web" || e.Object.Kind != api.KindPod || e.Object.FieldPath != "spec.containers{main}" || e.Object.UID != p.UID {
		t.Fatalf("Killing event = %+v", e)
	}
}

// fakeProber reports whatever status the test sets.
type fakeProber struct {
	mu      sync.Mutex
	status  map[string]probe.Status
	updated []probe.Container
}

func (f *fakeProber) Update(cs []probe.Container) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updated = cs
}

func (f *fakeProber) Status(id string) probe.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := f.status[id]; ok {
		return st
	}
	return probe.Status{Started: true, Ready: true}
}

func (f *fakeProber) set(id string, st probe.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[id] = st
}

func TestProbesDriveReadinessAndLivenessRestarts(t *testing.T) {
	h := newHarness(t)
	pr := &fakeProber{status: map[string]probe.Status{}}
	h.rec.cfg.Prober = pr
	p := pod("web", "reg/web:v1", api.RestartAlways)
	p.Spec.Containers[0].Ports = []api.ContainerPort{{Name: "http", ContainerPort: 8080}}
	p.Spec.Containers[0].LivenessProbe = &api.Probe{ProbeHandler: api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Path: "/", Port: api.FromString("http")}}}
	p.SpecHash = api.HashPodSpec(&p.Spec)
	id := ContainerID(&p, "main")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	pr.set(id, probe.Status{Started: true, Ready: false})
	h.sync()
	if len(pr.updated) != 1 || pr.updated[0].ID != id || pr.updated[0].Ports["http"] != 8080 || pr.updated[0].Liveness == nil {
		t.Fatalf("prober got %+v", pr.updated)
	}
	st := h.lastStatus("web")
	if st.ContainerStatuses[0].Ready || st.Conditions[0].Status != api.ConditionFalse {
		t.Fatalf("not-ready container reported ready: %+v", st)
	}
	pr.set(id, probe.Status{Started: true, Ready: true})
	h.sync()
	if st := h.lastStatus("web"); !st.ContainerStatuses[0].Ready || st.Conditions[0].Status != api.ConditionTrue {
		t.Fatalf("ready container reported not ready: %+v", st)
	}
	h.rt.takeCalls()
	h.eventReasons()

	// Liveness fails: the container is stopped, then restarted at once
	// (its first crash), and the event says why.
	pr.set(id, probe.Status{Started: true, Ready: true, LivenessFailed: true, Message: "Liveness probe failed: HTTP probe failed with statuscode: 500"})
	h.sync()
	pr.set(id, probe.Status{Started: true, Ready: true})
	h.sync()
	calls := h.rt.takeCalls()
	if len(calls) < 2 || !strings.HasPrefix(calls[0], "stop main") || !slices.Equal(calls[1:], restartCalls) {
		t.Fatalf("calls = %v, want a stop then a start", calls)
	}
	if rc := h.lastStatus("web").ContainerStatuses[0].RestartCount; rc != 1 {
		t.Fatalf("restartCount = %d", rc)
	}
	if got := h.eventReasons(); !slices.Contains(got, "Unhealthy") || !slices.Contains(got, "Killing") || !slices.Contains(got, "Restarted") {
		t.Fatalf("events = %v", got)
	}
}

func TestContainerWhoseTaskVanishedCountsAsARestart(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	id := ContainerID(&p, "main")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	// A reboot (or a stop that deleted the task): the container remains,
	// with the start time it had, but has no task.
	h.rt.mu.Lock()
	h.rt.containers[id].State = TaskNone
	h.rt.mu.Unlock()
	h.rt.takeCalls()
	h.clock.Advance(time.Second)
	h.sync()
	if calls := h.rt.takeCalls(); !slices.Equal(calls, restartCalls) {
		t.Fatalf("calls = %v", calls)
	}
	st := h.lastStatus("web").ContainerStatuses[0]
	if st.RestartCount != 1 || st.LastState.Terminated == nil {
		t.Fatalf("status = %+v", st)
	}
}

// memRollbacks is an in-memory Rollbacks.
type memRollbacks struct {
	mu   sync.Mutex
	good map[string]wire.SnapshotPod
	rej  map[string]Rejection
}

func newMemRollbacks() *memRollbacks {
	return &memRollbacks{good: map[string]wire.SnapshotPod{}, rej: map[string]Rejection{}}
}

func (m *memRollbacks) LastGood(uid string) (wire.SnapshotPod, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.good[uid]
	return p, ok, nil
}
func (m *memRollbacks) SaveGood(p wire.SnapshotPod) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.good[p.UID] = p
	return nil
}
func (m *memRollbacks) Rejection(uid string) (Rejection, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rej[uid]
	return r, ok, nil
}
func (m *memRollbacks) SaveRejection(uid string, r Rejection) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rej[uid] = r
	return nil
}
func (m *memRollbacks) Forget(uid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.good, uid)
	delete(m.rej, uid)
	return nil
}

func withDeadline(p wire.SnapshotPod, secs int32) wire.SnapshotPod {
	p.ProgressDeadlineSeconds = secs
	return p
}

func TestAgentRevertsACrashLoopingUpdateOnItsOwn(t *testing.T) {
	h := newHarness(t)
	rb := newMemRollbacks()
	h.rec.cfg.Rollbacks = rb
	good := withDeadline(pod("web", "reg/web:v1", api.RestartAlways), 600)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{good}})
	h.sync()
	if _, ok, _ := rb.LastGood(good.UID); ok {
		t.Fatalf("a spec counted as good the moment it started")
	}
	h.clock.Advance(goodAfter + time.Second)
	h.sync()
	if g, ok, _ := rb.LastGood(good.UID); !ok || g.SpecHash != good.SpecHash {
		t.Fatalf("the Ready spec was not remembered as good")
	}
	bad := withDeadline(pod("web", "reg/web:v2", api.RestartAlways), 600)
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{bad}})
	h.sync()
	badID := ContainerID(&bad, "main")
	for i := 0; i < crashLoopRestarts+2; i++ {
		cur := h.rt.current(&bad, "main")
		if cur == "" {
			break // reverted
		}
		h.rt.exit(cur, 1)
		h.clock.Advance(5 * time.Minute) // past any back-off
		h.sync()
	}
	h.sync()
	if h.rt.current(&bad, "main") != "" {
		rec, _ := h.hist.Restarts(badID)
		rej, _, _ := rb.Rejection(bad.UID)
		t.Fatalf("the crash-looping spec's container is still there (restarts %d, rejection %+v, calls %v)", rec.Restarts, rej, h.rt.takeCalls())
	}
	c, ok := h.rt.get(ContainerID(&good, "main"))
	if !ok || c.State != TaskRunning {
		t.Fatalf("the good spec is not running again: %+v", c)
	}
	rep := h.reports[len(h.reports)-1].Pods[0]
	if rep.Reverted == nil || rep.Reverted.FromSpecHash != bad.SpecHash || rep.Reverted.ToSpecHash != good.SpecHash || rep.SpecHash != good.SpecHash {
		t.Fatalf("report = %+v, reverted %+v", rep, rep.Reverted)
	}
	if !slices.Contains(h.eventReasons(), "RolledBack") {
		t.Fatal("no RolledBack event")
	}
	// A new spec from the hub is tried again.
	next := withDeadline(pod("web", "reg/web:v3", api.RestartAlways), 600)
	h.desired.set(wire.Snapshot{Revision: 3, Pods: []wire.SnapshotPod{next}})
	h.sync()
	if c, ok := h.rt.get(ContainerID(&next, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("a new spec after a revert was not tried: %+v", c)
	}
}

func TestAgentRevertsAfterTheProgressDeadline(t *testing.T) {
	h := newHarness(t)
	rb := newMemRollbacks()
	h.rec.cfg.Rollbacks = rb
	pr := &fakeProber{status: map[string]probe.Status{}}
	h.rec.cfg.Prober = pr
	good := withDeadline(pod("web", "reg/web:v1", api.RestartAlways), 60)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{good}})
	h.sync()
	h.clock.Advance(goodAfter + time.Second)
	h.sync()
	bad := withDeadline(pod("web", "reg/web:v2", api.RestartAlways), 60)
	pr.set(ContainerID(&bad, "main"), probe.Status{Started: true, Ready: false})
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{bad}})
	h.sync()
	h.clock.Advance(30 * time.Second)
	h.sync()
	if rep := h.reports[len(h.reports)-1].Pods[0]; rep.Reverted != nil {
		t.Fatalf("reverted before the deadline")
	}
	h.clock.Advance(31 * time.Second)
	h.sync()
	h.sync()
	if rep := h.reports[len(h.reports)-1].Pods[0]; rep.Reverted == nil || !strings.Contains(rep.Reverted.Reason, "progress deadline") {
		t.Fatalf("not reverted after the deadline: %+v", rep)
	}
	if c, ok := h.rt.get(ContainerID(&good, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("good spec not running: %+v", c)
	}
}

func TestPrePullStagesImagesWithoutTouchingThePod(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.rt.takeCalls()
	p.PrePull = []string{"reg/web:v2"}
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{p}})
	h.sync()
	if calls := h.rt.takeCalls(); !slices.Equal(calls, []string{"pull reg/web:v2"}) {
		t.Fatalf("calls = %v", calls)
	}
	if rep := h.reports[len(h.reports)-1].Pods[0]; !rep.PrePulled || rep.Status.Phase != api.PodRunning {
		t.Fatalf("report = %+v", rep)
	}
}

// TestStartingARunningContainerIsNotAFailure: a start planned from a
// listing taken just before another start finished finds the task running.
// That is the state it wanted: no Failed event, no back-off, no restart
// counted.
func TestStartingARunningContainerIsNotAFailure(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	id := ContainerID(&p, "main")
	if c, ok := h.rt.get(id); !ok || c.State != TaskRunning {
		t.Fatalf("not running: %+v", c)
	}
	h.eventReasons()
	h.rt.mu.Lock()
	h.rt.startErr = fmt.Errorf("start container %s: task is running: %w", id, ErrAlreadyExists)
	h.rt.mu.Unlock()
	h.rec.start(context.Background(), &p, id, id)
	// A restart counts itself before it starts, and takes it back.
	counted := RestartRecord{Restarts: 1, Backoffs: 1}
	if err := h.hist.SaveRestarts(id, counted); err != nil {
		t.Fatal(err)
	}
	ok, ev := h.rec.runTask(context.Background(), &p, id, id, counted, true)
	h.rec.emitAll(ev)
	if !ok {
		t.Fatal("a start that found its task running reported it not running")
	}
	if got := h.eventReasons(); len(got) != 0 {
		t.Fatalf("events %v, want none", got)
	}
	rec, err := h.hist.Restarts(id)
	if err != nil || rec.Restarts != 0 || rec.Backoffs != 0 {
		t.Fatalf("restart history %+v, %v: a start that found its task running counted as a restart", rec, err)
	}
	h.rt.mu.Lock()
	h.rt.startErr = nil
	h.rt.mu.Unlock()
	h.sync()
	if st := h.lastStatus("web"); st.Phase != api.PodRunning || st.ContainerStatuses[0].State.Waiting != nil {
		t.Fatalf("status %+v", st)
	}
}

// TestRestartCreatesANewRun: a restart runs in a container of its own, in
// the pod's shim group, numbered by the restart, and the exited run goes.
func TestRestartCreatesANewRun(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	key := ContainerID(&p, "main")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.clock.Advance(time.Second)
	h.rt.exit(key, 1)
	h.sync()
	cur := h.rt.current(&p, "main")
	if want := RunID(&p, "main", 1); cur != want {
		t.Fatalf("current run %q, want %q", cur, want)
	}
	if _, ok := h.rt.get(key); ok {
		t.Fatalf("the exited run %s is still there", key)
	}
	h.rt.mu.Lock()
	spec := h.rt.specs[cur]
	h.rt.mu.Unlock()
	if spec.ShimGroup != p.UID || spec.Labels[LabelRun] != "1" {
		t.Fatalf("new run's spec: group %q, run label %q", spec.ShimGroup, spec.Labels[LabelRun])
	}
	st := h.lastStatus("web").ContainerStatuses[0]
	if st.RestartCount != 1 || st.ContainerID != "containerd://"+cur || st.State.Running == nil {
		t.Fatalf("status = %+v", st)
	}
	// Its logs go to the file of restart 1, for logs --previous to find run 0's.
	h.rt.mu.Lock()
	logPath := h.rt.logs[cur]
	h.rt.mu.Unlock()
	if !strings.HasSuffix(logPath, "/main/1.log") {
		t.Fatalf("new run logs to %s", logPath)
	}
	// The pod's removal forgets the history that all its runs shared.
	h.desired.set(wire.Snapshot{Revision: 2})
	h.sync()
	if rec, _ := h.hist.Restarts(key); rec.Restarts != 0 {
		t.Fatalf("history kept after the pod went: %+v", rec)
	}
}

// TestAgentKilledMidRestartNeitherDuplicatesNorRecounts: an agent killed
// between a restart's steps leaves the exited run beside the new one,
// created or started. A new agent finishes the restart: it starts the new
// run if needed, removes the old one, creates nothing and counts nothing.
func TestAgentKilledMidRestartNeitherDuplicatesNorRecounts(t *testing.T) {
	for _, started := range []bool{false, true} {
		t.Run(fmt.Sprintf("started=%v", started), func(t *testing.T) {
			h := newHarness(t)
			p := pod("web", "reg/web:v1", api.RestartAlways)
			key := ContainerID(&p, "main")
			h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
			h.sync()
			h.clock.Advance(time.Second)
			h.rt.exit(key, 1)
			// What the killed agent did: the exit and the restart counted,
			// the new run created (and maybe started); the old run left.
			rec := RestartRecord{}
			c, _ := h.rt.get(key)
			rec.recordExit(Termination{ExitCode: 1, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt})
			rec.Restarts, rec.Backoffs = 1, 1
			if err := h.hist.SaveRestarts(key, rec); err != nil {
				t.Fatal(err)
			}
			cs, err := h.rec.containerSpec(&p, &p.Spec.Containers[0], 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.rt.Create(context.Background(), cs); err != nil {
				t.Fatal(err)
			}
			if started {
				if err := h.rt.Start(context.Background(), cs.ID, "/x"); err != nil {
					t.Fatal(err)
				}
			}
			h.rt.takeCalls()

			h.rec = h.newReconciler()
			h.sync()
			want := []string{"start main", "remove main"}
			if started {
				want = []string{"remove main"}
			}
			if got := h.rt.takeCalls(); !slices.Equal(got, want) {
				t.Fatalf("calls = %v, want %v", got, want)
			}
			list, _ := h.rt.List(context.Background())
			if len(list) != 1 || list[0].ID != cs.ID || list[0].State != TaskRunning {
				t.Fatalf("containers = %+v, want only %s running", list, cs.ID)
			}
			if st := h.lastStatus("web").ContainerStatuses[0]; st.RestartCount != 1 {
				t.Fatalf("restartCount = %d, want 1", st.RestartCount)
			}
		})
	}
}

func TestRunIDs(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, p := range []wire.SnapshotPod{
		{UID: "1", Name: "web", Namespace: "default", SpecHash: "h1"},
		{UID: "2", Name: long + "." + long, Namespace: long, SpecHash: "h1"},
	} {
		key := ContainerID(&p, "main")
		seen := map[string]bool{}
		for _, run := range []int32{0, 1, 9, 10, 9999, 10000, 1 << 30, 2147483647} {
			id := RunID(&p, "main", run)
			if len(id) > 76 || !containerdID.MatchString(id) {
				t.Errorf("RunID(%s, %d) = %q is not a valid containerd ID", p.Name, run, id)
			}
			if seen[id] {
				t.Errorf("RunID(%s, %d) = %q repeats", p.Name, run, id)
			}
			seen[id] = true
			c := Container{ID: id, Labels: map[string]string{LabelPodUID: p.UID, LabelPodName: p.Name, LabelPodNamespace: p.Namespace,
				LabelSpecHash: p.SpecHash, LabelContainer: "main", LabelRun: strconv.Itoa(int(run))}}
			if containerKey(c) != key || runOf(c) != run {
				t.Errorf("run %d: key %q run %d, want %q %d", run, containerKey(c), runOf(c), key, run)
			}
		}
		if RunID(&p, "main", 0) != key {
			t.Errorf("run 0 is not ContainerID")
		}
	}
}

// TestFirstRestartRecordsTheExitWithItsCount: the exit that a restart at
// once follows is written with the restart's count, in one write by the
// restart's worker, and reported by it, before its Restarted; a pass that
// runs meanwhile neither records nor restarts it again.
func TestFirstRestartRecordsTheExitWithItsCount(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	key := ContainerID(&p, "main")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.eventReasons()
	h.clock.Advance(time.Second)
	gate := make(chan struct{})
	h.rt.mu.Lock()
	h.rt.createGate = gate
	h.rt.mu.Unlock()
	h.rt.exit(key, 1)
	h.hist.mu.Lock()
	saves := h.hist.saves
	h.hist.mu.Unlock()

	h.rec.Sync(context.Background()) // spawns the restart, held in Create
	h.rec.Sync(context.Background()) // a pass while it is under way
	if got := h.eventReasons(); len(got) != 0 {
		t.Fatalf("events before the restart ran: %v", got)
	}
	close(gate)
	h.rec.wg.Wait()
	h.sync()
	if got := h.eventReasons(); !slices.Equal(got, []string{"Exited", "Restarted"}) {
		t.Fatalf("events = %v, want Exited then Restarted", got)
	}
	h.hist.mu.Lock()
	writes := h.hist.saves - saves
	h.hist.mu.Unlock()
	if writes != 1 {
		t.Fatalf("%d history writes for a first restart, want 1 (exit and count together)", writes)
	}
	rec, _ := h.hist.Restarts(key)
	if rec.Restarts != 1 || rec.Last == nil || rec.Last.ExitCode != 1 {
		t.Fatalf("history %+v, want the exit (code 1) and one restart", rec)
	}
	if calls := h.rt.takeCalls(); !slices.Equal(calls[len(calls)-3:], restartCalls) || strings.Count(strings.Join(calls, ","), "create") != 2 {
		t.Fatalf("calls = %v, want one restart", calls)
	}
}

// TestRestartFallsBackToThePodSpec: a next run that cannot be made from
// the exited one is created from the pod's spec, as a first start.
func TestRestartFallsBackToThePodSpec(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.rt.takeCalls()
	h.rt.mu.Lock()
	h.rt.nextErr = errors.New("snapshot gone")
	h.rt.mu.Unlock()
	h.clock.Advance(time.Second)
	h.rt.exit(ContainerID(&p, "main"), 1)
	h.sync()
	want := []string{"create-next main", "create main", "start main", "remove main"}
	if got := h.rt.takeCalls(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if cur := h.rt.current(&p, "main"); cur != RunID(&p, "main", 1) {
		t.Fatalf("current run %s", cur)
	}
	if st := h.lastStatus("web").ContainerStatuses[0]; st.RestartCount != 1 || st.State.Running == nil {
		t.Fatalf("status %+v", st)
	}
}

// TestUnreadableHistoryKeepsTheLastStatus: while the restart history
// cannot be read, the pod's status is not reported with its restarts
// forgotten: the last report stands, and the right one goes out once the
// history reads again.
func TestUnreadableHistoryKeepsTheLastStatus(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	h.clock.Advance(time.Second)
	h.rt.exit(h.rt.current(&p, "main"), 1)
	h.sync()
	if rc := h.lastStatus("web").ContainerStatuses[0].RestartCount; rc != 1 {
		t.Fatalf("restartCount = %d, want 1", rc)
	}
	h.hist.failReads(errors.New("badger: read failed"))
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{p}}) // a new revision to report
	if next := h.sync(); next.IsZero() || next.After(h.clock.Now().Add(time.Second)) {
		t.Errorf("next pass at %v, want within a second to report the status", next)
	}
	last := h.reports[len(h.reports)-1]
	if rc := last.Pods[0].Status.ContainerStatuses[0].RestartCount; rc != 1 || last.ObservedRevision != 1 {
		t.Fatalf("reported revision %d with restartCount %d while the history could not be read; want the last report (1, 1)",
			last.ObservedRevision, rc)
	}
	h.hist.failReads(nil)
	h.sync()
	if last := h.reports[len(h.reports)-1]; last.ObservedRevision != 2 || last.Pods[0].Status.ContainerStatuses[0].RestartCount != 1 {
		t.Fatalf("after the history reads again: %+v", last)
	}
}

// TestStateGoesWithItsPod: what the reconciler remembers of a pod (its
// waits, back-offs, workers) goes once the pod is neither desired nor on
// the board.
func TestStateGoesWithItsPod(t *testing.T) {
	h := newHarness(t)
	h.rt.pullErr["reg/missing:v1"] = fmt.Errorf("pull reg/missing:v1: %w", ErrImagePull)
	missing := pod("missing", "reg/missing:v1", api.RestartAlways)
	web := pod("web", "reg/web:v1", api.RestartAlways)
	web.PrePull = []string{"reg/missing:v1"}
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{missing, web}})
	h.syncs(2)
	h.rec.mu.Lock()
	n := len(h.rec.pods)
	h.rec.mu.Unlock()
	if n != 2 {
		t.Fatalf("state of %d pods, want 2 (a container waiting for its pull, a pre-pull waiting)", n)
	}
	h.desired.set(wire.Snapshot{Revision: 2})
	h.syncs(2)
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	if len(h.rec.pods) != 0 {
		for uid, s := range h.rec.pods {
			t.Errorf("pod %s: %+v", uid, *s)
		}
		t.Fatal("state left of pods that are gone")
	}
}
