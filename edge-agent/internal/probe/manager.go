package probe

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Clock is the Manager's time source. The real clock is the default; tests
// substitute a fake so that delays and periods pass without real waiting.
type Clock interface {
	Now() time.Time
	// Wait returns nil once d has passed, or ctx.Err() if ctx ends first.
	Wait(ctx context.Context, d time.Duration) error
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Wait(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Options configures a Manager.
type Options struct {
	// Exec runs exec probes; without it they fail.
	Exec Execer
	// Clock schedules the probes; nil means the real clock.
	Clock Clock
	// OnChange, if set, is called with a container's ID whenever a probe
	// result changes its Started, Ready or LivenessFailed, and at no other
	// time (not for Update's resets, not for a changed Message). It is
	// called from the probe workers, outside the Manager's lock, possibly
	// from several goroutines at once. It must not block: a probe worker
	// waits for it. Waking a loop with a non-blocking channel send is the
	// intended use; read the new state with Status.
	OnChange func(containerID string)
}

// Container is a running container to probe.
type Container struct {
	ID string
	// StartedAt is when the container's current task started;
	// initialDelaySeconds counts from it. A new StartedAt for a known ID
	// means the container was restarted. Zero means "when Update first
	// saw it".
	StartedAt time.Time
	// Host and Ports are as in Target.
	Host  string
	Ports map[string]int32

	Liveness, Readiness, Startup *api.Probe
}

// Status is what the probes say about a container.
type Status struct {
	// Started is true once the startup probe has succeeded, or at once for
	// a container without one. Liveness and readiness probes run only
	// after it.
	Started bool
	// Ready is true after successThreshold consecutive readiness successes
	// and false again after failureThreshold consecutive failures; a
	// container without a readiness probe is Ready once Started.
	Ready bool
	// LivenessFailed is true once the liveness probe, or the startup
	// probe, has failed failureThreshold times in a row: the container
	// must be restarted. It stays true until Update brings a new StartedAt.
	LivenessFailed bool
	// Message describes the probe failure behind LivenessFailed or, if
	// none, the latest failure of a probe that has not succeeded since.
	Message string
}

// Manager probes the running containers of one agent, with one worker
// goroutine per probe of each container, and keeps their Status. Update
// says which containers are running; Run owns the workers. Its methods are
// safe for concurrent use.
type Manager struct {
	exec     Execer
	clock    Clock
	onChange func(string)

	mu      sync.Mutex
	entries map[string]*entry // container ID → current entry
	runCtx  context.Context   // set while Run runs; workers start only then
	ran     bool              // Run has been called
	workers sync.WaitGroup    // every worker; Adds happen only while runCtx is set
}

// kind is which probe a worker runs.
type kind int

const (
	startup kind = iota
	liveness
	readiness
	numKinds
)

// failurePrefix starts a failure message, as the kubelet's events do.
func (k kind) failurePrefix() string {
	switch k {
	case startup:
		return "Startup probe failed: "
	case liveness:
		return "Liveness probe failed: "
	}
	return "Readiness probe failed: "
}

// entry is one container at one StartedAt. Its fields after c, start and
// started are guarded by Manager.mu.
type entry struct {
	c     Container
	start time.Time // initial delays count from here
	// started is closed when Started becomes true; liveness and readiness
	// workers wait for it.
	started chan struct{}

	state    flags
	failed   string           // message that set LivenessFailed
	last     [numKinds]string // each probe's latest failure, "" after a success
	cancel   context.CancelFunc
	gone     bool          // replaced or removed: its results no longer count
	live     int           // workers running
	finished chan struct{} // closed once gone and every worker has returned
}

// flags is the part of Status that OnChange reports on.
type flags struct {
	started, ready, livenessFailed bool
}

// New returns a Manager with no containers; call Run to start probing.
func New(opts Options) *Manager {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	return &Manager{
		exec:     opts.Exec,
		clock:    opts.Clock,
		onChange: opts.OnChange,
		entries:  map[string]*entry{},
	}
}

// Update sets the running containers to probe. A container new to the
// Manager, or known with another StartedAt (it was restarted), starts
// afresh: not Started if it has a startup probe, not Ready if it has a
// readiness probe, LivenessFailed false, every count at zero, with new
// workers. Containers missing from cs are forgotten and their workers told
// to stop; Update does not wait for them (Run does). For a container
// already known at the same StartedAt, changes to its probes, host or
// ports are ignored: the agent's container IDs change with the spec.
//
// Update never calls OnChange; the caller reads the reset state with
// Status.
func (m *Manager) Update(cs []Container) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := make(map[string]bool, len(cs))
	for _, c := range cs {
		keep[c.ID] = true
		if e, ok := m.entries[c.ID]; ok {
			if e.c.StartedAt.Equal(c.StartedAt) {
				continue
			}
			m.stopLocked(e)
		}
		e := m.newEntry(c)
		m.entries[c.ID] = e
		if m.runCtx != nil {
			m.startLocked(e)
		}
	}
	for id, e := range m.entries {
		if !keep[id] {
			m.stopLocked(e)
			delete(m.entries, id)
		}
	}
}

// Status returns what the probes say about a container. A container the
// Manager does not know has the zero Status.
func (m *Manager) Status(containerID string) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[containerID]
	if !ok {
		return Status{}
	}
	st := Status{Started: e.state.started, Ready: e.state.ready, LivenessFailed: e.state.livenessFailed}
	if st.LivenessFailed {
		st.Message = e.failed
		return st
	}
	for _, msg := range e.last {
		if msg != "" {
			st.Message = msg
			break
		}
	}
	return st
}

