package controller

import "time"

// clock is where a Loop gets its timers and measures its passes: the real
// one, or a fake that a test moves by hand.
type clock interface {
	Now() time.Time
	Since(t time.Time) time.Duration
	// NewTimer returns a stopped timer.
	NewTimer() timer
	NewTicker(d time.Duration) ticker
}

// timer is a time.Timer. Reset and Stop leave nothing stale in its
// channel (as time.Timer does since Go 1.23).
type timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

type ticker interface {
	C() <-chan time.Time
	Stop()
}

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) Since(t time.Time) time.Duration { return time.Since(t) }

func (realClock) NewTimer() timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return realTimer{t}
}

func (realClock) NewTicker(d time.Duration) ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }
