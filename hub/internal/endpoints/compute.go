package endpoints

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// LabelHeadless marks the Endpoints of a headless Service, as Kubernetes'
// endpoints controller does.
const LabelHeadless = "service.kubernetes.io/headless"

// Subsets computes the subsets of a Service's Endpoints from the pods its
// selector matches (pods: those of its namespace; the caller selects
// them), as Kubernetes' endpoints controller does:
//
//   - a pod is in only if it is bound, has an IPv4 pod IP (podIPs, else
//     podIP) and has not finished (phase Succeeded or Failed);
//   - it is ready (addresses) when its Ready condition is True and its
//     node is Ready (nodeReady), otherwise not ready (notReadyAddresses):
//     a pod on a NotReady node, NodeLost, serves no traffic;
//   - each Service port's number on the pod: a numeric targetPort is
//     itself, a named one the pod's container port of that name and the
//     port's protocol; a pod that declares no such port is left out for
//     that port only;
//   - the address names the pod (targetRef) and its node, and has the
//     pod's hostname when the pod's subdomain names the Service;
//   - a headless Service without ports has its pods without ports; any
//     other Service without ports has none;
//   - the result is packed as Kubernetes packs it (RepackSubsets): one
//     subset per set of ports served by the same addresses, each in a
//     stable order, so that equal inputs give equal subsets.
//
// Departures: publishNotReadyAddresses is not supported (the API refuses
// it), and the subsets are never truncated at 1,000 addresses: the hub
// sends nodes their endpoints from these objects.
func Subsets(svc *api.Service, pods []*api.Pod, nodeReady func(node string) bool) []api.EndpointSubset {
	headless := svc.Spec.IsHeadless()
	if len(svc.Spec.Ports) == 0 && !headless {
		return nil
	}
	var p packer
	for _, pod := range pods {
		ip, ok := endpointIP(pod)
		if !ok {
			continue
		}
		addr := api.EndpointAddress{
			IP: ip, NodeName: pod.Spec.NodeName,
			TargetRef: &api.ObjectReference{Kind: api.KindPod, Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		}
		if pod.Spec.Hostname != "" && pod.Spec.Subdomain == svc.Name && pod.Namespace == svc.Namespace {
			addr.Hostname = pod.Spec.Hostname
		}
		ready := pod.IsReady() && nodeReady(pod.Spec.NodeName)
		if len(svc.Spec.Ports) == 0 {
			p.add(addr, ready, noPorts)
			continue
		}
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			n, ok := FindPort(pod, sp)
			if !ok {
				continue
			}
			p.add(addr, ready, api.EndpointPort{Name: sp.Name, Port: n, Protocol: protocol(sp.Protocol)})
		}
	}
	return p.pack()
}

// endpointIP is the pod's IPv4 address, if the pod belongs in Endpoints
// at all: bound, not finished, with an address (Kubernetes'
// ShouldPodBeInEndpoints; Flotilla has no graceful deletion, so no pod is
// terminating).
func endpointIP(pod *api.Pod) (string, bool) {
	if pod.Spec.NodeName == "" || pod.Status.Phase == api.PodSucceeded || pod.Status.Phase == api.PodFailed {
		return "", false
	}
	for _, ip := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil && a.Is4() {
			return a.String(), true
		}
	}
	if len(pod.Status.PodIPs) == 0 {
		if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil && a.Is4() {
			return a.String(), true
		}
	}
	return "", false
}

