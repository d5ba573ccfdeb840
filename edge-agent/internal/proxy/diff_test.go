package proxy

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Unit tests of build and diff: pure functions, no kernel.

var unitCfg = Config{
	NodeName: "node-a",
	NodeIPs:  []netip.Addr{netip.MustParseAddr("192.0.2.10")},
	PodCIDR:  netip.MustParsePrefix("10.42.0.0/24"),
}

func unitEP(ip, node string, ready bool) wire.Endpoint {
	return wire.Endpoint{IP: ip, Node: node, Ready: ready, Ports: map[string]int32{"http": 8080}}
}

func unitSvc(name, cip string, nodePort int32, eps ...wire.Endpoint) wire.Service {
	return wire.Service{
		Namespace: "default", Name: name, Type: "NodePort", ClusterIP: cip,
		Ports:     []wire.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, NodePort: nodePort, TargetPort: "http"}},
		Endpoints: eps,
	}
}

func mustBuild(t *testing.T, svcs ...wire.Service) *state {
	t.Helper()
	s, _, err := build(unitCfg, svcs, nil)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return s
}

// programmed is what the kernel holds after a successful Sync of s.
func programmed(s *state) *state { return s.forget() }

func chainsWith(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func chainNames(cs []*chain) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.name)
	}
	return out
}

func TestDiffFromNothingCreatesEverything(t *testing.T) {
	want := mustBuild(t, unitSvc("web", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true), unitEP("10.42.0.6", "node-a", true)))
	p := diff(newState(), want)
	if !p.createTable || p.deleteTable {
		t.Errorf("createTable %v deleteTable %v, want a new table", p.createTable, p.deleteTable)
	}
	if len(p.addChains) != len(want.chains) || len(p.fillChains) != 0 || len(p.delChains) != 0 {
		t.Errorf("chains: %d added %d filled %d deleted, want all %d added", len(p.addChains), len(p.fillChains), len(p.delChains), len(want.chains))
	}
	if got := len(p.addSets); got != 5 {
		t.Errorf("%d sets added, want the 5 fixed ones", got)
	}
	if got := p.addElems[mapServiceIPs]; len(got) != 1 || got[0].key != "10.43.0.10 . tcp . 80" {
		t.Errorf("service-ips elements %v", got)
	}
	if got := p.addElems[mapServiceNodePorts]; len(got) != 1 || got[0].key != "tcp . 30080" {
		t.Errorf("service-nodeports elements %v", got)
	}
	if got := p.addElems[setNodePortIPs]; len(got) != 1 || got[0].key != "192.0.2.10" {
		t.Errorf("nodeport-ips elements %v", got)
	}
}

func TestDiffOfTheSameStateIsEmpty(t *testing.T) {
	svcs := []wire.Service{
		unitSvc("web", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true), unitEP("10.42.0.6", "node-b", true)),
		unitSvc("db", "10.43.0.11", 0, unitEP("10.42.0.7", "node-a", true)),
	}
	have := programmed(mustBuild(t, svcs...))
	// The same Services in another order, endpoints shuffled: the same
	// table.
	rev := slices.Clone(svcs)
	slices.Reverse(rev)
	slices.Reverse(rev[1].Endpoints)
	if sum := diff(have, mustBuild(t, rev...)).summary(); !sum.Empty() {
		t.Errorf("diff of the same Services is %+v, want nothing", sum)
	}
}

func TestDiffOneEndpointRemoved(t *testing.T) {
	have := programmed(mustBuild(t,
		unitSvc("web", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true), unitEP("10.42.0.6", "node-a", true), unitEP("10.42.0.7", "node-a", true)),
		unitSvc("db", "10.43.0.11", 0, unitEP("10.42.0.8", "node-a", true))))
	want := mustBuild(t,
		unitSvc("web", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true), unitEP("10.42.0.6", "node-a", true), unitEP("10.42.0.7", "node-a", false)),
		unitSvc("db", "10.43.0.11", 0, unitEP("10.42.0.8", "node-a", true)))
	p := diff(have, want)
	if p.createTable || p.deleteTable {
		t.Fatal("the table must stay")
	}
	filled := chainNames(p.fillChains)
	if len(filled) != 2 || len(chainsWith(filled, "svc-")) != 1 || len(chainsWith(filled, "ext-")) != 1 {
		t.Errorf("rewritten chains %v, want web's svc- and ext- chains only", filled)
	}
	if len(p.delChains) != 1 || !strings.HasSuffix(p.delChains[0], "__10.42.0.7:8080") {
		t.Errorf("deleted chains %v, want the endpoint chain of 10.42.0.7", p.delChains)
	}
	if len(p.addChains) != 0 || len(p.addElems) != 0 || len(p.delElems) != 0 || len(p.addSets)+len(p.delSets) != 0 {
		t.Errorf("unexpected changes %+v", p.summary())
	}
	// The rewritten chain balances over the two left.
	for _, c := range p.fillChains {
		last := c.rules[len(c.rules)-1].text
		if strings.HasPrefix(c.name, "svc-") && (!strings.HasPrefix(last, "numgen random mod 2 vmap") || strings.Contains(last, "10.42.0.7")) {
			t.Errorf("svc chain ends with %q", last)
		}
	}
}

