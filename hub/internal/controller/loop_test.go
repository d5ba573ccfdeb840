package controller

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
)

// These tests drive the loop by a fake clock and an unbuffered watch
// channel: a send on it returns only once the loop has taken the event,
// and no timer fires until the test advances the clock, so what the loop
// does is fixed by the test's steps, never by how fast the machine is.
// The waits below only bound a test that would otherwise hang.

const hang = 10 * time.Second

type fakeWatch struct {
	mu     sync.Mutex
	kinds  []string
	called int
	ch     chan store.Event
}

func (w *fakeWatch) Watch(_ context.Context, kinds ...string) <-chan store.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kinds, w.called = kinds, w.called+1
	return w.ch
}

type harness struct {
	t      *testing.T
	clk    *fakeClock
	watch  *fakeWatch
	loop   *Loop
	passes chan Cause
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	events []store.Event
	synced []time.Duration
	// pass, if set, runs inside each pass (after it is recorded); it
	// returns the pass's wake time and error.
	pass func(why Cause) (time.Time, error)
}

// start runs a loop over opts, with the harness's watch, clock and hooks.
func start(t *testing.T, opts Options, pass func(h *harness, why Cause) (time.Time, error)) *harness {
	t.Helper()
	h := &harness{t: t, clk: newFakeClock(), watch: &fakeWatch{ch: make(chan store.Event)},
		passes: make(chan Cause, 100), done: make(chan error, 1)}
	if opts.Store == nil {
		opts.Store = h.watch
	}
	opts.Now = h.clk.Now
	opts.Pass = func(_ context.Context, why Cause) (time.Time, error) {
		h.passes <- why
		if pass != nil {
			return pass(h, why)
		}
		return time.Time{}, nil
	}
	opts.Event = func(ev store.Event) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.events = append(h.events, ev)
	}
	opts.OnSync = func(d time.Duration) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.synced = append(h.synced, d)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h.loop = New(opts)
	h.loop.clock = h.clk
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- h.loop.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(hang):
			t.Error("Run did not return after its context ended")
		}
	})
	return h
}

// next waits for the next pass and returns its cause.
func (h *harness) next() Cause {
	h.t.Helper()
	select {
	case why := <-h.passes:
		return why
	case <-time.After(hang):
		h.t.Fatal("no pass")
		return 0
	}
}

// expect waits for the next pass and checks its cause.
func (h *harness) expect(want Cause) {
	h.t.Helper()
	if got := h.next(); got != want {
		h.t.Fatalf("pass caused by %s, want %s", got, want)
	}
}

// noPass checks that no pass has run since the last one the test took.
func (h *harness) noPass() {
	h.t.Helper()
	if len(h.passes) > 0 {
		h.t.Fatalf("an unexpected pass ran (%s)", <-h.passes)
	}
}

// armed waits for the loop to arm a timer and returns its duration.
func (h *harness) armed() time.Duration {
	h.t.Helper()
	select {
	case d := <-h.clk.armed:
		return d
	case <-time.After(hang):
		h.t.Fatal("no timer armed")
		return 0
	}
}

// send hands the loop one event; it returns once the loop has taken it.
func (h *harness) send(name string) {
	h.t.Helper()
	select {
	case h.watch.ch <- store.Event{Type: store.Put, Key: store.Key{Kind: "Pod", Name: name}}:
	case <-time.After(hang):
		h.t.Fatal("the loop took no event")
	}
}

func (h *harness) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var names []string
	for _, ev := range h.events {
		names = append(names, ev.Key.Name)
	}
	return names
}

func (h *harness) stopped() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		return err
	case <-time.After(hang):
		h.t.Fatal("Run did not return")
		return nil
	}
}

func TestWindow(t *testing.T) {
	const debounce, maxWindow = 20 * time.Millisecond, 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		took time.Duration
		want time.Duration
	}{
		{"a quick pass: the debounce", time.Millisecond, debounce},
		{"no time at all", 0, debounce},
		{"a slower pass: as long as it took", 80 * time.Millisecond, 80 * time.Millisecond},
		{"exactly the bound", maxWindow, maxWindow},
		{"a long pass: the bound", 3 * time.Second, maxWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Window(tc.took, debounce, maxWindow); got != tc.want {
				t.Fatalf("Window(%s) = %s, want %s", tc.took, got, tc.want)
			}
		})
	}
	if got := Window(time.Second, 50*time.Millisecond, 50*time.Millisecond); got != 50*time.Millisecond {
		t.Fatalf("MaxWindow = Debounce: window %s, want the fixed 50ms", got)
	}
}

