package services

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/proxy"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Unit tests of the Programmer's loop, with fake rules, DNS server and
// node (fake_test.go).

func TestProgramsTheSnapshotWithLocalKnowledge(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Revision: 3, Network: network(), Pods: []wire.SnapshotPod{pod("a", nil)},
			Services: []wire.Service{web(hubEP("a", "10.42.0.5", self, true), hubEP("r1", "10.42.1.5", "board-b", true))}}
		n.bridge = true
	})
	p := n.start(n.config())
	p.Changed()
	gen := p.SetReport(wire.PodStatusReport{ObservedRevision: 3, Pods: []wire.PodReport{running("a", "10.42.0.9", true)}})
	programmed(t, p, gen)

	want := []wire.Service{web(localEP("a", "10.42.0.9", true), hubEP("r1", "10.42.1.5", "board-b", true))}
	got := n.get()
	if len(got.syncs) == 0 || !reflect.DeepEqual(got.syncs[len(got.syncs)-1], want) {
		t.Errorf("rules synced with %v, want last %s", jsonOf(t, got.syncs), jsonOf(t, want))
	}
	if !reflect.DeepEqual(got.dnsSvcs, want) || got.updates[len(got.updates)-1] != "cluster.local" {
		t.Errorf("DNS updated with %s for %v, want %s for cluster.local", jsonOf(t, got.dnsSvcs), got.updates, jsonOf(t, want))
	}
	wantCfg := proxy.Config{NodeName: self, NodeIPs: n.config().NodeIPs, PodCIDR: mustPrefix(t, "10.42.0.0/24")}
	if len(got.configs) != 1 || !reflect.DeepEqual(got.configs[0], wantCfg) {
		t.Errorf("rules made for %+v, want once for %+v", got.configs, wantCfg)
	}
	if len(got.dnsAddrs) != 1 || got.dnsAddrs[0] != "10.42.0.1:53" {
		t.Errorf("DNS servers made for %v, want one on the bridge address 10.42.0.1:53", got.dnsAddrs)
	}
	wait(t, n.served, "DNS serving")
	if len(got.prepared) == 0 || got.prepared[0] != "10.42.0.1 10.43.0.0/16" {
		t.Errorf("node prepared as %v, want for bridge 10.42.0.1 and Service CIDR 10.43.0.0/16", got.prepared)
	}
	if len(got.events) != 0 {
		t.Errorf("events %v, want none", got.events)
	}

	// The pod turns not Ready: programmed at once, with no new snapshot.
	gen = p.SetReport(wire.PodStatusReport{ObservedRevision: 3, Pods: []wire.PodReport{running("a", "10.42.0.9", false)}})
	programmed(t, p, gen)
	want = []wire.Service{web(localEP("a", "10.42.0.9", false), hubEP("r1", "10.42.1.5", "board-b", true))}
	if got := n.get(); !reflect.DeepEqual(got.syncs[len(got.syncs)-1], want) {
		t.Errorf("after the pod turned not Ready the rules got %s, want %s", jsonOf(t, got.syncs[len(got.syncs)-1]), jsonOf(t, want))
	}
}

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWaitsForTheFirstReport(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Pods: []wire.SnapshotPod{pod("a", nil)},
			Services: []wire.Service{web(hubEP("a", "10.42.0.5", self, true))}}
	})
	p := n.start(n.config())
	gen := p.Changed()
	// No report: nothing is programmed (the rules left in the kernel
	// serve), however long the debounce was.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.Programmed(ctx, gen); err == nil {
		t.Fatalf("programmed before the first report: %s", jsonOf(t, n.get().syncs))
	}
	gen = p.SetReport(wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.6", true)}})
	programmed(t, p, gen)
	got := n.get()
	if want := [][]wire.Service{{web(localEP("a", "10.42.0.6", true))}}; !reflect.DeepEqual(got.syncs, want) {
		t.Errorf("syncs %s, want one, with the pod's own address", jsonOf(t, got.syncs))
	}
}

