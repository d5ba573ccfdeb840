package broker

// Conformance tests written from the MQTT 3.1.1 specification (OASIS
// Standard, 29 October 2014; [MQTT-x.y.z-n] are its normative
// statements) for what the Eclipse Paho interoperability suite checks of
// a broker: basic publish and subscribe, retained messages, the will,
// keep-alive, the zero-length client id, $ topics, unsubscribe and
// overlapping subscriptions. Clients speak raw packets so that flags,
// QoS and identifiers can be checked.
//
// Out of the broker's scope, as docs/architecture.md says: persistent
// sessions (every session is clean, so the suite's redelivery and
// offline-queueing tests do not apply) and outbound QoS 2 (a
// subscription is granted at most QoS 1, which 3.8.4 allows).

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// collect reads n packets.
func (c *rawClient) collect(n int) []packets.ControlPacket {
	c.t.Helper()
	var got []packets.ControlPacket
	for range n {
		got = append(got, c.next())
	}
	return got
}

// quiet checks that nothing arrives for d.
func (c *rawClient) quiet(d time.Duration) {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	if pk, err := packets.ReadPacket(c); err == nil {
		c.t.Fatalf("got %v, want nothing", pk)
	}
	_ = c.SetReadDeadline(time.Time{})
}

// subscribeQoS sends one SUBSCRIBE and returns the SUBACK's codes.
func (c *rawClient) subscribeQoS(id uint16, filters []string, qos []byte) []byte {
	c.t.Helper()
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = id, filters, qos
	c.send(sp)
	ack, ok := c.next().(*packets.SubackPacket)
	if !ok {
		c.t.Fatal("no SUBACK")
	}
	if ack.MessageID != id { // [MQTT-3.8.4-2]
		c.t.Fatalf("SUBACK %d for SUBSCRIBE %d", ack.MessageID, id)
	}
	if len(ack.ReturnCodes) != len(filters) { // [MQTT-3.8.4-5]
		c.t.Fatalf("SUBACK with %d codes for %d filters", len(ack.ReturnCodes), len(filters))
	}
	return ack.ReturnCodes
}

