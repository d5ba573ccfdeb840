package sim

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/agent"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
)

var _ agent.Runtime = (*Runtime)(nil)

// AgentConfig is one simulated agent.
type AgentConfig struct {
	// NodeName is the node's name; the MQTT client id is derived from it,
	// as for a real agent.
	NodeName string
	Labels   map[string]string
	// Broker is the hub's MQTT broker URL (tcp://host:port).
	Broker string
	// Runtime is the agent's simulated runtime (NewRuntime).
	Runtime *Runtime
	// MetricsInterval is the sampling period (0 disables metrics).
	MetricsInterval time.Duration
	// HeartbeatInterval, KeepAlive and Resync default to the real agent's
	// (10 s, 30 s, 10 s).
	HeartbeatInterval time.Duration
	KeepAlive         time.Duration
	Resync            time.Duration
	// Outbox bounds each agent's in-memory queue of undelivered reports
	// (default: the real agent's 100,000 entries, 64 MiB).
	Outbox outbox.Limits
	// ScratchDir is where the agent would keep container logs and pod
	// volumes; a simulated container writes none, and nothing is created
	// there unless a pod asks for a volume (default: a directory under the
	// system's temporary directory).
	ScratchDir string
	Version    string
	Logger     *slog.Logger
}

// RunAgent runs one simulated agent until ctx ends: the real agent
// (agent.Run) with its state and outbox in memory, the simulated runtime
// and a synthetic board for its metrics.
func RunAgent(ctx context.Context, cfg AgentConfig) error {
	rt := cfg.Runtime
	if rt == nil {
		rt = NewRuntime(RuntimeOptions{})
	}
	if cfg.ScratchDir == "" {
		cfg.ScratchDir = filepath.Join(os.TempDir(), "fleetsim")
	}
	if cfg.Version == "" {
		cfg.Version = "fleetsim"
	}
	return agent.Run(ctx, agent.Config{
		NodeName:          cfg.NodeName,
		Labels:            cfg.Labels,
		Broker:            cfg.Broker,
		StateDir:          filepath.Join(cfg.ScratchDir, cfg.NodeName),
		HeartbeatInterval: cfg.HeartbeatInterval,
		KeepAlive:         cfg.KeepAlive,
		Resync:            cfg.Resync,
		Outbox:            cfg.Outbox,
		InMemory:          true,
		Version:           cfg.Version,
		Logger:            cfg.Logger,
		ConnectRuntime: func(context.Context) (agent.Runtime, error) {
			return rt, nil
		},
		MetricsInterval: cfg.MetricsInterval,
		NodeSource:      NewNodeSource(),
		// Simulated containers write no output, so there is nothing to
		// rotate; a check a second per agent would be the simulator's
		// largest cost (a directory read each) at 10,000 agents.
		ContainerLogCheckInterval: time.Minute,
	})
}
