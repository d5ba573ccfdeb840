package dns

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// DefaultClusterDomain is the Services' DNS suffix when none is given.
const DefaultClusterDomain = "cluster.local"

// table is one immutable view of the cluster's names, built from the
// Services of a snapshot and swapped in whole, so a query reads one
// consistent view without a lock.
type table struct {
	zone   string // the cluster domain, lower case and fully qualified: "cluster.local."
	serial uint32 // the SOA serial: when the table was built, in seconds
	// services by "name.namespace", lower case.
	services   map[string]*service
	namespaces map[string]bool
	// reverse holds the names of each Service and endpoint address, for PTR.
	reverse map[netip.Addr][]string
}

type service struct {
	fqdn      string     // "name.namespace.svc.cluster.local."
	clusterIP netip.Addr // invalid for a headless Service
	ports     []port
	endpoints []endpoint // the ready ones only
}

type port struct {
	name, protocol string // lower case; "" for an unnamed port
	port           int32  // the Service's port, -1 for the stand-in of a Service without ports
	targetPort     string
}

type endpoint struct {
	addr  netip.Addr
	host  string // the first label of its name: its hostname or its dashed address
	ports map[string]int32
}

// buildTable makes the table of domain and services. An entry it cannot
// use (a bad address, a bad name, a duplicate) is left out and named in the
// error; the rest is in the table.
func buildTable(domain string, services []wire.Service, serial uint32) (*table, error) {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if domain == "" {
		domain = DefaultClusterDomain
	}
	for _, l := range strings.Split(domain, ".") {
		if !validLabel(l) {
			return nil, fmt.Errorf("cluster domain %q: %q is not a DNS label", domain, l)
		}
	}
	t := &table{
		zone:       domain + ".",
		serial:     serial,
		services:   make(map[string]*service, len(services)),
		namespaces: map[string]bool{},
		reverse:    map[netip.Addr][]string{},
	}
	var errs []error
	for i := range services {
		ws := &services[i]
		svc, err := t.add(ws)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s/%s: %w", ws.Namespace, ws.Name, err))
			continue
		}
		for j := range ws.Endpoints {
			we := &ws.Endpoints[j]
			if !we.Ready {
				continue
			}
			addr, err := netip.ParseAddr(we.IP)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s/%s: endpoint %s/%s: address %q: %w", ws.Namespace, ws.Name, we.Namespace, we.Name, we.IP, err))
				continue
			}
			addr = addr.Unmap()
			host := strings.ToLower(we.Hostname)
			if !validLabel(host) {
				host = dashed(addr)
			}
			svc.endpoints = append(svc.endpoints, endpoint{addr: addr, host: host, ports: we.Ports})
			t.reverse[addr] = append(t.reverse[addr], host+"."+svc.fqdn)
		}
	}
	return t, errors.Join(errs...)
}

// add puts the Service ws in t, without its endpoints.
func (t *table) add(ws *wire.Service) (*service, error) {
	name, ns := strings.ToLower(ws.Name), strings.ToLower(ws.Namespace)
	if !validLabel(name) {
		return nil, fmt.Errorf("name %q is not a DNS label", ws.Name)
	}
	if !validLabel(ns) {
		return nil, fmt.Errorf("namespace %q is not a DNS label", ws.Namespace)
	}
	key := name + "." + ns
	if _, dup := t.services[key]; dup {
		return nil, errors.New("listed twice; the first is kept")
	}
	svc := &service{fqdn: key + ".svc." + t.zone}
	if ws.ClusterIP != "None" {
		ip, err := netip.ParseAddr(ws.ClusterIP)
		if err != nil {
			return nil, fmt.Errorf("clusterIP %q: not an IP address or None", ws.ClusterIP)
		}
		svc.clusterIP = ip.Unmap()
		t.reverse[svc.clusterIP] = append(t.reverse[svc.clusterIP], svc.fqdn)
	}
	for _, p := range ws.Ports {
		svc.ports = append(svc.ports, port{
			name: strings.ToLower(p.Name), protocol: strings.ToLower(p.Protocol),
			port: p.Port, targetPort: p.TargetPort,
		})
	}
	if len(svc.ports) == 0 {
		// As CoreDNS: a Service without ports still has its addresses.
		svc.ports = []port{{port: -1}}
	}
	t.services[key] = svc
	t.namespaces[ns] = true
	return svc, nil
}

// record is one address a cluster name stands for, with the port and the
// name an SRV answer gives it.
type record struct {
	addr   netip.Addr
	port   int32 // -1: none, no SRV record
	target string
}

