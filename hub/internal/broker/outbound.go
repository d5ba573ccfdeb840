package broker

// What the broker sends a client waits in a small queue of encoded
// packets. A writer goroutine exists only while the queue is not empty:
// the first packet queued starts one, and it ends when it finds the queue
// empty, so an idle connection has none. Each write has a deadline.
//
// A client that does not read is disconnected rather than skipped: once
// Options.WritesPending packets wait for it, or as many QoS 1 messages
// are unacknowledged, or its queue holds more than maxQueuedBytes, its
// connection is closed. Dropping its messages instead would leave an
// agent on an old desired snapshot with nothing to tell it; reconnecting,
// it subscribes again and gets the latest retained snapshot.

import (
	"crypto/tls"
	"net"
	"slices"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// maxQueuedBytes is the most one client's queue may hold.
func (b *Broker) maxQueuedBytes() int { return max(1<<20, 2*int(b.opts.MaxPacketSize)) }

// deliver sends a message to the client (sink), if it may receive it.
func (c *client) deliver(topic string, payload []byte, qos byte, retained bool) {
	if a := c.b.opts.Auth; a != nil && !a.MaySubscribe(c.identity, topic) {
		return
	}
	pk := &packets.PublishPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Publish, Qos: qos, Retain: retained}, TopicName: topic, Payload: payload}
	if qos > 0 {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if c.inflight >= int(c.b.opts.WritesPending) {
			c.mu.Unlock()
			c.closeSlow("QoS 1 messages unacknowledged")
			return
		}
		c.inflight++
		if c.nextID++; c.nextID == 0 {
			c.nextID = 1
		}
		pk.MessageID = c.nextID
		c.mu.Unlock()
	}
	c.send(encode(pk))
}

// acked notes a PUBACK.
func (c *client) acked() {
	c.mu.Lock()
	c.inflight = max(0, c.inflight-1)
	c.mu.Unlock()
}

// send queues an encoded packet, starting the writer if none runs; it
// does nothing on a closed connection.
func (c *client) send(pkt []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= int(c.b.opts.WritesPending) || c.queued+len(pkt) > c.b.maxQueuedBytes() {
		c.mu.Unlock()
		c.closeSlow("write queue full")
		return
	}
	c.queue = append(c.queue, pkt)
	c.queued += len(pkt)
	if !c.writing {
		c.writing = true
		c.writer.Add(1)
		go c.flush()
	}
	c.mu.Unlock()
}

// flush writes until the queue is empty.
func (c *client) flush() {
	defer c.writer.Done()
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue, c.queued = nil, 0
		if len(batch) == 0 || c.closed {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
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

// closeSlow closes the connection of a client that does not read.
func (c *client) closeSlow(why string) {
	if c.closeFor(why) {
		c.b.log.Warn("closing the connection of a client that does not read", "client", c.id, "remote", c.remote, "reason", why)
	}
}

// closeFor closes the connection (the reader then tears it down), noting
// why; it reports whether the connection was open until now.
func (c *client) closeFor(reason string) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.closed, c.reason, c.queue, c.queued = true, reason, nil, 0
	c.mu.Unlock()
	_ = c.raw.Close()
	return true
}
