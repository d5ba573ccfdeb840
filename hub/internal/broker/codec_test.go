package broker

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// FuzzReadPacket feeds a client's byte stream to the read path: it must
// never panic nor decode a packet over the size limit, and every packet it
// accepts must encode to bytes that read back as the same packet. The
// seed corpus is in testdata/fuzz/FuzzReadPacket (`make fuzz` runs it).
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0xc0, 0x00, 0xe0, 0x00})
	pool := newReadPool()
	const max = 4096
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &packetReader{r: bytes.NewReader(data), pool: pool, max: max}
		defer r.release()
		for range 64 {
			pk, err := r.read()
			if err != nil {
				if pk != nil {
					t.Fatalf("a packet and an error: %v, %v", pk, err)
				}
				return
			}
			enc := encode(pk)
			if len(enc) > max+4 {
				t.Fatalf("accepted a %d-byte packet, over %d", len(enc), max)
			}
			back := &packetReader{r: bytes.NewReader(enc), pool: pool, max: 2 * max}
			pk2, err := back.read()
			back.release()
			if err != nil {
				t.Fatalf("%v encodes to %q, which reads back as %v", pk, enc, err)
			}
			if enc2 := encode(pk2); !bytes.Equal(enc, enc2) {
				t.Fatalf("%v: %q reads back and encodes as %q", pk, enc, enc2)
			}
		}
	})
}

func TestReadBodyGrowsWithData(t *testing.T) {
	// A body announced at 1 MiB but cut short fails, having held what
	// arrived rather than the announced size.
	_, err := readBody(io.LimitReader(bytes.NewReader(make([]byte, 1<<20)), 100<<10), 1<<20)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("readBody of a short body: %v", err)
	}
	b, err := readBody(bytes.NewReader(bytes.Repeat([]byte{7}, 300<<10)), 300<<10)
	if err != nil || len(b) != 300<<10 || b[len(b)-1] != 7 {
		t.Fatalf("readBody: %d bytes, %v", len(b), err)
	}
}

// TestReadReleasesBuffer: between packets a connection holds no read
// buffer; while a pipelined packet waits, it keeps it.
func TestReadReleasesBuffer(t *testing.T) {
	ping := encode(packets.NewControlPacket(packets.Pingreq))
	r := &packetReader{r: bytes.NewReader(append(append([]byte(nil), ping...), ping...)), pool: newReadPool(), max: 100}
	if _, err := r.read(); err != nil || r.br == nil {
		t.Fatalf("first read: %v, buffer %v", err, r.br)
	}
	if _, err := r.read(); err != nil || r.br != nil {
		t.Fatalf("second read: %v, buffer %v", err, r.br)
	}
}
