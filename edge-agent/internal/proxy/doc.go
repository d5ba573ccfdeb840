// Package proxy is the kernel data path of Services: it programs the
// node's nftables table inet flotilla so that ClusterIP:port (from the
// node's pods and the node itself) and NODE_IP:nodePort (from the LAN, the
// node and its pods) are translated to a ready endpoint, chosen at random
// per connection, with ClientIP affinity, the Local traffic policies,
// masquerading where a reply would otherwise miss the node, and an
// immediate refusal (TCP reset, ICMP port unreachable) for a Service with
// no ready endpoint. No packet passes through user space.
//
// Sync takes the node's Services ([]wire.Service) and changes only what
// differs from what the table holds, in one nftables transaction: map
// elements are added and deleted one by one, a chain is rewritten only if
// its rules change, and the table is never deleted while a Service
// remains, so established connections (their translation lives in
// conntrack) and unchanged Services are not disturbed. Only the table
// inet flotilla is ever touched; other tables (a firewall's, Docker's,
// iptables-nft's) are left alone.
//
// The layout follows kube-proxy's nftables mode: verdict maps from
// (address, protocol, port) to a Service port's chain, which picks an
// endpoint chain with "numgen random mod N" over an anonymous verdict map;
// the endpoint chain marks hairpin traffic for masquerade and DNATs. The
// rules stay in the kernel when the agent stops or dies and keep serving;
// the next Sync reads the table back (each chain's first rule carries a
// digest of the chain in its comment) and changes only what differs.
//
// Why nftables and not iptables, for the kernels of real boards: Debian 12
// (6.1) and Raspberry Pi OS (6.1, 6.6) kernels ship nf_tables with NAT,
// numgen, fib, reject and dynamic sets; google/nftables speaks netlink
// directly, so the agent needs no iptables or nft binary (neither is on a
// minimal image); a batch is one atomic transaction, where iptables-restore
// replaces whole tables; and maps look up a Service in one hash lookup
// whatever the number of Services, where iptables walks a rule per Service.
// docs/benchmarks.md has the figures.
//
// The node must forward IPv4, pass bridged IPv4 through netfilter
// (br_netfilter, net.bridge.bridge-nf-call-iptables=1: a pod's reply to a
// pod on the same bridge is bridged, and must be translated back), put
// its bridge ports in hairpin mode (a pod reaching itself through its
// Service), and route the Service CIDR (for the node's own connections to
// a ClusterIP when it has no default route).
package proxy
