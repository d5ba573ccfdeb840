package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	eventsapi "github.com/containerd/containerd/api/events"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// rolloutDS renders a DaemonSet whose container runs command, with extra
// lines added to its spec (update strategy, minReadySeconds, rollout).
func rolloutDS(name, command, specExtra string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: %s
spec:
  selector:
    matchLabels: {app: %s}
%s  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: %s
          command: ["sh", "-c", %s]
`, name, name, indent(specExtra, "  "), name, env.image, strconv.Quote(command))
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

// fleetSampler watches a fleet through containerd and the hub while a
// rollout runs: the most nodes seen at once without a running container,
// the most pods the hub saw not Ready at once, and the commands each node
// ran, in order.
type fleetSampler struct {
	mu              sync.Mutex
	maxDown         int
	maxHubNotReady  int
	commands        map[string][]string // node → commands seen running, in order
	stop            context.CancelFunc
	done            chan struct{}
	samples, errors int
	// maxSweep is the longest one look at every node took: the sampling
	// error of maxDown.
	maxSweep time.Duration
	// worst says, for the first sweep that saw maxDown nodes down, when it
	// was and what each of them showed, for a failure message.
	worst string
}

func sampleFleet(t *testing.T, h *hubProc, ds string, agents []*agentProc) *fleetSampler {
	t.Helper()
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &fleetSampler{commands: map[string][]string{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer client.Close()
		specs := map[string]string{}
		hubTick := time.NewTicker(500 * time.Millisecond)
		defer hubTick.Stop()
		for ctx.Err() == nil {
			var down []string
			sweep := time.Now()
			for _, a := range agents {
				cmd, notRunning, err := runningCommand(ctx, client, a.ns, specs)
				if err != nil {
					// containerd could not say: not a reading either way.
					s.mu.Lock()
					s.errors++
					s.mu.Unlock()
					continue
				}
				if notRunning != "" {
					down = append(down, a.node+": "+notRunning)
					continue
				}
				if cmd == "" {
					continue // running, its spec not read
				}
				s.mu.Lock()
				if cs := s.commands[a.node]; len(cs) == 0 || cs[len(cs)-1] != cmd {
					s.commands[a.node] = append(cs, cmd)
				}
				s.mu.Unlock()
			}
			s.mu.Lock()
			s.samples++
			if len(down) > s.maxDown {
				s.maxDown = len(down)
				s.worst = sweep.Format("15:04:05.000") + ": " + strings.Join(down, "; ")
			}
			s.maxSweep = max(s.maxSweep, time.Since(sweep))
			s.mu.Unlock()
			select {
			case <-hubTick.C:
				notReady, err := hubNotReady(h, ds)
				s.mu.Lock()
				if err != nil {
					s.errors++
				} else {
					s.maxHubNotReady = max(s.maxHubNotReady, notReady)
				}
				s.mu.Unlock()
			default:
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(s.finish)
	return s
}

func (s *fleetSampler) finish() {
	s.stop()
	<-s.done
}

// runningCommand looks for the running container in ns, with one call
// listing the namespace's tasks (so that a sweep over the fleet is quick)
// and the container's spec read once per container. It returns the
// running container's command ("" when its spec could not be read), or,
// when no task runs, what the namespace showed instead; err is a list
// that failed: no reading.
func runningCommand(ctx context.Context, client *containerd.Client, ns string, specs map[string]string) (cmd, notRunning string, err error) {
	ctx = namespaces.WithNamespace(ctx, ns)
	resp, err := client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return "", "", fmt.Errorf("list tasks: %w", err)
	}
	var seen []string
	for _, task := range resp.Tasks {
		id := task.GetContainerID()
		if id == "" {
			id = task.GetID()
		}
		if task.GetStatus() != tasktypes.Status_RUNNING {
			seen = append(seen, id+" "+task.GetStatus().String())
			continue
		}
		cmd, ok := specs[id]
		if !ok {
			c, err := client.LoadContainer(ctx, id)
			if err != nil {
				return "", "", nil
			}
			spec, err := c.Spec(ctx)
			if err != nil || spec.Process == nil || len(spec.Process.Args) == 0 {
				return "", "", nil
			}
			cmd = spec.Process.Args[len(spec.Process.Args)-1]
			specs[id] = cmd
		}
		return cmd, "", nil
	}
	return "", fmt.Sprintf("no running task (tasks: %v)", seen), nil
}

// hubNotReady counts the DaemonSet's pods the hub shows not Ready.
func hubNotReady(h *hubProc, ds string) (int, error) {
	out, _, err := h.cli("", "get", "pods", "-l", "app="+ds, "-o", "json")
	if err != nil {
		return 0, err
	}
	var list struct{ Items []api.Pod }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return 0, err
	}
	n := 0
	for i := range list.Items {
		p := &list.Items[i]
		if !p.IsReady() || p.Status.SpecHash != api.HashPodSpec(&p.Spec) {
			n++
		}
	}
	return n, nil
}

func (h *hubProc) daemonSetObj(name string) *api.DaemonSet {
	h.t.Helper()
	var d api.DaemonSet
	h.getJSON(&d, "get", "ds", name, "-o", "json")
	return &d
}

// startFleet starts n agents and a DaemonSet running command on them, and
// waits until the rollout is complete.
func startFleet(t *testing.T, h *hubProc, n int, ds, command, extra string) []*agentProc {
	t.Helper()
	var agents []*agentProc
	for i := 0; i < n; i++ {
		agents = append(agents, startAgent(t, h))
	}
	h.applyYAML(rolloutDS(ds, command, extra))
	waitCommand(t, agents, command, 60*time.Second)
	if out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=60s"); err != nil {
		t.Fatalf("rollout status: %v\n%s%s", err, out, errOut)
	}
	return agents
}

// waitCommand waits until every agent runs command.
func waitCommand(t *testing.T, agents []*agentProc, command string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "every node runs "+command, func() error {
		for _, a := range agents {
			rs := running(t, a.ns)
			if len(rs) != 1 || !slices.Contains(rs[0].Args, command) {
				return fmt.Errorf("node %s runs %+v", a.node, rs)
			}
		}
		return nil
	})
}

func figure(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FIGURE: "+format+"\n", args...)
}

// TestRollingUpdateKeepsOneNodeDown rolls a new image over four real
// agents with maxUnavailable 1: containerd never shows more than one node
// without its running container, the hub never more than one pod not
// Ready, no node goes back, and `hub rollout status` exits 0 at the end.
func TestRollingUpdateKeepsOneNodeDown(t *testing.T) {
	h := startHub(t, hubOptions{})
	ds := uniq("roll")
	agents := startFleet(t, h, 4, ds, "echo v1; sleep 3600", "")
	s := sampleFleet(t, h, ds, agents)
	start := time.Now()
	h.mustCLI("set", "image", "ds/"+ds, "main="+env.image2)
	h.mustCLI("set", "image", "ds/"+ds, "main="+env.image2) // unchanged: no second rollout
	out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=120s")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("rollout status: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(out, "successfully rolled out") || !strings.Contains(out, "4/4 updated") {
		t.Fatalf("rollout status output:\n%s", out)
	}
	s.finish()
	if s.maxDown > 1 || s.maxHubNotReady > 1 {
		t.Fatalf("at once: %d nodes without a running container, %d pods not Ready in the hub (maxUnavailable 1); worst sweep %s", s.maxDown, s.maxHubNotReady, s.worst)
	}
	for _, a := range agents {
		rs := running(t, a.ns)
		if len(rs) != 1 || rs[0].Labels["io.flotilla.pod.spec-hash"] == "" {
			t.Fatalf("node %s: %+v", a.node, rs)
		}
	}
	d := h.daemonSetObj(ds)
	if ro := d.Status.Rollout; ro.Revision != 2 || ro.Phase != api.RolloutComplete || d.Spec.Template.Spec.Containers[0].Image != env.image2 {
		t.Fatalf("rollout = %+v", ro)
	}
	figure("rolling update of 4 real agents, maxUnavailable 1: %s (%d samples, longest sweep %s, max %d node(s) down in containerd, %d not Ready in the hub)",
		took.Round(10*time.Millisecond), s.samples, s.maxSweep.Round(time.Millisecond), s.maxDown, s.maxHubNotReady)
}

// TestBadRevisionStopsAndRollsBack rolls out a command that exits at once:
// the rollout stops at maxFailures (0: the first failed node), rolls back,
// and every node ends on the old revision; `hub rollout status` fails.
func TestBadRevisionStopsAndRollsBack(t *testing.T) {
	h := startHub(t, hubOptions{})
	ds := uniq("bad")
	extra := `minReadySeconds: 3
rollout:
  maxFailures: 0
  onFailure: Rollback
  progressDeadlineSeconds: 15
`
	good := "echo good; sleep 3600"
	agents := startFleet(t, h, 3, ds, good, extra)
	s := sampleFleet(t, h, ds, agents)
	creates := map[string]func() []string{}
	for _, a := range agents {
		creates[a.node] = countCreates(t, a.ns)
	}
	start := time.Now()
	h.applyYAML(rolloutDS(ds, "echo bad; exit 1", extra))
	out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=120s")
	if err == nil || !strings.Contains(errOut, "rolled back") {
		t.Fatalf("rollout status of a bad revision: %v\n%s%s", err, out, errOut)
	}
	eventually(t, 60*time.Second, "every node back on the good revision", func() error {
		d := h.daemonSetObj(ds)
		ro := d.Status.Rollout
		if ro.Phase != api.RolloutRolledBack || ro.Updated != 3 || ro.Ready != 3 {
			return fmt.Errorf("rollout = %+v", ro)
		}
		return nil
	})
	waitCommand(t, agents, good, 30*time.Second)
	took := time.Since(start)
	s.finish()
	bad := 0
	for _, a := range agents {
		// A node that never got the bad revision created no container.
		if slices.Contains(s.commands[a.node], "echo bad; exit 1") || len(creates[a.node]()) > 0 {
			bad++
		}
	}
	if bad > 1 {
		t.Fatalf("%d nodes got the bad revision, maxFailures 0 allows 1", bad)
	}
	d := h.daemonSetObj(ds)
	if !strings.Contains(d.Status.Rollout.Message, "rolled back") || d.Status.Rollout.Revision != 3 {
		t.Fatalf("rollout = %+v", d.Status.Rollout)
	}
	hist := h.mustCLI("rollout", "history", "ds/"+ds)
	if !strings.Contains(hist, "2 ") || !strings.Contains(hist, "3 ") {
		t.Fatalf("history after the rollback:\n%s", hist)
	}
	figure("bad revision detected and rolled back on 3 real agents in %s", took.Round(10*time.Millisecond))
}

// countCreates records the containers created in ns from now on. (It
// stops on the subscription's error channel too: containerd's client does
// not close the event channel when the context ends.)
func countCreates(t *testing.T, ns string) func() []string {
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
			select {
			case <-ctx.Done():
				return
			case <-errs:
				return
			case ev, ok := <-ch:
				if !ok {
					return
				}
				if ev.Namespace != ns {
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
		}
	}()
	t.Cleanup(func() { cancel(); <-done; client.Close() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), ids...)
	}
}

// TestCanaryThenResume: one canary node takes the new revision, the
// rollout pauses for `hub rollout resume`, then finishes.
func TestCanaryThenResume(t *testing.T) {
	h := startHub(t, hubOptions{})
	ds := uniq("canary")
	extra := `rollout:
  canary:
    count: 1
`
	agents := startFleet(t, h, 3, ds, "echo v1; sleep 3600", extra)
	h.applyYAML(rolloutDS(ds, "echo v2; sleep 3600", extra))
	eventually(t, 60*time.Second, "canary done and paused", func() error {
		d := h.daemonSetObj(ds)
		ro := d.Status.Rollout
		if d.Spec.Rollout == nil || !d.Spec.Rollout.Paused || ro == nil || ro.Phase != api.RolloutPaused || !ro.CanaryDone {
			return fmt.Errorf("spec %+v, status %+v", d.Spec.Rollout, ro)
		}
		return nil
	})
	onV2 := 0
	for _, a := range agents {
		if rs := running(t, a.ns); len(rs) == 1 && slices.Contains(rs[0].Args, "echo v2; sleep 3600") {
			onV2++
		}
	}
	if onV2 != 1 {
		t.Fatalf("%d nodes on the new revision during the canary pause", onV2)
	}
	if _, errOut, err := h.cli("", "rollout", "status", "ds/"+ds); err == nil || !strings.Contains(errOut, "paused") {
		t.Fatalf("rollout status while paused: %v %s", err, errOut)
	}
	h.mustCLI("rollout", "resume", "ds/"+ds)
	if out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=90s"); err != nil {
		t.Fatalf("rollout status after resume: %v\n%s%s", err, out, errOut)
	}
	waitCommand(t, agents, "echo v2; sleep 3600", 30*time.Second)
}

// TestUndoToNamedRevision: three revisions, then undo to the first.
func TestUndoToNamedRevision(t *testing.T) {
	h := startHub(t, hubOptions{})
	ds := uniq("undo")
	agents := startFleet(t, h, 2, ds, "echo v1; sleep 3600", "")
	for _, v := range []string{"v2", "v3"} {
		h.applyYAML(rolloutDS(ds, "echo "+v+"; sleep 3600", ""))
		if out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=60s"); err != nil {
			t.Fatalf("rollout status: %v\n%s%s", err, out, errOut)
		}
	}
	hist := h.mustCLI("rollout", "history", "ds/"+ds)
	if !strings.Contains(hist, "REVISION") || !strings.Contains(hist, "\n3 ") {
		t.Fatalf("history:\n%s", hist)
	}
	if out := h.mustCLI("rollout", "history", "ds/"+ds, "--revision=1"); !strings.Contains(out, "echo v1; sleep 3600") {
		t.Fatalf("revision 1:\n%s", out)
	}
	h.mustCLI("rollout", "undo", "ds/"+ds, "--to-revision=1")
	if out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=60s"); err != nil {
		t.Fatalf("rollout status after undo: %v\n%s%s", err, out, errOut)
	}
	waitCommand(t, agents, "echo v1; sleep 3600", 30*time.Second)
	if ro := h.daemonSetObj(ds).Status.Rollout; ro.Revision != 4 {
		t.Fatalf("undo made revision %d, want 4", ro.Revision)
	}
}

// TestHubKill9MidRollout kills the hub while a rollout runs; the restarted
// hub finishes it from the store, never takes more than one node down and
// never sends a node back to the old revision.
func TestHubKill9MidRollout(t *testing.T) {
	h := startHub(t, hubOptions{})
	ds := uniq("kill")
	extra := "minReadySeconds: 2\n"
	agents := startFleet(t, h, 4, ds, "echo v1; sleep 3600", extra)
	s := sampleFleet(t, h, ds, agents)
	h.applyYAML(rolloutDS(ds, "echo v2; sleep 3600", extra))
	eventually(t, 60*time.Second, "rollout under way", func() error {
		ro := h.daemonSetObj(ds).Status.Rollout
		if ro == nil || ro.Revision != 2 || ro.Updated < 1 || ro.Updated > 2 {
			return fmt.Errorf("rollout = %+v", ro)
		}
		return nil
	})
	h.restart(true)
	if out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=120s"); err != nil {
		t.Fatalf("rollout status after kill -9: %v\n%s%s", err, out, errOut)
	}
	waitCommand(t, agents, "echo v2; sleep 3600", 30*time.Second)
	s.finish()
	if s.maxDown > 1 {
		t.Fatalf("%d nodes down at once across the hub restart (longest sweep %s): %s", s.maxDown, s.maxSweep, s.worst)
	}
	for node, cmds := range s.commands {
		if len(cmds) > 2 || cmds[0] != "echo v1; sleep 3600" {
			t.Fatalf("node %s ran %q", node, cmds)
		}
	}
}

// TestOfflineNodeUpdatesWhenItReturns: a node whose agent is stopped does
// not hold the rollout (offlineNodes Skip); it updates when it returns.
func TestOfflineNodeUpdatesWhenItReturns(t *testing.T) {
	h := startHub(t, hubOptions{})
	ds := uniq("off")
	agents := startFleet(t, h, 3, ds, "echo v1; sleep 3600", "")
	away := agents[2]
	if err := away.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "node NotReady", func() error {
		if h.node(away.node).IsReady() {
			return fmt.Errorf("still Ready")
		}
		return nil
	})
	h.applyYAML(rolloutDS(ds, "echo v2; sleep 3600", ""))
	out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=90s")
	if err != nil || !strings.Contains(out, "1 offline node(s) will update when they return") {
		t.Fatalf("rollout status: %v\n%s%s", err, out, errOut)
	}
	waitCommand(t, agents[:2], "echo v2; sleep 3600", 30*time.Second)
	if rs := running(t, away.ns); len(rs) != 1 || !slices.Contains(rs[0].Args, "echo v1; sleep 3600") {
		t.Fatalf("offline node changed: %+v", rs)
	}
	away.start()
	waitCommand(t, agents, "echo v2; sleep 3600", 60*time.Second)
	eventually(t, 30*time.Second, "nothing pending", func() error {
		if ro := h.daemonSetObj(ds).Status.Rollout; ro.OfflinePending != 0 || ro.Updated != 3 || ro.Phase != api.RolloutComplete {
			return fmt.Errorf("rollout = %+v", ro)
		}
		return nil
	})
}

func deploymentYAML(name string, replicas int, tolerationSeconds int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  replicas: %d
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
        - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: %d}
        - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: %d}
      containers:
        - name: main
          image: %s
          command: ["sh", "-c", "sleep 3600"]
`, name, replicas, name, name, tolerationSeconds, tolerationSeconds, env.image)
}

