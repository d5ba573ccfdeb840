package manifest

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// The network's objects and fields: Services, their Endpoints, nodes' pod
// subnets and pods' DNS settings, with Kubernetes' defaults and validation
// rules for the subset Flotilla supports. What
// needs the hub's configuration or the store (the service CIDR and node
// port range, a clash with another Service, a targetPort name the
// selected pods do not declare) is checked by the hub when it applies.

// Allowed values.
var (
	serviceTypes      = []api.ServiceType{api.ServiceTypeClusterIP, api.ServiceTypeNodePort}
	serviceProtocols  = []api.Protocol{api.ProtocolTCP, api.ProtocolUDP}
	sessionAffinities = []api.ServiceAffinity{api.ServiceAffinityNone, api.ServiceAffinityClientIP}
	trafficPolicies   = []api.ServiceTrafficPolicy{api.ServiceTrafficPolicyCluster, api.ServiceTrafficPolicyLocal}
	ipFamilyPolicies  = []api.IPFamilyPolicy{api.IPFamilyPolicySingleStack, api.IPFamilyPolicyPreferDualStack}
	ipFamilies        = []api.IPFamily{api.IPv4Protocol}
)

// defaultService fills in what Kubernetes does: type ClusterIP,
// sessionAffinity None (and a 3 hour timeout for ClientIP), port protocol
// TCP, targetPort equal to port, clusterIP and clusterIPs from each other,
// internalTrafficPolicy Cluster, externalTrafficPolicy Cluster for a
// NodePort Service, and the IPv4 single-stack family.
func defaultService(s *api.Service) {
	spec := &s.Spec
	if spec.Type == "" {
		spec.Type = api.ServiceTypeClusterIP
	}
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = api.ServiceAffinityNone
	}
	if spec.SessionAffinity == api.ServiceAffinityClientIP {
		if spec.SessionAffinityConfig == nil {
			spec.SessionAffinityConfig = &api.SessionAffinityConfig{}
		}
		if spec.SessionAffinityConfig.ClientIP == nil {
			spec.SessionAffinityConfig.ClientIP = &api.ClientIPConfig{}
		}
		if spec.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			t := api.DefaultClientIPServiceAffinitySeconds
			spec.SessionAffinityConfig.ClientIP.TimeoutSeconds = &t
		}
	}
	for i := range spec.Ports {
		p := &spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = api.ProtocolTCP
		}
		if tp := p.TargetPort; !tp.IsString && tp.IntVal == 0 {
			p.TargetPort = api.FromInt(p.Port)
		}
	}
	switch {
	case spec.ClusterIP == "" && len(spec.ClusterIPs) > 0:
		spec.ClusterIP = spec.ClusterIPs[0]
	case spec.ClusterIP != "" && len(spec.ClusterIPs) == 0:
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	if spec.InternalTrafficPolicy == "" {
		spec.InternalTrafficPolicy = api.ServiceTrafficPolicyCluster
	}
	if spec.ExternalTrafficPolicy == "" && spec.Type == api.ServiceTypeNodePort {
		spec.ExternalTrafficPolicy = api.ServiceTrafficPolicyCluster
	}
	if spec.IPFamilyPolicy == "" {
		spec.IPFamilyPolicy = api.IPFamilyPolicySingleStack
	}
	if len(spec.IPFamilies) == 0 {
		spec.IPFamilies = []api.IPFamily{api.IPv4Protocol}
	}
}

// defaultNodeSpec fills podCIDR and podCIDRs from each other.
func defaultNodeSpec(spec *api.NodeSpec) {
	switch {
	case spec.PodCIDR == "" && len(spec.PodCIDRs) > 0:
		spec.PodCIDR = spec.PodCIDRs[0]
	case spec.PodCIDR != "" && len(spec.PodCIDRs) == 0:
		spec.PodCIDRs = []string{spec.PodCIDR}
	}
}

