package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/sim"
)

// Config is one simulated fleet.
type Config struct {
	Broker string
	// Nodes is how many agents to run; they are named Prefix0000…
	Nodes  int
	Prefix string
	Labels map[string]string
	// ConnectRate is how many agents start per second (0: all at once).
	ConnectRate float64
	Runtime     sim.RuntimeOptions
	// MetricsInterval, HeartbeatInterval, KeepAlive and Resync are each
	// agent's (0: the agent's defaults; MetricsInterval 0 disables
	// metrics).
	MetricsInterval   time.Duration
	HeartbeatInterval time.Duration
	KeepAlive         time.Duration
	Resync            time.Duration
	Logger            *slog.Logger
}

// Fleet runs simulated agents and keeps the simulator's own account of
// what their containers did, by image: when each container was created,
// started and first passed a probe.
type Fleet struct {
	cfg     Config
	started atomic.Int64 // agents started
	exited  atomic.Int64 // agents whose Run returned

	mu       sync.Mutex
	runtimes []*sim.Runtime
	created  map[string]time.Time // container ID → created
	images   map[string]string    // container ID → image
	byImage  map[string]*imageStats
}

type imageStats struct {
	created, started, ready, exited int
	// toStart and toReady are created → started and created → first
	// probe success, one per container.
	toStart, toReady []time.Duration
	firstCreated     time.Time
	lastReady        time.Time
}

// NewFleet returns a fleet; Run starts it.
func NewFleet(cfg Config) *Fleet {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Fleet{cfg: cfg, created: map[string]time.Time{}, images: map[string]string{}, byImage: map[string]*imageStats{}}
}

// NodeName is the i-th agent's node name.
func (f *Fleet) NodeName(i int) string { return fmt.Sprintf("%s%05d", f.cfg.Prefix, i) }

// Run starts the agents at the connect rate and runs them until ctx ends,
// then waits for every one to stop.
func (f *Fleet) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var gap time.Duration
	if f.cfg.ConnectRate > 0 {
		gap = time.Duration(float64(time.Second) / f.cfg.ConnectRate)
	}
	begin := time.Now()
	for i := 0; i < f.cfg.Nodes; i++ {
		if gap > 0 {
			if wait := time.Until(begin.Add(time.Duration(i) * gap)); wait > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(wait):
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		opts := f.cfg.Runtime
		opts.OnEvent = f.observe
		rt := sim.NewRuntime(opts)
		f.mu.Lock()
		f.runtimes = append(f.runtimes, rt)
		f.mu.Unlock()
		cfg := sim.AgentConfig{
			NodeName:          f.NodeName(i),
			Labels:            f.cfg.Labels,
			Broker:            f.cfg.Broker,
			Runtime:           rt,
			MetricsInterval:   f.cfg.MetricsInterval,
			HeartbeatInterval: f.cfg.HeartbeatInterval,
			KeepAlive:         f.cfg.KeepAlive,
			Resync:            f.cfg.Resync,
			Logger:            f.cfg.Logger,
		}
		wg.Add(1)
		f.started.Add(1)
		go func() {
			defer wg.Done()
			defer f.exited.Add(1)
			if err := sim.RunAgent(ctx, cfg); err != nil && ctx.Err() == nil {
				f.cfg.Logger.Error("simulated agent stopped", "node", cfg.NodeName, "err", err)
			}
		}()
	}
	<-ctx.Done()
	return nil
}

// observe keeps the simulator's timing; it runs under a runtime's lock.
func (f *Fleet) observe(ev sim.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Kind == sim.Created {
		f.created[ev.ContainerID] = ev.At
		f.images[ev.ContainerID] = ev.Image
	}
	img, ok := f.images[ev.ContainerID]
	if !ok {
		return
	}
	st := f.byImage[img]
	if st == nil {
		st = &imageStats{}
		f.byImage[img] = st
	}
	created := f.created[ev.ContainerID]
	switch ev.Kind {
	case sim.Created:
		st.created++
		if st.firstCreated.IsZero() || ev.At.Before(st.firstCreated) {
			st.firstCreated = ev.At
		}
	case sim.Started:
		st.started++
		st.toStart = append(st.toStart, ev.At.Sub(created))
	case sim.Ready:
		st.ready++
		st.toReady = append(st.toReady, ev.At.Sub(created))
		if ev.At.After(st.lastReady) {
			st.lastReady = ev.At
		}
	case sim.Exited:
		st.exited++
	}
}

// forget drops the timing of containers that no longer exist, so a long
// run's memory stays bounded by the containers alive plus the per-image
// samples.
func (f *Fleet) forget(ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.created, id)
		delete(f.images, id)
	}
}

// Stats is the simulator's account, served as JSON.
type Stats struct {
	Agents       int                   `json:"agents"`
	AgentsExited int                   `json:"agentsExited"`
	Running      int                   `json:"runningContainers"`
	Images       map[string]ImageStats `json:"images"`
}

// ImageStats counts one image's containers and times them from creation.
type ImageStats struct {
	Created int `json:"created"`
	Started int `json:"started"`
	Ready   int `json:"ready"`
	Exited  int `json:"exited"`
	// ToStart and ToReady: created → running, created → first probe
	// success.
	ToStart Quantiles `json:"toStart"`
	ToReady Quantiles `json:"toReady"`
	// Span is from the first container created to the last one ready.
	SpanMS float64 `json:"spanMs"`
}

// Quantiles of a set of durations, in milliseconds.
type Quantiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50Ms"`
	P95 float64 `json:"p95Ms"`
	P99 float64 `json:"p99Ms"`
	Max float64 `json:"maxMs"`
}

// Summarize computes quantiles (nearest rank).
func Summarize(ds []time.Duration) Quantiles {
	if len(ds) == 0 {
		return Quantiles{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	q := func(p float64) float64 {
		i := int(p*float64(len(s))+0.999999) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i]) / float64(time.Millisecond)
	}
	return Quantiles{N: len(s), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: float64(s[len(s)-1]) / float64(time.Millisecond)}
}

// Stats returns the current account.
func (f *Fleet) Stats() Stats {
	f.mu.Lock()
	rts := append([]*sim.Runtime(nil), f.runtimes...)
	out := Stats{Agents: int(f.started.Load()), AgentsExited: int(f.exited.Load()), Images: map[string]ImageStats{}}
	for img, st := range f.byImage {
		is := ImageStats{Created: st.created, Started: st.started, Ready: st.ready, Exited: st.exited,
			ToStart: Summarize(st.toStart), ToReady: Summarize(st.toReady)}
		if !st.lastReady.IsZero() {
			is.SpanMS = float64(st.lastReady.Sub(st.firstCreated)) / float64(time.Millisecond)
		}
		out.Images[img] = is
	}
	candidates := make([]string, 0, len(f.created))
	for id := range f.created {
		candidates = append(candidates, id)
	}
	f.mu.Unlock()
	live := make(map[string]bool, len(candidates))
	for _, rt := range rts {
		out.Running += rt.Running()
		for _, id := range rt.IDs() {
			live[id] = true
		}
	}
	var gone []string
	for _, id := range candidates {
		if !live[id] {
			gone = append(gone, id)
		}
	}
	f.forget(gone)
	return out
}

// Crash makes a random fraction of the running containers exit with code
// 1 and returns how many did; the agents restart them.
func (f *Fleet) Crash(fraction float64) int {
	f.mu.Lock()
	rts := append([]*sim.Runtime(nil), f.runtimes...)
	f.mu.Unlock()
	n := 0
	for _, rt := range rts {
		if rand.Float64() < fraction {
			n += rt.CrashAll(1)
		}
	}
	return n
}
