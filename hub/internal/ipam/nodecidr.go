package ipam

import (
	"net/netip"
)

// NodeCIDRs hands out nodes' pod subnets: the cluster CIDR cut into
// subnets of the node mask size, the first free one first.
type NodeCIDRs struct {
	cluster netip.Prefix
	mask    int
	count   uint64
	used    map[netip.Prefix]string
}

// NewNodeCIDRs returns an allocator of mask-sized subnets of cluster (as
// Parse checks them) with nothing in use.
func NewNodeCIDRs(cluster netip.Prefix, mask int) *NodeCIDRs {
	return &NodeCIDRs{cluster: cluster, mask: mask, count: uint64(1) << (mask - cluster.Bits()), used: map[netip.Prefix]string{}}
}

// subnet is the i-th subnet.
func (a *NodeCIDRs) subnet(i uint64) netip.Prefix {
	return netip.PrefixFrom(uintToAddr(addrToUint(a.cluster.Addr())+uint32(i<<(32-a.mask))), a.mask)
}

// Use records that owner (a node) holds p, as the store says. A subnet
// of another size (the mask size changed since it was given) takes every
// subnet it overlaps.
func (a *NodeCIDRs) Use(p netip.Prefix, owner string) {
	p = p.Masked()
	if !p.Addr().Is4() || !p.Overlaps(a.cluster) {
		return
	}
	if p.Bits() >= a.mask {
		a.used[netip.PrefixFrom(p.Addr(), a.mask).Masked()] = owner
		return
	}
	// Larger than a node subnet: every subnet of it inside the cluster.
	first, last := addrToUint(p.Addr()), addrToUint(p.Addr())+uint32(size(p)-1)
	for i := range a.count {
		s := a.subnet(i)
		if n := addrToUint(s.Addr()); n >= first && n <= last {
			a.used[s] = owner
		}
	}
}

// Request gives owner the subnet it asks for, if it is one of the
// cluster's node subnets and free (or owner's already).
func (a *NodeCIDRs) Request(p netip.Prefix, owner string) error {
	switch {
	case !a.cluster.Contains(p.Addr()) || p.Bits() < a.cluster.Bits():
		return errorf(ErrOutOfRange, "%s is not inside the cluster CIDR %s (hub serve --cluster-cidr)", p, a.cluster)
	case p.Bits() != a.mask:
		return errorf(ErrOutOfRange, "%s is a /%d: node subnets are /%d (hub serve --node-cidr-mask-size)", p, p.Bits(), a.mask)
	case p != p.Masked():
		return errorf(ErrOutOfRange, "%s has address bits set past its prefix length: the subnet is %s", p, p.Masked())
	}
	if o, taken := a.used[p]; taken && o != owner {
		return errorf(ErrInUse, "%s is already allocated to node %s", p, o)
	}
	a.used[p] = owner
	return nil
}

// Allocate gives owner the first free subnet.
func (a *NodeCIDRs) Allocate(owner string) (netip.Prefix, error) {
	for i := range a.count {
		s := a.subnet(i)
		if _, taken := a.used[s]; !taken {
			a.used[s] = owner
			return s, nil
		}
	}
	return netip.Prefix{}, errorf(ErrFull, "the cluster CIDR %s has no free /%d for a node: all %d are allocated (hub serve --cluster-cidr can give a larger range, --node-cidr-mask-size smaller subnets)",
		a.cluster, a.mask, a.count)
}

// Release frees every subnet of owner.
func (a *NodeCIDRs) Release(owner string) { release(a.used, owner) }
