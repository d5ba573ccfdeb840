package printer

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// serviceRow is kubectl get services' row: NAME, TYPE, CLUSTER-IP,
// EXTERNAL-IP, PORT(S) (port:nodePort/protocol), AGE, and with -o wide
// SELECTOR. Flotilla has no external IPs or load balancers, so
// EXTERNAL-IP is always <none>, as kubectl shows it for these two types.
func serviceRow(s *api.Service, wide bool, now time.Time) ([]string, []string) {
	headers := []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}
	clusterIP := none
	if len(s.Spec.ClusterIPs) > 0 {
		clusterIP = s.Spec.ClusterIPs[0]
	}
	row := []string{s.Name, string(s.Spec.Type), clusterIP, none, orNone(servicePorts(s.Spec.Ports)), age(now, s.CreationTimestamp)}
	if wide {
		headers = append(headers, "SELECTOR")
		row = append(row, formatLabels(s.Spec.Selector))
	}
	return headers, row
}

// servicePorts is kubectl's PORT(S): 8099/TCP, or 8099:30080/TCP with a
// node port, joined by commas.
func servicePorts(ports []api.ServicePort) string {
	pieces := make([]string, len(ports))
	for i, p := range ports {
		if p.NodePort > 0 {
			pieces[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			pieces[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	return strings.Join(pieces, ",")
}

// endpointsRow is kubectl get endpoints' row: NAME, ENDPOINTS, AGE.
func endpointsRow(ep *api.Endpoints, now time.Time) ([]string, []string) {
	return []string{"NAME", "ENDPOINTS", "AGE"}, []string{ep.Name, formatEndpoints(ep, nil), age(now, ep.CreationTimestamp)}
}

// formatEndpoints is kubectl's: the ready addresses with each port (of
// the ports named in ports, all when it is nil) as IP:PORT, at most three
// and then "+ N more...", bare addresses for a subset without ports,
// <none> without subsets.
func formatEndpoints(ep *api.Endpoints, ports map[string]bool) string {
	if ep == nil || len(ep.Subsets) == 0 {
		return none
	}
	const max = 3
	var list []string
	more, count := false, 0
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 {
			// A headless Service may have no ports.
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, a.IP)
			}
			continue
		}
		for _, port := range ss.Ports {
			if ports != nil && !ports[port.Name] {
				continue
			}
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if len(list) == max {
					more = true
					break
				}
				list = append(list, net.JoinHostPort(a.IP, strconv.Itoa(int(port.Port))))
			}
		}
	}
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	return ret
}

// podIP is the pod's address as kubectl shows it: the first of podIPs
// (or podIP). A host-network pod's address is its node's, which an agent
// that does not report podIP still gives as hostIP.
func podIP(p *api.Pod) string {
	switch {
	case len(p.Status.PodIPs) > 0:
		return p.Status.PodIPs[0].IP
	case p.Status.PodIP != "":
		return p.Status.PodIP
	case p.Spec.HostNetwork:
		return p.Status.HostIP
	}
	return ""
}

