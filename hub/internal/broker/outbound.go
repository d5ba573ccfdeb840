package broker

// What the broker sends a client waits in a small queue of encoded
// packets. A writer goroutine exists only while there is something to
// write: the first packet queued starts one, and it ends when it finds
// nothing more, so an idle connection has none. Each write has a deadline
// (Options.WriteTimeout).
//
// A full queue (Options.WritesPending packets, or maxQueuedBytes) holds
// back whoever would add to it, until the writer takes the queue: the
// client's own reader (so the broker stops reading a client while its
// answers wait), the reader of a client publishing to it (so a publisher
// goes at the pace of its slowest subscriber), or the hub's inline
// session. That is at most one write, which the write deadline bounds: a
// client whose socket takes nothing for that long is disconnected, and
// whoever waited for it goes on.
//
// QoS 1: at most WritesPending messages are in flight to a client (sent,
// not acknowledged). Later ones wait, unencoded, in a backlog that the
// writer drains as PUBACKs come in; a publisher whose message would take
// the backlog over WritesPending messages or maxQueuedBytes waits, as
// above. A client that acknowledges nothing for WriteTimeout while
// messages wait for it is disconnected. What a client's own reader hands
// it (the retained messages of its SUBSCRIBE, its publishes to its own
// subscriptions) joins the backlog without waiting, since only that
// reader reads the PUBACKs that would make room: retained messages
// without a bound (they are the retained store's), its own publishes up
// to maxQueuedBytes, over which it is disconnected.
//
// So a message is never skipped for a connected client: one that cannot
// keep up is disconnected, and gets the latest retained state when it
// reconnects, where skipping a snapshot would leave an agent on an old
// one with nothing to tell it.

import (
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// maxQueuedBytes is the most one client's queue, and its backlog, may
// hold.
func (b *Broker) maxQueuedBytes() int { return max(1<<20, 2*int(b.opts.MaxPacketSize)) }

// message is an application message on its way to a subscriber.
type message struct {
	topic    string
	payload  []byte
	qos      byte // as delivered: the lower of the published and the granted QoS
	retained bool // sent because of a new subscription
}

// origin is who hands a message over, and so who waits while its
// subscriber has no room: a client's reader (from), the hub's inline
// session (done, its context's), or the broker itself (neither: a will).
type origin struct {
	from *client
	done <-chan struct{}
}

// stop returns what ends a wait for room: the inline session's context
// ending, or (lazy: ask from.stopChan when about to wait) the publishing
// connection closing.
func (o origin) stop() (stop <-chan struct{}, lazy bool) {
	return o.done, o.from != nil
}

// flight is a client's QoS 1 state, there while messages are in flight
// to it (sent, not acknowledged) or wait for room among them.
type flight struct {
	unacked []uint16 // identifiers in flight
	nextID  uint16
	held    []held // the backlog
	bytes   int    // what held counts against maxQueuedBytes
	// While the backlog is not empty, timer disconnects the client if
	// no PUBACK comes for WriteTimeout after acked (ackOverdue).
	timer *time.Timer
	acked time.Time
}

type held struct {
	message
	size int // against maxQueuedBytes: 0 for a retained message sent on SUBSCRIBE
}

// outgoing is a QoS 1 message let out of the backlog, with its packet
// identifier.
type outgoing struct {
	message
	id uint16
}

// waits are the channels of whoever waits on a connection, made when
// first needed.
type waits struct {
	room chan struct{} // closed when the writer takes what waits; nil if no one waits
	stop chan struct{} // closed when the connection closes
}

// closedChan is a closed channel: stopChan's answer once closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *client) waitsLocked() *waits {
	if c.waits == nil {
		c.waits = &waits{}
	}
	return c.waits
}

// stopChan returns a channel closed when the connection closes.
func (c *client) stopChan() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return closedChan
	}
	w := c.waitsLocked()
	if w.stop == nil {
		w.stop = make(chan struct{})
	}
	return w.stop
}

// waitLocked waits, releasing c.mu meanwhile, until the writer takes
// what is queued, c closes, or stop closes; it reports false for stop.
func (c *client) waitLocked(stop <-chan struct{}) bool {
	w := c.waitsLocked()
	if w.room == nil {
		w.room = make(chan struct{})
	}
	room := w.room
	c.mu.Unlock()
	defer c.mu.Lock()
	select {
	case <-room:
		return true
	case <-stop:
		return false
	}
}

