package proxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Each constructor here returns one rule as both nft text and the
// expressions the kernel runs. Registers: 1 is the first 16-byte register;
// 8, 9 and 10 are the 4-byte registers that overlap it, which a
// concatenation (address . protocol . port) fills one field each.
const (
	reg1       = 1
	reg32First = 8
)

// Header offsets.
const (
	offSaddr = 12 // IPv4 source address
	offDaddr = 16 // IPv4 destination address
	offDport = 2  // TCP/UDP destination port
)

func loadDaddr(reg uint32) expr.Any {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offDaddr, Len: 4}
}

func loadSaddr(reg uint32) expr.Any {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: offSaddr, Len: 4}
}

func loadDport(reg uint32) expr.Any {
	return &expr.Payload{OperationType: expr.PayloadLoad, DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: offDport, Len: 2}
}

// ipv4Only matches IPv4 packets: the table is inet (both families pass
// through it) and every address match below reads an IPv4 header.
func ipv4Only() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// tupleKey loads daddr . l4proto . dport into registers 8, 9, 10.
func tupleKey() []expr.Any {
	return []expr.Any{
		loadDaddr(reg32First),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32First + 1},
		loadDport(reg32First + 2),
	}
}

func verdict(kind expr.VerdictKind, chain string) expr.Any {
	return &expr.Verdict{Kind: kind, Chain: chain}
}

// ruleJump is "jump CHAIN".
func ruleJump(chain string) rule {
	return rule{text: "jump " + chain, exprs: func() []expr.Any { return []expr.Any{verdict(expr.VerdictJump, chain)} }}
}

// ruleGoto is "goto CHAIN".
func ruleGoto(chain string) rule {
	return rule{text: "goto " + chain, exprs: func() []expr.Any { return []expr.Any{verdict(expr.VerdictGoto, chain)} }}
}

// ruleNewJump is "ct state new jump CHAIN".
func ruleNewJump(chain string) rule {
	return rule{
		text: "ct state new jump " + chain,
		exprs: func() []expr.Any {
			return []expr.Any{
				&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
				verdict(expr.VerdictJump, chain),
			}
		},
	}
}

// ruleTupleVmap is "ip daddr . meta l4proto . th dport vmap @MAP".
func ruleTupleVmap(mapName string) rule {
	return rule{text: "meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @" + mapName, exprs: func() []expr.Any {
		ex := ipv4Only()
		ex = append(ex, tupleKey()...)
		return append(ex, &expr.Lookup{SourceRegister: reg32First, SetName: mapName, IsDestRegSet: true, DestRegister: 0})
	}}
}

// ruleNodePortVmap is "ip daddr @nodeport-ips meta l4proto . th dport vmap @MAP".
func ruleNodePortVmap(mapName string) rule {
	ex := func() []expr.Any {
		return append(ipv4Only(),
			loadDaddr(reg1),
			&expr.Lookup{SourceRegister: reg1, SetName: setNodePortIPs},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32First},
			loadDport(reg32First+1),
			&expr.Lookup{SourceRegister: reg32First, SetName: mapName, IsDestRegSet: true, DestRegister: 0},
		)
	}
	return rule{text: "meta nfproto ipv4 ip daddr @" + setNodePortIPs + " meta l4proto . th dport vmap @" + mapName, exprs: ex}
}

// ruleSetMark is "meta mark set meta mark | 0x4000".
func ruleSetMark() rule {
	return rule{
		text: fmt.Sprintf("meta mark set meta mark | %#x", masqMark),
		exprs: func() []expr.Any {
			return []expr.Any{
				&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
				&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
					Mask: binaryutil.NativeEndian.PutUint32(^uint32(masqMark)), Xor: binaryutil.NativeEndian.PutUint32(masqMark)},
				&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
			}
		},
	}
}

// masqueradeRules is the postrouting side of the mark: unmarked packets
// return; marked ones lose the mark and are masqueraded.
func masqueradeRules() []rule {
	return []rule{
		{
			text: fmt.Sprintf("meta mark & %#x == 0 return", masqMark),
			exprs: func() []expr.Any {
				return []expr.Any{
					&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
					&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
						Mask: binaryutil.NativeEndian.PutUint32(masqMark), Xor: make([]byte, 4)},
					&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: make([]byte, 4)},
					verdict(expr.VerdictReturn, ""),
				}
			},
		},
		{
			text: fmt.Sprintf("meta mark set meta mark ^ %#x", masqMark),
			exprs: func() []expr.Any {
				return []expr.Any{
					&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
					&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
						Mask: binaryutil.NativeEndian.PutUint32(^uint32(0)), Xor: binaryutil.NativeEndian.PutUint32(masqMark)},
					&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
				}
			},
		},
		{text: "masquerade fully-random", exprs: func() []expr.Any { return []expr.Any{&expr.Masq{FullyRandom: true}} }},
	}
}

// rejectRules answer a new connection at once: a TCP reset for TCP, an
// ICMP port unreachable for anything else.
func rejectRules() []rule {
	return []rule{
		{
			text: "meta l4proto tcp reject with tcp reset",
			exprs: func() []expr.Any {
				return []expr.Any{
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_TCP}},
					&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
				}
			},
		},
		{
			text: "reject with icmpx port-unreachable",
			exprs: func() []expr.Any {
				return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}}
			},
		},
	}
}

