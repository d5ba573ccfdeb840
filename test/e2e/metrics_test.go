package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// metricsInterval is the agents' sampling interval in these tests.
const metricsInterval = time.Second

// startMetricsAgent is startAgent with metrics sampled every second and
// extra flags.
func startMetricsAgent(t *testing.T, h *hubProc, extra ...string) *agentProc {
	t.Helper()
	node := uniq("node-")
	a := &agentProc{t: t, hub: h, node: node, ns: "e2e-" + node, stateDir: filepath.Join(env.dir, node), bin: env.agentBin}
	a.logPath = filepath.Join(env.dir, node+".log")
	a.args = append([]string{
		"--broker", h.MQTT, "--node-name", node,
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", env.reg.Addr,
		"--heartbeat-interval", "1s", "--resync-interval", "2s",
		"--metrics-interval", metricsInterval.String(),
	}, append(hostNetworkFlags, extra...)...)
	a.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", a.node, a.proc.Logs())
		}
		_ = a.proc.Stop()
		removeAll(t, a.ns)
	})
	eventually(t, 20*time.Second, "node "+node+" Ready", func() error {
		if !h.node(node).IsReady() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return a
}

// topRow is one row of `hub top pods`.
type topRow struct {
	name  string
	milli int64
	mib   int64
}

func topPods(t *testing.T, h *hubProc, args ...string) []topRow {
	t.Helper()
	out, errOut, err := h.cli("", append([]string{"top", "pods", "--no-headers"}, args...)...)
	if err != nil {
		t.Fatalf("hub top pods: %v\n%s%s", err, out, errOut)
	}
	var rows []topRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		cpu, _ := strconv.ParseInt(strings.TrimSuffix(f[1], "m"), 10, 64)
		mem, _ := strconv.ParseInt(strings.TrimSuffix(f[2], "Mi"), 10, 64)
		rows = append(rows, topRow{name: f[0], milli: cpu, mib: mem})
	}
	return rows
}

func podName(t *testing.T, h *hubProc, ds, node string) string {
	t.Helper()
	var name string
	eventually(t, 30*time.Second, "pod of "+ds+" running", func() error {
		p := podOn(h.pods(), ds, node)
		if p == nil || p.Status.Phase != api.PodRunning {
			return fmt.Errorf("pod %+v", p)
		}
		name = p.Name
		return nil
	})
	return name
}

