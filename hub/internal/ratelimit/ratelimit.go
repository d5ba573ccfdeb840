// Package ratelimit bounds how fast each source (a node, on ingest) may
// send: one token bucket per key, refilled at a steady rate up to a burst.
// A caller either asks whether a token is there (Allow, which refuses) or
// reserves one and waits its turn (Reserve, which paces). It keeps a
// bounded number of buckets, so that a flood of new keys costs bounded
// memory, and needs no goroutine: buckets are refilled when they are
// asked, and full (idle) ones are dropped when room is needed.
package ratelimit

import (
	"errors"
	"sync"
	"time"
)

// Options configure a Limiter.
type Options struct {
	// Rate is how many tokens a key regains per second; Burst how many it
	// may hold (and so spend at once). Both must be positive.
	Rate  float64
	Burst float64
	// MaxKeys bounds the buckets kept (default 100,000). When it is
	// reached and no bucket is idle, a new key is refused until one is.
	MaxKeys int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Limiter is a set of token buckets, one per key. It is safe for
// concurrent use.
type Limiter struct {
	opts Options

	mu      sync.Mutex
	buckets map[string]*bucket
	// sweepAt is when full buckets were last dropped.
	sweepAt time.Time
	// overflow is the one bucket Reserve shares among the keys that find
	// no room in buckets.
	overflow *bucket
	stats    Stats
}

type bucket struct {
	// tokens is negative while Reserve has lent the bucket tokens it has
	// not earned yet.
	tokens float64
	at     time.Time // when tokens was right
}

// Stats counts what the limiter decided.
type Stats struct {
	Allowed, Refused uint64
	// RefusedNoRoom counts refusals of new keys while MaxKeys buckets were
	// in use and none was idle.
	RefusedNoRoom uint64
	// Delayed counts the reservations that had to wait, and Delay their
	// waits added up.
	Delayed uint64
	Delay   time.Duration
	// Shared counts the reservations of keys that found no room and
	// shared the overflow bucket.
	Shared uint64
}

// New returns a Limiter.
func New(opts Options) (*Limiter, error) {
	if opts.Rate <= 0 || opts.Burst <= 0 {
		return nil, errors.New("ratelimit: rate and burst must be positive")
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = 100_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Limiter{opts: opts, buckets: map[string]*bucket{}}, nil
}

// Allow takes one token from key's bucket and reports whether there was
// one.
func (l *Limiter) Allow(key string) bool { return l.AllowN(key, 1) }

// AllowN takes n tokens (a message's cost, such as its size in KiB) from
// key's bucket if it holds that many, and reports whether it did. A cost
// above the burst is never allowed.
func (l *Limiter) AllowN(key string, n float64) bool {
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now)
	if b == nil {
		l.stats.Refused++
		l.stats.RefusedNoRoom++
		return false
	}
	l.refill(b, now)
	if b.tokens < n {
		l.stats.Refused++
		return false
	}
	b.tokens -= n
	l.stats.Allowed++
	return true
}

// Reserve takes one token from key's bucket and returns how long the
// caller must wait before it acts on what the token pays for: zero while
// the bucket holds a token, otherwise until the bucket will have earned
// the one it lends. It never refuses. A caller that waits out each
// reservation before making the next is paced at Rate once its Burst is
// spent, and its waits are at most 1/Rate each; concurrent callers of one
// key queue up behind each other's debts. A key that finds no room among
// MaxKeys busy buckets shares one overflow bucket with every other such
// key, so a flood of new keys is paced as one.
func (l *Limiter) Reserve(key string) time.Duration {
	now := l.opts.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now)
	if b == nil {
		if l.overflow == nil {
			l.overflow = &bucket{tokens: l.opts.Burst, at: now}
		}
		b = l.overflow
		l.stats.Shared++
	}
	l.refill(b, now)
	b.tokens--
	if b.tokens >= 0 {
		l.stats.Allowed++
		return 0
	}
	wait := time.Duration(-b.tokens / l.opts.Rate * float64(time.Second))
	l.stats.Delayed++
	l.stats.Delay += wait
	return wait
}

// bucketLocked returns key's bucket, making one if there is room, or nil.
// The caller holds l.mu.
func (l *Limiter) bucketLocked(key string, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.opts.MaxKeys && !l.sweepLocked(now) {
			return nil
		}
		b = &bucket{tokens: l.opts.Burst, at: now}
		l.buckets[key] = b
	}
	return b
}

// refill adds what key earned since its bucket was last looked at.
func (l *Limiter) refill(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.at).Seconds(); elapsed > 0 {
		b.tokens = min(l.opts.Burst, b.tokens+elapsed*l.opts.Rate)
	}
	b.at = now
}

// sweepLocked drops the buckets that have refilled completely: they hold
// nothing a new bucket would not (a bucket in debt takes longer to get
// there). It runs at most once per refill period, so a full table under a
// flood costs one scan per period, and reports whether there is room now.
func (l *Limiter) sweepLocked(now time.Time) bool {
	full := time.Duration(l.opts.Burst / l.opts.Rate * float64(time.Second))
	if now.Sub(l.sweepAt) >= min(full, time.Second) || l.sweepAt.IsZero() {
		l.sweepAt = now
		for k, b := range l.buckets {
			if now.Sub(b.at).Seconds()*l.opts.Rate >= l.opts.Burst-b.tokens {
				delete(l.buckets, k)
			}
		}
	}
	return len(l.buckets) < l.opts.MaxKeys
}

// Forget drops key's bucket, as when a node is deleted.
func (l *Limiter) Forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.buckets, key)
}

// Len returns the number of buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Stats returns the counts so far.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}
