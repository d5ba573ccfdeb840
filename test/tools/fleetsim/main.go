// Command fleetsim connects N simulated edge agents to a real hub, to size
// a hub or measure it. Each agent is the real agent code (MQTT link with
// its own connection and client id, outbox, snapshot handling, reconciler,
// probes, status, heartbeat and metrics reporting) with its state in
// memory, a simulated container runtime in place of containerd and a
// synthetic board for its metrics (package edge-agent/sim).
//
//	go run ./test/tools/fleetsim -broker tcp://hub.example:1883 -n 1000 -labels site=lab
//
// Containers "start" after -start-delay, crash at once with probability
// -failure-rate, and pass exec probes -readiness-delay after they start.
// It prints progress every -progress and, with -listen, serves its own
// account as JSON on GET /stats (containers created, started and ready
// per image, with creation → running and creation → ready quantiles) and
// makes a fraction of the running containers crash on POST
// /crash?fraction=0.1. SIGINT or SIGTERM stops every agent.
//
// Ten thousand agents take about 1.5 GiB and 10,000 file descriptors; run
// it as its own process, apart from the hub, and raise `ulimit -n` for more.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	var (
		cfg      Config
		labels   string
		logLevel string
		listen   string
		progress time.Duration
	)
	flag.StringVar(&cfg.Broker, "broker", "tcp://127.0.0.1:1883", "the hub's MQTT broker URL")
	flag.IntVar(&cfg.Nodes, "n", 100, "number of simulated agents")
	flag.StringVar(&cfg.Prefix, "prefix", "sim-", "node name prefix; nodes are named PREFIX00000, PREFIX00001, …")
	flag.StringVar(&labels, "labels", "fleetsim=true", "node labels, k=v[,k=v…]")
	flag.Float64Var(&cfg.ConnectRate, "connect-rate", 1000, "agents started per second (0: all at once)")
	flag.DurationVar(&cfg.Runtime.StartDelay, "start-delay", 250*time.Millisecond, "how long starting a container takes")
	flag.Float64Var(&cfg.Runtime.FailureRate, "failure-rate", 0, "probability that a started container crashes at once (0–1)")
	flag.DurationVar(&cfg.Runtime.ReadinessDelay, "readiness-delay", 0, "how long after its start a container's exec probes begin to pass")
	flag.DurationVar(&cfg.MetricsInterval, "metrics-interval", 10*time.Second, "each agent's metrics interval (0 disables metrics)")
	flag.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 10*time.Second, "each agent's heartbeat interval")
	flag.DurationVar(&cfg.KeepAlive, "keepalive", 30*time.Second, "each agent's MQTT keep-alive")
	flag.DurationVar(&cfg.Resync, "resync", 10*time.Second, "each agent's reconciler resync period")
	flag.StringVar(&listen, "listen", "", "serve GET /stats and POST /crash on this address (host:port; empty: off)")
	flag.DurationVar(&progress, "progress", 5*time.Second, "progress line interval (0: none)")
	flag.StringVar(&logLevel, "log-level", "warn", "agents' log level: debug, info, warn, error")
	flag.Parse()

	var err error
	if cfg.Labels, err = parseLabels(labels); err != nil {
		fail(err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		fail(fmt.Errorf("-log-level: %w", err))
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if cfg.Nodes < 1 {
		fail(errors.New("-n must be at least 1"))
	}
	if cfg.Runtime.FailureRate < 0 || cfg.Runtime.FailureRate > 1 {
		fail(errors.New("-failure-rate must be between 0 and 1"))
	}

	if os.Getenv("GOGC") == "" {
		// Ten thousand agents' heaps are short-lived garbage in bulk; on
		// a machine with memory to spare, collecting a quarter as often
		// leaves the CPU to the agents (GOGC overrides it).
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fleet := NewFleet(cfg)
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			fail(err)
		}
		srv := &http.Server{Handler: fleet.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		fmt.Printf("fleetsim: stats on http://%s/stats\n", ln.Addr())
	}
	fmt.Printf("fleetsim: %d agents %s%05d… → %s at %.0f/s; start %s, failure rate %.3g, readiness %s, metrics every %s\n",
		cfg.Nodes, cfg.Prefix, 0, cfg.Broker, cfg.ConnectRate, cfg.Runtime.StartDelay, cfg.Runtime.FailureRate, cfg.Runtime.ReadinessDelay, cfg.MetricsInterval)
	if progress > 0 {
		go printProgress(ctx, fleet, progress)
	}
	begin := time.Now()
	_ = fleet.Run(ctx)
	fmt.Printf("fleetsim: stopped after %s\n", time.Since(begin).Round(time.Second))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleetsim:", err)
	os.Exit(2)
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q is not k=v", kv)
		}
		out[k] = v
	}
	return out, nil
}

// printProgress prints one line per interval: agents started, containers
// running, and per image how many are created, running and ready.
func printProgress(ctx context.Context, f *Fleet, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := f.Stats()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var imgs []string
		for img, is := range st.Images {
			imgs = append(imgs, fmt.Sprintf("%s created %d started %d ready %d (ready p99 %.0f ms)", img, is.Created, is.Started, is.Ready, is.ToReady.P99))
		}
		sort.Strings(imgs)
		fmt.Printf("%s agents %d, running containers %d, heap %d MiB, goroutines %d; %s\n",
			time.Now().Format("15:04:05"), st.Agents-st.AgentsExited, st.Running, ms.HeapInuse>>20, runtime.NumGoroutine(), strings.Join(imgs, "; "))
	}
}

// Handler serves GET /stats, POST /crash?fraction=F and the simulator's
// own pprof profiles under /debug/pprof/.
func (f *Fleet) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.Stats())
	})
	mux.HandleFunc("POST /crash", func(w http.ResponseWriter, r *http.Request) {
		frac, err := strconv.ParseFloat(r.URL.Query().Get("fraction"), 64)
		if err != nil || frac < 0 || frac > 1 {
			http.Error(w, "fraction must be between 0 and 1", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d\n", f.Crash(frac))
	})
	// The simulator's own profile, to see what an agent costs.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	return mux
}