// wakeLocked wakes whoever waits for room.
func (c *client) wakeLocked() {
	if w := c.waits; w != nil && w.room != nil {
		close(w.room)
		w.room = nil
	}
}

// deliver sends a message to the client (sink), if it may receive it,
// waiting for room if need be (see the top of this file).
func (c *client) deliver(m message, o origin) {
	if a := c.b.opts.Auth; a != nil && !a.MaySubscribe(c.identity, m.topic) {
		return
	}
	if m.qos == 0 {
		c.enqueue(encodePublish(m, 0), o)
		return
	}
	own := o.from == c
	size := len(m.topic) + len(m.payload)
	if own && m.retained {
		size = 0
	}
	limit, window := c.b.maxQueuedBytes(), int(c.b.opts.WritesPending)
	stop, lazy := o.stop()
	c.mu.Lock()
	for !c.closed {
		f := c.flight
		if (f == nil || len(f.held) == 0 && len(f.unacked) < window) && c.roomLocked(len(m.topic)+len(m.payload)) {
			c.appendLocked(encodePublish(m, c.newIDLocked()))
			break
		}
		if own && f != nil && f.bytes+size > limit {
			c.mu.Unlock()
			c.closeSlow(fmt.Sprintf("the QoS 1 messages it published to its own subscriptions are unacknowledged, over %d bytes", limit))
			return
		}
		if own || f == nil || len(f.held) < window && (f.bytes == 0 || f.bytes+size <= limit) {
			c.holdLocked(m, size)
			break
		}
		if lazy {
			c.mu.Unlock() // never hold c.mu while taking the publisher's
			stop, lazy = o.from.stopChan(), false
			c.mu.Lock()
			continue
		}
		if !c.waitLocked(stop) {
			break
		}
	}
	c.mu.Unlock()
}

// send queues an encoded packet from the client's own reader, waiting
// while the queue is full.
func (c *client) send(pkt []byte) { c.enqueue(pkt, origin{from: c}) }

// enqueue queues an encoded packet, waiting while the queue is full; it
// does nothing on a closed connection.
func (c *client) enqueue(pkt []byte, o origin) {
	stop, lazy := o.stop()
	if o.from == c {
		lazy = false // closing c wakes its own reader
	}
	c.mu.Lock()
	for !c.closed {
		if c.roomLocked(len(pkt)) {
			c.appendLocked(pkt)
			break
		}
		if lazy {
			c.mu.Unlock()
			stop, lazy = o.from.stopChan(), false
			c.mu.Lock()
			continue
		}
		if !c.waitLocked(stop) {
			break
		}
	}
	c.mu.Unlock()
}

// roomLocked reports whether the queue takes n more bytes; an empty one
// takes anything.
func (c *client) roomLocked(n int) bool {
	return len(c.queue) == 0 || len(c.queue) < int(c.b.opts.WritesPending) && c.queued+n <= c.b.maxQueuedBytes()
}

// appendLocked queues an encoded packet and starts the writer.
func (c *client) appendLocked(pkt []byte) {
	c.queue = append(c.queue, pkt)
	c.queued += len(pkt)
	c.startWriterLocked()
}

func (c *client) startWriterLocked() {
	if !c.writing {
		c.writing = true
		c.writer.Add(1)
		go c.flush()
	}
}

func (c *client) flightLocked() *flight {
	if c.flight == nil {
		c.flight = &flight{}
	}
	return c.flight
}

// holdLocked adds a QoS 1 message to the backlog and starts the writer,
// which sends it as soon as the window has room. A backlog starting
// starts the watch for acknowledgements.
func (c *client) holdLocked(m message, size int) {
	f := c.flightLocked()
	if len(f.held) == 0 {
		f.acked = time.Now()
		if f.timer == nil {
			f.timer = time.AfterFunc(c.b.opts.WriteTimeout, func() { c.ackOverdue(f) })
		} else {
			f.timer.Reset(c.b.opts.WriteTimeout)
		}
	}
	f.held = append(f.held, held{message: m, size: size})
	f.bytes += size
	c.startWriterLocked()
}

// newIDLocked assigns a packet identifier not in flight (MQTT-2.3.1-2)
// and counts the message in flight.
func (c *client) newIDLocked() uint16 {
	f := c.flightLocked()
	for {
		if f.nextID++; f.nextID == 0 {
			f.nextID = 1
		}
		if !slices.Contains(f.unacked, f.nextID) {
			f.unacked = append(f.unacked, f.nextID)
			return f.nextID
		}
	}
}