// publishes returns the PUBLISH packets of pks as "topic payload qos
// retain", sorted, acknowledging each QoS 1 one.
func (c *rawClient) publishes(pks []packets.ControlPacket) []string {
	c.t.Helper()
	var out []string
	for _, pk := range pks {
		p, ok := pk.(*packets.PublishPacket)
		if !ok {
			continue
		}
		if p.Qos > 0 {
			if p.MessageID == 0 { // [MQTT-2.3.1-1]
				c.t.Fatalf("PUBLISH at QoS %d with identifier 0", p.Qos)
			}
			c.send(puback(p.MessageID))
		}
		retain := ""
		if p.Retain {
			retain = " retained"
		}
		out = append(out, p.TopicName+" "+string(p.Payload)+" q"+string('0'+p.Qos)+retain)
	}
	sort.Strings(out)
	return out
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func connectRaw(t *testing.T, b *Broker, id string) *rawClient {
	t.Helper()
	c := dialRaw(t, b)
	c.connect(connectPacket(id, 0), 0) // session present 0 [MQTT-3.2.2-1]
	return c
}

// TestConformanceBasic (Paho: test_basic): a client subscribes, then
// publishes at QoS 0, 1 and 2 to its own subscription; each PUBLISH is
// answered as its QoS requires and delivered at the lower of its QoS and
// the granted one.
func TestConformanceBasic(t *testing.T) {
	b := startBroker(t, Options{})
	c := connectRaw(t, b, "basic")
	// [MQTT-3.8.4-1,2,5]; granted QoS 1 for 2: the broker's outbound
	// scope, which 3.8.4 allows ("the Server might grant a lower QoS").
	if codes := c.subscribeQoS(10, []string{"TopicA"}, []byte{2}); !bytes.Equal(codes, []byte{1}) {
		t.Fatalf("SUBACK codes %v, want [1]", codes)
	}
	c.send(publishPacket("TopicA", "qos 0", 0, 0))
	c.send(publishPacket("TopicA", "qos 1", 1, 2))
	c.send(publishPacket("TopicA", "qos 2", 2, 3))
	pks := c.collect(5) // three deliveries, PUBACK 2, PUBREC 3
	var acked, pubrec bool
	for _, pk := range pks {
		switch p := pk.(type) {
		case *packets.PubackPacket: // [MQTT-3.3.4-1], [MQTT-2.3.1-6]
			acked = p.MessageID == 2
		case *packets.PubrecPacket: // [MQTT-4.3.3-2]
			pubrec = p.MessageID == 3
		}
	}
	if !acked || !pubrec {
		t.Fatalf("got %v, want PUBACK 2 and PUBREC 3 among them", pks)
	}
	// [MQTT-3.8.4-6]: delivered at the lower of the published and the
	// granted QoS; live messages without the retain flag [MQTT-3.3.1-9].
	sameStrings(t, "delivered", c.publishes(pks), []string{"TopicA qos 0 q0", "TopicA qos 1 q1", "TopicA qos 2 q1"})
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 3
	c.send(rel)
	if comp, ok := c.next().(*packets.PubcompPacket); !ok || comp.MessageID != 3 { // [MQTT-4.3.3-2]
		t.Fatalf("got %v, want PUBCOMP 3", comp)
	}
	// [MQTT-4.6.0-5]: one client's messages on one topic, at one QoS,
	// are delivered in the order published.
	for i := range 50 {
		c.send(publishPacket("TopicA", string(rune('A'+i%26))+strings.Repeat("!", i), 1, uint16(100+i)))
	}
	var order []string
	for len(order) < 50 {
		if p, ok := c.next().(*packets.PublishPacket); ok {
			order = append(order, string(p.Payload))
			c.send(puback(p.MessageID))
		}
	}
	for i, p := range order {
		if p != string(rune('A'+i%26))+strings.Repeat("!", i) {
			t.Fatalf("message %d delivered as %q: out of order", i, p)
		}
	}
}

// TestConformanceRetained (Paho: test_retained_messages): retained
// messages are kept per topic with their QoS, sent with the retain flag
// to new subscriptions, replaced by a later retained message only, and
// deleted by an empty one.
func TestConformanceRetained(t *testing.T) {
	b := startBroker(t, Options{})
	pub := connectRaw(t, b, "publisher")
	retain := func(topic, payload string, qos byte, id uint16) {
		p := publishPacket(topic, payload, qos, id)
		p.Retain = true
		pub.send(p)
		switch qos {
		case 1:
			pub.next()
		case 2:
			pub.next()
			rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
			rel.MessageID = id
			pub.send(rel)
			pub.next()
		}
	}
	// [MQTT-3.3.1-5]: stored with its QoS.
	retain("TopicA/B", "qos 0", 0, 0)
	retain("Topic/C", "qos 1", 1, 1)
	retain("TopicA/C", "qos 2", 2, 2)
	// A message without the retain flag neither replaces nor removes
	// one [MQTT-3.3.1-12].
	pub.send(publishPacket("Topic/C", "not kept", 1, 9))
	if ack, ok := pub.next().(*packets.PubackPacket); !ok || ack.MessageID != 9 {
		t.Fatalf("got %v, want PUBACK 9", ack)
	}

	sub := connectRaw(t, b, "subscriber")
	sub.subscribeQoS(1, []string{"+/+"}, []byte{2})
	// [MQTT-3.3.1-6], with the retain flag [MQTT-3.3.1-8], each at the
	// lower of its QoS and the granted one.
	want := []string{"TopicA/B qos 0 q0 retained", "Topic/C qos 1 q1 retained", "TopicA/C qos 2 q1 retained"}
	sameStrings(t, "retained on subscribe", sub.publishes(sub.collect(3)), want)
	// The same filter again replaces the subscription and sends the
	// retained messages again [MQTT-3.8.4-3].
	sub.subscribeQoS(2, []string{"+/+"}, []byte{1})
	sameStrings(t, "retained on subscribing again", sub.publishes(sub.collect(3)), want)

	// A live retained message goes out without the flag [MQTT-3.3.1-9];
	// a retained QoS 0 message replaces the one before [MQTT-3.3.1-7].
	retain("TopicA/B", "qos 0 again", 0, 0)
	sameStrings(t, "live", sub.publishes(sub.collect(1)), []string{"TopicA/B qos 0 again q0"})
	late := connectRaw(t, b, "late")
	late.subscribeQoS(1, []string{"TopicA/B"}, []byte{1})
	sameStrings(t, "replaced", late.publishes(late.collect(1)), []string{"TopicA/B qos 0 again q0 retained"})

	// An empty retained message is delivered as any other, and deletes
	// the topic's retained message [MQTT-3.3.1-10], [MQTT-3.3.1-11].
	retain("TopicA/B", "", 0, 0)
	retain("Topic/C", "", 1, 3)
	retain("TopicA/C", "", 2, 4)
	sameStrings(t, "empty", sub.publishes(sub.collect(3)), []string{"TopicA/B  q0", "Topic/C  q1", "TopicA/C  q1"})
	cleared := connectRaw(t, b, "cleared")
	cleared.subscribeQoS(1, []string{"#"}, []byte{1})
	cleared.quiet(300 * time.Millisecond)
}

// TestConformanceWill (Paho: test_will_message): the will is published
// when the connection closes without DISCONNECT, retained if asked, and
// not after DISCONNECT.
func TestConformanceWill(t *testing.T) {
	b := startBroker(t, Options{})
	watcher := connectRaw(t, b, "watcher")
	watcher.subscribeQoS(1, []string{"will/#"}, []byte{1})

	polite := dialRaw(t, b)
	cp := withWill(connectPacket("polite", 0), "will/polite", "not disconnected")
	polite.connect(cp, 0)
	polite.send(packets.NewControlPacket(packets.Disconnect)) // [MQTT-3.14.4-3]
	if !polite.closed(5 * time.Second) {
		t.Fatal("the connection stayed open after DISCONNECT")
	}

	abrupt := dialRaw(t, b)
	cp = withWill(connectPacket("abrupt", 0), "will/abrupt", "not disconnected")
	cp.WillRetain = true
	abrupt.connect(cp, 0)
	abrupt.Close() // [MQTT-3.1.2-8]
	sameStrings(t, "will", watcher.publishes(watcher.collect(1)), []string{"will/abrupt not disconnected q1"})
	watcher.quiet(300 * time.Millisecond)

	// Will Retain: published as a retained message [MQTT-3.1.2-17].
	late := connectRaw(t, b, "late")
	late.subscribeQoS(1, []string{"will/+"}, []byte{1})
	sameStrings(t, "retained will", late.publishes(late.collect(1)), []string{"will/abrupt not disconnected q1 retained"})
}

// TestConformanceKeepAlive (Paho: test_keepalive): a client silent for
// 1.5 × its keep-alive is disconnected as if the network had failed (its
// will published) [MQTT-3.1.2-24], not before its keep-alive is over;
// one that pings stays, each PINGREQ answered [MQTT-3.12.4-1].
func TestConformanceKeepAlive(t *testing.T) {
	b := startBroker(t, Options{})
	watcher := connectRaw(t, b, "watcher")
	watcher.subscribeQoS(1, []string{"will/#"}, []byte{1})

	pinger := dialRaw(t, b)
	pinger.connect(withWill(connectPacket("pinger", 1), "will/pinger", "gone"), 0)
	silent := dialRaw(t, b)
	silent.connect(withWill(connectPacket("silent", 2), "will/silent", "gone"), 0)
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_ = silent.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = packets.ReadPacket(silent)
		closed <- time.Since(start)
	}()
	for range 8 {
		time.Sleep(500 * time.Millisecond)
		pinger.send(packets.NewControlPacket(packets.Pingreq))
		if _, ok := pinger.next().(*packets.PingrespPacket); !ok {
			t.Fatal("no PINGRESP")
		}
	}
	took := <-closed
	if took < 2*time.Second || took > 8*time.Second {
		t.Errorf("a keep-alive of 2 s ended the connection after %s; want 3 s (1.5 ×)", took.Round(time.Millisecond))
	}
	sameStrings(t, "wills", watcher.publishes(watcher.collect(1)), []string{"will/silent gone q1"})
}

