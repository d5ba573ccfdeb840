package ingress

import (
	"net"
	"strconv"
	"sync/atomic"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Endpoints are the ready endpoints of each backend, "ip:port", taken in
// turn. Like a Table they are immutable once built and swapped whole.
type Endpoints struct {
	sets map[string]*endpointSet
}

type endpointSet struct {
	addrs []string
	next  atomic.Uint32
}

// BuildEndpoints finds each backend's ready endpoints among services (the
// node's merged view: the hub's endpoints, with the node's own pods as
// the agent sees them): a Service's endpoints that are ready and serve
// the backend's port.
func BuildEndpoints(backends []*Backend, services []wire.Service) *Endpoints {
	byName := make(map[string]*wire.Service, len(services))
	for i := range services {
		s := &services[i]
		byName[s.Namespace+"/"+s.Name] = s
	}
	e := &Endpoints{sets: make(map[string]*endpointSet, len(backends))}
	for _, b := range backends {
		set := &endpointSet{}
		e.sets[b.Key] = set
		svc := byName[b.Namespace+"/"+b.Service]
		if svc == nil || b.Missing != "" {
			continue
		}
		for _, ep := range svc.Endpoints {
			port, ok := ep.Ports[b.PortName]
			if !ep.Ready || !ok || port <= 0 || ep.IP == "" {
				continue
			}
			set.addrs = append(set.addrs, net.JoinHostPort(ep.IP, strconv.Itoa(int(port))))
		}
	}
	return e
}

// pick returns a backend's endpoints, starting with the one whose turn it
// is; nil when it has none.
func (e *Endpoints) pick(key string) ([]string, int) {
	if e == nil {
		return nil, 0
	}
	set := e.sets[key]
	if set == nil || len(set.addrs) == 0 {
		return nil, 0
	}
	return set.addrs, int(set.next.Add(1)-1) % len(set.addrs)
}

// Ready is how many ready endpoints a backend has.
func (e *Endpoints) Ready(key string) int {
	if e == nil || e.sets[key] == nil {
		return 0
	}
	return len(e.sets[key].addrs)
}
