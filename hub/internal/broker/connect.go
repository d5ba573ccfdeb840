package broker

// Opening a connection: the TLS handshake, CONNECT, authentication, the
// session takeover, CONNACK. This runs on a goroutine of its own that
// ends once the client is admitted, and the connection's reader starts
// afresh: the handshake's deep stack (certificate verification) is not
// carried by the goroutine that then waits for packets for days.
//
// Every session is clean: a client asking for a persistent one (clean
// session 0) is served as if it had asked for a clean one and told so
// with session present 0, as MQTT 3.1.1 allows (3.2.2.2).

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// open admits a new connection, then hands it to its reader.
func (b *Broker) open(c *client) {
	defer b.wg.Done()
	code, err := c.connect()
	if err == nil {
		b.wg.Add(1)
		go c.serve()
		return
	}
	if code != packets.Accepted {
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.conn.Write(encode(&packets.ConnackPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connack}, ReturnCode: code}))
	}
	c.closeFor("")
	c.rd.release()
	b.forget(c, false)
	log := b.log.With("remote", c.remote, "client", c.id)
	switch {
	case isNetNoise(err), errors.Is(err, errRefused):
		log.Debug("connection refused", "err", err)
	default:
		log.Info("connection refused", "err", err)
	}
}

// connect runs the handshake and CONNECT of a new connection and
// registers it. On an error, code is the CONNACK return code to answer
// with (Accepted: close without one).
func (c *client) connect() (code byte, err error) {
	b := c.b
	if err := c.raw.SetDeadline(time.Now().Add(b.opts.ConnectTimeout)); err != nil {
		return packets.Accepted, err
	}
	var state *tls.ConnectionState
	if b.opts.TLS != nil {
		tc := tls.Server(c.raw, b.opts.TLS)
		if err := tc.Handshake(); err != nil {
			return packets.Accepted, fmt.Errorf("TLS handshake: %w", err)
		}
		cs := tc.ConnectionState()
		state, c.conn, c.rd.r = &cs, tc, tc
	}
	pk, err := c.rd.read()
	if errors.Is(err, errProtocolVersion) {
		return packets.ErrRefusedBadProtocolVersion, err
	}
	if err != nil {
		return packets.Accepted, err
	}
	cp, ok := pk.(*packets.ConnectPacket)
	if !ok {
		return packets.Accepted, fmt.Errorf("%w: %T before CONNECT", errMalformed, pk)
	}
	c.id = cp.ClientIdentifier
	if code := cp.Validate(); code != packets.Accepted {
		if code == packets.ErrRefusedIDRejected {
			return code, fmt.Errorf("%w: empty client id without clean session", errRefused)
		}
		return packets.Accepted, fmt.Errorf("%w: CONNECT: %s", errMalformed, packets.ConnackReturnCodes[code])
	}
	if cp.WillQos > 2 || !cp.WillFlag && (cp.WillQos != 0 || cp.WillRetain) {
		return packets.Accepted, fmt.Errorf("%w: CONNECT will flags", errMalformed)
	}
	if c.id == "" {
		c.id = "auto-" + rand.Text()
	}
	info := ConnectInfo{ClientID: c.id, Remote: c.remote, TLS: state}
	if cp.WillFlag {
		info.WillTopic = cp.WillTopic
		c.will = &will{topic: cp.WillTopic, payload: cp.WillMessage, qos: cp.WillQos, retain: cp.WillRetain}
	}
	if b.opts.Auth != nil {
		if c.identity, err = b.opts.Auth.Authenticate(info); err != nil {
			return packets.ErrRefusedNotAuthorised, fmt.Errorf("%w: %v", errRefused, err)
		}
	} else if state != nil && len(state.VerifiedChains) > 0 {
		c.identity.Name = state.PeerCertificates[0].Subject.CommonName
	}
	c.keepAlive = time.Duration(cp.Keepalive) * time.Second
	if err := c.raw.SetDeadline(time.Time{}); err != nil {
		return packets.Accepted, err
	}
	b.register(c)
	c.registered = true
	c.send(encode(&packets.ConnackPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connack}}))
	return packets.Accepted, nil
}