// portKey is a port number with its protocol, what must be unique among
// a Service's ports and among its node ports.
type portKey struct {
	port     int32
	protocol api.Protocol
}

func (k portKey) String() string { return fmt.Sprintf("%d/%s", k.port, k.protocol) }

func validateService(c *collector, s *api.Service) {
	// A Service's name is the first label of its DNS name.
	if api.ValidateDNSSubdomain(s.Name) == nil {
		if err := api.ValidateDNS1035Label(s.Name); err != nil {
			c.add("metadata.name", errText(err)+" (a Service's name is a DNS label: no '.', and a letter first)")
		}
	}
	spec := &s.Spec
	switch spec.Type {
	case "", api.ServiceTypeClusterIP, api.ServiceTypeNodePort:
	case api.ServiceTypeLoadBalancer:
		c.add("spec.type", "LoadBalancer is not supported by Flotilla: use NodePort, which every node serves on its own address")
	case api.ServiceTypeExternalName:
		c.add("spec.type", "ExternalName is not supported by Flotilla: give the Service a selector or use the external name directly")
	default:
		c.add("spec.type", notOneOf(spec.Type, serviceTypes))
	}
	nodePortType := spec.Type == api.ServiceTypeNodePort

	validateServicePorts(c, spec, nodePortType)
	validateClusterIP(c, spec, nodePortType)
	validateLabels(c, spec.Selector, "spec.selector")

	switch spec.IPFamilyPolicy {
	case "", api.IPFamilyPolicySingleStack, api.IPFamilyPolicyPreferDualStack:
	case api.IPFamilyPolicyRequireDualStack:
		c.add("spec.ipFamilyPolicy", "RequireDualStack is not supported by Flotilla: its Service network is IPv4 only")
	default:
		c.add("spec.ipFamilyPolicy", notOneOf(spec.IPFamilyPolicy, ipFamilyPolicies))
	}
	seenFamilies := map[api.IPFamily]bool{}
	for i, f := range spec.IPFamilies {
		p := index("spec.ipFamilies", i)
		switch {
		case f == api.IPv6Protocol:
			c.add(p, "IPv6 is not supported by Flotilla: its Service network is IPv4 only")
		case !oneOf(f, ipFamilies):
			c.add(p, notOneOf(f, ipFamilies))
		case seenFamilies[f]:
			c.addf(p, "duplicate family %s", f)
		}
		seenFamilies[f] = true
	}

	const cfgPath = "spec.sessionAffinityConfig"
	switch spec.SessionAffinity {
	case "", api.ServiceAffinityNone:
		if spec.SessionAffinityConfig != nil {
			c.addf(cfgPath, "may only be set when sessionAffinity is %s", api.ServiceAffinityClientIP)
		}
	case api.ServiceAffinityClientIP:
		if cfg := spec.SessionAffinityConfig; cfg != nil && cfg.ClientIP != nil && cfg.ClientIP.TimeoutSeconds != nil {
			if t := *cfg.ClientIP.TimeoutSeconds; t < 1 || t > api.MaxClientIPServiceAffinitySeconds {
				c.addf(cfgPath+".clientIP.timeoutSeconds", "must be between 1 and %d (a day)", api.MaxClientIPServiceAffinitySeconds)
			}
		}
	default:
		c.add("spec.sessionAffinity", notOneOf(spec.SessionAffinity, sessionAffinities))
	}

	if p := spec.InternalTrafficPolicy; p != "" && !oneOf(p, trafficPolicies) {
		c.add("spec.internalTrafficPolicy", notOneOf(p, trafficPolicies))
	}
	switch p := spec.ExternalTrafficPolicy; {
	case p == "":
	case !oneOf(p, trafficPolicies):
		c.add("spec.externalTrafficPolicy", notOneOf(p, trafficPolicies))
	case !nodePortType:
		c.add("spec.externalTrafficPolicy", "may only be set for a NodePort Service: only those are reached from outside the cluster")
	}
}

