package broker

// Bursts from one connection, from clients that read normally: each must
// be served whole, the connection kept. The broker stops reading a
// connection while what it must send waits (back-pressure) and closes
// only a client whose socket takes nothing, or that acknowledges
// nothing, for the write timeout.

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestBurstOfPingreqs: 300 PINGREQs written at once, then read, are all
// answered (MQTT-3.12.4-1) on a connection that stays open; ten runs,
// since whether the old broker's writer kept up depended on scheduling.
func TestBurstOfPingreqs(t *testing.T) {
	const n, runs = 300, 10
	b := startBroker(t, Options{})
	burst := bytes.Repeat(encode(packets.NewControlPacket(packets.Pingreq)), n)
	whole := 0
	var failures []string
	for run := range runs {
		c := dialRaw(t, b)
		c.connect(connectPacket("pinger-"+strconv.Itoa(run), 0), 0)
		if _, err := c.Write(burst); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		answered := 0
		var err error
		for answered < n {
			var pk packets.ControlPacket
			if pk, err = packets.ReadPacket(c); err != nil {
				break
			}
			if _, ok := pk.(*packets.PingrespPacket); !ok {
				t.Fatalf("got %v, want PINGRESP", pk)
			}
			answered++
		}
		if answered == n {
			c.send(packets.NewControlPacket(packets.Pingreq))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err = packets.ReadPacket(c); err == nil {
				whole++
				continue
			}
		}
		failures = append(failures, fmt.Sprintf("run %d: %d of %d answered, then %v", run, answered, n, err))
		c.Close()
	}
	t.Logf("%d of %d runs had all %d PINGREQs answered", whole, runs, n)
	if whole != runs {
		t.Fatalf("%d of %d runs had all %d PINGREQs answered: %s", whole, runs, n, strings.Join(failures, "; "))
	}
}

