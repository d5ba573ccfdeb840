package broker

// Back-pressure (outbound.go): a full queue or QoS 1 backlog holds back
// whoever adds to it, and only a client whose socket takes nothing, or
// that acknowledges nothing, for the write timeout is disconnected.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// subscribeRaw subscribes a raw client to filter at QoS 1.
func (c *rawClient) subscribeRaw(filter string) {
	c.t.Helper()
	c.send(subscribePacket(1, filter))
	if _, ok := c.next().(*packets.SubackPacket); !ok {
		c.t.Fatal("no SUBACK")
	}
}

// readPublish reads the next packet, which must be a PUBLISH.
func (c *rawClient) readPublish() *packets.PublishPacket {
	c.t.Helper()
	pk := c.next()
	p, ok := pk.(*packets.PublishPacket)
	if !ok {
		c.t.Fatalf("got %v, want PUBLISH", pk)
	}
	return p
}

func puback(id uint16) *packets.PubackPacket {
	a := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
	a.MessageID = id
	return a
}

// TestSlowClientClosed: a publisher's burst to two subscribers, one that
// reads and one that does not (at QoS 0: nothing to acknowledge), reaches
// the one that reads whole; the one that does not is disconnected once
// its socket has taken nothing for the write timeout, and the publisher,
// held back meanwhile, goes on.
func TestSlowClientClosed(t *testing.T) {
	const n = 64 // 32 MiB: more than the sockets buffer
	b := startBroker(t, Options{WritesPending: 8, WriteTimeout: time.Second})
	slow := dialRaw(t, b)
	slow.connect(connectPacket("slow", 0), 0)
	sp := subscribePacket(1, "flood")
	sp.Qoss[0] = 0
	slow.send(sp)
	if _, ok := slow.next().(*packets.SubackPacket); !ok {
		t.Fatal("no SUBACK")
	}
	got := newCounter()
	reader := pahoClient(t, b, "reader")
	if tok := reader.Subscribe("flood", 1, func(_ paho.Client, m paho.Message) { got.add(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	pub := dialRaw(t, b)
	pub.connect(connectPacket("pub", 0), 0)
	pad := bytes.Repeat([]byte("x"), 512<<10)
	wrote := make(chan error, 1)
	go func() {
		for i := range n {
			p := publishPacket("flood", "", 1, uint16(i+1))
			p.Payload = append([]byte(strconv.Itoa(i)+" "), pad...)
			if err := p.Write(pub); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	for i := range n {
		_ = pub.SetReadDeadline(time.Now().Add(20 * time.Second))
		pk, err := packets.ReadPacket(pub)
		if err != nil {
			t.Fatalf("PUBACK %d: %v", i+1, err)
		}
		if a, ok := pk.(*packets.PubackPacket); !ok || a.MessageID != uint16(i+1) {
			t.Fatalf("got %v, want PUBACK %d", pk, i+1)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if received, err := got.wait(n, reader.lost); err != nil {
		t.Fatalf("the subscriber that reads received %d of %d: %v", received, n, err)
	}
	got.inOrder(t, n)
	if !slow.closed(10 * time.Second) {
		t.Fatal("a client that does not read is still connected")
	}
}

// TestQoS1Window: a subscriber that reads but acknowledges late has at
// most WritesPending messages in flight, each with an identifier not in
// use, and receives every message in order; the publisher is held back
// rather than anyone disconnected.
func TestQoS1Window(t *testing.T) {
	const window, n = 16, 200
	b := startBroker(t, Options{WritesPending: window})
	sub := dialRaw(t, b)
	sub.connect(connectPacket("sub", 0), 0)
	sub.subscribeRaw("w")
	pub := pahoClient(t, b, "pub")
	toks := make([]paho.Token, n)
	for i := range toks {
		toks[i] = pub.Publish("w", 1, false, strconv.Itoa(i))
	}
	var inFlight []uint16
	for i := range n {
		if len(inFlight) == window && i < 3*window {
			// The window is full: nothing more comes until a PUBACK.
			_ = sub.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if pk, err := packets.ReadPacket(sub); err == nil {
				t.Fatalf("got %v with %d messages in flight", pk, window)
			}
		}
		if len(inFlight) == window {
			for _, id := range inFlight[:window/2] {
				sub.send(puback(id))
			}
			inFlight = inFlight[window/2:]
		}
		p := sub.readPublish()
		if p.Qos != 1 || p.MessageID == 0 || slices.Contains(inFlight, p.MessageID) {
			t.Fatalf("message %d: QoS %d, identifier %d, in flight %v", i, p.Qos, p.MessageID, inFlight)
		}
		if string(p.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, p.Payload)
		}
		inFlight = append(inFlight, p.MessageID)
	}
	for _, id := range inFlight {
		sub.send(puback(id))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	sub.send(packets.NewControlPacket(packets.Pingreq))
	if _, ok := sub.next().(*packets.PingrespPacket); !ok {
		t.Fatal("no PINGRESP after the burst")
	}
}

// TestAckDeadline: a subscriber that reads but never acknowledges gets
// WritesPending messages, then nothing, and is disconnected after the
// write timeout; the publisher is never held back for longer.
func TestAckDeadline(t *testing.T) {
	const window = 8
	b := startBroker(t, Options{WritesPending: window, WriteTimeout: 500 * time.Millisecond})
	sub := dialRaw(t, b)
	sub.connect(connectPacket("sub", 0), 0)
	sub.subscribeRaw("w")
	pub := pahoClient(t, b, "pub")
	var toks []paho.Token
	for i := range 3 * window {
		toks = append(toks, pub.Publish("w", 1, false, strconv.Itoa(i)))
	}
	for i := range window {
		if p := sub.readPublish(); string(p.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, p.Payload)
		}
	}
	if !sub.closed(10 * time.Second) {
		t.Fatal("a subscriber that acknowledges nothing is still connected")
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
}

// TestOwnPublishesBeyondWindow: a client publishing a burst of QoS 1
// messages to its own subscription gets them all, though only its
// reader, busy with the burst, reads the PUBACKs that make room.
func TestOwnPublishesBeyondWindow(t *testing.T) {
	const n = 2000
	b := startBroker(t, Options{})
	got := newCounter()
	c := pahoClient(t, b, "self")
	if tok := c.Subscribe("self", 1, func(_ paho.Client, m paho.Message) { got.add(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	toks := make([]paho.Token, n)
	for i := range toks {
		toks[i] = c.Publish("self", 1, false, strconv.Itoa(i))
	}
	if received, err := got.wait(n, c.lost); err != nil {
		t.Fatalf("received %d of %d of its own messages: %v", received, n, err)
	}
	got.inOrder(t, n)
	for i, tok := range toks {
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
}

// TestRetainedBeyondWindow: one SUBSCRIBE matching more retained
// messages than the window gets them all.
func TestRetainedBeyondWindow(t *testing.T) {
	const n = 3000
	b := startBroker(t, Options{})
	hub := b.Session(nil)
	for i := range n {
		if err := hub.Publish(context.Background(), fmt.Sprintf("r/%04d", i), 1, true, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := newCounter()
	c := pahoClient(t, b, "all")
	if tok := c.Subscribe("r/#", 1, func(_ paho.Client, m paho.Message) { got.add(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
	if received, err := got.wait(n, c.lost); err != nil {
		t.Fatalf("received %d of %d retained messages: %v", received, n, err)
	}
}

// TestTakeoverOfAHeldPublisher: a publisher held back by a subscriber
// that does not read is let go at once when its client id connects
// again, rather than after the subscriber's write timeout.
func TestTakeoverOfAHeldPublisher(t *testing.T) {
	b := startBroker(t, Options{WritesPending: 4, WriteTimeout: time.Minute, ConnectTimeout: time.Minute})
	slow := dialRaw(t, b)
	slow.connect(connectPacket("slow", 0), 0)
	slow.subscribeRaw("flood")
	pub := dialRaw(t, b)
	pub.connect(connectPacket("pub", 0), 0)
	// QoS 0, 1 MiB each, until the publisher is held back: its PINGREQ
	// goes unanswered.
	payload := string(bytes.Repeat([]byte("x"), 1<<20-64))
	go func() {
		for range 64 {
			if publishPacket("flood", payload, 0, 0).Write(pub) != nil {
				return
			}
		}
		_ = packets.NewControlPacket(packets.Pingreq).Write(pub)
	}()
	_ = pub.SetReadDeadline(time.Now().Add(2 * time.Second))
	if pk, err := packets.ReadPacket(pub); err == nil {
		t.Fatalf("got %v: the publisher was not held back", pk)
	}
	again := dialRaw(t, b)
	again.send(connectPacket("pub", 0))
	_ = again.SetReadDeadline(time.Now().Add(10 * time.Second))
	pk, err := packets.ReadPacket(again)
	if err != nil {
		t.Fatalf("no CONNACK for the client id of a held publisher: %v", err)
	}
	if ack, ok := pk.(*packets.ConnackPacket); !ok || ack.ReturnCode != 0 {
		t.Fatalf("got %v, want CONNACK 0", pk)
	}
}

// TestInlinePublishHeldBack: the hub's inline session publishing to a
// client that does not read waits, and gives up when its context ends.
func TestInlinePublishHeldBack(t *testing.T) {
	b := startBroker(t, Options{WritesPending: 4, WriteTimeout: time.Minute})
	slow := dialRaw(t, b)
	slow.connect(connectPacket("slow", 0), 0)
	slow.subscribeRaw("flood")
	hub := b.Session(nil)
	ctx, cancel := context.WithCancel(context.Background())
	payload := bytes.Repeat([]byte("x"), 1<<20)
	done := make(chan error, 1)
	go func() {
		for range 64 {
			if err := hub.Publish(ctx, "flood", 1, false, payload); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		t.Fatalf("64 MiB published to a client that does not read: %v", err)
	case <-time.After(2 * time.Second):
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Publish after its context ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Publish went on waiting after its context ended")
	}
}
