package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// The measurements of issue 15's pod network against the real hub, agent,
// containerd, runc and Debian's CNI plugins. Each agent runs in a site (a
// network namespace of its own, harness.NewSite), so that its bridge, its
// nftables table and its DNS server are its own and not the machine's.
// The agent enters the site's network namespace only (nsenter --net), not
// a mount namespace of its own as `ip netns exec` gives it: the pods'
// namespaces it binds under its state directory must be seen by
// containerd and runc. They are measurements, not checks:
//
//	FLOTILLA_MEASURE=1 go test -count=1 -v -run 'TestMeasure(PodNetwork|AgentRSSNetworking|ServiceDataPath)' ./test/e2e/
//
// Figures are printed with t.Logf ("figure:"); docs/benchmarks.md keeps them.

func nmNeedMeasure(t *testing.T) {
	t.Helper()
	if os.Getenv("FLOTILLA_MEASURE") == "" {
		t.Skip("a measurement, not a check: set FLOTILLA_MEASURE=1 to run it")
	}
}

// nmStartAgent runs bin as an agent in site's network namespace, with
// the agent's own default intervals, and waits for its node to be Ready.
// environ are KEY=value settings for its environment.
func nmStartAgent(t *testing.T, h *hubProc, site *harness.Site, bin string, environ []string, extra ...string) *agentProc {
	t.Helper()
	nsenter, err := harness.FindBinary("nsenter")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(h.MQTT, "tcp://127.0.0.1"), ":")
	node := uniq("nm-")
	a := &agentProc{t: t, hub: h, node: node, ns: "e2e-" + node, stateDir: filepath.Join(env.dir, node), bin: nsenter}
	a.logPath = filepath.Join(env.dir, node+".log")
	a.args = []string{"--net=/run/netns/" + site.Name, "--"}
	if len(environ) > 0 {
		// env execs the agent, as nsenter does: the pid is the agent's.
		envBin, err := harness.FindBinary("env")
		if err != nil {
			t.Fatal(err)
		}
		a.args = append(append(a.args, envBin), environ...)
	}
	a.args = append(a.args, bin,
		"--broker", "tcp://"+site.HostIP+":"+port, "--node-name", node, "--label", "nmnode="+node,
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", siteRegistry(site))
	a.args = append(a.args, extra...)
	a.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", a.node, a.proc.Logs())
		}
		_ = a.proc.Stop()
		removeAll(t, a.ns)
		nmUnmountPodNamespaces(a)
	})
	eventually(t, 30*time.Second, "node "+node+" Ready with a pod CIDR", func() error {
		n := h.node(node)
		if !n.IsReady() || n.Spec.PodCIDR == "" {
			return fmt.Errorf("ready %v, pod CIDR %q", n.IsReady(), n.Spec.PodCIDR)
		}
		return nil
	})
	return a
}

// nmHub starts a hub whose broker the sites reach, with a grace period
// the agents' default 10 s heartbeat keeps within.
func nmHub(t *testing.T) *hubProc {
	return startHub(t, hubOptions{mqttHost: "0.0.0.0", grace: 40 * time.Second})
}

// nmUnmountPodNamespaces unbinds the pods' namespaces a stopped agent
// left, so that the state directory can be removed.
func nmUnmountPodNamespaces(a *agentProc) {
	dir := nmNetnsDir(a)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = unix.Unmount(filepath.Join(dir, e.Name()), unix.MNT_DETACH)
	}
}

// nmNetnsDir is where an agent binds its pods' network namespaces
// (edge-agent/internal/network: STATE-DIR/network/netns/UID).
func nmNetnsDir(a *agentProc) string { return filepath.Join(a.stateDir, "network", "netns") }

// nmDaemonSet renders a DaemonSet on node whose pods carry the labels
// app=name and tier=tier, on the host network or the pod network.
func nmDaemonSet(name, tier, node, image string, hostNetwork bool, command string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: %s}
spec:
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s, tier: %s}}
    spec:
      hostNetwork: %t
      nodeSelector: {nmnode: %s}
      terminationGracePeriodSeconds: 0
      containers:
        - name: main
          image: %s
          imagePullPolicy: IfNotPresent
          command: ["sh", "-c", %q]
`, name, name, name, tier, hostNetwork, node, image, command)
}

// nmPods lists the pods with label app=app straight from the hub's API
// (the CLI costs a process start, too slow to time with).
func nmPods(h *hubProc, app string) ([]api.Pod, error) {
	u := h.URL + "/api/v1/namespaces/default/pods?" + url.Values{"labelSelector": {"app=" + app}}.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := h.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list pods: %s", resp.Status)
	}
	var list struct {
		Items []api.Pod `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	return list.Items, nil
}

// nmOnePod waits for the single pod of app, Running as the hub shows it.
func nmOnePod(t *testing.T, h *hubProc, app string) api.Pod {
	t.Helper()
	var pod api.Pod
	eventually(t, 60*time.Second, "pod of "+app+" Running", func() error {
		ps, err := nmPods(h, app)
		if err != nil {
			return err
		}
		if len(ps) != 1 || ps[0].Status.Phase != api.PodRunning {
			return fmt.Errorf("pods %d, phase %v", len(ps), ps)
		}
		pod = ps[0]
		return nil
	})
	return pod
}

