package cli

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/hub/internal/serve"
)

func newServeCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the hub: store, embedded MQTT broker, controllers and HTTP API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := e.v
			var level slog.Level
			if err := level.UnmarshalText([]byte(v.GetString("log-level"))); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", v.GetString("log-level"))
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			memPressure, err := parsePercent("--memory-pressure-threshold", v.GetString("memory-pressure-threshold"))
			if err != nil {
				return err
			}
			diskPressure, err := parsePercent("--disk-pressure-threshold", v.GetString("disk-pressure-threshold"))
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			return serve.Run(ctx, serve.Config{
				DataDir:    v.GetString("data-dir"),
				HTTPListen: v.GetString("http-listen"),
				MQTTListen: v.GetString("mqtt-listen"),
				BrokerURL:  v.GetString("broker"),
				NodeGrace:  v.GetDuration("node-grace-period"),
				EventTTL:   v.GetDuration("event-ttl"),
				Logger:     logger,
				// Metrics.
				MetricsRetention:        v.GetDuration("metrics-retention"),
				MemoryPressureThreshold: memPressure,
				DiskPressureThreshold:   diskPressure,
			})
		},
	}
	f := cmd.Flags()
	f.String("data-dir", "/var/lib/flotilla-hub", "directory for the hub's Badger store")
	f.String("http-listen", "127.0.0.1:8080", "address of the HTTP API")
	f.String("mqtt-listen", ":1883", "address of the embedded MQTT broker")
	f.String("broker", "", "URL of an external MQTT broker (tcp://host:port); disables the embedded one")
	f.Duration("node-grace-period", 40*time.Second, "how long a node may be silent before it is NotReady")
	f.Duration("event-ttl", time.Hour, "how long events are kept")
	f.String("log-level", "info", "log level: debug, info, warn, error")
	f.Duration("metrics-retention", 24*time.Hour, "how long node and pod metric samples are kept")
	f.String("memory-pressure-threshold", "90%", "memory in use at which a node gets MemoryPressure")
	f.String("disk-pressure-threshold", "90%", "use of the root or agent-state filesystem at which a node gets DiskPressure")
	return cmd
}
