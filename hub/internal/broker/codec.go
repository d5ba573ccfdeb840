package broker

// Reading packets. paho's codec (github.com/eclipse/paho.mqtt.golang/packets)
// decodes them, but only after this file has read the fixed header and the
// remaining length itself, refused a packet over the size limit, checked
// the header's flags, and read the body as it arrives (a peer announcing 4
// MiB and sending 10 bytes costs 10 bytes, not 4 MiB). paho's decoder
// trusts what it is given (a short field is padded with zeros, trailing
// bytes are ignored), so every decoded packet is checked to be exactly as
// long as its fields say, and its strings and topics well formed.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

var (
	// errMalformed marks a packet that breaks MQTT 3.1.1: the connection
	// is closed.
	errMalformed = errors.New("malformed packet")
	// errTooLarge marks a packet over Options.MaxPacketSize.
	errTooLarge = errors.New("packet too large")
	// errProtocolVersion marks a CONNECT of an MQTT version other than
	// 3.1.1 (level 4) and 3.1 (level 3): answered with CONNACK 0x01.
	errProtocolVersion = errors.New("unacceptable protocol version")
)

// readBufferSize is the size of the pooled read buffers: an agent's
// heartbeat, status or metrics message fits in one.
const readBufferSize = 4096

// newReadPool returns the pool of read buffers a broker's connections
// share.
func newReadPool() *sync.Pool {
	return &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
}

// packetReader reads packets from one connection. Between packets it holds
// no buffer: it waits for a packet's first byte with a one-byte read, then
// borrows a buffered reader from the pool for the rest and gives it back
// as soon as nothing is left in it.
type packetReader struct {
	r    io.Reader
	pool *sync.Pool
	max  int // largest packet, all of it
	br   *bufio.Reader
	one  [1]byte
}

// read reads and decodes the next packet.
func (p *packetReader) read() (packets.ControlPacket, error) {
	var first byte
	if p.br != nil && p.br.Buffered() > 0 {
		first, _ = p.br.ReadByte()
	} else {
		p.release()
		if _, err := io.ReadFull(p.r, p.one[:]); err != nil {
			return nil, err
		}
		first = p.one[0]
		p.br = p.pool.Get().(*bufio.Reader)
		p.br.Reset(p.r)
	}
	n, lenBytes, err := readLength(p.br)
	if err != nil {
		return nil, err
	}
	if size := 1 + lenBytes + n; size > p.max {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errTooLarge, size, p.max)
	}
	if err := checkFlags(first, n); err != nil {
		return nil, err
	}
	body, err := readBody(p.br, n)
	if err != nil {
		return nil, err
	}
	if p.br.Buffered() == 0 {
		p.release()
	}
	return decode(first, body)
}

// release gives the buffered reader back to the pool.
func (p *packetReader) release() {
	if p.br != nil {
		p.br.Reset(nil)
		p.pool.Put(p.br)
		p.br = nil
	}
}

// readLength reads the remaining length (1 to 4 bytes).
func readLength(r io.ByteReader) (n, bytesRead int, err error) {
	for shift := 0; shift < 28; shift += 7 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		bytesRead++
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return n, bytesRead, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: remaining length over 4 bytes", errMalformed)
}

// readBody reads n bytes. Small bodies are read into one allocation;
// larger ones grow with what actually arrives.
func readBody(r io.Reader, n int) ([]byte, error) {
	const chunk = 64 << 10
	if n <= chunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, unexpectedEOF(err)
	}
	b := make([]byte, 0, chunk)
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n, 2*cap(b))-len(b))
		}
		m, err := r.Read(b[len(b):min(cap(b), n)])
		b = b[:len(b)+m]
		if err != nil && len(b) < n {
			return nil, unexpectedEOF(err)
		}
	}
	return b, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkFlags checks a fixed header's packet type and flags, and the
// length of the packets whose length is fixed, before the body is read:
// only packets a client may send pass.
func checkFlags(first byte, n int) error {
	typ, flags := first>>4, first&0x0f
	ok := true
	switch typ {
	case packets.Publish:
		qos := flags >> 1 & 3
		ok = qos < 3 && (qos > 0 || flags&0x08 == 0) // no DUP at QoS 0
	case packets.Pubrel:
		ok = flags == 2 && n == 2
	case packets.Subscribe, packets.Unsubscribe:
		ok = flags == 2
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		ok = flags == 0 && n == 2
	case packets.Pingreq, packets.Disconnect:
		ok = flags == 0 && n == 0
	case packets.Connect:
		ok = flags == 0
	default:
		return fmt.Errorf("%w: packet type %d from a client", errMalformed, typ)
	}
	if !ok {
		return fmt.Errorf("%w: %s with flags %#x and length %d", errMalformed, packets.PacketNames[typ], flags, n)
	}
	return nil
}

