package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// TestDaemonSetLifecycle drives one DaemonSet through its life on a real
// node, checking containerd itself at every step: it starts, heals a killed
// task, replaces its container when the command changes, leaves a node that
// no longer matches, comes back, and leaves nothing behind when deleted. It
// runs once with the hub's embedded broker and once with Mosquitto.
func TestDaemonSetLifecycle(t *testing.T) {
	for _, broker := range []string{"embedded", "mosquitto"} {
		t.Run(broker, func(t *testing.T) {
			opts := hubOptions{}
			if broker == "mosquitto" {
				opts.broker = env.mosq.URL
			}
			h := startHub(t, opts)
			a := startAgent(t, h, "site=lab")
			testLifecycle(t, h, a)
		})
	}
}

func testLifecycle(t *testing.T, h *hubProc, a *agentProc) {
	ds := uniq("ds")
	h.applyYAML(daemonSet(ds, env.image, "site=lab", "echo started; sleep 3600"))

	// Running in containerd, and Running in the hub.
	var first container
	eventually(t, 30*time.Second, "container running in containerd", func() error {
		rs := running(t, a.ns)
		if len(rs) != 1 {
			return fmt.Errorf("%d running containers", len(rs))
		}
		first = rs[0]
		return nil
	})
	if first.Labels["io.flotilla.pod.name"] == "" || first.Labels["io.flotilla.pod.uid"] == "" || first.Labels["io.flotilla.pod.namespace"] != "default" ||
		first.Labels["io.flotilla.pod.spec-hash"] == "" || first.Labels["io.flotilla.snapshot.revision"] == "" {
		t.Fatalf("container labels = %v", first.Labels)
	}
	eventually(t, 10*time.Second, "pod Running in the hub", func() error {
		p := podOn(h.pods(), ds, a.node)
		if p == nil || p.Status.Phase != api.PodRunning {
			return fmt.Errorf("pod = %+v", p)
		}
		return nil
	})
	out := h.mustCLI("get", "pods")
	if !strings.Contains(out, "Running") || !strings.Contains(out, a.node) {
		t.Fatalf("hub get pods:\n%s", out)
	}

	// A killed task runs again, in the container of its next run (the
	// exited one removed), and the hub counts the restart.
	killTask(t, a.ns, first.ID)
	var rerun container
	eventually(t, 15*time.Second, "task running again", func() error {
		cs := containers(t, a.ns)
		if len(cs) != 1 || cs[0].Status != "running" || cs[0].ID == first.ID ||
			cs[0].Labels["io.flotilla.pod.uid"] != first.Labels["io.flotilla.pod.uid"] || cs[0].Labels["io.flotilla.container.run"] != "1" {
			return fmt.Errorf("containers = %+v", cs)
		}
		rerun = cs[0]
		return nil
	})
	eventually(t, 10*time.Second, "restart counted in the hub", func() error {
		p := podOn(h.pods(), ds, a.node)
		if p == nil || len(p.Status.ContainerStatuses) != 1 || p.Status.ContainerStatuses[0].RestartCount != 1 {
			return fmt.Errorf("pod status = %+v", p)
		}
		return nil
	})

	// A changed command replaces the container.
	h.applyYAML(daemonSet(ds, env.image, "site=lab", "echo changed; sleep 3600"))
	var second container
	eventually(t, 30*time.Second, "container replaced", func() error {
		cs := containers(t, a.ns)
		if len(cs) != 1 || cs[0].ID == rerun.ID || cs[0].Status != "running" {
			return fmt.Errorf("containers = %+v", cs)
		}
		second = cs[0]
		return nil
	})
	if !slices.Contains(second.Args, "echo changed; sleep 3600") {
		t.Fatalf("new container runs %q", second.Args)
	}

	// The node leaves the selector: the pod and its container go.
	h.mustCLI("label", "node", a.node, "site-")
	eventually(t, 30*time.Second, "container removed from a node out of the selector", func() error {
		if cs := containers(t, a.ns); len(cs) != 0 {
			return fmt.Errorf("containers = %+v", cs)
		}
		if p := podOn(h.pods(), ds, a.node); p != nil {
			return fmt.Errorf("pod still in the hub: %s", p.Name)
		}
		return nil
	})

	// It comes back when the node matches again.
	h.mustCLI("label", "node", a.node, "site=lab")
	eventually(t, 30*time.Second, "container back", func() error {
		if rs := running(t, a.ns); len(rs) != 1 {
			return fmt.Errorf("%d running", len(rs))
		}
		return nil
	})

	// Deleting the DaemonSet leaves nothing in containerd.
	h.mustCLI("delete", "ds", ds)
	eventually(t, 30*time.Second, "nothing left in containerd", func() error {
		if cs := containers(t, a.ns); len(cs) != 0 {
			return fmt.Errorf("containers = %+v", cs)
		}
		if len(h.pods()) != 0 {
			return fmt.Errorf("pods left in the hub")
		}
		return nil
	})
}

