package dispatch

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"slices"
	"strconv"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The network part of the snapshots. Nodes with the same
// LabelZone value form a site, which shares a layer-2 network: their pods
// reach each other through routes to each other's pod subnets. A node
// without the label is a site of its own. Every node with a Node object
// is sent every Service, with the endpoints of its own site only (pods of
// another site cannot be reached); and, once it has a pod subnet, its
// Network: that subnet, the cluster's plan, and its site's other nodes
// (peers) with their addresses and subnets. The nodes of a site have the
// same Services, so they are built once per site, when a Service, an
// Endpoints object with addresses in the site, or the site's nodes
// change; an endpoint's change gives only its site's nodes a new
// revision.

// LabelZone is the node label whose value names a node's site.
const LabelZone = "topology.kubernetes.io/zone"

// siteState is one site: its nodes, and what identifies the Services as
// they are sent to them.
type siteState struct {
	key     string
	members map[string]*nodeState
	// stale: digest must be worked out again.
	stale bool
	// digest identifies the site's Services (every Service, with the
	// site's endpoints) in its nodes' content hash; "" when there are no
	// Services. The Services themselves are built only for a snapshot
	// that goes out (servicesFor), not kept: a fleet of single-node sites
	// would otherwise hold every Service once per node.
	digest string
}

// cachedService is one Service as snapshots carry it, without endpoints.
type cachedService struct {
	src *api.Service
	svc wire.Service
	// digest is the hash of svc's JSON.
	digest [sha256.Size]byte
}

// cachedEndpoints is one Endpoints object as snapshots carry it: one
// entry per pod, every site's.
type cachedEndpoints struct {
	src *api.Endpoints
	eps []wire.Endpoint
}

// siteKey is the site a node belongs to: its zone, or the node alone.
func siteKey(node string, labels map[string]string) string {
	if z, ok := labels[LabelZone]; ok && z != "" {
		return "zone/" + z
	}
	return "node/" + node
}

// site returns the site of key, making it. The caller holds d.mu.
func (d *Dispatcher) site(key string) *siteState {
	s := d.sites[key]
	if s == nil {
		s = &siteState{key: key, members: map[string]*nodeState{}, stale: true}
		d.sites[key] = s
	}
	return s
}

// moveToSite puts ns in the site of key, leaving its old one. The caller
// holds d.mu.
func (d *Dispatcher) moveToSite(ns *nodeState, key string) {
	if ns.site == key {
		return
	}
	if old := d.sites[ns.site]; old != nil {
		delete(old.members, ns.name)
		d.siteChanged(old, true)
		if len(old.members) == 0 {
			delete(d.sites, old.key)
		}
	}
	ns.site = key
	s := d.site(key)
	s.members[ns.name] = ns
	d.siteChanged(s, true)
}

// siteChanged marks every node of s for a new snapshot; services, that
// the site's Services must be built again. The caller holds d.mu.
func (d *Dispatcher) siteChanged(s *siteState, services bool) {
	if services {
		s.stale = true
	}
	for _, ns := range s.members {
		d.markDirty(ns)
	}
}

// setNodeNetwork records what of node the network part uses (site,
// address, subnet; nil: the Node is gone) and marks the nodes whose
// snapshots that changes. The caller holds d.mu.
func (d *Dispatcher) setNodeNetwork(ns *nodeState, node *api.Node) {
	d.setIngressNode(ns.name, node)
	key, ip, cidr := siteKey(ns.name, nil), "", ""
	if node != nil {
		key, ip, cidr = siteKey(ns.name, node.Labels), internalIP(node), node.Spec.PodCIDR
	}
	exists := node != nil
	if exists != ns.exists {
		ns.exists = exists
		d.markDirty(ns) // Services come and go with the Node
	}
	d.moveToSite(ns, key)
	if ip != ns.ip || cidr != ns.podCIDR {
		ns.ip, ns.podCIDR = ip, cidr
		d.siteChanged(d.sites[ns.site], false) // its own Network and its peers'
	}
}

// internalIP is the node's InternalIP: the address its site's peers
// route its pods' subnet through.
func internalIP(n *api.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == "InternalIP" {
			return a.Address
		}
	}
	return ""
}