// TestDebounceGathersABurst: the first event of a burst opens a window of
// Debounce; the events inside it lead to one pass, after it, and the
// Event hook sees every one of them first.
func TestDebounceGathersABurst(t *testing.T) {
	h := start(t, Options{Kinds: []string{"Pod"}, Debounce: 20 * time.Millisecond, Resync: time.Hour}, nil)
	h.expect(Started)
	h.send("a")
	if d := h.armed(); d != 20*time.Millisecond {
		t.Fatalf("window %s after a quick pass, want the debounce", d)
	}
	h.send("b")
	h.clk.Advance(20*time.Millisecond - time.Nanosecond)
	h.send("c") // still gathering: the window has not ended
	h.noPass()
	h.clk.Advance(time.Nanosecond)
	h.expect(Changed)
	if got := h.seen(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("events seen before the pass: %v", got)
	}
	// The next event opens a new window.
	h.send("d")
	h.armed()
	h.noPass()
	h.clk.Advance(20 * time.Millisecond)
	h.expect(Changed)
	if got := h.watch.kinds; !slices.Equal(got, []string{"Pod"}) {
		t.Fatalf("watched %v", got)
	}
}

// TestWindowFollowsThePass: after a pass that took a while, the window is
// as long as the pass, but never longer than MaxWindow.
func TestWindowFollowsThePass(t *testing.T) {
	for _, tc := range []struct {
		name string
		took time.Duration
		want time.Duration
	}{
		{"quick", 0, 20 * time.Millisecond},
		{"slower than the debounce", 70 * time.Millisecond, 70 * time.Millisecond},
		{"longer than the bound", 2 * time.Second, 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, Options{Kinds: []string{"Pod"}, Resync: time.Hour}, func(h *harness, _ Cause) (time.Time, error) {
				h.clk.Advance(tc.took) // the pass takes this long
				return time.Time{}, nil
			})
			h.expect(Started)
			h.send("a")
			if d := h.armed(); d != tc.want {
				t.Fatalf("window %s after a pass of %s, want %s", d, tc.took, tc.want)
			}
			h.mu.Lock()
			synced := slices.Clone(h.synced)
			h.mu.Unlock()
			if !slices.Equal(synced, []time.Duration{tc.took}) {
				t.Fatalf("OnSync told %v, want [%s]", synced, tc.took)
			}
		})
	}
}

func TestResync(t *testing.T) {
	h := start(t, Options{Kinds: []string{"Pod"}, Resync: time.Minute}, nil)
	h.expect(Started)
	h.clk.Advance(time.Minute - time.Second)
	h.noPass()
	h.clk.Advance(time.Second)
	h.expect(Resynced)
	h.clk.Advance(time.Minute)
	h.expect(Resynced)
}

// TestPeriodicWithoutKinds: a loop with no kinds watches nothing (Watch
// with no kinds would watch them all) and runs every Resync.
func TestPeriodicWithoutKinds(t *testing.T) {
	h := start(t, Options{Resync: 2 * time.Second}, nil)
	h.expect(Started)
	h.clk.Advance(2 * time.Second)
	h.expect(Resynced)
	h.clk.Advance(2 * time.Second)
	h.expect(Resynced)
	h.watch.mu.Lock()
	defer h.watch.mu.Unlock()
	if h.watch.called != 0 {
		t.Fatalf("a loop without kinds opened a watch (on %v)", h.watch.kinds)
	}
}

// TestWake: a pass that returns a time runs again then; the next pass's
// answer replaces it.
func TestWake(t *testing.T) {
	var calls int
	h := start(t, Options{Kinds: []string{"Pod"}, Resync: time.Hour}, func(h *harness, why Cause) (time.Time, error) {
		calls++
		switch calls {
		case 1, 2:
			return h.clk.Now().Add(5 * time.Second), nil
		case 4:
			return h.clk.Now().Add(-time.Minute), nil // already due
		default:
			return time.Time{}, nil // nothing to wait for
		}
	})
	h.expect(Started)
	if d := h.armed(); d != 5*time.Second {
		t.Fatalf("wake timer %s, want 5s", d)
	}
	h.clk.Advance(5*time.Second - time.Nanosecond)
	h.noPass()
	h.clk.Advance(time.Nanosecond)
	h.expect(Woken)
	h.armed() // 5 s again
	// A change comes first; its pass asks for no wake, so the old one
	// must not fire.
	h.send("a")
	h.armed() // the window
	h.clk.Advance(20 * time.Millisecond)
	h.expect(Changed)
	h.clk.Advance(time.Minute)
	h.noPass()
	// A pass whose time has come already runs again at once.
	h.loop.Poke()
	h.expect(Poked)
	if d := h.armed(); d != 0 {
		t.Fatalf("wake timer %s for a time gone by, want 0", d)
	}
	h.expect(Woken)
}

