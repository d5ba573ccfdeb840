package dispatch

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// netNode is a Ready node in zone (none if ""), with an InternalIP and
// a pod subnet (none if "").
func netNode(name, zone, ip, cidr string) *api.Node {
	n := &api.Node{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
		ObjectMeta: api.ObjectMeta{Name: name, UID: "uid-" + name, Labels: map[string]string{api.LabelHostname: name}},
		Spec:       api.NodeSpec{PodCIDR: cidr},
		Status: api.NodeStatus{Online: true, Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}},
			Addresses: []api.NodeAddress{{Type: "Hostname", Address: name}}},
	}
	if zone != "" {
		n.Labels[LabelZone] = zone
	}
	if ip != "" {
		n.Status.Addresses = append(n.Status.Addresses, api.NodeAddress{Type: "InternalIP", Address: ip})
	}
	return n
}

func webService(port int32) *api.Service {
	return &api.Service{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindService},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-svc"},
		Spec: api.ServiceSpec{Type: api.ServiceTypeNodePort, ClusterIP: "10.43.0.10", Selector: map[string]string{"app": "web"},
			SessionAffinity: api.ServiceAffinityClientIP, InternalTrafficPolicy: api.ServiceTrafficPolicyLocal,
			ExternalTrafficPolicy: api.ServiceTrafficPolicyCluster,
			Ports:                 []api.ServicePort{{Name: "http", Protocol: api.ProtocolTCP, Port: port, TargetPort: api.FromString("http"), NodePort: 30080}}},
	}
}

// address is an endpoint address of pod name on node.
func address(ip, node, pod string) api.EndpointAddress {
	return api.EndpointAddress{IP: ip, NodeName: node, TargetRef: &api.ObjectReference{Kind: api.KindPod, Namespace: "default", Name: pod, UID: "uid-" + pod}}
}

func webEndpoints(subsets ...api.EndpointSubset) *api.Endpoints {
	return &api.Endpoints{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEndpoints},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web"}, Subsets: subsets}
}

type netFixture struct {
	t   *testing.T
	st  store.Store
	pub *fakePublisher
	d   *Dispatcher
}

func newNetFixture(t *testing.T, objs ...api.Object) *netFixture {
	t.Helper()
	f := &netFixture{t: t, st: store.NewMemory(), pub: &fakePublisher{}}
	t.Cleanup(func() { f.st.Close() })
	for _, o := range objs {
		put(t, f.st, o)
	}
	f.d = New(Options{Store: f.st, Publisher: f.pub, Network: ipam.DefaultConfig()})
	if err := f.d.resync(); err != nil {
		t.Fatal(err)
	}
	return f
}

// change stores obj (nil: deletes key) and hands the dispatcher the
// store's event, as its loop would.
func (f *netFixture) change(key store.Key, obj api.Object) {
	f.t.Helper()
	ev := store.Event{Type: store.Put, Key: key}
	if obj == nil {
		ev.Type = store.Deleted
		if err := f.st.Update(func(tx store.Tx) error { return tx.Delete(key) }); err != nil {
			f.t.Fatal(err)
		}
	} else {
		put(f.t, f.st, obj)
	}
	f.d.handle(ev)
}

