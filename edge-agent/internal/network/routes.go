package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// RouteProtocol marks the routes the package owns (`ip route` shows
// "proto 241"): it changes and deletes those, and no others.
const RouteProtocol = 241

// route is one route the package keeps: to Dst via a gateway (a peer's
// pod CIDR through its address), or on a device (the Service CIDR on the
// bridge).
type route struct {
	Dst netip.Prefix
	Via netip.Addr // invalid: on Dev
	Dev string
}

func (r route) String() string {
	if r.Via.IsValid() {
		return r.Dst.String() + " via " + r.Via.String()
	}
	return r.Dst.String() + " dev " + r.Dev
}

// wantRoutes is the routes a node keeps for its network: one per site peer
// to its pod CIDR through its address, and, on a node with no default
// route, the Service CIDR on the bridge (a ClusterIP is translated only
// after the kernel has found a route for it). A peer that cannot be routed
// (a bad address or CIDR, the node's own CIDR, a CIDR outside the cluster
// CIDR or overlapping another peer's) is left out and named in the error.
func wantRoutes(n *parsed, peers []wire.NetworkPeer, hasDefault bool) ([]route, error) {
	var out []route
	var errs []error
	taken := []netip.Prefix{n.podCIDR}
	for _, p := range peers {
		cidr, err := netip.ParsePrefix(p.PodCIDR)
		if err != nil || !cidr.Addr().Is4() || cidr.Masked() != cidr {
			errs = append(errs, fmt.Errorf("peer %s: podCIDR %q is not an IPv4 network", p.Node, p.PodCIDR))
			continue
		}
		via, err := netip.ParseAddr(p.IP)
		if err != nil || !via.Is4() || via.IsUnspecified() || via.IsLoopback() || via.IsMulticast() {
			errs = append(errs, fmt.Errorf("peer %s: ip %q is not a unicast IPv4 address", p.Node, p.IP))
			continue
		}
		if n.clusterCIDR.IsValid() && !(n.clusterCIDR.Contains(cidr.Addr()) && cidr.Bits() >= n.clusterCIDR.Bits()) {
			errs = append(errs, fmt.Errorf("peer %s: podCIDR %s is outside the cluster CIDR %s", p.Node, cidr, n.clusterCIDR))
			continue
		}
		if i := slices.IndexFunc(taken, cidr.Overlaps); i >= 0 {
			errs = append(errs, fmt.Errorf("peer %s: podCIDR %s overlaps %s", p.Node, cidr, taken[i]))
			continue
		}
		if cidr.Contains(via) {
			errs = append(errs, fmt.Errorf("peer %s: ip %s is inside its own podCIDR %s", p.Node, via, cidr))
			continue
		}
		taken = append(taken, cidr)
		out = append(out, route{Dst: cidr, Via: via})
	}
	if !hasDefault && n.serviceCIDR.IsValid() {
		out = append(out, route{Dst: n.serviceCIDR, Dev: BridgeName})
	}
	return out, errors.Join(errs...)
}

// diffRoutes returns what makes have (the package's routes in the kernel)
// into want: routes to add or change, and routes to delete. A route to a
// destination that is wanted, but by another way, is replaced, not
// deleted.
func diffRoutes(want, have []route) (add, del []route) {
	for _, w := range want {
		if !slices.Contains(have, w) {
			add = append(add, w)
		}
	}
	for _, h := range have {
		if !slices.Contains(want, h) && !slices.ContainsFunc(want, func(w route) bool { return w.Dst == h.Dst }) {
			del = append(del, h)
		}
	}
	sortRoutes(add)
	sortRoutes(del)
	return add, del
}

func sortRoutes(rs []route) {
	slices.SortFunc(rs, func(a, b route) int {
		if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
			return c
		}
		return a.Dst.Bits() - b.Dst.Bits()
	})
}

// kernelRoutes reads the package's routes (RouteProtocol) from the main
// table, and whether the table has a default route.
func kernelRoutes(h *netlink.Handle) (own []route, hasDefault bool, err error) {
	all, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, false, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range all {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() && prefixLen(r.Dst) == 0 {
			hasDefault = true
			continue
		}
		if r.Protocol != RouteProtocol {
			continue
		}
		dst, ok := netipPrefix(r.Dst)
		if !ok {
			continue
		}
		rt := route{Dst: dst}
		if gw, ok := netip.AddrFromSlice(r.Gw.To4()); ok && r.Gw != nil {
			rt.Via = gw
		} else if link, err := h.LinkByIndex(r.LinkIndex); err == nil {
			rt.Dev = link.Attrs().Name
		}
		own = append(own, rt)
	}
	return own, hasDefault, nil
}

// applyRoutes adds (or replaces) and deletes routes; every failure is
// named in the error, and the others still go through.
func applyRoutes(h *netlink.Handle, add, del []route) error {
	var errs []error
	for _, r := range del {
		nr, err := netlinkRoute(h, r)
		if err == nil {
			err = h.RouteDel(nr)
		}
		if err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r, err))
		}
	}
	for _, r := range add {
		nr, err := netlinkRoute(h, r)
		if err == nil {
			err = h.RouteReplace(nr)
		}
		if err != nil {
			hint := ""
			if errors.Is(err, unix.ENETUNREACH) {
				hint = " (the peer's address is not on a network this node is on: peers of a site must share its LAN)"
			}
			errs = append(errs, fmt.Errorf("add route %s: %w%s", r, err, hint))
		}
	}
	return errors.Join(errs...)
}

func netlinkRoute(h *netlink.Handle, r route) (*netlink.Route, error) {
	nr := &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)},
		Table:    unix.RT_TABLE_MAIN,
		Protocol: RouteProtocol,
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
		return nr, nil
	}
	link, err := h.LinkByName(r.Dev)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", r.Dev, err)
	}
	nr.LinkIndex = link.Attrs().Index
	nr.Scope = netlink.SCOPE_LINK
	return nr, nil
}

func prefixLen(n *net.IPNet) int {
	ones, _ := n.Mask.Size()
	return ones
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, prefixLen(n)), true
}

// describeRoutes is a short list of routes for a log line.
func describeRoutes(rs []route) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}
