package proxy

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Config is what the data path needs to know about its node.
type Config struct {
	// NodeName is this node's name: endpoints whose Node is this name are
	// local (internalTrafficPolicy and externalTrafficPolicy Local).
	NodeName string
	// NodeIPs are the node's addresses that NodePorts answer on (IPv4;
	// others are ignored).
	NodeIPs []netip.Addr
	// PodCIDR is this node's pod subnet. Traffic to a ClusterIP from any
	// other source is masqueraded, and pods reaching a NodePort of an
	// externalTrafficPolicy Local Service may use any endpoint. The zero
	// Prefix turns both off.
	PodCIDR netip.Prefix
}

func (c Config) validate() error {
	if c.NodeName == "" {
		return errors.New("proxy config: node name is empty")
	}
	if c.PodCIDR.IsValid() && !c.PodCIDR.Addr().Is4() {
		return fmt.Errorf("proxy config: pod CIDR %s: only IPv4 is supported", c.PodCIDR)
	}
	return nil
}

// skeleton adds the table's fixed sets and chains to s.
func skeleton(s *state, cfg Config) {
	for _, sp := range []setSpec{
		{name: mapServiceIPs, kind: kindServiceIPs},
		{name: mapNoEndpointServices, kind: kindServiceIPs},
		{name: mapServiceNodePorts, kind: kindNodePorts},
		{name: mapNoEndpointNodePort, kind: kindNodePorts},
		{name: setNodePortIPs, kind: kindAddrs},
	} {
		s.sets[sp.name] = sp
	}
	for _, ip := range cfg.NodeIPs {
		if ip = ip.Unmap(); ip.Is4() {
			s.addElem(setNodePortIPs, addrElement(ip))
		}
	}
	// Refusals hang on prerouting and output, before routing: a pod's
	// packet to a ClusterIP would otherwise be routed back out of the
	// bridge, and the ICMP redirect the kernel sends for that uses up the
	// per-host ICMP rate limit its port unreachable then needs.
	filterPrio := *nftables.ChainPriorityNATDest - 10
	base := func(name string, typ nftables.ChainType, num *nftables.ChainHook, prio nftables.ChainPriority, rules ...rule) {
		s.addChain(&chain{name: name, hook: &hook{typ: typ, num: *num, priority: prio}, rules: rules})
	}
	base(chainNatPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, *nftables.ChainPriorityNATDest, ruleJump(chainServices))
	base(chainNatOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, *nftables.ChainPriorityNATDest, ruleJump(chainServices))
	base(chainNatPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, *nftables.ChainPriorityNATSource, ruleJump(chainMasquerading))
	base(chainFilterPrerouting, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, filterPrio,
		ruleNewJump(chainServiceCheck), ruleNewJump(chainNodePortCheck))
	base(chainFilterOutput, nftables.ChainTypeFilter, nftables.ChainHookOutput, filterPrio,
		ruleNewJump(chainServiceCheck), ruleNewJump(chainNodePortCheck))

	s.addChain(&chain{name: chainServices, rules: []rule{ruleTupleVmap(mapServiceIPs), ruleNodePortVmap(mapServiceNodePorts)}})
	s.addChain(&chain{name: chainServiceCheck, rules: []rule{ruleTupleVmap(mapNoEndpointServices)}})
	s.addChain(&chain{name: chainNodePortCheck, rules: []rule{ruleNodePortVmap(mapNoEndpointNodePort)}})
	s.addChain(&chain{name: chainMarkMasq, rules: []rule{ruleSetMark()}})
	s.addChain(&chain{name: chainMasquerading, rules: masqueradeRules()})
	s.addChain(&chain{name: chainReject, rules: rejectRules()})
}

// built is one Service's part of the table, kept between Syncs with the
// fingerprint of the Service it was built from: a Service that did not
// change is not built again. It keeps chain digests, not rules, which
// only a Service that changed needs.
type built struct {
	fp   uint64
	part *state
	err  error // endpoints left out
}