// setService records a Service (nil: gone) and, if what nodes are sent
// of it changed, marks every site. The caller holds d.mu.
func (d *Dispatcher) setService(key store.Key, svc *api.Service) {
	old := d.services[key]
	if svc == nil {
		if old == nil {
			return
		}
		delete(d.services, key)
	} else {
		if old != nil && old.src == svc {
			return
		}
		c := &cachedService{src: svc, svc: wireService(svc)}
		c.digest = sha256.Sum256(mustJSON(&c.svc))
		d.services[key] = c
		if old != nil && old.digest == c.digest {
			return
		}
	}
	d.serviceOrder = nil
	d.ingressInputsChanged() // a backend's port, perhaps
	for _, s := range d.sites {
		d.siteChanged(s, true)
	}
}

// setEndpoints records an Endpoints object (nil: gone) and marks the
// sites it had or has addresses in. The caller holds d.mu.
func (d *Dispatcher) setEndpoints(key store.Key, ep *api.Endpoints) {
	old := d.endpoints[key]
	var c *cachedEndpoints
	if ep != nil {
		if old != nil && old.src == ep {
			return
		}
		c = &cachedEndpoints{src: ep, eps: wireEndpoints(ep)}
		d.endpoints[key] = c
		if old != nil && equalEndpoints(old.eps, c.eps) {
			return
		}
	} else {
		if old == nil {
			return
		}
		delete(d.endpoints, key)
	}
	// Each site's endpoints, before and after: only the sites whose
	// endpoints changed get new snapshots.
	type change struct{ before, after []wire.Endpoint }
	sites := map[*siteState]*change{}
	for i, ce := range []*cachedEndpoints{old, c} {
		if ce == nil {
			continue
		}
		for _, e := range ce.eps {
			ns := d.nodes[e.Node]
			if ns == nil {
				continue
			}
			s := d.sites[ns.site]
			ch := sites[s]
			if ch == nil {
				ch = &change{}
				sites[s] = ch
			}
			if i == 0 {
				ch.before = append(ch.before, e)
			} else {
				ch.after = append(ch.after, e)
			}
		}
	}
	for s, ch := range sites {
		if !equalEndpoints(ch.before, ch.after) {
			d.siteChanged(s, true)
		}
	}
}

