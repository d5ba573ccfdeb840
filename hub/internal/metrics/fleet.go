package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// FleetOptions configure a Fleet.
type FleetOptions struct {
	Series Series
	// Retention is how long samples are kept (default 24 h); it must match
	// the Series'.
	Retention time.Duration
	// FlushInterval is how long samples gather before one write (default 1 s).
	FlushInterval time.Duration
	// MaxPending bounds the samples waiting for a write (default 200,000);
	// beyond it new samples are dropped and counted.
	MaxPending int
	// MaxSkew is how far in the future a sample may be stamped (an agent's
	// clock running ahead) and still be taken (default 10 min).
	MaxSkew time.Duration
	// Stale is the age past which a node's latest sample no longer counts
	// as its current usage (default 5 min): `top`, Prometheus and the
	// pressure conditions leave it out.
	Stale  time.Duration
	Logger *slog.Logger
	Now    func() time.Time
}

// Fleet receives samples from ingest, writes them to the series store in
// batches, and keeps each node's latest sample in memory.
type Fleet struct {
	opts FleetOptions
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	latest  map[string]wire.MetricSample
	pending []Entry
	changed map[string]bool

	received, written, dropped, rejected atomic.Uint64
	notify                               chan struct{}
}

// NewFleet returns a Fleet; call Load, then Run.
func NewFleet(opts FleetOptions) *Fleet {
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 200_000
	}
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = 10 * time.Minute
	}
	if opts.Stale <= 0 {
		opts.Stale = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Fleet{
		opts: opts, log: opts.Logger.With("component", "metrics"),
		wake:    make(chan struct{}, 1),
		notify:  make(chan struct{}, 1),
		latest:  map[string]wire.MetricSample{},
		changed: map[string]bool{},
	}
}

// Load reads every node's latest sample from the series store, so that a
// restarted hub shows usage before the next samples arrive.
func (f *Fleet) Load() error {
	latest, err := f.opts.Series.Latest()
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for node, s := range latest {
		if cur, ok := f.latest[node]; !ok || s.Time.After(cur.Time) {
			f.latest[node] = s
			f.changed[node] = true
		}
	}
	return nil
}

// Add takes a batch a node sent. It is called by ingest, on the MQTT
// receive path: it checks and queues, and never waits for the disk.
func (f *Fleet) Add(node string, b wire.MetricsBatch) {
	now := f.opts.Now()
	oldest, newest := now.Add(-f.opts.Retention), now.Add(f.opts.MaxSkew)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range b.Samples {
		f.received.Add(1)
		if s.Time.IsZero() || !s.Time.After(oldest) || s.Time.After(newest) || s.WindowSeconds < 0 || s.WindowSeconds > f.opts.Retention.Seconds() {
			f.rejected.Add(1)
			continue
		}
		if len(f.pending) >= f.opts.MaxPending {
			f.dropped.Add(1)
			continue
		}
		s.Time = s.Time.UTC()
		f.pending = append(f.pending, Entry{Node: node, Sample: s})
		if cur, ok := f.latest[node]; !ok || s.Time.After(cur.Time) {
			f.latest[node] = s
			f.changed[node] = true
		}
	}
	select {
	case f.wake <- struct{}{}:
	default:
	}
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// Changed is signalled (without blocking) when a node's latest sample
// changes; TakeChanged says which.
func (f *Fleet) Changed() <-chan struct{} { return f.notify }

// TakeChanged returns the nodes whose latest sample changed since the last
// call.
func (f *Fleet) TakeChanged() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.changed))
	for n := range f.changed {
		out = append(out, n)
	}
	f.changed = map[string]bool{}
	return out
}

// Run writes queued samples every FlushInterval until ctx ends, then
// writes what is left.
func (f *Fleet) Run(ctx context.Context) error {
	t := time.NewTicker(f.opts.FlushInterval)
	defer t.Stop()
	full := false
	for {
		select {
		case <-ctx.Done():
			return f.Flush()
		case <-t.C:
		}
		err := f.Flush()
		switch {
		case errors.Is(err, diskguard.ErrFull):
			// Said once per spell: a full disk refuses every batch.
			if !full {
				f.log.Warn("metric samples are dropped while the disk is full", "err", err)
			}
			full = true
		case err != nil:
			f.log.Error("write metric samples; they are lost", "err", err)
		default:
			full = false
		}
	}
}

// Flush writes every queued sample now.
func (f *Fleet) Flush() error {
	f.mu.Lock()
	batch := f.pending
	f.pending = nil
	f.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := f.opts.Series.Append(batch); err != nil {
		f.dropped.Add(uint64(len(batch)))
		return fmt.Errorf("write %d samples: %w", len(batch), err)
	}
	f.written.Add(uint64(len(batch)))
	return nil
}

// Stats counts samples received, written, dropped (queue full or a failed
// write) and rejected (outside retention, from the future, malformed).
type Stats struct {
	Received, Written, Dropped, Rejected uint64
}

// Stats returns the counters.
func (f *Fleet) Stats() Stats {
	return Stats{Received: f.received.Load(), Written: f.written.Load(), Dropped: f.dropped.Load(), Rejected: f.rejected.Load()}
}

// Latest returns node's newest sample, stale or not.
func (f *Fleet) Latest(node string) (wire.MetricSample, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.latest[node]
	return s, ok
}

// Current returns every node's latest sample that is not stale.
func (f *Fleet) Current() map[string]wire.MetricSample {
	cutoff := f.opts.Now().Add(-f.opts.Stale)
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]wire.MetricSample, len(f.latest))
	for n, s := range f.latest {
		if s.Time.After(cutoff) {
			out[n] = s
		}
	}
	return out
}

// IsCurrent reports whether a sample is recent enough to stand for the
// node's usage now.
func (f *Fleet) IsCurrent(s wire.MetricSample) bool {
	return s.Time.After(f.opts.Now().Add(-f.opts.Stale))
}

// Range returns node's kept samples since from, oldest first. Samples
// still waiting to be written are included.
func (f *Fleet) Range(node string, from time.Time) ([]wire.MetricSample, error) {
	to := f.opts.Now().Add(f.opts.MaxSkew)
	stored, err := f.opts.Series.Range(node, from, to)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	var queued []wire.MetricSample
	for _, e := range f.pending {
		if e.Node == node && !e.Sample.Time.Before(from) {
			queued = append(queued, e.Sample)
		}
	}
	f.mu.Unlock()
	if len(queued) == 0 {
		return stored, nil
	}
	return mergeByTime(stored, queued), nil
}

// mergeByTime merges two lists into one sorted by time, the second
// winning on equal times.
func mergeByTime(a, b []wire.MetricSample) []wire.MetricSample {
	byTime := make(map[int64]wire.MetricSample, len(a)+len(b))
	for _, s := range a {
		byTime[s.Time.UnixNano()] = s
	}
	for _, s := range b {
		byTime[s.Time.UnixNano()] = s
	}
	out := make([]wire.MetricSample, 0, len(byTime))
	for _, s := range byTime {
		out = append(out, s)
	}
	sortSamples(out)
	return out
}
