// Command benchscale is `make bench`: it runs the fleet-scale scenarios of
// issue 7 against the real hub binary and prints one table, writing the
// same figures as JSON for comparison between commits.
//
//	go run ./test/tools/benchscale -nodes 10000 -json bench-results.json
//	go run ./test/tools/benchscale -quick           # 1,000 nodes, short windows
//
// It builds the hub and test/tools/fleetsim, starts `hub serve` (embedded broker,
// plaintext) in its own process and the simulated fleet in two more (the
// first -small nodes, labelled tier=small, then the rest), and reads
// convergence only from the hub's own view (its API, and `hub rollout
// status` at the end of each rollout). Scenarios, in order:
//
//   - rollout-small: DaemonSet update to the first 1,000 nodes, all at once
//     (maxUnavailable 100%): apply → the hub shows every node updated and
//     Ready;
//   - rollout-all: the same over every node, with the hub's CPU seconds
//     and peak RSS (VmHWM);
//   - rolling: an update over every node with maxUnavailable 10% and a 1 s
//     readiness (exec probe, answered by the simulated runtime after 1 s),
//     against the ideal of 10 waves × the p99 of one node's update
//     (container created → ready, from the simulator);
//   - metrics: the hub's CPU over -metrics-window with every agent
//     reporting metrics every 10 s and nothing else happening;
//   - reconnect: the hub (and so its embedded broker) stopped for -outage,
//     then started again: from the new hub's broker listening to every node
//     Ready, online and heard from since (lastSeen), and every pod Ready.
//
// Each rollout's Ready count (status.rollout.ready, polled every 250 ms)
// should only grow while its template stands; every decrease is printed
// with its time as it is seen (the first with what the not-Ready pods and
// nodes say of themselves), and each rollout scenario has a row counting
// the pods lost from Ready that way, which should read 0.
//
// With -containerd (needs root) it also runs test/tools/bench (apply → running
// and crash → restart on real containerd) and the agent's idle RSS test
// (test/arm), and it always builds the linux/arm64 agent to report its
// stripped size.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
	"github.com/flotilla-edge/flotilla/test/scale"
)

type options struct {
	nodes, small  int
	connectRate   float64
	startDelay    time.Duration
	metricsWindow time.Duration
	outage        time.Duration
	jsonOut       string
	containerd    bool
	keep          bool
	skip          map[string]bool
	// pprofDir, if set, receives a CPU profile of the first pprofFor of
	// each scenario and a heap profile at its end, from a hub built with
	// -tags pprof.
	pprofDir string
	pprofFor time.Duration
	// broker is "embedded" (the hub's own) or "mosquitto" (an external
	// Mosquitto that the hub and the fleet connect to).
	broker string
	// hubFlags are extra flags for `hub serve`.
	hubFlags string
}