func TestWithoutAReportTheHubsViewAfterTheWait(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Pods: []wire.SnapshotPod{pod("a", nil)},
			Services: []wire.Service{web(hubEP("a", "10.42.0.5", self, true))}}
	})
	cfg := n.config()
	cfg.FirstReportWait = 50 * time.Millisecond
	p := n.start(cfg)
	programmed(t, p, p.Changed())
	if got, want := n.get().syncs, [][]wire.Service{{web(hubEP("a", "10.42.0.5", self, true))}}; !reflect.DeepEqual(got, want) {
		t.Errorf("syncs %s, want the hub's view once", jsonOf(t, got))
	}
}

func TestChangesThatComeTogetherAreProgrammedTogether(t *testing.T) {
	n := newNode(t)
	gate := make(chan struct{})
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Pods: []wire.SnapshotPod{pod("a", nil)},
			Services: []wire.Service{web()}}
		n.gate = gate
	})
	p := n.start(n.config())
	p.SetReport(wire.PodStatusReport{Pods: []wire.PodReport{running("a", "10.42.0.1", true)}})
	// The first pass is held in Sync while 20 more reports come.
	wait(t, n.entered, "the first Sync")
	var last uint64
	for i := 2; i <= 21; i++ {
		last = p.SetReport(wire.PodStatusReport{Pods: []wire.PodReport{running("a", fmt.Sprintf("10.42.0.%d", i), true)}})
	}
	close(gate)
	programmed(t, p, last)
	got := n.get().syncs
	if len(got) != 2 {
		t.Fatalf("%d syncs for 21 reports, the last 20 while the first was programmed: want 2", len(got))
	}
	if want := []wire.Service{web(localEP("a", "10.42.0.21", true))}; !reflect.DeepEqual(got[1], want) {
		t.Errorf("last sync %s, want the last report's %s", jsonOf(t, got[1]), jsonOf(t, want))
	}
}

func TestNoNetworkRemovesTheRulesAndStopsDNS(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) { n.snap = wire.Snapshot{Node: self, Revision: 1}; n.bridge = true })
	p := n.start(n.config())
	report := wire.PodStatusReport{}
	programmed(t, p, p.SetReport(report))
	programmed(t, p, p.Changed())
	if got := n.get(); got.removes != 1 || len(got.syncs) != 0 || len(got.dnsAddrs) != 0 {
		t.Fatalf("without a network: %d removes, %d syncs, DNS on %v; want the table removed once, nothing else", got.removes, len(got.syncs), got.dnsAddrs)
	}

	// The hub turns pod networking on...
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Revision: 2, Network: network(), Services: []wire.Service{web(hubEP("r1", "10.42.1.5", "board-b", true))}}
	})
	programmed(t, p, p.Changed())
	wait(t, n.served, "DNS serving")
	if got := n.get(); len(got.syncs) != 1 {
		t.Fatalf("%d syncs once the network came, want 1", len(got.syncs))
	}

	// ...and off again: the table goes, the DNS server stops.
	n.set(func(n *node) { n.snap = wire.Snapshot{Node: self, Revision: 3} })
	programmed(t, p, p.Changed())
	wait(t, n.unserved, "DNS stopped")
	if got := n.get(); got.removes != 2 || got.serving != 0 {
		t.Errorf("network gone: %d removes (want 2), %d DNS servers serving (want 0)", got.removes, got.serving)
	}
}

func TestDNSAndNodeWaitForTheBridge(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Services: []wire.Service{web()}}
	})
	p := n.start(n.config())
	programmed(t, p, p.SetReport(wire.PodStatusReport{}))
	if got := n.get(); got.serving != 0 || len(got.prepared) != 0 || len(got.syncs) != 1 || len(got.events) != 0 {
		t.Fatalf("without a bridge: %d DNS serving, prepared %v, %d syncs, events %v; want rules only, no event",
			got.serving, got.prepared, len(got.syncs), got.events)
	}
	// The pod network makes the bridge: the agent sees it by itself.
	n.set(func(n *node) { n.bridge = true })
	wait(t, n.served, "DNS serving once the bridge exists")
	if got := n.get(); len(got.prepared) == 0 {
		t.Errorf("node not prepared once the bridge exists")
	}
}