// TestTopPodsShowsTheBurnerAndTheWorkingSet runs a pod that burns a core,
// one that holds 30 MB and one that sleeps: `hub top pods --sort-by=cpu`
// puts the burner first, the holder's working set shows its 30 MB, and
// `top nodes`, `get node -o json`, `describe node` and /metrics show the
// node's usage.
func TestTopPodsShowsTheBurnerAndTheWorkingSet(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startMetricsAgent(t, h)
	burn, hold, idle := uniq("burn"), uniq("hold"), uniq("idle")
	h.applyYAML(daemonSet(burn, env.image, "", "while :; do :; done"))
	h.applyYAML(daemonSet(hold, env.image, "", `x=$(head -c 30000000 /dev/zero | tr '\0' a); echo held; while :; do sleep 3600; done`))
	h.applyYAML(daemonSet(idle, env.image, "", "sleep 3600"))
	burnPod, holdPod := podName(t, h, burn, a.node), podName(t, h, hold, a.node)
	podName(t, h, idle, a.node)
	running := time.Now()

	var rows []topRow
	eventually(t, 30*time.Second, "the burner at the top of top pods", func() error {
		rows = topPods(t, h, "--sort-by=cpu")
		if len(rows) < 3 || rows[0].name != burnPod || rows[0].milli < 300 {
			return fmt.Errorf("rows %+v", rows)
		}
		return nil
	})
	t.Logf("figure: burner first in `hub top pods` %s after all three pods ran (interval %s)", time.Since(running).Round(100*time.Millisecond), metricsInterval)
	eventually(t, 30*time.Second, "the holder's working set", func() error {
		for _, r := range topPods(t, h, "--sort-by=memory") {
			if r.name == holdPod {
				if r.mib < 28 {
					logs, _, _ := h.cli("", "logs", holdPod)
					return fmt.Errorf("working set %d Mi; the pod printed %q", r.mib, logs)
				}
				return nil
			}
		}
		return fmt.Errorf("no row for %s", holdPod)
	})
	if rows := topPods(t, h, "--sort-by=memory"); rows[0].name != holdPod {
		t.Errorf("sort by memory: %+v", rows)
	}

	out := h.mustCLI("top", "nodes")
	if !strings.Contains(out, "TEMP") || !strings.Contains(out, a.node) {
		t.Errorf("top nodes:\n%s", out)
	}
	n := h.node(a.node)
	if m := n.Status.Metrics; m == nil || m.CPUCores < 1 || m.MemoryTotalBytes == 0 || m.Pods < 3 || len(m.Filesystems) == 0 {
		t.Errorf("node status.metrics = %+v", n.Status.Metrics)
	}
	if n.Status.Capacity[api.ResourceCPU] == "" {
		t.Errorf("no capacity: %+v", n.Status.Capacity)
	}
	desc := h.mustCLI("describe", "node", a.node)
	for _, want := range []string{"Usage:", "Pod Usage:", burnPod, "MemoryPressure", "DiskPressure"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe node lacks %q:\n%s", want, desc)
		}
	}

	fams := scrapeHub(t, h)
	if v, ok := promValue(fams, "flotilla_pod_cpu_usage_cores", map[string]string{"node": a.node, "namespace": "default", "pod": burnPod}); !ok || v < 0.3 {
		t.Errorf("prometheus pod cpu %v (found %t)", v, ok)
	}
	if v, ok := promValue(fams, "flotilla_hub_nodes_connected", nil); !ok || v < 1 {
		t.Errorf("prometheus connected nodes %v (found %t)", v, ok)
	}
	if v, ok := promValue(fams, "flotilla_hub_mqtt_messages_received_total", map[string]string{"kind": "metrics"}); !ok || v < 2 {
		t.Errorf("prometheus metrics messages %v (found %t)", v, ok)
	}
}

// TestMetricsPressureConditions starts a hub whose thresholds any node
// passes: the node gets MemoryPressure and DiskPressure, which `get nodes`
// shows.
func TestMetricsPressureConditions(t *testing.T) {
	h := startHub(t, hubOptions{})
	h.args = append(h.args, "--memory-pressure-threshold", "1%", "--disk-pressure-threshold", "1%")
	h.restart(false)
	a := startMetricsAgent(t, h)
	eventually(t, 20*time.Second, "pressure conditions", func() error {
		n := h.node(a.node)
		for _, c := range []string{api.NodeMemoryPressure, api.NodeDiskPressure} {
			if cond := n.Status.Condition(c); cond == nil || cond.Status != api.ConditionTrue {
				return fmt.Errorf("%s = %+v", c, cond)
			}
		}
		return nil
	})
	if out := h.mustCLI("get", "nodes"); !strings.Contains(out, "Ready,MemoryPressure,DiskPressure") {
		t.Errorf("get nodes:\n%s", out)
	}
}

func scrapeHub(t *testing.T, h *hubProc) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(h.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func promValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		match := true
		for k, v := range labels {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		if m.Gauge != nil {
			return m.GetGauge().GetValue(), true
		}
		return m.GetCounter().GetValue(), true
	}
	return 0, false
}