// TestBurstOfSubscribes: a paho client calling Subscribe 300 times
// without waiting, each time to a topic holding a retained 16 KiB
// message (an operator's tool reading 300 nodes' desired snapshots),
// gets 300 SUBACKs and 300 messages, and keeps its connection; five
// clients in turn.
func TestBurstOfSubscribes(t *testing.T) {
	const n, runs = 300, 5
	b := startBroker(t, Options{})
	hub := b.Session(nil)
	topic := func(i int) string { return wire.NodeTopic("n"+strconv.Itoa(i), wire.TopicDesired) }
	for i := range n {
		if err := hub.Publish(context.Background(), topic(i), 1, true, fmt.Appendf(nil, "%d %016384d", i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	whole := 0
	var failures []string
	for run := range runs {
		got := newCounter()
		c := pahoClient(t, b, "subscriber-"+strconv.Itoa(run))
		toks := make([]paho.Token, n)
		for i := range toks {
			toks[i] = c.Subscribe(topic(i), 1, func(_ paho.Client, m paho.Message) { got.add(m.Payload()) })
		}
		acked := 0
		var failed error
		for i, tok := range toks {
			if !tok.WaitTimeout(20 * time.Second) {
				failed = fmt.Errorf("SUBSCRIBE %d: no SUBACK", i)
				break
			}
			if err := tok.Error(); err != nil {
				failed = fmt.Errorf("SUBSCRIBE %d: %w", i, err)
				break
			}
			acked++
		}
		received, err := got.wait(n, c.lost)
		if failed != nil || err != nil {
			failures = append(failures, fmt.Sprintf("run %d: %d of %d SUBSCRIBEs acknowledged (%v), %d of %d retained messages received (%v)", run, acked, n, failed, received, n, err))
			continue
		}
		got.inOrder(t, n)
		if err := hub.Publish(context.Background(), topic(n-1), 1, false, []byte("live")); err != nil {
			t.Fatal(err)
		}
		if _, err := got.wait(n+1, c.lost); err != nil {
			failures = append(failures, fmt.Sprintf("run %d: after the burst: %v", run, err))
			continue
		}
		whole++
		c.Disconnect(0)
	}
	t.Logf("%d of %d runs had all %d SUBSCRIBEs and retained messages answered", whole, runs, n)
	if whole != runs {
		t.Fatalf("%d of %d runs whole: %s", whole, runs, strings.Join(failures, "; "))
	}
}

// counter records the payloads a subscriber receives, in order.
type counter struct {
	mu   sync.Mutex
	got  []string
	more chan struct{}
}

func newCounter() *counter { return &counter{more: make(chan struct{}, 1)} }

func (c *counter) add(payload []byte) {
	c.mu.Lock()
	c.got = append(c.got, string(payload))
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

func (c *counter) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// wait waits until n payloads arrived, lost reports a lost connection,
// or nothing arrives for 20 s; it returns how many arrived and why it
// stopped short.
func (c *counter) wait(n int, lost <-chan error) (int, error) {
	for {
		if got := c.len(); got >= n {
			return got, nil
		}
		select {
		case <-c.more:
		case err := <-lost:
			time.Sleep(100 * time.Millisecond) // what was already read
			return c.len(), fmt.Errorf("connection lost: %w", err)
		case <-time.After(20 * time.Second):
			return c.len(), fmt.Errorf("nothing more for 20 s")
		}
	}
}

// inOrder checks that got is want's payloads 0 … n-1.
func (c *counter) inOrder(t *testing.T, n int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.got) != n {
		t.Fatalf("received %d messages, want %d", len(c.got), n)
	}
	for i, p := range c.got {
		if p != strconv.Itoa(i) && !bytes.HasPrefix([]byte(p), []byte(strconv.Itoa(i)+" ")) {
			t.Fatalf("message %d is %.20q: out of order", i, p)
		}
	}
}

// TestBurstOfQoS0ToOneSubscriber: 1,000 QoS 0 messages written at once
// by one client all reach a subscriber that reads normally, in order, and
// neither connection is closed (the publisher is held back instead).
func TestBurstOfQoS0ToOneSubscriber(t *testing.T) {
	const n = 1000
	b := startBroker(t, Options{})
	got := newCounter()
	sub := pahoClient(t, b, "subscriber")
	if tok := sub.Subscribe("burst", 0, func(_ paho.Client, m paho.Message) { got.add(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := dialRaw(t, b)
	pub.connect(connectPacket("publisher", 0), 0)
	var burst bytes.Buffer
	for i := range n {
		_ = publishPacket("burst", fmt.Sprintf("%d %0100d", i, 0), 0, 0).Write(&burst)
	}
	start := time.Now()
	if _, err := pub.Write(burst.Bytes()); err != nil {
		t.Fatal(err)
	}
	received, err := got.wait(n, sub.lost)
	t.Logf("the subscriber received %d of %d messages in %s", received, n, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("the subscriber received %d of %d messages: %v", received, n, err)
	}
	got.inOrder(t, n)
	pub.send(packets.NewControlPacket(packets.Pingreq))
	if _, ok := pub.next().(*packets.PingrespPacket); !ok {
		t.Fatal("the publisher's connection does not answer after the burst")
	}
}

// notify sends v on ch unless ch is full: a session that reconnects
// calls its OnConnect again.
func notify[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// agentSession is a pkg/link session with the agent's settings
// (edge-agent/internal/agent: keep-alive 30 s, reconnects within 10 s,
// a retained will on its online topic).
func agentSession(b *Broker, node string, onConnect func(context.Context)) *link.Session {
	return link.New(link.Options{
		Broker:     b.URL(),
		ClientID:   wire.AgentClientID(node),
		Will:       &link.Will{Topic: wire.NodeTopic(node, wire.TopicOnline), Payload: []byte("false"), Retained: true},
		KeepAlive:  30 * time.Second,
		BackoffMax: 10 * time.Second,
		OnConnect:  onConnect,
		Logger:     quiet,
	})
}

// runSession runs s until the test ends, and waits for its first connect.
func runSession(t *testing.T, s *link.Session, connected <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("the session did not connect")
	}
}

// TestBurstOfQoS1FromAnAgent: an agent back from a long outage drains its
// outbox, QoS 1, to a socket subscriber (a hub on pkg/link, as on an
// external broker) and to the hub's inline session. Every message
// reaches both, in order, with no connection lost: sent as one burst of
// 5,000 (PublishBatch without waiting), and as the agent drains, 64 at a
// time.
func TestBurstOfQoS1FromAnAgent(t *testing.T) {
	for _, batch := range []int{5000, 64} {
		t.Run("batch "+strconv.Itoa(batch), func(t *testing.T) {
			rate, err := qos1Burst(t, 5000, batch)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("5,000 QoS 1 messages in batches of %d: %.0f messages/s through the broker", batch, rate)
		})
	}
}

// qos1Burst sends n QoS 1 messages of about 300 bytes from an agent's
// session in batches, and returns the rate at which both subscribers
// received them all.
func qos1Burst(t *testing.T, n, batch int) (float64, error) {
	b := startBroker(t, Options{})
	const node = "n1"
	topic := wire.NodeTopic(node, wire.TopicStatus)

	inline, external := newCounter(), newCounter()
	hubConnected := make(chan struct{}, 1)
	hub := b.Session(func(context.Context) { notify(hubConnected, struct{}{}) })
	hub.Subscribe(wire.SharedTopic("flotilla-hub", wire.AllNodesTopic(wire.TopicStatus)), 1, func(_ string, p []byte) { inline.add(p) })
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-hubDone })
	<-hubConnected

	subConnected := make(chan struct{}, 1)
	subLost := make(chan error, 1)
	sub := link.New(link.Options{Broker: b.URL(), ClientID: "hub-on-link", Logger: quiet,
		OnConnect:    func(context.Context) { notify(subConnected, struct{}{}) },
		OnDisconnect: func(err error) { notify(subLost, err) }})
	sub.Subscribe(wire.AllNodesTopic(wire.TopicStatus), 1, func(_ string, p []byte) { external.add(p) })
	agentConnected := make(chan struct{}, 1)
	agent := agentSession(b, node, func(context.Context) { notify(agentConnected, struct{}{}) })
	runSession(t, sub, subConnected)
	runSession(t, agent, agentConnected)

	pad := bytes.Repeat([]byte("x"), 300)
	msgs := make([]link.Message, n)
	for i := range msgs {
		msgs[i] = link.Message{Topic: topic, QoS: 1, Payload: append([]byte(strconv.Itoa(i)+" "), pad...)}
	}
	start := time.Now()
	for i := 0; i < n; i += batch {
		j := min(n, i+batch)
		sent, err := agent.PublishBatch(context.Background(), msgs[i:j])
		if err != nil {
			return 0, fmt.Errorf("the agent's messages %d…%d: %d acknowledged: %w", i, j-1, sent, err)
		}
	}
	for name, c := range map[string]*counter{"inline session": inline, "socket subscriber": external} {
		if got, err := c.wait(n, subLost); err != nil {
			return 0, fmt.Errorf("the %s received %d of %d messages: %w", name, got, n, err)
		}
	}
	took := time.Since(start)
	inline.inOrder(t, n)
	external.inOrder(t, n)
	if c := agent.Connects(); c != 1 {
		return 0, fmt.Errorf("the agent connected %d times", c)
	}
	if c := sub.Connects(); c != 1 {
		return 0, fmt.Errorf("the socket subscriber connected %d times", c)
	}
	return float64(n) / took.Seconds(), nil
}
