package cli

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/serve"
	"github.com/flotilla-edge/flotilla/pkg/config"
)

// newServeCommand is long because it is the hub's list of flags, one
// line each with its help; cut into parts, the list would read worse.
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
			insecure := v.GetBool("insecure")
			httpListen, mqttListen := v.GetString("http-listen"), v.GetString("mqtt-listen")
			if httpListen == "" {
				httpListen = ":8443"
				if insecure {
					httpListen = "127.0.0.1:8080"
				}
			}
			if mqttListen == "" {
				mqttListen = ":8883"
				if insecure {
					mqttListen = ":1883"
				}
			}
			limit, err := config.ApplyMemoryLimit(v.GetString("memory-limit"))
			if err != nil {
				return err
			}
			if limit > 0 {
				logger.Info("soft memory limit", "bytes", limit)
			}
			network, err := ipam.Parse(ipam.Flags{
				ClusterCIDR: v.GetString("cluster-cidr"), NodeCIDRMaskSize: v.GetInt("node-cidr-mask-size"),
				ServiceCIDR: v.GetString("service-cidr"), NodePortRange: v.GetString("service-node-port-range"),
				ClusterDomain: v.GetString("cluster-domain"),
			})
			if err != nil {
				return fmt.Errorf("the network flags are not usable:\n%w", err)
			}
			caCert, caKey := v.GetString("ca-cert"), v.GetString("ca-key")
			if (caCert == "") != (caKey == "") {
				return fmt.Errorf("--ca-cert and --ca-key go together")
			}
			ctx, stop := signalContext()
			defer stop()
			return serve.Run(ctx, serve.Config{
				Insecure:       insecure,
				TLSHosts:       config.StringList(v, "tls-san"),
				CACertFile:     caCert,
				CAKeyFile:      caKey,
				ManualApproval: v.GetBool("manual-approval"),
				IngestRate:     v.GetFloat64("ingest-rate"),
				IngestBurst:    v.GetFloat64("ingest-burst"),
				DataDir:        v.GetString("data-dir"),
				HTTPListen:     httpListen,
				MQTTListen:     mqttListen,
				BrokerURL:      v.GetString("broker"),
				NodeGrace:      v.GetDuration("node-grace-period"),
				EventTTL:       v.GetDuration("event-ttl"),
				Logger:         logger,
				// Metrics.
				MetricsRetention:        v.GetDuration("metrics-retention"),
				MemoryPressureThreshold: memPressure,
				DiskPressureThreshold:   diskPressure,
				Network:                 network,
				// Autoscaling.
				AutoscalerPeriod:            v.GetDuration("hpa-sync-period"),
				AutoscalerCPUInitialization: v.GetDuration("hpa-cpu-initialization-period"),
			})
		},
	}
	f := cmd.Flags()
	f.String("data-dir", "/var/lib/flotilla-hub", "directory for the hub's Badger store")
	f.String("http-listen", "", "address of the HTTP API (default :8443 with TLS, 127.0.0.1:8080 with --insecure)")
	f.String("mqtt-listen", "", "address of the embedded MQTT broker (default :8883 with TLS, :1883 with --insecure)")
	f.String("broker", "", "URL of an external MQTT broker (ssl://host:port; tcp:// only with --insecure); disables the embedded one")
	f.Bool("insecure", false, "serve MQTT and HTTP in plaintext, without authentication or per-node access control (tests, trusted networks)")
	f.StringSlice("tls-san", nil, "host name or address for the hub's server certificate (repeatable; default localhost, loopback, the host name and its addresses)")
	f.String("ca-cert", "", "PEM file of an operator's CA to use instead of generating one (with --ca-key)")
	f.String("ca-key", "", "PEM private key of --ca-cert")
	f.Bool("manual-approval", false, "every enrolment waits for an operator's \"hub certificate approve\"")
	f.Float64("ingest-rate", 1000, "messages per second one node may send; a faster node is held back (acknowledged no faster), not dropped")
	f.Float64("ingest-burst", 10000, "messages one node may send at once above --ingest-rate")
	f.Duration("node-grace-period", 40*time.Second, "how long a node may be silent before it is NotReady")
	f.Duration("event-ttl", time.Hour, "how long events are kept")
	f.String("log-level", "info", "log level: debug, info, warn, error")
	f.String("memory-limit", "0", "soft memory limit for the hub's Go runtime, a garbage-collection target rather than a cap, such as 900Mi (0: none; GOMEMLIMIT wins); see docs/benchmarks.md for a fleet's needs")
	f.Duration("metrics-retention", 24*time.Hour, "how long node and pod metric samples are kept")
	f.String("memory-pressure-threshold", "90%", "memory in use at which a node gets MemoryPressure")
	f.String("disk-pressure-threshold", "90%", "use of the root or agent-state filesystem at which a node gets DiskPressure")
	f.String("cluster-cidr", ipam.DefaultClusterCIDR, "IPv4 range that nodes' pod subnets are cut from")
	f.Int("node-cidr-mask-size", ipam.DefaultNodeCIDRMaskSize, "prefix length of each node's pod subnet within --cluster-cidr")
	f.String("service-cidr", ipam.DefaultServiceCIDR, "IPv4 range of Services' cluster IPs; must not overlap --cluster-cidr")
	f.String("service-node-port-range", ipam.DefaultNodePortRange, "ports NodePort Services are given on every node (FIRST-LAST)")
	f.String("cluster-domain", ipam.DefaultClusterDomain, "DNS domain of Services (NAME.NAMESPACE.svc.DOMAIN)")
	f.Duration("hpa-sync-period", 15*time.Second, "how often every HorizontalPodAutoscaler is computed from its pods' usage (Kubernetes' --horizontal-pod-autoscaler-sync-period)")
	f.Duration("hpa-cpu-initialization-period", 5*time.Minute, "how long after a pod starts its cpu samples count for autoscaling only once it is Ready and sampled since (Kubernetes' --horizontal-pod-autoscaler-cpu-initialization-period)")
	return cmd
}
