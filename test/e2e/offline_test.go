package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// siteSeq numbers the sites (network namespaces) tests create.
var siteSeq int

// startSite creates a site namespace joined to the host by a veth pair.
func startSite(t *testing.T) *harness.Site {
	t.Helper()
	siteSeq++
	// Name and number sites by process, so test runs side by side differ.
	pid := os.Getpid() % 10000
	s, err := harness.NewSite(fmt.Sprintf("f%d-%d", pid, siteSeq), pid*3%harness.SiteSlots+siteSeq)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// startSiteAgent runs an agent inside site, reaching the hub's broker over
// the site's link only.
func startSiteAgent(t *testing.T, h *hubProc, site *harness.Site, extra ...string) *agentProc {
	t.Helper()
	return startSiteAgentOn(t, h, site, 0, extra...)
}

// startSiteAgentOn is startSiteAgent with, when stateTmpfs is set, the
// agent's state directory on a tmpfs of that size.
func startSiteAgentOn(t *testing.T, h *hubProc, site *harness.Site, stateTmpfs int64, extra ...string) *agentProc {
	t.Helper()
	_, port, _ := strings.Cut(strings.TrimPrefix(h.MQTT, "tcp://127.0.0.1"), ":")
	broker := "tcp://" + site.HostIP + ":" + port
	node := uniq("site-")
	a := &agentProc{t: t, hub: h, node: node, ns: "e2e-" + node, stateDir: filepath.Join(env.dir, node)}
	a.logPath = filepath.Join(env.dir, node+".log")
	if stateTmpfs > 0 {
		mountTmpfs(t, a.stateDir, stateTmpfs)
	}
	args := append([]string{
		"--broker", broker, "--node-name", node,
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", siteRegistry(site),
		"--heartbeat-interval", "1s", "--resync-interval", "2s", "--mqtt-keepalive", "2s",
	}, append(hostNetworkFlags, extra...)...)
	bin, wrapped := site.Wrap(env.agentBin, args...)
	a.bin, a.args = bin, wrapped
	a.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", a.node, a.proc.Logs())
		}
		_ = a.proc.Stop()
		removeAll(t, a.ns)
	})
	eventually(t, 30*time.Second, "node "+node+" Ready", func() error {
		if !h.node(node).IsReady() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return a
}

// siteRegistry is the test registry's address as seen from a site.
func siteRegistry(site *harness.Site) string {
	return fmt.Sprintf("%s:%d", site.HostIP, env.regPort)
}

// siteImage is a test image reference a site's agent can pull ("v1" or "v2").
func siteImage(site *harness.Site, tag string) string {
	return siteRegistry(site) + "/e2e/busybox:" + tag
}

// removeAll deletes every container in ns (what the agent left behind).
func removeAll(t *testing.T, ns string) {
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		return
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	cs, _ := client.Containers(ctx)
	for _, c := range cs {
		if task, err := c.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		_ = c.Delete(ctx, containerd.WithSnapshotCleanup)
	}
}

func offlineHub(t *testing.T) *hubProc {
	return startHub(t, hubOptions{mqttHost: "0.0.0.0", grace: 4 * time.Second})
}

func nodeEvents(t *testing.T, h *hubProc, node string) []api.Event {
	t.Helper()
	var list struct{ Items []api.Event }
	h.getJSON(&list, "get", "events", "-A", "-o", "json")
	var out []api.Event
	for _, e := range list.Items {
		if e.Source.Host == node || (e.InvolvedObject.Kind == api.KindNode && e.InvolvedObject.Name == node) {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].LastTimestamp.Time, out[j].LastTimestamp.Time
		if !a.Equal(b) {
			return a.Before(b)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func reasons(evs []api.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Reason)
	}
	return out
}

// TestOfflineSiteHealsAndReportsOnReconnect: with the link cut, a killed
// task runs again (checked through containerd); once the link is back the
// hub shows the restart and the events, in order, within 10 s.
func TestOfflineSiteHealsAndReportsOnReconnect(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	a := startSiteAgent(t, h, site)
	ds := uniq("ds")
	h.applyYAML(daemonSet(ds, siteImage(site, "v1"), "", "sleep 3600"))
	var first container
	eventually(t, 30*time.Second, "running", func() error {
		rs := running(t, a.ns)
		if len(rs) != 1 {
			return fmt.Errorf("%d running", len(rs))
		}
		first = rs[0]
		return nil
	})

	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	eventually(t, 20*time.Second, "hub sees the node NotReady and its pod Unknown", func() error {
		if h.node(a.node).IsReady() {
			return fmt.Errorf("still ready")
		}
		if p := podOn(h.pods(), ds, a.node); p == nil || p.Status.Phase != api.PodUnknown {
			return fmt.Errorf("pod = %+v", p)
		}
		return nil
	})
	killTask(t, a.ns, first.ID)
	eventually(t, 15*time.Second, "task running again while the link is down", func() error {
		rs := running(t, a.ns)
		if len(rs) != 1 || rs[0].Pid == first.Pid {
			return fmt.Errorf("running = %+v", rs)
		}
		return nil
	})
	if h.node(a.node).IsReady() {
		t.Fatal("the link was not really cut: the node is Ready")
	}

	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	restoredAt := time.Now()
	eventually(t, 10*time.Second, "hub shows the restart and the events", func() error {
		if !h.node(a.node).IsReady() {
			return fmt.Errorf("node not ready")
		}
		p := podOn(h.pods(), ds, a.node)
		if p == nil || p.Status.Phase != api.PodRunning || p.Status.ContainerStatuses[0].RestartCount != 1 {
			return fmt.Errorf("pod = %+v", p)
		}
		got := reasons(nodeEvents(t, h, a.node))
		for _, want := range []string{"Offline", "Exited", "Restarted", "Online"} {
			if !slices.Contains(got, want) {
				return fmt.Errorf("events %v lack %s", got, want)
			}
		}
		return nil
	})
	t.Logf("link down %s; node Ready with the restart and events visible %s after the link came back",
		restoredAt.Sub(cutAt).Round(time.Millisecond), time.Since(restoredAt).Round(time.Millisecond))
	// In order: the agent's events, taken in the order it reported them
	// (the sequence number of the newest report each counts), have non-decreasing times,
	// and the crash comes before the restart and both before the return.
	var agentEvs []api.Event
	for _, e := range nodeEvents(t, h, a.node) {
		if e.Source.Component == "edge-agent" {
			agentEvs = append(agentEvs, e)
		}
	}
	sort.Slice(agentEvs, func(i, j int) bool { return seqOf(agentEvs[i]) < seqOf(agentEvs[j]) })
	pos := map[string]int{}
	for i, e := range agentEvs {
		if i > 0 && e.LastTimestamp.Before(agentEvs[i-1].LastTimestamp.Time) {
			t.Fatalf("event %s reported after %s but happened before it", e.Name, agentEvs[i-1].Name)
		}
		pos[e.Reason] = i
	}
	if !(pos["Offline"] < pos["Online"] && pos["Exited"] < pos["Restarted"] && pos["Restarted"] < pos["Online"]) {
		t.Fatalf("events out of order: %v", reasons(agentEvs))
	}
}

// seqOf reads the agent sequence number at the end of an event's name.
func seqOf(e api.Event) uint64 {
	seq, _ := strconv.ParseUint(e.Annotations["flotilla.io/seq"], 10, 64)
	return seq
}

// occurrences counts what events stand for: a repeated event is one Event
// with a count.
func occurrences(evs []api.Event) int {
	n := 0
	for _, e := range evs {
		n += int(e.Count)
	}
	return n
}

// TestOfflineNodeConvergesToNewestOnly: two changes made while a node is
// cut off; on reconnect it runs the second and never creates the first.
func TestOfflineNodeConvergesToNewestOnly(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	a := startSiteAgent(t, h, site)
	ds := uniq("ds")
	h.applyYAML(daemonSet(ds, siteImage(site, "v1"), "", "echo v1; sleep 3600"))
	eventually(t, 30*time.Second, "v1 running", func() error {
		if len(running(t, a.ns)) != 1 {
			return fmt.Errorf("not running")
		}
		return nil
	})
	creates := watchCreates(t, a.ns)
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "hub sees the node gone", func() error {
		if h.node(a.node).IsReady() {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	h.applyYAML(daemonSet(ds, siteImage(site, "v1"), "", "echo v2; sleep 3600"))
	h.applyYAML(daemonSet(ds, siteImage(site, "v1"), "", "echo v3; sleep 3600"))
	time.Sleep(time.Second) // the hub publishes both revisions while the node cannot hear
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "v3 running", func() error {
		cs := containers(t, a.ns)
		if len(cs) != 1 || cs[0].Status != "running" || !slices.Contains(cs[0].Args, "echo v3; sleep 3600") {
			return fmt.Errorf("containers = %+v", cs)
		}
		return nil
	})
	ids := creates()
	if len(ids) != 1 {
		t.Fatalf("containers created after the outage: %v, want only v3's", ids)
	}
	n := h.node(a.node)
	if n.Status.ObservedRevision != n.Status.DesiredRevision {
		t.Fatalf("node observed revision %d, desired %d", n.Status.ObservedRevision, n.Status.DesiredRevision)
	}
}

// watchCreates records the containers created in ns from now on.
func watchCreates(t *testing.T, ns string) func() []string {
	t.Helper()
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, errs := client.Subscribe(ctx, `topic=="/containers/create"`)
	var mu sync.Mutex
	var ids []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var ev *events.Envelope
			select {
			case ev = <-ch:
			case <-errs:
				return // the subscription ends (with ctx) by an error
			}
			if ev == nil || ev.Namespace != ns {
				continue
			}
			v, err := typeurl.UnmarshalAny(ev.Event)
			if err != nil {
				continue
			}
			if c, ok := v.(*eventsapi.ContainerCreate); ok {
				mu.Lock()
				ids = append(ids, c.ID)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; client.Close() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
}

// TestRebootedBoardRestoresPodsOffline: agent and containerd stopped, all
// containers gone (as after a reboot), both started again with the link
// cut: the pods come back from the agent's local state alone.
func TestRebootedBoardRestoresPodsOffline(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	a := startSiteAgent(t, h, site)
	ds := uniq("ds")
	h.applyYAML(daemonSet(ds, siteImage(site, "v1"), "", "sleep 3600"))
	eventually(t, 30*time.Second, "running", func() error {
		if len(running(t, a.ns)) != 1 {
			return fmt.Errorf("not running")
		}
		return nil
	})
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "hub sees the node gone", func() error {
		if h.node(a.node).IsReady() {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	_ = a.proc.Stop()
	removeAll(t, a.ns)
	if len(containers(t, a.ns)) != 0 {
		t.Fatal("containers survived the simulated reboot")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.ctd.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	a.start()
	eventually(t, 30*time.Second, "pod back from local state with the link cut", func() error {
		if len(running(t, a.ns)) != 1 {
			return fmt.Errorf("not running")
		}
		return nil
	})
	if h.node(a.node).IsReady() {
		t.Fatal("the link was not really cut")
	}
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "hub sees the pod Running", func() error {
		if p := podOn(h.pods(), ds, a.node); p == nil || p.Status.Phase != api.PodRunning {
			return fmt.Errorf("pod = %+v", p)
		}
		return nil
	})
}

// TestLivenessProbeRestartsContainer: a container whose liveness probe
// starts failing is restarted by the agent, online and with the link cut.
func TestLivenessProbeRestartsContainer(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	a := startSiteAgent(t, h, site)
	ds := uniq("ds")
	// Healthy for 3 s after each start, then the probe's file disappears.
	manifest := daemonSet(ds, siteImage(site, "v1"), "", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 3600") +
		`          livenessProbe:
            exec: {command: [cat, /tmp/healthy]}
            periodSeconds: 1
            failureThreshold: 2
          readinessProbe:
            exec: {command: [test, -f, /tmp/healthy]}
            periodSeconds: 1
`
	h.applyYAML(manifest)
	var first container
	eventually(t, 30*time.Second, "running", func() error {
		rs := running(t, a.ns)
		if len(rs) != 1 {
			return fmt.Errorf("not running")
		}
		first = rs[0]
		return nil
	})
	eventually(t, 30*time.Second, "restarted by its liveness probe (online)", func() error {
		p := podOn(h.pods(), ds, a.node)
		if p == nil || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("pod = %+v", p)
		}
		return nil
	})
	if !slices.Contains(reasons(nodeEvents(t, h, a.node)), "Unhealthy") {
		t.Fatalf("no Unhealthy event: %v", reasons(nodeEvents(t, h, a.node)))
	}
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	var pid uint32
	if rs := running(t, a.ns); len(rs) == 1 {
		pid = rs[0].Pid
	}
	// The next failure restarts after kubelet's 10 s back-off.
	eventually(t, 40*time.Second, "restarted again with the link cut", func() error {
		rs := running(t, a.ns)
		if len(rs) != 1 || rs[0].Pid == pid || rs[0].Labels["io.flotilla.pod.uid"] != first.Labels["io.flotilla.pod.uid"] {
			return fmt.Errorf("running = %+v", rs)
		}
		return nil
	})
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
}

// TestOutboxBoundWhileOffline: with a small outbox and the link cut, pods
// crash a known number of times; on reconnect the hub gets the newest
// events, in order, and the reported drops account exactly for the rest.
func TestOutboxBoundWhileOffline(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	const bound = 30
	a := startSiteAgent(t, h, site, "--outbox-max-entries", fmt.Sprint(bound))
	const pods = 5
	const failures = 3
	var manifests []string
	for i := 0; i < pods; i++ {
		dir := filepath.Join(env.dir, uniq("count"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Fails its first three runs, then stays up: a known crash count.
		script := fmt.Sprintf("n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; if [ $n -le %d ]; then exit 1; fi; sleep 3600", failures)
		m := daemonSet(uniq("crashy"), siteImage(site, "v1"), "", script) +
			"          volumeMounts: [{name: data, mountPath: /data}]\n" +
			"      volumes: [{name: data, hostPath: {path: " + dir + "}}]\n"
		manifests = append(manifests, m)
	}
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	// The snapshot must reach the node, so cut after the node has it:
	// restore briefly, apply, wait for the containers, cut again.
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	h.applyYAML(strings.Join(manifests, "---\n"))
	eventually(t, 30*time.Second, "containers created", func() error {
		if n := len(containers(t, a.ns)); n != pods {
			return fmt.Errorf("%d containers", n)
		}
		return nil
	})
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	// Wait (offline) until every pod has run its course: the three
	// failures take 0 + 10 + 20 s of back-off.
	eventually(t, 90*time.Second, "every pod settled after its failures", func() error {
		rs := running(t, a.ns)
		if len(rs) != pods {
			return fmt.Errorf("%d running", len(rs))
		}
		for _, c := range rs {
			if c.StartedAt == "" || time.Since(parseTime(c.StartedAt)) < 2*time.Second {
				return fmt.Errorf("%s just started", c.ID)
			}
		}
		return nil
	})
	time.Sleep(3 * time.Second) // nothing more happens now; let the last reports queue
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	var n *api.Node
	eventually(t, 30*time.Second, "outbox drained", func() error {
		n = h.node(a.node)
		if !n.IsReady() || n.Status.Outbox.Queued != 0 || n.Status.Outbox.Dropped == 0 {
			return fmt.Errorf("outbox %+v", n.Status.Outbox)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // the last delivered events land in the store
	evs := nodeEvents(t, h, a.node)
	var fromAgent []api.Event
	for _, e := range evs {
		if e.Source.Component == "edge-agent" {
			fromAgent = append(fromAgent, e)
		}
	}
	// Nothing is lost silently: every event the agent queued was either
	// delivered or counted as dropped. Every pod alone generated Pulled,
	// Created, Started, then per failure Exited and Restarted, and BackOff
	// for every failure after the first.
	perPod := 3 + 2*failures + (failures - 1)
	appended := int(n.Status.Outbox.AppendedByClass["event"])
	dropped := int(n.Status.Outbox.DroppedByClass["event"])
	if got := occurrences(fromAgent) + dropped; got != appended {
		t.Fatalf("events delivered %d + dropped %d = %d, but the agent queued %d (%v)", occurrences(fromAgent), dropped, got, appended, reasons(fromAgent))
	}
	if appended < pods*perPod {
		t.Fatalf("the agent queued %d events, fewer than the %d the pods' crashes make", appended, pods*perPod)
	}
	if dropped == 0 {
		t.Fatalf("bound %d: %d delivered, %d dropped: the test did not exercise the bound", bound, len(fromAgent), dropped)
	}
	for i := 1; i < len(fromAgent); i++ {
		if fromAgent[i].LastTimestamp.Before(fromAgent[i-1].LastTimestamp.Time) {
			t.Fatalf("events out of order at %d", i)
		}
	}
	t.Logf("outbox bound %d: %d events delivered, %d events and %d status reports dropped", bound, len(fromAgent), dropped, n.Status.Outbox.DroppedByClass["status"])
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// TestLinkFlapKeepsContainers: cutting and restoring the link changes
// nothing on the node: same containers, same start times.
func TestLinkFlapKeepsContainers(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	a := startSiteAgent(t, h, site)
	h.applyYAML(daemonSet(uniq("ds"), siteImage(site, "v1"), "", "sleep 3600") + "---\n" + daemonSet(uniq("ds"), siteImage(site, "v2"), "", "sleep 3600"))
	var before []container
	eventually(t, 30*time.Second, "running", func() error {
		before = running(t, a.ns)
		if len(before) != 2 {
			return fmt.Errorf("%d running", len(before))
		}
		// The agent records the start time on the container just after
		// starting it; compare from then on.
		for _, c := range before {
			if c.StartedAt == "" {
				return fmt.Errorf("%s: start time not recorded yet", c.ID)
			}
		}
		return nil
	})
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "NotReady", func() error {
		if h.node(a.node).IsReady() {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "Ready with pods Running", func() error {
		if !h.node(a.node).IsReady() {
			return fmt.Errorf("not ready")
		}
		for _, p := range h.pods() {
			if p.Spec.NodeName == a.node && p.Status.Phase != api.PodRunning {
				return fmt.Errorf("pod %s %s", p.Name, p.Status.Phase)
			}
		}
		return nil
	})
	time.Sleep(3 * time.Second) // resyncs
	after := running(t, a.ns)
	if len(after) != 2 {
		t.Fatalf("after: %+v", after)
	}
	for i := range after {
		if after[i].ID != before[i].ID || after[i].Pid != before[i].Pid || after[i].StartedAt != before[i].StartedAt {
			t.Fatalf("a link flap disturbed a container:\nbefore %+v\nafter  %+v", before[i], after[i])
		}
	}
}

// TestAgentKill9LoopWhileWriting kills the agent with SIGKILL again and
// again while snapshots arrive and reports queue: every restart opens its
// store (no damage, nothing moved aside) and never forgets a snapshot it
// acknowledged.
func TestAgentKill9LoopWhileWriting(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startAgent(t, h)
	ds := uniq("ds")
	var acked uint64
	for i := 0; i < 8; i++ {
		h.applyYAML(daemonSet(ds, env.image, "", fmt.Sprintf("echo round %d; sleep 3600", i)))
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		if rev := h.node(a.node).Status.ObservedRevision; rev > acked {
			acked = rev
		}
		a.kill9()
		a.start()
		eventually(t, 30*time.Second, "agent back", func() error {
			n := h.node(a.node)
			if !n.Status.Online || n.Status.ObservedRevision < acked {
				return fmt.Errorf("online %v observed %d, acknowledged before %d", n.Status.Online, n.Status.ObservedRevision, acked)
			}
			return nil
		})
	}
	eventually(t, 30*time.Second, "converged on the last round", func() error {
		cs := containers(t, a.ns)
		if len(cs) != 1 || cs[0].Status != "running" || !slices.Contains(cs[0].Args, "echo round 7; sleep 3600") {
			return fmt.Errorf("containers = %+v", cs)
		}
		return nil
	})
	for _, e := range nodeEvents(t, h, a.node) {
		if e.Reason == "StateRecovered" {
			t.Fatalf("the agent's store had to be rebuilt after a kill: %s", e.Message)
		}
	}
	entries, _ := os.ReadDir(a.stateDir)
	for _, e := range entries {
		if strings.Contains(e.Name(), "broken") {
			t.Fatalf("store moved aside: %s", e.Name())
		}
	}
}