// TestConformanceZeroLengthClientID (Paho: test_zero_length_clientid):
// with a clean session, an empty client id is accepted and the client
// given a unique one [MQTT-3.1.3-6]; without, it is refused with CONNACK
// 0x02 and the connection closed [MQTT-3.1.3-8].
func TestConformanceZeroLengthClientID(t *testing.T) {
	b := startBroker(t, Options{})
	first := dialRaw(t, b)
	first.connect(connectPacket("", 0), 0)
	second := dialRaw(t, b)
	second.connect(connectPacket("", 0), 0)
	for _, c := range []*rawClient{first, second} { // neither took the other over
		c.send(packets.NewControlPacket(packets.Pingreq))
		if _, ok := c.next().(*packets.PingrespPacket); !ok {
			t.Fatal("no PINGRESP")
		}
	}
	if n := b.Clients(); n != 2 {
		t.Fatalf("Clients() = %d, want 2", n)
	}
	refused := dialRaw(t, b)
	cp := connectPacket("", 0)
	cp.CleanSession = false
	refused.connect(cp, packets.ErrRefusedIDRejected)
	if !refused.closed(5 * time.Second) {
		t.Fatal("the refused connection stayed open")
	}
}

// TestConformanceDollarTopics (Paho: test_dollar_topics): filters
// starting with a wildcard do not match topics starting with $
// [MQTT-4.7.2-1]; a filter starting with $ does.
func TestConformanceDollarTopics(t *testing.T) {
	b := startBroker(t, Options{})
	c := connectRaw(t, b, "dollar")
	c.subscribeQoS(1, []string{"#", "+/+", "+/B/#"}, []byte{1, 1, 1})
	c.send(publishPacket("$SYS/B", "sys", 1, 1))
	c.send(publishPacket("$test/B", "test", 0, 0))
	c.send(publishPacket("TopicA/B", "plain", 0, 0))
	// PUBACK 1, and "plain" three times (one per matching filter).
	sameStrings(t, "delivered", c.publishes(c.collect(4)), []string{"TopicA/B plain q0", "TopicA/B plain q0", "TopicA/B plain q0"})
	c.quiet(300 * time.Millisecond)
	c.subscribeQoS(2, []string{"$test/+"}, []byte{0})
	c.send(publishPacket("$test/B", "test", 0, 0))
	sameStrings(t, "$test/+", c.publishes(c.collect(1)), []string{"$test/B test q0"})
}

