package reconcile

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// fakeRuntime is an in-memory Runtime that records every call.
type fakeRuntime struct {
	mu         sync.Mutex
	now        func() time.Time
	containers map[string]*Container
	specs      map[string]ContainerSpec
	logs       map[string]string // container ID → log path of its last start
	images     map[string]bool
	pullErr    map[string]error
	startErr   error
	nextErr    error // CreateNextRun's failure
	// createErr fails Create for a container, by its name in the pod.
	createErr map[string]error
	// createGate, if set, holds every Create and CreateNextRun until it
	// is closed.
	createGate chan struct{}
	calls      []string
	exits      chan Exit
	// ran holds the containers whose task has started at least once;
	// madeFrom, each run that CreateNextRun made, and the run it copied.
	ran      map[string]bool
	madeFrom map[string]string
}

func newFakeRuntime(now func() time.Time) *fakeRuntime {
	return &fakeRuntime{
		now:        now,
		containers: map[string]*Container{},
		specs:      map[string]ContainerSpec{},
		logs:       map[string]string{},
		images:     map[string]bool{},
		pullErr:    map[string]error{},
		exits:      make(chan Exit, 16),
		ran:        map[string]bool{},
		madeFrom:   map[string]string{},
	}
}

func (f *fakeRuntime) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeRuntime) List(ctx context.Context) ([]Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Container
	for _, c := range f.containers {
		cp := *c
		cp.Labels = map[string]string{}
		for k, v := range c.Labels {
			cp.Labels[k] = v
		}
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// EnsureImage records "pull REF" for a call that would ask the registry
// (IfNotPresent and Always: the fake does not tell them apart), and
// "check REF" for policy Never, which only looks on the board.
func (f *fakeRuntime) EnsureImage(ctx context.Context, ref string, policy api.PullPolicy) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if policy == api.PullNever {
		f.record("check %s", ref)
		if !f.images[ref] {
			return "", fmt.Errorf("ensure image %s: %w", ref, ErrImageNeverPull)
		}
		return "sha256:" + ref, nil
	}
	f.record("pull %s", ref)
	if err := f.pullErr[ref]; err != nil {
		return "", err
	}
	f.images[ref] = true
	return "sha256:" + ref, nil
}

// pulls counts the recorded calls that asked the registry for ref, and
// takes the calls.
func (f *fakeRuntime) pulls(ref string) int {
	n := 0
	for _, c := range f.takeCalls() {
		if c == "pull "+ref {
			n++
		}
	}
	return n
}

// passGate waits for createGate, if set.
func (f *fakeRuntime) passGate() {
	f.mu.Lock()
	gate := f.createGate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (f *fakeRuntime) Create(ctx context.Context, spec ContainerSpec) error {
	f.passGate()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("create %s", spec.Labels[LabelContainer])
	if err := f.createErr[spec.Labels[LabelContainer]]; err != nil {
		return err
	}
	if _, ok := f.containers[spec.ID]; ok {
		return fmt.Errorf("create %s: %w", spec.ID, ErrAlreadyExists)
	}
	f.containers[spec.ID] = &Container{ID: spec.ID, Labels: spec.Labels, Image: spec.Image, State: TaskNone}
	f.specs[spec.ID] = spec
	return nil
}

func (f *fakeRuntime) CreateNextRun(ctx context.Context, from, id string, labels map[string]string, shimGroup string) error {
	f.passGate()
	f.mu.Lock()
	defer f.mu.Unlock()
	old, ok := f.containers[from]
	if !ok {
		return fmt.Errorf("create %s from %s: %w", id, from, ErrNotFound)
	}
	f.record("create-next %s", labels[LabelContainer])
	if f.nextErr != nil {
		return f.nextErr
	}
	if _, ok := f.containers[id]; ok {
		return fmt.Errorf("create %s: %w", id, ErrAlreadyExists)
	}
	f.containers[id] = &Container{ID: id, Labels: labels, Image: old.Image, State: TaskNone}
	f.madeFrom[id] = from
	spec := f.specs[from]
	spec.ID, spec.Labels, spec.ShimGroup = id, labels, shimGroup
	f.specs[id] = spec
	return nil
}

// Start takes the real runtime's three steps: a new task (the exited one
// deleted), the start-time label, the task's start.
func (f *fakeRuntime) Start(ctx context.Context, id, logPath string) error {
	if err := f.newTask(id, logPath); err != nil {
		return err
	}
	f.labelStart(id)
	f.startTask(id)
	return nil
}

// newTask is Start's first step: the container gets a created task.
func (f *fakeRuntime) newTask(id, logPath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return fmt.Errorf("start %s: %w", id, ErrNotFound)
	}
	f.record("start %s", c.Labels[LabelContainer])
	if f.startErr != nil {
		return f.startErr
	}
	f.logs[id] = logPath
	c.State = TaskCreated
	c.ExitCode = 0
	c.FinishedAt = time.Time{}
	return nil
}

// labelStart is Start's second step: the start time is recorded on the
// container (LabelStartedAt).
func (f *fakeRuntime) labelStart(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		c.StartedAt = f.now()
	}
}

// startTask is Start's last step: the task runs.
func (f *fakeRuntime) startTask(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		c.State = TaskRunning
		f.ran[id] = true
	}
}

func (f *fakeRuntime) Stop(ctx context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return nil
	}
	f.record("stop %s %s", c.Labels[LabelContainer], grace)
	if c.State == TaskRunning {
		c.State = TaskExited
		c.ExitCode = 137
		c.FinishedAt = f.now()
	}
	return nil
}

func (f *fakeRuntime) Remove(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.containers[id]; ok {
		f.record("remove %s", c.Labels[LabelContainer])
		delete(f.containers, id)
	}
	return nil
}

func (f *fakeRuntime) Exits(ctx context.Context) <-chan Exit { return f.exits }

// exit makes a running container exit with code.
func (f *fakeRuntime) exit(id string, code int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.containers[id]
	c.State = TaskExited
	c.ExitCode = code
	c.FinishedAt = f.now()
}

// current returns the ID of the newest run of a pod's container.
func (f *fakeRuntime) current(pod *wire.SnapshotPod, name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := ContainerID(pod, name)
	id, run := "", int32(-1)
	for _, c := range f.containers {
		if containerKey(*c) == key && runOf(*c) > run {
			id, run = c.ID, runOf(*c)
		}
	}
	return id
}

func (f *fakeRuntime) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.calls
	f.calls = nil
	return calls
}

func (f *fakeRuntime) get(id string) (Container, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.containers[id]
	if !ok {
		return Container{}, false
	}
	return *c, true
}

// memHistory is an in-memory History.
type memHistory struct {
	mu    sync.Mutex
	recs  map[string]RestartRecord
	saves int // SaveRestarts calls: each is a synced write on a board
	// readErr, if set, fails Restarts.
	readErr error
}

func newMemHistory() *memHistory { return &memHistory{recs: map[string]RestartRecord{}} }

func (h *memHistory) Restarts(id string) (RestartRecord, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readErr != nil {
		return RestartRecord{}, h.readErr
	}
	return h.recs[id], nil
}

func (h *memHistory) failReads(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.readErr = err
}

func (h *memHistory) SaveRestarts(id string, rec RestartRecord) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs[id] = rec
	h.saves++
	return nil
}

func (h *memHistory) DeleteRestarts(id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.recs, id)
	return nil
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// snapshotHolder is a mutable desired snapshot.
type snapshotHolder struct {
	mu   sync.Mutex
	snap wire.Snapshot
}

func (s *snapshotHolder) get() (wire.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, nil
}

func (s *snapshotHolder) set(snap wire.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap = snap
}
