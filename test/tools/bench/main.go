// Command bench measures Flotilla's latencies on this machine against real
// parts: it starts containerd, a registry, the hub (embedded broker) and one
// agent, like the end-to-end tests, and times scenarios from the outside,
// reading containerd's own events for when a container really started.
//
//	go run ./test/tools/bench -scenario apply -n 20      # hub apply → container running (image present)
//	go run ./test/tools/bench -scenario restart -n 50    # task killed → replacement running
//	go run ./test/tools/bench -scenario restart-offline -n 50  # the same with the hub stopped
//
// It prints one line per scenario with min, median, p95 and max, and with
// -json writes the same figures as JSON. It needs root.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	containerd "github.com/containerd/containerd"
	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"

	"github.com/flotilla-edge/flotilla/test/harness"
	"github.com/flotilla-edge/flotilla/test/images"
)

func main() {
	scenario := flag.String("scenario", "apply", "scenario to run: apply, restart, restart-offline, all")
	n := flag.Int("n", 20, "samples per scenario")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	flag.Parse()
	if err := run(*scenario, *n, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Result is one scenario's figures.
type Result struct {
	Scenario string        `json:"scenario"`
	Samples  int           `json:"samples"`
	Min      time.Duration `json:"min_ns"`
	Median   time.Duration `json:"median_ns"`
	P95      time.Duration `json:"p95_ns"`
	Max      time.Duration `json:"max_ns"`
}

func (r Result) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("%-8s n=%-3d min %-7s median %-7s p95 %-7s max %s", r.Scenario, r.Samples, ms(r.Min), ms(r.Median), ms(r.P95), ms(r.Max))
}

func summarize(name string, samples []time.Duration) Result {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	pick := func(q float64) time.Duration {
		i := int(q*float64(len(samples)-1) + 0.5)
		return samples[i]
	}
	return Result{Scenario: name, Samples: len(samples), Min: samples[0], Median: pick(0.5), P95: pick(0.95), Max: samples[len(samples)-1]}
}

type stack struct {
	dir      string
	regPort  int
	mqttPort int
	agentBin string
	ctd      *harness.Containerd
	reg      *harness.Registry
	hub      *harness.Process
	agent    *harness.Process
	server   string
	hubBin   string
	image    string
	ns       string
	client   *containerd.Client
}

func run(scenario string, n int, jsonOut string) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (containerd, runc)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	s, err := setup(ctx)
	if s != nil {
		defer s.close()
	}
	if err != nil {
		return err
	}
	var results []Result
	if scenario == "apply" || scenario == "all" {
		r, err := s.applyLatency(ctx, n)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if scenario == "restart" || scenario == "all" {
		r, err := s.restartLatency(ctx, n, false)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if scenario == "reconnect" || scenario == "all" {
		r, err := s.reconnectLatency(ctx, min(n, 5), 45*time.Second)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	// restart-offline stops the hub for good, so it runs last.
	if scenario == "restart-offline" || scenario == "all" {
		r, err := s.restartLatency(ctx, n, true)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if len(results) == 0 {
		return fmt.Errorf("unknown scenario %q", scenario)
	}
	for _, r := range results {
		fmt.Println(r)
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}

func setup(ctx context.Context) (*stack, error) {
	dir, err := os.MkdirTemp("", "flotilla-bench-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir, ns: "bench"}
	s.hubBin = filepath.Join(dir, "bin", "hub")
	agentBin := filepath.Join(dir, "bin", "edge-agent")
	for out, pkg := range map[string]string{s.hubBin: "./hub/cmd/hub", agentBin: "./edge-agent/cmd/edge-agent"} {
		if b, err := exec.CommandContext(ctx, "go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			return s, fmt.Errorf("go build %s (run from the repository root): %w\n%s", pkg, err, b)
		}
	}
	if s.ctd, err = harness.StartContainerd(ctx, filepath.Join(dir, "containerd")); err != nil {
		return s, err
	}
	// The registry and the broker listen on every address, so that an
	// agent in a site namespace (the reconnect scenario) reaches them.
	regPort, err := harness.FreePort()
	if err != nil {
		return s, err
	}
	if s.reg, err = harness.StartRegistryAt(ctx, filepath.Join(dir, "registry"), fmt.Sprintf("0.0.0.0:%d", regPort)); err != nil {
		return s, err
	}
	s.reg.Addr = fmt.Sprintf("127.0.0.1:%d", regPort)
	s.regPort, s.agentBin = regPort, agentBin
	img, err := images.BuildBusybox("amd64")
	if err != nil {
		return s, err
	}
	s.image = s.reg.Addr + "/bench/busybox:v1"
	if _, err := images.Push(ctx, img, s.image); err != nil {
		return s, err
	}
	httpPort, _ := harness.FreePort()
	mqttPort, _ := harness.FreePort()
	s.mqttPort = mqttPort
	s.server = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	if s.hub, err = harness.StartProcess("hub", filepath.Join(dir, "hub.log"), s.hubBin, "serve", "--insecure",
		"--data-dir", filepath.Join(dir, "hub"), "--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--mqtt-listen", fmt.Sprintf("0.0.0.0:%d", mqttPort), "--log-level", "warn"); err != nil {
		return s, err
	}
	if err := s.hub.WaitReady(ctx, func(ctx context.Context) error { return s.cli(ctx, "", "get", "nodes") }); err != nil {
		return s, err
	}
	if s.agent, err = harness.StartProcess("edge-agent", filepath.Join(dir, "agent.log"), agentBin,
		"--broker", fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort), "--node-name", "bench-node",
		"--containerd-socket", s.ctd.Socket, "--containerd-namespace", s.ns, "--state-dir", filepath.Join(dir, "agent"),
		"--insecure-registry", s.reg.Addr, "--log-level", "warn"); err != nil {
		return s, err
	}
	if s.client, err = containerd.New(s.ctd.Socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2")); err != nil {
		return s, err
	}
	// Wait for the node, then pull the image once with a warm-up pod, so
	// the samples measure apply → running with the image present.
	if err := s.hub.WaitReady(ctx, func(ctx context.Context) error {
		return s.cli(ctx, "", "get", "node", "bench-node")
	}); err != nil {
		return s, err
	}
	if _, err := s.applyAndWait(ctx, "warmup"); err != nil {
		return s, err
	}
	return s, s.deleteAndWait(ctx, "warmup")
}

func (s *stack) close() {
	if s.client != nil {
		s.client.Close()
	}
	if s.agent != nil {
		_ = s.agent.Stop()
	}
	if s.hub != nil {
		_ = s.hub.Stop()
	}
	if s.reg != nil {
		_ = s.reg.Stop()
	}
	if s.ctd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = s.ctd.Close(ctx)
		cancel()
	}
	os.RemoveAll(s.dir)
}

func (s *stack) cli(ctx context.Context, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, s.hubBin, append(args, "--server", s.server)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("hub %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func manifest(name, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: %s}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - {name: main, image: %q, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}
`, name, name, name, image)
}

// events subscribes to containerd's task events in the bench namespace.
func (s *stack) events(ctx context.Context) (<-chan taskEvent, <-chan error) {
	ch, errs := s.client.Subscribe(ctx, `topic=="/tasks/start"`, `topic=="/tasks/exit"`)
	out := make(chan taskEvent, 64)
	go func() {
		defer close(out)
		for env := range ch {
			if env.Namespace != s.ns {
				continue
			}
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				continue
			}
			switch e := v.(type) {
			case *eventsapi.TaskStart:
				out <- taskEvent{start: true, container: e.ContainerID, at: env.Timestamp}
			case *eventsapi.TaskExit:
				if e.ID == e.ContainerID {
					out <- taskEvent{container: e.ContainerID, at: env.Timestamp}
				}
			}
		}
	}()
	return out, errs
}

// Labels by which the agent marks its containers' pod and name.
const (
	labelPodUID    = "io.flotilla.pod.uid"
	labelContainer = "io.flotilla.container.name"
)

type taskEvent struct {
	start     bool
	container string
	at        time.Time
}

// applyAndWait applies a DaemonSet and returns the time from just before
// `hub apply` to containerd's TaskStart for its container.
func (s *stack) applyAndWait(ctx context.Context, name string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	evs, errs := s.events(ctx)
	t0 := time.Now()
	if err := s.cli(ctx, manifest(name, s.image), "apply", "-f", "-"); err != nil {
		return 0, err
	}
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return 0, fmt.Errorf("event stream closed")
			}
			if ev.start && strings.Contains(ev.container, "_"+name+"-") {
				return ev.at.Sub(t0), nil
			}
		case err := <-errs:
			return 0, fmt.Errorf("containerd events: %w", err)
		case <-ctx.Done():
			return 0, fmt.Errorf("%s did not start within a minute", name)
		}
	}
}

func (s *stack) deleteAndWait(ctx context.Context, name string) error {
	if err := s.cli(ctx, "", "delete", "ds", name); err != nil {
		return err
	}
	return s.waitEmpty(ctx)
}

// waitEmpty waits until the agent removed every container.
func (s *stack) waitEmpty(ctx context.Context) error {
	return s.waitCount(ctx, 0)
}

// waitCount waits until the namespace holds n containers.
func (s *stack) waitCount(ctx context.Context, n int) error {
	nctx := namespaces.WithNamespace(ctx, s.ns)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		cs, err := s.client.Containers(nctx)
		if err != nil {
			return err
		}
		if len(cs) == n {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not %d containers within a minute", n)
}

func (s *stack) applyLatency(ctx context.Context, n int) (Result, error) {
	var samples []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("apply%d", i)
		d, err := s.applyAndWait(ctx, name)
		if err != nil {
			return Result{}, err
		}
		samples = append(samples, d)
		if err := s.deleteAndWait(ctx, name); err != nil {
			return Result{}, err
		}
	}
	return summarize("apply", samples), nil
}

// restartLatency measures the first restart of a crashed container:
// containerd's TaskExit of a killed task → the next TaskStart of that
// container (or of the container of its next run). Only a first crash restarts at once (later ones back off, as
// in kubelet), so it starts n pods and crashes each once. With offline,
// the hub is stopped first: the agent heals on its own.
func (s *stack) restartLatency(ctx context.Context, n int, offline bool) (Result, error) {
	nctx := namespaces.WithNamespace(ctx, s.ns)
	var docs []string
	for i := 0; i < n; i++ {
		docs = append(docs, manifest(fmt.Sprintf("crash%d", i), s.image))
	}
	if err := s.cli(ctx, strings.Join(docs, "---\n"), "apply", "-f", "-"); err != nil {
		return Result{}, err
	}
	var cs []containerd.Container
	deadline := time.Now().Add(3 * time.Minute)
	for {
		all, err := s.client.Containers(nctx)
		if err != nil {
			return Result{}, err
		}
		cs = cs[:0]
		for _, c := range all {
			if t, err := c.Task(nctx, nil); err == nil {
				if st, err := t.Status(nctx); err == nil && st.Status == containerd.Running {
					cs = append(cs, c)
				}
			}
		}
		if len(cs) == n {
			break
		}
		if time.Now().After(deadline) {
			return Result{}, fmt.Errorf("%d of %d pods running after 3 minutes", len(cs), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	name := "restart"
	if offline {
		name = "restart-offline"
		if err := s.hub.Stop(); err != nil {
			return Result{}, fmt.Errorf("stop the hub: %w", err)
		}
	}
	var samples []time.Duration
	for _, c := range cs {
		d, err := s.killAndWait(ctx, c)
		if err != nil {
			return Result{}, err
		}
		samples = append(samples, d)
		// The next crash waits for this restart's clean-up (an agent that
		// runs each restart in a new container removes the exited one
		// after the start), so that each sample times one restart alone.
		if err := s.waitCount(ctx, n); err != nil {
			return Result{}, err
		}
	}
	if !offline {
		// Clean up for the scenarios that follow.
		if err := s.cli(ctx, strings.Join(docs, "---\n"), "delete", "-f", "-"); err != nil {
			return Result{}, err
		}
		if err := s.waitEmpty(ctx); err != nil {
			return Result{}, err
		}
	}
	return summarize(name, samples), nil
}

func (s *stack) killAndWait(ctx context.Context, ctr containerd.Container) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	nctx := namespaces.WithNamespace(ctx, s.ns)
	evs, errs := s.events(ctx)
	labels, err := ctr.Labels(nctx)
	if err != nil {
		return 0, err
	}
	// The replacement is the container with the same pod and container
	// name: a restart may run in a new container (one per run).
	sameContainer := func(id string) bool {
		if id == ctr.ID() {
			return true
		}
		c, err := s.client.LoadContainer(nctx, id)
		if err != nil {
			return false
		}
		l, err := c.Labels(nctx)
		return err == nil && l[labelPodUID] == labels[labelPodUID] && l[labelContainer] == labels[labelContainer]
	}
	task, err := ctr.Task(nctx, nil)
	if err != nil {
		return 0, err
	}
	if err := task.Kill(nctx, 9); err != nil {
		return 0, err
	}
	var exitAt time.Time
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return 0, fmt.Errorf("event stream closed")
			}
			if !ev.start && ev.container == ctr.ID() && exitAt.IsZero() {
				exitAt = ev.at
			}
			if ev.start && !exitAt.IsZero() && sameContainer(ev.container) {
				return ev.at.Sub(exitAt), nil
			}
		case err := <-errs:
			return 0, fmt.Errorf("containerd events: %w", err)
		case <-ctx.Done():
			return 0, fmt.Errorf("no restart within 10 minutes")
		}
	}
}

// reconnectLatency runs an agent in a site namespace with the production
// defaults (keep-alive 30 s, heartbeat 10 s), cuts its link for outage,
// restores it, and measures the time until the hub shows the node Ready
// and its pod Running again.
func (s *stack) reconnectLatency(ctx context.Context, n int, outage time.Duration) (Result, error) {
	site, err := harness.NewSite("fb-"+strconv.Itoa(os.Getpid()%10000), os.Getpid()%harness.SiteSlots+1)
	if err != nil {
		return Result{}, err
	}
	defer site.Close()
	node := "bench-site"
	bin, args := site.Wrap(s.agentBin, "--broker", fmt.Sprintf("tcp://%s:%d", site.HostIP, s.mqttPort), "--node-name", node,
		"--label", "site=remote", "--containerd-socket", s.ctd.Socket, "--containerd-namespace", "bench-site",
		"--state-dir", filepath.Join(s.dir, "site-agent"), "--insecure-registry", fmt.Sprintf("%s:%d", site.HostIP, s.regPort),
		"--log-level", "warn")
	agent, err := harness.StartProcess("site-agent", filepath.Join(s.dir, "site-agent.log"), bin, args...)
	if err != nil {
		return Result{}, err
	}
	defer agent.Stop()
	image := fmt.Sprintf("%s:%d/bench/busybox:v1", site.HostIP, s.regPort)
	ds := strings.Replace(manifest("remote", image), "    spec:\n", "    spec:\n      nodeSelector: {site: remote}\n", 1)
	ready := func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, s.hubBin, "get", "pods", "-o", "wide", "--server", s.server).CombinedOutput()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, node) && strings.Contains(line, "Running") {
				nodes, err := exec.CommandContext(ctx, s.hubBin, "get", "node", node, "--server", s.server).CombinedOutput()
				if err == nil && strings.Contains(string(nodes), " Ready ") {
					return nil
				}
				return fmt.Errorf("node not ready")
			}
		}
		return fmt.Errorf("pod not running")
	}
	if err := agent.WaitReady(ctx, func(ctx context.Context) error { return s.cli(ctx, "", "get", "node", node) }); err != nil {
		return Result{}, err
	}
	if err := s.cli(ctx, ds, "apply", "-f", "-"); err != nil {
		return Result{}, err
	}
	if err := agent.WaitReady(ctx, ready); err != nil {
		return Result{}, err
	}
	var samples []time.Duration
	for i := 0; i < n; i++ {
		if err := site.Cut(); err != nil {
			return Result{}, err
		}
		time.Sleep(outage)
		if err := site.Restore(); err != nil {
			return Result{}, err
		}
		start := time.Now()
		for ready(ctx) != nil {
			if time.Since(start) > 2*time.Minute {
				return Result{}, fmt.Errorf("not back within 2 minutes of the link's return")
			}
			time.Sleep(50 * time.Millisecond)
		}
		samples = append(samples, time.Since(start))
	}
	return summarize("reconnect", samples), nil
}