// sortedServices returns the Services' keys in namespace and name
// order. The caller holds d.mu.
func (d *Dispatcher) sortedServices() []store.Key {
	if d.serviceOrder == nil {
		d.serviceOrder = make([]store.Key, 0, len(d.services))
		for k := range d.services {
			d.serviceOrder = append(d.serviceOrder, k)
		}
		slices.SortFunc(d.serviceOrder, func(a, b store.Key) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
	}
	return d.serviceOrder
}

// siteEndpoints are the endpoints of Service k on the nodes of site. The
// caller holds d.mu.
func (d *Dispatcher) siteEndpoints(k store.Key, site string) []wire.Endpoint {
	ce := d.endpoints[store.Key{Kind: api.KindEndpoints, Namespace: k.Namespace, Name: k.Name}]
	if ce == nil {
		return nil
	}
	var out []wire.Endpoint
	for i := range ce.eps {
		if ns := d.nodes[ce.eps[i].Node]; ns != nil && ns.site == site {
			out = append(out, ce.eps[i])
		}
	}
	return out
}

// siteDigest returns what identifies s's Services: the hash of each
// Service's hash and its endpoints in the site. The caller holds d.mu.
func (d *Dispatcher) siteDigest(s *siteState) string {
	if !s.stale {
		return s.digest
	}
	s.stale, s.digest = false, ""
	if len(d.services) == 0 {
		return ""
	}
	h := sha256.New()
	var n [8]byte
	for _, k := range d.sortedServices() {
		c := d.services[k]
		h.Write(c.digest[:])
		var b []byte
		if eps := d.siteEndpoints(k, s.key); len(eps) > 0 {
			b = mustJSON(eps)
		}
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	s.digest = hex.EncodeToString(h.Sum(nil))
	return s.digest
}

// servicesFor returns every Service, with the endpoints of ns's site, as
// ns's snapshot carries them. The caller holds d.mu.
func (d *Dispatcher) servicesFor(ns *nodeState) []wire.Service {
	keys := d.sortedServices()
	out := make([]wire.Service, 0, len(keys))
	for _, k := range keys {
		svc := d.services[k].svc
		svc.Endpoints = d.siteEndpoints(k, ns.site)
		out = append(out, svc)
	}
	return out
}

// getsServices reports whether ns's snapshots carry Services: there are
// some, and ns is a node the hub knows (not one whose Node was deleted).
// The caller holds d.mu.
func (d *Dispatcher) getsServices(ns *nodeState) bool {
	return ns.exists && len(d.services) > 0
}

// networkOf is ns's Network: nil while it has no pod subnet or the hub
// runs no pod network. The caller holds d.mu.
func (d *Dispatcher) networkOf(ns *nodeState) *wire.Network {
	cfg := d.opts.Network
	if !cfg.ClusterCIDR.IsValid() || ns.podCIDR == "" || !ns.exists {
		return nil
	}
	n := &wire.Network{
		PodCIDR: ns.podCIDR, ClusterCIDR: cfg.ClusterCIDR.String(), ServiceCIDR: cfg.ServiceCIDR.String(),
		ClusterDomain: cfg.ClusterDomain,
	}
	if s := d.sites[ns.site]; s != nil {
		for _, m := range s.members {
			if m != ns && m.exists && m.ip != "" && m.podCIDR != "" {
				n.Peers = append(n.Peers, wire.NetworkPeer{Node: m.name, IP: m.ip, PodCIDR: m.podCIDR})
			}
		}
	}
	slices.SortFunc(n.Peers, func(a, b wire.NetworkPeer) int { return cmp.Compare(a.Node, b.Node) })
	return n
}

// wireService is a Service as nodes receive it, endpoints aside.
func wireService(s *api.Service) wire.Service {
	spec := &s.Spec
	w := wire.Service{
		Namespace: s.Namespace, Name: s.Name, Type: string(spec.Type), ClusterIP: spec.ClusterIP,
		Selector:               spec.Selector,
		AffinityTimeoutSeconds: spec.AffinityTimeoutSeconds(),
		InternalLocal:          spec.InternalTrafficPolicy == api.ServiceTrafficPolicyLocal,
		ExternalLocal:          spec.ExternalTrafficPolicy == api.ServiceTrafficPolicyLocal,
	}
	if w.Type == "" {
		w.Type = string(api.ServiceTypeClusterIP)
	}
	for _, p := range spec.Ports {
		wp := wire.ServicePort{Name: p.Name, Protocol: string(p.Protocol), Port: p.Port, NodePort: p.NodePort, TargetPort: p.TargetPort.String()}
		if wp.Protocol == "" {
			wp.Protocol = string(api.ProtocolTCP)
		}
		if !p.TargetPort.IsString && p.TargetPort.IntVal == 0 {
			wp.TargetPort = strconv.Itoa(int(p.Port)) // targetPort's default
		}
		w.Ports = append(w.Ports, wp)
	}
	return w
}

// wireEndpoints turns an Endpoints object's subsets into one entry per
// pod (address and pod uid), with the pod's number for each Service port
// it serves, ready if it is ready for any; in address order.
func wireEndpoints(ep *api.Endpoints) []wire.Endpoint {
	type key struct{ ip, uid string }
	at := map[key]int{}
	var out []wire.Endpoint
	add := func(a *api.EndpointAddress, ready bool, ports []api.EndpointPort) {
		k := key{ip: a.IP}
		if a.TargetRef != nil {
			k.uid = a.TargetRef.UID
		}
		i, ok := at[k]
		if !ok {
			e := wire.Endpoint{IP: a.IP, Node: a.NodeName, Hostname: a.Hostname, Ports: map[string]int32{}}
			if r := a.TargetRef; r != nil {
				e.Namespace, e.Name, e.PodUID = r.Namespace, r.Name, r.UID
			}
			i = len(out)
			at[k] = i
			out = append(out, e)
		}
		e := &out[i]
		e.Ready = e.Ready || ready
		for _, p := range ports {
			e.Ports[p.Name] = p.Port
		}
	}
	for si := range ep.Subsets {
		s := &ep.Subsets[si]
		for i := range s.Addresses {
			add(&s.Addresses[i], true, s.Ports)
		}
		for i := range s.NotReadyAddresses {
			add(&s.NotReadyAddresses[i], false, s.Ports)
		}
	}
	slices.SortFunc(out, func(a, b wire.Endpoint) int {
		x, errX := netip.ParseAddr(a.IP)
		y, errY := netip.ParseAddr(b.IP)
		if errX == nil && errY == nil {
			if c := x.Compare(y); c != 0 {
				return c
			}
		} else if c := cmp.Compare(a.IP, b.IP); c != 0 {
			return c
		}
		return cmp.Compare(a.PodUID, b.PodUID)
	})
	return out
}

func equalEndpoints(a, b []wire.Endpoint) bool {
	return string(mustJSON(a)) == string(mustJSON(b))
}