// decode decodes a packet whose header passed checkFlags, with paho's
// codec, and checks that it is well formed.
func decode(first byte, body []byte) (packets.ControlPacket, error) {
	typ := first >> 4
	if typ == packets.Connect {
		if err := checkProtocol(body); err != nil {
			return nil, err
		}
	}
	fh := packets.FixedHeader{MessageType: typ, Dup: first&0x08 != 0, Qos: first >> 1 & 3, Retain: first&1 != 0, RemainingLength: len(body)}
	pk, err := packets.NewControlPacketWithHeader(fh)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if err := pk.Unpack(bytes.NewBuffer(body)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errMalformed, packets.PacketNames[typ], err)
	}
	if err := check(pk, len(body)); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errMalformed, packets.PacketNames[typ], err)
	}
	return pk, nil
}

// checkProtocol refuses a CONNECT of another protocol (not MQTT or MQIsdp)
// as malformed, and one of another level as errProtocolVersion, before
// paho reads the rest (an MQTT 5 CONNECT does not decode as 3.1.1).
func checkProtocol(body []byte) error {
	if len(body) < 2 {
		return fmt.Errorf("%w: CONNECT without a protocol name", errMalformed)
	}
	n := int(body[0])<<8 | int(body[1])
	if len(body) < 2+n+1 {
		return fmt.Errorf("%w: CONNECT without a protocol level", errMalformed)
	}
	name, level := string(body[2:2+n]), body[2+n]
	switch {
	case name == "MQTT" && level == 4, name == "MQIsdp" && level == 3:
		return nil
	case name == "MQTT" || name == "MQIsdp":
		return fmt.Errorf("%w: %s level %d", errProtocolVersion, name, level)
	}
	return fmt.Errorf("%w: CONNECT for protocol %q", errMalformed, name)
}

// str is the encoded size of an MQTT string.
func str[T string | []byte](s T) int { return 2 + len(s) }

// check checks a decoded packet: its fields add up to the body's length
// and its strings, topics and filters are well formed.
func check(pk packets.ControlPacket, n int) error {
	want := 0
	switch p := pk.(type) {
	case *packets.ConnectPacket:
		want = str(p.ProtocolName) + 1 + 1 + 2 + str(p.ClientIdentifier)
		if p.WillFlag {
			want += str(p.WillTopic) + str(p.WillMessage)
		}
		if p.UsernameFlag {
			want += str(p.Username)
		}
		if p.PasswordFlag {
			want += str(p.Password)
		}
		if !validString(p.ClientIdentifier) || !validString(p.Username) {
			return errors.New("client id or user name is not UTF-8")
		}
		if p.WillFlag && !validTopic(p.WillTopic) {
			return fmt.Errorf("will topic %q", p.WillTopic)
		}
	case *packets.PublishPacket:
		want = str(p.TopicName) + len(p.Payload)
		if p.Qos > 0 {
			want += 2
			if p.MessageID == 0 {
				return errors.New("packet identifier 0")
			}
		}
		if !validTopic(p.TopicName) {
			return fmt.Errorf("topic %q", p.TopicName)
		}
	case *packets.SubscribePacket:
		want = 2
		for i, f := range p.Topics {
			want += str(f) + 1
			if !validFilter(f) || p.Qoss[i] > 2 {
				return fmt.Errorf("filter %q with QoS %d", f, p.Qoss[i])
			}
		}
		if len(p.Topics) == 0 || p.MessageID == 0 {
			return errors.New("no filter, or packet identifier 0")
		}
	case *packets.UnsubscribePacket:
		want = 2
		for _, f := range p.Topics {
			want += str(f)
			if !validFilter(f) {
				return fmt.Errorf("filter %q", f)
			}
		}
		if len(p.Topics) == 0 || p.MessageID == 0 {
			return errors.New("no filter, or packet identifier 0")
		}
	default: // fixed length, checked with the flags
		return nil
	}
	if want != n {
		return fmt.Errorf("fields add up to %d bytes, the packet has %d", want, n)
	}
	return nil
}

// encode encodes a packet for the wire.
func encode(pk packets.ControlPacket) []byte {
	var buf bytes.Buffer
	_ = pk.Write(&buf) // writes to a bytes.Buffer do not fail
	return buf.Bytes()
}
