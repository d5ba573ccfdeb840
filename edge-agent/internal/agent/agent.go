// Package agent wires one edge agent together: the local state, the
// containerd runtime, the reconciler and the MQTT link to the hub. The
// persisted snapshot is the agent's only source of truth for what to run, so
// everything but reporting works without the hub.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/state"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Config is the agent's configuration.
type Config struct {
	NodeName string
	Labels   map[string]string
	Broker   string
	StateDir string
	// HeartbeatInterval is how often the agent says it is alive (default 10 s).
	HeartbeatInterval time.Duration
	// Resync is the reconciler's full-resync period (default 10 s).
	Resync  time.Duration
	Version string
	Logger  *slog.Logger
	// ConnectRuntime opens the container runtime; the agent retries it
	// with back-off until it succeeds, so the agent may start before
	// containerd does.
	ConnectRuntime func(ctx context.Context) (Runtime, error)
}

// Runtime is the container runtime as the agent needs it: the reconciler's
// interface plus facts for the hello.
type Runtime interface {
	reconcile.Runtime
	Version(ctx context.Context) (string, error)
	Close() error
}

// Agent is a running edge agent.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	state *state.Store
	link  *link.Session
	rec   *reconcile.Reconciler
	facts Facts

	mu         sync.Mutex
	lastReport *wire.PodStatusReport
	reportDue  chan struct{}
}

// Run runs the agent until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName), reportDue: make(chan struct{}, 1)}

	st, err := state.Open(filepath.Join(cfg.StateDir, "state"), a.log)
	if err != nil {
		return err
	}
	defer st.Close()
	a.state = st
	if snap, _ := st.Snapshot(); snap.Revision > 0 {
		a.log.Info("loaded desired snapshot from local state", "revision", snap.Revision, "pods", len(snap.Pods))
	}

	a.link = link.New(link.Options{
		Broker:   cfg.Broker,
		ClientID: "flotilla-agent-" + cfg.NodeName,
		Will: &link.Will{
			Topic:    wire.NodeTopic(cfg.NodeName, wire.TopicOnline),
			Payload:  a.mustEncodeOnline(false),
			Retained: true,
		},
		OnConnect: a.onConnect,
		Logger:    a.log,
	})
	a.link.Subscribe(wire.NodeTopic(cfg.NodeName, wire.TopicDesired), 1, a.onDesired)

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run := func(f func(ctx context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(func(ctx context.Context) { st.RunGC(ctx, 10*time.Minute) })

	rt, err := a.connectRuntime(ctx)
	if err != nil {
		return nil // ctx ended while waiting for the runtime
	}
	defer rt.Close()
	a.facts = gatherFacts(ctx, cfg, rt)

	a.rec = reconcile.New(reconcile.Config{
		Runtime: rt,
		History: st,
		Desired: st.Snapshot,
		Report:  a.queueReport,
		DataDir: cfg.StateDir,
		HostIP:  a.facts.InternalIP,
		Resync:  cfg.Resync,
		Logger:  a.log,
	})
	run(func(ctx context.Context) { _ = a.rec.Run(ctx) })
	run(func(ctx context.Context) { _ = a.link.Run(ctx) })
	run(a.heartbeats)
	run(a.reports)
	<-ctx.Done()
	return nil
}

// connectRuntime retries the runtime connection with back-off until it
// works or ctx ends.
func (a *Agent) connectRuntime(ctx context.Context) (Runtime, error) {
	for attempt := 1; ; attempt++ {
		rt, err := a.cfg.ConnectRuntime(ctx)
		if err == nil {
			return rt, nil
		}
		a.log.Warn("container runtime not reachable; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(link.Backoff(attempt, 500*time.Millisecond, 10*time.Second)):
		}
	}
}

// onDesired handles a snapshot from the hub: persist it if it is newer, then
// wake the reconciler. It runs on the MQTT receive path.
func (a *Agent) onDesired(topic string, payload []byte) {
	env, err := wire.Decode(topic, payload)
	if err != nil {
		a.log.Warn("dropping desired message", "err", err)
		return
	}
	var snap wire.Snapshot
	if err := wire.DecodePayload(env, topic, &snap); err != nil {
		a.log.Warn("dropping desired message", "err", err)
		return
	}
	if snap.Node != a.cfg.NodeName {
		a.log.Warn("dropping snapshot for another node", "topic", topic, "snapshotNode", snap.Node)
		return
	}
	accepted, err := a.state.AcceptSnapshot(snap)
	if err != nil {
		a.log.Error("persist snapshot", "revision", snap.Revision, "err", err)
		return
	}
	if !accepted {
		return
	}
	a.log.Info("accepted desired snapshot", "revision", snap.Revision, "pods", len(snap.Pods))
	if a.rec != nil {
		a.rec.Wake()
	}
	a.signalReport()
}

// onConnect announces the node and re-sends its current status.
func (a *Agent) onConnect(ctx context.Context) {
	if err := a.publish(ctx, wire.TopicOnline, wire.TypeOnline, wire.Online{Online: true}, true); err != nil {
		a.log.Warn("publish online", "err", err)
	}
	snap, _ := a.state.Snapshot()
	hello := wire.Hello{
		Labels:           a.facts.Labels,
		Info:             a.facts.Info,
		Capacity:         a.facts.Capacity,
		Addresses:        a.facts.Addresses,
		ObservedRevision: snap.Revision,
	}
	if err := a.publish(ctx, wire.TopicStatus, wire.TypeHello, hello, false); err != nil {
		a.log.Warn("publish hello", "err", err)
	}
	a.signalReport()
}

// queueReport keeps the newest pod status for the reporter; it never
// blocks the reconciler.
func (a *Agent) queueReport(r wire.PodStatusReport) {
	a.mu.Lock()
	a.lastReport = &r
	a.mu.Unlock()
	a.signalReport()
}

func (a *Agent) signalReport() {
	select {
	case a.reportDue <- struct{}{}:
	default:
	}
}

// reports publishes the newest pod status whenever it changes and after
// every reconnect. Status is a full report, so only the newest matters.
func (a *Agent) reports(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.reportDue:
		}
		a.mu.Lock()
		r := a.lastReport
		a.mu.Unlock()
		if r == nil || !a.link.Connected() {
			continue
		}
		if err := a.publish(ctx, wire.TopicStatus, wire.TypePodStatus, r, false); err != nil && ctx.Err() == nil {
			a.log.Warn("publish pod status", "err", err)
		}
	}
}

