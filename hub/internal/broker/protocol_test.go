package broker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// startBroker runs a plaintext broker until the test ends; with
// FLOTILLA_BROKER_TESTLOG set it logs at debug level.
func startBroker(t *testing.T, opts Options) *Broker {
	t.Helper()
	opts.Listen = "127.0.0.1:0"
	opts.Logger = quiet
	if os.Getenv("FLOTILLA_BROKER_TESTLOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return b
}

// pahoClient connects a paho client, failing the test if it cannot.
func pahoClient(t *testing.T, b *Broker, id string, opts ...func(*paho.ClientOptions)) *mqttClient {
	t.Helper()
	c := &mqttClient{lost: make(chan error, 1), in: newInbox()}
	o := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(id).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(c.in.handler).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	for _, f := range opts {
		f(o)
	}
	c.Client = paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// rawClient is a client speaking packets directly.
type rawClient struct {
	t *testing.T
	net.Conn
}

func dialRaw(t *testing.T, b *Broker) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, Conn: c}
}

// connect sends CONNECT and expects CONNACK with code.
func (c *rawClient) connect(cp *packets.ConnectPacket, code byte) {
	c.t.Helper()
	c.send(cp)
	ack, ok := c.next().(*packets.ConnackPacket)
	if !ok || ack.ReturnCode != code || ack.SessionPresent {
		c.t.Fatalf("CONNACK %v, want code %d", ack, code)
	}
}

func (c *rawClient) send(pk packets.ControlPacket) {
	c.t.Helper()
	if err := pk.Write(c); err != nil {
		c.t.Fatal(err)
	}
}

// next reads a packet, failing after 5 s.
func (c *rawClient) next() packets.ControlPacket {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	pk, err := packets.ReadPacket(c)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return pk
}

// closed waits for the broker to close the connection.
func (c *rawClient) closed(within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	for {
		if _, err := packets.ReadPacket(c); err != nil {
			// A connection closed mid-packet ends in ErrUnexpectedEOF.
			return err == io.EOF || err == io.ErrUnexpectedEOF || strings.Contains(err.Error(), "reset")
		}
	}
}

func connectPacket(id string, keepAlive uint16) *packets.ConnectPacket {
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.ClientIdentifier, cp.Keepalive = "MQTT", 4, true, id, keepAlive
	return cp
}

func withWill(cp *packets.ConnectPacket, topic, payload string) *packets.ConnectPacket {
	cp.WillFlag, cp.WillQos, cp.WillRetain, cp.WillTopic, cp.WillMessage = true, 1, false, topic, []byte(payload)
	return cp
}

func publishPacket(topic, payload string, qos byte, id uint16) *packets.PublishPacket {
	pp := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pp.TopicName, pp.Payload, pp.Qos, pp.MessageID = topic, []byte(payload), qos, id
	return pp
}

func subscribePacket(id uint16, filters ...string) *packets.SubscribePacket {
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID, sp.Topics = id, filters
	for range filters {
		sp.Qoss = append(sp.Qoss, 1)
	}
	return sp
}

func TestPublishSubscribeQoS(t *testing.T) {
	b := startBroker(t, Options{})
	sub := pahoClient(t, b, "sub")
	for filter, qos := range map[string]byte{"q0/#": 0, "q1/+": 1, "q2/x": 2} {
		tok := sub.Subscribe(filter, qos, sub.in.handler)
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		if got, want := tok.(*paho.SubscribeToken).Result()[filter], min(qos, 1); got != want {
			t.Errorf("granted QoS %d for %s, want %d", got, filter, want)
		}
	}
	pub := pahoClient(t, b, "pub")
	for _, m := range []struct {
		topic string
		qos   byte
	}{{"q0/a/b", 0}, {"q0/a", 1}, {"q1/a", 0}, {"q1/b", 1}, {"q1/c", 2}, {"q2/x", 2}, {"q2/x", 1}} {
		payload := fmt.Sprintf("%s@%d", m.topic, m.qos)
		if tok := pub.Publish(m.topic, m.qos, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", payload, tok.Error())
		}
		sub.in.waitFor(t, m.topic, payload)
	}
	if got := sub.in.on("q2/x"); len(got) != 2 {
		t.Errorf("q2/x received %v, want each message once", got)
	}
	if got := sub.in.on("q1/c"); len(got) != 1 {
		t.Errorf("q1/c received %v", got)
	}
}