func TestDiffLastEndpointGoesMovesToRefusal(t *testing.T) {
	have := programmed(mustBuild(t, unitSvc("web", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true))))
	want := mustBuild(t, unitSvc("web", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", false)))
	p := diff(have, want)
	want1 := map[string]string{
		mapServiceIPs: "-10.43.0.10 . tcp . 80", mapNoEndpointServices: "+10.43.0.10 . tcp . 80",
		mapServiceNodePorts: "-tcp . 30080", mapNoEndpointNodePort: "+tcp . 30080",
	}
	for set, w := range want1 {
		var got string
		if es := p.addElems[set]; len(es) == 1 {
			got = "+" + es[0].key
		}
		if es := p.delElems[set]; len(es) == 1 {
			got += "-" + es[0].key
		}
		if got != w {
			t.Errorf("set %s: %q, want %q", set, got, w)
		}
	}
	if e := p.addElems[mapNoEndpointServices]; len(e) == 1 && e[0].target != chainReject {
		t.Errorf("no-endpoint element goes to %s, want %s", e[0].target, chainReject)
	}
	// The ext chain and the endpoint chain go; the svc chain stays (empty
	// but for its masquerade rule) and is rewritten.
	if len(p.delChains) != 2 || len(chainsWith(p.delChains, "ext-")) != 1 || len(chainsWith(p.delChains, "ep-")) != 1 {
		t.Errorf("deleted chains %v", p.delChains)
	}
	if f := chainNames(p.fillChains); len(f) != 1 || !strings.HasPrefix(f[0], "svc-") {
		t.Errorf("rewritten chains %v", f)
	}
}

func TestDiffServiceRemovedAndAllRemoved(t *testing.T) {
	aff := unitSvc("sticky", "10.43.0.12", 0, unitEP("10.42.0.9", "node-a", true))
	aff.AffinityTimeoutSeconds = 60
	have := programmed(mustBuild(t, unitSvc("web", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true)), aff))
	p := diff(have, mustBuild(t, unitSvc("web", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true))))
	if len(p.delChains) != 2 || len(p.delSets) != 1 || !strings.HasPrefix(p.delSets[0], "aff-") {
		t.Errorf("removing sticky deletes chains %v and sets %v, want its svc and ep chains and its affinity set", p.delChains, p.delSets)
	}
	if es := p.delElems[mapServiceIPs]; len(es) != 1 || es[0].key != "10.43.0.12 . tcp . 80" {
		t.Errorf("removed elements %v", p.delElems)
	}
	if len(p.addChains)+len(p.fillChains) != 0 || len(p.addElems) != 0 {
		t.Errorf("unexpected changes %+v", p.summary())
	}

	p = diff(have, mustBuild(t))
	if !p.deleteTable || p.summary() != (Summary{TableDeleted: true}) {
		t.Errorf("no Services left: %+v, want only the table deleted", p.summary())
	}
	if p := diff(newState(), mustBuild(t)); !p.summary().Empty() {
		t.Errorf("no Services and no table: %+v, want nothing", p.summary())
	}
}

func TestDiffNodePortMovesToAnotherService(t *testing.T) {
	have := programmed(mustBuild(t,
		unitSvc("a", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true)),
		unitSvc("b", "10.43.0.11", 0, unitEP("10.42.0.6", "node-a", true))))
	want := mustBuild(t,
		unitSvc("a", "10.43.0.10", 0, unitEP("10.42.0.5", "node-a", true)),
		unitSvc("b", "10.43.0.11", 30080, unitEP("10.42.0.6", "node-a", true)))
	p := diff(have, want)
	del, add := p.delElems[mapServiceNodePorts], p.addElems[mapServiceNodePorts]
	if len(del) != 1 || len(add) != 1 || del[0].key != add[0].key || del[0].target == add[0].target ||
		!strings.Contains(add[0].target, "default/b/") {
		t.Errorf("nodePort 30080 moving from a to b: deleted %v added %v, want the element replaced", del, add)
	}
}

