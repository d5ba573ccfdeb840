package store

import (
	"context"
	"slices"
	"sync"
)

// watchBuffer is how many events a watcher may fall behind before it loses
// events and is sent an Overflow instead.
const watchBuffer = 1024

// watchers fans committed changes out to the store's watchers. Writers call
// publish after each commit, in commit order; publish never blocks.
type watchers struct {
	mu     sync.Mutex
	closed bool
	subs   map[*watcher]struct{}
}

// watcher is one Watch call. Its channel has one slot more than
// watchBuffer: events only ever fill watchBuffer slots, so the spare slot
// can always take the Overflow the moment an event has to be dropped,
// without waiting for the next commit or for a goroutine to retry.
type watcher struct {
	kinds []string // empty: every kind
	ch    chan Event
	// overflowed is true while the Overflow sent last is still unread.
	// Nothing is sent after that Overflow, so it is the channel's last
	// element and is unread exactly while the channel is not empty.
	overflowed bool
	stop       func() bool // unregisters the context.AfterFunc
}

// add registers a watcher for kinds until ctx ends or the store closes,
// when its channel is closed. No goroutine runs while ctx is live:
// context.AfterFunc starts one only to close the channel.
func (w *watchers) add(ctx context.Context, kinds []string) <-chan Event {
	sub := &watcher{kinds: slices.Clone(kinds), ch: make(chan Event, watchBuffer+1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		close(sub.ch)
		return sub.ch
	}
	if w.subs == nil {
		w.subs = make(map[*watcher]struct{})
	}
	w.subs[sub] = struct{}{}
	sub.stop = context.AfterFunc(ctx, func() { w.remove(sub) })
	return sub.ch
}

// remove closes one watcher's channel, if close has not done so already.
func (w *watchers) remove(sub *watcher) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.subs[sub]; !ok {
		return
	}
	delete(w.subs, sub)
	close(sub.ch)
}

// publish delivers the events of one commit to every interested watcher.
func (w *watchers) publish(events []Event) {
	if len(events) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for sub := range w.subs {
		for _, ev := range events {
			if sub.wants(ev.Key.Kind) {
				sub.offer(ev)
			}
		}
	}
}

// close closes every watcher's channel; later add calls get closed channels.
func (w *watchers) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for sub := range w.subs {
		sub.stop()
		close(sub.ch)
	}
	w.subs = nil
}

func (sub *watcher) wants(kind string) bool {
	return len(sub.kinds) == 0 || slices.Contains(sub.kinds, kind)
}

// offer sends ev without blocking. The caller holds watchers.mu, so offer
// is the channel's only sender and len(sub.ch) can only shrink meanwhile.
func (sub *watcher) offer(ev Event) {
	if sub.overflowed {
		if len(sub.ch) > 0 {
			// The unread Overflow covers ev: ev was committed before the
			// watcher reads that Overflow and re-reads the store.
			return
		}
		sub.overflowed = false
	}
	if len(sub.ch) < watchBuffer {
		sub.ch <- ev
		return
	}
	sub.ch <- Event{Type: Overflow}
	sub.overflowed = true
}
