package network

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The node's side of the pod network: kernel settings, the bridge, the
// masquerade of traffic leaving the cluster.

// Kernel settings the pod network and the Service rules need.
const (
	sysctlForward   = "net/ipv4/ip_forward"
	sysctlBridgeNF  = "net/bridge/bridge-nf-call-iptables"
	masqTable       = "flotilla-pods"
	masqChain       = "postrouting"
	modprobeTimeout = 10 * time.Second
)

// setSysctls turns on IPv4 forwarding (pods reach beyond the node) and
// br_netfilter's call of the IPv4 hooks for bridged packets (a pod's
// reply to a pod on the same bridge must be translated back by the
// Service rules). It loads br_netfilter if the kernel has not.
func setSysctls(ctx context.Context) error {
	if err := writeSysctl(sysctlForward, "1"); err != nil {
		return err
	}
	if _, err := os.Stat("/proc/sys/" + sysctlBridgeNF); errors.Is(err, os.ErrNotExist) {
		ctx, cancel := context.WithTimeout(ctx, modprobeTimeout)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "modprobe", "br_netfilter").CombinedOutput(); err != nil {
			return fmt.Errorf("load br_netfilter (modprobe br_netfilter: %v: %s): Services cannot answer pods on the same node without it", err, out)
		}
	}
	return writeSysctl(sysctlBridgeNF, "1")
}

func writeSysctl(key, value string) error {
	path := "/proc/sys/" + key
	if b, err := os.ReadFile(path); err == nil && string(b) == value+"\n" {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// ensureBridge makes the node's bridge, with the gateway address of its
// pod CIDR and no other IPv4 address, and brings it up. It exists before
// the first pod, so that the node's DNS server can bind its address and
// the Service CIDR's route can name it. Its MAC address is fixed (from
// the pod CIDR): a bridge otherwise takes the lowest of its ports', and
// pods would see their gateway's address change as pods come and go.
func ensureBridge(h *netlink.Handle, podCIDR netip.Prefix) error {
	link, err := h.LinkByName(BridgeName)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName, HardwareAddr: bridgeMAC(podCIDR)}}
		if err := h.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", BridgeName, err)
		}
		if link, err = h.LinkByName(BridgeName); err != nil {
			return fmt.Errorf("bridge %s: %w", BridgeName, err)
		}
	case err != nil:
		return fmt.Errorf("bridge %s: %w", BridgeName, err)
	case link.Type() != "bridge":
		return fmt.Errorf("%s is a %s, not a bridge: the pod network needs that name for its bridge", BridgeName, link.Type())
	}
	gw := Gateway(podCIDR)
	want := &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(podCIDR.Bits(), 32)}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("bridge %s: list addresses: %w", BridgeName, err)
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			have = true
			continue
		}
		// A pod CIDR of before (the node was made again with another): the
		// bridge plugin refuses a bridge with another IPv4 address.
		if err := h.AddrDel(link, &a); err != nil {
			return fmt.Errorf("bridge %s: remove old address %s: %w", BridgeName, a.IPNet, err)
		}
	}
	if !have {
		if err := h.AddrAdd(link, &netlink.Addr{IPNet: want}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("bridge %s: add address %s: %w", BridgeName, want, err)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("bridge %s: set up: %w", BridgeName, err)
		}
	}
	return nil
}

// bridgeMAC is a locally administered unicast address derived from the
// pod CIDR.
func bridgeMAC(podCIDR netip.Prefix) net.HardwareAddr {
	sum := sha256.Sum256([]byte("flotilla0 " + podCIDR.String()))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

// setMasquerade makes the table ip flotilla-pods hold one rule: traffic
// from the node's pods to anything outside the cluster CIDR (and not
// multicast) leaves with the node's address. Traffic between pods, of
// this node or of a peer, keeps its addresses. The table is replaced in
// one transaction; connections already masqueraded keep their mapping
// (conntrack holds it).
func setMasquerade(netnsFD int, podCIDR, clusterCIDR netip.Prefix) error {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if netnsFD >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFD))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("masquerade: open nftables: %w", err)
	}
	defer c.CloseLasting()
	t := &nftables.Table{Name: masqTable, Family: nftables.TableFamilyIPv4}
	c.AddTable(t) // so that the delete below finds it
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name: masqChain, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	ex := append(matchPrefix(12, podCIDR, expr.CmpOpEq), matchPrefix(16, clusterCIDR, expr.CmpOpNeq)...)
	ex = append(ex, matchPrefix(16, netip.MustParsePrefix("224.0.0.0/4"), expr.CmpOpNeq)...)
	ex = append(ex, &expr.Masq{})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: ex})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("masquerade: program table ip %s: %w", masqTable, err)
	}
	return nil
}

// removeMasquerade deletes the table, if it is there.
func removeMasquerade(netnsFD int) error {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if netnsFD >= 0 {
		opts = append(opts, nftables.WithNetNSFd(netnsFD))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return fmt.Errorf("masquerade: open nftables: %w", err)
	}
	defer c.CloseLasting()
	t := &nftables.Table{Name: masqTable, Family: nftables.TableFamilyIPv4}
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("masquerade: delete table ip %s: %w", masqTable, err)
	}
	return nil
}

// matchPrefix compares the IPv4 header's address at offset (12: source,
// 16: destination), masked to p's length, with p's network.
func matchPrefix(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := make([]byte, 4)
	if p.Bits() > 0 {
		binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}
