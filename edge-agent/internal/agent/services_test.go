package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/proxy"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/services"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// fakeServices stands for the kernel's Service rules, the DNS server and
// the node's preparation: it records what the agent programs.
type fakeServices struct {
	mu      sync.Mutex
	syncs   [][]wire.Service
	removes int
	serving int
	syncErr error // returned by the next Sync
	changed chan struct{}
}

func newFakeServices() *fakeServices { return &fakeServices{changed: make(chan struct{}, 1)} }

func (f *fakeServices) backends() *services.Backends {
	return &services.Backends{
		NewRules: func(proxy.Config) (services.Rules, error) { return fakeRules{f}, nil },
		NewDNS:   func(string) (services.Resolver, error) { return fakeDNS{f}, nil },
		Prepare:  func(netip.Addr, netip.Prefix) error { return nil },
	}
}

func (f *fakeServices) update(do func()) {
	f.mu.Lock()
	do()
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// waitUntil waits for cond over what the fakes saw, for at most 20 s.
func (f *fakeServices) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-f.changed:
		case <-deadline.C:
			t.Fatalf("the agent never %s", what)
		}
	}
}

type fakeRules struct{ f *fakeServices }

func (r fakeRules) Sync(svcs []wire.Service) (proxy.Summary, error) {
	var err error
	r.f.update(func() {
		r.f.syncs = append(r.f.syncs, svcs)
		err, r.f.syncErr = r.f.syncErr, nil
	})
	return proxy.Summary{}, err
}

func (r fakeRules) Remove() error { r.f.update(func() { r.f.removes++ }); return nil }
func (r fakeRules) Close() error  { return nil }

type fakeDNS struct{ f *fakeServices }

func (d fakeDNS) Update(string, []wire.Service) error { return nil }
func (d fakeDNS) Listen() error                       { return nil }
func (d fakeDNS) Serve(ctx context.Context) error {
	d.f.update(func() { d.f.serving++ })
	<-ctx.Done()
	d.f.update(func() { d.f.serving-- })
	return nil
}

// TestRunProgramsServices: the agent programs the snapshot's Services,
// with its own pod's endpoint as its own reports say (not as the hub
// says), reports a Service the rules leave out as a node event, and
// removes the rules and stops DNS for a snapshot without a pod network.
func TestRunProgramsServices(t *testing.T) {
	r := newRig(t)
	defer r.stop(t)
	r.heard.waitUntil(t, "the first (empty) pod status", func(s []wire.PodStatusReport, _ []wire.Event) bool {
		return len(s) > 0
	})
	// Revision 0 has no network: the table is removed, once.
	r.svc.waitUntil(t, "removed the rules for a snapshot without a network", func() bool { return r.svc.removes == 1 })

	pod := webPod()
	pod.Labels = map[string]string{"app": "web"}
	svc := wire.Service{Namespace: "default", Name: "web", Type: "ClusterIP", ClusterIP: "10.43.0.10",
		Selector: map[string]string{"app": "web"},
		Ports:    []wire.ServicePort{{Protocol: "TCP", Port: 80, TargetPort: "80"}},
		Endpoints: []wire.Endpoint{
			// What the hub last knew of this node's pod, and another
			// node's pod.
			{IP: "10.42.0.5", Node: node, Namespace: "default", Name: "web", PodUID: pod.UID, Ready: true},
			{IP: "10.42.1.5", Node: "n2", Namespace: "default", Name: "web-2", PodUID: "uid-n2", Ready: true},
		}}
	snap := wire.Snapshot{Node: node, Revision: 1, Pods: []wire.SnapshotPod{pod},
		Network:  &wire.Network{PodCIDR: "10.42.0.0/24", ServiceCIDR: "10.43.0.0/16", ClusterDomain: "cluster.local"},
		Services: []wire.Service{svc}}
	r.publish(t, wire.TopicDesired, wire.TypeSnapshot, snap)
	r.heard.waitUntil(t, "the pod Running at revision 1", func(s []wire.PodStatusReport, _ []wire.Event) bool {
		last := s[len(s)-1]
		return last.ObservedRevision == 1 && len(last.Pods) == 1 && last.Pods[0].Status.Phase == api.PodRunning
	})
	// The rules end up as Merge makes them of the snapshot and the last
	// report: this node's endpoint is the agent's own.
	r.heard.mu.Lock()
	last := r.heard.statuses[len(r.heard.statuses)-1]
	r.heard.mu.Unlock()
	want := services.Merge(node, &snap, &last)
	r.svc.waitUntil(t, "programmed the merged Services", func() bool {
		return len(r.svc.syncs) > 0 && reflect.DeepEqual(r.svc.syncs[len(r.svc.syncs)-1], want)
	})
	// Merge sorts endpoints by address: the other node's is kept
	// wherever the agent's own pod's address puts it.
	if eps := want[0].Endpoints; !slices.ContainsFunc(eps, func(e wire.Endpoint) bool { return e.Node == "n2" && e.IP == "10.42.1.5" }) {
		t.Errorf("merged endpoints %+v, want the other node's kept", eps)
	}
	r.svc.waitUntil(t, "served DNS", func() bool { return r.svc.serving == 1 })

	// A Service the rules leave out is a node event.
	r.svc.update(func() {
		r.svc.syncErr = fmt.Errorf("%w: %w", proxy.ErrInvalid, errors.Join(errors.New(`service default/bad: ports[0]: protocol "SCTP": want TCP or UDP`)))
	})
	snap.Revision = 2
	snap.Services = append(snap.Services, wire.Service{Namespace: "default", Name: "bad", ClusterIP: "10.43.0.11",
		Ports: []wire.ServicePort{{Protocol: "SCTP", Port: 80}}})
	r.publish(t, wire.TopicDesired, wire.TypeSnapshot, snap)
	r.heard.waitUntil(t, "the ServiceNotProgrammed event", func(_ []wire.PodStatusReport, events []wire.Event) bool {
		for _, e := range events {
			if e.Reason == services.ReasonNotProgrammed && e.Object.Kind == api.KindNode && e.Object.Name == node &&
				e.Type == api.EventWarning && strings.Contains(e.Message, "default/bad") {
				return true
			}
		}
		return false
	})

	// The hub turns pod networking off.
	snap.Revision, snap.Network, snap.Services = 3, nil, nil
	r.publish(t, wire.TopicDesired, wire.TypeSnapshot, snap)
	r.svc.waitUntil(t, "removed the rules and stopped DNS", func() bool { return r.svc.removes == 2 && r.svc.serving == 0 })
}
