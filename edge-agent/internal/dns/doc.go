// Package dns is the agent's cluster DNS: a server, on the node's bridge
// address, that answers the cluster's Service names from a table the agent
// replaces atomically (as CoreDNS's kubernetes plugin answers them) and
// forwards every other name to the node's own resolvers through a small
// cache; and the /etc/resolv.conf each pod gets for its dnsPolicy, as
// kubelet forms it. Cluster names keep resolving with no upstream at all.
package dns