// heartbeats tells the hub the node is alive and which revision it runs.
func (a *Agent) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !a.link.Connected() {
			continue
		}
		snap, _ := a.state.Snapshot()
		if err := a.publish(ctx, wire.TopicStatus, wire.TypeHeartbeat, wire.Heartbeat{ObservedRevision: snap.Revision}, false); err != nil &&
			!errors.Is(err, link.ErrNotConnected) && ctx.Err() == nil {
			a.log.Warn("publish heartbeat", "err", err)
		}
	}
}

func (a *Agent) publish(ctx context.Context, kind, typ string, payload any, retained bool) error {
	seq, err := a.state.NextSeq()
	if err != nil {
		return err
	}
	b, err := wire.Encode(typ, a.cfg.NodeName, seq, time.Now(), payload)
	if err != nil {
		return err
	}
	return a.link.Publish(ctx, wire.NodeTopic(a.cfg.NodeName, kind), 1, retained, b)
}

func (a *Agent) mustEncodeOnline(online bool) []byte {
	// The will's sequence number is 0: it is the broker speaking for the
	// agent, and the hub orders online flags by their arrival.
	b, err := wire.Encode(wire.TypeOnline, a.cfg.NodeName, 0, time.Now(), wire.Online{Online: online})
	if err != nil {
		panic(fmt.Sprintf("encode online flag: %v", err)) // a fixed struct always encodes
	}
	return b
}

// EnsureDirs creates the agent's state directory.
func EnsureDirs(stateDir string) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir %s: %w", stateDir, err)
	}
	return nil
}