// lookup answers a name under the zone (lower case, fully qualified,
// neither the zone itself nor its special names): its records, or
// exists=false for NXDOMAIN. A name that exists with no records is NODATA.
// The name's forms, as CoreDNS's kubernetes plugin parses them:
//
//	svc.ZONE, NS.svc.ZONE                 exist (NS: if it has Services)
//	SERVICE.NS.svc.ZONE                   its ClusterIP, or its ready endpoints if headless
//	ENDPOINT.SERVICE.NS.svc.ZONE          the endpoint of that hostname (or dashed address)
//	_PORT._PROTO.SERVICE.NS.svc.ZONE      the Service's ports of that name and protocol
//	pod.ZONE, NS.pod.ZONE                 exist
//	A-B-C-D.NS.pod.ZONE                   that address ("pods insecure")
func (t *table) lookup(name string) (records []record, exists bool) {
	rel := strings.TrimSuffix(strings.TrimSuffix(name, t.zone), ".")
	labels := strings.Split(rel, ".")
	n := len(labels)
	switch labels[n-1] {
	case "svc":
		switch n {
		case 1:
			return nil, true
		case 2:
			return nil, t.namespaces[labels[0]]
		}
		svc := t.services[labels[n-3]+"."+labels[n-2]]
		if svc == nil {
			return nil, false
		}
		switch n {
		case 3:
			records = svc.records("", "", "")
			return records, svc.clusterIP.IsValid() || len(records) > 0
		case 4:
			records = svc.records(labels[0], "", "")
		case 5:
			records = svc.records("", strings.TrimPrefix(labels[0], "_"), strings.TrimPrefix(labels[1], "_"))
		}
		return records, len(records) > 0
	case "pod":
		switch n {
		case 1, 2:
			return nil, true
		case 3:
			addr, ok := undash(labels[0])
			if !ok {
				return nil, false
			}
			return []record{{addr: addr, port: -1}}, true
		}
	}
	return nil, false
}

// records lists the Service's records: for a ClusterIP Service its address
// once per port, for a headless Service (or when host names an endpoint)
// each ready endpoint once per port; limited to the endpoint named host and
// the ports of that name and protocol, where those are not "".
//
// A Service's name exists even when this is empty (a ClusterIP Service
// without ports), but a headless Service with no ready endpoint does not,
// as in CoreDNS; lookup decides.
func (s *service) records(host, portName, protocol string) []record {
	var out []record
	if s.clusterIP.IsValid() && host == "" {
		for _, p := range s.ports {
			if p.matches(portName, protocol) {
				out = append(out, record{addr: s.clusterIP, port: p.port, target: s.fqdn})
			}
		}
		return out
	}
	for _, e := range s.endpoints {
		if host != "" && e.host != host {
			continue
		}
		for _, p := range s.ports {
			if !p.matches(portName, protocol) {
				continue
			}
			out = append(out, record{addr: e.addr, port: e.port(p), target: e.host + "." + s.fqdn})
		}
	}
	return out
}

func (p port) matches(name, protocol string) bool {
	return (name == "" || name == p.name) && (protocol == "" || protocol == p.protocol)
}

// port is the pod's port behind the Service's port p: the endpoint's own
// (resolved from a named targetPort), else a numeric targetPort, else the
// Service's port.
func (e endpoint) port(p port) int32 {
	if p.port < 0 {
		return -1
	}
	if n, ok := e.ports[p.name]; ok {
		return n
	}
	if n, err := strconv.ParseInt(p.targetPort, 10, 32); err == nil && n > 0 {
		return int32(n)
	}
	return p.port
}

// validLabel reports whether s is a DNS label of letters, digits and
// hyphens, at most 63 characters, neither starting nor ending with '-'.
func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// dashed is an address as one DNS label: 10-42-0-7, fd00--7.
func dashed(a netip.Addr) string {
	if a.Is4() {
		return strings.ReplaceAll(a.String(), ".", "-")
	}
	return strings.ReplaceAll(a.WithZone("").String(), ":", "-")
}

// undash parses a dashed address label, as CoreDNS does: three dashes and
// no "--" is IPv4, anything else is tried as IPv6.
func undash(label string) (netip.Addr, bool) {
	var s string
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		s = strings.ReplaceAll(label, "-", ".")
	} else {
		s = strings.ReplaceAll(label, "-", ":")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// reverseAddr parses a reverse-lookup name (lower case, fully qualified):
// d.c.b.a.in-addr.arpa. or the 32 nibbles of ip6.arpa.
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa."); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, l := range labels {
			n, err := strconv.ParseUint(l, 10, 8)
			if err != nil || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa."); ok {
		labels := strings.Split(rest, ".")
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(l, 16, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			nib := 31 - i
			b[nib/2] |= byte(n) << (4 * (1 - nib%2))
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}