// FindPort is the pod's port number for a Service port: a numeric
// targetPort (the Service port when none is set), or the port of the
// pod's container port named by targetPort for the port's protocol.
func FindPort(pod *api.Pod, sp *api.ServicePort) (int32, bool) {
	tp := sp.TargetPort
	if !tp.IsString {
		if tp.IntVal == 0 {
			return sp.Port, true
		}
		return tp.IntVal, true
	}
	want := protocol(sp.Protocol)
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal && protocol(cp.Protocol) == want {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

func protocol(p api.Protocol) api.Protocol {
	if p == "" {
		return api.ProtocolTCP
	}
	return p
}

// noPorts stands for "no port" (a headless Service without ports), as
// Kubernetes' repacking does.
var noPorts = api.EndpointPort{Port: -1}

// addressKey identifies an address across ports: its IP and its pod.
type addressKey struct{ ip, uid string }

// packer gathers (address, readiness, port) triples and packs them into
// subsets.
type packer struct {
	addrs  map[addressKey]api.EndpointAddress
	byPort map[api.EndpointPort]map[addressKey]bool // the addresses of each port, and whether each is ready
	order  []api.EndpointPort
}

func (p *packer) add(a api.EndpointAddress, ready bool, port api.EndpointPort) {
	if p.addrs == nil {
		p.addrs = map[addressKey]api.EndpointAddress{}
		p.byPort = map[api.EndpointPort]map[addressKey]bool{}
	}
	k := addressKey{ip: a.IP}
	if a.TargetRef != nil {
		k.uid = a.TargetRef.UID
	}
	if _, ok := p.addrs[k]; !ok {
		p.addrs[k] = a
	}
	set := p.byPort[port]
	if set == nil {
		set = map[addressKey]bool{}
		p.byPort[port] = set
		p.order = append(p.order, port)
	}
	// An address ready for a port through one container and not through
	// another cannot happen (readiness is the pod's); if it did, ready
	// wins, as it does in Kubernetes' repacking.
	set[k] = set[k] || ready
}

// pack makes one subset of each group of ports that the same addresses,
// with the same readiness, serve.
func (p *packer) pack() []api.EndpointSubset {
	if len(p.byPort) == 0 {
		return nil
	}
	type group struct {
		keys  []addressKey
		set   map[addressKey]bool
		ports []api.EndpointPort
	}
	groups := map[string]*group{}
	var sigs []string
	for _, port := range p.order {
		set := p.byPort[port]
		keys := make([]addressKey, 0, len(set))
		for k := range set {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, compareKeys)
		var sig strings.Builder
		for _, k := range keys {
			sig.WriteString(k.ip)
			sig.WriteByte('/')
			sig.WriteString(k.uid)
			if set[k] {
				sig.WriteString("/r;")
			} else {
				sig.WriteString("/n;")
			}
		}
		s := sig.String()
		g := groups[s]
		if g == nil {
			g = &group{keys: keys, set: set}
			groups[s] = g
			sigs = append(sigs, s)
		}
		if port != noPorts {
			g.ports = append(g.ports, port)
		}
	}
	subsets := make([]api.EndpointSubset, 0, len(groups))
	for _, s := range sigs {
		g := groups[s]
		var sub api.EndpointSubset
		for _, k := range g.keys {
			if g.set[k] {
				sub.Addresses = append(sub.Addresses, p.addrs[k])
			} else {
				sub.NotReadyAddresses = append(sub.NotReadyAddresses, p.addrs[k])
			}
		}
		slices.SortFunc(g.ports, func(a, b api.EndpointPort) int {
			return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Protocol, b.Protocol))
		})
		sub.Ports = g.ports
		subsets = append(subsets, sub)
	}
	slices.SortFunc(subsets, compareSubsets)
	return subsets
}

// compareKeys orders addresses by IP (as addresses), then pod uid.
func compareKeys(a, b addressKey) int {
	return cmp.Or(compareIPs(a.ip, b.ip), cmp.Compare(a.uid, b.uid))
}

func compareIPs(a, b string) int {
	x, errX := netip.ParseAddr(a)
	y, errY := netip.ParseAddr(b)
	if errX != nil || errY != nil {
		return cmp.Compare(a, b)
	}
	return x.Compare(y)
}

// compareSubsets orders subsets by their first address (ready ones
// first), then their first port: subsets never share their address set,
// and rarely their first address.
func compareSubsets(a, b api.EndpointSubset) int {
	fa, fb := firstAddress(a), firstAddress(b)
	if c := cmp.Or(compareIPs(fa.IP, fb.IP), cmp.Compare(uidOf(fa), uidOf(fb))); c != 0 {
		return c
	}
	if c := cmp.Compare(len(a.Addresses), len(b.Addresses)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(a.NotReadyAddresses), len(b.NotReadyAddresses)); c != 0 {
		return c
	}
	return cmp.Compare(portsKey(a.Ports), portsKey(b.Ports))
}

func firstAddress(s api.EndpointSubset) api.EndpointAddress {
	if len(s.Addresses) > 0 {
		return s.Addresses[0]
	}
	if len(s.NotReadyAddresses) > 0 {
		return s.NotReadyAddresses[0]
	}
	return api.EndpointAddress{}
}

func uidOf(a api.EndpointAddress) string {
	if a.TargetRef == nil {
		return ""
	}
	return a.TargetRef.UID
}

func portsKey(ports []api.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		b.WriteString(p.Name)
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(p.Port)))
		b.WriteByte('/')
		b.WriteString(string(p.Protocol))
		b.WriteByte(';')
	}
	return b.String()
}

// podIndex finds the pods a selector matches without looking at every
// pod: the candidates of each label pair of a namespace, of which a
// selector needs the shortest list checked.
type podIndex map[labelPair][]*api.Pod

type labelPair struct{ namespace, key, value string }

// indexPods indexes the pods that can be endpoints (endpointIP).
func indexPods(pods []*api.Pod) podIndex {
	idx := podIndex{}
	for _, p := range pods {
		if _, ok := endpointIP(p); !ok {
			continue
		}
		for k, v := range p.Labels {
			lp := labelPair{p.Namespace, k, v}
			idx[lp] = append(idx[lp], p)
		}
	}
	return idx
}

// matching returns the indexed pods of namespace that have every label
// of selector (not empty), in the order they were indexed.
func (idx podIndex) matching(namespace string, selector map[string]string) []*api.Pod {
	var shortest []*api.Pod
	first := true
	for k, v := range selector {
		c := idx[labelPair{namespace, k, v}]
		if first || len(c) < len(shortest) {
			shortest, first = c, false
		}
		if len(c) == 0 {
			return nil
		}
	}
	var out []*api.Pod
	for _, p := range shortest {
		if matches(selector, p.Labels) {
			out = append(out, p)
		}
	}
	return out
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