// validateServicePorts checks the ports: names (required and unique when
// there are several), numbers, protocols, targetPorts, and the node ports
// of a NodePort Service; a port number and a node port are each unique per
// protocol.
func validateServicePorts(c *collector, spec *api.ServiceSpec, nodePortType bool) {
	const path = "spec.ports"
	if len(spec.Ports) == 0 && !spec.IsHeadless() {
		c.add(path, "at least one port is required (only a headless Service, clusterIP: None, may have none)")
	}
	names := map[string]int{}
	ports := map[portKey]int{}
	nodePorts := map[portKey]int{}
	for i := range spec.Ports {
		sp := &spec.Ports[i]
		p := index(path, i)
		switch {
		case sp.Name == "" && len(spec.Ports) > 1:
			c.add(field(p, "name"), "required when the Service has more than one port")
		case sp.Name != "":
			if err := api.ValidateDNSLabel(sp.Name); err != nil {
				c.add(field(p, "name"), errText(err))
			} else if j, dup := names[sp.Name]; dup {
				c.addf(field(p, "name"), "duplicate port name %q (spec.ports[%d] has it too)", sp.Name, j)
			} else {
				names[sp.Name] = i
			}
		}
		portOK := sp.Port >= 1 && sp.Port <= 65535
		if !portOK {
			c.add(field(p, "port"), "must be between 1 and 65535")
		}
		protocol := sp.Protocol
		switch protocol {
		case "":
			protocol = api.ProtocolTCP
		case api.ProtocolTCP, api.ProtocolUDP:
		case api.ProtocolSCTP:
			c.add(field(p, "protocol"), "SCTP is not supported by Flotilla: use TCP or UDP")
		default:
			c.add(field(p, "protocol"), notOneOf(protocol, serviceProtocols))
		}
		// A targetPort defaulted from an invalid port would repeat its error.
		if portOK || sp.TargetPort.IsString || sp.TargetPort.IntVal != sp.Port {
			validateTargetPort(c, sp.TargetPort, field(p, "targetPort"))
		}
		if portOK {
			k := portKey{sp.Port, protocol}
			if j, dup := ports[k]; dup {
				c.addf(p, "duplicate port %s (spec.ports[%d] has it too)", k, j)
			} else {
				ports[k] = i
			}
		}
		if sp.NodePort == 0 {
			continue
		}
		np := field(p, "nodePort")
		switch {
		case !nodePortType:
			c.addf(np, "may only be set when type is %s", api.ServiceTypeNodePort)
		case sp.NodePort < 1 || sp.NodePort > 65535:
			c.add(np, "must be between 1 and 65535, within the hub's --service-node-port-range (30000-32767 by default)")
		default:
			k := portKey{sp.NodePort, protocol}
			if j, dup := nodePorts[k]; dup {
				c.addf(np, "duplicate node port %s (spec.ports[%d] has it too)", k, j)
			} else {
				nodePorts[k] = i
			}
		}
	}
}

// validateTargetPort checks a Service port's targetPort: a number from 1
// to 65535 (0 is unset: it defaults to the port), or an IANA service name
// that the pods' containers declare as a port name.
func validateTargetPort(c *collector, tp api.IntOrString, path string) {
	if !tp.IsString {
		if tp.IntVal < 0 || tp.IntVal > 65535 {
			c.add(path, "must be between 1 and 65535, or the name of a container port")
		}
		return
	}
	if tp.StrVal == "" {
		c.add(path, "must be a port number or the name of a container port, not empty")
		return
	}
	if err := validatePortName(tp.StrVal); err != nil {
		c.add(path, errText(err))
	}
}

