// Command edge-agent runs on every board of the fleet: it keeps the board's
// containers matching the desired state the hub sends over MQTT, even while
// the hub is unreachable, and reports what it sees.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/agent"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/network"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
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
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML file with settings (keys are the flag names)")
	addAgentFlags(f)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return runAgent(cmd, configFile) }
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the agent's version, commit, build date and platform",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(cmd.OutOrStdout(), versionText())
		},
	})
	cmd.AddCommand(newCheckCommand(f))
	return cmd
}

// addAgentFlags defines the agent's settings; each is also a key of the
// --config file and a FLOTILLA_* variable.
func addAgentFlags(f *pflag.FlagSet) {
	hostname, _ := os.Hostname()
	f.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL of the hub")
	f.String("node-name", hostname, "name of this node")
	f.StringSlice("label", nil, "node label key=value (repeatable)")
	f.String("containerd-socket", "/run/containerd/containerd.sock", "containerd socket")
	f.String("containerd-namespace", "flotilla", "containerd namespace for Flotilla's containers")
	f.String("snapshotter", "overlayfs", "containerd snapshotter")
	f.String("state-dir", "/var/lib/flotilla-agent", "directory for local state, logs and volumes")
	f.StringSlice("insecure-registry", nil, "registry host:port to pull from over plain HTTP (repeatable)")
	f.String("seccomp-profile-root", "", "directory the Localhost seccomp profiles of pods' securityContext are read from (default STATE-DIR/seccomp)")
	f.Bool("seccomp-default", true, "run containers whose securityContext names no seccomp profile under the runtime's default profile (false: without a filter, as earlier agents ran them; for a kernel without seccomp filters, or an agent run under qemu-user, for which the profile would be built for the wrong architecture)")
	f.String("node-ip", "", "this node's IPv4 address on its site's LAN, which the site's other nodes route its pods' addresses through (default: the first IPv4 address of an interface that is up)")
	f.Bool("pod-network", true, "give each pod that is not hostNetwork a network namespace and an address of its own through CNI (false: every pod on the host's network, as before pod networking; for several agents sharing one network namespace, as test rigs do)")
	f.String("cni-bin-dir", network.DefaultBinDir, "directory of the CNI plugins (bridge, host-local, portmap, loopback: Debian's containernetworking-plugins)")
	f.String("cni-conf-dir", "", "where the agent writes its CNI network configuration (default STATE-DIR/network/conf)")
	f.String("cni-cache-dir", "", "libcni's cache of the pods' attachments (default STATE-DIR/network/cache)")
	f.Duration("heartbeat-interval", 10*time.Second, "how often to tell the hub the node is alive")
	f.Duration("mqtt-keepalive", 30*time.Second, "MQTT keep-alive: how fast a dead link to the broker is noticed")
	f.Int("outbox-max-entries", outbox.DefaultLimits.MaxEntries, "most reports kept while the hub is unreachable")
	f.Int64("outbox-max-bytes", outbox.DefaultLimits.MaxBytes, "most bytes of reports kept while the hub is unreachable")
	f.Duration("resync-interval", 10*time.Second, "period of the full reconcile")
	f.Duration("metrics-interval", 10*time.Second, "how often to sample node and pod metrics (0 disables them)")
	f.Duration("metrics-offline-resolution", time.Minute, "while the hub is unreachable, merge metric samples to this resolution")
	f.String("container-log-max-size", "10Mi", "most bytes of output kept on the board per container (current and previous run)")
	f.String("log-level", "info", "log level: debug, info, warn, error")
	f.String("memory-limit", defaultMemoryLimit, "soft memory limit for the agent's Go runtime, a garbage-collection target rather than a cap (0: none; GOMEMLIMIT wins)")
	f.Int("gc-percent", defaultGCPercent, "garbage-collection target: how far the heap grows, in percent of the live heap, before a collection (GOGC wins)")
	f.String("hub", "", "the hub's HTTPS URL (https://HUB:8443), to enrol with --token and --ca-fingerprint")
	f.String("token", "", "bootstrap token for enrolment, as \"hub token create\" prints it (a command line is visible to every user in ps: prefer --token-file or FLOTILLA_TOKEN)")
	f.String("token-file", "", "file holding the bootstrap token (mode 0600), instead of --token")
	f.String("ca-fingerprint", "", "the hub CA's fingerprint, sha256:…, as \"hub token create\" prints it")
	f.Bool("service-proxy", true, "program the node's Services into the kernel (nftables table inet flotilla) from the hub's snapshot and the node's own pods")
	f.Bool("cluster-dns", true, "answer cluster DNS for the node's pods on the pod bridge's address, port 53")
	f.String("resolv-conf", "/etc/resolv.conf", "the node's resolv.conf, whose resolvers cluster DNS forwards other names to")
	f.String("dev-root", "/dev", "where the board's device nodes are looked for")
	f.StringArray("device-class", nil, "a device class and the globs under --dev-root that find its nodes, NAME=GLOB[,GLOB...] (repeatable; replaces the default or profile class of that name; NAME= turns it off); its devices are the node's devices.flotilla.io/NAME")
	f.String("board-profile", "", "a board profile (arm/boards/*.yaml) whose devices map adds or replaces device classes")
	f.Duration("device-rescan-interval", devices.DefaultRescan, "how often the dev root is scanned again besides inotify's changes")
	f.Bool("ingress", true, "serve the Ingresses the hub sends this node (those of the IngressClasses that select it) on its HTTP and HTTPS ports")
	f.String("ingress-address", "", "the address the Ingress ports listen on (default: every address of the node)")
	f.Int("ingress-http-port", 80, "the port Ingresses are served on over HTTP (0: none), open only while the node serves an Ingress")
	f.Int("ingress-https-port", 443, "the port Ingresses are served on over HTTPS (0: none), open only while the node serves an Ingress with a certificate")
	f.Bool("insecure", false, "connect in plaintext without an identity and accept unsigned snapshots (implied by a tcp:// --broker on a node that is not enrolled)")
}

