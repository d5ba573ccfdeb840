package proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
// 1,000 Services × 10 endpoints: building the desired table (reusing the
// unchanged Services' parts) and diffing.
func BenchmarkBuildAndDiff(b *testing.B) {
	cfg := Config{NodeName: "node", NodeIPs: []netip.Addr{netip.MustParseAddr(nodeIP)}, PodCIDR: netip.MustParsePrefix(podCIDR)}
	svcs := manyServices(1000, 10)
	have, cache, err := build(cfg, svcs, nil)
	if err != nil {
		b.Fatal(err)
	}
	have = have.forget()
	svcs[501].Endpoints[3].Ready = false
	for b.Loop() {
		want, _, err := build(cfg, svcs, cache)
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

// benchServers runs servers on host in ns: at port 8081 a sink that
// discards what a connection sends, at ports 8082 and 8083 one that
// writes a line and closes (so the server, not the client, keeps the
// closed connection's TIME_WAIT, and the client never runs out of ports).
// Connections to the pod's IP use 8082, those through the ClusterIP 8083:
// the client's port choice knows nothing of the other path's TIME_WAITs
// on the server, and a SYN landing on one stalls for a second.
func benchServers(b *testing.B, ns *netns, host string) {
	var sinkLn, helloLn, hello2Ln net.Listener
	err := ns.do(func() (err error) {
		if sinkLn, err = net.Listen("tcp4", host+":8081"); err != nil {
			return err
		}
		if helloLn, err = net.Listen("tcp4", host+":8082"); err != nil {
			return err
		}
		hello2Ln, err = net.Listen("tcp4", host+":8083")
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	accept := func(ln net.Listener, handle func(net.Conn)) {
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
				handle(c)
			}()
		}
	}
	hello := func(c net.Conn) { _, _ = c.Write([]byte("hi\n")) }
	wg.Add(3)
	go accept(sinkLn, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	go accept(helloLn, hello)
	go accept(hello2Ln, hello)
	b.Cleanup(func() { sinkLn.Close(); helloLn.Close(); hello2Ln.Close(); wg.Wait() })
}

// inNetns runs f on a goroutine whose thread stays in ns: the benchmark
// loop pays no namespace switch per connection. The thread is thrown
// away afterwards.
func inNetns(ns *netns, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// BenchmarkDataPath compares a pod's connections to another pod through
// a ClusterIP with the same connections to the pod's IP: "connect" is a
// new TCP connection until the server's one line and close (handshake
// plus a round trip), "stream" writes 1 MiB per op on one open
// connection. The "1000-services" cases have 1,000 other Services × 10
// endpoints in the table: the map lookups do not grow with them.
func BenchmarkDataPath(b *testing.B) {
	s := newSite(b)
	benchServers(b, s.pods[1], podIPs[1])
	p := s.proxy(b)
	target := wire.Service{
		Namespace: "default", Name: "target", ClusterIP: "198.19.200.10",
		Ports: []wire.ServicePort{
			{Name: "sink", Protocol: "TCP", Port: 81, TargetPort: "8081"},
			{Name: "hello", Protocol: "TCP", Port: 82, TargetPort: "8083"},
		},
		Endpoints: []wire.Endpoint{{IP: podIPs[1], Node: "node", Ready: true}},
	}
	client := s.pods[0]

	connect := func(addr string) func(b *testing.B) {
		return func(b *testing.B) {
			buf := make([]byte, 16)
			b.ResetTimer()
			err := inNetns(client, func() error {
				for i := 0; i < b.N; i++ {
					c, err := net.DialTimeout("tcp4", addr, ioTimeout)
					if err != nil {
						return err
					}
					_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
					if _, err := io.ReadAtLeast(c, buf, 3); err != nil {
						c.Close()
						return err
					}
					c.Close()
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	stream := func(addr string) func(b *testing.B) {
		return func(b *testing.B) {
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			err := inNetns(client, func() error {
				c, err := net.DialTimeout("tcp4", addr, ioTimeout)
				if err != nil {
					return err
				}
				defer c.Close()
				for i := 0; i < b.N; i++ {
					if _, err := c.Write(buf); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
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
		b.Run("connect/pod-ip/"+scale.name, connect(podIPs[1]+":8082"))
		b.Run("connect/cluster-ip/"+scale.name, connect("198.19.200.10:82"))
		b.Run("stream/pod-ip/"+scale.name, stream(podIPs[1]+":8081"))
		b.Run("stream/cluster-ip/"+scale.name, stream("198.19.200.10:81"))
	}
}