func main() {
	var o options
	quick := flag.Bool("quick", false, "quick mode: 1,000 nodes (200 in the small rollout), 20 s metrics window, no containerd scenarios, where other flags do not say")
	skip := flag.String("skip", "", "scenarios to skip, comma separated (rollout-small, rollout-all, rolling, metrics, reconnect, containerd, agent)")
	flag.IntVar(&o.nodes, "nodes", 10000, "simulated nodes in all")
	flag.IntVar(&o.small, "small", 1000, "nodes in the small all-at-once rollout (the first of the fleet)")
	flag.Float64Var(&o.connectRate, "connect-rate", 500, "simulated agents started per second")
	flag.DurationVar(&o.startDelay, "start-delay", 250*time.Millisecond, "simulated container start time (the real-containerd apply median is about 290 ms)")
	flag.DurationVar(&o.metricsWindow, "metrics-window", 60*time.Second, "how long the steady-state metrics scenario measures")
	flag.DurationVar(&o.outage, "outage", 20*time.Second, "how long the hub is down in the reconnect scenario")
	flag.StringVar(&o.jsonOut, "json", "bench-results.json", "write the results as JSON here (empty: don't)")
	flag.BoolVar(&o.containerd, "containerd", os.Geteuid() == 0, "also run the real-containerd latencies and the agent RSS test (root)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs) afterwards")
	flag.StringVar(&o.pprofDir, "pprof", "", "write the hub's CPU profile of each scenario's first -pprof-for, and its heap at each scenario's end, into this directory")
	flag.DurationVar(&o.pprofFor, "pprof-for", 30*time.Second, "how much of each scenario the CPU profile covers")
	flag.StringVar(&o.hubFlags, "hub-flags", "--memory-limit 900Mi", "extra flags for `hub serve`, space separated (the default keeps a 10,000-node hub within 1 GiB)")
	flag.StringVar(&o.broker, "broker", "embedded", "the MQTT broker: embedded (the hub's own) or mosquitto (Debian's, started for the run; the reconnect scenario restarts it instead of the hub)")
	flag.Parse()
	if *quick {
		// Its sizes, where no flag gives them.
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["nodes"] {
			o.nodes = 1000
		}
		if !set["small"] {
			o.small = 200
		}
		if !set["metrics-window"] {
			o.metricsWindow = 20 * time.Second
		}
		if !set["containerd"] {
			o.containerd = false
		}
	}
	o.small = min(o.small, o.nodes)
	if o.broker != "embedded" && o.broker != "mosquitto" {
		fmt.Fprintf(os.Stderr, "benchscale: -broker %q: want embedded or mosquitto\n", o.broker)
		os.Exit(2)
	}
	o.skip = map[string]bool{}
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.skip[s] = true
		}
	}
	res, err := run(o)
	printTable(res)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if werr := os.WriteFile(o.jsonOut, b, 0o644); werr != nil {
			fmt.Fprintln(os.Stderr, "benchscale:", werr)
		} else {
			fmt.Println("results written to", o.jsonOut)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchscale:", err)
		os.Exit(1)
	}
}

// Results is the JSON document: the machine, then one entry per figure.
type Results struct {
	Commit string `json:"commit"`
	Broker string `json:"broker"`
	// HubFlags are the extra flags `hub serve` ran with.
	HubFlags string   `json:"hubFlags"`
	Date     string   `json:"date"`
	CPUs     int      `json:"cpus"`
	Nodes    int      `json:"nodes"`
	Figures  []Figure `json:"figures"`
}