func TestAServiceThatCannotBeProgrammedIsReportedOnce(t *testing.T) {
	n := newNode(t)
	bad := fmt.Errorf("%w: %w", proxy.ErrInvalid, errors.Join(
		errors.New(`service default/bad: ports[0]: protocol "SCTP": want TCP or UDP`),
		errors.New("service default/worse: clusterIP \"x\": not an IP address")))
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Services: []wire.Service{web()}}
		n.bridge = true
		n.syncErr = []error{bad, bad, bad}
	})
	p := n.start(n.config())
	programmed(t, p, p.SetReport(wire.PodStatusReport{}))
	// Two more Syncs with the same problems, and a pass that has nothing
	// new to program: no new events.
	n.set(func(n *node) { n.snap.Services = []wire.Service{web(hubEP("r1", "10.42.1.5", "board-b", true))} })
	programmed(t, p, p.Changed())
	n.set(func(n *node) { n.snap.Services = []wire.Service{web(hubEP("r2", "10.42.1.6", "board-b", true))} })
	programmed(t, p, p.Changed())
	n.set(func(n *node) { n.snap.Revision = 3 })
	programmed(t, p, p.Changed())
	if got := len(n.get().syncs); got != 3 {
		t.Fatalf("%d syncs, want 3", got)
	}
	want := []event{
		{api.EventWarning, ReasonNotProgrammed, `service rules: service default/bad: ports[0]: protocol "SCTP": want TCP or UDP`},
		{api.EventWarning, ReasonNotProgrammed, `service rules: service default/worse: clusterIP "x": not an IP address`},
	}
	if got := n.get().events; !reflect.DeepEqual(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	// Fixed by the next snapshot: said once.
	n.set(func(n *node) { n.snap.Services = []wire.Service{web()} })
	programmed(t, p, p.Changed())
	want = append(want, event{api.EventNormal, ReasonProgrammed, "the node's Services are programmed again"})
	if got := n.get().events; !reflect.DeepEqual(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestFailedSyncIsRetriedWithoutAWake(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Services: []wire.Service{web()}}
		n.bridge = true
		n.syncErr = []error{errors.New("netlink: no buffer space available")}
	})
	p := n.start(n.config())
	programmed(t, p, p.SetReport(wire.PodStatusReport{}))
	deadline := time.Now().Add(10 * time.Second)
	for len(n.get().syncs) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The retry's pass reports before it ends: wait for its events.
	for len(n.get().events) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := n.get()
	if len(got.syncs) < 2 {
		t.Fatalf("%d syncs: the failed one was not tried again", len(got.syncs))
	}
	want := []event{
		{api.EventWarning, ReasonRulesFailed, "program service rules: netlink: no buffer space available"},
		{api.EventNormal, ReasonProgrammed, "the node's Services are programmed again"},
	}
	if !reflect.DeepEqual(got.events, want) {
		t.Errorf("events %v, want %v", got.events, want)
	}
}

func TestResyncReadsTheRulesBackAndSaysWhatItRestored(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Services: []wire.Service{web()}}
		n.bridge = true
	})
	cfg := n.config()
	cfg.Resync = 50 * time.Millisecond
	p := n.start(cfg)
	programmed(t, p, p.SetReport(wire.PodStatusReport{}))
	// Someone deletes the table: the next resync's Sync, on rules made
	// anew (which read the table back), puts it back.
	n.set(func(n *node) { n.summary = proxy.Summary{TableCreated: true, ChainsAdded: 12} })
	deadline := time.Now().Add(10 * time.Second)
	for len(n.get().events) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := n.get()
	if len(got.configs) < 2 {
		t.Errorf("rules made %d times: a resync must make them anew, to read the table back", len(got.configs))
	}
	if len(got.events) == 0 || got.events[0].reason != ReasonRulesRestored || !strings.Contains(got.events[0].detail, "TableCreated:true") {
		t.Errorf("events %v, want %s saying what was restored", got.events, ReasonRulesRestored)
	}
}

