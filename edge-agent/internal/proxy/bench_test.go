package proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Benchmarks (as root):
//
//	go test -run '^$' -bench 'BenchmarkSync' -benchtime 10x ./edge-agent/internal/proxy/
//	go test -run '^$' -bench 'BenchmarkDataPath' -count 5 ./edge-agent/internal/proxy/

// manyServices is n Services of eps ready endpoints each, one TCP port;
// every fourth has a NodePort. Endpoint addresses are unique.
func manyServices(n, eps int) []wire.Service {
	svcs := make([]wire.Service, n)
	for i := range svcs {
		svc := wire.Service{
			Namespace: "bench", Name: fmt.Sprintf("svc-%04d", i), Type: "ClusterIP",
			ClusterIP: netip.AddrFrom4([4]byte{198, 19, byte(128 + i/256), byte(i % 256)}).String(),
			Ports:     []wire.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: "http"}},
		}
		if i%4 == 0 {
			svc.Type = "NodePort"
			svc.Ports[0].NodePort = int32(30000 + i)
		}
		for j := 0; j < eps; j++ {
			k := i*eps + j
			svc.Endpoints = append(svc.Endpoints, wire.Endpoint{
				IP:   netip.AddrFrom4([4]byte{198, 18, byte(k / 256), byte(k % 256)}).String(),
				Node: "node", Ready: true, Ports: map[string]int32{"http": 8080},
			})
		}
		svcs[i] = svc
	}
	return svcs
}

// BenchmarkSync times programming 1,000 Services × 10 endpoints: the
// first Sync (empty namespace to full table), a Sync that changes one
// endpoint of one Service, and a restarted agent's first Sync (reading the
// table back, changing nothing).
func BenchmarkSync(b *testing.B) {
	needRoot(b)
	const services, endpoints = 1000, 10
	node := newNetns(b, fmt.Sprintf("fpxb%d-%d", os.Getpid()%100000, siteSeqNext()))
	cfg := Config{NodeName: "node", NodeIPs: []netip.Addr{netip.MustParseAddr(nodeIP)}, PodCIDR: netip.MustParsePrefix(podCIDR)}
	svcs := manyServices(services, endpoints)
	changed := manyServices(services, endpoints)
	changed[501].Endpoints[3].Ready = false // a ClusterIP Service: one chain changes

	newProxy := func(b *testing.B) *Proxy {
		p, err := New(cfg, WithNetNS(node.fd))
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	sync := func(b *testing.B, p *Proxy, s []wire.Service) Summary {
		sum, err := p.Sync(s)
		if err != nil {
			b.Fatal(err)
		}
		return sum
	}

	b.Run("full", func(b *testing.B) {
		p := newProxy(b)
		defer p.Close()
		var sum Summary
		for b.Loop() {
			sum = sync(b, p, svcs)
			b.StopTimer()
			sync(b, p, nil)
			b.StartTimer()
		}
		b.ReportMetric(float64(sum.ChainsAdded), "chains")
	})
	b.Run("one-endpoint", func(b *testing.B) {
		p := newProxy(b)
		defer p.Close()
		sync(b, p, svcs)
		flip := false
		for b.Loop() {
			flip = !flip
			s := svcs
			if flip {
				s = changed
			}
			if sum := sync(b, p, s); sum.ChainsChanged != 1 || sum.ChainsRemoved+sum.ChainsAdded != 1 {
				b.Fatalf("one endpoint changed %+v", sum)
			}
		}
		sync(b, p, nil)
	})
	b.Run("restart", func(b *testing.B) {
		first := newProxy(b)
		sync(b, first, svcs)
		first.Close()
		for b.Loop() {
			p := newProxy(b)
			if sum := sync(b, p, svcs); !sum.Empty() {
				b.Fatalf("restart changed %+v", sum)
			}
			p.Close()
		}
		p := newProxy(b)
		sync(b, p, nil)
		p.Close()
	})
}

// BenchmarkBuildAndDiff times the pure part of a one-endpoint Sync of
// 1,000 Services × 10 endpoints: building the desired table and diffing.
func BenchmarkBuildAndDiff(b *testing.B) {
	cfg := Config{NodeName: "node", NodeIPs: []netip.Addr{netip.MustParseAddr(nodeIP)}, PodCIDR: netip.MustParsePrefix(podCIDR)}
	svcs := manyServices(1000, 10)
	have, err := build(cfg, svcs)
	if err != nil {
		b.Fatal(err)
	}
	have = have.forget()
	svcs[501].Endpoints[3].Ready = false
	for b.Loop() {
		want, err := build(cfg, svcs)
		if err != nil {
			b.Fatal(err)
		}
		if diff(have, want).summary().Empty() {
			b.Fatal("no change")
		}
	}
}

func siteSeqNext() int {
	siteSeq.Lock()
	defer siteSeq.Unlock()
	siteSeq.n++
	return siteSeq.n
}

// sink accepts TCP connections on addr in ns and discards what they send.
func sink(b *testing.B, ns *netns, addr string) {
	var ln net.Listener
	if err := ns.do(func() (err error) { ln, err = net.Listen("tcp4", addr); return err }); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); wg.Wait() })
}

// BenchmarkDataPath compares a pod's connections to another pod through
// a ClusterIP with the same connections to the pod's IP: "connect" is a
// new TCP connection and the server's first line (handshake plus one
// round trip), "stream" writes 1 MiB per op on one open connection. The
// "1000-services" cases have 1,000 other Services × 10 endpoints in the
// table: the map lookups do not grow with them.
func BenchmarkDataPath(b *testing.B) {
	s := newSite(b)
	s.serveAll(b)
	const sinkPort = 8081
	sink(b, s.pods[1], fmt.Sprintf("%s:%d", podIPs[1], sinkPort))
	p := s.proxy(b)
	target := wire.Service{
		Namespace: "default", Name: "target", ClusterIP: "198.19.200.10",
		Ports: []wire.ServicePort{
			{Name: "http", Protocol: "TCP", Port: 80, TargetPort: "http"},
			{Name: "sink", Protocol: "TCP", Port: 81, TargetPort: "sink"},
		},
		Endpoints: []wire.Endpoint{{IP: podIPs[1], Node: "node", Ready: true,
			Ports: map[string]int32{"http": tcpPort, "sink": sinkPort}}},
	}
	client := s.pods[0]
	direct := fmt.Sprintf("%s:%d", podIPs[1], tcpPort)
	directSink := fmt.Sprintf("%s:%d", podIPs[1], sinkPort)

	connect := func(addr string) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				if _, _, err := ask(client, addr); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	stream := func(addr string) func(b *testing.B) {
		return func(b *testing.B) {
			c, err := dial(client, addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	for _, scale := range []struct {
		name string
		svcs []wire.Service
	}{
		{"1-service", []wire.Service{target}},
		{"1000-services", append(manyServices(1000, 10), target)},
	} {
		if _, err := p.Sync(scale.svcs); err != nil {
			b.Fatal(err)
		}
		b.Run("connect/pod-ip/"+scale.name, connect(direct))
		b.Run("connect/cluster-ip/"+scale.name, connect("198.19.200.10:80"))
		b.Run("stream/pod-ip/"+scale.name, stream(directSink))
		b.Run("stream/cluster-ip/"+scale.name, stream("198.19.200.10:81"))
	}
}
