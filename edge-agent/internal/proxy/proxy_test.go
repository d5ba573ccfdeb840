package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Integration tests: real rules in the kernel, real connections through
// them, in namespaces the tests make (see netns_test.go). They need root.

func webService(eps []wire.Endpoint) wire.Service {
	return wire.Service{
		Namespace: "default", Name: "web", Type: "NodePort", ClusterIP: "198.19.200.10",
		Ports:     []wire.ServicePort{tcpPortSpec("http", 80, 30080), udpPortSpec("dns", 53, 30053)},
		Endpoints: eps,
	}
}

func mustSync(t *testing.T, p *Proxy, svcs ...wire.Service) Summary {
	t.Helper()
	sum, err := p.Sync(svcs)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return sum
}

// count asks n times and counts who answered.
func count(t *testing.T, n int, f func() (string, string, error)) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, _, err := f()
		if err != nil {
			t.Fatalf("request %d: %v (answers so far: %v)", i, err, got)
		}
		got[name]++
	}
	return got
}

func TestClusterIPBalancesOverReadyEndpoints(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	// pod3's endpoint is not ready: it must get nothing.
	eps := append(localEPs(2), notReady(ep(podIPs[2], "node")))
	mustSync(t, p, webService(eps))

	// From a pod: pod1 reaches its own Service (hairpin) and pod2.
	got := count(t, 100, func() (string, string, error) { return ask(s.pods[0], "198.19.200.10:80") })
	if got["pod1"] < 20 || got["pod2"] < 20 || got["pod3"] != 0 {
		t.Errorf("100 connections from pod1 went to %v, want both ready endpoints (20+ each) and none to pod3", got)
	}
	// From the node itself.
	got = count(t, 40, func() (string, string, error) { return ask(s.node, "198.19.200.10:80") })
	if got["pod1"] == 0 || got["pod2"] == 0 || len(got) != 2 {
		t.Errorf("40 connections from the node went to %v, want pod1 and pod2", got)
	}
	// UDP, from another pod.
	got = count(t, 40, func() (string, string, error) { return askUDP(s.pods[2], "198.19.200.10:53") })
	if got["pod1"] == 0 || got["pod2"] == 0 || len(got) != 2 {
		t.Errorf("40 UDP requests from pod3 went to %v, want pod1 and pod2", got)
	}

	// Now all three are ready: 100 connections from pod3 spread over all.
	mustSync(t, p, webService(localEPs(3)))
	got = count(t, 100, func() (string, string, error) { return ask(s.pods[2], "198.19.200.10:80") })
	for _, name := range []string{"pod1", "pod2", "pod3"} {
		if got[name] < 10 {
			t.Errorf("100 connections from pod3 went to %v, want 10+ each on pod1, pod2, pod3", got)
			break
		}
	}
	t.Logf("100 connections through the ClusterIP: %v", got)
}

func TestHairpinKeepsThePodsOwnService(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	// pod1 is the only endpoint and reaches itself through its Service:
	// without the masquerade it would get its own SYN's answer from its own
	// address and drop it.
	mustSync(t, p, webService(localEPs(1)))
	name, client, err := ask(s.pods[0], "198.19.200.10:80")
	if err != nil {
		t.Fatalf("pod1 to its own Service: %v", err)
	}
	if name != "pod1" || client != bridgeIP {
		t.Errorf("answered by %s seeing client %s, want pod1 seeing the node's bridge address %s", name, client, bridgeIP)
	}
}

