// Package controller is the loop every hub controller runs, and what their
// passes share. A Loop wakes on store changes to the kinds a controller
// watches, gathers the rest of a burst of changes into one pass, runs the
// pass, and runs it again every resync period, at the time the last pass
// asked for, and when poked; it is level-triggered, so a missed or
// coalesced event costs nothing but a later pass. Steps cuts a pass into
// read, plan and write; the transaction, annotation and equality helpers
// are what the controllers' writes and plans have in common.
//
// A new controller is its plan function, its write function and a
// registration (the Loop's Options); see the example.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
)

// Defaults of Options.
const (
	DefaultDebounce  = 20 * time.Millisecond
	DefaultMaxWindow = 200 * time.Millisecond
	DefaultResync    = 30 * time.Second
)

// Watcher is the part of the store a Loop uses: store.Store has it.
type Watcher interface {
	Watch(ctx context.Context, kinds ...string) <-chan store.Event
}

// Cause says why a pass runs.
type Cause uint8

// Causes.
const (
	// Started: the first pass of Run.
	Started Cause = iota + 1
	// Changed: the store changed one of the watched kinds (the pass comes
	// after the gathering window).
	Changed
	// Resynced: the resync period went by.
	Resynced
	// Woken: the time the last pass asked for came.
	Woken
	// Poked: someone called Poke.
	Poked
)

func (c Cause) String() string {
	switch c {
	case Started:
		return "Started"
	case Changed:
		return "Changed"
	case Resynced:
		return "Resynced"
	case Woken:
		return "Woken"
	case Poked:
		return "Poked"
	}
	return "Cause(" + strconv.Itoa(int(c)) + ")"
}

// PassFunc is one pass of a controller. It returns when it must run again
// even if nothing changes (a deadline, a pause ending), by Options.Now's
// clock; zero means only on a change, a resync or a poke. An error is
// logged, and the loop carries on: the next pass tries again.
type PassFunc func(ctx context.Context, why Cause) (wake time.Time, err error)

// Options configure a Loop. Zero values take the defaults named on each
// field; a controller's own Options pass theirs through unchanged, so that
// the defaults live here only.
type Options struct {
	// Name is the controller's name, the "component" of its logs.
	Name string
	// Store is watched for changes to Kinds. With no Kinds the loop is
	// periodic (every Resync) and watches nothing.
	Store Watcher
	Kinds []string
	// Pass runs one pass (required).
	Pass PassFunc
	// Event, if set, sees every event the watch delivers, in order, the
	// ones gathered into the window included, before the pass they lead
	// to. A controller that keeps a cache updates it here; an Overflow
	// event means events were lost (store.Store.Watch).
	Event func(store.Event)
	// Init, if set, runs once after the watch is open and before the
	// first pass; its error ends Run. A controller that builds a cache
	// reads the store here, so that no change slips between the read and
	// the watch.
	Init func(ctx context.Context) error
	// Debounce is the shortest time the loop gathers changes after the
	// first of a burst (default 20 ms).
	Debounce time.Duration
	// MaxWindow bounds the gathering window (default 200 ms). Between
	// Debounce and MaxWindow the window is as long as the last pass took:
	// a pass that reads the whole fleet would otherwise run back to back
	// on a busy fleet (a status write every few milliseconds), and
	// gathering for as long as a pass takes keeps it under half of a
	// core. The bound is for a busy hub, whose passes' wall time is
	// mostly waiting for the CPU: a rolling update's next nodes wait for
	// the pass. Set it to Debounce for a window of fixed length.
	MaxWindow time.Duration
	// Resync is the period of the pass that runs whether or not anything
	// changed (default 30 s).
	Resync time.Duration
	// Now is the controller's clock (default time.Now); the times passes
	// return are by it.
	Now func() time.Time
	// Logger is the logger the loop and its controller log to, with
	// "component" set to Name (default slog.Default()).
	Logger *slog.Logger
	// OnSync, if set, is told how long each pass took (the hub's /metrics
	// histogram of controller latencies).
	OnSync func(time.Duration)
}

