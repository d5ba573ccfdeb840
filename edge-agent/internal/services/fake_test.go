package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/proxy"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// node is a Programmer's world in unit tests: a snapshot the test sets,
// fake rules, DNS server and node preparation, and the events.
type node struct {
	t *testing.T

	mu       sync.Mutex
	snap     wire.Snapshot
	snapErr  error
	bridge   bool // the bridge exists: Listen and Prepare work
	syncs    [][]wire.Service
	configs  []proxy.Config
	removes  int
	closes   int
	syncErr  []error // errors the next Syncs return, in turn
	summary  proxy.Summary
	gate     chan struct{} // if set, Sync ticks entered, then waits for it
	entered  chan struct{}
	updates  []string // domain of each DNS update
	dnsSvcs  []wire.Service
	dnsErr   error
	dnsAddrs []string
	serving  int
	prepared []string
	events   []event
	served   chan struct{} // ticks when Serve starts
	unserved chan struct{} // ticks when Serve returns
}

type event struct {
	typ            api.EventType
	reason, detail string
}

func newNode(t *testing.T) *node {
	return &node{t: t, served: make(chan struct{}, 10), unserved: make(chan struct{}, 10), entered: make(chan struct{}, 10)}
}

func (n *node) set(f func(n *node)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n)
}

// seen is what the fakes saw, at one time.
type seen struct {
	syncs              [][]wire.Service
	configs            []proxy.Config
	removes, closes    int
	updates            []string
	dnsSvcs            []wire.Service
	dnsAddrs, prepared []string
	serving            int
	events             []event
}

func (n *node) get() seen {
	n.mu.Lock()
	defer n.mu.Unlock()
	return seen{
		syncs:    append([][]wire.Service(nil), n.syncs...),
		configs:  append([]proxy.Config(nil), n.configs...),
		removes:  n.removes,
		closes:   n.closes,
		updates:  append([]string(nil), n.updates...),
		dnsSvcs:  n.dnsSvcs,
		dnsAddrs: append([]string(nil), n.dnsAddrs...),
		prepared: append([]string(nil), n.prepared...),
		serving:  n.serving,
		events:   append([]event(nil), n.events...),
	}
}

func (n *node) config() Config {
	return Config{
		NodeName: self,
		NodeIPs:  []netip.Addr{netip.MustParseAddr("192.168.1.10")},
		Snapshot: func() (wire.Snapshot, error) {
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.snap, n.snapErr
		},
		Backends: Backends{
			NewRules: func(cfg proxy.Config) (Rules, error) {
				n.mu.Lock()
				defer n.mu.Unlock()
				n.configs = append(n.configs, cfg)
				return &fakeRules{n: n}, nil
			},
			NewDNS: func(addr string) (Resolver, error) {
				n.mu.Lock()
				defer n.mu.Unlock()
				n.dnsAddrs = append(n.dnsAddrs, addr)
				return &fakeDNS{n: n}, nil
			},
			Prepare: func(bridge netip.Addr, serviceCIDR netip.Prefix) error {
				n.mu.Lock()
				defer n.mu.Unlock()
				if !n.bridge {
					return fmt.Errorf("%w (%s)", ErrNoBridge, bridge)
				}
				n.prepared = append(n.prepared, bridge.String()+" "+serviceCIDR.String())
				return nil
			},
		},
		Event: func(typ api.EventType, reason, message string) {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.events = append(n.events, event{typ, reason, message})
		},
		Resync:          time.Hour,
		FirstReportWait: time.Hour,
		Logger:          testLogger(n.t),
	}
}

// testLogger logs to the test's log, shown if it fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter writes a test's log lines to its log, shown if it fails.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

type fakeRules struct{ n *node }

func (r *fakeRules) Sync(svcs []wire.Service) (proxy.Summary, error) {
	r.n.mu.Lock()
	gate := r.n.gate
	r.n.mu.Unlock()
	if gate != nil {
		r.n.entered <- struct{}{}
		<-gate
	}
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	r.n.syncs = append(r.n.syncs, svcs)
	if len(r.n.syncErr) > 0 {
		err := r.n.syncErr[0]
		r.n.syncErr = r.n.syncErr[1:]
		if err != nil && !errors.Is(err, proxy.ErrInvalid) {
			return proxy.Summary{}, err
		}
		return r.n.summary, err
	}
	return r.n.summary, nil
}

func (r *fakeRules) Remove() error {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	r.n.removes++
	return nil
}

func (r *fakeRules) Close() error {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	r.n.closes++
	return nil
}

type fakeDNS struct{ n *node }

func (d *fakeDNS) Update(domain string, svcs []wire.Service) error {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	d.n.updates = append(d.n.updates, domain)
	d.n.dnsSvcs = svcs
	return d.n.dnsErr
}

func (d *fakeDNS) Listen() error {
	d.n.mu.Lock()
	defer d.n.mu.Unlock()
	if !d.n.bridge {
		return fmt.Errorf("dns listen udp: %w", syscall.EADDRNOTAVAIL)
	}
	return nil
}

func (d *fakeDNS) Serve(ctx context.Context) error {
	d.n.set(func(n *node) { n.serving++ })
	d.n.served <- struct{}{}
	<-ctx.Done()
	d.n.set(func(n *node) { n.serving-- })
	d.n.unserved <- struct{}{}
	return nil
}

// start runs a Programmer for n until the test ends.
func (n *node) start(cfg Config) *Programmer {
	n.t.Helper()
	p, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	n.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			n.t.Errorf("Run: %v", err)
		}
	})
	return p
}

// programmed waits for the pass that covers gen.
func programmed(t *testing.T, p *Programmer, gen uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Programmed(ctx, gen); err != nil {
		t.Fatalf("waiting for the pass of generation %d: %v", gen, err)
	}
}

// wait waits for a tick of ch.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10 s", what)
	}
}

// network is a snapshot's pod network in the unit tests.
func network() *wire.Network {
	return &wire.Network{PodCIDR: "10.42.0.0/24", ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDomain: "cluster.local"}
}