// nmSnapshots records when each pod (by its app label) first appears in
// a node's desired snapshot, as a subscriber of the same broker sees it:
// when the snapshot reaches the agent, within the broker's fan-out.
type nmSnapshots struct {
	mu    sync.Mutex
	first map[string]time.Time
}

func nmWatchSnapshots(t *testing.T, h *hubProc, node string) *nmSnapshots {
	t.Helper()
	s := &nmSnapshots{first: map[string]time.Time{}}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(h.MQTT).SetClientID(uniq("nm-observer-")).
		SetConnectTimeout(5 * time.Second).SetWriteTimeout(10 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	topic := wire.NodeTopic(node, wire.TopicDesired)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		at := time.Now()
		envl, err := wire.Decode(m.Topic(), m.Payload())
		if err != nil {
			return
		}
		var snap wire.Snapshot
		if wire.DecodePayload(envl, m.Topic(), &snap) != nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range snap.Pods {
			if app := p.Labels["app"]; app != "" {
				if _, ok := s.first[app]; !ok {
					s.first[app] = at
				}
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("observer subscribe: %v", tok.Error())
	}
	return s
}

func (s *nmSnapshots) seen(app string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.first[app]
	return at, ok
}

// nmTaskEvent is containerd's TaskStart or TaskExit (of a container's
// main process), with containerd's own time.
type nmTaskEvent struct {
	start     bool
	container string
	at        time.Time
}

// nmTaskEvents subscribes to containerd's task events of namespace ns
// until ctx ends.
func nmTaskEvents(ctx context.Context, t *testing.T, client *containerd.Client, ns string) (<-chan nmTaskEvent, <-chan error) {
	ch, errs := client.Subscribe(ctx, `topic=="/tasks/start"`, `topic=="/tasks/exit"`)
	out := make(chan nmTaskEvent, 256)
	go func() {
		defer close(out)
		for e := range ch {
			if e.Namespace != ns {
				continue
			}
			v, err := typeurl.UnmarshalAny(e.Event)
			if err != nil {
				continue
			}
			switch ev := v.(type) {
			case *eventsapi.TaskStart:
				out <- nmTaskEvent{start: true, container: ev.ContainerID, at: e.Timestamp}
			case *eventsapi.TaskExit:
				if ev.ID == ev.ContainerID {
					out <- nmTaskEvent{container: ev.ContainerID, at: e.Timestamp}
				}
			}
		}
	}()
	return out, errs
}

func nmContainerd(t *testing.T) *containerd.Client {
	t.Helper()
	c, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nmPct is the q-quantile of ds (nearest rank), rounded for printing.
func nmPct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func nmMs(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
func nmUs(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

// nmAttachments counts the agent's CNI attachments of pod uid in its log.
func nmAttachments(t *testing.T, a *agentProc, uid string) int {
	t.Helper()
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "attached pod to the pod network") && strings.Contains(line, "uid="+uid) {
			n++
		}
	}
	return n
}

// nmWaitGone waits until ns holds no container and the agent holds no
// pod's network namespace.
func nmWaitGone(t *testing.T, a *agentProc) {
	t.Helper()
	eventually(t, 60*time.Second, "pods gone from "+a.node, func() error {
		if cs := containers(t, a.ns); len(cs) != 0 {
			return fmt.Errorf("%d containers", len(cs))
		}
		if entries, _ := os.ReadDir(nmNetnsDir(a)); len(entries) != 0 {
			return fmt.Errorf("%d pod network namespaces", len(entries))
		}
		return nil
	})
}

// nmStartSample is one pod's start, timed.
type nmStartSample struct {
	toSnapshot, snapshotToStart, applyToStart, applyToRunning time.Duration
}

// TestMeasurePodNetwork times, on one agent, a pod's first start and a
// container's restart on the pod network (a namespace of its own through
// CNI) against the host network, with the same busybox image present:
//
//   - start: 20 pods each way, alternately, each a new DaemonSet deleted
//     before the next, timed from just before `hub apply` (the CLI's own
//     start included) to the snapshot holding the pod reaching a
//     subscriber of the hub's broker (as it reaches the agent), to
//     containerd's TaskStart of its container, and to the hub's API
//     showing the pod Running (polled every 10 ms);
//   - restart: 20 pods each way running together; each container's task
//     is SIGKILLed once, alternately, and timed from containerd's TaskExit
//     to the TaskStart of its next run. The pod network's restart makes no
//     CNI call (the log shows one attachment per pod) and keeps its address
//     and namespace (checked).
func TestMeasurePodNetwork(t *testing.T) {
	nmNeedMeasure(t)
	const starts, restarts = 20, 20
	h := nmHub(t)
	site := startSite(t)
	a := nmStartAgent(t, h, site, env.agentBin, nil)
	client := nmContainerd(t)
	image := siteImage(site, "v1")
	snaps := nmWatchSnapshots(t, h, a.node)
	podCIDR := netip.MustParsePrefix(h.node(a.node).Spec.PodCIDR)

	// Warm-up: the image is pulled, the bridge made.
	h.applyYAML(nmDaemonSet("warm", "warm", a.node, image, false, "sleep 3600"))
	nmOnePod(t, h, "warm")
	h.mustCLI("delete", "ds", "warm")
	nmWaitGone(t, a)

	mode := func(host bool) string {
		if host {
			return "host network"
		}
		return "pod network"
	}
	samples := map[bool][]nmStartSample{}
	for i := range 2 * starts {
		host := i%2 == 1
		name := fmt.Sprintf("st%d", i)
		s := nmTimeStart(t, h, a, client, snaps, name, image, host)
		samples[host] = append(samples[host], s)
		pod := nmOnePod(t, h, name)
		ip, err := netip.ParseAddr(pod.Status.PodIP)
		if err != nil {
			t.Fatalf("pod %s: podIP %q: %v", pod.Name, pod.Status.PodIP, err)
		}
		if host == podCIDR.Contains(ip) {
			t.Fatalf("pod %s (%s) has address %s; the node's pod CIDR is %s", pod.Name, mode(host), ip, podCIDR)
		}
		h.mustCLI("delete", "ds", name)
		nmWaitGone(t, a)
	}
	p50 := map[string]map[bool]time.Duration{}
	t.Logf("figure: pod start, %d pods each way, alternately (image present), p50 / p95 / max:", starts)
	for _, host := range []bool{false, true} {
		var toSnap, snapStart, applyStart, applyRun []time.Duration
		for _, s := range samples[host] {
			toSnap = append(toSnap, s.toSnapshot)
			snapStart = append(snapStart, s.snapshotToStart)
			applyStart = append(applyStart, s.applyToStart)
			applyRun = append(applyRun, s.applyToRunning)
		}
		for what, ds := range map[string][]time.Duration{"snapshot→started": snapStart, "apply→started": applyStart, "apply→Running": applyRun, "apply→snapshot": toSnap} {
			if p50[what] == nil {
				p50[what] = map[bool]time.Duration{}
			}
			p50[what][host] = nmPct(ds, 0.5)
		}
		t.Logf("figure:   %-12s apply→snapshot %s / %s; snapshot→container started %s / %s / %s; apply→container started %s / %s; apply→hub shows Running %s / %s",
			mode(host), nmMs(nmPct(toSnap, 0.5)), nmMs(nmPct(toSnap, 0.95)),
			nmMs(nmPct(snapStart, 0.5)), nmMs(nmPct(snapStart, 0.95)), nmMs(nmPct(snapStart, 1)),
			nmMs(nmPct(applyStart, 0.5)), nmMs(nmPct(applyStart, 0.95)),
			nmMs(nmPct(applyRun, 0.5)), nmMs(nmPct(applyRun, 0.95)))
	}
	for _, what := range []string{"snapshot→started", "apply→started", "apply→Running"} {
		t.Logf("figure:   pod network ÷ host network, p50 %s: %.2f", what, float64(p50[what][false])/float64(p50[what][true]))
	}

	nmMeasureRestarts(t, h, a, client, image, restarts)
	nmMeasurePluginExec(t)
}

// nmMeasurePluginExec times one run of each CNI plugin the agent calls on
// a pod's attachment (bridge, which runs host-local, then portmap and
// loopback), asked only for its VERSION: the floor of what each costs
// the attachment, a static binary's start.
func nmMeasurePluginExec(t *testing.T) {
	t.Helper()
	const runs = 20
	var parts []string
	var sum time.Duration
	for _, plugin := range []string{"bridge", "host-local", "portmap", "loopback"} {
		var ds []time.Duration
		for range runs {
			cmd := exec.Command(filepath.Join("/usr/lib/cni", plugin))
			cmd.Env = []string{"CNI_COMMAND=VERSION"}
			cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
			t0 := time.Now()
			out, err := cmd.Output()
			ds = append(ds, time.Since(t0))
			if err != nil || !strings.Contains(string(out), "supportedVersions") {
				t.Fatalf("%s VERSION: %v: %s", plugin, err, out)
			}
		}
		p50 := nmPct(ds, 0.5)
		sum += p50
		parts = append(parts, fmt.Sprintf("%s %s", plugin, nmMs(p50)))
	}
	t.Logf("figure: one CNI plugin run (VERSION), p50 of %d: %s; the four an attachment runs: %s", runs, strings.Join(parts, ", "), nmMs(sum))
}

// nmTimeStart applies DaemonSet name and times its pod's start.
func nmTimeStart(t *testing.T, h *hubProc, a *agentProc, client *containerd.Client, snaps *nmSnapshots, name, image string, host bool) nmStartSample {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	evs, errs := nmTaskEvents(ctx, t, client, a.ns)
	manifest := nmDaemonSet(name, "start", a.node, image, host, "sleep 3600")
	t0 := time.Now()
	h.applyYAML(manifest)
	var started time.Time
	for started.IsZero() {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("containerd's event stream closed")
			}
			if ev.start && strings.Contains(ev.container, "_"+name+"-") {
				started = ev.at
			}
		case err := <-errs:
			t.Fatalf("containerd events: %v", err)
		case <-ctx.Done():
			t.Fatalf("%s: no container started within a minute", name)
		}
	}
	var running time.Time
	for running.IsZero() {
		ps, err := nmPods(h, name)
		if err == nil && len(ps) == 1 && ps[0].Status.Phase == api.PodRunning {
			running = time.Now()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: not Running on the hub within a minute: %v %v", name, ps, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	snap, ok := snaps.seen(name)
	if !ok {
		t.Fatalf("%s: the observer never saw a snapshot with its pod", name)
	}
	return nmStartSample{toSnapshot: snap.Sub(t0), snapshotToStart: started.Sub(snap), applyToStart: started.Sub(t0), applyToRunning: running.Sub(t0)}
}

// nmMeasureRestarts runs n pods each way and crashes each one's container
// once, alternately.
func nmMeasureRestarts(t *testing.T, h *hubProc, a *agentProc, client *containerd.Client, image string, n int) {
	t.Helper()
	var docs []string
	for i := range n {
		docs = append(docs, nmDaemonSet(fmt.Sprintf("rsp%d", i), "restart", a.node, image, false, "sleep 3600"),
			nmDaemonSet(fmt.Sprintf("rsh%d", i), "restart", a.node, image, true, "sleep 3600"))
	}
	h.applyYAML(strings.Join(docs, "---\n"))
	eventually(t, 3*time.Minute, fmt.Sprintf("%d containers running", 2*n), func() error {
		if r := len(running(t, a.ns)); r != 2*n {
			return fmt.Errorf("%d running", r)
		}
		return nil
	})
	before := map[string]api.Pod{}
	for i := range n {
		for _, app := range []string{fmt.Sprintf("rsp%d", i), fmt.Sprintf("rsh%d", i)} {
			before[app] = nmOnePod(t, h, app)
		}
	}
	ctx := namespaces.WithNamespace(context.Background(), a.ns)
	byApp := map[string]container{}
	for _, c := range running(t, a.ns) {
		for app := range before {
			if strings.Contains(c.ID, "_"+app+"-") {
				byApp[app] = c
			}
		}
	}
	samples := map[bool][]time.Duration{}
	for i := range 2 * n {
		host := i%2 == 1
		app := fmt.Sprintf("rsp%d", i/2)
		if host {
			app = fmt.Sprintf("rsh%d", i/2)
		}
		c, ok := byApp[app]
		if !ok {
			t.Fatalf("no running container of %s", app)
		}
		d, next := nmKillAndWait(t, client, a.ns, c)
		samples[host] = append(samples[host], d)
		// The next run's namespace: the pod's own for the pod network,
		// none (the host's) for the host network.
		nc, err := client.LoadContainer(ctx, next)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := nc.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var netns string
		hasNetns := false
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == "network" {
				netns, hasNetns = ns.Path, true
			}
		}
		uid := before[app].UID
		if want := filepath.Join(nmNetnsDir(a), uid); !host && netns != want {
			t.Fatalf("%s's next run joins network namespace %q, want its pod's %q", app, netns, want)
		}
		if host && hasNetns {
			t.Fatalf("%s (host network) runs in a network namespace of its own: %q", app, netns)
		}
		// The restart removes the exited run after the start: wait for it,
		// so that each sample times one restart alone.
		eventually(t, time.Minute, "the exited run removed", func() error {
			if cs := containers(t, a.ns); len(cs) != 2*n {
				return fmt.Errorf("%d containers", len(cs))
			}
			return nil
		})
	}
	// One CNI attachment per pod-network pod, and its address kept.
	for app, p := range before {
		if !strings.HasPrefix(app, "rsp") {
			continue
		}
		if got := nmAttachments(t, a, p.UID); got != 1 {
			t.Errorf("pod %s was attached to the pod network %d times, want once (a restart must reuse its namespace)", p.Name, got)
		}
	}
	eventually(t, 30*time.Second, "the hub shows every restart with the address kept", func() error {
		for app, p := range before {
			after, err := nmPods(h, app)
			if err != nil {
				return err
			}
			if len(after) != 1 || len(after[0].Status.ContainerStatuses) != 1 || after[0].Status.ContainerStatuses[0].RestartCount != 1 {
				return fmt.Errorf("%s: %+v", app, after)
			}
			if after[0].Status.PodIP != p.Status.PodIP {
				return fmt.Errorf("%s: address %s before the restart, %s after", app, p.Status.PodIP, after[0].Status.PodIP)
			}
		}
		return nil
	})
	t.Logf("figure: restart, TaskExit → next run's TaskStart, %d pods each way, alternately, p50 / p95 / max:", n)
	for _, host := range []bool{false, true} {
		m := "pod network"
		if host {
			m = "host network"
		}
		s := samples[host]
		t.Logf("figure:   %-12s %s / %s / %s", m, nmMs(nmPct(s, 0.5)), nmMs(nmPct(s, 0.95)), nmMs(nmPct(s, 1)))
	}
	t.Logf("figure:   pod network ÷ host network, p50: %.2f", float64(nmPct(samples[false], 0.5))/float64(nmPct(samples[true], 0.5)))
}

// nmKillAndWait SIGKILLs c's task and returns the time from its TaskExit
// to the TaskStart of the container's next run, and that run's id.
func nmKillAndWait(t *testing.T, client *containerd.Client, ns string, c container) (time.Duration, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	evs, errs := nmTaskEvents(ctx, t, client, ns)
	sameContainer := func(id string) bool {
		if id == c.ID {
			return true
		}
		nc, err := client.LoadContainer(ctx, id)
		if err != nil {
			return false
		}
		l, err := nc.Labels(ctx)
		return err == nil && l["io.flotilla.pod.uid"] == c.Labels["io.flotilla.pod.uid"] &&
			l["io.flotilla.container.name"] == c.Labels["io.flotilla.container.name"]
	}
	killTask(t, ns, c.ID)
	var exitAt time.Time
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("containerd's event stream closed")
			}
			if !ev.start && ev.container == c.ID && exitAt.IsZero() {
				exitAt = ev.at
			}
			if ev.start && !exitAt.IsZero() && sameContainer(ev.container) {
				return ev.at.Sub(exitAt), ev.container
			}
		case err := <-errs:
			t.Fatalf("containerd events: %v", err)
		case <-ctx.Done():
			t.Fatalf("%s: no restart within a minute", c.ID)
		}
	}
}

