package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Keys of the maps, as nft prints them and as the kernel stores them. In a
// concatenation every field takes whole 4-byte registers: the protocol
// byte and the big-endian port are followed by zero padding.

func serviceIPKey(ip netip.Addr, proto string, port uint16) string {
	return fmt.Sprintf("%s . %s . %d", ip, proto, port)
}

func serviceIPRaw(ip netip.Addr, proto byte, port uint16) []byte {
	b := make([]byte, 12)
	copy(b, ip.AsSlice())
	b[4] = proto
	binary.BigEndian.PutUint16(b[8:], port)
	return b
}

func nodePortKey(proto string, port uint16) string {
	return fmt.Sprintf("%s . %d", proto, port)
}

func nodePortRaw(proto byte, port uint16) []byte {
	b := make([]byte, 8)
	b[0] = proto
	binary.BigEndian.PutUint16(b[4:], port)
	return b
}

func addrElement(ip netip.Addr) element {
	return element{key: ip.String(), raw: ip.AsSlice()}
}

func protoName(p byte) (string, error) {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp", nil
	case unix.IPPROTO_UDP:
		return "udp", nil
	}
	return "", fmt.Errorf("protocol %d", p)
}

// decodeKey turns a key read back from the kernel into its text.
func decodeKey(kind setKind, raw []byte) (string, error) {
	switch kind {
	case kindServiceIPs:
		if len(raw) != 12 {
			return "", fmt.Errorf("key of %d bytes, want 12", len(raw))
		}
		proto, err := protoName(raw[4])
		if err != nil {
			return "", err
		}
		return serviceIPKey(netip.AddrFrom4([4]byte(raw[:4])), proto, binary.BigEndian.Uint16(raw[8:])), nil
	case kindNodePorts:
		if len(raw) != 8 {
			return "", fmt.Errorf("key of %d bytes, want 8", len(raw))
		}
		proto, err := protoName(raw[0])
		if err != nil {
			return "", err
		}
		return nodePortKey(proto, binary.BigEndian.Uint16(raw[4:])), nil
	case kindAddrs:
		if len(raw) != 4 {
			return "", fmt.Errorf("key of %d bytes, want 4", len(raw))
		}
		return netip.AddrFrom4([4]byte(raw)).String(), nil
	}
	return "", fmt.Errorf("set kind %d has no readable keys", kind)
}
