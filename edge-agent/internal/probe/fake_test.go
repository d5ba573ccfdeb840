package probe

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// failAfter bounds every wait of a test on the code under test, so that a
// bug fails the test instead of hanging it.
const failAfter = 5 * time.Second

// fakeClock is a Clock whose time moves only when the test advances it.
// Tests wait until the workers are parked on it (awaitWaiters) before
// advancing, which orders everything without sleeping.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*clockWaiter
	changed chan struct{} // closed and replaced whenever waiters changes
}

type clockWaiter struct {
	at   time.Time
	wake chan struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Wait(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	w := &clockWaiter{at: c.now.Add(d), wake: make(chan struct{})}
	c.waiters = append(c.waiters, w)
	c.notifyLocked()
	c.mu.Unlock()
	select {
	case <-w.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		if i := slices.Index(c.waiters, w); i >= 0 {
			c.waiters = slices.Delete(c.waiters, i, i+1)
			c.notifyLocked()
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *fakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock and wakes, before returning, every waiter whose
// time has come (they no longer count as waiting).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
		} else {
			close(w.wake)
		}
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
	c.notifyLocked()
}

// awaitWaiters waits until exactly n goroutines wait on the clock.
func (c *fakeClock) awaitWaiters(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(failAfter)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, changed := len(c.waiters), c.changed
		c.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%d goroutines wait on the clock after %s, want %d", got, failAfter, n)
		}
	}
}

// fakeExec answers exec probes by command name (argv[0]) with the exit code
// or error the test set, and counts the calls.
type fakeExec struct {
	mu    sync.Mutex
	codes map[string]int
	errs  map[string]error
	calls map[string]int
	args  []execCall
}

type execCall struct {
	containerID string
	argv        []string
	timeout     time.Duration
}

func newFakeExec() *fakeExec {
	return &fakeExec{codes: map[string]int{}, errs: map[string]error{}, calls: map[string]int{}}
}

func (f *fakeExec) Exec(ctx context.Context, containerID string, argv []string, timeout time.Duration) (int, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[argv[0]]++
	f.args = append(f.args, execCall{containerID, argv, timeout})
	return f.codes[argv[0]], []byte("output of " + argv[0] + "\n"), f.errs[argv[0]]
}

// set makes the command exit with code from now on.
func (f *fakeExec) set(cmd string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes[cmd] = code
}

func (f *fakeExec) count(cmd string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[cmd]
}

func (f *fakeExec) last() execCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.args[len(f.args)-1]
}

// blockingExec is an Execer whose calls block until their context ends;
// started receives a value as each call begins.
type blockingExec struct{ started chan string }

func (b blockingExec) Exec(ctx context.Context, containerID string, argv []string, timeout time.Duration) (int, []byte, error) {
	b.started <- containerID
	<-ctx.Done()
	return -1, nil, ctx.Err()
}
