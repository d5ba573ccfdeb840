package controller

import (
	"sync"
	"time"
)

// fakeClock is a clock that moves only when a test advances it. Every
// timer Reset is reported on armed, with its duration, so that a test can
// wait until the loop has got as far as arming it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	armed  chan time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), armed: make(chan time.Duration, 1000)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Since(t time.Time) time.Duration { return f.Now().Sub(t) }

func (f *fakeClock) NewTimer() timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clk: f, c: make(chan time.Time, 1)}
	f.timers = append(f.timers, t)
	return t
}

func (f *fakeClock) NewTicker(d time.Duration) ticker {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clk: f, c: make(chan time.Time, 1), at: f.now.Add(d), period: d, active: true}
	f.timers = append(f.timers, t)
	return t
}

// Advance moves the clock by d and fires the timers due by then, as the
// real ones do: a ticker that missed ticks delivers one.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, t := range f.timers {
		if !t.active || t.at.After(f.now) {
			continue
		}
		t.fire(f.now)
		if t.period == 0 {
			t.active = false
			continue
		}
		for !t.at.After(f.now) {
			t.at = t.at.Add(t.period)
		}
	}
}

type fakeTimer struct {
	clk    *fakeClock
	c      chan time.Time
	at     time.Time
	period time.Duration // tickers
	active bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

// fire sends now unless a tick is already waiting. The caller holds the
// clock's lock.
func (t *fakeTimer) fire(now time.Time) {
	select {
	case t.c <- now:
	default:
	}
}

func (t *fakeTimer) Reset(d time.Duration) {
	t.clk.mu.Lock()
	t.drain()
	t.at, t.active = t.clk.now.Add(d), true
	if d <= 0 {
		t.fire(t.clk.now)
		t.active = false
	}
	t.clk.mu.Unlock()
	t.clk.armed <- d
}

func (t *fakeTimer) Stop() {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	t.drain()
	t.active = false
}

func (t *fakeTimer) drain() {
	select {
	case <-t.c:
	default:
	}
}
