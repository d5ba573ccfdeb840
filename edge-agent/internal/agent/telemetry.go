package agent

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/logs"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/metrics"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// stateFull reports whether the local state refuses writes for a full
// disk: each sample says so, and the hub sets the node's DiskPressure.
func (a *Agent) stateFull() bool { return a.diskFull != nil && a.diskFull() }

// telemetry is the agent's metrics collector and container-log server.
type telemetry struct {
	collector *metrics.Collector
	logs      *logs.Server
}

// startTelemetry makes the collector and the log server and starts them
// in g, on ctx. Samples go through the outbox as telemetry (dropped first
// when it is full); log replies go straight to the broker, since a late
// one is worthless.
func (a *Agent) startTelemetry(ctx context.Context, g *errgroup.Group) {
	a.tel.collector = metrics.New(metrics.Config{
		Interval:          a.cfg.MetricsInterval,
		OfflineResolution: a.cfg.MetricsOfflineResolution,
		Node:              a.cfg.NodeSource,
		StateDir:          a.cfg.StateDir,
		Online:            a.link.Connected,
		Send: func(b wire.MetricsBatch) {
			hb := a.heartbeat()
			b.Heartbeat = &hb
			_, err := a.enqueueErr(wire.TopicMetrics, wire.TypeMetrics, outbox.Telemetry, b)
			switch {
			case err == nil:
				a.beatQueued.Store(a.now().UnixNano())
			case errors.Is(err, outbox.ErrDropped) && a.link.Connected():
				// The outbox dropped it (counted): send it now, so that the
				// hub still gets the heartbeat it carries, the node's usage
				// and its DiskPressure. Send is called from the collector's
				// Run, on ctx.
				ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := a.publishNow(ctx, wire.TopicMetrics, wire.TypeMetrics, b, false); err == nil {
					a.beatQueued.Store(a.now().UnixNano())
				}
			case !errors.Is(err, outbox.ErrDropped):
				a.log.Error("queue metrics", "err", err)
			}
		},
		StoreFull: a.stateFull,
		Restarts:  a.restartCounts,
		Logger:    a.log,
	})
	a.tel.logs = logs.New(logs.Config{
		Dir:     filepath.Join(a.cfg.StateDir, "logs"),
		MaxSize: a.cfg.ContainerLogMaxSize,
		// 0: the log server's default.
		CheckInterval: a.cfg.ContainerLogCheckInterval,
		Current:       a.currentRun,
		Keep:          a.podWanted,
		Reply:         a.sendLogReply,
		Logger:        a.log,
	})
	g.Go(func() error { return a.tel.collector.Run(ctx) })
	g.Go(func() error { return a.tel.logs.Run(ctx) })
}

// helloAgainEvery bounds how often a HelloRequest is answered.
const helloAgainEvery = 5 * time.Second

// onRequest takes a request from the hub. It runs on the MQTT receive
// path, so it only hands the work on: a hello to answerHellos, a log
// request to the log server.
func (a *Agent) onRequest(topic string, payload []byte) {
	env, err := wire.Decode(topic, payload)
	if err != nil {
		a.log.Warn("dropping request", "err", err)
		return
	}
	if env.Type == wire.TypeHelloRequest {
		// The hub missed this node's hello (it was away from an external
		// broker when the agent connected) or thinks its pods lost: say
		// it again, with the pods' status, at most every few seconds
		// whoever asks.
		now := a.now().UnixNano()
		last := a.helloAgain.Load()
		if now-last < int64(helloAgainEvery) || !a.helloAgain.CompareAndSwap(last, now) {
			return
		}
		select {
		case a.helloAsked <- struct{}{}:
		default: // one is asked already
		}
		return
	}
	var req wire.LogRequest
	if err := wire.DecodePayload(env, topic, &req); err != nil {
		a.log.Warn("dropping request", "err", err)
		return
	}
	if a.tel.logs == nil || !a.tel.logs.Submit(req) {
		a.log.Warn("too many log requests at once; dropping one", "id", req.ID, "pod", req.Namespace+"/"+req.Pod)
	}
}

// answerHellos answers the hub's HelloRequests (onRequest hands them on)
// until ctx ends: the node's hello again, and its pods' status, which the
// hub may have marked lost while it did not hear from this node, or lost.
func (a *Agent) answerHellos(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.helloAsked:
		}
		hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		a.sendHello(hctx)
		cancel()
		a.resendStatus()
	}
}

// sendLogReply publishes a reply on the node's replies topic.
func (a *Agent) sendLogReply(ctx context.Context, r wire.LogReply) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return a.publishNow(ctx, wire.TopicReplies, wire.TypeLogReply, r, false)
}

// restartCounts reads each container's restart count from the latest pod
// status the reconciler reported.
func (a *Agent) restartCounts() map[metrics.ContainerKey]int32 {
	a.mu.Lock()
	last := a.lastReport
	a.mu.Unlock()
	out := map[metrics.ContainerKey]int32{}
	if last == nil {
		return out
	}
	for _, p := range last.Pods {
		for _, cs := range p.Status.ContainerStatuses {
			out[metrics.ContainerKey{PodUID: p.UID, Container: cs.Name}] = cs.RestartCount
		}
	}
	return out
}

// currentRun is the run a container's output goes to now: its restart
// count, which names its log file.
func (a *Agent) currentRun(ref logs.ContainerRef) (int32, bool) {
	n, ok := a.restartCounts()[metrics.ContainerKey{PodUID: ref.UID, Container: ref.Container}]
	return n, ok
}

// podWanted reports whether the pod is in the desired snapshot.
func (a *Agent) podWanted(uid string) bool {
	snap, err := a.state.Snapshot()
	if err != nil {
		return true
	}
	for _, p := range snap.Pods {
		if p.UID == uid {
			return true
		}
	}
	return false
}
