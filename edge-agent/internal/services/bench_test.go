package services

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The benchmarks run on the integration tests' site (netns_test.go), with
// real rules and a real DNS server, and measure, per change:
//
//	programmed-ms  from the change handed to the Programmer (a pod report,
//	               or a snapshot accepted) to the end of the pass that
//	               programmed it (rules and DNS table), debounce included
//	reachable-ms   from the change to the first connection through the
//	               ClusterIP that the new endpoint answers
//
// web (ClusterIP itWebIP) is the Service that changes; with services=1000
// the node also has 999 others of 10 remote endpoints each.
//
//	sudo go test -run '^$' -bench . -benchtime 100x ./edge-agent/internal/services/

// benchSite is a site and a running Programmer whose snapshot the
// benchmark sets.
type benchSite struct {
	*site
	p    *Programmer
	mu   sync.Mutex
	snap wire.Snapshot
}

func newBenchSite(b *testing.B, others int) *benchSite {
	b.Helper()
	s := &benchSite{site: newSite(b)}
	serve(b, s.pods[0], itPodIPs[0], "pod1")
	serve(b, s.peer, itPeerPod, "peer")
	s.snap = itSnapshot()
	web := &s.snap.Services[0]
	web.Endpoints = slices.DeleteFunc(web.Endpoints, func(e wire.Endpoint) bool { return e.PodUID == "pod2" || e.PodUID == "peer" })
	for i := range others {
		svc := wire.Service{
			Namespace: "default", Name: fmt.Sprintf("svc-%d", i), Type: "ClusterIP",
			ClusterIP: fmt.Sprintf("10.43.%d.%d", i/250, i%250+1),
			Selector:  map[string]string{"app": fmt.Sprintf("svc-%d", i)},
			Ports:     []wire.ServicePort{{Protocol: "TCP", Port: 80, TargetPort: "8080"}},
		}
		for j := range 10 {
			svc.Endpoints = append(svc.Endpoints, wire.Endpoint{
				IP: fmt.Sprintf("198.19.%d.%d", 3+i/25, (i%25)*10+j+1), Node: "peer", Namespace: "default",
				Name: fmt.Sprintf("svc-%d-%d", i, j), PodUID: fmt.Sprintf("svc-%d-%d", i, j), Ready: true,
			})
		}
		s.snap.Services = append(s.snap.Services, svc)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(Config{
		NodeName: itNode,
		NodeIPs:  []netip.Addr{netip.MustParseAddr(itNodeIP)},
		Snapshot: func() (wire.Snapshot, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.snap, nil
		},
		Backends: s.backends(quiet),
		Event: func(typ api.EventType, reason, message string) {
			b.Errorf("event %s %s: %s", typ, reason, message)
		},
		Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	s.p = p
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	return s
}

// wait waits for the pass of gen.
func (s *benchSite) wait(b *testing.B, gen uint64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.p.Programmed(ctx, gen); err != nil {
		b.Fatalf("programmed: %v", err)
	}
}

// reached waits until a connection through web is answered by want.
func (s *benchSite) reached(b *testing.B, want string) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		name, err := ask(s.client, itWebIP+":80")
		if err == nil && name == want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never answered through the ClusterIP (last: %q, %v)", want, name, err)
		}
	}
}

// latencies collects durations and reports their p50 and p99.
type latencies map[string][]time.Duration

func (l latencies) report(b *testing.B) {
	for name, ds := range l {
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2])/1e6, name+"-p50-ms")
		b.ReportMetric(float64(ds[(len(ds)*99)/100])/1e6, name+"-p99-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkLocalPodReady: a local pod turns Ready (its report reaches the
// Programmer), with no hub: the hub's snapshot still has it not Ready.
func BenchmarkLocalPodReady(b *testing.B) {
	for _, others := range []int{0, 999} {
		b.Run(fmt.Sprintf("services=%d", others+1), func(b *testing.B) {
			s := newBenchSite(b, others)
			s.mu.Lock()
			s.snap.Services[0].Endpoints[0].Ready = false
			s.mu.Unlock()
			client := podAt("client", itClientIP, true)
			s.wait(b, s.p.SetReport(itReport(podAt("pod1", itPodIPs[0], false), client)))
			l := latencies{}
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				s.wait(b, s.p.SetReport(itReport(podAt("pod1", itPodIPs[0], true), client)))
				l["programmed"] = append(l["programmed"], time.Since(start))
				s.reached(b, "pod1")
				l["reachable"] = append(l["reachable"], time.Since(start))
				b.StopTimer()
				s.wait(b, s.p.SetReport(itReport(podAt("pod1", itPodIPs[0], false), client)))
				b.StartTimer()
			}
			l.report(b)
		})
	}
}

// BenchmarkSnapshotChange: the hub's new snapshot adds the peer's pod to
// web (whose local pod is not Ready), once the agent has accepted it.
func BenchmarkSnapshotChange(b *testing.B) {
	peer := wire.Endpoint{IP: itPeerPod, Node: "peer", Namespace: "default", Name: "peer", PodUID: "peer", Ready: true,
		Ports: map[string]int32{"": itPort}}
	for _, others := range []int{0, 999} {
		b.Run(fmt.Sprintf("services=%d", others+1), func(b *testing.B) {
			s := newBenchSite(b, others)
			client := podAt("client", itClientIP, true)
			s.wait(b, s.p.SetReport(itReport(podAt("pod1", itPodIPs[0], false), client)))
			set := func(eps []wire.Endpoint) uint64 {
				s.mu.Lock()
				s.snap.Revision++
				s.snap.Services = slices.Clone(s.snap.Services)
				s.snap.Services[0].Endpoints = eps
				s.mu.Unlock()
				return s.p.Changed()
			}
			l := latencies{}
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				s.wait(b, set([]wire.Endpoint{peer}))
				l["programmed"] = append(l["programmed"], time.Since(start))
				s.reached(b, "peer")
				l["reachable"] = append(l["reachable"], time.Since(start))
				b.StopTimer()
				s.wait(b, set(nil))
				b.StartTimer()
			}
			l.report(b)
		})
	}
}
