// Package ipam plans and hands out the cluster's addresses: each node's
// pod subnet from the cluster CIDR, each Service's virtual IP from the
// service CIDR, and node ports from their range. Its allocators keep no
// state of their own: the caller tells them what the store holds, in the
// same transaction that then writes their answer, so there is nothing to
// drift from the objects and nothing to rebuild after a crash.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Defaults of hub serve's network flags (k3s's ranges, so that a site
// that knows one knows the other).
const (
	DefaultClusterCIDR      = "10.42.0.0/16"
	DefaultNodeCIDRMaskSize = 24
	DefaultServiceCIDR      = "10.43.0.0/16"
	DefaultNodePortRange    = "30000-32767"
	DefaultClusterDomain    = "cluster.local"
)

// Bounds on the plan, as Kubernetes has them: a cluster CIDR is cut into
// at most 2^16 node subnets, a service CIDR holds at most 2^20 addresses.
const (
	maxNodeSubnetBits  = 16
	minServicePrefix   = 12
	maxNodeMaskSize    = 30 // a /30 leaves the bridge one pod
	maxServicePrefixV4 = 30 // a /30 has two addresses to hand out
)

// Config is the cluster's address plan.
type Config struct {
	// ClusterCIDR is where pod subnets come from; each node gets one
	// subnet of NodeMaskSize bits.
	ClusterCIDR  netip.Prefix
	NodeMaskSize int
	// ServiceCIDR is where Services' cluster IPs come from.
	ServiceCIDR netip.Prefix
	// NodePorts is the range of NodePort Services' node ports.
	NodePorts PortRange
	// ClusterDomain is the DNS suffix of Services (cluster.local).
	ClusterDomain string
}

// Flags are the plan as hub serve's flags give it.
type Flags struct {
	ClusterCIDR      string // --cluster-cidr
	NodeCIDRMaskSize int    // --node-cidr-mask-size
	ServiceCIDR      string // --service-cidr
	NodePortRange    string // --service-node-port-range
	ClusterDomain    string // --cluster-domain
}

// DefaultFlags are the flags' defaults.
func DefaultFlags() Flags {
	return Flags{
		ClusterCIDR: DefaultClusterCIDR, NodeCIDRMaskSize: DefaultNodeCIDRMaskSize, ServiceCIDR: DefaultServiceCIDR,
		NodePortRange: DefaultNodePortRange, ClusterDomain: DefaultClusterDomain,
	}
}

// DefaultConfig is the plan of the default flags.
func DefaultConfig() Config {
	c, err := Parse(DefaultFlags())
	if err != nil {
		panic("ipam: the default flags do not parse: " + err.Error())
	}
	return c
}