// Figure is one row of the table.
type Figure struct {
	Scenario string  `json:"scenario"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	// P50/P95/P99 where the figure is a latency distribution (same unit).
	P50    *float64 `json:"p50,omitempty"`
	P95    *float64 `json:"p95,omitempty"`
	P99    *float64 `json:"p99,omitempty"`
	Target string   `json:"target,omitempty"`
	Met    *bool    `json:"met,omitempty"`
	Detail string   `json:"detail,omitempty"`
	// Load is /proc/loadavg when the figure was taken (the machine is shared).
	Load string `json:"load"`
}

func (r *Results) add(f Figure) {
	f.Load = scale.LoadAverage()
	r.Figures = append(r.Figures, f)
	fmt.Printf("  → %s: %s\n", f.Scenario, f.valueString())
}

func (f Figure) valueString() string {
	s := fmt.Sprintf("%.3g %s", f.Value, f.Unit)
	if f.Unit == "s" || f.Unit == "ms" || f.Unit == "MiB" {
		s = fmt.Sprintf("%.2f %s", f.Value, f.Unit)
	}
	if f.P50 != nil {
		s += fmt.Sprintf(" (p50 %.0f, p95 %.0f, p99 %.0f)", *f.P50, *f.P95, *f.P99)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func printTable(r Results) {
	fmt.Printf("\nFlotilla benchmarks, commit %s, %s, %d CPUs, %d simulated nodes, broker %s, hub serve %s\n\n", r.Commit, r.Date, r.CPUs, r.Nodes, r.Broker, r.HubFlags)
	rows := [][]string{{"scenario", "value", "target", "met", "load (1/5/15)"}}
	for _, f := range r.Figures {
		met := ""
		if f.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		rows = append(rows, []string{f.Scenario, f.valueString(), f.Target, met, f.Load})
	}
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for i, row := range rows {
		var b strings.Builder
		for j, c := range row {
			b.WriteString("| " + c + strings.Repeat(" ", widths[j]-utf8.RuneCountInString(c)+1))
		}
		fmt.Println(b.String() + "|")
		if i == 0 {
			b.Reset()
			for _, w := range widths {
				b.WriteString("|" + strings.Repeat("-", w+2))
			}
			fmt.Println(b.String() + "|")
		}
	}
	for _, f := range r.Figures {
		if f.Detail != "" {
			fmt.Printf("  %s: %s\n", f.Scenario, f.Detail)
		}
	}
}

type bench struct {
	o         options
	pprofAddr string // the hub's pprof listener, with -pprof
	dir       string
	bins      map[string]string
	hub       *scale.Hub
	mosquitto *harness.Mosquitto // the external broker, with -broker mosquitto
	sims      []*harness.Process
	simAPI    []string // each fleetsim's http://host:port
	res       *Results
	// readyDrops gathers the decreases of the rollouts' Ready counts
	// since the scenario began (readyFigure reports and resets it).
	readyDrops readyWatch
}

func run(o options) (Results, error) {
	res := Results{Date: time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(), Nodes: o.nodes}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		res.Commit = strings.TrimSpace(string(out))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	dir, err := os.MkdirTemp("", "flotilla-benchscale-")
	if err != nil {
		return res, err
	}
	b := &bench{o: o, dir: dir, res: &res}
	defer b.close()
	fmt.Println("building hub and fleetsim; work directory", dir)
	tags := ""
	if o.pprofDir != "" {
		if err := b.enableProfiles(); err != nil {
			return res, err
		}
		tags = "pprof"
	}
	if b.bins, err = scale.BuildTagged(ctx, filepath.Join(dir, "bin"), tags, "./hub/cmd/hub", "./test/tools/fleetsim"); err != nil {
		return res, err
	}
	if !o.skip["agent"] {
		if err := b.agentSize(ctx); err != nil {
			return res, err
		}
	}
	if o.containerd && !o.skip["containerd"] {
		if err := b.containerd(ctx); err != nil {
			return res, err
		}
	}
	hubOpts := scale.HubOptions{Bin: b.bins["hub"], DataDir: filepath.Join(dir, "hub"), LogPath: filepath.Join(dir, "hub.log"),
		Extra: strings.Fields(o.hubFlags)}
	res.HubFlags = o.hubFlags
	if o.broker == "mosquitto" {
		if b.mosquitto, err = harness.StartMosquitto(ctx, filepath.Join(dir, "mosquitto")); err != nil {
			return res, err
		}
		hubOpts.Broker = b.mosquitto.URL
		res.Broker = "mosquitto " + mosquittoVersion()
	} else {
		res.Broker = "embedded"
	}
	if b.hub, err = scale.StartHub(ctx, hubOpts); err != nil {
		return res, err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"connect", b.connect},
		{"rollout-small", b.rolloutSmall},
		{"rollout-all", b.rolloutAll},
		{"rolling", b.rolling},
		{"metrics", b.metrics},
		{"reconnect", b.reconnect},
	}
	for _, s := range steps {
		if o.skip[s.name] {
			continue
		}
		fmt.Printf("%s: %s (load %s)\n", time.Now().Format("15:04:05"), s.name, scale.LoadAverage())
		profiled := b.profile(ctx, s.name)
		err := s.fn(ctx)
		profiled()
		if err != nil {
			return res, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return res, nil
}

// enableProfiles picks the address the hub's pprof listener will use
// (FLOTILLA_PPROF_LISTEN, which the hub process inherits).
func (b *bench) enableProfiles() error {
	if err := os.MkdirAll(b.o.pprofDir, 0o755); err != nil {
		return err
	}
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	b.pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
	return os.Setenv("FLOTILLA_PPROF_LISTEN", b.pprofAddr)
}

// profile starts the CPU profile of one scenario; the function it returns
// waits for that profile and takes the heap profile. Both are no-ops
// without -pprof. A failed profile is reported, not fatal.
func (b *bench) profile(ctx context.Context, name string) func() {
	if b.pprofAddr == "" {
		return func() {}
	}
	fetch := func(path, file string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.pprofAddr+path, nil)
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				var body []byte
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s: %s", resp.Status, body)
				}
				if err == nil {
					err = os.WriteFile(filepath.Join(b.o.pprofDir, file), body, 0o644)
				}
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchscale: profile %s: %v\n", file, err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(b.o.pprofFor.Seconds())), name+".cpu.pprof")
	}()
	return func() {
		<-done
		fetch("/debug/pprof/heap", name+".heap.pprof")
	}
}

func (b *bench) close() {
	for _, p := range b.sims {
		_ = p.Stop()
	}
	if b.hub != nil {
		_ = b.hub.Stop()
	}
	if b.mosquitto != nil {
		_ = b.mosquitto.Stop()
	}
	if !b.o.keep {
		os.RemoveAll(b.dir)
	} else {
		fmt.Println("logs kept in", b.dir)
	}
}

// brokerStats reads the external broker's CPU time and memory (zero with
// the embedded broker, whose costs are the hub's).
func (b *bench) brokerStats() scale.ProcStats {
	if b.mosquitto == nil {
		return scale.ProcStats{}
	}
	st, _ := scale.ReadProc(b.mosquitto.Pid())
	return st
}

// mosquittoVersion is what `mosquitto -h` says of itself.
func mosquittoVersion() string {
	bin, err := harness.FindBinary("mosquitto")
	if err != nil {
		return "?"
	}
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(strings.TrimPrefix(first, "mosquitto version"))
}

// startSim starts one fleetsim process.
func (b *bench) startSim(ctx context.Context, n int, prefix, labels string) error {
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	p, err := harness.StartTiedProcess("fleetsim-"+prefix, filepath.Join(b.dir, "fleetsim-"+prefix+".log"), b.bins["fleetsim"],
		"-broker", b.hub.BrokerURL, "-n", strconv.Itoa(n), "-prefix", prefix, "-labels", labels,
		"-connect-rate", fmt.Sprint(b.o.connectRate), "-start-delay", b.o.startDelay.String(),
		"-readiness-delay", "1s", "-metrics-interval", "10s", "-listen", fmt.Sprintf("127.0.0.1:%d", port), "-progress", "10s")
	if err != nil {
		return err
	}
	b.sims = append(b.sims, p)
	b.simAPI = append(b.simAPI, fmt.Sprintf("http://127.0.0.1:%d", port))
	return nil
}

// nodePoll is how often waitNodes lists the nodes: the times it reports
// are late by up to this much.
const nodePoll = 2 * time.Second

// waitNodes waits until the hub shows want nodes Ready and online whose
// lastSeen is not before since.
func (b *bench) waitNodes(ctx context.Context, want int, since time.Time, timeout time.Duration) (time.Time, error) {
	return pollHub(ctx, time.Now().Add(timeout), func(ctx context.Context) (bool, string, error) {
		nodes, err := b.hub.Nodes(ctx)
		if err != nil {
			return false, "", err
		}
		ready := 0
		for i := range nodes {
			n := &nodes[i]
			if n.IsReady() && n.Status.Online && !n.Status.LastSeen.Time.Before(since) {
				ready++
			}
		}
		return ready >= want, fmt.Sprintf("%d of %d nodes Ready", ready, want), nil
	})
}

// pollHub asks check (its requests bounded by deadline) every nodePoll
// until it is done, or deadline; it
// returns when check was done, or an error with check's last account of
// what it saw. A list of 10,000 nodes is some 25 MB of JSON, which the
// hub should not be spending its CPU on back to back while it is being
// measured.
func pollHub(ctx context.Context, deadline time.Time, check func(context.Context) (done bool, seen string, err error)) (time.Time, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	last := ""
	for {
		done, seen, err := check(ctx)
		if err != nil {
			last = err.Error()
		} else if done {
			return time.Now(), nil
		} else {
			last = seen
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s: %w", last, ctx.Err())
		case <-time.After(nodePoll):
		}
	}
}

func (b *bench) connect(ctx context.Context) error {
	t0 := time.Now()
	if err := b.startSim(ctx, b.o.small, "small-", "fleetsim=true,tier=small"); err != nil {
		return err
	}
	if _, err := b.waitNodes(ctx, b.o.small, time.Time{}, 5*time.Minute); err != nil {
		return err
	}
	if rest := b.o.nodes - b.o.small; rest > 0 {
		if err := b.startSim(ctx, rest, "node-", "fleetsim=true,tier=rest"); err != nil {
			return err
		}
	}
	done, err := b.waitNodes(ctx, b.o.nodes, time.Time{}, 15*time.Minute)
	if err != nil {
		return err
	}
	hs, _ := scale.ReadProc(b.hub.Proc.Pid())
	b.res.add(Figure{Scenario: fmt.Sprintf("fleet of %d connects at %.0f/s, all Ready", b.o.nodes, b.o.connectRate), Value: done.Sub(t0).Seconds(), Unit: "s",
		Detail: fmt.Sprintf("hub RSS %.0f MiB after connect", float64(hs.RSS)/(1<<20))})
	return nil
}

// rollout applies image to the DaemonSet and waits for the hub to show it
// complete over want nodes; it returns the time from just before `hub
// apply` and the hub's CPU and memory over that time.
func (b *bench) rollout(ctx context.Context, name, image, selector, maxUnavailable string, probeDelay, want int, timeout time.Duration) (time.Duration, scale.ProcStats, scale.ProcStats, error) {
	before, err := scale.ReadProc(b.hub.Proc.Pid())
	if err != nil {
		return 0, before, before, err
	}
	t0 := time.Now()
	if _, err := b.hub.CLI(ctx, scale.DaemonSetManifest(name, image, selector, maxUnavailable, probeDelay), "apply", "-f", "-"); err != nil {
		return 0, before, before, err
	}
	fmt.Printf("    %s %s → %s: applied\n", t0.Format("15:04:05"), name, image)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lastPrint := time.Now()
	watch := &readyWatch{}
	explained := false
	done, err := b.hub.WaitRollout(rctx, "default", name, image, want, 250*time.Millisecond, func(ro *api.RolloutStatus, current bool) {
		now := time.Now()
		if d, down := watch.see(ro, now); down {
			fmt.Printf("    %s → %s: READY WENT DOWN: %s\n", name, image, d)
			if !explained {
				// What the decrease is made of, once per rollout: a list
				// of the fleet's pods and nodes is not free for the hub.
				explained = true
				if why, err := whyNotReady(rctx, b.hub, "default", name, ro.TemplateHash); err == nil {
					fmt.Printf("      %s\n", why)
				}
			}
		}
		if now.Sub(lastPrint) > 5*time.Second {
			lastPrint = now
			fmt.Println(progressLine(now, name, image, ro, current))
		}
	})
	b.readyDrops.drops = append(b.readyDrops.drops, watch.drops...)
	after, _ := scale.ReadProc(b.hub.Proc.Pid())
	if err != nil {
		return 0, before, after, err
	}
	fmt.Printf("    %s %s → %s: complete over %d nodes after %.2f s\n", done.Format("15:04:05"), name, image, want, done.Sub(t0).Seconds())
	if out, err := b.hub.CLI(ctx, "", "rollout", "status", "ds/"+name, "--watch=false"); err != nil {
		return 0, before, after, fmt.Errorf("hub rollout status disagrees: %v\n%s", err, out)
	}
	return done.Sub(t0), before, after, nil
}

func (b *bench) rolloutSmall(ctx context.Context) error {
	// v1 creates the pods; the measured rollout is the update to v2.
	if _, _, _, err := b.rollout(ctx, "small", "registry.local/bench:v1", "tier: small", "100%", -1, b.o.small, 5*time.Minute); err != nil {
		return err
	}
	d, before, after, err := b.rollout(ctx, "small", "registry.local/bench:v2", "tier: small", "100%", -1, b.o.small, 5*time.Minute)
	if err != nil {
		return err
	}
	q := b.simImage(ctx, "registry.local/bench:v2")
	b.res.add(Figure{Scenario: fmt.Sprintf("DaemonSet update to %d nodes, all at once", b.o.small), Value: d.Seconds(), Unit: "s",
		Target: "≤ 5 s (1,000 nodes)", Met: ptr(d <= 5*time.Second),
		Detail: fmt.Sprintf("hub CPU %.1f s over it; simulated start %s", (after.CPU - before.CPU).Seconds(), b.o.startDelay)})
	b.res.add(perNode("created → running", q.ToStart))
	b.res.add(b.readyFigure())
	return nil
}

func (b *bench) rolloutAll(ctx context.Context) error {
	if _, _, _, err := b.rollout(ctx, "fleet", "registry.local/fleet:v1", "fleetsim: \"true\"", "100%", -1, b.o.nodes, 10*time.Minute); err != nil {
		return err
	}
	d, before, after, err := b.rollout(ctx, "fleet", "registry.local/fleet:v2", "fleetsim: \"true\"", "100%", -1, b.o.nodes, 10*time.Minute)
	if err != nil {
		return err
	}
	b.res.add(Figure{Scenario: fmt.Sprintf("DaemonSet update to %d nodes, all at once", b.o.nodes), Value: d.Seconds(), Unit: "s",
		Target: "≤ 30 s (10,000 nodes)", Met: ptr(d <= 30*time.Second),
		Detail: fmt.Sprintf("load %s", scale.LoadAverage())})
	b.res.add(perNode("created → running", b.simImage(ctx, "registry.local/fleet:v2").ToStart))
	b.res.add(b.readyFigure())
	b.res.add(Figure{Scenario: "  hub CPU during that rollout", Value: (after.CPU - before.CPU).Seconds(), Unit: "s"})
	peak := Figure{Scenario: "  hub peak RSS (VmHWM) so far", Value: float64(after.Peak) / (1 << 20), Unit: "MiB",
		Target: "≤ 1024 MiB", Met: ptr(after.Peak <= 1<<30)}
	if b.mosquitto != nil {
		peak.Detail = fmt.Sprintf("Mosquitto's VmHWM %.0f MiB, its CPU so far %.1f s", float64(b.brokerStats().Peak)/(1<<20), b.brokerStats().CPU.Seconds())
	}
	b.res.add(peak)
	return nil
}

func (b *bench) rolling(ctx context.Context) error {
	img := "registry.local/fleet:v3"
	d, before, after, err := b.rollout(ctx, "fleet", img, "fleetsim: \"true\"", "10%", 1, b.o.nodes, 15*time.Minute)
	if err != nil {
		return err
	}
	q := b.simImage(ctx, img)
	ideal := 10 * time.Duration(q.ToReady.P99*float64(time.Millisecond))
	ratio := d.Seconds() / ideal.Seconds()
	b.res.add(Figure{Scenario: fmt.Sprintf("rolling update of %d nodes, maxUnavailable 10%%, 1 s readiness", b.o.nodes), Value: d.Seconds(), Unit: "s",
		Target: "≤ 1.2 × ideal", Met: ptr(ratio <= 1.2),
		Detail: fmt.Sprintf("ideal 10 × wave p99 (%.0f ms, created → ready) = %.1f s; ratio %.2f; hub CPU %.1f s, its VmHWM so far %.0f MiB",
			q.ToReady.P99, ideal.Seconds(), ratio, (after.CPU - before.CPU).Seconds(), float64(after.Peak)/(1<<20))})
	b.res.add(perNode("created → ready", q.ToReady))
	b.res.add(b.readyFigure())
	return nil
}

// readyFigure is how many pods the scenario's rollouts (creation and
// update) saw leave Ready on their template while the rollout ran, from
// status.rollout.ready polled every 250 ms; it should be 0.
func (b *bench) readyFigure() Figure {
	f := Figure{Scenario: "  Ready decreases, pods lost from Ready mid-rollout", Value: float64(b.readyDrops.lost()), Unit: "pods",
		Detail: b.readyDrops.summary()}
	b.readyDrops = readyWatch{}
	return f
}

func (b *bench) metrics(ctx context.Context) error {
	// Let the rollouts' aftermath settle, then measure a quiet window.
	time.Sleep(15 * time.Second)
	before, err := scale.ReadProc(b.hub.Proc.Pid())
	if err != nil {
		return err
	}
	brokerBefore := b.brokerStats()
	time.Sleep(b.o.metricsWindow)
	after, err := scale.ReadProc(b.hub.Proc.Pid())
	if err != nil {
		return err
	}
	cores := (after.CPU - before.CPU).Seconds() / after.Taken.Sub(before.Taken).Seconds()
	b.res.add(Figure{Scenario: fmt.Sprintf("%d agents, metrics every 10 s: hub CPU", b.o.nodes), Value: cores, Unit: "cores",
		Target: "≤ 0.5 core", Met: ptr(cores <= 0.5),
		Detail: fmt.Sprintf("%.1f s of CPU over %s; hub RSS %.0f MiB", (after.CPU - before.CPU).Seconds(), after.Taken.Sub(before.Taken).Round(time.Second), float64(after.RSS)/(1<<20))})
	if b.mosquitto != nil {
		ma := b.brokerStats()
		mcores := (ma.CPU - brokerBefore.CPU).Seconds() / ma.Taken.Sub(brokerBefore.Taken).Seconds()
		b.res.add(Figure{Scenario: "  Mosquitto's CPU over the same window", Value: mcores, Unit: "cores",
			Detail: fmt.Sprintf("Mosquitto RSS %.0f MiB", float64(ma.RSS)/(1<<20))})
	}
	return nil
}

func (b *bench) reconnect(ctx context.Context) error {
	// The broker goes away: with the embedded broker that is the hub
	// itself; with Mosquitto, Mosquitto (and with it every retained
	// message: the hub publishes them again when it reconnects).
	if b.mosquitto != nil {
		if err := b.mosquitto.Stop(); err != nil {
			return fmt.Errorf("stop mosquitto: %w", err)
		}
		time.Sleep(b.o.outage)
		if err := b.mosquitto.Start(ctx); err != nil {
			return err
		}
	} else {
		if err := b.hub.Stop(); err != nil {
			return fmt.Errorf("stop the hub: %w", err)
		}
		time.Sleep(b.o.outage)
		if err := b.hub.Start(ctx); err != nil {
			return err
		}
	}
	// The hub is serving and its broker listening: from here every agent
	// must find it again and report its current state.
	t0 := time.Now()
	if _, err := b.waitNodes(ctx, b.o.nodes, t0, 5*time.Minute); err != nil {
		return err
	}
	// And every pod shows Ready in the hub's view: status reports the
	// outage lost are asked for again, so they may come after the node.
	done, pods, err := b.waitPodsReady(ctx, "default", t0.Add(5*time.Minute))
	if err != nil {
		return err
	}
	d := done.Sub(t0)
	hs, _ := scale.ReadProc(b.hub.Proc.Pid())
	what := "hub (and its embedded broker)"
	if b.mosquitto != nil {
		what = "Mosquitto"
	}
	b.res.add(Figure{Scenario: fmt.Sprintf("%d agents reconnect after a %s %s outage", b.o.nodes, b.o.outage, what), Value: d.Seconds(), Unit: "s",
		Target: "≤ 60 s", Met: ptr(d <= 60*time.Second),
		Detail: fmt.Sprintf("until every node Ready, online and heard from since the restart, and all %d pods Ready; restarted hub's CPU %.1f s, VmHWM %.0f MiB",
			pods, hs.CPU.Seconds(), float64(hs.Peak)/(1<<20))})
	return nil
}

// waitPodsReady polls the hub's pods in namespace until every one is
// Ready, or deadline; it returns when and how many pods there are.
func (b *bench) waitPodsReady(ctx context.Context, namespace string, deadline time.Time) (time.Time, int, error) {
	n := 0
	done, err := pollHub(ctx, deadline, func(ctx context.Context) (bool, string, error) {
		pods, err := b.hub.Pods(ctx, namespace)
		if err != nil {
			return false, "", err
		}
		notReady := 0
		for i := range pods {
			if !pods[i].IsReady() {
				notReady++
			}
		}
		n = len(pods)
		return notReady == 0, fmt.Sprintf("%d of %d pods not Ready", notReady, len(pods)), nil
	})
	return done, n, err
}

// simImage sums the simulators' account of one image.
func (b *bench) simImage(ctx context.Context, image string) imageStats {
	var all []imageStats
	for _, api := range b.simAPI {
		var st struct {
			Images map[string]imageStats `json:"images"`
		}
		if err := getJSON(ctx, api+"/stats", &st); err == nil {
			if is, ok := st.Images[image]; ok {
				all = append(all, is)
			}
		}
	}
	// Quantiles cannot be merged exactly; take the larger of the
	// processes' (the small fleet and the rest), which bounds the p99.
	var out imageStats
	for _, is := range all {
		out.Created += is.Created
		out.Ready += is.Ready
		out.ToStart = out.ToStart.bound(is.ToStart)
		out.ToReady = out.ToReady.bound(is.ToReady)
	}
	return out
}

type imageStats struct {
	Created int       `json:"created"`
	Ready   int       `json:"ready"`
	ToStart quantiles `json:"toStart"`
	ToReady quantiles `json:"toReady"`
}

type quantiles struct {
	P50 float64 `json:"p50Ms"`
	P95 float64 `json:"p95Ms"`
	P99 float64 `json:"p99Ms"`
}

// bound is the larger of each quantile of q and o.
func (q quantiles) bound(o quantiles) quantiles {
	return quantiles{P50: max(q.P50, o.P50), P95: max(q.P95, o.P95), P99: max(q.P99, o.P99)}
}

// perNode is a figure row for one node's update in a rollout, as the
// simulators timed it.
func perNode(what string, q quantiles) Figure {
	return Figure{Scenario: "  per node, " + what, Value: q.P50, Unit: "ms", P50: ptr(q.P50), P95: ptr(q.P95), P99: ptr(q.P99)}
}

// agentSize builds the stripped linux/arm64 agent as arm/cross.sh does
// (with its build tags) and reports its size.
func (b *bench) agentSize(ctx context.Context) error {
	out := filepath.Join(b.dir, "bin", "edge-agent-linux-arm64")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags", "-s -w", "-o", out, "./edge-agent/cmd/edge-agent")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build arm64 agent: %w\n%s", err, o)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return err
	}
	mib := float64(fi.Size()) / (1 << 20)
	b.res.add(Figure{Scenario: "agent binary, linux/arm64, stripped", Value: mib, Unit: "MiB", Target: "≤ 20 MB", Met: ptr(float64(fi.Size()) <= 20e6)})
	return nil
}

