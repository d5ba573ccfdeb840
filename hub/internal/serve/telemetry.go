package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flotilla-edge/flotilla/hub/internal/apiserver"
	"github.com/flotilla-edge/flotilla/hub/internal/ingest"
	"github.com/flotilla-edge/flotilla/hub/internal/logs"
	"github.com/flotilla-edge/flotilla/hub/internal/metrics"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// telemetry is the hub's metrics side: the series store and the fleet's
// latest samples, the pressure conditions, log fetching, and the
// Prometheus registry served on /metrics.
type telemetry struct {
	cfg      Config
	log      *slog.Logger
	series   *metrics.BadgerSeries
	fleet    *metrics.Fleet
	hub      *metrics.HubMetrics
	registry *prometheus.Registry
	logs     *logs.Fetcher
}

// openTelemetry opens the series store ({data-dir}/metrics) and loads the
// latest samples.
func openTelemetry(cfg Config, log *slog.Logger, guard *diskguard.Guard) (*telemetry, error) {
	series, err := metrics.OpenBadger(filepath.Join(cfg.DataDir, "metrics"), cfg.MetricsRetention, log, metrics.WithGuard(guard))
	if err != nil {
		return nil, err
	}
	t := &telemetry{cfg: cfg, log: log, series: series, registry: prometheus.NewRegistry()}
	t.fleet = metrics.NewFleet(metrics.FleetOptions{Series: series, Retention: cfg.MetricsRetention, Logger: log})
	if err := t.fleet.Load(); err != nil {
		if cerr := series.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close the metrics store: %w", cerr))
		}
		return nil, err
	}
	t.hub = metrics.NewHubMetrics(t.registry)
	t.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewFleetCollector(t.fleet),
	)
	return t, nil
}

func (t *telemetry) close() error { return t.series.Close() }

// attach subscribes to metrics and replies on the hub's session and makes
// the log fetcher publish through it. Metrics go to ingest, like every
// other agent report, through a shared subscription.
func (t *telemetry) attach(session hubSession, in *ingest.Ingest) {
	session.Subscribe(wire.SharedTopic(ingestGroup, wire.AllNodesTopic(wire.TopicMetrics)), 1, t.hub.Incoming(in.Handle))
	t.logs = logs.New(logs.Options{Publisher: t.hub.Outgoing(session), Logger: t.log})
	// Replies must reach the hub process that asked: a plain subscription.
	session.Subscribe(wire.AllNodesTopic(wire.TopicReplies), 1, t.hub.Incoming(t.logs.HandleReply))
}

// components registers the collector that reads the hub's state, and
// returns the fleet's writer, the pressure conditions and the series
// store's GC and space check, to run.
func (t *telemetry) components(st store.Store, in *ingest.Ingest) []component {
	t.registry.MustRegister(metrics.NewStateCollector(metrics.StateOptions{
		Store: st, Fleet: t.fleet,
		Dirs:   map[string]string{"objects": filepath.Join(t.cfg.DataDir, "store"), "metrics": filepath.Join(t.cfg.DataDir, "metrics")},
		Ingest: in.Stats,
	}))
	return []component{
		{"metrics", t.fleet.Run},
		{"pressure", metrics.NewPressure(metrics.PressureOptions{
			Store: t.hub.Store("pressure", st), Fleet: t.fleet,
			MemoryThreshold: t.cfg.MemoryPressureThreshold, DiskThreshold: t.cfg.DiskPressureThreshold,
			EventTTL: t.cfg.EventTTL, Logger: t.log,
		}).Run},
		{"metrics-gc", func(ctx context.Context) error { return t.series.RunGC(ctx, 10*time.Minute) }},
		{"metrics-space", func(ctx context.Context) error { return t.series.RunSpaceCheck(ctx, 5*time.Second) }},
	}
}

// api is what the HTTP API serves from telemetry.
func (t *telemetry) api() apiserver.Telemetry {
	return apiserver.Telemetry{
		Metrics:    t.fleet,
		Logs:       t.logs,
		Prometheus: promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{Registry: t.registry}),
	}
}

// store wraps st to time component's transactions.
func (t *telemetry) store(component string, st store.Store) store.Store {
	return t.hub.Store(component, st)
}
