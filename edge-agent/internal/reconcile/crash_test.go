package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The crash tests kill an agent at each of the effects it has on the
// board (a container created, a task created, labelled or started, a
// container stopped or removed, the restart history saved or deleted),
// in turn, and start a new agent over what landed. Two invariants must
// hold whatever the effect the agent died in:
//
//   - a container that never ran is never counted as restarted: a run is
//     only ever made after a run that ran, and a pod's first start counts
//     no restart;
//   - no restart goes uncounted: every run that ran after the first is in
//     the container's restart count.
//
// The agent dies *in* the effect: the effect never lands, nor does any
// the agent starts after it. Work the agent has under way at that moment
// in other goroutines goes on until it blocks (testing/synctest tells
// when), as on a board the other goroutines run until the kill arrives;
// so a write made concurrently with the dying one may land, and one made
// after it waits for it may not.

var errKilled = errors.New("the agent was killed")

// mortal counts an agent's effects and kills the agent in the at-th.
type mortal struct {
	mu    sync.Mutex
	at    int  // the effect the agent dies in; 0: it does not die
	n     int  // effects so far
	dying bool // the at-th effect has begun
	dead  bool
	hold  chan struct{} // the dying effect waits here; closed by kill
}

// effect is called before an effect lands: an error means the agent died
// and the effect must not land.
func (m *mortal) effect() error {
	m.mu.Lock()
	if m.dead {
		m.mu.Unlock()
		return errKilled
	}
	m.n++
	if m.n != m.at {
		m.mu.Unlock()
		return nil
	}
	m.dying = true
	m.mu.Unlock()
	<-m.hold
	return errKilled
}

// alive fails a read once the agent is dead.
func (m *mortal) alive() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead {
		return errKilled
	}
	return nil
}

// arm makes the agent die in its k-th effect from now.
func (m *mortal) arm(k int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.at = m.n + k
}

func (m *mortal) reached() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dying
}

func (m *mortal) kill() {
	m.mu.Lock()
	m.dead = true
	m.mu.Unlock()
	close(m.hold)
}

// mortalRuntime is the fake runtime as a mortal agent sees it.
type mortalRuntime struct {
	*fakeRuntime
	m *mortal
}

func (r mortalRuntime) List(ctx context.Context) ([]Container, error) {
	if err := r.m.alive(); err != nil {
		return nil, err
	}
	return r.fakeRuntime.List(ctx)
}

func (r mortalRuntime) EnsureImage(ctx context.Context, ref string, policy api.PullPolicy) (string, error) {
	if err := r.m.alive(); err != nil {
		return "", err
	}
	return r.fakeRuntime.EnsureImage(ctx, ref, policy)
}

func (r mortalRuntime) Create(ctx context.Context, spec ContainerSpec) error {
	if err := r.m.effect(); err != nil {
		return err
	}
	return r.fakeRuntime.Create(ctx, spec)
}

func (r mortalRuntime) CreateNextRun(ctx context.Context, from, id string, labels map[string]string, shimGroup string) error {
	if err := r.m.effect(); err != nil {
		return err
	}
	return r.fakeRuntime.CreateNextRun(ctx, from, id, labels, shimGroup)
}

// Start dies in any of the real runtime's three steps.
func (r mortalRuntime) Start(ctx context.Context, id, logPath string) error {
	if err := r.m.effect(); err != nil {
		return err
	}
	if err := r.newTask(id, logPath); err != nil {
		return err
	}
	if err := r.m.effect(); err != nil {
		return err
	}
	r.labelStart(id)
	if err := r.m.effect(); err != nil {
		return err
	}
	r.startTask(id)
	return nil
}

func (r mortalRuntime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := r.m.effect(); err != nil {
		return err
	}
	return r.fakeRuntime.Stop(ctx, id, grace)
}

func (r mortalRuntime) Remove(ctx context.Context, id string) error {
	if err := r.m.effect(); err != nil {
		return err
	}
	return r.fakeRuntime.Remove(ctx, id)
}

// mortalHistory is the restart history as a mortal agent sees it.
type mortalHistory struct {
	*memHistory
	m *mortal
}

func (h mortalHistory) Restarts(id string) (RestartRecord, error) {
	if err := h.m.alive(); err != nil {
		return RestartRecord{}, err
	}
	return h.memHistory.Restarts(id)
}

func (h mortalHistory) SaveRestarts(id string, rec RestartRecord) error {
	if err := h.m.effect(); err != nil {
		return err
	}
	return h.memHistory.SaveRestarts(id, rec)
}

func (h mortalHistory) DeleteRestarts(id string) error {
	if err := h.m.effect(); err != nil {
		return err
	}
	return h.memHistory.DeleteRestarts(id)
}

// crashScenario brings a board to the moment of interest (with the agent
// h.rec, which has not begun to die) and returns the pod it is about.
type crashScenario func(h *harness) wire.SnapshotPod