func TestDiffAffinityTimeoutChangeReplacesItsSets(t *testing.T) {
	svc := unitSvc("web", "10.43.0.10", 0, unitEP("10.42.0.5", "node-a", true), unitEP("10.42.0.6", "node-a", true))
	svc.AffinityTimeoutSeconds = 60
	have := programmed(mustBuild(t, svc))
	svc.AffinityTimeoutSeconds = 120
	p := diff(have, mustBuild(t, svc))
	if len(p.addSets) != 2 || len(p.delSets) != 2 {
		t.Errorf("affinity sets: %d added %d deleted, want both endpoints' replaced", len(p.addSets), len(p.delSets))
	}
	if len(p.fillChains) != 3 { // the svc chain and both endpoint chains refer to them
		t.Errorf("rewritten chains %v", chainNames(p.fillChains))
	}
}

func TestDiffReadBackChainWithoutDigestIsRewritten(t *testing.T) {
	want := mustBuild(t, unitSvc("web", "10.43.0.10", 0, unitEP("10.42.0.5", "node-a", true)))
	have := programmed(want)
	// As read: someone edited the services chain by hand.
	have.chains = map[string]string{}
	for k, v := range want.chains {
		have.chains[k] = v
	}
	have.chains[chainServices] = "unknown"
	p := diff(have, want)
	if f := chainNames(p.fillChains); len(f) != 1 || f[0] != chainServices {
		t.Errorf("rewritten chains %v, want services only", f)
	}
}

func TestBuildRules(t *testing.T) {
	svc := wire.Service{
		Namespace: "shop", Name: "web", Type: "NodePort", ClusterIP: "10.43.0.10", ExternalLocal: true,
		AffinityTimeoutSeconds: 30,
		Ports: []wire.ServicePort{
			{Name: "http", Protocol: "TCP", Port: 80, NodePort: 30080, TargetPort: "http"},
			{Name: "metrics", Protocol: "UDP", Port: 9100, TargetPort: "9100"},
		},
		Endpoints: []wire.Endpoint{
			unitEP("10.42.1.5", "node-b", true),
			unitEP("10.42.0.5", "node-a", true),
			{IP: "10.42.0.6", Node: "node-a", Ready: false, Ports: map[string]int32{"http": 8080}},
		},
	}
	s := mustBuild(t, svc)
	text := s.String()
	for _, want := range []string{
		"  10.43.0.10 . tcp . 80 : goto svc-",
		"  10.43.0.10 . udp . 9100 : goto svc-",
		"  tcp . 30080 : goto ext-",
		"  ip daddr 10.43.0.10 th dport 80 ip saddr != 10.42.0.0/24 jump mark-for-masquerade\n",
		"  numgen random mod 2 vmap { 0 : goto ep-",
		"  dnat ip to 10.42.0.5:8080\n",
		"  dnat ip to 10.42.1.5:8080\n",
		"  dnat ip to 10.42.0.5:9100\n", // numeric targetPort, no named port for it
		"  ip saddr 10.42.0.5 jump mark-for-masquerade\n",
		"  update @aff-",
		"  ip saddr 10.42.0.0/24 goto svc-",
		"  fib saddr type local jump mark-for-masquerade\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("built table lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "10.42.0.6") {
		t.Errorf("the not-ready endpoint is in the table:\n%s", text)
	}
	// externalTrafficPolicy Local: the ext chain balances over the local
	// endpoint only, and its last rule sends there.
	for name, c := range s.content {
		if strings.HasPrefix(name, "ext-") {
			last := c.rules[len(c.rules)-1].text
			if !strings.HasPrefix(last, "goto ep-") || !strings.HasSuffix(last, "__10.42.0.5:8080") {
				t.Errorf("ext chain ends with %q, want a goto to the local endpoint", last)
			}
		}
	}
}

func TestBuildInternalLocalWithoutLocalEndpointRefuses(t *testing.T) {
	svc := unitSvc("web", "10.43.0.10", 0, unitEP("10.42.1.5", "node-b", true))
	svc.InternalLocal = true
	s := mustBuild(t, svc)
	if _, ok := s.elems[mapNoEndpointServices]["10.43.0.10 . tcp . 80"]; !ok {
		t.Errorf("internalTrafficPolicy Local with no local endpoint is not refused:\n%s", s)
	}
	if strings.Contains(s.String(), "10.42.1.5") {
		t.Errorf("the remote endpoint is programmed:\n%s", s)
	}
}

