package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.ClusterCIDR.String() != "10.42.0.0/16" || c.NodeMaskSize != 24 || c.ServiceCIDR.String() != "10.43.0.0/16" ||
		c.NodePorts != (PortRange{30000, 32767}) || c.ClusterDomain != "cluster.local" {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestParseRefusesBadPlans: every flag that is wrong is named with why,
// one per line, and nothing is returned.
func TestParseRefusesBadPlans(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Flags)
		want []string
	}{
		{"overlapping CIDRs", func(f *Flags) { f.ServiceCIDR = "10.42.128.0/17" },
			[]string{"--service-cidr 10.42.128.0/17 overlaps --cluster-cidr 10.42.0.0/16: Service addresses and pod addresses must be apart"}},
		{"service CIDR holds the cluster CIDR", func(f *Flags) { f.ServiceCIDR = "10.0.0.0/12"; f.ClusterCIDR = "10.1.0.0/16" },
			[]string{"--service-cidr 10.0.0.0/12 overlaps --cluster-cidr 10.1.0.0/16: Service addresses and pod addresses must be apart"}},
		{"mask smaller than the cluster prefix", func(f *Flags) { f.NodeCIDRMaskSize = 12 },
			[]string{"--node-cidr-mask-size 12 is smaller than the prefix length of --cluster-cidr 10.42.0.0/16 (16): a node's subnet must fit inside the cluster CIDR"}},
		{"mask leaving no pods", func(f *Flags) { f.NodeCIDRMaskSize = 31 },
			[]string{"--node-cidr-mask-size 31 leaves a node no addresses for pods beside its bridge: it must be at most 30"}},
		{"too many node subnets", func(f *Flags) { f.ClusterCIDR = "10.0.0.0/8"; f.ServiceCIDR = "172.16.0.0/16"; f.NodeCIDRMaskSize = 26 },
			[]string{"--node-cidr-mask-size 26 cuts --cluster-cidr 10.0.0.0/8 into 262144 node subnets, more than 65536: use a smaller mask size or a smaller cluster CIDR"}},
		{"not a CIDR", func(f *Flags) { f.ClusterCIDR = "10.42.0.0" },
			[]string{`--cluster-cidr "10.42.0.0" is not a CIDR such as 10.42.0.0/16`}},
		{"host bits", func(f *Flags) { f.ClusterCIDR = "10.42.1.0/16" },
			[]string{"--cluster-cidr 10.42.1.0/16 has address bits set past its prefix length: did you mean 10.42.0.0/16?"}},
		{"IPv6", func(f *Flags) { f.ServiceCIDR = "fd00:43::/112" },
			[]string{"--service-cidr fd00:43::/112: IPv6 is not supported: give an IPv4 CIDR"}},
		{"loopback", func(f *Flags) { f.ServiceCIDR = "127.0.0.0/16" },
			[]string{"--service-cidr 127.0.0.0/16 overlaps the loopback network 127.0.0.0/8"}},
		{"service CIDR too large", func(f *Flags) { f.ServiceCIDR = "172.0.0.0/8" },
			[]string{"--service-cidr 172.0.0.0/8 is too large: at most 2^20 addresses (a prefix length of at least 12)"}},
		{"service CIDR too small", func(f *Flags) { f.ServiceCIDR = "10.43.0.0/31" },
			[]string{"--service-cidr 10.43.0.0/31 is too small: it has no address to allocate besides its network and broadcast addresses (a prefix length of at most 30)"}},
		{"port range backwards", func(f *Flags) { f.NodePortRange = "32767-30000" },
			[]string{`--service-node-port-range "32767-30000": the range ends at 30000, before it starts at 32767`}},
		{"port range not numbers", func(f *Flags) { f.NodePortRange = "30000-" },
			[]string{`--service-node-port-range "30000-": "" is not a port from 1 to 65535: want FIRST-LAST such as 30000-32767`}},
		{"port range past 65535", func(f *Flags) { f.NodePortRange = "65000+1000" },
			[]string{`--service-node-port-range "65000+1000": the range ends at 66000, past port 65535`}},
		{"cluster domain", func(f *Flags) { f.ClusterDomain = "Cluster_Local" },
			[]string{`--cluster-domain "Cluster_Local": "Cluster_Local" is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`}},
		{"everything at once", func(f *Flags) { f.ClusterCIDR = "x"; f.ServiceCIDR = "y"; f.NodePortRange = "z"; f.ClusterDomain = "" },
			[]string{`--cluster-cidr "x" is not a CIDR such as 10.42.0.0/16`, `--service-cidr "y" is not a CIDR such as 10.42.0.0/16`,
				`--service-node-port-range "z": "z" is not a port from 1 to 65535: want FIRST-LAST such as 30000-32767`, `--cluster-domain "": required`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := DefaultFlags()
			tc.edit(&f)
			c, err := Parse(f)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if c != (Config{}) {
				t.Errorf("returned a config with the error: %+v", c)
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestParseAcceptsOtherPlans(t *testing.T) {
	f := Flags{ClusterCIDR: "192.168.128.0/17", NodeCIDRMaskSize: 26, ServiceCIDR: "192.168.64.0/20", NodePortRange: "30000+99", ClusterDomain: "site.example."}
	c, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodePorts != (PortRange{30000, 30099}) || c.ClusterDomain != "site.example" || c.NodeMaskSize != 26 {
		t.Fatalf("%+v", c)
	}
	if r, err := ParsePortRange("8080"); err != nil || r != (PortRange{8080, 8080}) || r.Size() != 1 {
		t.Fatalf("single port: %+v %v", r, err)
	}
}

func TestCheckNodeAddress(t *testing.T) {
	c := DefaultConfig()
	if err := c.CheckNodeAddress(netip.MustParseAddr("192.168.1.20")); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"10.42.7.1", "10.43.0.1"} {
		if err := c.CheckNodeAddress(netip.MustParseAddr(ip)); err == nil || !strings.Contains(err.Error(), ip) {
			t.Errorf("%s: %v", ip, err)
		}
	}
}

// fixedRand starts every search at the same offset.
type fixedRand int

func (f fixedRand) IntN(n int) int { return int(f) % n }

func wantKind(t *testing.T, err, kind error, msg string) {
	t.Helper()
	if !errors.Is(err, kind) || err.Error() != msg {
		t.Fatalf("got %v (kind %v), want %q (%v)", err, errors.Unwrap(err), msg, kind)
	}
}