// Run probes the containers Update gives until ctx ends, then waits for
// every worker to return. It may be called once; Update may be called
// before, during and after it (after it, nothing is probed).
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ran {
		m.mu.Unlock()
		return errors.New("probe manager: Run called twice")
	}
	m.ran = true
	m.runCtx = ctx
	for _, e := range m.entries {
		m.startLocked(e)
	}
	m.mu.Unlock()

	<-ctx.Done()
	m.mu.Lock()
	m.runCtx = nil // no more workers.Add from Update
	m.mu.Unlock()
	m.workers.Wait()
	return nil
}

// newEntry starts a container's state: a container without a startup probe
// is Started at once, and also Ready without a readiness probe.
func (m *Manager) newEntry(c Container) *entry {
	e := &entry{
		c:        c,
		start:    c.StartedAt,
		started:  make(chan struct{}),
		finished: make(chan struct{}),
	}
	if e.start.IsZero() {
		e.start = m.clock.Now()
	}
	if c.Startup == nil {
		e.state.started = true
		e.state.ready = c.Readiness == nil
		close(e.started)
	}
	return e
}

// startLocked starts a worker for each of the entry's probes, under the
// context of Run.
func (m *Manager) startLocked(e *entry) {
	ctx, cancel := context.WithCancel(m.runCtx)
	e.cancel = cancel
	for k, p := range [numKinds]*api.Probe{startup: e.c.Startup, liveness: e.c.Liveness, readiness: e.c.Readiness} {
		if p == nil {
			continue
		}
		e.live++
		m.workers.Add(1)
		go m.work(ctx, e, kind(k), p)
	}
}

// stopLocked marks the entry gone and stops its workers.
func (m *Manager) stopLocked(e *entry) {
	e.gone = true
	if e.cancel != nil {
		e.cancel()
	}
	if e.live == 0 {
		close(e.finished)
	}
}

// workerDone records that one of the entry's workers has returned.
func (m *Manager) workerDone(e *entry) {
	m.mu.Lock()
	e.live--
	if e.live == 0 && e.gone {
		close(e.finished)
	}
	m.mu.Unlock()
	m.workers.Done()
}

// work runs one probe of one container: liveness and readiness only once
// the container is Started; the first attempt initialDelaySeconds after
// the container started (or at once if that is past), then one every
// periodSeconds, each bounded by timeoutSeconds. It returns when ctx ends,
// or when the probe has nothing more to say: a startup probe that
// succeeded or gave up, a liveness probe that gave up (it is on hold until
// the container restarts, which is a new entry).
func (m *Manager) work(ctx context.Context, e *entry, k kind, p *api.Probe) {
	defer m.workerDone(e)
	if k != startup {
		select {
		case <-e.started:
		case <-ctx.Done():
			return
		}
	}
	target := Target{ContainerID: e.c.ID, Host: e.c.Host, Ports: e.c.Ports, Exec: m.exec}
	period := seconds(p.PeriodSeconds, DefaultPeriod)
	next := e.start.Add(time.Duration(max(p.InitialDelaySeconds, 0)) * time.Second)
	var run streak
	for {
		if d := next.Sub(m.clock.Now()); d > 0 {
			if m.clock.Wait(ctx, d) != nil {
				return
			}
		}
		began := m.clock.Now()
		res := Run(ctx, p, target)
		if ctx.Err() != nil {
			return // the result of an interrupted attempt does not count
		}
		changed, done := m.record(e, k, p, res, &run)
		if changed && m.onChange != nil {
			m.onChange(e.c.ID)
		}
		if done {
			return
		}
		next = began.Add(period)
	}
}

// streak counts a probe's consecutive successes and failures.
type streak struct{ successes, failures int32 }

func (s *streak) add(success bool) {
	if success {
		s.successes, s.failures = min(s.successes+1, 1<<30), 0
	} else {
		s.successes, s.failures = 0, min(s.failures+1, 1<<30)
	}
}

// threshold is a probe's threshold field, def if not set.
func threshold(n int32, def int32) int32 {
	if n <= 0 {
		return def
	}
	return n
}

// record applies one result to the entry. changed says whether Started,
// Ready or LivenessFailed changed; done that the worker should stop.
func (m *Manager) record(e *entry, k kind, p *api.Probe, res Result, run *streak) (changed, done bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.gone {
		return false, true
	}
	before := e.state
	run.add(res.Success)
	if res.Success {
		e.last[k] = ""
	} else {
		e.last[k] = k.failurePrefix() + res.Message
	}
	failed := !res.Success && run.failures >= threshold(p.FailureThreshold, DefaultFailureThreshold)
	switch k {
	case startup:
		switch {
		case res.Success:
			e.state.started = true
			e.state.ready = e.c.Readiness == nil
			close(e.started)
			done = true
		case failed:
			e.state.livenessFailed = true
			e.failed = e.last[k]
			done = true
		}
	case liveness:
		if failed {
			e.state.livenessFailed = true
			e.failed = e.last[k]
			done = true
		}
	case readiness:
		switch {
		case res.Success && run.successes >= threshold(p.SuccessThreshold, DefaultSuccessThreshold):
			e.state.ready = true
		case failed:
			e.state.ready = false
		}
	}
	return e.state != before, done
}