func TestBuildSkipsBadServicesAndKeepsTheRest(t *testing.T) {
	good := unitSvc("good", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true))
	cases := map[string]struct {
		svc  wire.Service
		want string
	}{
		"protocol": {func() wire.Service {
			s := unitSvc("bad", "10.43.0.20", 0)
			s.Ports[0].Protocol = "SCTP"
			return s
		}(), `service default/bad: ports[0]: protocol "SCTP": want TCP or UDP`},
		"clusterIP": {unitSvc("bad", "10.43.0.300", 0), `service default/bad: clusterIP "10.43.0.300": not an IP address`},
		"ipv6":      {unitSvc("bad", "fd00::1", 0), "service default/bad: clusterIP fd00::1: only IPv4 is supported"},
		"port": {func() wire.Service {
			s := unitSvc("bad", "10.43.0.20", 0)
			s.Ports[0].Port = 70000
			return s
		}(), "service default/bad: ports[0].port 70000: want 1-65535"},
		"clash":        {unitSvc("bad", "10.43.0.21", 30080), "service default/bad: tcp . 30080 is already another Service's"},
		"same address": {unitSvc("bad", "10.43.0.10", 0), "service default/bad: 10.43.0.10 . tcp . 80 is already another Service's"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			// "bad" sorts before "good"; the clashes need good first, so
			// name it "zbad" for them.
			if name == "clash" || name == "same address" {
				tc.svc.Name = "zbad"
				tc.want = strings.Replace(tc.want, "default/bad", "default/zbad", 1)
			}
			s, _, err := build(unitCfg, []wire.Service{tc.svc, good}, nil)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if _, ok := s.elems[mapServiceIPs]["10.43.0.10 . tcp . 80"]; !ok {
				t.Errorf("the good Service was not built:\n%s", s)
			}
			if strings.Contains(s.String(), "bad") {
				t.Errorf("part of the bad Service was built:\n%s", s)
			}
		})
	}
	_, _, err := build(unitCfg, []wire.Service{unitSvc("x", "10.43.0.30", 0, wire.Endpoint{IP: "nope", Ready: true})}, nil)
	if err == nil || !strings.Contains(err.Error(), `endpoints[0].ip "nope"`) {
		t.Errorf("bad endpoint address: %v", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Errorf("build's error must not claim ErrInvalid itself (Sync wraps it)")
	}
}

func TestHeadlessServiceHasNoRules(t *testing.T) {
	s := mustBuild(t, unitSvc("dns-only", "None", 0, unitEP("10.42.0.5", "node-a", true)))
	if s.exists {
		t.Errorf("a headless Service alone made a table:\n%s", s)
	}
}

