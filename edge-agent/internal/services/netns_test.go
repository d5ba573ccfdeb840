package services

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/dns"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/netnstest"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/proxy"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The integration tests drive a Programmer with real rules (package
// proxy, in the node's namespace), a real DNS server and the real
// PrepareNode, on a small site of network namespaces, all in
// 198.18.0.0/15 (reserved for benchmark networks, RFC 2544):
//
//	node    the board: eth0 198.19.0.2 towards peer; bridge flotilla0
//	        198.19.1.1, the first address of its pod CIDR 198.19.1.0/24
//	        (the pod network makes it: here the test does); no sysctl or
//	        route set by the test: PrepareNode sets them
//	pod1-2  the node's pods behind Service web, 198.19.1.11-12
//	client  a pod of the node that is no endpoint, 198.19.1.13
//	peer    another board of the site (198.19.0.3), with one pod address,
//	        198.19.2.10, on its loopback
//
// No hub: the snapshot is a value the test sets, as the agent's local
// state would hold it while the site is cut off.

const (
	itNode     = "node"
	itNodeIP   = "198.19.0.2"
	itPeerIP   = "198.19.0.3"
	itBridge   = "198.19.1.1"
	itPeerPod  = "198.19.2.10"
	itClientIP = "198.19.1.13"
	itWebIP    = "198.19.200.10"
	itPort     = 8080
)

var itPodIPs = []string{"198.19.1.11", "198.19.1.12"}

// site is the namespaces above.
type site struct {
	node, peer, client *netnstest.NS
	pods               []*netnstest.NS
}

var siteSeq struct {
	sync.Mutex
	n int
}

