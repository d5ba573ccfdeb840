// Package metrics is the agent's sampler. Every interval it reads the
// board's usage through gopsutil and its containers' cgroup usage through
// the runtime, and hands one sample to the outbox as telemetry. While the
// link to the hub is down it merges the samples of each resolution bucket
// (one minute by default) into one before queueing it, so a day offline
// costs 1,440 small outbox entries rather than 8,640, and if the outbox
// still fills, telemetry is what it drops first.
package metrics

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// DefaultInterval is the sampling interval unless configured.
const DefaultInterval = 10 * time.Second

// DefaultOfflineResolution is the resolution of samples taken offline.
const DefaultOfflineResolution = time.Minute

// NodeSource reads the board's usage; HostSampler is the real one.
type NodeSource interface {
	Sample(ctx context.Context, now time.Time) (wire.NodeSample, error)
}

// Config configures a Collector.
type Config struct {
	// Interval is the sampling period; zero or less disables sampling.
	Interval time.Duration
	// OfflineResolution is the bucket samples are merged into while
	// offline (default one minute; at most one sample per bucket is
	// queued).
	OfflineResolution time.Duration
	// Node reads the board's usage (default: a HostSampler for StateDir).
	Node     NodeSource
	StateDir string
	// Online reports whether the link to the hub is up.
	Online func() bool
	// Send queues a batch for the hub; it must not block for long.
	Send func(wire.MetricsBatch)
	// Restarts returns each container's restart count (optional).
	Restarts func() map[ContainerKey]int32
	// StoreFull reports whether the agent's state store refuses writes
	// for a full disk (optional); each sample carries it.
	StoreFull func() bool
	Logger    *slog.Logger
}

// Collector samples the node. Its methods other than SetRuntime are
// called from Run's goroutine only.
type Collector struct {
	cfg Config
	log *slog.Logger
	rt  atomic.Pointer[runtimeRef]

	pods     podSampler
	last     time.Time
	lastErr  string
	bucket   []wire.MetricSample
	bucketID int64
	samples  atomic.Uint64
}

type runtimeRef struct{ Runtime }

// New returns a collector; call Run to start sampling.
func New(cfg Config) *Collector {
	if cfg.OfflineResolution <= 0 {
		cfg.OfflineResolution = DefaultOfflineResolution
	}
	if cfg.Node == nil {
		cfg.Node = &HostSampler{StateDir: cfg.StateDir}
	}
	if cfg.Online == nil {
		cfg.Online = func() bool { return true }
	}
	if cfg.Send == nil {
		cfg.Send = func(wire.MetricsBatch) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Collector{cfg: cfg, log: cfg.Logger.With("component", "metrics")}
}

// SetRuntime gives the collector the container runtime once it is
// reachable; until then samples carry no pods.
func (c *Collector) SetRuntime(rt Runtime) {
	if rt == nil {
		c.rt.Store(nil)
		return
	}
	c.rt.Store(&runtimeRef{rt})
}

// Samples counts the samples taken so far.
func (c *Collector) Samples() uint64 { return c.samples.Load() }

// Run samples every interval until ctx ends; a merged bucket still open
// then is queued before it returns.
func (c *Collector) Run(ctx context.Context) error {
	if c.cfg.Interval <= 0 {
		return nil
	}
	// Prime the rate counters so the first sample sent has rates.
	c.Collect(ctx, time.Now())
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.flushBucket()
			return nil
		case now := <-t.C:
			s := c.Collect(ctx, now)
			c.deliver(s, c.cfg.Online())
		}
	}
}

// Collect takes one sample at now.
func (c *Collector) Collect(ctx context.Context, now time.Time) wire.MetricSample {
	window := c.cfg.Interval
	if !c.last.IsZero() && now.After(c.last) {
		window = now.Sub(c.last)
	}
	c.last = now
	s := wire.MetricSample{Time: now.UTC(), WindowSeconds: window.Seconds()}
	node, err := c.cfg.Node.Sample(ctx, now)
	s.Node = node
	c.noteErr("read node usage", err)
	if c.cfg.StoreFull != nil {
		s.Node.StateStoreFull = c.cfg.StoreFull()
	}
	if ref := c.rt.Load(); ref != nil {
		sctx, cancel := context.WithTimeout(ctx, max(c.cfg.Interval, 5*time.Second))
		stats, err := ref.ContainerStats(sctx)
		cancel()
		c.noteErr("read container usage", err)
		var restarts map[ContainerKey]int32
		if c.cfg.Restarts != nil {
			restarts = c.cfg.Restarts()
		}
		s.Pods = c.pods.sample(stats, restarts)
	}
	Round(&s)
	c.samples.Add(1)
	return s
}

// noteErr logs a sampling error when it differs from the previous one, so
// a board without (say) swap accounting does not log every interval.
func (c *Collector) noteErr(what string, err error) {
	if err == nil {
		return
	}
	if msg := what + ": " + err.Error(); msg != c.lastErr {
		c.lastErr = msg
		c.log.Warn("metrics sampling incomplete", "what", what, "err", err)
	}
}

// deliver queues a sample: at once while online, merged per bucket while
// offline. Coming back online first queues the bucket gathered so far, so
// the hub receives the samples in time order.
func (c *Collector) deliver(s wire.MetricSample, online bool) {
	if online {
		c.flushBucket()
		c.cfg.Send(wire.MetricsBatch{Samples: []wire.MetricSample{s}})
		return
	}
	id := s.Time.UnixNano() / int64(c.cfg.OfflineResolution)
	if len(c.bucket) > 0 && id != c.bucketID {
		c.flushBucket()
	}
	c.bucketID = id
	c.bucket = append(c.bucket, s)
}

// flushBucket queues the merged offline bucket, if any.
func (c *Collector) flushBucket() {
	if len(c.bucket) == 0 {
		return
	}
	merged := Merge(c.bucket)
	Round(&merged)
	c.bucket = c.bucket[:0]
	c.cfg.Send(wire.MetricsBatch{Samples: []wire.MetricSample{merged}})
}