// TestQoS2Once: a QoS 2 PUBLISH sent again before PUBREL is delivered
// once, and the handshake completes.
func TestQoS2Once(t *testing.T) {
	b := startBroker(t, Options{})
	sub := pahoClient(t, b, "sub")
	sub.subscribe(t, "t")
	c := dialRaw(t, b)
	c.connect(connectPacket("pub", 0), 0)
	c.send(publishPacket("t", "once", 2, 7))
	if rec, ok := c.next().(*packets.PubrecPacket); !ok || rec.MessageID != 7 {
		t.Fatalf("want PUBREC 7, got %v", rec)
	}
	dup := publishPacket("t", "once", 2, 7)
	dup.Dup = true
	c.send(dup)
	if rec, ok := c.next().(*packets.PubrecPacket); !ok || rec.MessageID != 7 {
		t.Fatalf("want PUBREC 7 again, got %v", rec)
	}
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 7
	c.send(rel)
	if comp, ok := c.next().(*packets.PubcompPacket); !ok || comp.MessageID != 7 {
		t.Fatalf("want PUBCOMP 7, got %v", comp)
	}
	sub.in.waitFor(t, "t", "once")
	time.Sleep(100 * time.Millisecond)
	if got := sub.in.on("t"); len(got) != 1 {
		t.Errorf("delivered %v, want once", got)
	}
}

func TestRetained(t *testing.T) {
	b := startBroker(t, Options{})
	pub := pahoClient(t, b, "pub")
	for topic, payload := range map[string]string{"r/a": "A", "r/b/c": "C", "$SYS/x": "sys", "other": "O"} {
		if err := pub.publish(topic, payload, true); err != nil {
			t.Fatal(err)
		}
	}
	retainedFlag := make(chan bool, 10)
	sub := pahoClient(t, b, "sub")
	tok := sub.Subscribe("r/#", 1, func(c paho.Client, m paho.Message) {
		retainedFlag <- m.Retained()
		sub.in.handler(c, m)
	})
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("subscribe")
	}
	sub.in.waitFor(t, "r/a", "A")
	sub.in.waitFor(t, "r/b/c", "C")
	for range 2 {
		if !<-retainedFlag {
			t.Error("a retained message delivered on subscribe without the retain flag")
		}
	}
	// A live message is delivered without the flag, even if retained.
	if err := pub.publish("r/a", "A2", true); err != nil {
		t.Fatal(err)
	}
	sub.in.waitFor(t, "r/a", "A2")
	if <-retainedFlag {
		t.Error("a live message delivered with the retain flag")
	}
	// '#' does not reach $SYS; an empty payload deletes.
	if err := pub.publish("r/b/c", "", true); err != nil {
		t.Fatal(err)
	}
	all := pahoClient(t, b, "all")
	all.subscribe(t, "#")
	all.in.waitFor(t, "r/a", "A2")
	all.in.waitFor(t, "other", "O")
	sys := pahoClient(t, b, "sys")
	sys.subscribe(t, "$SYS/#")
	sys.in.waitFor(t, "$SYS/x", "sys")
	// A shared subscription gets no retained message.
	shared := pahoClient(t, b, "shared")
	shared.subscribe(t, "$share/g/r/#")
	time.Sleep(200 * time.Millisecond)
	if got := all.in.on("r/b/c"); len(got) != 0 {
		t.Errorf("a deleted retained message was delivered: %q", got)
	}
	if got := all.in.on("$SYS/x"); len(got) != 0 {
		t.Errorf("# matched $SYS/x")
	}
	shared.in.mu.Lock()
	defer shared.in.mu.Unlock()
	if len(shared.in.msgs) != 0 {
		t.Errorf("a shared subscription got retained messages: %v", shared.in.msgs)
	}
}