// TestDeploymentLeavesStoppedNode: a Deployment's pods spread over two
// nodes; one agent dies; after the toleration its pod runs on the other
// node, and the dead node cleans up when its agent comes back.
func TestDeploymentLeavesStoppedNode(t *testing.T) {
	h := startHub(t, hubOptions{})
	a, b := startAgent(t, h), startAgent(t, h)
	dep := uniq("web")
	h.applyYAML(deploymentYAML(dep, 2, 5))
	eventually(t, 60*time.Second, "one pod on each node", func() error {
		if len(running(t, a.ns)) != 1 || len(running(t, b.ns)) != 1 {
			return fmt.Errorf("%d and %d running", len(running(t, a.ns)), len(running(t, b.ns)))
		}
		return nil
	})
	if out, errOut, err := h.cli("", "rollout", "status", "deploy/"+dep, "--timeout=60s"); err != nil {
		t.Fatalf("rollout status: %v\n%s%s", err, out, errOut)
	}
	start := time.Now()
	b.kill9()
	eventually(t, 60*time.Second, "both pods on the live node", func() error {
		if n := len(running(t, a.ns)); n != 2 {
			return fmt.Errorf("%d running on %s", n, a.node)
		}
		for _, p := range h.pods() {
			if p.Spec.NodeName == b.node {
				return fmt.Errorf("pod %s still assigned to %s", p.Name, b.node)
			}
		}
		return nil
	})
	figure("Deployment pod replaced off a dead node (toleration 5s, node grace 5s) in %s", time.Since(start).Round(10*time.Millisecond))
	// The containers run; the hub shows them Ready once the live node's
	// status report for the new pod is in.
	eventually(t, 30*time.Second, "the Deployment 2/2 Ready", func() error {
		if out := h.mustCLI("get", "deploy", dep); !strings.Contains(out, "2/2") {
			return fmt.Errorf("get deploy:\n%s", out)
		}
		return nil
	})
	b.start()
	eventually(t, 60*time.Second, "the returning node removes the pod it no longer has", func() error {
		if cs := containers(t, b.ns); len(cs) != 0 {
			return fmt.Errorf("containers = %+v", cs)
		}
		return nil
	})
}