// Parse reads and checks the flags. Its error names every flag that is
// wrong and why, one per line: a CIDR that does not parse or is not IPv4,
// host bits set, a node mask size that does not fit the cluster CIDR or
// leaves no pod addresses, a service CIDR too large or too small, the two
// CIDRs overlapping each other or a network no pod may use, a bad port
// range, a cluster domain that is not a DNS name.
func Parse(f Flags) (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var c Config
	var clusterOK, serviceOK bool
	c.ClusterCIDR, clusterOK = parseCIDR("--cluster-cidr", f.ClusterCIDR, bad)
	c.ServiceCIDR, serviceOK = parseCIDR("--service-cidr", f.ServiceCIDR, bad)

	c.NodeMaskSize = f.NodeCIDRMaskSize
	switch m := f.NodeCIDRMaskSize; {
	case m > maxNodeMaskSize:
		bad("--node-cidr-mask-size %d leaves a node no addresses for pods beside its bridge: it must be at most %d", m, maxNodeMaskSize)
	case !clusterOK:
	case m < c.ClusterCIDR.Bits():
		bad("--node-cidr-mask-size %d is smaller than the prefix length of --cluster-cidr %s (%d): a node's subnet must fit inside the cluster CIDR",
			m, c.ClusterCIDR, c.ClusterCIDR.Bits())
	case m-c.ClusterCIDR.Bits() > maxNodeSubnetBits:
		bad("--node-cidr-mask-size %d cuts --cluster-cidr %s into %d node subnets, more than %d: use a smaller mask size or a smaller cluster CIDR",
			m, c.ClusterCIDR, uint64(1)<<(m-c.ClusterCIDR.Bits()), 1<<maxNodeSubnetBits)
	}

	if serviceOK {
		switch b := c.ServiceCIDR.Bits(); {
		case b < minServicePrefix:
			bad("--service-cidr %s is too large: at most 2^%d addresses (a prefix length of at least %d)", c.ServiceCIDR, 32-minServicePrefix, minServicePrefix)
		case b > maxServicePrefixV4:
			bad("--service-cidr %s is too small: it has no address to allocate besides its network and broadcast addresses (a prefix length of at most %d)", c.ServiceCIDR, maxServicePrefixV4)
		}
	}
	if clusterOK && serviceOK && c.ClusterCIDR.Overlaps(c.ServiceCIDR) {
		bad("--service-cidr %s overlaps --cluster-cidr %s: Service addresses and pod addresses must be apart", c.ServiceCIDR, c.ClusterCIDR)
	}

	var err error
	if c.NodePorts, err = ParsePortRange(f.NodePortRange); err != nil {
		bad("--service-node-port-range %q: %v", f.NodePortRange, err)
	}

	c.ClusterDomain = strings.TrimSuffix(f.ClusterDomain, ".")
	if err := api.ValidateDNSSubdomain(c.ClusterDomain); err != nil {
		bad("--cluster-domain %q: %v", f.ClusterDomain, err)
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// reserved are networks no pod or Service address may come from.
var reserved = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// parseCIDR reads one of the plan's CIDRs, reporting through bad what is
// wrong with it.
func parseCIDR(flag, s string, bad func(string, ...any)) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		bad("%s %q is not a CIDR such as 10.42.0.0/16", flag, s)
		return p, false
	case !p.Addr().Is4():
		bad("%s %s: IPv6 is not supported: give an IPv4 CIDR", flag, p)
		return p, false
	case p != p.Masked():
		bad("%s %s has address bits set past its prefix length: did you mean %s?", flag, p, p.Masked())
		return p, false
	}
	for _, r := range reserved {
		if p.Overlaps(r.prefix) {
			bad("%s %s overlaps the %s network %s", flag, p, r.what, r.prefix)
			return p, false
		}
	}
	return p, true
}

// CheckNodeAddress reports whether a node's own address falls inside the
// cluster or the service CIDR, which would make the node's site network
// and the pod network clash.
func (c Config) CheckNodeAddress(ip netip.Addr) error {
	switch {
	case c.ClusterCIDR.Contains(ip):
		return fmt.Errorf("node address %s is inside the cluster CIDR %s (--cluster-cidr): the site's network and the pods' would clash", ip, c.ClusterCIDR)
	case c.ServiceCIDR.Contains(ip):
		return fmt.Errorf("node address %s is inside the service CIDR %s (--service-cidr): the site's network and the Services' would clash", ip, c.ServiceCIDR)
	}
	return nil
}

// PortRange is a range of ports, First to Last inclusive.
type PortRange struct {
	First, Last int
}

// ParsePortRange reads a range as Kubernetes' --service-node-port-range
// takes it: FIRST-LAST, FIRST+COUNT (COUNT more after FIRST) or a single
// port.
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	var r PortRange
	var err error
	switch {
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		if r.First, err = parsePort(a); err == nil {
			r.Last, err = parsePort(b)
		}
	case strings.Contains(s, "+"):
		a, b, _ := strings.Cut(s, "+")
		var n int
		if r.First, err = parsePort(a); err == nil {
			if n, err = strconv.Atoi(strings.TrimSpace(b)); err != nil || n < 0 {
				err = fmt.Errorf("%q is not a count of ports", b)
			}
			r.Last = r.First + n
		}
	default:
		r.First, err = parsePort(s)
		r.Last = r.First
	}
	switch {
	case err != nil:
		return PortRange{}, fmt.Errorf("%v: want FIRST-LAST such as %s", err, DefaultNodePortRange)
	case r.Last > 65535:
		return PortRange{}, fmt.Errorf("the range ends at %d, past port 65535", r.Last)
	case r.Last < r.First:
		return PortRange{}, fmt.Errorf("the range ends at %d, before it starts at %d", r.Last, r.First)
	}
	return r, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port from 1 to 65535", s)
	}
	return n, nil
}

// Contains reports whether port p is in the range.
func (r PortRange) Contains(p int) bool { return p >= r.First && p <= r.Last }

// Size is how many ports the range holds.
func (r PortRange) Size() int { return r.Last - r.First + 1 }

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.First, r.Last) }

// addrToUint and uintToAddr move between IPv4 addresses and numbers.
func addrToUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintToAddr(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// size is how many addresses an IPv4 prefix covers.
func size(p netip.Prefix) uint64 { return uint64(1) << (32 - p.Bits()) }