// describeService is kubectl describe service's text. The endpoints
// are the ready addresses of the Service's Endpoints in rel.
func describeService(d *describer, s *api.Service, rel Related) {
	d.line(0, "Name:\t%s", s.Name)
	d.line(0, "Namespace:\t%s", s.Namespace)
	d.labels(0, "Labels", s.Labels)
	d.annotations(0, "Annotations", s.Annotations)
	d.line(0, "Selector:\t%s", formatLabels(s.Spec.Selector))
	d.line(0, "Type:\t%s", s.Spec.Type)
	if s.Spec.IPFamilyPolicy != "" {
		d.line(0, "IP Family Policy:\t%s", s.Spec.IPFamilyPolicy)
	}
	families := make([]string, len(s.Spec.IPFamilies))
	for i, f := range s.Spec.IPFamilies {
		families[i] = string(f)
	}
	d.line(0, "IP Families:\t%s", orNone(strings.Join(families, ",")))
	d.line(0, "IP:\t%s", s.Spec.ClusterIP)
	d.line(0, "IPs:\t%s", orNone(strings.Join(s.Spec.ClusterIPs, ",")))
	for _, p := range s.Spec.Ports {
		name := p.Name
		if name == "" {
			name = "<unset>"
		}
		d.line(0, "Port:\t%s\t%d/%s", name, p.Port, p.Protocol)
		d.line(0, "TargetPort:\t%s/%s", p.TargetPort.String(), p.Protocol)
		if p.NodePort != 0 {
			d.line(0, "NodePort:\t%s\t%d/%s", name, p.NodePort, p.Protocol)
		}
		d.line(0, "Endpoints:\t%s", formatEndpoints(rel.Endpoints, map[string]bool{p.Name: true}))
	}
	d.line(0, "Session Affinity:\t%s", s.Spec.SessionAffinity)
	if s.Spec.ExternalTrafficPolicy != "" {
		d.line(0, "External Traffic Policy:\t%s", s.Spec.ExternalTrafficPolicy)
	}
	if s.Spec.InternalTrafficPolicy != "" {
		d.line(0, "Internal Traffic Policy:\t%s", s.Spec.InternalTrafficPolicy)
	}
}

// describeEndpoints is kubectl describe endpoints' text.
func describeEndpoints(d *describer, ep *api.Endpoints) {
	d.line(0, "Name:\t%s", ep.Name)
	d.line(0, "Namespace:\t%s", ep.Namespace)
	d.labels(0, "Labels", ep.Labels)
	d.annotations(0, "Annotations", ep.Annotations)
	d.line(0, "Subsets:")
	ips := func(addrs []api.EndpointAddress) string {
		out := make([]string, len(addrs))
		for i, a := range addrs {
			out[i] = a.IP
		}
		return orNone(strings.Join(out, ","))
	}
	for _, ss := range ep.Subsets {
		d.line(1, "Addresses:\t%s", ips(ss.Addresses))
		d.line(1, "NotReadyAddresses:\t%s", ips(ss.NotReadyAddresses))
		if len(ss.Ports) > 0 {
			d.line(1, "Ports:")
			d.line(2, "Name\tPort\tProtocol")
			d.line(2, "----\t----\t--------")
			for _, p := range ss.Ports {
				name := p.Name
				if name == "" {
					name = "<unset>"
				}
				d.line(2, "%s\t%d\t%s", name, p.Port, p.Protocol)
			}
		}
		d.line(0, "")
	}
}

// writeEvents is kubectl's Events section, last in a description:
// "Events:  <none>", or a Type/Reason/Age/From/Message table of the
// events in time order, aligned on its own. It writes nothing unless
// rel.ShowEvents is set.
func writeEvents(d *describer, rel Related, now time.Time) {
	if !rel.ShowEvents {
		return
	}
	if len(rel.Events) == 0 {
		d.line(0, "Events:\t%s", none)
		return
	}
	// The table aligns on its own, not with the lines above it.
	_ = d.flush()
	evs := append([]*api.Event(nil), rel.Events...)
	SortEvents(evs)
	d.line(0, "Events:")
	d.line(1, "Type\tReason\tAge\tFrom\tMessage")
	d.line(1, "----\t------\t----\t----\t-------")
	for _, e := range evs {
		first := unknown
		if !e.FirstTimestamp.IsZero() {
			first = HumanDuration(now.Sub(e.FirstTimestamp.Time))
		}
		interval := first
		if e.Count > 1 {
			last := unknown
			if !e.LastTimestamp.IsZero() {
				last = HumanDuration(now.Sub(e.LastTimestamp.Time))
			}
			interval = fmt.Sprintf("%s (x%d over %s)", last, e.Count, first)
		}
		d.line(1, "%s\t%s\t%s\t%s\t%s", e.Type, e.Reason, interval, e.Source.Component, strings.TrimSpace(e.Message))
	}
}
