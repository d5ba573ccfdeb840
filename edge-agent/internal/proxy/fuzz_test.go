package proxy

import (
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The decoders read what the kernel returns for the table; they must not
// panic on anything, and must read back what the encoders write.

func FuzzDecodeKey(f *testing.F) {
	f.Add(uint8(kindServiceIPs), serviceIPRaw(netip.MustParseAddr("10.43.0.1"), unix.IPPROTO_TCP, 80))
	f.Add(uint8(kindNodePorts), nodePortRaw(unix.IPPROTO_UDP, 30053))
	f.Add(uint8(kindAddrs), []byte{192, 0, 2, 1})
	f.Add(uint8(kindAffinity), []byte{1})
	f.Fuzz(func(t *testing.T, kind uint8, raw []byte) {
		key, err := decodeKey(setKind(kind), raw)
		if err != nil {
			return
		}
		if key == "" {
			t.Fatalf("kind %d key %x: empty text without an error", kind, raw)
		}
	})
}

func FuzzVerdictChain(f *testing.F) {
	valid, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_VERDICT_CODE, Data: []byte{0xff, 0xff, 0xff, 0xfc}},
		{Type: unix.NFTA_VERDICT_CHAIN, Data: []byte("svc-abc\x00")},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{4, 0, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		chain, err := verdictChain(b)
		if err == nil && chain == "" {
			t.Fatalf("%x: no chain and no error", b)
		}
	})
}

func TestVerdictChainReadsTheChain(t *testing.T) {
	b, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_VERDICT_CODE, Data: []byte{0xff, 0xff, 0xff, 0xfc}},
		{Type: unix.NFTA_VERDICT_CHAIN, Data: []byte("svc-abc\x00")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := verdictChain(b); err != nil || got != "svc-abc" {
		t.Errorf("verdictChain: %q, %v", got, err)
	}
	if _, err := verdictChain(b[:8]); err == nil {
		t.Error("a verdict without a chain was read")
	}
}
