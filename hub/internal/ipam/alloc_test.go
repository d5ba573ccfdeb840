package ipam

import (
	"net/netip"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestServiceIPs(t *testing.T) {
	a := NewServiceIPs(netip.MustParsePrefix("10.43.0.0/16"), fixedRand(0))
	// Dynamic addresses come from above the static band (256 addresses
	// for a /16), so a requested one there is free.
	ip, err := a.Allocate("default/web")
	if err != nil || ip.String() != "10.43.1.1" {
		t.Fatalf("first allocation: %s %v", ip, err)
	}
	if err := a.Request(netip.MustParseAddr("10.43.0.10"), "default/dns"); err != nil {
		t.Fatal(err)
	}
	// Asking again for one's own address is fine; another's is not.
	if err := a.Request(netip.MustParseAddr("10.43.0.10"), "default/dns"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, a.Request(netip.MustParseAddr("10.43.0.10"), "team/db"), ErrInUse, "10.43.0.10 is already allocated to Service default/dns")
	wantKind(t, a.Request(netip.MustParseAddr("10.44.0.1"), "team/db"), ErrOutOfRange, "10.44.0.1 is not in the service CIDR 10.43.0.0/16 (hub serve --service-cidr)")
	wantKind(t, a.Request(netip.MustParseAddr("10.43.0.0"), "team/db"), ErrOutOfRange, "10.43.0.0 is the network address of the service CIDR 10.43.0.0/16, which is never allocated")
	wantKind(t, a.Request(netip.MustParseAddr("10.43.255.255"), "team/db"), ErrOutOfRange, "10.43.255.255 is the broadcast address of the service CIDR 10.43.0.0/16, which is never allocated")
	// Released addresses are free again.
	a.Release("default/dns")
	if err := a.Request(netip.MustParseAddr("10.43.0.10"), "team/db"); err != nil {
		t.Fatal(err)
	}
	if a.Free() != 65534-2 {
		t.Fatalf("free %d", a.Free())
	}
}

// TestServiceIPsFill: a small CIDR hands out each of its addresses once,
// never the network or broadcast address, the upper band first, then
// says it is full.
func TestServiceIPsFill(t *testing.T) {
	for _, r := range []Rand{fixedRand(0), fixedRand(7), nil} {
		a := NewServiceIPs(netip.MustParsePrefix("10.43.0.0/27"), r)
		a.Use(netip.MustParseAddr("10.43.0.5"), "default/kept")
		a.Use(netip.MustParseAddr("192.0.2.1"), "default/outside") // another plan's: no effect
		seen := map[netip.Addr]bool{netip.MustParseAddr("10.43.0.5"): true}
		for i := range 29 {
			ip, err := a.Allocate("default/s")
			if err != nil {
				t.Fatalf("allocation %d: %v", i, err)
			}
			if seen[ip] || ip.String() == "10.43.0.0" || ip.String() == "10.43.0.31" {
				t.Fatalf("allocation %d: %s", i, ip)
			}
			// 30 addresses: a band of 16, so the first 14 come from above it.
			if i < 14 && addrToUint(ip)-addrToUint(netip.MustParseAddr("10.43.0.1")) < 16 {
				t.Fatalf("allocation %d took %s from the static band", i, ip)
			}
			seen[ip] = true
		}
		_, err := a.Allocate("default/s")
		wantKind(t, err, ErrFull, "the service CIDR 10.43.0.0/27 is full: all 30 of its addresses are allocated (hub serve --service-cidr can give a larger one)")
	}
}

func TestNodePorts(t *testing.T) {
	a := NewNodePorts(PortRange{30000, 32767}, fixedRand(0))
	// The static band of 30000-32767 is 86 ports: dynamic ports start above.
	p, err := a.Allocate("default/a", api.ProtocolTCP)
	if err != nil || p != 30086 {
		t.Fatalf("first allocation: %d %v", p, err)
	}
	if err := a.Request(30080, api.ProtocolTCP, "default/web"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, a.Request(30080, api.ProtocolTCP, "default/other"), ErrInUse, "30080/TCP is already allocated to Service default/web")
	// Per protocol: the same number for UDP is another port.
	if err := a.Request(30080, api.ProtocolUDP, "default/other"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, a.Request(30080, api.ProtocolUDP, "team/third"), ErrInUse, "30080/UDP is already allocated to Service default/other")
	wantKind(t, a.Request(40000, api.ProtocolTCP, "default/web"), ErrOutOfRange, "40000 is not in the node port range 30000-32767 (hub serve --service-node-port-range)")
	wantKind(t, a.Request(29999, api.ProtocolUDP, "default/web"), ErrOutOfRange, "29999 is not in the node port range 30000-32767 (hub serve --service-node-port-range)")
	// A port for TCP and UDP must be free for both.
	a.Use(30087, api.ProtocolUDP, "default/b")
	p, err = a.Allocate("default/dns", api.ProtocolTCP, api.ProtocolUDP)
	if err != nil || p != 30088 {
		t.Fatalf("TCP and UDP: %d %v", p, err)
	}
	a.Release("default/web")
	if err := a.Request(30080, api.ProtocolTCP, "default/other"); err != nil {
		t.Fatal(err)
	}
	// RequestAll takes a port for every protocol or for none.
	wantKind(t, a.RequestAll(30087, []api.Protocol{api.ProtocolTCP, api.ProtocolUDP}, "default/c"), ErrInUse, "30087/UDP is already allocated to Service default/b")
	if err := a.Request(30087, api.ProtocolTCP, "default/d"); err != nil {
		t.Fatalf("a refused RequestAll held 30087/TCP: %v", err)
	}
}

func TestNodePortsFill(t *testing.T) {
	a := NewNodePorts(PortRange{30000, 30009}, nil) // under the band's minimum: no band
	for i := range 10 {
		if _, err := a.Allocate("default/s", api.ProtocolUDP); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	_, err := a.Allocate("default/s", api.ProtocolUDP)
	wantKind(t, err, ErrFull, "no port of the node port range 30000-30009 is free for UDP: all 10 are allocated (hub serve --service-node-port-range can give a larger range)")
	if p, err := a.Allocate("default/t", api.ProtocolTCP); err != nil || p < 30000 || p > 30009 {
		t.Fatalf("TCP in a range full for UDP: %d %v", p, err)
	}
}

func TestNodeCIDRs(t *testing.T) {
	a := NewNodeCIDRs(netip.MustParsePrefix("10.42.0.0/16"), 24)
	a.Use(netip.MustParsePrefix("10.42.1.0/24"), "edge-2")
	for i, want := range []string{"10.42.0.0/24", "10.42.2.0/24"} {
		p, err := a.Allocate("edge-" + want)
		if err != nil || p.String() != want {
			t.Fatalf("allocation %d: %s %v", i, p, err)
		}
	}
	if err := a.Request(netip.MustParsePrefix("10.42.9.0/24"), "edge-9"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, a.Request(netip.MustParsePrefix("10.42.1.0/24"), "edge-3"), ErrInUse, "10.42.1.0/24 is already allocated to node edge-2")
	wantKind(t, a.Request(netip.MustParsePrefix("10.43.1.0/24"), "edge-3"), ErrOutOfRange, "10.43.1.0/24 is not inside the cluster CIDR 10.42.0.0/16 (hub serve --cluster-cidr)")
	wantKind(t, a.Request(netip.MustParsePrefix("10.42.4.0/25"), "edge-3"), ErrOutOfRange, "10.42.4.0/25 is a /25: node subnets are /24 (hub serve --node-cidr-mask-size)")
	wantKind(t, a.Request(netip.MustParsePrefix("10.42.4.7/24"), "edge-3"), ErrOutOfRange, "10.42.4.7/24 has address bits set past its prefix length: the subnet is 10.42.4.0/24")
	a.Release("edge-2")
	if err := a.Request(netip.MustParsePrefix("10.42.1.0/24"), "edge-3"); err != nil {
		t.Fatal(err)
	}
}

// TestNodeCIDRsFill: a cluster CIDR of four subnets fills up; subnets
// given under another mask size take what they overlap.
func TestNodeCIDRsFill(t *testing.T) {
	a := NewNodeCIDRs(netip.MustParsePrefix("10.42.0.0/22"), 24)
	a.Use(netip.MustParsePrefix("10.42.0.0/23"), "old-big")     // takes .0 and .1
	a.Use(netip.MustParsePrefix("10.42.3.128/25"), "old-small") // takes .3
	p, err := a.Allocate("edge-1")
	if err != nil || p.String() != "10.42.2.0/24" {
		t.Fatalf("%s %v", p, err)
	}
	_, err = a.Allocate("edge-2")
	wantKind(t, err, ErrFull, "the cluster CIDR 10.42.0.0/22 has no free /24 for a node: all 4 are allocated (hub serve --cluster-cidr can give a larger range, --node-cidr-mask-size smaller subnets)")
}
