package broker

// One client connection after CONNECT: its goroutine reads a packet, acts
// on it, and reads the next; what it sends goes through the connection's
// outbound queue (outbound.go).

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Limits on what one client may hold.
const (
	maxSubscriptions = 1024 // filters per client; more get 0x80
	maxAwaitingRel   = 64   // QoS 2 messages waiting for PUBREL
)

var (
	errDisconnect = errors.New("client sent DISCONNECT")
	errRefused    = errors.New("refused")
)

// will is a client's last will.
type will struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
}

// client is one connection.
type client struct {
	b      *Broker
	raw    net.Conn // the TCP connection: closed to end everything
	conn   net.Conn // raw, or the TLS connection over it
	remote string
	rd     packetReader

	// Set before the client is registered, then only read.
	id        string
	identity  Identity
	keepAlive time.Duration
	will      *will
	done      chan struct{} // closed once torn down

	// Owned by the connection's goroutine.
	subs       []*subscription
	awaitRel   []uint16 // QoS 2 packet ids delivered, waiting for PUBREL
	graceful   bool     // DISCONNECT received: no will
	registered bool

	// Outbound state, guarded by mu (outbound.go).
	mu      sync.Mutex
	queue   [][]byte
	queued  int     // bytes in queue
	flight  *flight // QoS 1 messages in flight or waiting; nil if none
	waits   *waits  // made for the first wait on the connection
	writing bool
	closed  bool
	reason  string // why the broker closed the connection
	writer  sync.WaitGroup
}

func newClient(b *Broker, nc net.Conn) *client {
	c := &client{b: b, raw: nc, conn: nc, remote: nc.RemoteAddr().String()}
	c.rd = packetReader{r: nc, pool: b.readPool, max: int(b.opts.MaxPacketSize)}
	return c
}

// serve reads and handles packets until the connection ends, then tears
// it down.
func (c *client) serve() {
	defer c.b.wg.Done()
	err := c.readLoop()
	c.teardown(err)
}

func (c *client) readLoop() error {
	for {
		if c.keepAlive > 0 {
			_ = c.conn.SetReadDeadline(time.Now().Add(c.keepAlive * 3 / 2))
		}
		pk, err := c.rd.read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("no packet in 1.5 × keep-alive (%s): %w", c.keepAlive, err)
		}
		if err != nil {
			return err
		}
		if err := c.handle(pk); err != nil {
			return err
		}
	}
}

// handle acts on one packet; an error closes the connection.
func (c *client) handle(pk packets.ControlPacket) error {
	switch p := pk.(type) {
	case *packets.PublishPacket:
		return c.onPublish(p)
	case *packets.PubackPacket:
		c.acked(p.MessageID)
	case *packets.PubrelPacket:
		c.awaitRel = slices.DeleteFunc(c.awaitRel, func(id uint16) bool { return id == p.MessageID })
		c.send(encode(&packets.PubcompPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Pubcomp}, MessageID: p.MessageID}))
	case *packets.SubscribePacket:
		c.onSubscribe(p)
	case *packets.UnsubscribePacket:
		c.onUnsubscribe(p)
	case *packets.PingreqPacket:
		c.send(encode(&packets.PingrespPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Pingresp}}))
	case *packets.DisconnectPacket:
		c.graceful = true
		return errDisconnect
	case *packets.ConnectPacket:
		return fmt.Errorf("%w: a second CONNECT", errMalformed)
	default: // PUBREC, PUBCOMP: the broker never sends QoS 2
		return fmt.Errorf("%w: unexpected %T", errMalformed, pk)
	}
	return nil
}

