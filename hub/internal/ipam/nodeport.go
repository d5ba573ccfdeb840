package ipam

import (
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// NodePorts hands out NodePort Services' node ports. A port is taken per
// protocol: 30053/UDP and 30053/TCP may belong to different Services,
// since the nodes' packet rules match on both. Dynamic allocations come
// from above the range's static band (its first 16 to 128 ports) while
// they can, at a random place, as ServiceIPs does.
type NodePorts struct {
	ports PortRange
	used  map[portProto]string
	rand  Rand
}

type portProto struct {
	port     int
	protocol api.Protocol
}

// NewNodePorts returns an allocator for ports with nothing in use. r may
// be nil for DefaultRand.
func NewNodePorts(ports PortRange, r Rand) *NodePorts {
	if r == nil {
		r = DefaultRand
	}
	return &NodePorts{ports: ports, used: map[portProto]string{}, rand: r}
}

// Use records that owner (a Service, "namespace/name") holds port for
// protocol, as the store says.
func (a *NodePorts) Use(port int, protocol api.Protocol, owner string) {
	a.used[portProto{port, protocol}] = owner
}

// Request gives owner the port it asks for protocol, if it is in the
// range and free for that protocol (or owner's already).
func (a *NodePorts) Request(port int, protocol api.Protocol, owner string) error {
	return a.RequestAll(port, []api.Protocol{protocol}, owner)
}

// RequestAll gives owner port for every one of protocols, or, if it
// cannot have it for one of them, for none.
func (a *NodePorts) RequestAll(port int, protocols []api.Protocol, owner string) error {
	if !a.ports.Contains(port) {
		return errorf(ErrOutOfRange, "%d is not in the node port range %s (hub serve --service-node-port-range)", port, a.ports)
	}
	for _, p := range protocols {
		if o, taken := a.used[portProto{port, p}]; taken && o != owner {
			return errorf(ErrInUse, "%d/%s is already allocated to Service %s", port, p, o)
		}
	}
	for _, p := range protocols {
		a.used[portProto{port, p}] = owner
	}
	return nil
}

// Allocate gives owner a port free for every one of protocols (a Service
// port number with TCP and UDP gets one node port for both).
func (a *NodePorts) Allocate(owner string, protocols ...api.Protocol) (int, error) {
	n := uint64(a.ports.Size())
	band := staticBand(n, 16, 128, 32)
	free := func(off uint64) bool {
		for _, p := range protocols {
			if _, taken := a.used[portProto{a.ports.First + int(off), p}]; taken {
				return false
			}
		}
		return true
	}
	off, ok := pick(a.rand, band, n, free)
	if !ok {
		off, ok = pick(a.rand, 0, band, free)
	}
	if !ok {
		names := make([]string, len(protocols))
		for i, p := range protocols {
			names[i] = string(p)
		}
		return 0, errorf(ErrFull, "no port of the node port range %s is free for %s: all %d are allocated (hub serve --service-node-port-range can give a larger range)",
			a.ports, strings.Join(names, " and "), n)
	}
	port := a.ports.First + int(off)
	for _, p := range protocols {
		a.used[portProto{port, p}] = owner
	}
	return port, nil
}

// Release frees every port of owner.
func (a *NodePorts) Release(owner string) { release(a.used, owner) }