// TestPokeCoalesces: pokes made during a pass lead to one more pass.
func TestPokeCoalesces(t *testing.T) {
	release := make(chan struct{})
	var calls int
	h := start(t, Options{Resync: time.Hour}, func(h *harness, _ Cause) (time.Time, error) {
		calls++
		if calls == 1 {
			<-release
		}
		return time.Time{}, nil
	})
	h.expect(Started)
	h.loop.Poke()
	h.loop.Poke()
	h.loop.Poke()
	close(release)
	h.expect(Poked)
	h.clk.Advance(time.Hour)
	h.expect(Resynced) // and no second Poked before it
}

// TestStopsWithItsContext: Run returns nil when ctx ends, whether it
// waits for a change or gathers one, without another pass.
func TestStopsWithItsContext(t *testing.T) {
	t.Run("waiting", func(t *testing.T) {
		h := start(t, Options{Kinds: []string{"Pod"}, Resync: time.Hour}, nil)
		h.expect(Started)
		h.cancel()
		if err := h.stopped(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		h.noPass()
	})
	t.Run("gathering", func(t *testing.T) {
		h := start(t, Options{Kinds: []string{"Pod"}, Resync: time.Hour}, nil)
		h.expect(Started)
		h.send("a")
		h.armed()
		h.cancel()
		if err := h.stopped(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		h.noPass()
	})
	t.Run("the watch closes", func(t *testing.T) {
		h := start(t, Options{Kinds: []string{"Pod"}, Resync: time.Hour}, nil)
		h.expect(Started)
		close(h.watch.ch)
		if err := h.stopped(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// TestInit: Init runs after the watch is open and before the first pass;
// its error ends Run before any pass.
func TestInit(t *testing.T) {
	var order []string
	w := &fakeWatch{ch: make(chan store.Event)}
	watchFirst := Options{Store: w, Kinds: []string{"Pod"}, Resync: time.Hour, Init: func(context.Context) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		order = append(order, "init")
		if w.called != 1 {
			t.Error("Init ran before the watch was open")
		}
		return nil
	}}
	h := start(t, watchFirst, nil)
	h.expect(Started)
	w.mu.Lock()
	if !slices.Equal(order, []string{"init"}) {
		t.Fatalf("Init ran %v", order)
	}
	w.mu.Unlock()

	broken := errors.New("cannot read the store")
	h = start(t, Options{Kinds: []string{"Pod"}, Init: func(context.Context) error { return broken }}, nil)
	if err := h.stopped(); !errors.Is(err, broken) {
		t.Fatalf("Run = %v, want Init's error", err)
	}
	h.noPass()
}

// TestPassErrorIsLoggedAndTheLoopGoesOn: a failed pass is logged with its
// cause; the next one runs as usual.
func TestPassErrorIsLoggedAndTheLoopGoesOn(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	var calls int
	h := start(t, Options{Name: "widgets", Logger: log, Resync: time.Minute}, func(*harness, Cause) (time.Time, error) {
		calls++
		if calls == 1 {
			return time.Time{}, errors.New("store is full")
		}
		return time.Time{}, nil
	})
	h.expect(Started)
	h.clk.Advance(time.Minute)
	h.expect(Resynced)
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"component=widgets", "msg=sync", "cause=Started", `err="store is full"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestDefaults(t *testing.T) {
	l := New(Options{Name: "x", Pass: func(context.Context, Cause) (time.Time, error) { return time.Time{}, nil }})
	if l.opts.Debounce != DefaultDebounce || l.opts.MaxWindow != DefaultMaxWindow || l.opts.Resync != DefaultResync {
		t.Fatalf("defaults: debounce %s, window %s, resync %s", l.opts.Debounce, l.opts.MaxWindow, l.opts.Resync)
	}
	if l.Logger() == nil || l.Now().IsZero() {
		t.Fatal("no logger or clock")
	}
}

// TestIncompleteOptions: Run says what its Options lack instead of
// panicking.
func TestIncompleteOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no pass", Options{Name: "x"}, `controller "x": no Pass`},
		{"kinds and no store", Options{Name: "x", Kinds: []string{"Pod"}, Pass: func(context.Context, Cause) (time.Time, error) {
			return time.Time{}, nil
		}}, `controller "x": kinds to watch ([Pod]) but no Store`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New(tc.opts).Run(context.Background())
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Run = %v, want %q", err, tc.want)
			}
		})
	}
}