// build computes the table the Services need. A Service (or endpoint) that
// cannot be programmed is left out and named in the returned error; the
// others are built. No programmable Service port means no table at all.
// Parts in cache whose Service is unchanged are reused; the returned cache
// holds the parts of this build.
func build(cfg Config, services []wire.Service, cache map[string]*built) (*state, map[string]*built, error) {
	s := newState()
	next := make(map[string]*built, len(services))
	var errs []error
	sorted := slices.Clone(services)
	slices.SortFunc(sorted, func(a, b wire.Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for i := range sorted {
		svc := &sorted[i]
		key := svc.Namespace + "/" + svc.Name
		fp := fingerprint(svc)
		b := cache[key]
		if b == nil || b.fp != fp {
			part := newState()
			err := addService(part, cfg, svc)
			if err != nil && len(part.chains) == 0 {
				errs = append(errs, fmt.Errorf("service %s: %w", key, err))
				continue
			}
			b = &built{fp: fp, part: part, err: err}
		}
		if err := clash(s, b.part); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", key, err))
			continue
		}
		if b.err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", key, b.err))
		}
		merge(s, b.part)
		next[key] = &built{fp: b.fp, part: b.part.forget(), err: b.err}
	}
	if len(s.chains) == 0 {
		return newState(), next, errors.Join(errs...)
	}
	s.exists = true
	skeleton(s, cfg)
	return s, next, errors.Join(errs...)
}

// clash reports an address or NodePort of part that s already gives to
// another Service.
func clash(s, part *state) error {
	for _, maps := range [][2]string{{mapServiceIPs, mapNoEndpointServices}, {mapServiceNodePorts, mapNoEndpointNodePort}} {
		for _, m := range maps {
			for _, k := range sortedKeys(part.elems[m]) {
				_, a := s.elems[maps[0]][k]
				_, b := s.elems[maps[1]][k]
				if a || b {
					return fmt.Errorf("%s is already another Service's", k)
				}
			}
		}
	}
	return nil
}

// merge adds a Service's part to the table.
func merge(s, part *state) {
	for k, v := range part.sets {
		s.sets[k] = v
	}
	for k, d := range part.chains {
		s.chains[k] = d
	}
	for k, c := range part.content {
		s.content[k] = c
	}
	for set, m := range part.elems {
		for _, e := range m {
			s.addElem(set, e)
		}
	}
}

// fingerprint hashes everything of a Service that its part depends on.
func fingerprint(svc *wire.Service) uint64 {
	var h maphash.Hash
	h.SetSeed(fingerprintSeed)
	str := func(v string) { h.WriteString(v); h.WriteByte(0) }
	num := func(v int64) { maphash.WriteComparable(&h, v) }
	flag := func(v bool) { maphash.WriteComparable(&h, v) }
	str(svc.Namespace)
	str(svc.Name)
	str(svc.ClusterIP)
	num(int64(svc.AffinityTimeoutSeconds))
	flag(svc.InternalLocal)
	flag(svc.ExternalLocal)
	num(int64(len(svc.Ports)))
	for _, p := range svc.Ports {
		str(p.Name)
		str(p.Protocol)
		num(int64(p.Port))
		num(int64(p.NodePort))
		str(p.TargetPort)
	}
	num(int64(len(svc.Endpoints)))
	for _, e := range svc.Endpoints {
		str(e.IP)
		str(e.Node)
		flag(e.Ready)
		num(int64(len(e.Ports)))
		for _, k := range sortedKeys(e.Ports) {
			str(k)
			num(int64(e.Ports[k]))
		}
	}
	return h.Sum64()
}

var fingerprintSeed = maphash.MakeSeed()

// endpoint is one ready endpoint of one Service port.
type endpoint struct {
	addr  netip.AddrPort
	local bool
	chain string // its endpoint chain
	aff   string // its affinity set, when the Service has affinity
}

func protoNumber(p string) (byte, string, error) {
	switch p {
	case "TCP", "":
		return unix.IPPROTO_TCP, "tcp", nil
	case "UDP":
		return unix.IPPROTO_UDP, "udp", nil
	}
	return 0, "", fmt.Errorf("protocol %q: want TCP or UDP", p)
}