// nmInNetns runs f on a thread in the network namespace at path (a file
// in /run/netns, or a pod's bind mount): the sockets f makes belong to
// it. The thread goes back to the test's namespace afterwards, and only
// if that fails is it left to end with its goroutine: a thread that ends
// kills the processes it started (harness.StartTiedProcess's parent-death
// signal is per thread), and this thread may have started an agent.
func nmInNetns(path string, f func() error) error {
	runtime.LockOSThread()
	self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer unix.Close(self)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", path, err)
	}
	ferr := f()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// Stay locked: the runtime ends the thread with this goroutine
		// rather than run other goroutines in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", path, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// nmNft lists table inet flotilla in site (an error if there is none).
func nmNft(site *harness.Site) (string, error) {
	nsenter, err := harness.FindBinary("nsenter")
	if err != nil {
		return "", err
	}
	nft, err := harness.FindBinary("nft")
	if err != nil {
		return "", err
	}
	out, err := exec.Command(nsenter, "--net=/run/netns/"+site.Name, "--", nft, "list", "table", "inet", "flotilla").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nft list table inet flotilla: %w: %s", err, out)
	}
	return string(out), nil
}

// nmService renders a Service of pods with label tier=tier.
func nmService(name, tier, typ string, port, targetPort int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  type: %s
  selector: {tier: %s}
  ports:
    - {port: %d, targetPort: %d, protocol: TCP}
`, name, typ, tier, port, targetPort)
}

// nmClusterIP waits for Service name's ClusterIP and for its Endpoints to
// hold n ready addresses.
func nmClusterIP(t *testing.T, h *hubProc, name string, n int) string {
	t.Helper()
	var svc api.Service
	h.getJSON(&svc, "get", "svc", name, "-o", "json")
	if svc.Spec.ClusterIP == "" {
		t.Fatalf("Service %s has no cluster IP", name)
	}
	eventually(t, 60*time.Second, fmt.Sprintf("Endpoints %s with %d ready addresses", name, n), func() error {
		var ep api.Endpoints
		out, _, err := h.cli("", "get", "endpoints", name, "-o", "json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &ep); err != nil {
			return err
		}
		got := 0
		for _, s := range ep.Subsets {
			got += len(s.Addresses)
		}
		if got != n {
			return fmt.Errorf("%d ready addresses", got)
		}
		return nil
	})
	return svc.Spec.ClusterIP
}

// nmMemory is one reading of an agent's memory.
type nmMemory struct{ rss, hwm, anon, file int64 }

func (m nmMemory) String() string {
	mib := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	return fmt.Sprintf("VmRSS %s MiB (%.1f MB; anonymous %s, file-backed %s), VmHWM %s MiB",
		mib(m.rss), float64(m.rss)/1e6, mib(m.anon), mib(m.file), mib(m.hwm))
}

func nmReadMemory(t *testing.T, a *agentProc) nmMemory {
	t.Helper()
	st, err := harness.ReadProc(a.proc.Pid())
	if err != nil {
		t.Fatal(err)
	}
	return nmMemory{rss: st.RSS, hwm: st.Peak, anon: st.Anon, file: st.File}
}

// nmReleaseBuild builds the agent as `make build` and `make cross` do:
// static, trimmed, stripped, with the shipped build tags.
func nmReleaseBuild(t *testing.T) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(env.dir, "bin", "edge-agent-release")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags", "-s -w", "-o", out, "./edge-agent/cmd/edge-agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release build of the agent: %v\n%s", err, b)
	}
	return out
}

// TestMeasureAgentRSSNetworking measures the agent's memory, release
// build (`make build`'s flags), at its own default intervals, with five
// pods: one agent with networking on (the pods on the pod network; the
// Service rules and cluster DNS on, two Services selecting the pods, one
// of them a NodePort) and one with it off (the pods on the host network,
// --service-proxy=false --cluster-dns=false), each in a site of its own,
// settled for a minute, then read every 5 s for 30 s. Target: ≤ 25 MB
// (23.84 MiB) VmRSS with networking on. FLOTILLA_MEASURE_AGENT_BIN runs
// another agent binary instead (an older commit's, a diagnostic build);
// FLOTILLA_MEASURE_AGENT_ENV adds space-separated KEY=value settings to
// both agents' environment (GODEBUG=gctrace=1, GOGC=50).
func TestMeasureAgentRSSNetworking(t *testing.T) {
	nmNeedMeasure(t)
	bin := os.Getenv("FLOTILLA_MEASURE_AGENT_BIN")
	if bin == "" {
		bin = nmReleaseBuild(t)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	gcEnv := strings.Fields(os.Getenv("FLOTILLA_MEASURE_AGENT_ENV"))
	// An agent from before the pod network (issue 15) has none of it to
	// turn on or off: as a baseline, it runs the same pods and Services.
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	networking := strings.Contains(string(help), "--service-proxy")
	var offFlags []string
	if networking {
		offFlags = []string{"--service-proxy=false", "--cluster-dns=false"}
	}
	h := nmHub(t)
	siteOn, siteOff := startSite(t), startSite(t)
	on := nmStartAgent(t, h, siteOn, bin, gcEnv)
	off := nmStartAgent(t, h, siteOff, bin, gcEnv, offFlags...)
	var docs []string
	for i := range 5 {
		docs = append(docs,
			nmDaemonSet(fmt.Sprintf("rss-on%d", i), "rss-on", on.node, siteImage(siteOn, "v1"), false, "sleep 3600"),
			nmDaemonSet(fmt.Sprintf("rss-off%d", i), "rss-off", off.node, siteImage(siteOff, "v1"), true, "sleep 3600"))
	}
	docs = append(docs, nmService("rss-web", "rss-on", "ClusterIP", 8099, 80), nmService("rss-np", "rss-on", "NodePort", 8098, 80))
	h.applyYAML(strings.Join(docs, "---\n"))
	for _, a := range []*agentProc{on, off} {
		eventually(t, 2*time.Minute, "five pods running on "+a.node, func() error {
			if n := len(running(t, a.ns)); n != 5 {
				return fmt.Errorf("%d running", n)
			}
			return nil
		})
	}
	if networking {
		clusterIP := nmClusterIP(t, h, "rss-web", 5)
		nmClusterIP(t, h, "rss-np", 5)
		nmCheckNetworkingOnAndOff(t, h, siteOn, siteOff, on, clusterIP)
	} else {
		t.Logf("%s has no pod network: its pods have no addresses, its Services no endpoints; the checks of its rules and DNS are left out", bin)
	}

	const settle, window, every = time.Minute, 30 * time.Second, 5 * time.Second
	time.Sleep(settle)
	// From here the kernel notes which resident pages each agent touches
	// (smaps' Referenced): its working set over the window.
	for _, a := range []*agentProc{on, off} {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", a.proc.Pid()), []byte("1"), 0); err != nil {
			t.Fatalf("clear_refs: %v", err)
		}
	}
	var readings = map[*agentProc][]nmMemory{}
	for i := range int(window/every) + 1 {
		if i > 0 {
			time.Sleep(every)
		}
		for _, a := range []*agentProc{on, off} {
			readings[a] = append(readings[a], nmReadMemory(t, a))
		}
	}
	t.Logf("figure: agent %s, %d bytes, default intervals, 5 pods, settled %s, read every %s for %s:", bin, fi.Size(), settle, every, window)
	for _, a := range []*agentProc{on, off} {
		what := "networking on (pod network, Service rules, cluster DNS, 2 Services)"
		switch {
		case a == off && networking:
			what = "networking off (host network, --service-proxy=false --cluster-dns=false)"
		case a == off:
			what = "host network (an agent without pod networking)"
		case !networking:
			what = "pods without hostNetwork (an agent without pod networking runs them on the host network too; Services ignored)"
		}
		rs := readings[a]
		last := rs[len(rs)-1]
		maxRSS := slices.MaxFunc(rs, func(x, y nmMemory) int { return int(x.rss - y.rss) })
		minRSS := slices.MinFunc(rs, func(x, y nmMemory) int { return int(x.rss - y.rss) })
		t.Logf("figure:   %s: last %s; VmRSS over the window %.1f–%.1f MiB", what, last, float64(minRSS.rss)/(1<<20), float64(maxRSS.rss)/(1<<20))
		t.Logf("figure:     by mapping, resident (touched in the window): %s", nmSmaps(t, a.proc.Pid(), bin))
		if n := len(running(t, a.ns)); n != 5 {
			t.Errorf("%s: %d pods running at the end, want 5", a.node, n)
		}
	}
}

// nmCheckNetworkingOnAndOff checks that networking is really on for one
// agent and off for the other: the rules hold the Service, DNS answers
// its name; the other site has neither.
func nmCheckNetworkingOnAndOff(t *testing.T, h *hubProc, siteOn, siteOff *harness.Site, on *agentProc, clusterIP string) {
	t.Helper()
	eventually(t, 30*time.Second, "the Service in the kernel", func() error {
		out, err := nmNft(siteOn)
		if err != nil {
			return err
		}
		if !strings.Contains(out, clusterIP) {
			return fmt.Errorf("table inet flotilla lacks %s", clusterIP)
		}
		return nil
	})
	if _, err := nmNft(siteOff); err == nil {
		t.Fatal("the agent with --service-proxy=false programmed table inet flotilla")
	}
	dnsAddr := network0Gateway(t, h, on.node)
	eventually(t, 30*time.Second, "cluster DNS answers rss-web", func() error {
		return nmInNetns("/run/netns/"+siteOn.Name, func() error {
			got, err := nmLookup(dnsAddr, "rss-web.default.svc.cluster.local.")
			if err != nil {
				return err
			}
			if got != clusterIP {
				return fmt.Errorf("rss-web is %s, want %s", got, clusterIP)
			}
			return nil
		})
	})
}

// nmSmaps sums the resident memory of pid's mappings (/proc/PID/smaps),
// and of it the pages referenced since clear_refs: the executable's, by
// permissions (r-xp is its code, r--p its read-only data and function
// tables, rw-p its data), the anonymous mappings (heap, stacks), the rest.
func nmSmaps(t *testing.T, pid int, bin string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(bin)
	type sum struct{ rss, ref int64 }
	sums := map[string]*sum{}
	var order []string
	var cur *sum
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			key := "other"
			switch {
			case len(f) >= 6 && filepath.Base(f[5]) == base:
				key = "binary " + f[1]
			case len(f) == 5:
				key = "anonymous"
			}
			if sums[key] == nil {
				sums[key] = &sum{}
				order = append(order, key)
			}
			cur = sums[key]
			continue
		}
		if len(f) == 3 && cur != nil {
			var kb int64
			fmt.Sscan(f[1], &kb)
			switch f[0] {
			case "Rss:":
				cur.rss += kb
			case "Referenced:":
				cur.ref += kb
			}
		}
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s %.1f (%.1f) MiB", k, float64(sums[k].rss)/1024, float64(sums[k].ref)/1024))
	}
	return strings.Join(parts, ", ")
}

// network0Gateway is node's cluster DNS address: its bridge's, the first
// address of its pod CIDR.
func network0Gateway(t *testing.T, h *hubProc, node string) string {
	t.Helper()
	p, err := netip.ParsePrefix(h.node(node).Spec.PodCIDR)
	if err != nil {
		t.Fatalf("node %s: pod CIDR: %v", node, err)
	}
	return p.Masked().Addr().Next().String()
}

// nmLookup asks server (port 53, UDP) for name's A record.
func nmLookup(server, name string) (string, error) {
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	c := &mdns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, net.JoinHostPort(server, "53"))
	if err != nil {
		return "", err
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			return a.A.String(), nil
		}
	}
	return "", fmt.Errorf("no A record for %s: %s", name, mdns.RcodeToString[r.Rcode])
}

// nmBody is what the server pod serves as its small page.
const nmBody = "flotilla\n"

// nmBigMiB is the size of the server pod's large file.
const nmBigMiB = 64

// nmRequest connects to addr, asks for path with HTTP/1.0 and reads the
// answer to its end (the server closes). It returns the time the
// connection took (SYN to SYN-ACK, the kernel's alone: busybox httpd
// forks after it accepts), the whole exchange's, and the body's size.
func nmRequest(addr, path string, check bool) (dial, total time.Duration, n int64, err error) {
	buf := make([]byte, 256<<10)
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	dial = time.Since(t0)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.0\r\n\r\n"); err != nil {
		return 0, 0, 0, err
	}
	r := bufio.NewReaderSize(c, 4096)
	status, err := r.ReadString('\n')
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read status: %w", err)
	}
	if !strings.Contains(status, " 200 ") {
		return 0, 0, 0, fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, 0, 0, fmt.Errorf("read headers: %w", err)
		}
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	if check {
		b, err := io.ReadAll(r)
		if err != nil {
			return 0, 0, 0, err
		}
		if string(b) != nmBody {
			return 0, 0, 0, fmt.Errorf("body %q, want %q", b, nmBody)
		}
		n = int64(len(b))
	} else {
		n, err = io.CopyBuffer(io.Discard, r, buf)
		if err != nil {
			return 0, 0, 0, err
		}
	}
	c.Close()
	return dial, time.Since(t0), n, nil
}

// nmPathFigures are one source's figures for one path.
type nmPathFigures struct {
	dial, total []time.Duration
	mbps        []float64
}

// TestMeasureServiceDataPath measures connections through a ClusterIP
// against the pod's IP directly, through the real agent's rules (table
// inet flotilla as the agent programs it from the hub's Service and
// Endpoints), from the node itself (the site's namespace) and from
// another pod (the client pod's namespace, which the agent bound under
// its state directory). The server is one busybox pod with two httpd,
// one per path (port 80 for the pod IP, 81 behind the Service's port
// 8099), so that neither path meets the other's TIME_WAITs. Each source
// makes 2,000 sequential connect+GET+close each way, alternating the
// paths, and 40 transfers of a 64 MiB file each way.
func TestMeasureServiceDataPath(t *testing.T) {
	nmNeedMeasure(t)
	const conns, bulks = 2000, 40
	h := nmHub(t)
	site := startSite(t)
	a := nmStartAgent(t, h, site, env.agentBin, nil)
	image := siteImage(site, "v1")
	serve := fmt.Sprintf("mkdir -p /www && printf '%s' > /www/index.html && dd if=/dev/zero of=/www/big bs=1M count=%d 2>/dev/null && httpd -p 80 -h /www && exec httpd -f -p 81 -h /www",
		strings.ReplaceAll(nmBody, "\n", `\n`), nmBigMiB)
	h.applyYAML(strings.Join([]string{
		nmDaemonSet("dp-server", "dp-server", a.node, image, false, serve),
		nmDaemonSet("dp-client", "dp-client", a.node, image, false, "sleep 3600"),
		nmService("dp-web", "dp-server", "ClusterIP", 8099, 81),
	}, "---\n"))
	server, clientPod := nmOnePod(t, h, "dp-server"), nmOnePod(t, h, "dp-client")
	clusterIP := nmClusterIP(t, h, "dp-web", 1)
	eventually(t, 30*time.Second, "the Service in the kernel", func() error {
		out, err := nmNft(site)
		if err != nil {
			return err
		}
		if !strings.Contains(out, clusterIP) || !strings.Contains(out, server.Status.PodIP) {
			return fmt.Errorf("table inet flotilla lacks %s → %s", clusterIP, server.Status.PodIP)
		}
		return nil
	})
	direct := net.JoinHostPort(server.Status.PodIP, "80")
	viaService := net.JoinHostPort(clusterIP, "8099")
	sources := []struct{ name, netns string }{
		{"node", "/run/netns/" + site.Name},
		{"pod", filepath.Join(nmNetnsDir(a), clientPod.UID)},
	}
	for _, src := range sources {
		eventually(t, 30*time.Second, "both paths answer from the "+src.name, func() error {
			return nmInNetns(src.netns, func() error {
				for _, addr := range []string{direct, viaService} {
					if _, _, _, err := nmRequest(addr, "/index.html", true); err != nil {
						return fmt.Errorf("%s: %w", addr, err)
					}
				}
				return nil
			})
		})
	}
	results := map[string]map[string]*nmPathFigures{}
	for _, src := range sources {
		figs := map[string]*nmPathFigures{direct: {}, viaService: {}}
		results[src.name] = figs
		err := nmInNetns(src.netns, func() error {
			for i := range conns {
				order := []string{direct, viaService}
				if i%2 == 1 {
					order = []string{viaService, direct}
				}
				for _, addr := range order {
					dial, total, _, err := nmRequest(addr, "/index.html", true)
					if err != nil {
						return fmt.Errorf("connection %d to %s: %w", i, addr, err)
					}
					figs[addr].dial = append(figs[addr].dial, dial)
					figs[addr].total = append(figs[addr].total, total)
				}
			}
			for i := range bulks {
				order := []string{direct, viaService}
				if i%2 == 1 {
					order = []string{viaService, direct}
				}
				for _, addr := range order {
					_, total, n, err := nmRequest(addr, "/big", false)
					if err != nil {
						return fmt.Errorf("transfer %d from %s: %w", i, addr, err)
					}
					if n != nmBigMiB<<20 {
						return fmt.Errorf("transfer %d from %s: %d bytes, want %d", i, addr, n, nmBigMiB<<20)
					}
					figs[addr].mbps = append(figs[addr].mbps, float64(n)/1e6/total.Seconds())
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("from the %s: %v", src.name, err)
		}
	}
	// The rules are the agent's own: a ClusterIP answered, so its table
	// translated it; the pod address path bypassed it.
	t.Logf("figure: ClusterIP %s:8099 → pod %s:81 against the pod directly (%s:80), through the agent's rules; %d connections each way (connect + GET %dB + close) and %d transfers of %d MiB, per source, alternating:",
		clusterIP, server.Status.PodIP, server.Status.PodIP, conns, len(nmBody), bulks, nmBigMiB)
	t.Logf("figure:   %-5s %-9s %-22s %-22s %-22s %s", "from", "path", "connect p50 / p99", "exchange p50 / p99", "transfer MB/s (median)", "")
	for _, src := range sources {
		figs := results[src.name]
		for _, path := range []struct{ name, addr string }{{"pod IP", direct}, {"ClusterIP", viaService}} {
			f := figs[path.addr]
			t.Logf("figure:   %-5s %-9s %-22s %-22s %.0f", src.name, path.name,
				nmUs(nmPct(f.dial, 0.5))+" / "+nmUs(nmPct(f.dial, 0.99)),
				nmUs(nmPct(f.total, 0.5))+" / "+nmUs(nmPct(f.total, 0.99)), nmMedian(f.mbps))
		}
		d, s := figs[direct], figs[viaService]
		t.Logf("figure:   %-5s ClusterIP ÷ pod IP: connect p50 %.2f, p99 %.2f; exchange p50 %.2f, p99 %.2f; transfer time %.2f",
			src.name,
			float64(nmPct(s.dial, 0.5))/float64(nmPct(d.dial, 0.5)), float64(nmPct(s.dial, 0.99))/float64(nmPct(d.dial, 0.99)),
			float64(nmPct(s.total, 0.5))/float64(nmPct(d.total, 0.5)), float64(nmPct(s.total, 0.99))/float64(nmPct(d.total, 0.99)),
			nmMedian(d.mbps)/nmMedian(s.mbps))
	}
}

func nmMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