func TestWildcardAndSharedSubscriptions(t *testing.T) {
	b := startBroker(t, Options{})
	plain := pahoClient(t, b, "plain")
	plain.subscribe(t, "s/+/x")
	var members []*mqttClient
	for i := range 2 {
		m := pahoClient(t, b, fmt.Sprintf("member-%d", i))
		m.subscribe(t, "$share/g/s/#")
		members = append(members, m)
	}
	// The hub's inline session joins the same group.
	var mu sync.Mutex
	var inline []string
	hub := b.Session(nil)
	hub.Subscribe("$share/g/s/#", 1, func(_ string, p []byte) {
		mu.Lock()
		inline = append(inline, string(p))
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, func() bool {
		b.router.mu.RLock()
		defer b.router.mu.RUnlock()
		f := b.router.find("s/#")
		return f != nil && len(f.groups) == 1 && len(f.groups[0].members) == 3
	})

	pub := pahoClient(t, b, "pub")
	const n = 30
	for i := range n {
		if err := pub.publish(fmt.Sprintf("s/%d/x", i), fmt.Sprint(i), false); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		plain.in.waitFor(t, fmt.Sprintf("s/%d/x", i), fmt.Sprint(i))
	}
	got := map[string]int{}
	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		clear(got)
		for _, p := range inline {
			got[p]++
		}
		for _, m := range members {
			m.in.mu.Lock()
			for _, ps := range m.in.msgs {
				for _, p := range ps {
					got[p]++
				}
			}
			m.in.mu.Unlock()
		}
		return len(got) == n
	})
	for p, k := range got {
		if k != 1 {
			t.Errorf("message %s went to %d members of the group", p, k)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(inline) == 0 || len(members[0].in.msgs) == 0 || len(members[1].in.msgs) == 0 {
		t.Errorf("the group's messages were not shared: inline %d, members %d and %d", len(inline), len(members[0].in.msgs), len(members[1].in.msgs))
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWill(t *testing.T) {
	b := startBroker(t, Options{})
	watcher := pahoClient(t, b, "watcher")
	watcher.subscribe(t, "will/+")

	// Abrupt close: the will is published.
	abrupt := dialRaw(t, b)
	abrupt.connect(withWill(connectPacket("abrupt", 0), "will/abrupt", "gone"), 0)
	abrupt.Close()
	watcher.in.waitFor(t, "will/abrupt", "gone")

	// DISCONNECT: no will.
	polite := dialRaw(t, b)
	polite.connect(withWill(connectPacket("polite", 0), "will/polite", "gone"), 0)
	polite.send(packets.NewControlPacket(packets.Disconnect))
	if !polite.closed(5 * time.Second) {
		t.Fatal("DISCONNECT did not close the connection")
	}

	// Keep-alive: 1 s, nothing sent; closed after 1.5 s, and the will
	// published.
	start := time.Now()
	silent := dialRaw(t, b)
	silent.connect(withWill(connectPacket("silent", 1), "will/silent", "timeout"), 0)
	watcher.in.waitFor(t, "will/silent", "timeout")
	if took := time.Since(start); took < 1400*time.Millisecond || took > 4*time.Second {
		t.Errorf("keep-alive of 1 s expired after %s", took)
	}
	if !silent.closed(time.Second) {
		t.Error("the silent client's connection stayed open")
	}
	// A client that pings stays.
	pinger := dialRaw(t, b)
	pinger.connect(withWill(connectPacket("pinger", 1), "will/pinger", "gone"), 0)
	for range 4 {
		time.Sleep(500 * time.Millisecond)
		pinger.send(packets.NewControlPacket(packets.Pingreq))
		if _, ok := pinger.next().(*packets.PingrespPacket); !ok {
			t.Fatal("no PINGRESP")
		}
	}
	if got := watcher.in.on("will/polite"); len(got) != 0 || len(watcher.in.on("will/pinger")) != 0 {
		t.Errorf("wills of clients still connected or gone politely: %v", watcher.in.msgs)
	}
}

func TestSessionTakeover(t *testing.T) {
	b := startBroker(t, Options{})
	watcher := pahoClient(t, b, "watcher")
	watcher.subscribe(t, "online/x")
	first := pahoClient(t, b, "x", func(o *paho.ClientOptions) { o.SetWill("online/x", "false", 1, true) })
	second := pahoClient(t, b, "x")
	select {
	case <-first.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("the first connection survived a second CONNECT with its client id")
	}
	watcher.in.waitFor(t, "online/x", "false")
	// The new connection works, and its messages come after the will.
	if err := second.publish("online/x", "true", true); err != nil {
		t.Fatal(err)
	}
	watcher.in.waitFor(t, "online/x", "true")
	if got := watcher.in.on("online/x"); !slices.Equal(got, []string{"false", "true"}) {
		t.Errorf("watcher saw %v", got)
	}
	if n := b.Clients(); n != 2 {
		t.Errorf("Clients() = %d, want 2", n)
	}
}

func TestProtocolVersions(t *testing.T) {
	b := startBroker(t, Options{})
	c := dialRaw(t, b)
	v5 := connectPacket("v5", 0)
	v5.ProtocolVersion = 5
	c.connect(v5, packets.ErrRefusedBadProtocolVersion)
	if !c.closed(5 * time.Second) {
		t.Error("a refused connection stayed open")
	}
	v31 := connectPacket("v31", 0)
	v31.ProtocolName, v31.ProtocolVersion = "MQIsdp", 3
	c = dialRaw(t, b)
	c.connect(v31, 0)
	c.send(subscribePacket(1, "t"))
	if ack, ok := c.next().(*packets.SubackPacket); !ok || !bytes.Equal(ack.ReturnCodes, []byte{1}) {
		t.Fatalf("SUBACK %v", ack)
	}
	// No client id with a clean session gets one; without, is refused.
	anon := dialRaw(t, b)
	anon.connect(connectPacket("", 0), 0)
	persistent := connectPacket("", 0)
	persistent.CleanSession = false
	c = dialRaw(t, b)
	c.connect(persistent, packets.ErrRefusedIDRejected)
	// A persistent session is served as a clean one.
	persistent.ClientIdentifier = "p"
	dialRaw(t, b).connect(persistent, 0)
}

// TestPubackAfterHandoff: a QoS 1 PUBLISH is acknowledged only once every
// subscriber has the message, and a subscriber that blocks holds it back.
func TestPubackAfterHandoff(t *testing.T) {
	b := startBroker(t, Options{})
	release := make(chan struct{})
	got := make(chan string, 1)
	b.router.add(newSubscription("slow", 1, sinkFunc(func(_ string, p []byte) {
		<-release
		got <- string(p)
	})))
	c := dialRaw(t, b)
	c.connect(connectPacket("pub", 0), 0)
	c.send(publishPacket("slow", "m", 1, 1))
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if pk, err := packets.ReadPacket(c); err == nil {
		t.Fatalf("got %v before the subscriber took the message", pk)
	}
	close(release)
	if ack, ok := c.next().(*packets.PubackPacket); !ok || ack.MessageID != 1 {
		t.Fatalf("want PUBACK 1, got %v", ack)
	}
	if p := <-got; p != "m" {
		t.Fatal(p)
	}
}

type sinkFunc func(topic string, payload []byte)

func (f sinkFunc) deliver(m message, _ origin) { f(m.topic, m.payload) }

func TestOversizedPacket(t *testing.T) {
	b := startBroker(t, Options{MaxPacketSize: 1024})
	sub := pahoClient(t, b, "sub")
	sub.subscribe(t, "big")
	c := dialRaw(t, b)
	c.connect(connectPacket("big", 0), 0)
	c.send(publishPacket("big", strings.Repeat("x", 1000), 0, 0))
	c.send(publishPacket("big", strings.Repeat("x", 1100), 1, 1))
	if !c.closed(5 * time.Second) {
		t.Fatal("an oversized packet did not close the connection")
	}
	sub.in.waitFor(t, "big", strings.Repeat("x", 1000))
	// A header announcing 200 MB is refused before anything more is read.
	c = dialRaw(t, b)
	c.connect(connectPacket("bigger", 0), 0)
	if _, err := c.Write([]byte{0x30, 0x80, 0x80, 0x80, 0x60}); err != nil {
		t.Fatal(err)
	}
	if !c.closed(5 * time.Second) {
		t.Fatal("a 200 MB header did not close the connection")
	}
	if got := sub.in.on("big"); len(got) != 1 {
		t.Errorf("received %d messages, want the small one", len(got))
	}
}

// TestMalformedPackets: every malformed packet closes its connection, and
// the broker goes on serving.
func TestMalformedPackets(t *testing.T) {
	b := startBroker(t, Options{})
	sub := pahoClient(t, b, "sub")
	sub.subscribe(t, "#")
	connect := func() []byte {
		var buf bytes.Buffer
		_ = connectPacket("bad", 0).Write(&buf)
		return buf.Bytes()
	}()
	for name, after := range map[string][]byte{
		"reserved type 0":               {0x00, 0x00},
		"reserved type 15":              {0xf0, 0x00},
		"CONNACK from a client":         {0x20, 0x02, 0x00, 0x00},
		"second CONNECT":                connect,
		"PUBLISH QoS 3":                 {0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01},
		"PUBLISH DUP at QoS 0":          {0x38, 0x03, 0x00, 0x01, 't'},
		"PUBLISH topic longer than all": {0x30, 0x04, 0x00, 0x09, 't', 't'},
		"PUBLISH wildcard topic":        {0x30, 0x03, 0x00, 0x01, '#'},
		"PUBLISH empty topic":           {0x30, 0x02, 0x00, 0x00},
		"PUBLISH id 0":                  {0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00},
		"PUBLISH topic not UTF-8":       {0x30, 0x03, 0x00, 0x01, 0xff},
		"SUBSCRIBE bad flags":           {0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x01},
		"SUBSCRIBE no filter":           {0x82, 0x02, 0x00, 0x01},
		"SUBSCRIBE QoS 3":               {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x03},
		"SUBSCRIBE truncated":           {0x82, 0x05, 0x00, 0x01, 0x00, 0x05, 't'},
		"SUBSCRIBE bad filter":          {0x82, 0x07, 0x00, 0x01, 0x00, 0x02, '#', 'a', 0x01},
		"UNSUBSCRIBE trailing byte":     {0xa2, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x00},
		"PINGREQ with a body":           {0xc0, 0x01, 0x00},
		"PUBACK too long":               {0x40, 0x03, 0x00, 0x01, 0x00},
		"PUBREC from a client":          {0x50, 0x02, 0x00, 0x01},
		"remaining length of 5 bytes":   {0x30, 0xff, 0xff, 0xff, 0xff, 0x01},
		"truncated":                     {0x30, 0x10, 0x00, 0x01},
	} {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, b)
			c.connect(connectPacket("bad", 0), 0)
			if _, err := c.Write(after); err != nil {
				t.Fatal(err)
			}
			if name == "truncated" {
				_ = c.Conn.(*net.TCPConn).CloseWrite()
			}
			if !c.closed(5 * time.Second) {
				t.Fatal("the connection stayed open")
			}
		})
	}
	for name, first := range map[string][]byte{
		"PUBLISH before CONNECT":  {0x30, 0x03, 0x00, 0x01, 't'},
		"CONNECT of another name": {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00},
		"CONNECT reserved flag":   {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x00, 0x00, 0x00},
		"CONNECT will QoS 3":      {0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x1a, 0x00, 0x00, 0x00, 0x00},
		"CONNECT without a body":  {0x10, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, b)
			if _, err := c.Write(first); err != nil {
				t.Fatal(err)
			}
			if !c.closed(5 * time.Second) {
				t.Fatal("the connection stayed open")
			}
		})
	}
	// Still serving.
	pub := pahoClient(t, b, "pub")
	if err := pub.publish("still", "here", false); err != nil {
		t.Fatal(err)
	}
	sub.in.waitFor(t, "still", "here")
	if len(sub.in.msgs) != 1 {
		t.Errorf("malformed packets were delivered: %v", sub.in.msgs)
	}
}

// TestRunStopsEverything: when Run returns, no goroutine of the broker
// or its connections is left.
func TestRunStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	b, err := New(Options{Listen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	var conns []*rawClient
	for i := range 20 {
		c := dialRaw(t, b)
		c.connect(withWill(connectPacket(fmt.Sprint(i), 60), "w", "x"), 0)
		c.send(subscribePacket(1, "t/#"))
		c.next()
		conns = append(conns, c)
	}
	half := dialRaw(t, b) // connected, no CONNECT yet
	_ = half
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	for _, c := range conns {
		if !c.closed(time.Second) {
			t.Error("a connection survived Run")
		}
	}
	waitUntil(t, func() bool { return runtime.NumGoroutine() <= before })
}