// addService adds one Service's chains and map elements to s. It checks
// the whole Service before adding anything, so a bad one leaves s as it
// was; a bad endpoint is skipped and reported.
func addService(s *state, cfg Config, svc *wire.Service) error {
	if svc.ClusterIP == "" || svc.ClusterIP == "None" {
		return nil // headless: DNS only, no rules
	}
	cip, err := netip.ParseAddr(svc.ClusterIP)
	if err != nil {
		return fmt.Errorf("clusterIP %q: not an IP address", svc.ClusterIP)
	}
	if cip = cip.Unmap(); !cip.Is4() {
		return fmt.Errorf("clusterIP %s: only IPv4 is supported", cip)
	}
	if svc.AffinityTimeoutSeconds < 0 {
		return fmt.Errorf("affinityTimeoutSeconds %d: must not be negative", svc.AffinityTimeoutSeconds)
	}
	type portPlan struct {
		p       wire.ServicePort
		proto   byte
		pname   string
		svcKey  string
		elemKey string
		npKey   string
	}
	var plans []portPlan
	for i, p := range svc.Ports {
		proto, pname, err := protoNumber(p.Protocol)
		if err != nil {
			return fmt.Errorf("ports[%d]: %w", i, err)
		}
		if p.Port < 1 || p.Port > 65535 {
			return fmt.Errorf("ports[%d].port %d: want 1-65535", i, p.Port)
		}
		if p.NodePort < 0 || p.NodePort > 65535 {
			return fmt.Errorf("ports[%d].nodePort %d: want 1-65535", i, p.NodePort)
		}
		pl := portPlan{p: p, proto: proto, pname: pname}
		portID := p.Name
		if portID == "" {
			portID = strconv.Itoa(int(p.Port))
		}
		pl.svcKey = svc.Namespace + "/" + svc.Name + "/" + pname + "/" + portID
		pl.elemKey = serviceIPKey(cip, pname, uint16(p.Port))
		if p.NodePort != 0 {
			pl.npKey = nodePortKey(pname, uint16(p.NodePort))
		}
		for _, q := range plans {
			if q.elemKey == pl.elemKey || (pl.npKey != "" && q.npKey == pl.npKey) {
				return fmt.Errorf("ports[%d]: %s/%d is listed twice", i, pname, p.Port)
			}
		}
		plans = append(plans, pl)
	}

	var errs []error
	for _, pl := range plans {
		eps, epErrs := readyEndpoints(cfg, svc, pl.p, pl.svcKey)
		errs = append(errs, epErrs...)
		addServicePort(s, cfg, svc, cip, pl.proto, pl.p, pl.svcKey, pl.elemKey, pl.npKey, eps)
	}
	return errors.Join(errs...)
}

// readyEndpoints lists the ready endpoints of one port, sorted and without
// duplicates, with the port each resolves to.
func readyEndpoints(cfg Config, svc *wire.Service, p wire.ServicePort, svcKey string) ([]endpoint, []error) {
	var eps []endpoint
	var errs []error
	seen := map[netip.AddrPort]bool{}
	for i, ep := range svc.Endpoints {
		if !ep.Ready {
			continue
		}
		ip, err := netip.ParseAddr(ep.IP)
		if err != nil || !ip.Unmap().Is4() {
			errs = append(errs, fmt.Errorf("endpoints[%d].ip %q: not an IPv4 address", i, ep.IP))
			continue
		}
		port, ok := targetPort(ep, p)
		if !ok {
			continue // this pod does not have the named port: not an endpoint of it
		}
		ap := netip.AddrPortFrom(ip.Unmap(), port)
		if seen[ap] {
			continue
		}
		seen[ap] = true
		e := endpoint{addr: ap, local: ep.Node == cfg.NodeName}
		epKey := svcKey + "__" + ap.String()
		e.chain = objectName("ep", epKey, epKey)
		if svc.AffinityTimeoutSeconds > 0 {
			e.aff = objectName("aff", epKey+"/"+strconv.Itoa(int(svc.AffinityTimeoutSeconds)), epKey)
		}
		eps = append(eps, e)
	}
	slices.SortFunc(eps, func(a, b endpoint) int { return a.addr.Compare(b.addr) })
	return eps, errs
}

// targetPort is the port an endpoint serves a Service port on: the
// endpoint's own resolution of targetPort, else a numeric targetPort, else
// the Service port itself (targetPort's default).
func targetPort(ep wire.Endpoint, p wire.ServicePort) (uint16, bool) {
	if n, ok := ep.Ports[p.Name]; ok {
		if n < 1 || n > 65535 {
			return 0, false
		}
		return uint16(n), true
	}
	if p.TargetPort == "" {
		return uint16(p.Port), true
	}
	if n, err := strconv.Atoi(p.TargetPort); err == nil && n >= 1 && n <= 65535 {
		return uint16(n), true
	}
	return 0, false
}