func newSite(t testing.TB) *site {
	t.Helper()
	netnstest.NeedRoot(t)
	siteSeq.Lock()
	siteSeq.n++
	prefix := fmt.Sprintf("fsv%d-%d-", os.Getpid()%100000, siteSeq.n)
	siteSeq.Unlock()
	s := &site{node: netnstest.New(t, prefix+"node"), peer: netnstest.New(t, prefix+"peer")}
	s.node.IP(t, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", s.peer.Name)
	s.node.IP(t, "addr", "add", itNodeIP+"/24", "dev", "eth0")
	s.node.IP(t, "link", "set", "eth0", "up")
	s.peer.IP(t, "addr", "add", itPeerIP+"/24", "dev", "eth0")
	s.peer.IP(t, "link", "set", "eth0", "up")
	s.peer.IP(t, "addr", "add", itPeerPod+"/32", "dev", "lo")
	s.peer.IP(t, "route", "add", "198.19.1.0/24", "via", itNodeIP)
	// The pod network's part: the bridge, the route to the peer's pods.
	s.node.IP(t, "link", "add", "flotilla0", "type", "bridge")
	s.node.IP(t, "addr", "add", itBridge+"/24", "dev", "flotilla0")
	s.node.IP(t, "link", "set", "flotilla0", "up")
	s.node.IP(t, "route", "add", "198.19.2.0/24", "via", itPeerIP)
	addPod := func(name, addr string) *netnstest.NS {
		pod := netnstest.New(t, prefix+name)
		port := "v" + name
		s.node.IP(t, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
		s.node.IP(t, "link", "set", port, "master", "flotilla0", "up")
		s.node.IP(t, "link", "set", port, "type", "bridge_slave", "hairpin", "on")
		pod.IP(t, "addr", "add", addr+"/24", "dev", "eth0")
		pod.IP(t, "link", "set", "eth0", "up")
		pod.IP(t, "route", "add", "default", "via", itBridge)
		return pod
	}
	for i, addr := range itPodIPs {
		s.pods = append(s.pods, addPod(fmt.Sprintf("pod%d", i+1), addr))
	}
	s.client = addPod("client", itClientIP)
	return s
}

// backends are the real rules, DNS server and node preparation, in the
// node's namespace.
func (s *site) backends(log *slog.Logger) Backends {
	return Backends{
		NewRules: func(cfg proxy.Config) (Rules, error) {
			p, err := proxy.New(cfg, proxy.WithNetNS(s.node.FD))
			if err != nil {
				return nil, err
			}
			return p, nil
		},
		NewDNS: func(addr string) (Resolver, error) {
			srv, err := dns.New(dns.Config{Addr: addr, CacheSize: -1, Logger: log})
			if err != nil {
				return nil, err
			}
			return &nsResolver{Server: srv, ns: s.node}, nil
		},
		Prepare: func(bridge netip.Addr, serviceCIDR netip.Prefix) error {
			return s.node.Do(func() error { return PrepareNode(bridge, serviceCIDR) })
		},
	}
}

// nsResolver binds the DNS server in a namespace.
type nsResolver struct {
	*dns.Server
	ns *netnstest.NS
}

func (r *nsResolver) Listen() error { return r.ns.Do(r.Server.Listen) }

// server answers every TCP connection with its name and closes it.
type server struct {
	ln   net.Listener
	done chan struct{}
}

func serve(t testing.TB, ns *netnstest.NS, addr, name string) *server {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", addr, itPort))
		return err
	}); err != nil {
		t.Fatalf("serve %s on %s: %v", name, addr, err)
	}
	s := &server{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", name)
			c.Close()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *server) stop() {
	s.ln.Close()
	<-s.done
}

// ioTimeout bounds every network wait of a client.
const ioTimeout = 5 * time.Second

// ask connects from ns to addr and returns who answered.
func ask(ns *netnstest.NS, addr string) (string, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, ioTimeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// count asks n times through the Service and counts who answered.
func count(t *testing.T, ns *netnstest.NS, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := ask(ns, fmt.Sprintf("%s:80", itWebIP))
		if err != nil {
			t.Fatalf("request %d through the ClusterIP: %v (answers so far: %v)", i, err, got)
		}
		got[name]++
	}
	return got
}

// lookup asks the node's DNS server for name's A records from ns.
func lookup(t *testing.T, ns *netnstest.NS, name string) []string {
	t.Helper()
	var in *mdns.Msg
	err := ns.Do(func() error {
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
		c := &mdns.Client{Timeout: ioTimeout}
		var err error
		in, _, err = c.Exchange(m, net.JoinHostPort(itBridge, "53"))
		return err
	})
	if err != nil {
		t.Fatalf("look up %s: %v", name, err)
	}
	var out []string
	for _, rr := range in.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// itSnapshot is what the hub last sent: pod1 and pod2 on this node, a pod
// on the peer, all Ready behind web.
func itSnapshot() wire.Snapshot {
	ports := []api.ContainerPort{{Name: "http", ContainerPort: itPort}}
	snapPod := func(uid, app string) wire.SnapshotPod {
		return wire.SnapshotPod{UID: uid, Name: uid, Namespace: "default", Labels: map[string]string{"app": app},
			Spec: api.PodSpec{Containers: []api.Container{{Name: "web", Ports: ports}}}}
	}
	ep := func(uid, ip, node string) wire.Endpoint {
		return wire.Endpoint{IP: ip, Node: node, Namespace: "default", Name: uid, PodUID: uid, Ready: true,
			Ports: map[string]int32{"": itPort}}
	}
	return wire.Snapshot{
		Node: itNode, Revision: 7,
		Network: &wire.Network{PodCIDR: "198.19.1.0/24", ClusterCIDR: "198.19.0.0/16", ServiceCIDR: "198.19.200.0/24",
			ClusterDomain: "cluster.local"},
		Pods: []wire.SnapshotPod{snapPod("pod1", "web"), snapPod("pod2", "web"), snapPod("client", "client")},
		Services: []wire.Service{{
			Namespace: "default", Name: "web", Type: "ClusterIP", ClusterIP: itWebIP,
			Selector: map[string]string{"app": "web"},
			Ports:    []wire.ServicePort{{Protocol: "TCP", Port: 80, TargetPort: "http"}},
			Endpoints: []wire.Endpoint{
				ep("pod1", itPodIPs[0], itNode), ep("pod2", itPodIPs[1], itNode), ep("peer", itPeerPod, "peer"),
			},
		}},
	}
}

// itReport is the node's pod status: each pod at its address, Ready or not.
func itReport(pods ...wire.PodReport) wire.PodStatusReport {
	return wire.PodStatusReport{ObservedRevision: 7, Pods: pods}
}

func podAt(uid, ip string, isReady bool) wire.PodReport {
	r := running(uid, ip, isReady)
	r.Name = uid
	return r
}

// TestOfflineSite: a board cut off from its hub keeps its Service right
// from what it sees of its own pods: a pod turning not Ready leaves the
// rules at once, a pod restarted with a new address is reachable through
// the Service as soon as its report is programmed, and the peer's pod,
// which the board cannot see, stays as the hub last sent it. Cluster DNS
// answers the Service's name on the bridge address.
func TestOfflineSite(t *testing.T) {
	s := newSite(t)
	servers := []*server{serve(t, s.pods[0], itPodIPs[0], "pod1"), serve(t, s.pods[1], itPodIPs[1], "pod2")}
	serve(t, s.peer, itPeerPod, "peer")
	snap := itSnapshot()
	cfg := Config{
		NodeName: itNode,
		NodeIPs:  []netip.Addr{netip.MustParseAddr(itNodeIP)},
		Snapshot: func() (wire.Snapshot, error) { return snap, nil },
		Backends: s.backends(testLogger(t)),
		Event: func(typ api.EventType, reason, message string) {
			t.Errorf("event %s %s: %s", typ, reason, message)
		},
		Logger: testLogger(t),
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// The pods as the agent sees them: as the hub says.
	programmed(t, p, p.SetReport(itReport(podAt("pod1", itPodIPs[0], true), podAt("pod2", itPodIPs[1], true), podAt("client", itClientIP, true))))
	got := count(t, s.client, 60)
	if got["pod1"] == 0 || got["pod2"] == 0 || got["peer"] == 0 || len(got) != 3 {
		t.Fatalf("60 connections to the ClusterIP went to %v, want pod1, pod2 and the peer's pod", got)
	}
	// PrepareNode did the node's part.
	for key, want := range map[string]string{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"} {
		if v := s.node.Sysctl(t, key); v != want {
			t.Errorf("%s = %s in the node, want %s", key, v, want)
		}
	}
	// The node itself reaches the Service (the route PrepareNode added).
	if name, err := ask(s.node, itWebIP+":80"); err != nil {
		t.Errorf("from the node itself: %v", err)
	} else {
		t.Logf("from the node itself: answered by %s", name)
	}
	// Cluster DNS: bound on the bridge address by the first pass.
	if addrs := lookup(t, s.client, "web.default.svc.cluster.local"); len(addrs) != 1 || addrs[0] != itWebIP {
		t.Errorf("web.default.svc.cluster.local is %v, want [%s]", addrs, itWebIP)
	}

	// pod2 fails its readiness probe: out of the rules at once (the
	// snapshot, the hub's view, still has it Ready).
	programmed(t, p, p.SetReport(itReport(podAt("pod1", itPodIPs[0], true), podAt("pod2", itPodIPs[1], false), podAt("client", itClientIP, true))))
	got = count(t, s.client, 60)
	if got["pod2"] != 0 || got["pod1"] == 0 || got["peer"] == 0 {
		t.Errorf("60 connections after pod2 turned not Ready went to %v, want none to pod2, some to pod1 and the peer", got)
	}

	// pod1 restarts with a new address (its old one is gone: a stale rule
	// would time out): reachable through the Service as soon as the
	// report is programmed.
	servers[0].stop()
	const newIP = "198.19.1.21"
	s.pods[0].IP(t, "addr", "del", itPodIPs[0]+"/24", "dev", "eth0")
	s.pods[0].IP(t, "addr", "add", newIP+"/24", "dev", "eth0")
	s.pods[0].IP(t, "route", "replace", "default", "via", itBridge)
	serve(t, s.pods[0], newIP, "pod1")
	start := time.Now()
	programmed(t, p, p.SetReport(itReport(podAt("pod1", newIP, true), podAt("pod2", itPodIPs[1], false), podAt("client", itClientIP, true))))
	took := time.Since(start)
	got = count(t, s.client, 60)
	if got["pod1"] == 0 || got["peer"] == 0 || got["pod2"] != 0 {
		t.Errorf("60 connections after pod1 came back at %s went to %v, want pod1 and the peer, not pod2", newIP, got)
	}
	t.Logf("pod1 at its new address programmed %s after its report (hub offline); then 60 connections: %v", took.Round(time.Microsecond), got)
}