// exitCode is the exit code of a command's error (0 for none).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestMissingTagRollsBackFast sets a DaemonSet's image to a tag the
// registry does not have, on three real agents, with a progress deadline
// of five minutes, pre-pull on, and rollback on failure: the agents'
// pre-pulls fail with the registry's "not found", which is not transient,
// so the rollout fails and rolls back long before the deadline, no node
// ever runs the missing tag, and `rollout status` exits non-zero naming
// the nodes and the registry's reason.
func TestMissingTagRollsBackFast(t *testing.T) {
	h := startHub(t, hubOptions{})
	ds := uniq("tag")
	extra := `rollout:
  maxFailures: 0
  onFailure: Rollback
  prePull: true
  progressDeadlineSeconds: 300
`
	good := "echo good; sleep 3600"
	agents := startFleet(t, h, 3, ds, good, extra)
	missing := env.reg.Addr + "/e2e/busybox:does-not-exist"
	start := time.Now()
	h.mustCLI("set", "image", "ds/"+ds, "main="+missing)
	out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=120s")
	took := time.Since(start)
	if exitCode(err) != 1 || !strings.Contains(errOut, "failed and") || !strings.Contains(errOut, "not found") {
		t.Fatalf("rollout status of a missing tag: exit %d (%v)\n%s%s", exitCode(err), err, out, errOut)
	}
	if took > 90*time.Second {
		t.Fatalf("the rollout took %s to fail; the registry said at once that the tag does not exist", took)
	}
	eventually(t, 60*time.Second, "the template back on the good image", func() error {
		d := h.daemonSetObj(ds)
		ro := d.Status.Rollout
		if img := d.Spec.Template.Spec.Containers[0].Image; img != env.image || ro.Phase != api.RolloutRolledBack || ro.Failure == nil {
			return fmt.Errorf("image %s, rollout %+v", img, ro)
		}
		return nil
	})
	waitCommand(t, agents, good, 30*time.Second)
	figure("missing tag with pre-pull on 3 real agents: rollout status exited 1 after %s (progress deadline 300 s)", took.Round(10*time.Millisecond))
}

