package dns

import (
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// Lookups through the real server on loopback, with 1,000 Services: the
// client and the server share the machine. Each sub-benchmark reports the
// latency of one query (p50, p99) and the queries per second:
//
//	go test -run '^$' -bench BenchmarkLookup -benchtime 20000x ./edge-agent/internal/dns/
//
// "serial" is one client asking one query at a time; "parallel" is 16
// clients at once, for throughput.
func BenchmarkLookup(b *testing.B) {
	up := startUpstream(b, "up")
	path := writeResolvConf(b, "nameserver 127.0.0.1\n")
	s := startServer(b, Config{ResolvConf: path, UpstreamPort: up.addr.Port()}, manyServices(1000, 3))
	// Fill the cache (the fake clock never moves, so it never expires).
	ask(b, s.addr, "udp", "www.example.org.", mdns.TypeA)

	for _, tc := range []struct{ name, qname string }{
		{"cluster", "svc500.ns0.svc.cluster.local."},
		{"cached-forward", "www.example.org."},
	} {
		for _, parallel := range []bool{false, true} {
			mode := "serial"
			if parallel {
				mode = "parallel"
			}
			b.Run(tc.name+"/"+mode, func(b *testing.B) {
				var mu sync.Mutex
				var all []time.Duration
				query := func(pb func() bool) {
					conn, err := (&mdns.Client{}).Dial(s.addr)
					if err != nil {
						b.Error(err)
						return
					}
					defer conn.Close()
					c := &mdns.Client{Timeout: failAfter}
					m := new(mdns.Msg)
					m.SetQuestion(tc.qname, mdns.TypeA)
					var lat []time.Duration
					for pb() {
						m.Id = mdns.Id()
						t0 := time.Now()
						resp, _, err := c.ExchangeWithConn(m, conn)
						lat = append(lat, time.Since(t0))
						if err != nil || len(resp.Answer) != 1 {
							b.Errorf("%s: %v %v", tc.qname, resp, err)
							return
						}
					}
					mu.Lock()
					all = append(all, lat...)
					mu.Unlock()
				}
				start := time.Now()
				b.ResetTimer()
				if parallel {
					b.SetParallelism(8)
					b.RunParallel(func(pb *testing.PB) { query(pb.Next) })
				} else {
					i := 0
					query(func() bool { i++; return i <= b.N })
				}
				elapsed := time.Since(start)
				b.StopTimer()
				slices.Sort(all)
				if len(all) > 0 {
					b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
					b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
					b.ReportMetric(float64(len(all))/elapsed.Seconds(), "queries/s")
				}
			})
		}
	}
}

// The heap a table of 1,000 Services (3 ready endpoints each) holds, and
// the time to build and swap it in:
//
//	go test -run '^$' -bench BenchmarkTable -benchtime 200x ./edge-agent/internal/dns/
func BenchmarkTable(b *testing.B) {
	for _, n := range []int{1000} {
		services := manyServices(n, 3)
		s, err := New(Config{Addr: "127.0.0.1:0", Logger: quietLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Run("update-1000", func(b *testing.B) {
			for range b.N {
				if err := s.Update("cluster.local", services); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("heap-1000", func(b *testing.B) {
			var before, after runtime.MemStats
			var sum int64
			for range b.N {
				_ = s.Update("cluster.local", nil)
				runtime.GC()
				runtime.ReadMemStats(&before)
				if err := s.Update("cluster.local", services); err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				sum += int64(after.HeapAlloc) - int64(before.HeapAlloc)
			}
			b.ReportMetric(float64(sum)/float64(b.N), "table-bytes")
			runtime.KeepAlive(services)
		})
	}
}

// The heap a full cache holds, of typical forwarded answers (a CNAME and
// two A records):
//
//	go test -run '^$' -bench BenchmarkCacheMemory -benchtime 5x ./edge-agent/internal/dns/
func BenchmarkCacheMemory(b *testing.B) {
	now := time.Now()
	var before, after runtime.MemStats
	var sum int64
	for range b.N {
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := newCache(DefaultCacheSize)
		for i := range DefaultCacheSize {
			name := "host" + itoa(i) + ".service.example.org."
			m := new(mdns.Msg)
			m.SetQuestion(name, mdns.TypeA)
			m.Response = true
			m.Answer = []mdns.RR{
				&mdns.CNAME{Hdr: hdr(name, mdns.TypeCNAME, 300), Target: "edge" + itoa(i) + ".cdn.example.net."},
				&mdns.A{Hdr: hdr("edge"+itoa(i)+".cdn.example.net.", mdns.TypeA, 60), A: []byte{192, 0, 2, byte(i)}},
				&mdns.A{Hdr: hdr("edge"+itoa(i)+".cdn.example.net.", mdns.TypeA, 60), A: []byte{198, 51, 100, byte(i)}},
			}
			c.put(cacheKey{name: name, qtype: mdns.TypeA, class: mdns.ClassINET}, m, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		sum += int64(after.HeapAlloc) - int64(before.HeapAlloc)
		runtime.KeepAlive(c)
	}
	b.ReportMetric(float64(sum)/float64(b.N), "cache-bytes")
	b.ReportMetric(float64(sum)/float64(b.N)/DefaultCacheSize, "bytes/entry")
}

// The server's own work per query, without sockets:
//
//	go test -run '^$' -bench BenchmarkAnswer -benchmem ./edge-agent/internal/dns/
func BenchmarkAnswer(b *testing.B) {
	up := startUpstream(b, "up")
	path := writeResolvConf(b, "nameserver 127.0.0.1\n")
	s := startServer(b, Config{ResolvConf: path, UpstreamPort: up.addr.Port()}, manyServices(1000, 3))
	ask(b, s.addr, "udp", "www.example.org.", mdns.TypeA)
	for _, tc := range []struct {
		name, qname string
		qtype       uint16
	}{
		{"cluster-A", "svc500.ns0.svc.cluster.local.", mdns.TypeA},
		{"cluster-SRV", "_http._tcp.svc500.ns0.svc.cluster.local.", mdns.TypeSRV},
		{"cluster-NXDOMAIN", "nope.ns0.svc.cluster.local.", mdns.TypeA},
		{"cached-forward-A", "www.example.org.", mdns.TypeA},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := new(mdns.Msg)
			m.SetQuestion(tc.qname, tc.qtype)
			b.ReportAllocs()
			for range b.N {
				if resp := s.answer(m, false); resp.Rcode == mdns.RcodeServerFailure {
					b.Fatal("SERVFAIL")
				}
			}
		})
	}
}