var (
	benchLine = regexp.MustCompile(`^(\S+)\s+n=(\d+)\s+min (\d+) ms\s+median (\d+) ms\s+p95 (\d+) ms\s+max (\d+) ms`)
	rssLine   = regexp.MustCompile(`0 pods VmRSS ([\d.]+) MiB; 5 pods VmRSS ([\d.]+) MiB`)
)

// containerd runs test/tools/bench (real containerd) and the agent RSS test.
func (b *bench) containerd(ctx context.Context) error {
	var out []byte
	for _, sc := range []string{"apply", "restart"} {
		fmt.Printf("real containerd: go run ./test/tools/bench -scenario %s -n 30\n", sc)
		o, err := exec.CommandContext(ctx, "go", "run", "./test/tools/bench", "-scenario", sc, "-n", "30").CombinedOutput()
		if err != nil {
			return fmt.Errorf("test/tools/bench: %w\n%s", err, o)
		}
		out = append(out, o...)
	}
	targets := map[string][2]string{
		"apply":   {"apply → container running, real containerd", "p50 ≤ 300, p99 ≤ 1000 ms"},
		"restart": {"crash → replacement running, real containerd", "p50 ≤ 150, p99 ≤ 500 ms"},
	}
	limits := map[string][2]float64{"apply": {300, 1000}, "restart": {150, 500}}
	for _, line := range strings.Split(string(out), "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		t, ok := targets[m[1]]
		if !ok {
			continue
		}
		num := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
		med, p95, mx := num(m[4]), num(m[5]), num(m[6])
		lim := limits[m[1]]
		b.res.add(Figure{Scenario: t[0], Value: med, Unit: "ms", P50: ptr(med), P95: ptr(p95), P99: ptr(mx), Target: t[1],
			Met:    ptr(med <= lim[0] && mx <= lim[1]),
			Detail: fmt.Sprintf("n=%s; with n=%s the p99 shown is the maximum", m[2], m[2])})
	}
	fmt.Println("agent idle RSS: go test -run TestAgentIdleRSS ./test/arm/")
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "TestAgentIdleRSS", "-v", "./test/arm/")
	cmd.Env = append(os.Environ(), "FLOTILLA_RSS_STEADY=30s")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("agent RSS test: %w\n%s", err, out)
	}
	m := rssLine.FindStringSubmatch(string(out))
	if m == nil {
		return errors.New("agent RSS test printed no figure")
	}
	idle, busy := m[1], m[2]
	v, _ := strconv.ParseFloat(busy, 64)
	b.res.add(Figure{Scenario: "agent RSS, amd64, 5 pods, metrics on", Value: v, Unit: "MiB", Target: "≤ 25 MB", Met: ptr(v*(1<<20) <= 25e6),
		Detail: "0 pods: " + idle + " MiB (VmRSS after 30 s idle)"})
	return nil
}

func getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