// ruleClusterIPMasq is "ip daddr CIP th dport PORT ip saddr != PODCIDR
// jump mark-for-masquerade": ClusterIP traffic that does not come from
// this node's pods (the node itself, or routed in from elsewhere) is
// masqueraded, so that the endpoint's reply comes back through this node.
func ruleClusterIPMasq(cip netip.Addr, port uint16, podCIDR netip.Prefix) rule {
	ex := func() []expr.Any {
		ex := []expr.Any{
			loadDaddr(reg1),
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: cip.AsSlice()},
			loadDport(reg1),
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(port)},
		}
		ex = append(ex, saddrInPrefix(podCIDR, expr.CmpOpNeq)...)
		return append(ex, verdict(expr.VerdictJump, chainMarkMasq))
	}
	return rule{
		text:  fmt.Sprintf("ip daddr %s th dport %d ip saddr != %s jump %s", cip, port, podCIDR, chainMarkMasq),
		exprs: ex,
	}
}

// saddrInPrefix compares the source address's network part with p's.
func saddrInPrefix(p netip.Prefix, op expr.CmpOp) []expr.Any {
	mask := make([]byte, 4)
	binary.BigEndian.PutUint32(mask, ^uint32(0)<<(32-p.Bits()))
	if p.Bits() == 0 {
		mask = make([]byte, 4)
	}
	return []expr.Any{
		loadSaddr(reg1),
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: reg1, Data: p.Masked().Addr().AsSlice()},
	}
}

// rulePodSourceGoto is "ip saddr PODCIDR goto CHAIN".
func rulePodSourceGoto(podCIDR netip.Prefix, chain string) rule {
	return rule{text: fmt.Sprintf("ip saddr %s goto %s", podCIDR, chain), exprs: func() []expr.Any {
		return append(saddrInPrefix(podCIDR, expr.CmpOpEq), verdict(expr.VerdictGoto, chain))
	}}
}

// ruleLocalSource is "fib saddr type local" followed by a verdict: traffic
// the node sends itself.
func ruleLocalSource(kind expr.VerdictKind, chain string) rule {
	word := "jump"
	if kind == expr.VerdictGoto {
		word = "goto"
	}
	return rule{
		text: "fib saddr type local " + word + " " + chain,
		exprs: func() []expr.Any {
			return []expr.Any{
				&expr.Fib{Register: reg1, FlagSADDR: true, ResultADDRTYPE: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
				verdict(kind, chain),
			}
		},
	}
}

// ruleHairpin is "ip saddr EP jump mark-for-masquerade": a pod that
// reaches itself through its Service gets its packets back from the node's
// address, not its own (which it would drop as a martian reply).
func ruleHairpin(ep netip.Addr) rule {
	return rule{
		text: fmt.Sprintf("ip saddr %s jump %s", ep, chainMarkMasq),
		exprs: func() []expr.Any {
			return []expr.Any{
				loadSaddr(reg1),
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ep.AsSlice()},
				verdict(expr.VerdictJump, chainMarkMasq),
			}
		},
	}
}

// ruleAffinityUpdate is "update @SET { ip saddr }": remember (or refresh)
// that this client went to this endpoint.
func ruleAffinityUpdate(set string) rule {
	return rule{
		text: "update @" + set + " { ip saddr }",
		exprs: func() []expr.Any {
			return []expr.Any{
				loadSaddr(reg1),
				&expr.Dynset{SrcRegKey: reg1, SetName: set, Operation: unix.NFT_DYNSET_OP_UPDATE},
			}
		},
	}
}

// ruleAffinityGoto is "ip saddr @SET goto CHAIN": a client seen lately
// goes back to the same endpoint.
func ruleAffinityGoto(set, chain string) rule {
	return rule{
		text: "ip saddr @" + set + " goto " + chain,
		exprs: func() []expr.Any {
			return []expr.Any{
				loadSaddr(reg1),
				&expr.Lookup{SourceRegister: reg1, SetName: set},
				verdict(expr.VerdictGoto, chain),
			}
		},
	}
}

// ruleDNAT is "dnat ip to EP:PORT".
func ruleDNAT(ep netip.AddrPort) rule {
	return rule{
		text: fmt.Sprintf("dnat ip to %s", ep),
		exprs: func() []expr.Any {
			return []expr.Any{
				&expr.Immediate{Register: 1, Data: ep.Addr().AsSlice()},
				&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(ep.Port())},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
			}
		},
	}
}

// ruleBalance spreads new connections at random over the endpoint chains:
// "numgen random mod N vmap { 0 : goto A, 1 : goto B, ... }". The
// anonymous map is made when the rule is added.
func ruleBalance(targets []string) rule {
	parts := make([]string, len(targets))
	for i, t := range targets {
		parts[i] = fmt.Sprintf("%d : goto %s", i, t)
	}
	return rule{
		text: fmt.Sprintf("numgen random mod %d vmap { %s }", len(targets), strings.Join(parts, ", ")),
		exprs: func() []expr.Any {
			return []expr.Any{&expr.Numgen{Register: reg1, Modulus: uint32(len(targets)), Type: unix.NFT_NG_RANDOM}}
		},
		vmap: targets,
	}
}

// ruleDrop is "drop".
func ruleDrop() rule {
	return rule{text: "drop", exprs: func() []expr.Any { return []expr.Any{verdict(expr.VerdictDrop, "")} }}
}
