package store

import "sync"

// gate tracks the calls in flight on a store so that Close can wait for them
// to finish before it releases anything, and so that calls made after Close
// fail with ErrClosed instead of touching released resources.
type gate struct {
	mu     sync.Mutex
	idle   sync.Cond
	closed bool
	active int
}

// enter admits one call; it reports false once the gate is closed. Every
// successful enter must be paired with one leave.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.active++
	return true
}

// leave ends a call admitted by enter.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active--
	if g.active == 0 && g.idle.L != nil {
		g.idle.Broadcast()
	}
}

// close refuses new calls and waits until the calls in flight have left. It
// reports false when the gate was already closed. A call in flight that
// enters again (a View inside an Update) is refused rather than waited for,
// so close cannot deadlock on it.
func (g *gate) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.closed = true
	if g.idle.L == nil {
		g.idle.L = &g.mu
	}
	for g.active > 0 {
		g.idle.Wait()
	}
	return true
}