// onPublish routes a message, then acknowledges it: once every
// subscriber has it.
func (c *client) onPublish(p *packets.PublishPacket) error {
	if a := c.b.opts.Auth; a != nil && !a.MayPublish(c.identity, p.TopicName) {
		if p.Qos == 0 {
			c.b.log.Debug("publish refused", "client", c.id, "topic", p.TopicName)
			return nil
		}
		return fmt.Errorf("%w: publish to %q", errRefused, p.TopicName)
	}
	if p.Qos == 2 {
		if slices.Contains(c.awaitRel, p.MessageID) { // a resend: delivered already
			c.send(encode(&packets.PubrecPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Pubrec}, MessageID: p.MessageID}))
			return nil
		}
		if len(c.awaitRel) >= maxAwaitingRel {
			return fmt.Errorf("%w: over %d QoS 2 messages without PUBREL", errRefused, maxAwaitingRel)
		}
		c.awaitRel = append(c.awaitRel, p.MessageID)
	}
	c.b.router.publish(p.TopicName, p.Payload, p.Qos, p.Retain, origin{from: c})
	switch p.Qos {
	case 1:
		c.send(encode(&packets.PubackPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Puback}, MessageID: p.MessageID}))
	case 2:
		c.send(encode(&packets.PubrecPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Pubrec}, MessageID: p.MessageID}))
	}
	return nil
}

// onSubscribe adds the subscriptions Auth allows (granting at most QoS
// 1), answers, then sends the retained messages they match.
func (c *client) onSubscribe(p *packets.SubscribePacket) {
	codes := make([]byte, len(p.Topics))
	var added []*subscription
	for i, f := range p.Topics {
		if a := c.b.opts.Auth; a != nil && !a.MaySubscribe(c.identity, f) {
			c.b.log.Debug("subscription refused", "client", c.id, "filter", f)
			codes[i] = 0x80
			continue
		}
		qos := min(p.Qoss[i], 1)
		if j := slices.IndexFunc(c.subs, func(s *subscription) bool { return s.filter == f }); j >= 0 {
			c.b.router.setQoS(c.subs[j], qos) // a subscription replaces the same filter's
			added = append(added, c.subs[j])
		} else if len(c.subs) < maxSubscriptions {
			s := newSubscription(f, qos, c)
			c.b.router.add(s)
			c.subs = append(c.subs, s)
			added = append(added, s)
		} else {
			codes[i] = 0x80
			continue
		}
		codes[i] = qos
	}
	c.send(encode(&packets.SubackPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Suback}, MessageID: p.MessageID, ReturnCodes: codes}))
	for _, s := range added {
		c.b.router.sendRetained(s, origin{from: c})
	}
}

func (c *client) onUnsubscribe(p *packets.UnsubscribePacket) {
	for _, f := range p.Topics {
		if j := slices.IndexFunc(c.subs, func(s *subscription) bool { return s.filter == f }); j >= 0 {
			c.b.router.remove(c.subs[j])
			c.subs = slices.Delete(c.subs, j, j+1)
		}
	}
	c.send(encode(&packets.UnsubackPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Unsuback}, MessageID: p.MessageID}))
}

// teardown ends a registered connection: it stops the writer, removes the
// subscriptions and the registration, and publishes the will unless the
// client said DISCONNECT or the broker is stopping.
func (c *client) teardown(err error) {
	c.closeFor("")
	c.writer.Wait()
	for _, s := range c.subs {
		c.b.router.remove(s)
	}
	c.subs = nil
	c.rd.release()
	c.b.forget(c, c.registered)
	c.logClose(err)
	if w := c.will; w != nil && !c.graceful && !c.b.isStopping() {
		c.b.router.publish(w.topic, w.payload, w.qos, w.retain, origin{})
	}
	if c.done != nil {
		close(c.done)
	}
}

// logClose logs why a connection ended: at debug level for what clients
// do every day (disconnect, drop the link, time out), louder for what
// they should not.
func (c *client) logClose(err error) {
	c.mu.Lock()
	reason := c.reason
	c.mu.Unlock()
	log := c.b.log.With("client", c.id, "remote", c.remote)
	switch {
	case reason != "":
		log.Debug("connection closed", "reason", reason)
	case errors.Is(err, errMalformed), errors.Is(err, errTooLarge), errors.Is(err, errRefused):
		log.Warn("connection closed", "err", err)
	case isNetNoise(err), errors.Is(err, errDisconnect):
		log.Debug("connection closed", "err", err)
	default:
		log.Info("connection closed", "err", err)
	}
}

// isNetNoise reports whether err is how connections usually end: EOF, a
// reset, a closed connection, a deadline.
func isNetNoise(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrDeadlineExceeded)
}