func TestNodePort(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	remoteOnly := wire.Service{
		Namespace: "default", Name: "remote", Type: "NodePort", ClusterIP: "198.19.200.11",
		Ports:     []wire.ServicePort{tcpPortSpec("http", 80, 30081)},
		Endpoints: []wire.Endpoint{ep(peerPod, "peer")},
	}
	mustSync(t, p, webService(localEPs(2)), remoteOnly)

	// From the LAN: balanced, and masqueraded (externalTrafficPolicy
	// Cluster), so the pod sees the node.
	clients := map[string]int{}
	got := count(t, 50, func() (string, string, error) {
		name, client, err := ask(s.lan, nodeIP+":30080")
		clients[client]++
		return name, client, err
	})
	if got["pod1"] == 0 || got["pod2"] == 0 || len(got) != 2 {
		t.Errorf("50 connections from the LAN went to %v, want pod1 and pod2", got)
	}
	if clients[bridgeIP] != 50 {
		t.Errorf("pods saw LAN clients as %v, want the node's bridge address %s (masqueraded)", clients, bridgeIP)
	}
	name, _, err := askUDP(s.lan, nodeIP+":30053")
	if err != nil || (name != "pod1" && name != "pod2") {
		t.Errorf("UDP NodePort from the LAN: %q, %v", name, err)
	}
	// From the node itself and from a pod.
	for _, from := range []*netns{s.node, s.pods[2]} {
		if name, _, err := ask(from, nodeIP+":30080"); err != nil || (name != "pod1" && name != "pod2") {
			t.Errorf("NodePort from %s: %q, %v", from.name, name, err)
		}
	}
	// To an endpoint on another board: the peer would answer the laptop
	// directly (they share the LAN) unless the node masqueraded.
	name, client, err := ask(s.lan, nodeIP+":30081")
	if err != nil {
		t.Fatalf("NodePort from the LAN to a remote endpoint: %v", err)
	}
	if name != "peer" || client != nodeIP {
		t.Errorf("answered by %s seeing client %s, want peer seeing the node %s", name, client, nodeIP)
	}
}

func TestExternalTrafficPolicyLocal(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	svc := wire.Service{
		Namespace: "default", Name: "local", Type: "NodePort", ClusterIP: "198.19.200.12", ExternalLocal: true,
		Ports:     []wire.ServicePort{tcpPortSpec("http", 80, 30082)},
		Endpoints: []wire.Endpoint{ep(podIPs[0], "node"), ep(peerPod, "peer")},
	}
	mustSync(t, p, svc)
	// From the LAN: only the local endpoint, and it sees the laptop's own
	// address.
	for i := 0; i < 30; i++ {
		name, client, err := ask(s.lan, nodeIP+":30082")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if name != "pod1" || client != lanIP {
			t.Fatalf("request %d answered by %s seeing client %s, want pod1 seeing the laptop %s", i, name, client, lanIP)
		}
	}
	// From a pod of the node the NodePort is not "external": every
	// endpoint serves it.
	got := count(t, 40, func() (string, string, error) { return ask(s.pods[1], nodeIP+":30082") })
	if got["pod1"] == 0 || got["peer"] == 0 {
		t.Errorf("40 connections from pod2 to the NodePort went to %v, want pod1 and peer", got)
	}
	// Nor from the node itself.
	got = count(t, 40, func() (string, string, error) { return ask(s.node, nodeIP+":30082") })
	if got["pod1"] == 0 || got["peer"] == 0 {
		t.Errorf("40 connections from the node to the NodePort went to %v, want pod1 and peer", got)
	}
}

func TestInternalTrafficPolicyLocal(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	mixed := wire.Service{
		Namespace: "default", Name: "mixed", ClusterIP: "198.19.200.13", InternalLocal: true,
		Ports:     []wire.ServicePort{tcpPortSpec("http", 80, 0)},
		Endpoints: []wire.Endpoint{ep(podIPs[1], "node"), ep(peerPod, "peer")},
	}
	remote := wire.Service{
		Namespace: "default", Name: "remote", ClusterIP: "198.19.200.14", InternalLocal: true,
		Ports:     []wire.ServicePort{tcpPortSpec("http", 80, 0)},
		Endpoints: []wire.Endpoint{ep(peerPod, "peer")},
	}
	mustSync(t, p, mixed, remote)
	got := count(t, 30, func() (string, string, error) { return ask(s.pods[0], "198.19.200.13:80") })
	if got["pod2"] != 30 {
		t.Errorf("30 connections went to %v, want all to the local endpoint pod2", got)
	}
	// No local endpoint: refused, though a remote one is ready.
	if _, _, err := ask(s.pods[0], "198.19.200.14:80"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("internalTrafficPolicy Local without a local endpoint: %v, want connection refused", err)
	}
}