// TestLogsTailSinceAndFollow: `hub logs` returns what the container
// printed, --tail and --since cut it, and -f streams new lines as they
// come.
func TestLogsTailSinceAndFollow(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startMetricsAgent(t, h)
	ds := uniq("chatty")
	h.applyYAML(daemonSet(ds, env.image, "", `i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.2; done`))
	pod := podName(t, h, ds, a.node)
	eventually(t, 20*time.Second, "logs with line-10", func() error {
		out, errOut, err := h.cli("", "logs", pod)
		if err != nil || !strings.HasPrefix(out, "line-0\n") || !strings.Contains(out, "line-10\n") {
			return fmt.Errorf("%v %q %s", err, out, errOut)
		}
		return nil
	})
	if out := h.mustCLI("logs", pod, "--tail", "2", "-c", "main"); strings.Count(out, "\n") != 2 || !strings.HasPrefix(out, "line-") {
		t.Errorf("--tail 2 = %q", out)
	}
	// By now the container has run for over 2 s: --since 1s leaves out its
	// first lines.
	if out := h.mustCLI("logs", pod, "--since", "1s"); strings.Contains(out, "line-0\n") || !strings.Contains(out, "line-") {
		t.Errorf("--since 1s = %q", out)
	}
	if out := h.mustCLI("logs", "pod/"+pod, "--limit-bytes", "7"); out != "line-0\n" {
		t.Errorf("--limit-bytes 7 = %q", out)
	}
	_, errOut, err := h.cli("", "logs", pod, "--previous")
	// Said once, as kubectl says it: no "error: " before the hub's answer,
	// no "not found: " after its reason.
	if err == nil || !strings.HasPrefix(errOut, "Error from server (NotFound): previous terminated container \"main\" in pod") {
		t.Errorf("--previous without a restart: %v %s", err, errOut)
	}

	// Follow: start from the tail, see lines printed after the start.
	last := lastLine(h.mustCLI("logs", pod, "--tail", "1"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, env.hubBin, "logs", pod, "-f", "--tail", "1", "--server", h.URL)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	started := time.Now()
	want := last + 10
	seen := -1
	deadline := time.After(30 * time.Second)
	for seen < want {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("hub logs -f ended; last line seen %d", seen)
			}
			n, err := strconv.Atoi(strings.TrimPrefix(l, "line-"))
			if err != nil {
				t.Fatalf("unexpected line %q", l)
			}
			if seen >= 0 && n != seen+1 {
				t.Fatalf("line %d after %d: a line lost or repeated", n, seen)
			}
			seen = n
		case <-deadline:
			t.Fatalf("hub logs -f: reached line %d, want %d", seen, want)
		}
	}
	t.Logf("figure: `hub logs -f` streamed 10 new lines (printed every 200 ms) in %s", time.Since(started).Round(100*time.Millisecond))
	cancel()
	_ = cmd.Wait()
	wg.Wait()
}

func lastLine(out string) int {
	ls := strings.Split(strings.TrimSpace(out), "\n")
	n, _ := strconv.Atoi(strings.TrimPrefix(ls[len(ls)-1], "line-"))
	return n
}

// TestLogsPreviousAfterRestart runs a container that prints a random token
// and crashes: after a restart, --previous returns the token the run
// before printed, and the current log the new run's.
func TestLogsPreviousAfterRestart(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startMetricsAgent(t, h, "--container-log-max-size", "64Ki")
	ds := uniq("crash")
	h.applyYAML(daemonSet(ds, env.image, "", `echo token-$(cat /proc/sys/kernel/random/uuid); sleep 3; exit 1`))
	restarts := func() int32 {
		p := podOn(h.pods(), ds, a.node)
		if p == nil || len(p.Status.ContainerStatuses) == 0 {
			return -1
		}
		return p.Status.ContainerStatuses[0].RestartCount
	}
	var pod string
	var token string
	var at int32
	eventually(t, 60*time.Second, "a restarted container with its token", func() error {
		p := podOn(h.pods(), ds, a.node)
		if p == nil {
			return fmt.Errorf("no pod")
		}
		pod = p.Name
		at = restarts()
		if at < 1 {
			return fmt.Errorf("restarts %d", at)
		}
		out, errOut, err := h.cli("", "logs", pod)
		if err != nil || !strings.HasPrefix(out, "token-") {
			return fmt.Errorf("logs: %v %q %s", err, out, errOut)
		}
		if restarts() != at {
			return fmt.Errorf("restarted meanwhile")
		}
		token = strings.TrimSpace(out)
		return nil
	})
	eventually(t, 60*time.Second, "the next restart", func() error {
		if r := restarts(); r <= at {
			return fmt.Errorf("restarts %d", r)
		}
		return nil
	})
	out := h.mustCLI("logs", pod, "--previous")
	if strings.TrimSpace(out) != token {
		t.Fatalf("--previous = %q, want the last run's %q", out, token)
	}
	// The new run prints its token just after it starts, which may be a
	// moment after the hub counts the restart.
	eventually(t, 10*time.Second, "the current run's own token", func() error {
		if cur := strings.TrimSpace(h.mustCLI("logs", pod)); cur == token || !strings.HasPrefix(cur, "token-") {
			return fmt.Errorf("current = %q, previous %q", cur, token)
		}
		return nil
	})
	// The board keeps only the current and the previous run (the agent
	// tidies once a second).
	eventually(t, 10*time.Second, "older runs removed", func() error {
		files, _ := filepath.Glob(filepath.Join(a.stateDir, "logs", "default_"+pod+"_*", "main", "*.log"))
		if len(files) != 2 {
			return fmt.Errorf("log files kept: %v", files)
		}
		return nil
	})
}