// crashScenarios are the moments an agent may die in.
var crashScenarios = map[string]crashScenario{
	// The pod's first start: pull, create, start.
	"first start": func(h *harness) wire.SnapshotPod {
		p := pod("web", "reg/web:v1", api.RestartAlways)
		h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
		return p
	},
	// A first crash: the restart at once, its exit recorded with its
	// count by the restart's worker.
	"first restart": func(h *harness) wire.SnapshotPod {
		p := pod("web", "reg/web:v1", api.RestartAlways)
		h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
		h.sync()
		h.clock.Advance(time.Second)
		h.rt.exit(h.rt.current(&p, "main"), 1)
		return p
	},
	// A second crash, past its back-off: the exit was recorded by an
	// earlier pass; the restart counts itself.
	"restart after a back-off": func(h *harness) wire.SnapshotPod {
		p := pod("web", "reg/web:v1", api.RestartAlways)
		h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
		h.sync()
		h.clock.Advance(time.Second)
		h.rt.exit(h.rt.current(&p, "main"), 1)
		h.sync()
		h.clock.Advance(time.Second)
		h.rt.exit(h.rt.current(&p, "main"), 1)
		h.sync() // records the exit; the restart waits 10 s
		h.clock.Advance(backoffInitial)
		return p
	},
	// A crash whose task vanished (the board rebooted): it counts as
	// an exit, and its restart is the first.
	"restart of a vanished task": func(h *harness) wire.SnapshotPod {
		p := pod("web", "reg/web:v1", api.RestartAlways)
		h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
		h.sync()
		h.clock.Advance(time.Second)
		id := h.rt.current(&p, "main")
		h.rt.mu.Lock()
		h.rt.containers[id].State = TaskNone
		h.rt.mu.Unlock()
		return p
	},
}

// TestCrashNeverCountsANeverRunContainer and
// TestCrashNeverLeavesARestartUncounted kill an agent in each effect of
// each scenario and check one invariant each over what a new agent makes
// of the board.
func TestCrashNeverCountsANeverRunContainer(t *testing.T) {
	forEachCrash(t, func(t *testing.T, h *harness, p wire.SnapshotPod, first bool) {
		key := ContainerID(&p, "main")
		h.rt.mu.Lock()
		defer h.rt.mu.Unlock()
		for run, from := range h.rt.madeFrom {
			if !h.rt.ran[from] {
				t.Errorf("run %s was made as a restart of %s, which never ran", run, from)
			}
		}
		if rec, _ := h.hist.Restarts(key); first && rec.Restarts != 0 {
			t.Errorf("a pod's first start counted %d restarts", rec.Restarts)
		}
	})
}

func TestCrashNeverLeavesARestartUncounted(t *testing.T) {
	forEachCrash(t, func(t *testing.T, h *harness, p wire.SnapshotPod, _ bool) {
		key := ContainerID(&p, "main")
		h.rt.mu.Lock()
		var ran []string
		for id := range h.rt.ran {
			ran = append(ran, id)
		}
		h.rt.mu.Unlock()
		slices.Sort(ran)
		if rec, _ := h.hist.Restarts(key); int(rec.Restarts) < len(ran)-1 {
			t.Errorf("%d runs ran (%s), %d restarts counted", len(ran), strings.Join(ran, ", "), rec.Restarts)
		}
	})
}

// forEachCrash runs every scenario with the agent killed in its first
// effect, then its second, and so on until it survives the scenario; a
// new agent then settles the board (at most five passes, five minutes of
// back-off apart), which must end with the pod's one container running,
// and check checks the invariant.
func forEachCrash(t *testing.T, check func(t *testing.T, h *harness, p wire.SnapshotPod, first bool)) {
	for name, scenario := range crashScenarios {
		for k := 1; ; k++ {
			survived := false
			ok := t.Run(fmt.Sprintf("%s/dies in effect %d", name, k), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					h, p, reached := crashIn(t, scenario, k)
					if !reached {
						survived = true
						return
					}
					settle(t, h, p)
					check(t, h, p, name == "first start")
				})
			})
			if survived || !ok {
				break
			}
		}
	}
}

// crashIn runs the scenario with an agent that dies in its k-th effect
// after it (at most three passes), and reports whether it died. h.rec is
// then a new agent over the same board and history.
func crashIn(t *testing.T, scenario crashScenario, k int) (h *harness, p wire.SnapshotPod, reached bool) {
	h = newHarness(t)
	m := &mortal{hold: make(chan struct{})}
	h.rec = New(Config{
		Runtime: mortalRuntime{h.rt, m}, History: mortalHistory{h.hist, m}, Desired: h.desired.get,
		DataDir: t.TempDir(), Logger: h.rec.log, Now: h.clock.Now,
	})
	p = scenario(h)
	m.arm(k)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 3 {
		done := make(chan struct{})
		go func() {
			h.rec.Sync(ctx)
			close(done)
		}()
		synctest.Wait()
		if m.reached() {
			m.kill()
			cancel()
			<-done
			h.rec.wg.Wait()
			h.rec = h.newReconciler()
			return h, p, true
		}
		<-done
		h.rec.wg.Wait()
	}
	return h, p, false
}

// settle has the new agent bring the board to its desired state.
func settle(t *testing.T, h *harness, p wire.SnapshotPod) {
	t.Helper()
	key := ContainerID(&p, "main")
	for range 5 {
		h.sync()
		if list, _ := h.rt.List(context.Background()); len(list) == 1 && containerKey(list[0]) == key && list[0].State == TaskRunning {
			return
		}
		h.clock.Advance(backoffMax)
	}
	list, _ := h.rt.List(context.Background())
	t.Fatalf("the new agent did not settle the board: %+v", list)
}