// validateClusterIP checks clusterIP and clusterIPs: empty (the hub
// allocates one), None (headless, not for NodePort), or one IPv4 address,
// the same in both.
func validateClusterIP(c *collector, spec *api.ServiceSpec, nodePortType bool) {
	const path = "spec.clusterIP"
	switch ip := spec.ClusterIP; {
	case ip == "":
	case ip == api.ClusterIPNone:
		if nodePortType {
			c.add(path, "may not be None for a NodePort Service: its node ports forward to the cluster IP")
		}
	default:
		checkIPv4(c, ip, path, "must be empty (the hub allocates one), None (headless) or an IPv4 address")
	}
	if len(spec.ClusterIPs) > 1 {
		c.add("spec.clusterIPs", "may hold at most one address: Flotilla's Service network is IPv4 only")
	}
	if len(spec.ClusterIPs) > 0 && spec.ClusterIPs[0] != spec.ClusterIP {
		c.addf("spec.clusterIPs[0]", "%q must be the same as clusterIP %q", clip(spec.ClusterIPs[0], 64), clip(spec.ClusterIP, 64))
	}
}

// checkIPv4 reports whether s is an IPv4 address in its usual form, and
// says what is wrong at path when it is not.
func checkIPv4(c *collector, s, path, want string) bool {
	addr, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		c.addf(path, "%q is not an IP address: %s", clip(s, 64), want)
		return false
	case !addr.Is4():
		c.addf(path, "%q is not an IPv4 address: Flotilla's pod and Service networks are IPv4", clip(s, 64))
		return false
	}
	return true
}

// validateEndpoints checks the Endpoints the hub writes, so that one read
// back from `hub get ep -o yaml` is what it should be.
func validateEndpoints(c *collector, ep *api.Endpoints) {
	for i := range ep.Subsets {
		ss := &ep.Subsets[i]
		p := index("subsets", i)
		for _, list := range []struct {
			name  string
			addrs []api.EndpointAddress
		}{{"addresses", ss.Addresses}, {"notReadyAddresses", ss.NotReadyAddresses}} {
			for j, a := range list.addrs {
				ap := index(field(p, list.name), j)
				if _, err := netip.ParseAddr(a.IP); err != nil {
					c.addf(field(ap, "ip"), "%q is not an IP address", clip(a.IP, 64))
				}
				if a.NodeName != "" {
					if err := api.ValidateDNSSubdomain(a.NodeName); err != nil {
						c.add(field(ap, "nodeName"), errText(err))
					}
				}
			}
		}
		for j, port := range ss.Ports {
			pp := index(field(p, "ports"), j)
			if port.Name != "" {
				if err := api.ValidateDNSLabel(port.Name); err != nil {
					c.add(field(pp, "name"), errText(err))
				}
			}
			if port.Port < 1 || port.Port > 65535 {
				c.add(field(pp, "port"), "must be between 1 and 65535")
			}
			if port.Protocol != "" && !oneOf(port.Protocol, protocols) {
				c.add(field(pp, "protocol"), notOneOf(port.Protocol, protocols))
			}
		}
	}
}

// validateNodeSpec checks a node's pod subnet: a CIDR written with its
// host bits clear, the same as the first of podCIDRs, which hold at most
// one subnet per address family.
func validateNodeSpec(c *collector, spec *api.NodeSpec) {
	if spec.PodCIDR != "" {
		checkCIDR(c, spec.PodCIDR, "spec.podCIDR")
	}
	if len(spec.PodCIDRs) > 2 {
		c.add("spec.podCIDRs", "may hold at most two subnets, one per address family")
	}
	families := map[bool]int{}
	for i, s := range spec.PodCIDRs {
		p := index("spec.podCIDRs", i)
		report := c
		if i == 0 && s == spec.PodCIDR {
			// Checked as podCIDR already (it is defaulted from it).
			report = &collector{}
		}
		pfx, ok := checkCIDR(report, s, p)
		if !ok {
			continue
		}
		if j, dup := families[pfx.Addr().Is4()]; dup {
			c.addf(p, "has the same address family as spec.podCIDRs[%d]: at most one subnet per family", j)
		}
		families[pfx.Addr().Is4()] = i
	}
	if len(spec.PodCIDRs) > 0 && spec.PodCIDR != "" && spec.PodCIDRs[0] != spec.PodCIDR {
		c.addf("spec.podCIDRs[0]", "%q must be the same as podCIDR %q", clip(spec.PodCIDRs[0], 64), clip(spec.PodCIDR, 64))
	}
}