func TestRunStopsDNSAndLetsGoOfTheRules(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Services: []wire.Service{web()}}
		n.bridge = true
	})
	p, err := New(n.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	p.SetReport(wire.PodStatusReport{})
	wait(t, n.served, "DNS serving")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context's end")
	}
	if got := n.get(); got.serving != 0 || got.closes != 1 || got.removes != 0 {
		t.Errorf("after Run: %d DNS serving, %d closes, %d removes; want the server stopped, the rules closed (not removed: they keep serving)",
			got.serving, got.closes, got.removes)
	}
}

func TestANewPodCIDRMakesNewRulesAndDNS(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: network(), Services: []wire.Service{web()}}
		n.bridge = true
	})
	p := n.start(n.config())
	programmed(t, p, p.SetReport(wire.PodStatusReport{}))
	wait(t, n.served, "DNS serving")
	n.set(func(n *node) { n.snap.Network = &wire.Network{PodCIDR: "10.42.7.0/24", ClusterDomain: "edge.example"} })
	programmed(t, p, p.Changed())
	wait(t, n.unserved, "the old DNS server stopped")
	wait(t, n.served, "the new DNS server serving")
	got := n.get()
	if len(got.configs) != 2 || got.configs[1].PodCIDR.String() != "10.42.7.0/24" {
		t.Errorf("rules made for %+v, want again for 10.42.7.0/24", got.configs)
	}
	if want := []string{"10.42.0.1:53", "10.42.7.1:53"}; !reflect.DeepEqual(got.dnsAddrs, want) {
		t.Errorf("DNS servers on %v, want %v", got.dnsAddrs, want)
	}
	if got.updates[len(got.updates)-1] != "edge.example" {
		t.Errorf("DNS domains %v, want edge.example last", got.updates)
	}
}

func TestABadPodCIDRChangesNothing(t *testing.T) {
	n := newNode(t)
	n.set(func(n *node) {
		n.snap = wire.Snapshot{Node: self, Network: &wire.Network{PodCIDR: "10.42.0.0/33"}, Services: []wire.Service{web()}}
	})
	p := n.start(n.config())
	programmed(t, p, p.SetReport(wire.PodStatusReport{}))
	got := n.get()
	if len(got.syncs) != 0 || got.removes != 0 || len(got.dnsAddrs) != 0 {
		t.Errorf("a bad pod CIDR: %d syncs, %d removes, DNS on %v; want nothing touched", len(got.syncs), got.removes, got.dnsAddrs)
	}
	if len(got.events) != 1 || got.events[0].reason != ReasonRulesFailed || !strings.Contains(got.events[0].detail, `network.podCIDR "10.42.0.0/33"`) {
		t.Errorf("events %v, want one naming network.podCIDR", got.events)
	}
}

// TestStoppingIsNoProblem: when Run's context ends, the DNS server stops
// because of it; that is no problem to report. (When the context ended
// during a pass, the next select could take the server's end before the
// context's: a ClusterDNSFailed event then said "stopped answering:
// <nil>", one time in two.)
func TestStoppingIsNoProblem(t *testing.T) {
	for i := range 20 {
		n := newNode(t)
		n.set(func(n *node) {
			n.snap = wire.Snapshot{Node: self, Network: network(), Services: []wire.Service{web()}}
			n.bridge = true
		})
		p, err := New(n.config())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		programmed(t, p, p.SetReport(wire.PodStatusReport{}))
		wait(t, n.served, "DNS serving")
		// Run is in a pass (held in Sync) when its context ends, and
		// the DNS server stops before the pass does.
		gate := make(chan struct{})
		n.set(func(n *node) {
			n.gate = gate
			n.snap.Services = []wire.Service{web(hubEP("r1", "10.42.1.5", "board-b", true))}
		})
		p.Changed()
		wait(t, n.entered, "the second Sync")
		cancel()
		wait(t, n.unserved, "DNS stopped")
		close(gate)
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if got := n.get(); len(got.events) != 0 || got.serving != 0 {
			t.Fatalf("stop %d: events %v and %d DNS serving after Run returned, want none", i, got.events, got.serving)
		}
	}
}
