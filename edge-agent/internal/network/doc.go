// Package network is the node's pod network: each pod that is not on the
// host network gets a network namespace of its own, held by a bind mount
// under the agent's state directory (no pause container), attached once
// through CNI (libcni driving the standard bridge, host-local, portmap
// and loopback plugins) with an address from the node's pod CIDR. It
// also keeps the node's side in step with the snapshot's Network: the
// bridge and its address, host-gateway routes to the site's peers, the
// masquerade of traffic leaving the cluster, and the kernel settings the
// Service rules need.
//
// What it knows of each pod is on disk (a record per pod, host-local's
// allocations, libcni's cache, the bind mount), so a restarted agent finds
// its pods' namespaces and addresses again, and after a reboot (the bind
// mounts gone) rebuilds them from the same files.
package network