// TestMissingTagFailsWithoutRolloutSettings: a DaemonSet with no
// spec.rollout (maxFailures 0, onFailure Pause): the moved node's pull of
// a missing tag fails the rollout at once; `rollout status` exits 1 and
// names the node and the registry's error, and the other nodes keep the
// old revision.
func TestMissingTagFailsWithoutRolloutSettings(t *testing.T) {
	h := startHub(t, hubOptions{})
	ds := uniq("tag")
	good := "echo good; sleep 3600"
	agents := startFleet(t, h, 2, ds, good, "")
	missing := env.reg.Addr + "/e2e/busybox:nope"
	start := time.Now()
	h.mustCLI("set", "image", "ds/"+ds, "main="+missing)
	out, errOut, err := h.cli("", "rollout", "status", "ds/"+ds, "--timeout=120s")
	took := time.Since(start)
	if exitCode(err) != 1 || !strings.Contains(errOut, "rollout failed") || !strings.Contains(errOut, "ErrImagePull") || !strings.Contains(errOut, "not found") {
		t.Fatalf("rollout status: exit %d (%v)\n%s%s", exitCode(err), err, out, errOut)
	}
	d := h.daemonSetObj(ds)
	ro := d.Status.Rollout
	if ro.Phase != api.RolloutFailed || ro.Failed != 1 || ro.Ready != 0 || len(ro.FailedNodes) != 1 {
		t.Fatalf("rollout = %+v", ro)
	}
	pods := h.mustCLI("get", "pods", "-o", "wide")
	if !strings.Contains(pods, "ImagePullBackOff") && !strings.Contains(pods, "ErrImagePull") {
		t.Fatalf("no pod shows the pull failure:\n%s", pods)
	}
	// One node took the bad revision (the budget of 1); the other still
	// runs the good one.
	runsGood := 0
	for _, a := range agents {
		for _, c := range running(t, a.ns) {
			if slices.Contains(c.Args, good) {
				runsGood++
			}
		}
	}
	if runsGood != 2 {
		t.Fatalf("%d of 2 nodes run the good revision; the failed node keeps its old containers while it cannot pull", runsGood)
	}
	figure("missing tag without spec.rollout on 2 real agents: rollout status exited 1 after %s", took.Round(10*time.Millisecond))
}
