package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// What these tests check: a report the broker acknowledged to its agent is
// never lost by the hub, however fast a backlog drains into a low ingest
// rate (the hub holds the publisher back instead of dropping), and a node
// back from an outage shows its pods' current status at once, whatever
// its full outbox dropped.

// agentEvents returns the events the agent of node reported, as the hub
// stored them.
func agentEvents(t *testing.T, h *hubProc, node string) []api.Event {
	t.Helper()
	var out []api.Event
	for _, e := range nodeEvents(t, h, node) {
		if e.Source.Component == "edge-agent" {
			out = append(out, e)
		}
	}
	return out
}

// publishBacklog publishes n events of node over c with QoS 1, the way an
// agent drains its outbox (64 at a time, then the acknowledgements), and
// returns how many the broker acknowledged.
func publishBacklog(t *testing.T, c mqtt.Client, node string, firstSeq uint64, n int) int {
	t.Helper()
	topic := wire.NodeTopic(node, wire.TopicEvents)
	acked := 0
	for start := 0; start < n; start += 64 {
		var toks []mqtt.Token
		for i := start; i < min(start+64, n); i++ {
			ev := wire.Event{Object: api.ObjectReference{Kind: api.KindNode, Name: node}, Type: api.EventNormal,
				Reason: "Backlog", Message: fmt.Sprintf("queued report %d", i), Time: time.Now().UTC()}
			b, err := wire.Encode(wire.TypeEvent, node, firstSeq+uint64(i), time.Now(), ev)
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, c.Publish(topic, 1, false, b))
		}
		for _, tok := range toks {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("publish report %d: no acknowledgement: %v", acked, tok.Error())
			}
			acked++
		}
	}
	return acked
}

// TestAcknowledgedBacklogIsAllStored: a client drains a backlog of
// thousands of QoS 1 reports as fast as the broker acknowledges them into
// a hub whose per-node ingest rate is far lower. Every report the broker
// acknowledged is stored: the hub paces the publisher (on its embedded
// broker by withholding PUBACK; on Mosquitto by taking the messages from
// its queue no faster than ingest does) instead of dropping what was
// acknowledged. `hub describe node` shows nothing dropped by the hub.
func TestAcknowledgedBacklogIsAllStored(t *testing.T) {
	const (
		reports = 3000
		rate    = 200
		burst   = 200
	)
	limits := []string{"--ingest-rate", strconv.Itoa(rate), "--ingest-burst", strconv.Itoa(burst)}
	for _, tc := range []struct {
		name string
		opts hubOptions
	}{
		{"embedded broker", hubOptions{extra: limits}},
		{"mosquitto", hubOptions{broker: env.mosq.URL, extra: limits}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHub(t, tc.opts)
			node := uniq("backlog-")
			opts := mqtt.NewClientOptions().AddBroker(h.MQTT).SetClientID(wire.AgentClientID(node)).
				SetConnectTimeout(5 * time.Second).SetWriteTimeout(30 * time.Second)
			c := mqtt.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(100)
			hello, err := wire.Encode(wire.TypeHello, node, 1, time.Now(), wire.Hello{Info: api.NodeSystemInfo{Architecture: "amd64"}})
			if err != nil {
				t.Fatal(err)
			}
			// The hub's health check can answer before its shared
			// subscription on an external broker exists, and a broker
			// keeps nothing for a subscription that is not there yet:
			// say hello again until the hub has heard it, as an agent
			// answers the hub's HelloRequest.
			eventually(t, 20*time.Second, "node registered", func() error {
				if tok := c.Publish(wire.NodeTopic(node, wire.TopicStatus), 1, false, hello); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					return fmt.Errorf("hello: %v", tok.Error())
				}
				if h.node(node).Name != node {
					return fmt.Errorf("no node %s", node)
				}
				return nil
			})
			start := time.Now()
			acked := publishBacklog(t, c, node, 2, reports)
			drained := time.Since(start)
			var stored int
			eventually(t, 2*time.Minute, "every acknowledged report stored", func() error {
				if stored = occurrences(agentEvents(t, h, node)); stored != acked {
					return fmt.Errorf("%d of %d acknowledged reports stored", stored, acked)
				}
				return nil
			})
			out := h.mustCLI("describe", "node", node)
			if !hubDroppedZero(out) {
				t.Fatalf("describe node does not show zero drops by the hub:\n%s", out)
			}
			t.Logf("%s: %d reports acknowledged in %s (ingest rate %d/s, burst %d), all stored after %s",
				tc.name, acked, drained.Round(time.Millisecond), rate, burst, time.Since(start).Round(time.Millisecond))
		})
	}
}