// queued is the nodes a pass would build again, sorted.
func (f *netFixture) queued() []string {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	var names []string
	for name := range f.d.queue {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// pass flushes and returns the snapshots published, by node.
func (f *netFixture) pass() map[string]wire.Snapshot {
	f.t.Helper()
	if failed := f.d.flush(context.Background()); failed {
		f.t.Fatal("a publish failed")
	}
	out := map[string]wire.Snapshot{}
	for _, m := range f.pub.take() {
		out[m.snap.Node] = m.snap
	}
	if err := store.VerifyShared(f.st); err != nil {
		f.t.Fatal(err)
	}
	return out
}

func names(m map[string]wire.Snapshot) string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// renderEndpoints writes a Service's endpoints as ip/node/ready/ports.
func renderEndpoints(svc wire.Service) string {
	var out []string
	for _, e := range svc.Endpoints {
		r := "notready"
		if e.Ready {
			r = "ready"
		}
		ports, _ := json.Marshal(e.Ports)
		out = append(out, e.IP+"/"+e.Node+"/"+e.Name+"/"+r+"/"+string(ports)+e.Hostname)
	}
	return strings.Join(out, " ")
}

// TestSnapshotsCarryTheSitesNetworkAndServices: each node's snapshot
// carries its Network once it has a pod subnet (its site's other nodes
// as peers) and every Service with the endpoints of its own site only.
func TestSnapshotsCarryTheSitesNetworkAndServices(t *testing.T) {
	ready := api.EndpointSubset{
		Addresses: []api.EndpointAddress{address("10.42.0.5", "a1", "web-1"), address("10.42.2.5", "b1", "web-3")},
		Ports:     []api.EndpointPort{{Name: "http", Port: 8080, Protocol: api.ProtocolTCP}},
	}
	notReady := api.EndpointSubset{
		NotReadyAddresses: []api.EndpointAddress{address("10.42.1.5", "a2", "web-2")},
		Ports:             []api.EndpointPort{{Name: "http", Port: 8080, Protocol: api.ProtocolTCP}},
	}
	ready.Addresses[0].Hostname = "web-one"
	f := newNetFixture(t,
		netNode("a1", "plant-a", "192.168.1.11", "10.42.0.0/24"), netNode("a2", "plant-a", "192.168.1.12", "10.42.1.0/24"),
		netNode("a3", "plant-a", "192.168.1.13", ""), // no subnet yet: no Network, not a peer
		netNode("b1", "plant-b", "192.168.2.11", "10.42.2.0/24"),
		netNode("solo", "", "192.168.3.11", "10.42.3.0/24"),
		webService(8099), webEndpoints(ready, notReady))
	snaps := f.pass()
	if got := names(snaps); got != "a1 a2 a3 b1 solo" {
		t.Fatalf("snapshots for %q: every node gets the Services", got)
	}

	a1 := snaps["a1"]
	want := &wire.Network{PodCIDR: "10.42.0.0/24", ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDomain: "cluster.local",
		Peers: []wire.NetworkPeer{{Node: "a2", IP: "192.168.1.12", PodCIDR: "10.42.1.0/24"}}}
	if got, _ := json.Marshal(a1.Network); string(got) != string(mustJSON(want)) {
		t.Fatalf("a1's network %s\nwant %s", got, mustJSON(want))
	}
	if len(a1.Services) != 1 {
		t.Fatalf("a1's services %+v", a1.Services)
	}
	svc := a1.Services[0]
	base := svc
	base.Endpoints = nil
	wantSvc := wire.Service{Namespace: "default", Name: "web", Type: "NodePort", ClusterIP: "10.43.0.10",
		Ports:    []wire.ServicePort{{Name: "http", Protocol: "TCP", Port: 8099, NodePort: 30080, TargetPort: "http"}},
		Selector: map[string]string{"app": "web"}, AffinityTimeoutSeconds: api.DefaultClientIPServiceAffinitySeconds, InternalLocal: true}
	if string(mustJSON(base)) != string(mustJSON(wantSvc)) {
		t.Fatalf("a1's Service %s\nwant %s", mustJSON(base), mustJSON(wantSvc))
	}
	if got, want := renderEndpoints(svc), `10.42.0.5/a1/web-1/ready/{"http":8080}web-one 10.42.1.5/a2/web-2/notready/{"http":8080}`; got != want {
		t.Fatalf("a1's endpoints %s\nwant %s", got, want)
	}
	if e := svc.Endpoints[0]; e.Namespace != "default" || e.PodUID != "uid-web-1" {
		t.Fatalf("endpoint %+v", e)
	}

	if got := renderEndpoints(snaps["b1"].Services[0]); got != `10.42.2.5/b1/web-3/ready/{"http":8080}` {
		t.Fatalf("b1's endpoints %s", got)
	}
	if n := snaps["b1"].Network; n == nil || len(n.Peers) != 0 {
		t.Fatalf("b1 alone in its site: network %+v", n)
	}
	if n := snaps["a3"].Network; n != nil {
		t.Fatalf("a3 has no subnet yet, but a network %+v", n)
	}
	if got := renderEndpoints(snaps["a3"].Services[0]); got != renderEndpoints(svc) {
		t.Fatalf("a3's endpoints %s, want its site's %s", got, renderEndpoints(svc))
	}
	solo := snaps["solo"]
	if solo.Network == nil || len(solo.Network.Peers) != 0 || len(solo.Services[0].Endpoints) != 0 {
		t.Fatalf("a node without a zone is a site of its own: %+v", solo)
	}

	// a3 gets its subnet: it gets a Network, and its site's nodes a peer.
	f.change(store.Key{Kind: api.KindNode, Name: "a3"}, netNode("a3", "plant-a", "192.168.1.13", "10.42.4.0/24"))
	snaps = f.pass()
	if got := names(snaps); got != "a1 a2 a3" {
		t.Fatalf("new snapshots for %q, want the site's", got)
	}
	if n := snaps["a3"].Network; n == nil || n.PodCIDR != "10.42.4.0/24" || len(n.Peers) != 2 {
		t.Fatalf("a3's network %+v", n)
	}
	if p := snaps["a1"].Network.Peers; len(p) != 2 || p[1].Node != "a3" {
		t.Fatalf("a1's peers %+v", p)
	}
}

// TestOnlyTheSiteOfAChangeGetsNewSnapshots: an endpoint's change goes to
// its site's nodes only (queued and sent); a Service's change to every
// node; a node moving to another site changes both sites'; a Service's
// status or an Endpoints write that changes nothing, nothing.
func TestOnlyTheSiteOfAChangeGetsNewSnapshots(t *testing.T) {
	port := []api.EndpointPort{{Name: "http", Port: 8080, Protocol: api.ProtocolTCP}}
	both := webEndpoints(api.EndpointSubset{Addresses: []api.EndpointAddress{address("10.42.0.5", "a1", "web-1"), address("10.42.2.5", "b1", "web-3")}, Ports: port})
	f := newNetFixture(t,
		netNode("a1", "plant-a", "192.168.1.11", "10.42.0.0/24"), netNode("a2", "plant-a", "192.168.1.12", "10.42.1.0/24"),
		netNode("b1", "plant-b", "192.168.2.11", "10.42.2.0/24"), netNode("b2", "plant-b", "192.168.2.12", "10.42.3.0/24"),
		webService(8099), both)
	first := f.pass()
	if names(first) != "a1 a2 b1 b2" {
		t.Fatalf("first snapshots for %q", names(first))
	}
	epKey := store.Key{Kind: api.KindEndpoints, Namespace: "default", Name: "web"}

	// web-3 (plant-b) fails readiness.
	f.change(epKey, webEndpoints(
		api.EndpointSubset{Addresses: []api.EndpointAddress{address("10.42.0.5", "a1", "web-1")}, NotReadyAddresses: []api.EndpointAddress{address("10.42.2.5", "b1", "web-3")}, Ports: port}))
	if q := f.queued(); !slices.Equal(q, []string{"b1", "b2"}) {
		t.Fatalf("queued %v for a change in plant-b", q)
	}
	snaps := f.pass()
	if names(snaps) != "b1 b2" || snaps["b1"].Revision != first["b1"].Revision+1 {
		t.Fatalf("snapshots %q after a change in plant-b", names(snaps))
	}
	if got := renderEndpoints(snaps["b2"].Services[0]); got != `10.42.2.5/b1/web-3/notready/{"http":8080}` {
		t.Fatalf("b2's endpoints %s", got)
	}

	// The same subsets written again, in another order: nothing.
	f.change(epKey, webEndpoints(
		api.EndpointSubset{NotReadyAddresses: []api.EndpointAddress{address("10.42.2.5", "b1", "web-3")}, Ports: port},
		api.EndpointSubset{Addresses: []api.EndpointAddress{address("10.42.0.5", "a1", "web-1")}, Ports: port}))
	// The Service's status changes: nothing either.
	svc := webService(8099)
	svc.Status.Conditions = []api.Condition{{Type: "Example", Status: api.ConditionTrue}}
	f.change(store.KeyOf(svc), svc)
	if q := f.queued(); len(q) != 0 {
		t.Fatalf("queued %v for changes that change no snapshot", q)
	}

	// The Service's port changes: every node.
	f.change(store.KeyOf(svc), webService(8100))
	if snaps := f.pass(); names(snaps) != "a1 a2 b1 b2" || snaps["a1"].Services[0].Ports[0].Port != 8100 {
		t.Fatalf("after a Service change: %q", names(snaps))
	}

	// b2 moves to plant-a: both sites' nodes.
	f.change(store.Key{Kind: api.KindNode, Name: "b2"}, netNode("b2", "plant-a", "192.168.2.12", "10.42.3.0/24"))
	snaps = f.pass()
	if names(snaps) != "a1 a2 b1 b2" {
		t.Fatalf("after b2 moved: %q", names(snaps))
	}
	if got := renderEndpoints(snaps["b2"].Services[0]); got != `10.42.0.5/a1/web-1/ready/{"http":8080}` {
		t.Fatalf("b2's endpoints in plant-a: %s", got)
	}
	if p := snaps["b1"].Network.Peers; len(p) != 0 {
		t.Fatalf("b1's peers after b2 left: %+v", p)
	}

	// a2 is deleted: it leaves its site's peers, and a node the hub no
	// longer knows is sent no Services.
	f.change(store.Key{Kind: api.KindNode, Name: "a2"}, nil)
	snaps = f.pass()
	if names(snaps) != "a1 a2 b2" || len(snaps["a2"].Services) != 0 || snaps["a2"].Network != nil {
		t.Fatalf("after a2 went: %q, a2's %+v", names(snaps), snaps["a2"])
	}
	if p := snaps["a1"].Network.Peers; len(p) != 1 || p[0].Node != "b2" {
		t.Fatalf("a1's peers after a2 went: %+v", p)
	}

	// The Service goes: every node's snapshot loses it.
	f.change(store.KeyOf(svc), nil)
	snaps = f.pass()
	if names(snaps) != "a1 b1 b2" || len(snaps["a1"].Services) != 0 || snaps["a1"].Network == nil {
		t.Fatalf("after the Service went: %q %+v", names(snaps), snaps["a1"].Services)
	}
}

// TestNoPodNetworkNoNetwork: a dispatcher without an address plan (the
// hub's tests, a hub before pod networks) sends no Network; and a node
// that runs nothing, with no Services in the cluster, is sent nothing.
func TestNoPodNetworkNoNetwork(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	put(t, st, netNode("n1", "", "192.168.1.11", "10.42.0.0/24"))
	put(t, st, netNode("idle", "", "192.168.1.12", "10.42.1.0/24"))
	putPod(t, st, "p", "n1", "img", true)
	pub := &fakePublisher{}
	d := New(Options{Store: st, Publisher: pub})
	if err := d.resync(); err != nil {
		t.Fatal(err)
	}
	d.flush(context.Background())
	msgs := pub.take()
	if len(msgs) != 1 || msgs[0].snap.Node != "n1" || msgs[0].snap.Network != nil || msgs[0].snap.Services != nil {
		t.Fatalf("snapshots %+v", msgs)
	}
}