// checkCIDR parses a subnet such as 10.42.3.0/24 and reports at path what
// is wrong with it.
func checkCIDR(c *collector, s, path string) (netip.Prefix, bool) {
	pfx, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		c.addf(path, "%q is not a CIDR such as 10.42.3.0/24", clip(s, 64))
		return pfx, false
	case pfx != pfx.Masked():
		c.addf(path, "%q has address bits set past its prefix length: write %s", clip(s, 64), pfx.Masked())
		return pfx, false
	}
	return pfx, true
}

// validatePodDNS checks a pod's dnsPolicy and dnsConfig with Kubernetes'
// rules: a known policy; with None, at least one nameserver; at most 3
// nameserver addresses, at most 32 search domains of at most 2048
// characters in all, and named options.
func validatePodDNS(c *collector, spec *api.PodSpec, path string) {
	// The pod's name in DNS: each a DNS label, as in Kubernetes.
	for _, f := range []struct{ name, value string }{{"hostname", spec.Hostname}, {"subdomain", spec.Subdomain}} {
		if f.value == "" {
			continue
		}
		if err := api.ValidateDNSLabel(f.value); err != nil {
			c.add(field(path, f.name), errText(err))
		}
	}
	dnsPolicies := []api.DNSPolicy{api.DNSClusterFirst, api.DNSClusterFirstWithHostNet, api.DNSDefault, api.DNSNone}
	if p := spec.DNSPolicy; p != "" && !oneOf(p, dnsPolicies) {
		c.add(field(path, "dnsPolicy"), notOneOf(p, dnsPolicies))
	}
	cfgPath := field(path, "dnsConfig")
	cfg := spec.DNSConfig
	if spec.DNSPolicy == api.DNSNone {
		switch {
		case cfg == nil:
			c.addf(cfgPath, "required when dnsPolicy is %s: it must name at least one nameserver", api.DNSNone)
		case len(cfg.Nameservers) == 0:
			c.addf(field(cfgPath, "nameservers"), "at least one nameserver is required when dnsPolicy is %s", api.DNSNone)
		}
	}
	if cfg == nil {
		return
	}
	nsPath := field(cfgPath, "nameservers")
	if n := len(cfg.Nameservers); n > api.MaxDNSNameservers {
		c.addf(nsPath, "must have at most %d nameservers, not %d", api.MaxDNSNameservers, n)
	}
	for i, ns := range cfg.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			c.addf(index(nsPath, i), "%q is not an IP address", clip(ns, 64))
		}
	}
	searchPath := field(cfgPath, "searches")
	if n := len(cfg.Searches); n > api.MaxDNSSearchPaths {
		c.addf(searchPath, "must have at most %d search domains, not %d", api.MaxDNSSearchPaths, n)
	}
	if n := len(strings.Join(cfg.Searches, " ")); n > api.MaxDNSSearchListChars {
		c.addf(searchPath, "must be at most %d characters in all, not %d", api.MaxDNSSearchListChars, n)
	}
	for i, s := range cfg.Searches {
		// A trailing dot (an absolute name) is allowed.
		if err := api.ValidateDNSSubdomain(strings.TrimSuffix(s, ".")); err != nil {
			c.addf(index(searchPath, i), "%q is not a DNS domain: use lower-case letters, digits, '-' and '.'", clip(s, 64))
		}
	}
	for i, o := range cfg.Options {
		if o.Name == "" {
			c.add(field(index(field(cfgPath, "options"), i), "name"), "required")
		}
	}
}