// TestConformanceUnsubscribe (Paho: test_unsubscribe): UNSUBSCRIBE
// removes the subscriptions whose filters it names exactly
// [MQTT-3.10.4-1], after which their messages stop [MQTT-3.10.4-2]; it
// is answered with UNSUBACK of its identifier [MQTT-3.10.4-4], also when
// it named none [MQTT-3.10.4-5].
func TestConformanceUnsubscribe(t *testing.T) {
	b := startBroker(t, Options{})
	c := connectRaw(t, b, "unsubscriber")
	c.subscribeQoS(1, []string{"TopicA/B"}, []byte{1})
	c.subscribeQoS(2, []string{"Topic/C"}, []byte{1})
	c.subscribeQoS(3, []string{"TopicA/#"}, []byte{1})
	up := packets.NewControlPacket(packets.Unsubscribe).(*packets.UnsubscribePacket)
	up.MessageID, up.Topics = 7, []string{"TopicA/B", "TopicA/+", "Topic/C"}
	c.send(up)
	if ack, ok := c.next().(*packets.UnsubackPacket); !ok || ack.MessageID != 7 {
		t.Fatalf("got %v, want UNSUBACK 7", ack)
	}
	up.MessageID, up.Topics = 8, []string{"never/subscribed"}
	c.send(up)
	if ack, ok := c.next().(*packets.UnsubackPacket); !ok || ack.MessageID != 8 {
		t.Fatalf("got %v, want UNSUBACK 8", ack)
	}
	pub := connectRaw(t, b, "publisher")
	for _, topic := range []string{"TopicA/B", "Topic/C", "TopicA/C"} {
		pub.send(publishPacket(topic, "m", 0, 0))
	}
	// "TopicA/+" was not a subscription: "TopicA/#" stays, and is the
	// only one left.
	sameStrings(t, "after UNSUBSCRIBE", c.publishes(c.collect(2)), []string{"TopicA/B m q0", "TopicA/C m q0"})
	c.quiet(300 * time.Millisecond)
}

// TestConformanceOverlappingSubscriptions (Paho:
// test_overlapping_subscriptions): a message matching two of a client's
// subscriptions must reach it at the highest QoS they grant
// [MQTT-3.3.5-1]; the specification allows one copy at that QoS, or a
// copy per matching subscription at its own QoS. This broker sends a
// copy per subscription.
func TestConformanceOverlappingSubscriptions(t *testing.T) {
	b := startBroker(t, Options{})
	c := connectRaw(t, b, "overlapping")
	// One SUBSCRIBE with two filters is two subscriptions, answered by
	// one SUBACK [MQTT-3.8.4-4].
	if codes := c.subscribeQoS(1, []string{"TopicA/#", "TopicA/+"}, []byte{0, 2}); !bytes.Equal(codes, []byte{0, 1}) {
		t.Fatalf("SUBACK codes %v, want [0 1]", codes)
	}
	pub := connectRaw(t, b, "publisher")
	pub.send(publishPacket("TopicA/B", "overlapping", 2, 1))
	got := c.publishes(c.collect(2))
	sameStrings(t, "copies", got, []string{"TopicA/B overlapping q0", "TopicA/B overlapping q1"})
	c.quiet(300 * time.Millisecond)
}