// Loop runs a controller's passes; see the package comment.
type Loop struct {
	opts  Options
	log   *slog.Logger
	poke  chan struct{}
	clock clock // timers and the pass's wall time; a fake in tests
}

// New returns a Loop with opts' defaults filled in; call Run to start it.
func New(opts Options) *Loop {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.MaxWindow <= 0 {
		opts.MaxWindow = DefaultMaxWindow
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Loop{
		opts:  opts,
		log:   opts.Logger.With("component", opts.Name),
		poke:  make(chan struct{}, 1),
		clock: realClock{},
	}
}

// Now returns the time by the controller's clock (Options.Now).
func (l *Loop) Now() time.Time { return l.opts.Now() }

// Logger returns the controller's logger.
func (l *Loop) Logger() *slog.Logger { return l.log }

// Poke asks for a pass soon, without waiting for it. Pokes made while a
// pass is due coalesce into it.
func (l *Loop) Poke() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// Run runs passes until ctx ends (or the watch closes, as when the store
// closes); it returns nil then, or Init's error, or at once an error that
// names what the Options lack.
func (l *Loop) Run(ctx context.Context) error {
	if l.opts.Pass == nil {
		return fmt.Errorf("controller %q: no Pass", l.opts.Name)
	}
	if len(l.opts.Kinds) > 0 && l.opts.Store == nil {
		return fmt.Errorf("controller %q: kinds to watch (%v) but no Store", l.opts.Name, l.opts.Kinds)
	}
	var events <-chan store.Event // nil, which never delivers, without Kinds
	if len(l.opts.Kinds) > 0 {
		events = l.opts.Store.Watch(ctx, l.opts.Kinds...)
	}
	if l.opts.Init != nil {
		if err := l.opts.Init(ctx); err != nil {
			return err
		}
	}
	resync := l.clock.NewTicker(l.opts.Resync)
	defer resync.Stop()
	wake := l.clock.NewTimer()
	defer wake.Stop()
	gather := l.clock.NewTimer()
	defer gather.Stop()
	why := Started
	for {
		window, next := l.pass(ctx, why)
		var wakeC <-chan time.Time
		if !next.IsZero() {
			wake.Reset(max(next.Sub(l.opts.Now()), 0))
			wakeC = wake.C()
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			l.event(ev)
			if !l.gather(ctx, events, gather, window) {
				return nil
			}
			why = Changed
		case <-resync.C():
			why = Resynced
		case <-wakeC:
			why = Woken
		case <-l.poke:
			why = Poked
		}
		wake.Stop()
	}
}

// pass runs one pass and reports on it; it returns how long to gather
// events before the next one, and when to run again.
func (l *Loop) pass(ctx context.Context, why Cause) (window time.Duration, wake time.Time) {
	began := l.clock.Now()
	wake, err := l.opts.Pass(ctx, why)
	if err != nil {
		l.log.Error("sync", "cause", why.String(), "err", err)
	}
	took := l.clock.Since(began)
	if l.opts.OnSync != nil {
		l.opts.OnSync(took)
	}
	return Window(took, l.opts.Debounce, l.opts.MaxWindow), wake
}

// Window is how long a loop gathers events after a pass that took took:
// at least debounce, otherwise as long as the pass took, up to maxWindow.
func Window(took, debounce, maxWindow time.Duration) time.Duration {
	return max(debounce, min(took, maxWindow))
}

func (l *Loop) event(ev store.Event) {
	if l.opts.Event != nil {
		l.opts.Event(ev)
	}
}

// gather takes the rest of a burst of events for window. It returns false
// when the loop must stop (ctx ended, or the watch closed).
func (l *Loop) gather(ctx context.Context, events <-chan store.Event, t timer, window time.Duration) bool {
	t.Reset(window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-events:
			if !ok {
				return false
			}
			l.event(ev)
		case <-t.C():
			return true
		}
	}
}