func TestNoReadyEndpointRefusesAtOnce(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	// pod1 runs servers but is not ready; a Service with no endpoints at
	// all is refused the same way.
	empty := wire.Service{Namespace: "default", Name: "empty", ClusterIP: "198.19.200.15",
		Ports: []wire.ServicePort{tcpPortSpec("http", 80, 30085)}}
	mustSync(t, p, webService([]wire.Endpoint{notReady(ep(podIPs[0], "node"))}), empty)

	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s: %v, want connection refused", what, err)
		}
	}
	_, _, err := ask(s.pods[1], "198.19.200.10:80")
	refused("TCP ClusterIP from a pod", err)
	_, _, err = ask(s.node, "198.19.200.10:80")
	refused("TCP ClusterIP from the node", err)
	_, _, err = askUDP(s.pods[1], "198.19.200.10:53")
	refused("UDP ClusterIP from a pod", err)
	// The node's own datagram is refused on the way out: the send fails.
	if _, _, err = askUDP(s.node, "198.19.200.10:53"); !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("UDP ClusterIP from the node: %v, want the send refused", err)
	}
	_, _, err = ask(s.lan, nodeIP+":30080")
	refused("TCP NodePort from the LAN", err)
	_, _, err = askUDP(s.lan, nodeIP+":30053")
	refused("UDP NodePort from the LAN", err)
	_, _, err = ask(s.pods[1], "198.19.200.15:80")
	refused("Service without endpoints", err)

	// pod1 turns ready: the same addresses now reach it.
	mustSync(t, p, webService(localEPs(1)), empty)
	if name, _, err := ask(s.pods[1], "198.19.200.10:80"); err != nil || name != "pod1" {
		t.Errorf("after pod1 turned ready: %q, %v", name, err)
	}
	if name, _, err := ask(s.lan, nodeIP+":30080"); err != nil || name != "pod1" {
		t.Errorf("NodePort after pod1 turned ready: %q, %v", name, err)
	}
}

func TestSessionAffinityPinsAClient(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	svc := webService(localEPs(3))
	svc.AffinityTimeoutSeconds = 600
	mustSync(t, p, svc)
	for _, from := range []*netns{s.pods[0], s.pods[1], s.lan} {
		addr := "198.19.200.10:80"
		if from == s.lan {
			addr = nodeIP + ":30080"
		}
		got := count(t, 20, func() (string, string, error) { return ask(from, addr) })
		if len(got) != 1 {
			t.Errorf("20 connections from %s with ClientIP affinity went to %v, want one endpoint", from.name, got)
		}
	}
}

func TestUpdateKeepsEstablishedConnections(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	other := wire.Service{Namespace: "default", Name: "other", ClusterIP: "198.19.200.16",
		Ports: []wire.ServicePort{tcpPortSpec("http", 80, 0)}, Endpoints: localEPs(3)}
	mustSync(t, p, webService(localEPs(3)), other)

	// Connections to every endpoint of web, and one through other.
	conns := map[string]net.Conn{}
	for i := 0; len(conns) < 3 && i < 200; i++ {
		c, err := dial(s.lan, nodeIP+":30080")
		if err != nil {
			t.Fatal(err)
		}
		name, _, err := greeting(c)
		if err != nil {
			t.Fatal(err)
		}
		if conns[name] != nil {
			c.Close()
			continue
		}
		conns[name] = c
		defer c.Close()
	}
	if len(conns) != 3 {
		t.Fatalf("reached only %d endpoints in 200 connections", len(conns))
	}
	oc, err := dial(s.pods[0], "198.19.200.16:80")
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	oname, _, err := greeting(oc)
	if err != nil {
		t.Fatal(err)
	}

	// pod3 leaves web's endpoints (say it failed its readiness probe).
	sum := mustSync(t, p, webService(localEPs(2)), other)
	// Only web's two port chains and its two endpoint chains for pod3
	// change (one per port); nothing else is touched.
	want := Summary{ChainsChanged: 4, ChainsRemoved: 2}
	if sum != want {
		t.Errorf("removing one endpoint changed %+v, want %+v", sum, want)
	}
	for name, c := range conns {
		if err := echo(c, name); err != nil {
			t.Errorf("established connection to %s after the update: %v", name, err)
		}
	}
	if err := echo(oc, oname); err != nil {
		t.Errorf("established connection through the other Service after the update: %v", err)
	}
	got := count(t, 30, func() (string, string, error) { return ask(s.lan, nodeIP+":30080") })
	if got["pod3"] != 0 {
		t.Errorf("new connections after the update went to %v, want none to pod3", got)
	}
}

