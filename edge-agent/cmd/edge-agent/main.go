// Command edge-agent runs on every board of the fleet: it keeps the board's
// containers matching the desired state the hub sends over MQTT, even while
// the hub is unreachable, and reports what it sees.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/agent"
	ctrruntime "github.com/flotilla-edge/flotilla/edge-agent/internal/runtime"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/config"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=… -X main.date=…".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "edge-agent:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	var configFile string
	cmd := &cobra.Command{
		Use:           "edge-agent",
		Short:         "Run the Flotilla edge agent on this board",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
	}
	hostname, _ := os.Hostname()
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML file with settings (keys are the flag names)")
	f.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL of the hub")
	f.String("node-name", hostname, "name of this node")
	f.StringSlice("label", nil, "node label key=value (repeatable)")
	f.String("containerd-socket", "/run/containerd/containerd.sock", "containerd socket")
	f.String("containerd-namespace", "flotilla", "containerd namespace for Flotilla's containers")
	f.String("snapshotter", "overlayfs", "containerd snapshotter")
	f.String("state-dir", "/var/lib/flotilla-agent", "directory for local state, logs and volumes")
	f.StringSlice("insecure-registry", nil, "registry host:port to pull from over plain HTTP (repeatable)")
	f.Duration("heartbeat-interval", 10*time.Second, "how often to tell the hub the node is alive")
	f.Duration("resync-interval", 10*time.Second, "period of the full reconcile")
	f.String("log-level", "info", "log level: debug, info, warn, error")

	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v, err := config.Load(cmd.Flags(), configFile)
		if err != nil {
			return err
		}
		logger, err := newLogger(v.GetString("log-level"))
		if err != nil {
			return err
		}
		labels, err := config.Labels(config.StringList(v, "label"))
		if err != nil {
			return err
		}
		for k, val := range labels {
			if err := api.ValidateLabelKey(k); err != nil {
				return fmt.Errorf("--label: %w", err)
			}
			if err := api.ValidateLabelValue(val); err != nil {
				return fmt.Errorf("--label %s: %w", k, err)
			}
		}
		nodeName := v.GetString("node-name")
		if err := api.ValidateDNSSubdomain(nodeName); err != nil {
			return fmt.Errorf("--node-name: %w", err)
		}
		// containerd needs absolute paths for log files and mounts.
		stateDir, err := filepath.Abs(v.GetString("state-dir"))
		if err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
		if err := agent.EnsureDirs(stateDir); err != nil {
			return err
		}
		rtOpts := ctrruntime.Options{
			Socket:             v.GetString("containerd-socket"),
			Namespace:          v.GetString("containerd-namespace"),
			Snapshotter:        v.GetString("snapshotter"),
			InsecureRegistries: config.StringList(v, "insecure-registry"),
			Logger:             logger,
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		logger.Info("starting edge agent", "node", nodeName, "version", version, "broker", v.GetString("broker"))
		return agent.Run(ctx, agent.Config{
			NodeName:          nodeName,
			Labels:            labels,
			Broker:            v.GetString("broker"),
			StateDir:          stateDir,
			HeartbeatInterval: v.GetDuration("heartbeat-interval"),
			Resync:            v.GetDuration("resync-interval"),
			Version:           version,
			Logger:            logger,
			ConnectRuntime: func(ctx context.Context) (agent.Runtime, error) {
				return ctrruntime.New(ctx, rtOpts)
			},
		})
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the agent's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			arch := goruntime.GOARCH
			if v := agent.ArchVariant(); v != "" {
				arch += "/" + v
			}
			fmt.Fprintf(cmd.OutOrStdout(), "edge-agent %s (commit %s, built %s, %s/%s, %s)\n",
				version, commit, date, goruntime.GOOS, arch, goruntime.Version())
		},
	})
	return cmd
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
