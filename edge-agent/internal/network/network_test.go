package network

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func TestRenderConfList(t *testing.T) {
	b, err := renderConfList(netip.MustParsePrefix("10.42.7.0/24"), "/var/lib/flotilla-agent/network/ipam")
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatalf("libcni refuses the conflist: %v\n%s", err, b)
	}
	if list.Name != NetworkName || list.CNIVersion != "1.0.0" || len(list.Plugins) != 3 {
		t.Fatalf("list %s %s with %d plugins", list.Name, list.CNIVersion, len(list.Plugins))
	}
	var types []string
	for _, p := range list.Plugins {
		types = append(types, p.Network.Type)
	}
	if !slices.Equal(types, []string{"bridge", "portmap", "loopback"}) {
		t.Fatalf("plugins %v", types)
	}
	var br struct {
		Bridge       string          `json:"bridge"`
		IsGateway    bool            `json:"isGateway"`
		IPMasq       bool            `json:"ipMasq"`
		HairpinMode  bool            `json:"hairpinMode"`
		Capabilities map[string]bool `json:"capabilities"`
		IPAM         struct {
			Type    string `json:"type"`
			DataDir string `json:"dataDir"`
			Ranges  [][]struct {
				Subnet, Gateway string
			} `json:"ranges"`
			Routes []struct{ Dst string } `json:"routes"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(list.Plugins[0].Bytes, &br); err != nil {
		t.Fatal(err)
	}
	if br.Bridge != "flotilla0" || !br.IsGateway || br.IPMasq || !br.HairpinMode || !br.Capabilities["ips"] {
		t.Errorf("bridge %+v", br)
	}
	if br.IPAM.Type != "host-local" || br.IPAM.DataDir != "/var/lib/flotilla-agent/network/ipam" ||
		len(br.IPAM.Ranges) != 1 || br.IPAM.Ranges[0][0].Subnet != "10.42.7.0/24" || br.IPAM.Ranges[0][0].Gateway != "10.42.7.1" ||
		len(br.IPAM.Routes) != 1 || br.IPAM.Routes[0].Dst != "0.0.0.0/0" {
		t.Errorf("ipam %+v", br.IPAM)
	}
	if !list.Plugins[1].Network.Capabilities["portMappings"] {
		t.Errorf("portmap without the portMappings capability")
	}
	for _, bad := range []string{"10.42.7.0/31", "10.42.7.1/24", "fd00::/64"} {
		if _, err := renderConfList(netip.MustParsePrefix(bad), "/x"); err == nil {
			t.Errorf("renderConfList(%s) took it", bad)
		}
	}
}

func TestParseNetwork(t *testing.T) {
	good := &wire.Network{PodCIDR: "10.42.3.0/24", ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16"}
	p, err := parseNetwork(good)
	if err != nil || p.podCIDR.String() != "10.42.3.0/24" || p.clusterCIDR.String() != "10.42.0.0/16" || p.serviceCIDR.String() != "10.43.0.0/16" {
		t.Fatalf("parseNetwork(good) = %+v, %v", p, err)
	}
	for _, none := range []*wire.Network{nil, {ClusterCIDR: "10.42.0.0/16"}} {
		if p, err := parseNetwork(none); p != nil || err != nil {
			t.Errorf("parseNetwork(%+v) = %+v, %v; want no network", none, p, err)
		}
	}
	for _, tc := range []struct {
		n    wire.Network
		want string
	}{
		{wire.Network{PodCIDR: "10.42.3.0"}, `network.podCIDR "10.42.3.0"`},
		{wire.Network{PodCIDR: "10.42.3.1/24"}, "network.podCIDR"},
		{wire.Network{PodCIDR: "fd00::/64"}, "network.podCIDR"},
		{wire.Network{PodCIDR: "10.42.3.0/24", ClusterCIDR: "10.50.0.0/16"}, "network.clusterCIDR"},
		{wire.Network{PodCIDR: "10.42.3.0/24", ServiceCIDR: "10.42.128.0/17", ClusterCIDR: "10.42.0.0/16"}, "network.serviceCIDR"},
	} {
		if _, err := parseNetwork(&tc.n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseNetwork(%+v) = %v, want an error naming %s", tc.n, err, tc.want)
		}
	}
}

func rt(dst, via string) route {
	r := route{Dst: netip.MustParsePrefix(dst)}
	if strings.HasPrefix(via, "dev ") {
		r.Dev = strings.TrimPrefix(via, "dev ")
	} else {
		r.Via = netip.MustParseAddr(via)
	}
	return r
}

func TestWantRoutes(t *testing.T) {
	p, _ := parseNetwork(&wire.Network{PodCIDR: "10.42.1.0/24", ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16"})
	peers := []wire.NetworkPeer{
		{Node: "b", IP: "192.168.1.11", PodCIDR: "10.42.2.0/24"},
		{Node: "c", IP: "192.168.1.12", PodCIDR: "10.42.3.0/24"},
		{Node: "own", IP: "192.168.1.13", PodCIDR: "10.42.1.0/24"},     // the node's own CIDR
		{Node: "twin", IP: "192.168.1.14", PodCIDR: "10.42.2.0/25"},    // overlaps b's
		{Node: "far", IP: "192.168.1.15", PodCIDR: "10.99.0.0/24"},     // outside the cluster
		{Node: "noip", IP: "", PodCIDR: "10.42.4.0/24"},                // no address yet
		{Node: "badcidr", IP: "192.168.1.16", PodCIDR: "10.42.5.1/24"}, // host bits
	}
	got, err := wantRoutes(p, peers, false)
	want := []route{rt("10.42.2.0/24", "192.168.1.11"), rt("10.42.3.0/24", "192.168.1.12"), rt("10.43.0.0/16", "dev flotilla0")}
	if !slices.Equal(got, want) {
		t.Fatalf("routes %v, want %v", got, want)
	}
	for _, name := range []string{"peer own", "peer twin", "peer far", "peer noip", "peer badcidr"} {
		if err == nil || !strings.Contains(err.Error(), name+":") {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
	// With a default route the Service CIDR needs none of its own.
	got, _ = wantRoutes(p, peers[:1], true)
	if !slices.Equal(got, want[:1]) {
		t.Fatalf("with a default route: %v", got)
	}
}

func TestDiffRoutes(t *testing.T) {
	have := []route{rt("10.42.2.0/24", "192.168.1.11"), rt("10.42.3.0/24", "192.168.1.12"), rt("10.43.0.0/16", "dev flotilla0")}
	want := []route{rt("10.42.2.0/24", "192.168.1.11"), rt("10.42.3.0/24", "192.168.1.22"), rt("10.42.4.0/24", "192.168.1.13")}
	add, del := diffRoutes(want, have)
	if !slices.Equal(add, []route{rt("10.42.3.0/24", "192.168.1.22"), rt("10.42.4.0/24", "192.168.1.13")}) {
		t.Errorf("add %v", add)
	}
	// The moved peer's route is replaced, not deleted; the Service route
	// goes (a default route came).
	if !slices.Equal(del, []route{rt("10.43.0.0/16", "dev flotilla0")}) {
		t.Errorf("delete %v", del)
	}
	if add, del := diffRoutes(have, have); len(add)+len(del) != 0 {
		t.Errorf("no change: add %v delete %v", add, del)
	}
}

func TestRecords(t *testing.T) {
	dir := t.TempDir()
	rec := record{UID: "u1", Namespace: "default", Name: "web", IP: netip.MustParseAddr("10.42.3.7"), PodCIDR: netip.MustParsePrefix("10.42.3.0/24"),
		Ports: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}
	if err := writeRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "u2.json"), []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(dir, "u3.json.tmp"), []byte("{"), 0o600) // a write cut short
	got, err := readRecords(dir)
	if err == nil || !strings.Contains(err.Error(), "u2.json") {
		t.Errorf("a broken record: err %v, want it named", err)
	}
	if len(got) != 1 || got["u1"].IP != rec.IP || !slices.Equal(got["u1"].Ports, rec.Ports) {
		t.Fatalf("records %+v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "u3.json.tmp")); !os.IsNotExist(err) {
		t.Errorf("a cut-short write is left: %v", err)
	}
	if err := removeRecord(dir, "u1"); err != nil {
		t.Fatal(err)
	}
	if err := removeRecord(dir, "u1"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	for _, bad := range []string{"", "..", "a/b", "a b", strings.Repeat("x", 129)} {
		if validUID(bad) == nil {
			t.Errorf("validUID(%q) took it", bad)
		}
	}
}

func TestAllocatedIDs(t *testing.T) {
	dir := t.TempDir()
	d := filepath.Join(dir, NetworkName)
	os.MkdirAll(d, 0o700)
	os.WriteFile(filepath.Join(d, "10.42.3.2"), []byte("uid-a\r\neth0"), 0o600)
	os.WriteFile(filepath.Join(d, "10.42.3.3"), []byte("uid-b\neth0"), 0o600)
	os.WriteFile(filepath.Join(d, "last_reserved_ip.0"), []byte("10.42.3.3"), 0o600)
	os.WriteFile(filepath.Join(d, "lock"), nil, 0o600)
	got, err := allocatedIDs(dir)
	if err != nil || len(got) != 2 || got["uid-a"][0].String() != "10.42.3.2" || got["uid-b"][0].String() != "10.42.3.3" {
		t.Fatalf("allocatedIDs = %v, %v", got, err)
	}
	if got, err := allocatedIDs(t.TempDir()); err != nil || len(got) != 0 {
		t.Fatalf("no directory yet: %v, %v", got, err)
	}
}
