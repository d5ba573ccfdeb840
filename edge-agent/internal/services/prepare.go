package services

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// ErrNoBridge is PrepareNode's answer while no interface holds the bridge
// address: the pod network makes the bridge with the node's first pod.
var ErrNoBridge = errors.New("no interface holds the pod bridge's address yet")

// Where the kernel settings Services need are.
const (
	sysctlForward      = "/proc/sys/net/ipv4/ip_forward"
	sysctlBridgeNFCall = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	modprobeTimeout    = 5 * time.Second
	brNetfilterModule  = "br_netfilter"
)

// PrepareNode readies the node's network namespace for the Service rules
// once the pod bridge (the interface holding bridge) exists: IPv4
// forwarding on; bridged IPv4 through netfilter (br_netfilter, loaded
// with modprobe if need be, and net.bridge.bridge-nf-call-iptables=1), so
// that a pod's reply to a pod on the same bridge is translated back; and
// a route for serviceCIDR (unless it is the zero Prefix) through the
// bridge, because the node's own connections to a ClusterIP need a route
// before nftables translates them, and a board of a cut-off site may have
// no default route. It is idempotent: the agent calls it again at every
// resync, which mends a bridge made anew.
func PrepareNode(bridge netip.Addr, serviceCIDR netip.Prefix) error {
	idx, err := interfaceHolding(bridge)
	if err != nil {
		return err
	}
	var errs []error
	if err := os.WriteFile(sysctlForward, []byte("1"), 0o644); err != nil {
		errs = append(errs, fmt.Errorf("turn IPv4 forwarding on: %w", err))
	}
	if err := bridgeNetfilter(); err != nil {
		errs = append(errs, err)
	}
	if serviceCIDR.IsValid() {
		dst := &net.IPNet{IP: serviceCIDR.Addr().AsSlice(), Mask: net.CIDRMask(serviceCIDR.Bits(), serviceCIDR.Addr().BitLen())}
		route := &netlink.Route{LinkIndex: idx, Dst: dst, Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(route); err != nil {
			errs = append(errs, fmt.Errorf("route the Service CIDR %s through the pod bridge: %w", serviceCIDR, err))
		}
	}
	return errors.Join(errs...)
}

// interfaceHolding is the index of the interface that has addr.
func interfaceHolding(addr netip.Addr) (int, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("list interfaces: %w", err)
	}
	for _, iface := range ifaces {
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap() == addr {
					return iface.Index, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("%w (%s)", ErrNoBridge, addr)
}

// bridgeNetfilter sends bridged IPv4 through netfilter, loading
// br_netfilter first if its settings are not there.
func bridgeNetfilter() error {
	if _, err := os.Stat(sysctlBridgeNFCall); errors.Is(err, os.ErrNotExist) {
		ctx, cancel := context.WithTimeout(context.Background(), modprobeTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "modprobe", brNetfilterModule).CombinedOutput()
		if err != nil {
			return fmt.Errorf("load %s (pods reaching a Service whose endpoint is on this node need it; load it at boot): modprobe: %w: %s",
				brNetfilterModule, err, strings.TrimSpace(string(out)))
		}
	}
	if err := os.WriteFile(sysctlBridgeNFCall, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("send bridged traffic through netfilter: %w", err)
	}
	return nil
}