// ruleset lists every table, chain, rule count and set of a namespace but
// ours, to show that Sync and Remove leave them alone.
func foreignRuleset(t *testing.T, ns *netns) string {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	chains, err := c.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tb := range tables {
		if tb.Name == tableName && tb.Family == nftables.TableFamilyINet {
			continue
		}
		lines = append(lines, fmt.Sprintf("table %d %s", tb.Family, tb.Name))
		for _, ch := range chains {
			if ch.Table.Name != tb.Name || ch.Table.Family != tb.Family {
				continue
			}
			rules, err := c.GetRules(tb, ch)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("  chain %s: %d rules", ch.Name, len(rules)))
		}
		sets, err := c.GetSets(tb)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sets {
			elems, err := c.GetSetElements(st)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("  set %s: %d elements", st.Name, len(elems)))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// hasTable reports whether the namespace has the table inet flotilla.
func hasTable(t *testing.T, ns *netns) bool {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == tableName })
}

// foreignTables adds what other software keeps in a board's nftables: an
// iptables-nft style table with a base chain and a rule, and a firewall's
// inet table with a set.
func foreignTables(t *testing.T, ns *netns) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.fd))
	if err != nil {
		t.Fatal(err)
	}
	ipt := c.AddTable(&nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4})
	fwd := c.AddChain(&nftables.Chain{Name: "FORWARD", Table: ipt, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: ipt, Chain: fwd, Exprs: []expr.Any{&expr.Counter{}}})
	fw := c.AddTable(&nftables.Table{Name: "firewall", Family: nftables.TableFamilyINet})
	c.AddChain(&nftables.Chain{Name: "input", Table: fw, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	set := &nftables.Set{Table: fw, Name: "allowed", KeyType: nftables.TypeIPAddr}
	if err := c.AddSet(set, []nftables.SetElement{{Key: []byte{192, 0, 2, 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("foreign tables: %v", err)
	}
}

func TestRemovingAllServicesLeavesNoTableAndForeignTablesAlone(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	foreignTables(t, s.node)
	before := foreignRuleset(t, s.node)
	if !strings.Contains(before, "chain FORWARD: 1 rules") || !strings.Contains(before, "set allowed: 1 elements") {
		t.Fatalf("foreign tables not made:\n%s", before)
	}
	p := s.proxy(t)
	mustSync(t, p, webService(localEPs(2)))
	if name, _, err := ask(s.pods[2], "198.19.200.10:80"); err != nil {
		t.Fatalf("through the Service beside foreign tables: %q, %v", name, err)
	}
	if got := foreignRuleset(t, s.node); got != before {
		t.Errorf("Sync changed foreign tables:\n%s\nwas:\n%s", got, before)
	}
	sum := mustSync(t, p)
	if sum != (Summary{TableDeleted: true}) || hasTable(t, s.node) {
		t.Errorf("no Services: %+v, table still there: %v", sum, hasTable(t, s.node))
	}
	if got := foreignRuleset(t, s.node); got != before {
		t.Errorf("removing every Service changed foreign tables:\n%s\nwas:\n%s", got, before)
	}
	// Again, and Remove this time.
	mustSync(t, p, webService(localEPs(2)))
	if err := p.Remove(); err != nil {
		t.Fatal(err)
	}
	if hasTable(t, s.node) {
		t.Error("Remove left the table")
	}
	if got := foreignRuleset(t, s.node); got != before {
		t.Errorf("Remove changed foreign tables:\n%s\nwas:\n%s", got, before)
	}
	if err := p.Remove(); err != nil {
		t.Errorf("Remove without a table: %v", err)
	}
}

func TestRestartedAgentTakesOverTheTable(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	svcs := []wire.Service{webService(localEPs(3)), {
		Namespace: "default", Name: "sticky", ClusterIP: "198.19.200.17", AffinityTimeoutSeconds: 60,
		Ports: []wire.ServicePort{tcpPortSpec("http", 80, 0)}, Endpoints: localEPs(2),
	}}
	first := s.proxy(t)
	mustSync(t, first, svcs...)
	c, err := dial(s.lan, nodeIP+":30080")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name, _, err := greeting(c)
	if err != nil {
		t.Fatal(err)
	}
	first.Close() // the agent stops; its rules keep serving
	if got, _, err := ask(s.pods[0], "198.19.200.17:80"); err != nil {
		t.Fatalf("with the agent gone: %q, %v", got, err)
	}

	second := s.proxy(t)
	if sum := mustSync(t, second, svcs...); !sum.Empty() {
		t.Errorf("the restarted agent's first Sync of the same Services changed %+v, want nothing", sum)
	}
	svcs[0] = webService(localEPs(2))
	if sum := mustSync(t, second, svcs...); sum.ChainsRemoved != 2 || sum.TableCreated || sum.ElementsAdded+sum.ElementsRemoved != 0 {
		t.Errorf("then one endpoint fewer changed %+v", sum)
	}
	if name != "pod3" {
		if err := echo(c, name); err != nil {
			t.Errorf("connection from before the restart: %v", err)
		}
	}
	// A chain edited by hand (its digest comment gone) is put back.
	conn, err := nftables.New(nftables.WithNetNSFd(s.node.fd))
	if err != nil {
		t.Fatal(err)
	}
	conn.FlushChain(&nftables.Chain{Name: chainServices, Table: table()})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	third := s.proxy(t)
	if sum := mustSync(t, third, svcs...); sum != (Summary{ChainsChanged: 1}) {
		t.Errorf("after the services chain was flushed by hand: %+v, want it rewritten", sum)
	}
	if got, _, err := ask(s.pods[0], "198.19.200.17:80"); err != nil {
		t.Errorf("after the repair: %q, %v", got, err)
	}
}

func TestInvalidServiceIsSkippedOthersServe(t *testing.T) {
	s := newSite(t)
	s.serveAll(t)
	p := s.proxy(t)
	bad := wire.Service{Namespace: "default", Name: "bad", ClusterIP: "198.19.200.18",
		Ports: []wire.ServicePort{{Name: "x", Protocol: "SCTP", Port: 9}}}
	_, err := p.Sync([]wire.Service{bad, webService(localEPs(1))})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "service default/bad: ports[0]") {
		t.Fatalf("Sync: %v, want ErrInvalid naming default/bad", err)
	}
	if name, _, err := ask(s.pods[1], "198.19.200.10:80"); err != nil || name != "pod1" {
		t.Errorf("the valid Service: %q, %v", name, err)
	}
}

func TestLargeTablesAreProgrammedWhole(t *testing.T) {
	needRoot(t)
	node := newNetns(t, fmt.Sprintf("fpxl%d-%d", os.Getpid()%100000, siteSeqNext()))
	cfg := Config{NodeName: "node", NodeIPs: []netip.Addr{netip.MustParseAddr(nodeIP)}, PodCIDR: netip.MustParsePrefix(podCIDR)}
	// 1,000 ClusterIPs: more map elements than one netlink attribute
	// holds; and one Service with 800 endpoints, more than its balancing
	// map's one message holds.
	svcs := manyServices(1000, 2)
	wide := manyServices(1, 800)[0]
	wide.Name, wide.ClusterIP, wide.Type, wide.Ports[0].NodePort = "wide", "198.19.200.50", "ClusterIP", 0
	for i := range wide.Endpoints {
		wide.Endpoints[i].IP = netip.AddrFrom4([4]byte{198, 19, 100 + byte(i/200), byte(i % 200)}).String()
	}
	svcs = append(svcs, wide)
	p, err := New(cfg, WithNetNS(node.fd))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mustSync(t, p, svcs...)

	c, err := nftables.New(nftables.WithNetNSFd(node.fd))
	if err != nil {
		t.Fatal(err)
	}
	have, err := read(c)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(have.elems[mapServiceIPs]); n != 1001 {
		t.Errorf("service-ips holds %d elements, want 1001", n)
	}
	if n := len(have.elems[mapServiceNodePorts]); n != 250 {
		t.Errorf("service-nodeports holds %d elements, want 250", n)
	}
	sets, err := c.GetSets(table())
	if err != nil {
		t.Fatal(err)
	}
	widest := 0
	for _, s := range sets {
		if s.Anonymous {
			elems, err := c.GetSetElements(s)
			if err != nil {
				t.Fatal(err)
			}
			widest = max(widest, len(elems))
		}
	}
	if widest != 800 {
		t.Errorf("the widest balancing map holds %d endpoints, want 800", widest)
	}
	again, err := New(cfg, WithNetNS(node.fd))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if sum := mustSync(t, again, svcs...); !sum.Empty() {
		t.Errorf("a restarted agent's Sync of the same Services changed %+v", sum)
	}
}