func TestKeysRoundTrip(t *testing.T) {
	ip := netip.MustParseAddr("10.43.2.1")
	for _, tc := range []struct {
		kind setKind
		raw  []byte
		want string
	}{
		{kindServiceIPs, serviceIPRaw(ip, 6, 443), "10.43.2.1 . tcp . 443"},
		{kindServiceIPs, serviceIPRaw(ip, 17, 53), "10.43.2.1 . udp . 53"},
		{kindNodePorts, nodePortRaw(17, 32767), "udp . 32767"},
		{kindAddrs, addrElement(ip).raw, "10.43.2.1"},
	} {
		got, err := decodeKey(tc.kind, tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("decode %x: %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
	if _, err := decodeKey(kindServiceIPs, []byte{1, 2, 3}); err == nil {
		t.Error("a short key decoded")
	}
	if _, err := decodeKey(kindNodePorts, nodePortRaw(1, 5)); err == nil {
		t.Error("an ICMP key decoded")
	}
}

func TestObjectNamesAreBoundedAndDistinct(t *testing.T) {
	long := strings.Repeat("n", 63)
	a := objectName("ep", long+"/"+long+"/tcp/http__10.42.0.5:8080", long+"/"+long+"/tcp/http__10.42.0.5:8080")
	b := objectName("ep", long+"/"+long+"/tcp/http__10.42.0.6:8080", long+"/"+long+"/tcp/http__10.42.0.6:8080")
	if len(a) > 200 || a == b {
		t.Errorf("names %q (%d) and %q: want distinct and at most 200 bytes", a, len(a), b)
	}
}

func TestBuildReusesUnchangedServicesParts(t *testing.T) {
	svcs := []wire.Service{
		unitSvc("a", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true), unitEP("10.42.0.6", "node-a", true)),
		unitSvc("b", "10.43.0.11", 0, unitEP("10.42.0.7", "node-a", true)),
	}
	first, cache, err := build(unitCfg, svcs, nil)
	if err != nil {
		t.Fatal(err)
	}
	have := programmed(first)
	svcs[1].Endpoints = append(svcs[1].Endpoints, unitEP("10.42.0.8", "node-a", true))
	cached, _, err := build(unitCfg, svcs, cache)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _, err := build(unitCfg, svcs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same table, but only b's chains (and the fixed ones) carry rules.
	if cached.String() == "" || !maps.Equal(cached.chains, fresh.chains) {
		t.Errorf("a build with the cache differs from one without")
	}
	for name := range cached.content {
		if strings.Contains(name, "default/a/") {
			t.Errorf("unchanged Service a was built again (chain %s)", name)
		}
	}
	pc, pf := diff(have, cached), diff(have, fresh)
	if !pc.complete() || pc.summary() != pf.summary() || !slices.Equal(chainNames(pc.fillChains), chainNames(pf.fillChains)) {
		t.Errorf("diff with the cache %+v, without %+v", pc.summary(), pf.summary())
	}
	// Had the table lost a's chains, the cached part could not write them.
	lost := programmed(first)
	lost.chains = maps.Clone(lost.chains)
	for name := range lost.chains {
		if strings.Contains(name, "default/a/") {
			delete(lost.chains, name)
		}
	}
	if diff(lost, cached).complete() {
		t.Error("a plan writing chains without rules claims to be complete")
	}
	if !diff(lost, fresh).complete() {
		t.Error("a fresh build's plan is not complete")
	}

	// A cached part still clashes with a new Service taking its NodePort.
	clasher := unitSvc("0first", "10.43.0.12", 30080, unitEP("10.42.0.9", "node-a", true))
	_, _, err = build(unitCfg, append(svcs, clasher), cache)
	if err == nil || !strings.Contains(err.Error(), "service default/a: tcp . 30080 is already another Service's") {
		t.Errorf("clash with a cached part: %v", err)
	}
}

func TestFingerprintCoversEveryField(t *testing.T) {
	base := func() wire.Service {
		s := unitSvc("a", "10.43.0.10", 30080, unitEP("10.42.0.5", "node-a", true))
		s.Ports[0].TargetPort = "http"
		return s
	}
	b := base()
	fp := fingerprint(&b)
	for name, change := range map[string]func(*wire.Service){
		"namespace":     func(s *wire.Service) { s.Namespace = "x" },
		"name":          func(s *wire.Service) { s.Name = "x" },
		"clusterIP":     func(s *wire.Service) { s.ClusterIP = "10.43.0.11" },
		"affinity":      func(s *wire.Service) { s.AffinityTimeoutSeconds = 5 },
		"internalLocal": func(s *wire.Service) { s.InternalLocal = true },
		"externalLocal": func(s *wire.Service) { s.ExternalLocal = true },
		"port name":     func(s *wire.Service) { s.Ports[0].Name = "x" },
		"protocol":      func(s *wire.Service) { s.Ports[0].Protocol = "UDP" },
		"port":          func(s *wire.Service) { s.Ports[0].Port = 81 },
		"nodePort":      func(s *wire.Service) { s.Ports[0].NodePort = 30081 },
		"targetPort":    func(s *wire.Service) { s.Ports[0].TargetPort = "8080" },
		"endpoint ip":   func(s *wire.Service) { s.Endpoints[0].IP = "10.42.0.6" },
		"endpoint node": func(s *wire.Service) { s.Endpoints[0].Node = "node-b" },
		"ready":         func(s *wire.Service) { s.Endpoints[0].Ready = false },
		"endpoint port": func(s *wire.Service) { s.Endpoints[0].Ports = map[string]int32{"http": 9090} },
		"endpoint port name": func(s *wire.Service) {
			s.Endpoints[0].Ports = map[string]int32{"web": 8080}
		},
		"another endpoint": func(s *wire.Service) { s.Endpoints = append(s.Endpoints, unitEP("10.42.0.6", "node-a", true)) },
	} {
		s := base()
		change(&s)
		if fingerprint(&s) == fp {
			t.Errorf("changing the %s keeps the fingerprint", name)
		}
	}
}