// runAgent checks the settings, sets up the node's identity and runs the
// agent until SIGINT or SIGTERM.
func runAgent(cmd *cobra.Command, configFile string) error {
	v, err := config.Load(cmd.Flags(), configFile)
	if err != nil {
		return err
	}
	logger, err := newLogger(v.GetString("log-level"))
	if err != nil {
		return err
	}
	// containerd's client logs through logrus; its lines join the
	// agent's, in its format, at debug level.
	ctrruntime.RouteClientLogs(logger.With("component", "containerd-client"))
	if _, err := config.ApplyMemoryLimit(v.GetString("memory-limit")); err != nil {
		return err
	}
	if _, err := config.ApplyGCPercent(v.GetInt("gc-percent")); err != nil {
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
	logMax := api.Quantity(v.GetString("container-log-max-size"))
	if err := logMax.Validate(); err != nil || logMax.Value() < 4096 {
		return fmt.Errorf("--container-log-max-size %q: want a size of at least 4Ki, like 10Mi", logMax)
	}
	rtOpts := ctrruntime.Options{
		Socket:              v.GetString("containerd-socket"),
		Namespace:           v.GetString("containerd-namespace"),
		Snapshotter:         v.GetString("snapshotter"),
		InsecureRegistries:  config.StringList(v, "insecure-registry"),
		Platform:            agentPlatform(),
		Logger:              logger,
		SeccompProfileRoot:  absOrEmpty(v.GetString("seccomp-profile-root")),
		UnconfinedByDefault: !v.GetBool("seccomp-default"),
	}
	if rtOpts.SeccompProfileRoot == "" {
		rtOpts.SeccompProfileRoot = filepath.Join(stateDir, "seccomp")
	}
	nodeIP, err := parseNodeIP(v.GetString("node-ip"))
	if err != nil {
		return err
	}
	var podNet reconcile.PodNetwork // nil: every pod on the host's network
	if v.GetBool("pod-network") {
		n, err := network.New(network.Config{
			Dir:      filepath.Join(stateDir, "network"),
			ConfDir:  absOrEmpty(v.GetString("cni-conf-dir")),
			CacheDir: absOrEmpty(v.GetString("cni-cache-dir")),
			BinDir:   v.GetString("cni-bin-dir"),
			NodeIP:   nodeIP,
			Logger:   logger,
		})
		if err != nil {
			return err
		}
		podNet = n
	}
	devs, err := deviceConfig(v)
	if err != nil {
		return err
	}
	httpAddr, httpsAddr, err := ingressAddrs(v.GetString("ingress-address"), v.GetInt("ingress-http-port"), v.GetInt("ingress-https-port"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sec, err := setUpIdentity(ctx, v, config.Given(v, cmd.Flags(), "broker"), nodeName, stateDir, logger)
	if err != nil {
		return err
	}
	logger.Info("starting edge agent", "node", nodeName, "version", version, "broker", sec.broker, "tls", sec.tls != nil)
	return agent.Run(ctx, agent.Config{
		NodeName:          nodeName,
		Labels:            labels,
		Broker:            sec.broker,
		TLS:               sec.tls,
		Verifier:          sec.verifier,
		StateDir:          stateDir,
		HeartbeatInterval: v.GetDuration("heartbeat-interval"),
		KeepAlive:         v.GetDuration("mqtt-keepalive"),
		Outbox:            outbox.Limits{MaxEntries: v.GetInt("outbox-max-entries"), MaxBytes: v.GetInt64("outbox-max-bytes")},
		Resync:            v.GetDuration("resync-interval"),
		NodeIP:            v.GetString("node-ip"),
		Network:           podNet,
		Devices:           devs,
		Version:           version,
		Logger:            logger,
		ConnectRuntime: func(ctx context.Context) (agent.Runtime, error) {
			return ctrruntime.New(ctx, rtOpts)
		},
		// Metrics and container logs.
		MetricsInterval:          v.GetDuration("metrics-interval"),
		MetricsOfflineResolution: v.GetDuration("metrics-offline-resolution"),
		ContainerLogMaxSize:      logMax.Value(),
		// Services and cluster DNS.
		ServiceProxy: v.GetBool("service-proxy"),
		ClusterDNS:   v.GetBool("cluster-dns"),
		ResolvConf:   v.GetString("resolv-conf"),
		// Ingresses.
		Ingress:          v.GetBool("ingress"),
		IngressHTTPAddr:  httpAddr,
		IngressHTTPSAddr: httpsAddr,
	})
}

// ingressAddrs checks --ingress-address and the Ingress ports and makes
// the listen addresses ("" for a port of 0).
func ingressAddrs(host string, httpPort, httpsPort int) (string, string, error) {
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return "", "", fmt.Errorf("--ingress-address %q: want an IP address of this node, such as 192.168.1.20", host)
		}
	}
	addr := func(flag string, port int) (string, error) {
		switch {
		case port == 0:
			return "", nil
		case port < 0 || port > 65535:
			return "", fmt.Errorf("--%s %d: want a port from 1 to 65535, or 0 for none", flag, port)
		}
		return net.JoinHostPort(host, strconv.Itoa(port)), nil
	}
	h, err := addr("ingress-http-port", httpPort)
	if err != nil {
		return "", "", err
	}
	hs, err := addr("ingress-https-port", httpsPort)
	if err != nil {
		return "", "", err
	}
	if h != "" && h == hs {
		return "", "", fmt.Errorf("--ingress-http-port and --ingress-https-port are both %d", httpPort)
	}
	return h, hs, nil
}

// parseNodeIP checks --node-ip: empty, or an IPv4 address.
func parseNodeIP(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("--node-ip %q: want this node's unicast IPv4 address on its site's LAN, such as 192.168.1.20", s)
	}
	return a, nil
}

// absOrEmpty makes a directory flag absolute; empty stays empty (the
// default).
func absOrEmpty(dir string) string {
	if dir == "" {
		return ""
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
