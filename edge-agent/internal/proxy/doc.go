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
// Why nftables and not iptables, for the kernels of real boards: Debian
// 12's kernel builds nf_tables with inet NAT, numgen, fib, reject, masq
// and ct as modules (checked in linux-image-6.1.0-57-amd64's config;
// Raspberry Pi OS's 6.1 and 6.6 kernels were not checked here);
// google/nftables speaks netlink itself, so the agent needs neither the
// nft nor the iptables binary (neither is on a minimal image, and the
// tests here use neither); a batch is one atomic transaction that changes
// only what it names, so a one-endpoint change to 1,000 Services × 10
// endpoints takes 19 ms, against 106 ms for iptables-legacy-restore
// (which rewrites the whole table) and 30 ms for iptables-nft-restore; and
// a Service is one map lookup however many there are. Loading all 1,000
// at once is slower here (1.3 s, against 0.2 and 0.6 s), once per boot.
// docs/benchmarks.md ("Services in the kernel") has the figures and
// commands.
//
// The node must forward IPv4, pass bridged IPv4 through netfilter
// (br_netfilter, net.bridge.bridge-nf-call-iptables=1: a pod's reply to a
// pod on the same bridge is bridged, and must be translated back), put
// its bridge ports in hairpin mode (a pod reaching itself through its
// Service), and route the Service CIDR (for the node's own connections to
// a ClusterIP when it has no default route).
package proxy
