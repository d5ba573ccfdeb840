package services

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Merge returns the Services node programs: snap's Services, with the
// endpoints of node's own pods taken from what the agent sees of them
// (report, the reconciler's newest pod status) rather than from the hub.
//
// For a Service with a selector, every endpoint the hub placed on node, or
// whose pod is one of node's, is dropped; then each of node's pods (the
// pods of snap) that the selector picks in the Service's namespace and
// that report gives an address becomes an endpoint: Ready as its Ready
// condition says, its ports resolved from its spec (a named targetPort by
// the container port of that name and protocol). A pod that is not in
// snap any more, or that report does not list yet, has no endpoint. The
// endpoints of other nodes stay as the hub last sent them. A Service
// without a selector keeps the hub's endpoints as they are.
//
// With report nil (no local knowledge yet) the Services are the hub's.
// Merge does not change snap; the result shares its unchanged parts.
func Merge(node string, snap *wire.Snapshot, report *wire.PodStatusReport) []wire.Service {
	if report == nil || len(snap.Services) == 0 {
		return snap.Services
	}
	seen := make(map[string]*wire.PodReport, len(report.Pods))
	for i := range report.Pods {
		seen[report.Pods[i].UID] = &report.Pods[i]
	}
	local := make(map[string]bool, len(snap.Pods))
	for i := range snap.Pods {
		local[snap.Pods[i].UID] = true
	}
	out := make([]wire.Service, len(snap.Services))
	for i := range snap.Services {
		svc := snap.Services[i]
		out[i] = svc
		if len(svc.Selector) == 0 {
			continue
		}
		sel := api.SelectorFromMap(svc.Selector)
		hostnames := map[string]string{}
		eps := make([]wire.Endpoint, 0, len(svc.Endpoints))
		for _, ep := range svc.Endpoints {
			if ep.Node == node || local[ep.PodUID] {
				if ep.Hostname != "" {
					hostnames[ep.PodUID] = ep.Hostname
				}
				continue
			}
			eps = append(eps, ep)
		}
		for j := range snap.Pods {
			pod := &snap.Pods[j]
			if pod.Namespace != svc.Namespace || !sel.Matches(pod.Labels) {
				continue
			}
			rep := seen[pod.UID]
			if rep == nil {
				continue
			}
			ep, ok := localEndpoint(node, &svc, pod, &rep.Status)
			if !ok {
				continue
			}
			ep.Hostname = hostnames[pod.UID]
			eps = append(eps, ep)
		}
		slices.SortFunc(eps, func(a, b wire.Endpoint) int {
			return cmp.Or(cmp.Compare(a.IP, b.IP), cmp.Compare(a.PodUID, b.PodUID))
		})
		if len(eps) == 0 {
			eps = nil
		}
		out[i].Endpoints = eps
	}
	return out
}

// localEndpoint is pod's endpoint of svc as its status says, if it has
// one: a pod without an address or that has finished (Succeeded, Failed)
// has none, as in Kubernetes.
func localEndpoint(node string, svc *wire.Service, pod *wire.SnapshotPod, st *api.PodStatus) (wire.Endpoint, bool) {
	ip := st.PodIP
	if ip == "" && len(st.PodIPs) > 0 {
		ip = st.PodIPs[0].IP
	}
	if ip == "" || st.Phase == api.PodSucceeded || st.Phase == api.PodFailed {
		return wire.Endpoint{}, false
	}
	ep := wire.Endpoint{
		IP: ip, Node: node, Namespace: pod.Namespace, Name: pod.Name, PodUID: pod.UID,
		Ready: ready(st),
		Ports: make(map[string]int32, len(svc.Ports)),
	}
	for _, p := range svc.Ports {
		if n, ok := resolvePort(&pod.Spec, p); ok {
			ep.Ports[p.Name] = n
		}
	}
	return ep, true
}

// ready reports whether the pod's Ready condition is True.
func ready(st *api.PodStatus) bool {
	for _, c := range st.Conditions {
		if c.Type == api.PodReady {
			return c.Status == api.ConditionTrue
		}
	}
	return false
}

// resolvePort is the pod's port a Service port targets: its targetPort's
// number, the port of the container port named by it (of the same
// protocol, as Kubernetes matches it), or the Service port itself when
// targetPort is unset. A name no container declares resolves to nothing:
// the pod is no endpoint of that port.
func resolvePort(spec *api.PodSpec, p wire.ServicePort) (int32, bool) {
	if p.TargetPort == "" {
		return p.Port, true
	}
	if n, err := strconv.ParseInt(p.TargetPort, 10, 32); err == nil {
		return int32(n), true
	}
	proto := protocol(p.Protocol)
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p.TargetPort && protocol(string(cp.Protocol)) == proto {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

// protocol is a port's protocol, TCP when unset.
func protocol(p string) string {
	if p == "" {
		return "TCP"
	}
	return p
}