func addServicePort(s *state, cfg Config, svc *wire.Service, cip netip.Addr, proto byte, p wire.ServicePort, svcKey, elemKey, npKey string, eps []endpoint) {
	var cluster, local []endpoint
	for _, e := range eps {
		cluster = append(cluster, e)
		if e.local {
			local = append(local, e)
		}
	}
	internal, external := cluster, cluster
	if svc.InternalLocal {
		internal = local
	}
	if svc.ExternalLocal {
		external = local
	}

	// Endpoint chains, for the endpoints some path can reach: the
	// ClusterIP's set, and the NodePort's when there is one.
	reachable := [][]endpoint{internal}
	if npKey != "" {
		reachable = append(reachable, external)
	}
	made := map[string]bool{}
	for _, set := range reachable {
		for _, e := range set {
			if made[e.chain] {
				continue
			}
			made[e.chain] = true
			rules := []rule{ruleHairpin(e.addr.Addr())}
			if e.aff != "" {
				s.sets[e.aff] = setSpec{name: e.aff, kind: kindAffinity, timeout: uint32(svc.AffinityTimeoutSeconds)}
				rules = append(rules, ruleAffinityUpdate(e.aff))
			}
			rules = append(rules, ruleDNAT(e.addr))
			s.addChain(&chain{name: e.chain, rules: rules})
		}
	}

	// The ClusterIP's chain.
	svcChain := objectName("svc", svcKey, svcKey)
	var rules []rule
	if cfg.PodCIDR.IsValid() {
		rules = append(rules, ruleClusterIPMasq(cip, uint16(p.Port), cfg.PodCIDR.Masked()))
	}
	rules = append(rules, balance(internal)...)
	s.addChain(&chain{name: svcChain, rules: rules})
	raw := serviceIPRaw(cip, proto, uint16(p.Port))
	if len(internal) > 0 {
		s.addElem(mapServiceIPs, element{key: elemKey, raw: raw, target: svcChain})
	} else {
		s.addElem(mapNoEndpointServices, element{key: elemKey, raw: raw, target: chainReject})
	}

	if npKey == "" {
		return
	}
	npRaw := nodePortRaw(proto, uint16(p.NodePort))
	if len(cluster) == 0 {
		s.addElem(mapNoEndpointNodePort, element{key: npKey, raw: npRaw, target: chainReject})
		return
	}
	// The NodePort's chain.
	extChain := objectName("ext", svcKey, svcKey)
	rules = nil
	if !svc.ExternalLocal {
		rules = append(rules, ruleJump(chainMarkMasq))
		rules = append(rules, balance(external)...)
	} else {
		// Traffic from this node's pods or the node itself is not
		// "external": it may go to any endpoint, as ClusterIP traffic does.
		if cfg.PodCIDR.IsValid() {
			rules = append(rules, rulePodSourceGoto(cfg.PodCIDR.Masked(), svcChain))
		}
		rules = append(rules,
			ruleLocalSource(expr.VerdictJump, chainMarkMasq),
			ruleLocalSource(expr.VerdictGoto, svcChain))
		if len(external) > 0 {
			rules = append(rules, balance(external)...)
		} else {
			rules = append(rules, ruleDrop())
		}
	}
	s.addChain(&chain{name: extChain, rules: rules})
	s.addElem(mapServiceNodePorts, element{key: npKey, raw: npRaw, target: extChain})
}

// balance picks an endpoint chain: the one a client with affinity used
// last, else one at random.
func balance(eps []endpoint) []rule {
	if len(eps) == 0 {
		return nil
	}
	var rules []rule
	targets := make([]string, len(eps))
	for i, e := range eps {
		targets[i] = e.chain
		if e.aff != "" {
			rules = append(rules, ruleAffinityGoto(e.aff, e.chain))
		}
	}
	if len(eps) == 1 {
		return append(rules, ruleGoto(eps[0].chain))
	}
	return append(rules, ruleBalance(targets))
}

// objectName names a chain or set of one Service port or endpoint: a
// prefix, a hash of what identifies it (so that names are unique and
// stable), and the readable key, cut to stay within nftables' name limit.
func objectName(prefix, identity, readable string) string {
	sum := sha256.Sum256([]byte(identity))
	h := strings.ToLower(base32.StdEncoding.EncodeToString(sum[:5]))
	name := prefix + "-" + h + "-" + readable
	const maxName = 200 // NFT_NAME_MAXLEN is 256 with the NUL
	if len(name) > maxName {
		name = name[:maxName]
	}
	return name
}