// acked takes a PUBACK: the message leaves the window, and the writer
// sends what waits for it. A PUBACK for no message in flight is ignored.
func (c *client) acked(id uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.flight
	if f == nil || c.closed {
		return
	}
	i := slices.Index(f.unacked, id)
	if i < 0 {
		return
	}
	f.unacked = slices.Delete(f.unacked, i, i+1)
	switch {
	case len(f.held) > 0:
		f.acked = time.Now()
		c.startWriterLocked()
	case len(f.unacked) == 0:
		c.flight = nil // its timer is stopped: the backlog is empty
	}
}

// ackOverdue disconnects a client whose window stayed full, with
// messages waiting, for WriteTimeout since its last PUBACK.
func (c *client) ackOverdue(f *flight) {
	c.mu.Lock()
	if c.closed || c.flight != f || len(f.held) == 0 {
		c.mu.Unlock()
		return
	}
	wait := c.b.opts.WriteTimeout - time.Since(f.acked)
	if wait <= 0 && len(f.unacked) < int(c.b.opts.WritesPending) {
		// Not waiting for acknowledgements: the writer is (the write
		// deadline watches it).
		f.acked, wait = time.Now(), c.b.opts.WriteTimeout
	}
	if wait > 0 {
		f.timer.Reset(wait)
		c.mu.Unlock()
		return
	}
	why := fmt.Sprintf("no PUBACK for %s, %d QoS 1 messages in flight and %d waiting", c.b.opts.WriteTimeout, len(f.unacked), len(f.held))
	c.mu.Unlock()
	c.closeSlow(why)
}

// releaseLocked takes from the backlog what the window has room for,
// giving each message its packet identifier.
func (c *client) releaseLocked() []outgoing {
	f := c.flight
	if f == nil {
		return nil
	}
	n := min(len(f.held), int(c.b.opts.WritesPending)-len(f.unacked))
	if n <= 0 {
		return nil
	}
	out := make([]outgoing, n)
	for i, m := range f.held[:n] {
		f.bytes -= m.size
		out[i] = outgoing{message: m.message, id: c.newIDLocked()}
	}
	clear(f.held[:n])
	if f.held = f.held[n:]; len(f.held) == 0 {
		f.held = nil
		f.timer.Stop()
	}
	return out
}

// flush writes until nothing is left to write.
func (c *client) flush() {
	defer c.writer.Done()
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = nil, 0
		released := c.releaseLocked()
		if c.closed || len(batch) == 0 && len(released) == 0 {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.wakeLocked()
		c.mu.Unlock()
		for _, m := range released {
			batch = append(batch, encodePublish(m.message, m.id))
		}
		if err := c.write(batch); err != nil {
			c.closeFor("write: " + err.Error())
		}
	}
}

// write writes packets with one deadline; over TLS, as one record where
// they fit.
func (c *client) write(batch [][]byte) error {
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.b.opts.WriteTimeout)); err != nil {
		return err
	}
	if len(batch) == 1 {
		_, err := c.conn.Write(batch[0])
		return err
	}
	if _, ok := c.conn.(*tls.Conn); ok {
		_, err := c.conn.Write(slices.Concat(batch...))
		return err
	}
	bufs := net.Buffers(batch)
	_, err := bufs.WriteTo(c.conn)
	return err
}

// encodePublish encodes a PUBLISH, with packet identifier id at QoS 1.
func encodePublish(m message, id uint16) []byte {
	return encode(&packets.PublishPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Publish, Qos: m.qos, Retain: m.retained}, TopicName: m.topic, Payload: m.payload, MessageID: id})
}

// closeSlow closes the connection of a client that does not read.
func (c *client) closeSlow(why string) {
	if c.closeFor(why) {
		c.b.log.Warn("closing the connection of a client that does not read", "client", c.id, "remote", c.remote, "reason", why)
	}
}

// closeFor closes the connection (the reader then tears it down), noting
// why, and wakes whoever waits on it; it reports whether the connection
// was open until now.
func (c *client) closeFor(reason string) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed, c.reason, c.queue, c.queued = true, reason, nil, 0
	if f := c.flight; f != nil && f.timer != nil {
		f.timer.Stop()
	}
	c.flight = nil
	c.wakeLocked()
	if w := c.waits; w != nil && w.stop != nil {
		close(w.stop)
	}
	c.mu.Unlock()
	_ = c.raw.Close()
	return true
}
