package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestMeasureBacklogDrain measures, with the hub's default ingest limits
// (1,000 messages/s, burst 10,000), how long a backlog of 20,000 reports
// (the field trial's 20,746) takes to be acknowledged and to be stored,
// on the embedded broker and on Mosquitto, and what the drain costs
// another node that reports once a second: how long until the hub shows
// each of its heartbeats, for 5 s before the drain and during it (the
// figure includes the poll's own latency, a CLI call every 100 ms). A
// measurement, not a check:
//
//	FLOTILLA_MEASURE=1 go test -v -run TestMeasureBacklogDrain ./test/e2e/
func TestMeasureBacklogDrain(t *testing.T) {
	if os.Getenv("FLOTILLA_MEASURE") == "" {
		t.Skip("a measurement, not a check: set FLOTILLA_MEASURE=1 to run it")
	}
	const reports = 20_000
	for _, tc := range []struct {
		name string
		opts hubOptions
	}{
		{"embedded", hubOptions{}},
		{"mosquitto", hubOptions{broker: env.mosq.URL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHub(t, tc.opts)
			connect := func(node string) mqtt.Client {
				c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(h.MQTT).SetClientID(wire.AgentClientID(node)).
					SetConnectTimeout(5 * time.Second).SetWriteTimeout(30 * time.Second))
				if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("connect: %v", tok.Error())
				}
				t.Cleanup(func() { c.Disconnect(100) })
				hello, _ := wire.Encode(wire.TypeHello, node, 1, time.Now(), wire.Hello{})
				if tok := c.Publish(wire.NodeTopic(node, wire.TopicStatus), 1, false, hello); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("hello: %v", tok.Error())
				}
				return c
			}
			busy, other := uniq("busy-"), uniq("other-")
			bc, oc := connect(busy), connect(other)
			eventually(t, 20*time.Second, "nodes registered", func() error {
				if h.node(busy).Name == "" || h.node(other).Name == "" {
					return fmt.Errorf("not yet")
				}
				return nil
			})
			// The other node sends a heartbeat a second, each naming a new
			// observed revision; a poller notes when the hub shows each.
			stop := make(chan struct{})
			sentAt := map[uint64]time.Time{}
			seenAt := map[uint64]time.Time{}
			done := make(chan struct{}, 2)
			go func() {
				defer func() { done <- struct{}{} }()
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for rev := uint64(1); ; rev++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					b, _ := wire.Encode(wire.TypeHeartbeat, other, rev+1, time.Now(), wire.Heartbeat{ObservedRevision: rev})
					sentAt[rev] = time.Now()
					oc.Publish(wire.NodeTopic(other, wire.TopicStatus), 1, false, b).WaitTimeout(30 * time.Second)
				}
			}()
			go func() {
				defer func() { done <- struct{}{} }()
				for {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					out, _, err := h.cli("", "get", "node", other, "-o", "json")
					var n api.Node
					if err != nil || json.Unmarshal([]byte(out), &n) != nil {
						continue
					}
					if rev := n.Status.ObservedRevision; rev > 0 {
						if _, ok := seenAt[rev]; !ok {
							seenAt[rev] = time.Now()
						}
					}
				}
			}()
			time.Sleep(5 * time.Second) // the other node's delays before the drain
			start := time.Now()
			acked := publishBacklog(t, bc, busy, 2, reports)
			ackedIn := time.Since(start)
			eventually(t, 5*time.Minute, "backlog stored", func() error {
				if n := occurrences(agentEvents(t, h, busy)); n != acked {
					return fmt.Errorf("%d of %d stored", n, acked)
				}
				return nil
			})
			storedIn := time.Since(start)
			time.Sleep(2 * time.Second) // the other node's last heartbeats land
			close(stop)
			<-done
			<-done
			// A revision the poller never saw was overtaken by the next
			// before a poll; each seen one's delay runs from its sending.
			var before, during []time.Duration
			for rev, at := range seenAt {
				if s, ok := sentAt[rev]; ok {
					if s.Before(start) {
						before = append(before, at.Sub(s))
					} else if s.Before(start.Add(storedIn)) {
						during = append(during, at.Sub(s))
					}
				}
			}
			pct := func(d []time.Duration, q float64) time.Duration {
				if len(d) == 0 {
					return 0
				}
				slices.Sort(d)
				return d[min(len(d)-1, int(q*float64(len(d))))].Round(time.Millisecond)
			}
			figure("backlog drain, %s broker, default ingest limits: %d reports acknowledged in %s, all stored after %s; "+
				"another node's heartbeats shown after p50 %s, max %s during the drain (%d), p50 %s, max %s before it (%d)",
				tc.name, acked, ackedIn.Round(time.Millisecond), storedIn.Round(time.Millisecond),
				pct(during, 0.5), pct(during, 1), len(during), pct(before, 0.5), pct(before, 1), len(before))
		})
	}
}
