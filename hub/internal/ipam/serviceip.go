package ipam

import (
	"net/netip"
)

// ServiceIPs hands out Services' cluster IPs from the service CIDR, never
// its network or broadcast address. Dynamic allocations come from above
// the range's static band (its first 16 to 256 addresses) while they can,
// at a random place, so that an address a manifest asks for in the band
// is free and an address just released is not reused at once.
type ServiceIPs struct {
	cidr  netip.Prefix
	first uint32 // the first address handed out
	count uint64 // how many are handed out
	used  map[netip.Addr]string
	rand  Rand
}

// NewServiceIPs returns an allocator for cidr (an IPv4 prefix of at most
// /30, as Parse checks) with nothing in use. r may be nil for
// DefaultRand.
func NewServiceIPs(cidr netip.Prefix, r Rand) *ServiceIPs {
	if r == nil {
		r = DefaultRand
	}
	a := &ServiceIPs{cidr: cidr, used: map[netip.Addr]string{}, rand: r}
	if n := size(cidr); n > 2 {
		a.first, a.count = addrToUint(cidr.Addr())+1, n-2
	}
	return a
}

// Use records that owner (a Service, "namespace/name") holds ip, as the
// store says. An address outside the range is left out: nothing can
// clash with it.
func (a *ServiceIPs) Use(ip netip.Addr, owner string) {
	if a.cidr.Contains(ip) {
		a.used[ip] = owner
	}
}

// Request gives owner the address it asks for, if it is in the range and
// free (or owner's already).
func (a *ServiceIPs) Request(ip netip.Addr, owner string) error {
	switch {
	case !a.cidr.Contains(ip):
		return errorf(ErrOutOfRange, "%s is not in the service CIDR %s (hub serve --service-cidr)", ip, a.cidr)
	case ip == a.cidr.Addr():
		return errorf(ErrOutOfRange, "%s is the network address of the service CIDR %s, which is never allocated", ip, a.cidr)
	case uint64(addrToUint(ip)-a.first) >= a.count:
		return errorf(ErrOutOfRange, "%s is the broadcast address of the service CIDR %s, which is never allocated", ip, a.cidr)
	}
	if o, taken := a.used[ip]; taken && o != owner {
		return errorf(ErrInUse, "%s is already allocated to Service %s", ip, o)
	}
	a.used[ip] = owner
	return nil
}

// Allocate gives owner a free address.
func (a *ServiceIPs) Allocate(owner string) (netip.Addr, error) {
	band := staticBand(a.count, 16, 256, 16)
	free := func(off uint64) bool {
		_, taken := a.used[uintToAddr(a.first+uint32(off))]
		return !taken
	}
	off, ok := pick(a.rand, band, a.count, free)
	if !ok {
		off, ok = pick(a.rand, 0, band, free)
	}
	if !ok {
		return netip.Addr{}, errorf(ErrFull, "the service CIDR %s is full: all %d of its addresses are allocated (hub serve --service-cidr can give a larger one)", a.cidr, a.count)
	}
	ip := uintToAddr(a.first + uint32(off))
	a.used[ip] = owner
	return ip, nil
}

// Release frees every address of owner.
func (a *ServiceIPs) Release(owner string) { release(a.used, owner) }

// Free is how many addresses are left.
func (a *ServiceIPs) Free() int { return int(a.count) - len(a.used) }