// hubDroppedZero reports whether describe's output says the hub dropped
// nothing of the node's.
func hubDroppedZero(describe string) bool {
	for _, line := range strings.Split(describe, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Dropped by hub:"); ok {
			return strings.TrimSpace(v) == "0"
		}
	}
	return false
}

// flappingDaemonSet renders a DaemonSet of one pod with n containers
// whose readiness flaps every second while dir/flap exists, and holds
// otherwise: each flap to not-ready is an Unhealthy event, as the field
// trial's flapping probes made.
func flappingDaemonSet(name, image, dir string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: %s
spec:
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
`, name, name, name)
	for i := range n {
		fmt.Fprintf(&b, `        - name: c%d
          image: %s
          command: ["sleep", "3600"]
          readinessProbe:
            exec: {command: [sh, -c, "test ! -f /data/flap || test $(( $(date +%%s) %% 2 )) = 0"]}
            periodSeconds: 1
            failureThreshold: 1
          volumeMounts: [{name: data, mountPath: /data}]
`, i, image)
	}
	fmt.Fprintf(&b, "      volumes: [{name: data, hostPath: {path: %s}}]\n", dir)
	return b.String()
}

// podReady reports whether the hub shows the pod Running and Ready, not
// lost with its node.
func podReady(p *api.Pod) error {
	if p == nil {
		return fmt.Errorf("no pod")
	}
	if p.Status.Phase != api.PodRunning || p.Status.Reason != "" {
		return fmt.Errorf("pod %s is %s (%s)", p.Name, p.Status.Phase, p.Status.Reason)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == api.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("pod %s is not Ready: %+v", p.Name, p.Status.Conditions)
}

// TestAgentBacklogDrainsIntoALowIngestRate: the field trial's case with a
// real agent. Cut off, its flapping readiness probes queue a backlog of
// events; on restore it drains them into a hub whose ingest rate is a
// fraction of what the link carries. Everything the agent queued is
// delivered or counted as dropped by the agent (nothing here: its outbox
// is large enough), and the hub drops nothing it was sent.
func TestAgentBacklogDrainsIntoALowIngestRate(t *testing.T) {
	h := startHub(t, hubOptions{mqttHost: "0.0.0.0", grace: 4 * time.Second, extra: []string{"--ingest-rate", "10", "--ingest-burst", "20"}})
	site := startSite(t)
	a := startSiteAgent(t, h, site)
	dir := filepath.Join(env.dir, uniq("flap"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ds := uniq("flappy")
	h.applyYAML(flappingDaemonSet(ds, siteImage(site, "v1"), dir, 6))
	eventually(t, 60*time.Second, "pod Ready", func() error { return podReady(podOn(h.pods(), ds, a.node)) })

	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "flap"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The backlog builds while the link is down: about three events a
	// second.
	time.Sleep(40 * time.Second)
	if err := os.Remove(filepath.Join(dir, "flap")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the probes see the file gone within a period; then nothing more happens
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	var n *api.Node
	var delivered []api.Event
	eventually(t, 3*time.Minute, "every queued event delivered", func() error {
		n = h.node(a.node)
		if !n.IsReady() || n.Status.Outbox.Queued != 0 {
			return fmt.Errorf("node ready %v, outbox %+v", n.IsReady(), n.Status.Outbox)
		}
		delivered = agentEvents(t, h, a.node)
		appended, dropped := n.Status.Outbox.AppendedByClass["event"], n.Status.Outbox.DroppedByClass["event"]
		if uint64(occurrences(delivered))+dropped != appended {
			return fmt.Errorf("%d events stored + %d dropped by the agent != %d queued; hub dropped %v",
				occurrences(delivered), dropped, appended, n.Status.IngestDropped)
		}
		return nil
	})
	unhealthy := 0
	for _, e := range delivered {
		if e.Reason == "Unhealthy" {
			unhealthy += int(e.Count)
		}
	}
	if unhealthy < 40 {
		t.Fatalf("only %d Unhealthy events: the test did not build a backlog", unhealthy)
	}
	if len(n.Status.IngestDropped) != 0 || n.Status.Outbox.Dropped != 0 {
		t.Fatalf("drops: hub %v, agent %+v", n.Status.IngestDropped, n.Status.Outbox)
	}
	t.Logf("%d events (%d Unhealthy) delivered through a 10/s ingest limit, all stored %s after the link came back",
		occurrences(delivered), unhealthy, time.Since(restored).Round(time.Millisecond))
}

// TestReconnectShowsCurrentPodStatus: the agent's outbox overflows with
// events while its link is down, so that it holds nothing but events when
// the link comes back. The hub, which marked the node's pods NodeLost,
// shows their current status right after the reconnect: the agent's pod
// status is state kept apart from the droppable queue, not one more entry
// in it. And the agent reports its outage from the last report that got
// through, not from when its keep-alive noticed.
func TestReconnectShowsCurrentPodStatus(t *testing.T) {
	h := offlineHub(t)
	site := startSite(t)
	a := startSiteAgent(t, h, site, "--outbox-max-entries", "20", "--metrics-interval", "0")
	dir := filepath.Join(env.dir, uniq("flap"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	flappy, steady := uniq("flappy"), uniq("steady")
	h.applyYAML(flappingDaemonSet(flappy, siteImage(site, "v1"), dir, 4) + "---\n" + daemonSet(steady, siteImage(site, "v1"), "", "sleep 3600"))
	eventually(t, 60*time.Second, "pods Ready", func() error {
		pods := h.pods()
		if err := podReady(podOn(pods, flappy, a.node)); err != nil {
			return err
		}
		return podReady(podOn(pods, steady, a.node))
	})

	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	if err := os.WriteFile(filepath.Join(dir, "flap"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "pods NodeLost", func() error {
		for _, ds := range []string{flappy, steady} {
			if p := podOn(h.pods(), ds, a.node); p == nil || p.Status.Reason != "NodeLost" {
				return fmt.Errorf("pod of %s: %+v", ds, p)
			}
		}
		return nil
	})
	// About two events a second: well past the outbox's 20 entries.
	time.Sleep(20 * time.Second)
	if err := os.Remove(filepath.Join(dir, "flap")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the probes see the file gone within a period; then nothing more happens
	if err := site.Restore(); err != nil {
		t.Fatal(err)
	}
	restored := time.Now()
	eventually(t, 20*time.Second, "pods' current status shown after the reconnect", func() error {
		if !h.node(a.node).IsReady() {
			return fmt.Errorf("node not Ready")
		}
		pods := h.pods()
		for _, ds := range []string{flappy, steady} {
			if err := podReady(podOn(pods, ds, a.node)); err != nil {
				return err
			}
		}
		return nil
	})
	shown := time.Since(restored)
	n := h.node(a.node)
	if n.Status.Outbox.DroppedByClass["event"] == 0 {
		t.Fatalf("the outbox dropped no events (%+v): the test did not fill it", n.Status.Outbox)
	}

	// The outage is measured from the last report that got through, so
	// the Online event's figure covers the whole cut: at least the time
	// from the cut to the reconnect.
	var online *api.Event
	eventually(t, 10*time.Second, "Online event", func() error {
		for _, e := range agentEvents(t, h, a.node) {
			if e.Reason == "Online" && strings.Contains(e.Message, "reconnected") && e.LastTimestamp.After(cutAt) {
				online = &e
				return nil
			}
		}
		return fmt.Errorf("no Online event after the cut")
	})
	_, after, _ := strings.Cut(online.Message, "after ")
	offline, err := time.ParseDuration(strings.Fields(after)[0])
	if err != nil {
		t.Fatalf("Online event %q: %v", online.Message, err)
	}
	if least := online.LastTimestamp.Sub(cutAt); offline < least-time.Second/2 {
		t.Fatalf("Online event says %q, but the link was cut %s before it", online.Message, least.Round(time.Millisecond))
	}
	t.Logf("pods shown Ready %s after the link came back; %q (cut %s before)", shown.Round(time.Millisecond), online.Message,
		online.LastTimestamp.Sub(cutAt).Round(time.Millisecond))
}
