package probe

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// managerTest is a Manager under a fake clock and a fake Execer, running
// until the test ends.
type managerTest struct {
	t       *testing.T
	clock   *fakeClock
	exec    *fakeExec
	m       *Manager
	changes chan string
}

func newManagerTest(t *testing.T) *managerTest {
	mt := &managerTest{t: t, clock: newFakeClock(), exec: newFakeExec(), changes: make(chan string, 100)}
	mt.m = New(Options{Exec: mt.exec, Clock: mt.clock, OnChange: func(id string) { mt.changes <- id }})
	return mt
}

// run starts Run; when the test ends, it cancels it and checks it returns.
func (mt *managerTest) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mt.m.Run(ctx) }()
	mt.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				mt.t.Errorf("Run: %v", err)
			}
		case <-time.After(failAfter):
			mt.t.Errorf("Run did not return within %s of its context's end", failAfter)
		}
	})
}

// expectChange waits for OnChange(id).
func (mt *managerTest) expectChange(id string) {
	mt.t.Helper()
	select {
	case got := <-mt.changes:
		if got != id {
			mt.t.Fatalf("OnChange(%q), want OnChange(%q)", got, id)
		}
	case <-time.After(failAfter):
		mt.t.Fatalf("no OnChange(%q) within %s", id, failAfter)
	}
}

// expectNoChange checks that OnChange has not been called. Tests call it
// when the workers are parked on the clock or done, so every call they
// were to make has been made.
func (mt *managerTest) expectNoChange() {
	mt.t.Helper()
	select {
	case got := <-mt.changes:
		mt.t.Fatalf("unexpected OnChange(%q); status %+v", got, mt.m.Status(got))
	default:
	}
}

func (mt *managerTest) expectStatus(id string, want Status) {
	mt.t.Helper()
	got := mt.m.Status(id)
	got.Message = ""
	if got != want {
		mt.t.Fatalf("Status(%s) = %+v, want %+v (message %q)", id, got, want, mt.m.Status(id).Message)
	}
}

// finished returns the channel closed once the container's current
// workers have all returned after it was removed or replaced.
func (mt *managerTest) finished(id string) <-chan struct{} {
	mt.m.mu.Lock()
	defer mt.m.mu.Unlock()
	return mt.m.entries[id].finished
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(failAfter):
		t.Fatalf("%s: not within %s", what, failAfter)
	}
}

// probe returns an exec probe running cmd with the given timings.
func probe(cmd string, period, success, failure int32) *api.Probe {
	p := execProbe(cmd)
	p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold = period, success, failure
	return p
}

func TestNoProbesStartedAndReady(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	mt.m.Update([]Container{{ID: "c", StartedAt: mt.clock.Now()}})
	mt.expectStatus("c", Status{Started: true, Ready: true})
	fin := mt.finished("c")
	mt.m.Update(nil)
	waitClosed(t, fin, "workers of a removed container")
	mt.expectStatus("c", Status{})
	mt.expectNoChange()
}