// seriesPoint is one point of `hub metrics node -o json`.
type seriesPoint struct {
	Time          time.Time `json:"time"`
	WindowSeconds float64   `json:"windowSeconds"`
}

// TestMetricsOfflineDeliversWithoutGap cuts a site's link for several
// intervals: the agent keeps sampling, merges what it samples offline,
// and on reconnect delivers it, so `hub metrics` covers the outage with
// no gap.
func TestMetricsOfflineDeliversWithoutGap(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	a := startSiteAgent(t, h, site, "--metrics-interval", metricsInterval.String(), "--metrics-offline-resolution", "5s")
	series := func() []seriesPoint {
		var s struct{ Points []seriesPoint }
		h.getJSON(&s, "metrics", "node", a.node, "--since", "10m", "--metric", "cpu.usage_cores", "-o", "json")
		return s.Points
	}
	eventually(t, 20*time.Second, "samples arriving", func() error {
		if n := len(series()); n < 3 {
			return fmt.Errorf("%d samples", n)
		}
		return nil
	})
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	eventually(t, 20*time.Second, "hub sees the node NotReady", func() error {
		if h.node(a.node).IsReady() {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	// Stay cut for a few more intervals and at least one whole offline
	// bucket.
	time.Sleep(8 * time.Second)
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	restoredAt := time.Now()
	var pts []seriesPoint
	eventually(t, 30*time.Second, "samples from before, during and after the cut", func() error {
		pts = series()
		if len(pts) == 0 || pts[len(pts)-1].Time.Before(restoredAt.Add(2*time.Second)) {
			return fmt.Errorf("%d samples, last at %v", len(pts), pts)
		}
		return nil
	})
	t.Logf("figure: link cut %s; samples from the outage in `hub metrics` %s after it came back",
		restoredAt.Sub(cutAt).Round(100*time.Millisecond), time.Since(restoredAt).Round(100*time.Millisecond))
	merged := 0
	for i, p := range pts {
		if p.WindowSeconds > 1.5*metricsInterval.Seconds() {
			merged++
		}
		if i == 0 {
			continue
		}
		start := p.Time.Add(-time.Duration(p.WindowSeconds * float64(time.Second)))
		prev := pts[i-1].Time
		// Windows are rounded to 10 ms in the API.
		if d := start.Sub(prev); d > 20*time.Millisecond || d < -20*time.Millisecond {
			t.Errorf("gap or overlap between %s and %s (window %.2fs): %s", prev.Format(time.RFC3339Nano), p.Time.Format(time.RFC3339Nano), p.WindowSeconds, d)
		}
	}
	if merged == 0 {
		t.Errorf("no merged samples from the outage: %+v", pts)
	}
	if last := pts[len(pts)-1]; last.WindowSeconds > 1.5*metricsInterval.Seconds() {
		t.Errorf("after reconnecting the samples are still merged: %+v", last)
	}
	// The series as CSV has a header and one line per point.
	out := h.mustCLI("metrics", "node", a.node, "--since", "10m", "--metric", "memory", "-o", "csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "time,window_seconds,memory.") || len(lines) < len(pts) {
		t.Errorf("csv: %d lines, header %q", len(lines), lines[0])
	}
}