// TestAgentKill9Readopts kills the agent with SIGKILL while it creates
// containers, again while they run, and again as one crashes: a restarted
// agent re-adopts what runs, with no duplicate and no needless restart,
// and finishes the restart it was making.
func TestAgentKill9Readopts(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startAgent(t, h)
	dsA, dsB := uniq("ds"), uniq("ds")
	h.applyYAML(daemonSet(dsA, env.image, "", "sleep 3600") + "---\n" + daemonSet(dsB, env.image2, "", "sleep 3600"))
	// Kill it mid-run: as soon as the first container exists.
	eventually(t, 30*time.Second, "first container created", func() error {
		if len(containers(t, a.ns)) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	a.kill9()
	a.start()
	var steady []container
	eventually(t, 30*time.Second, "two pods running once each", func() error {
		cs := containers(t, a.ns)
		if len(cs) != 2 || cs[0].Status != "running" || cs[1].Status != "running" {
			return fmt.Errorf("containers = %+v", cs)
		}
		// The agent records the start time just after starting a task:
		// compare from then on.
		for _, c := range cs {
			if c.StartedAt == "" {
				return fmt.Errorf("%s: start time not recorded yet", c.ID)
			}
		}
		steady = cs
		return nil
	})

	// Kill it while everything runs: nothing is restarted or duplicated.
	a.kill9()
	a.start()
	eventually(t, 20*time.Second, "node Ready after the agent restart", func() error {
		if n := h.node(a.node); !n.IsReady() || !n.Status.Online {
			return fmt.Errorf("node %+v", n.Status.Conditions)
		}
		return nil
	})
	// Give the agent a few resyncs to do anything foolish.
	time.Sleep(5 * time.Second)
	after := containers(t, a.ns)
	if len(after) != 2 {
		t.Fatalf("after restart: %+v", after)
	}
	for i := range after {
		if after[i].ID != steady[i].ID || after[i].Pid != steady[i].Pid || after[i].StartedAt != steady[i].StartedAt {
			t.Fatalf("container changed across an agent restart:\nbefore %+v\nafter  %+v", steady[i], after[i])
		}
	}
	for _, p := range h.pods() {
		if p.Status.ContainerStatuses[0].RestartCount != 0 {
			t.Fatalf("pod %s restarted: %+v", p.Name, p.Status.ContainerStatuses[0])
		}
	}

	// Kill it as a container crashes, so that it dies somewhere in the
	// restart (which makes a new container for the new run, then removes
	// the old): the new agent finishes the restart, with one container
	// per pod and the restart counted.
	crashed := after[0]
	killTask(t, a.ns, crashed.ID)
	a.kill9()
	a.start()
	eventually(t, 30*time.Second, "one running container per pod, the crashed one restarted", func() error {
		cs := containers(t, a.ns)
		pods := map[string]bool{}
		for _, c := range cs {
			if c.Status != "running" || pods[c.Labels["io.flotilla.pod.uid"]] {
				return fmt.Errorf("containers = %+v", cs)
			}
			pods[c.Labels["io.flotilla.pod.uid"]] = true
		}
		if len(cs) != 2 || !pods[crashed.Labels["io.flotilla.pod.uid"]] {
			return fmt.Errorf("containers = %+v", cs)
		}
		for _, p := range h.pods() {
			rc := p.Status.ContainerStatuses[0].RestartCount
			if crashedPod := p.UID == crashed.Labels["io.flotilla.pod.uid"]; crashedPod && rc < 1 || !crashedPod && rc != 0 {
				return fmt.Errorf("pod %s restartCount %d", p.Name, rc)
			}
		}
		return nil
	})
}

// TestHubRestartKeepsState restarts the hub with kill -9: what it
// acknowledged is still there and the node keeps its pod, untouched.
func TestHubRestartKeepsState(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startAgent(t, h)
	ds := uniq("ds")
	h.applyYAML(daemonSet(ds, env.image, "", "sleep 3600"))
	var before []container
	eventually(t, 30*time.Second, "running", func() error {
		before = running(t, a.ns)
		if len(before) != 1 {
			return fmt.Errorf("%d running", len(before))
		}
		return nil
	})
	rev := h.node(a.node).Status.DesiredRevision
	h.restart(true)
	eventually(t, 30*time.Second, "node Ready after the hub restart", func() error {
		if !h.node(a.node).IsReady() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	if got := h.mustCLI("get", "ds", ds, "-o", "name"); strings.TrimSpace(got) != "daemonset.apps/"+ds {
		t.Fatalf("DaemonSet lost across a hub restart: %q", got)
	}
	if got := h.node(a.node).Status.DesiredRevision; got != rev {
		t.Fatalf("desired revision %d after restart, was %d: the restart changed nothing and must not bump it", got, rev)
	}
	after := running(t, a.ns)
	if len(after) != 1 || after[0].ID != before[0].ID || after[0].Pid != before[0].Pid {
		t.Fatalf("hub restart disturbed the pod: before %+v after %+v", before, after)
	}
}

// TestHubLearnsAHelloSentWhileItWasAway: with an external broker, an agent
// that (re)connects while the hub is down says hello to nobody (Mosquitto
// keeps nothing for the hub's shared subscription). When the hub is back
// and hears the node's heartbeats, it asks for the hello again, so a label
// changed meanwhile still reaches it.
func TestHubLearnsAHelloSentWhileItWasAway(t *testing.T) {
	h := startHub(t, hubOptions{broker: env.mosq.URL})
	a := startAgent(t, h, "site=lab")
	if err := h.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := a.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	a.args = append(a.args, "--label", "hello=again")
	a.start()
	eventually(t, 20*time.Second, "the restarted agent connected to Mosquitto", func() error {
		if n := strings.Count(a.proc.Logs(), "msg=connected"); n < 2 {
			return fmt.Errorf("%d connections in the agent's log", n)
		}
		return nil
	})
	time.Sleep(time.Second) // its hello goes out, to nobody
	h.start()
	eventually(t, 20*time.Second, "the hub has the label the agent announced while it was away", func() error {
		n := h.node(a.node)
		if n.Labels["hello"] != "again" || !n.IsReady() {
			return fmt.Errorf("labels %v, ready %t", n.Labels, n.IsReady())
		}
		return nil
	})
	if !strings.Contains(h.proc.Logs(), "asking a node for its hello") {
		t.Errorf("the hub learned the label without asking: the test did not exercise the lost hello\n%s", h.proc.Logs())
	}
}