func TestReadinessThresholds(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	mt.m.Update([]Container{{ID: "c", StartedAt: mt.clock.Now(), Readiness: probe("ready", 0, 2, 2)}})
	// Started at once (no startup probe), not Ready before its probe says so.
	mt.expectStatus("c", Status{Started: true})

	// The first attempt is at once; one success of two.
	mt.clock.awaitWaiters(t, 1)
	if n := mt.exec.count("ready"); n != 1 {
		t.Fatalf("%d readiness attempts at start, want 1", n)
	}
	mt.expectStatus("c", Status{Started: true})
	mt.expectNoChange()

	// periodSeconds 0 is 10 s.
	mt.clock.Advance(9 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	if n := mt.exec.count("ready"); n != 1 {
		t.Fatalf("%d readiness attempts before the period passed, want 1", n)
	}
	mt.clock.Advance(time.Second)
	mt.clock.awaitWaiters(t, 1)
	mt.expectChange("c")
	mt.expectStatus("c", Status{Started: true, Ready: true})

	// One failure of two: still Ready.
	mt.exec.set("ready", 1)
	mt.clock.Advance(10 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	mt.expectStatus("c", Status{Started: true, Ready: true})
	if msg := mt.m.Status("c").Message; !strings.HasPrefix(msg, "Readiness probe failed: ") || !strings.Contains(msg, "code 1") {
		t.Errorf("message after a readiness failure: %q", msg)
	}
	mt.expectNoChange()
	// A success resets the count of failures.
	mt.exec.set("ready", 0)
	mt.clock.Advance(10 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	if msg := mt.m.Status("c").Message; msg != "" {
		t.Errorf("message after the probe succeeded again: %q", msg)
	}
	mt.exec.set("ready", 1)
	mt.clock.Advance(10 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	mt.expectStatus("c", Status{Started: true, Ready: true})
	mt.expectNoChange()
	// The second failure in a row: not Ready.
	mt.clock.Advance(10 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	mt.expectChange("c")
	mt.expectStatus("c", Status{Started: true})
	// More failures change nothing.
	mt.clock.Advance(10 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	mt.expectNoChange()
	// One success of two is not enough to be Ready again.
	mt.exec.set("ready", 0)
	mt.clock.Advance(10 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	mt.expectNoChange()
	mt.clock.Advance(10 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	mt.expectChange("c")
	mt.expectStatus("c", Status{Started: true, Ready: true})
}

func TestLivenessThresholdHoldsUntilRestart(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	started := mt.clock.Now()
	mt.m.Update([]Container{{ID: "c", StartedAt: started, Liveness: probe("live", 5, 0, 0)}})
	mt.expectStatus("c", Status{Started: true, Ready: true})
	mt.clock.awaitWaiters(t, 1)

	// failureThreshold 0 is 3.
	mt.exec.set("live", 1)
	for range 2 {
		mt.clock.Advance(5 * time.Second)
		mt.clock.awaitWaiters(t, 1)
		mt.expectStatus("c", Status{Started: true, Ready: true})
	}
	mt.expectNoChange()
	mt.clock.Advance(5 * time.Second)
	mt.expectChange("c")
	mt.expectStatus("c", Status{Started: true, Ready: true, LivenessFailed: true})
	if msg := mt.m.Status("c").Message; !strings.HasPrefix(msg, "Liveness probe failed: ") {
		t.Errorf("message: %q", msg)
	}

	// On hold: no more attempts, still failed, even if it would succeed.
	mt.clock.awaitWaiters(t, 0)
	calls := mt.exec.count("live")
	mt.exec.set("live", 0)
	mt.clock.Advance(time.Minute)
	mt.m.Update([]Container{{ID: "c", StartedAt: started, Liveness: probe("live", 5, 0, 0)}}) // same start: no reset
	mt.clock.awaitWaiters(t, 0)
	if n := mt.exec.count("live"); n != calls {
		t.Errorf("%d liveness attempts after it failed, want none", n-calls)
	}
	mt.expectStatus("c", Status{Started: true, Ready: true, LivenessFailed: true})

	// The reconciler restarts it: a new StartedAt starts afresh.
	old := mt.finished("c")
	mt.m.Update([]Container{{ID: "c", StartedAt: mt.clock.Now(), Liveness: probe("live", 5, 0, 0)}})
	waitClosed(t, old, "workers of the container before its restart")
	mt.expectStatus("c", Status{Started: true, Ready: true})
	mt.clock.awaitWaiters(t, 1)
	if n := mt.exec.count("live"); n != calls+1 {
		t.Errorf("%d liveness attempts after the restart, want 1", n-calls)
	}
	mt.expectNoChange() // Update's reset is not reported
	if msg := mt.m.Status("c").Message; msg != "" {
		t.Errorf("message after the restart: %q", msg)
	}
}

func TestStartupGatesLivenessAndReadiness(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	mt.exec.set("startup", 1)
	live := probe("live", 10, 0, 0)
	live.InitialDelaySeconds = 15 // counts from StartedAt, not from Started
	mt.m.Update([]Container{{
		ID: "c", StartedAt: mt.clock.Now(),
		Startup:   probe("startup", 5, 0, 3),
		Liveness:  live,
		Readiness: probe("ready", 10, 0, 0),
	}})
	mt.expectStatus("c", Status{})

	// Two startup failures of three; liveness and readiness wait.
	mt.clock.awaitWaiters(t, 1)
	mt.clock.Advance(5 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	if msg := mt.m.Status("c").Message; !strings.HasPrefix(msg, "Startup probe failed: ") {
		t.Errorf("message while starting: %q", msg)
	}
	if n := mt.exec.count("live") + mt.exec.count("ready"); n != 0 {
		t.Fatalf("%d liveness or readiness attempts before Started", n)
	}
	mt.expectNoChange()

	// The startup probe succeeds at +10 s: Started, not yet Ready (its
	// readiness probe runs now); liveness waits for its delay (+15 s).
	mt.exec.set("startup", 0)
	mt.clock.Advance(5 * time.Second)
	mt.expectChange("c") // Started
	mt.expectChange("c") // Ready
	mt.clock.awaitWaiters(t, 2)
	mt.expectStatus("c", Status{Started: true, Ready: true})
	if got := [3]int{mt.exec.count("startup"), mt.exec.count("ready"), mt.exec.count("live")}; got != [3]int{3, 1, 0} {
		t.Errorf("startup, readiness, liveness attempts %v, want [3 1 0]", got)
	}
	mt.clock.Advance(5 * time.Second)
	mt.clock.awaitWaiters(t, 2)
	if got := [3]int{mt.exec.count("startup"), mt.exec.count("ready"), mt.exec.count("live")}; got != [3]int{3, 1, 1} {
		t.Errorf("startup, readiness, liveness attempts %v after the liveness delay, want [3 1 1]", got)
	}
	mt.expectNoChange()
	if msg := mt.m.Status("c").Message; msg != "" {
		t.Errorf("message once started: %q", msg)
	}
}

func TestStartupWithoutReadinessIsReadyWhenStarted(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	mt.m.Update([]Container{{ID: "c", StartedAt: mt.clock.Now(), Startup: probe("startup", 5, 0, 0)}})
	mt.expectChange("c")
	mt.expectStatus("c", Status{Started: true, Ready: true})
	mt.clock.awaitWaiters(t, 0) // the startup worker is done
	mt.expectNoChange()
}

func TestStartupFailureFailsLiveness(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	mt.exec.set("startup", 1)
	mt.m.Update([]Container{{
		ID: "c", StartedAt: mt.clock.Now(),
		Startup:  probe("startup", 5, 0, 2),
		Liveness: probe("live", 5, 0, 0),
	}})
	mt.clock.awaitWaiters(t, 1)
	mt.expectNoChange()
	mt.clock.Advance(5 * time.Second)
	mt.expectChange("c")
	mt.expectStatus("c", Status{LivenessFailed: true})
	if msg := mt.m.Status("c").Message; !strings.HasPrefix(msg, "Startup probe failed: ") {
		t.Errorf("message: %q", msg)
	}
	mt.clock.awaitWaiters(t, 0)
	mt.clock.Advance(time.Minute)
	mt.clock.awaitWaiters(t, 0)
	if n, l := mt.exec.count("startup"), mt.exec.count("live"); n != 2 || l != 0 {
		t.Errorf("%d startup and %d liveness attempts, want 2 and 0", n, l)
	}
}

func TestInitialDelayCountsFromStartedAt(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	p := probe("ready", 10, 0, 0)
	p.InitialDelaySeconds = 15
	// Started 10 s ago: the first attempt is due in 5 s.
	mt.m.Update([]Container{{ID: "c", StartedAt: mt.clock.Now().Add(-10 * time.Second), Readiness: p}})
	mt.clock.awaitWaiters(t, 1)
	mt.clock.Advance(4 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	if n := mt.exec.count("ready"); n != 0 {
		t.Fatalf("%d attempts before the initial delay", n)
	}
	mt.clock.Advance(time.Second)
	mt.expectChange("c")
	mt.clock.awaitWaiters(t, 1)
	if n := mt.exec.count("ready"); n != 1 {
		t.Fatalf("%d attempts at the end of the initial delay, want 1", n)
	}

	// Restarted, and already past its delay: probed at once.
	old := mt.finished("c")
	mt.m.Update([]Container{
		{ID: "c", StartedAt: mt.clock.Now().Add(-20 * time.Second), Readiness: p},
	})
	waitClosed(t, old, "workers of the container before its restart")
	mt.expectChange("c")
	mt.clock.awaitWaiters(t, 1)
	if n := mt.exec.count("ready"); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
}

func TestUpdateStopsRemovedContainers(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	cs := []Container{
		{ID: "a", StartedAt: mt.clock.Now(), Liveness: probe("live-a", 10, 0, 0), Readiness: probe("ready-a", 10, 0, 0)},
		{ID: "b", StartedAt: mt.clock.Now(), Liveness: probe("live-b", 10, 0, 0)},
	}
	mt.m.Update(cs)
	mt.expectChange("a") // ready
	mt.clock.awaitWaiters(t, 3)
	finA := mt.finished("a")
	mt.m.Update(cs[1:])
	waitClosed(t, finA, "workers of a removed container")
	mt.clock.awaitWaiters(t, 1)
	mt.expectStatus("a", Status{})
	mt.expectStatus("b", Status{Started: true, Ready: true})
	mt.clock.Advance(10 * time.Second)
	mt.clock.awaitWaiters(t, 1)
	if a, b := mt.exec.count("live-a"), mt.exec.count("live-b"); a != 1 || b != 2 {
		t.Errorf("liveness attempts a %d, b %d; want 1 and 2", a, b)
	}
	finB := mt.finished("b")
	mt.m.Update(nil)
	waitClosed(t, finB, "workers of the last container")
	mt.clock.awaitWaiters(t, 0)
	mt.expectNoChange()
}

func TestUpdateBeforeRunAndRunReturns(t *testing.T) {
	started := make(chan string, 10)
	var changes []string
	m := New(Options{Exec: blockingExec{started: started}, OnChange: func(id string) { changes = append(changes, id) }})
	// Before Run, Update records but probes nothing.
	m.Update([]Container{{ID: "c", StartedAt: time.Now(), Readiness: probe("ready", 10, 0, 0)}})
	if st := m.Status("c"); st != (Status{Started: true}) {
		t.Fatalf("Status before Run: %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	// Run starts the worker, which is now inside an attempt that blocks.
	select {
	case id := <-started:
		if id != "c" {
			t.Fatalf("probed %q, want c", id)
		}
	case <-time.After(failAfter):
		t.Fatal("Run did not start the probe")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(failAfter):
		t.Fatal("Run did not return after its context ended")
	}
	// Run returned after its worker did (no race on changes here), and
	// the interrupted attempt did not count.
	if len(changes) != 0 {
		t.Errorf("OnChange called for an interrupted attempt: %v", changes)
	}
	if st := m.Status("c"); st != (Status{Started: true}) {
		t.Errorf("Status after Run: %+v", st)
	}
	if err := m.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
	// After Run, Update still records but starts nothing.
	m.Update([]Container{{ID: "d", StartedAt: time.Now(), Readiness: probe("ready", 10, 0, 0)}})
	select {
	case id := <-started:
		t.Errorf("probed %q after Run returned", id)
	default:
	}
}

func TestZeroStartedAtCountsFromUpdate(t *testing.T) {
	mt := newManagerTest(t)
	mt.run()
	p := probe("ready", 10, 0, 0)
	p.InitialDelaySeconds = 5
	mt.m.Update([]Container{{ID: "c", Readiness: p}})
	mt.clock.awaitWaiters(t, 1)
	mt.clock.Advance(5 * time.Second)
	mt.expectChange("c")
	if n := mt.exec.count("ready"); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
	// Still zero: the same container, not a restart.
	mt.m.Update([]Container{{ID: "c", Readiness: p}})
	mt.clock.awaitWaiters(t, 1)
	mt.expectStatus("c", Status{Started: true, Ready: true})
}

// TestManagerRealProbes runs the Manager on the real clock with TCP
// probes against a real listener: no fakes but the container.
func TestManagerRealProbes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := int32(l.Addr().(*net.TCPAddr).Port)
	changes := make(chan string, 10)
	m := New(Options{OnChange: func(id string) { changes <- id }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	m.Update([]Container{{
		ID: "c", StartedAt: time.Now(), Ports: map[string]int32{"db": port},
		Startup:   tcpProbe(api.TCPSocketAction{Port: api.FromString("db")}),
		Readiness: tcpProbe(api.TCPSocketAction{Port: api.FromInt(port)}),
		Liveness:  tcpProbe(api.TCPSocketAction{Port: api.FromInt(freePort(t))}),
	}})
	for range 2 { // Started, then Ready
		select {
		case <-changes:
		case <-time.After(failAfter):
			t.Fatalf("status %+v after %s", m.Status("c"), failAfter)
		}
	}
	st := m.Status("c")
	if !st.Started || !st.Ready || st.LivenessFailed {
		t.Errorf("Status %+v, want Started and Ready", st)
	}
	if !strings.Contains(st.Message, "Liveness probe failed: ") && st.Message != "" {
		t.Errorf("message %q", st.Message)
	}
}
