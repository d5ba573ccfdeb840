package dns

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// forwardingServer runs a Server whose resolv.conf names up (on loopback).
func forwardingServer(t *testing.T, up *upstream, cfg Config) *testServer {
	t.Helper()
	cfg.ResolvConf = writeResolvConf(t, "nameserver 127.0.0.1\n")
	cfg.UpstreamPort = up.addr.Port()
	return startServer(t, cfg, testServices())
}

func TestForwardAndCache(t *testing.T) {
	up := startUpstream(t, "up")
	s := forwardingServer(t, up, Config{})

	resp := ask(t, s.addr, "udp", "www.example.org.", mdns.TypeA)
	if got := answers(resp); resp.Rcode != mdns.RcodeSuccess || !slices.Equal(got, []string{"www.example.org. 0 IN A 192.0.2.1"}) {
		t.Fatalf("forwarded: %s %v", mdns.RcodeToString[resp.Rcode], got)
	}
	if resp.Authoritative || !resp.RecursionAvailable || resp.Answer[0].Header().Ttl != 30 {
		t.Errorf("forwarded flags AA=%v RA=%v TTL=%d, want AA false, RA true, TTL 30", resp.Authoritative, resp.RecursionAvailable, resp.Answer[0].Header().Ttl)
	}

	// 10 s later: from the cache, TTL counted down, upstream not asked again.
	s.clock.Advance(10 * time.Second)
	resp = ask(t, s.addr, "udp", "WWW.example.ORG.", mdns.TypeA)
	if len(resp.Answer) != 1 || resp.Answer[0].Header().Ttl != 20 {
		t.Errorf("cached: %v, want one A with TTL 20", resp.Answer)
	}
	if resp.Question[0].Name != "WWW.example.ORG." || resp.Answer[0].Header().Name != "WWW.example.ORG." {
		t.Errorf("cached answer's question %q and record %q, want them spelled as the client did", resp.Question[0].Name, resp.Answer[0].Header().Name)
	}
	if n := up.count("www.example.org.", "A", "udp"); n != 1 {
		t.Errorf("upstream asked %d times, want 1 (a cache hit)", n)
	}
	// Past its TTL: asked again.
	s.clock.Advance(20 * time.Second)
	ask(t, s.addr, "udp", "www.example.org.", mdns.TypeA)
	if n := up.count("www.example.org.", "A", "udp"); n != 2 {
		t.Errorf("upstream asked %d times after the TTL, want 2", n)
	}
	// Another type is another entry.
	resp = ask(t, s.addr, "udp", "www.example.org.", mdns.TypeTXT)
	if got := answers(resp); !slices.Equal(got, []string{`www.example.org. 0 IN TXT "up www.example.org."`}) {
		t.Errorf("TXT: %v", got)
	}

	// NXDOMAIN is cached for the SOA's minimum (30 s), not its TTL (60 s).
	for range 2 {
		resp = ask(t, s.addr, "udp", "nx.example.", mdns.TypeA)
		if resp.Rcode != mdns.RcodeNameError || len(resp.Ns) != 1 {
			t.Fatalf("nx: %s %v", mdns.RcodeToString[resp.Rcode], resp.Ns)
		}
	}
	if n := up.count("nx.example.", "A", "udp"); n != 1 {
		t.Errorf("nx asked %d times, want 1", n)
	}
	s.clock.Advance(31 * time.Second)
	ask(t, s.addr, "udp", "nx.example.", mdns.TypeA)
	if n := up.count("nx.example.", "A", "udp"); n != 2 {
		t.Errorf("nx asked %d times after 31 s, want 2", n)
	}

	// Cluster names never reach the upstream.
	ask(t, s.addr, "udp", "nope.default.svc.cluster.local.", mdns.TypeA)
	if n := up.count("nope.default.svc.cluster.local.", "A", "udp"); n != 0 {
		t.Errorf("a cluster name was forwarded %d times", n)
	}
}

// An upstream's SERVFAIL is not cached, and answered as SERVFAIL.
func TestForwardUpstreamServfail(t *testing.T) {
	up := startUpstream(t, "up")
	s := forwardingServer(t, up, Config{})
	for range 2 {
		if resp := ask(t, s.addr, "udp", "fail.example.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
			t.Errorf("fail.example: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
		}
	}
	if n := up.count("fail.example.", "A", "udp"); n != 2 {
		t.Errorf("fail.example asked %d times, want 2 (no caching of failures)", n)
	}
}

// An answer to another question is no answer.
func TestForwardWrongQuestion(t *testing.T) {
	up := startUpstream(t, "up")
	s := forwardingServer(t, up, Config{})
	if resp := ask(t, s.addr, "udp", "swap.example.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure || len(resp.Answer) != 0 {
		t.Errorf("swap.example: %s %v, want SERVFAIL", mdns.RcodeToString[resp.Rcode], resp.Answer)
	}
}

func TestCacheIsBounded(t *testing.T) {
	up := startUpstream(t, "up")
	s := forwardingServer(t, up, Config{CacheSize: 2})
	for _, n := range []string{"a.example.", "b.example.", "c.example."} {
		ask(t, s.addr, "udp", n, mdns.TypeA)
	}
	if n := s.cache.len(); n != 2 {
		t.Errorf("cache holds %d entries, want its bound 2", n)
	}
	// a was the least recently used: gone; c still there.
	ask(t, s.addr, "udp", "a.example.", mdns.TypeA)
	ask(t, s.addr, "udp", "c.example.", mdns.TypeA)
	if a, c := up.count("a.example.", "A", "udp"), up.count("c.example.", "A", "udp"); a != 2 || c != 1 {
		t.Errorf("asked a %d times, c %d times; want 2 and 1", a, c)
	}
}

// A truncated UDP answer upstream is asked again over TCP; a client over
// UDP without EDNS gets it truncated, and whole over TCP (from the cache).
func TestForwardTCPFallback(t *testing.T) {
	up := startUpstream(t, "up")
	s := forwardingServer(t, up, Config{})
	udp := ask(t, s.addr, "udp", "big.example.", mdns.TypeA)
	if !udp.Truncated {
		t.Errorf("UDP client: %d answers, not truncated", len(udp.Answer))
	}
	tcp := ask(t, s.addr, "tcp", "big.example.", mdns.TypeA)
	if tcp.Truncated || len(tcp.Answer) != 40 {
		t.Errorf("TCP client: truncated %v, %d answers, want 40", tcp.Truncated, len(tcp.Answer))
	}
	if u, c := up.count("big.example.", "A", "udp"), up.count("big.example.", "A", "tcp"); u != 1 || c != 1 {
		t.Errorf("upstream asked %d times over UDP and %d over TCP, want once each", u, c)
	}
}

// With its upstreams gone the server answers SERVFAIL for outside names
// and still answers the cluster's.
func TestUpstreamDown(t *testing.T) {
	up := startUpstream(t, "up")
	s := forwardingServer(t, up, Config{UpstreamTimeout: 300 * time.Millisecond})
	if resp := ask(t, s.addr, "udp", "www.example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeSuccess {
		t.Fatalf("before: %s", mdns.RcodeToString[resp.Rcode])
	}
	up.stop()
	if resp := ask(t, s.addr, "udp", "other.example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("upstream down: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	if resp := ask(t, s.addr, "tcp", "other.example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("upstream down, TCP: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	if got := answers(ask(t, s.addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA)); len(got) != 1 {
		t.Errorf("cluster name with the upstream down: %v", got)
	}
	// What was cached still answers.
	if resp := ask(t, s.addr, "udp", "www.example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeSuccess {
		t.Errorf("cached name with the upstream down: %s", mdns.RcodeToString[resp.Rcode])
	}
}

// An upstream that never answers: SERVFAIL once the timeouts pass, and the
// next upstream is tried before that.
func TestUpstreamSilent(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("127.0.0.2 (loopback): %v", err)
	}
	defer silent.Close()
	port := silent.LocalAddr().(*net.UDPAddr).Port

	// Alone: SERVFAIL.
	path := writeResolvConf(t, "nameserver 127.0.0.2\n")
	s := startServer(t, Config{ResolvConf: path, UpstreamPort: uint16(port), UpstreamTimeout: 200 * time.Millisecond}, nil)
	if resp := ask(t, s.addr, "udp", "www.example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("silent upstream: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}

	// First of two: the second answers, and is asked first from then on.
	up := startUpstreamOn(t, "127.0.0.3", port)
	path = writeResolvConf(t, "nameserver 127.0.0.2\nnameserver 127.0.0.3\n")
	s = startServer(t, Config{ResolvConf: path, UpstreamPort: uint16(port), UpstreamTimeout: 200 * time.Millisecond}, nil)
	for _, name := range []string{"a.example.", "b.example."} {
		if resp := ask(t, s.addr, "udp", name, mdns.TypeA); resp.Rcode != mdns.RcodeSuccess {
			t.Errorf("%s with the first upstream silent: %s", name, mdns.RcodeToString[resp.Rcode])
		}
	}
	if _, preferred := s.fwd.list(); preferred != 1 {
		t.Errorf("preferred upstream %d, want 1 (the one that answered)", preferred)
	}
	if up.count("b.example.", "A", "udp") != 1 {
		t.Error("b.example never reached the second upstream")
	}
}

// startUpstreamOn runs the fake upstream on host:port, UDP only.
func startUpstreamOn(t *testing.T, host string, port int) *upstream {
	t.Helper()
	u := &upstream{t: t, name: host, asked: map[string]int{}, addr: netip.AddrPortFrom(netip.MustParseAddr(host), uint16(port))}
	pc, err := net.ListenPacket("udp", u.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: u}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.ActivateAndServe()
	}()
	select {
	case <-started:
	case <-time.After(failAfter):
		t.Fatal("upstream did not start")
	}
	t.Cleanup(func() {
		_ = srv.Shutdown()
		wg.Wait()
	})
	return u
}

// An offline site: no resolv.conf at all, or one naming only the server
// itself. Outside names fail at once; cluster names resolve.
func TestNoUpstream(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no resolv.conf":      {ResolvConf: "/nonexistent/resolv.conf"},
		"no resolv.conf path": {},
		"empty resolv.conf":   {ResolvConf: writeResolvConf(t, "# nothing\n")},
	} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, cfg, testServices())
			if resp := ask(t, s.addr, "udp", "www.example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
				t.Errorf("outside name: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
			}
			if got := answers(ask(t, s.addr, "udp", "web.default.svc.cluster.local.", mdns.TypeA)); len(got) != 1 {
				t.Errorf("cluster name: %v", got)
			}
		})
	}
}

// The server's own address in the resolv.conf would loop: it is skipped,
// and an outside name fails at once instead of going round.
func TestResolvConfNamesTheServer(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", ResolvConf: writeResolvConf(t, "nameserver 127.0.0.1\n"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	// Its upstreams' port is its own port: the resolv.conf names it.
	s.fwd.port = s.Addr().Port()
	ts := serveTest(t, s)
	if ups, _ := s.fwd.list(); len(ups) != 0 {
		t.Errorf("upstreams %v, want none (only the server itself)", ups)
	}
	if resp := ask(t, ts.addr, "udp", "www.example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("outside name: %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
}

func TestUpstreamsOf(t *testing.T) {
	conf := ResolvConf{Nameservers: []string{"127.0.0.53", "10.42.0.1", "192.0.2.53", "dns.example", "192.0.2.53", "2001:db8::53", "::ffff:192.0.2.54"}}
	got := upstreamsOf(conf, 53, netip.MustParseAddrPort("10.42.0.1:53"))
	want := []string{"127.0.0.53:53", "192.0.2.53:53", "[2001:db8::53]:53", "192.0.2.54:53"}
	if !slices.Equal(got, want) {
		t.Errorf("upstreams %v, want %v (the stub resolver kept, the server itself, names and duplicates dropped)", got, want)
	}
	// Listening on every address: a loopback resolver at our port is us.
	got = upstreamsOf(ResolvConf{Nameservers: []string{"127.0.0.1", "127.0.0.53", "192.0.2.53"}}, 53, netip.MustParseAddrPort("0.0.0.0:53"))
	if !slices.Equal(got, []string{"192.0.2.53:53"}) {
		t.Errorf("upstreams with a wildcard listener %v, want [192.0.2.53:53]", got)
	}
}

// DHCP rewrites resolv.conf: the new resolvers are used within a couple of
// seconds.
func TestResolvConfReload(t *testing.T) {
	first := startUpstream(t, "first")
	second := startUpstreamOn(t, "127.0.0.4", int(first.addr.Port()))
	path := writeResolvConf(t, "nameserver 127.0.0.1\n")
	s := startServer(t, Config{ResolvConf: path, UpstreamPort: first.addr.Port(), CacheSize: -1}, nil)

	txt := func() string {
		resp := ask(t, s.addr, "udp", "who.example.", mdns.TypeTXT)
		if len(resp.Answer) != 1 {
			t.Fatalf("who.example: %s %v", mdns.RcodeToString[resp.Rcode], resp.Answer)
		}
		return strings.Join(resp.Answer[0].(*mdns.TXT).Txt, " ")
	}
	if got := txt(); !strings.HasPrefix(got, "first ") {
		t.Fatalf("answered by %q, want first", got)
	}
	if err := os.WriteFile(path, []byte("nameserver 127.0.0.4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if got := txt(); !strings.HasPrefix(got, "first ") {
		t.Errorf("right after the change: answered by %q, want first (looked at every 2 s)", got)
	}
	s.clock.Advance(reloadEvery + time.Second)
	if got := txt(); !strings.HasPrefix(got, "127.0.0.4 ") {
		t.Errorf("after the change: answered by %q, want the new resolver", got)
	}
	_ = second
}

// Queries in flight while the agent replaces the table: each sees the old
// table or the new one, whole (run with -race).
func TestUpdateWhileServing(t *testing.T) {
	a, b := testServices(), testServices()
	b[0].ClusterIP = "10.43.0.99"
	b[1].Endpoints = b[1].Endpoints[:1]
	s := startServer(t, Config{}, a)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			next := a
			if i%2 == 0 {
				next = b
			}
			if err := s.Update("cluster.local", next); err != nil {
				t.Errorf("update: %v", err)
				return
			}
		}
	}()
	var clients sync.WaitGroup
	for c := range 4 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			client := &mdns.Client{Timeout: failAfter}
			if c%2 == 1 {
				client.Net = "tcp"
			}
			for range 200 {
				m := new(mdns.Msg)
				m.SetQuestion("web.default.svc.cluster.local.", mdns.TypeA)
				resp, _, err := client.Exchange(m, s.addr)
				if err != nil {
					t.Errorf("query: %v", err)
					return
				}
				got := answers(resp)
				if !slices.Equal(got, []string{"web.default.svc.cluster.local. 0 IN A 10.43.0.10"}) &&
					!slices.Equal(got, []string{"web.default.svc.cluster.local. 0 IN A 10.43.0.99"}) {
					t.Errorf("answer %v: neither table's", got)
					return
				}
				m.SetQuestion("db.default.svc.cluster.local.", mdns.TypeA)
				resp, _, err = client.Exchange(m, s.addr)
				if err != nil {
					t.Errorf("query: %v", err)
					return
				}
				if n := len(resp.Answer); n != 1 && n != 2 {
					t.Errorf("headless answer with %d records: neither table's", n)
					return
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	wg.Wait()
}

// The pods' side: a short name goes through the search path of the
// resolv.conf the pod gets, as a stub resolver walks it (miekg's
// ClientConfig applies search and ndots as glibc does), to the server.
func TestSearchPath(t *testing.T) {
	up := startUpstream(t, "up")
	s := forwardingServer(t, up, Config{})
	host := ResolvConf{Nameservers: []string{"127.0.0.1"}, Searches: []string{"lan"}}
	pod, _, err := PodResolvConf(PodDNS{Namespace: "default", ClusterDomain: "cluster.local", ClusterDNS: "127.0.0.1", Host: host})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := mdns.ClientConfigFromReader(strings.NewReader(string(pod.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	if cc.Ndots != 5 || !slices.Equal(cc.Search, []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local", "lan"}) {
		t.Fatalf("parsed pod resolv.conf: ndots %d search %v", cc.Ndots, cc.Search)
	}
	resolve := func(name string, qtype uint16) (string, []string) {
		for _, candidate := range cc.NameList(name) {
			resp := ask(t, s.addr, "udp", candidate, qtype)
			if resp.Rcode == mdns.RcodeSuccess && len(resp.Answer) > 0 {
				return candidate, answers(resp)
			}
		}
		return "", nil
	}
	for _, tc := range []struct {
		short, fqdn string
		qtype       uint16
	}{
		{"web", "web.default.svc.cluster.local.", mdns.TypeA},
		{"web.default", "web.default.svc.cluster.local.", mdns.TypeA},
		{"web.default.svc", "web.default.svc.cluster.local.", mdns.TypeA},
		{"web.default.svc.cluster.local", "web.default.svc.cluster.local.", mdns.TypeA},
		{"db", "db.default.svc.cluster.local.", mdns.TypeA},
		{"bare.kube-system", "bare.kube-system.svc.cluster.local.", mdns.TypeA},
		{"_http._tcp.web", "_http._tcp.web.default.svc.cluster.local.", mdns.TypeSRV},
		// Outside names: through "lan" (forwarded, answered by the fake upstream).
		{"printer", "printer.lan.", mdns.TypeA},
	} {
		got, rrs := resolve(tc.short, tc.qtype)
		if got != tc.fqdn {
			t.Errorf("%s resolved as %q (%v), want %s", tc.short, got, rrs, tc.fqdn)
		}
	}
	// Other namespaces' short names do not leak in.
	if got, _ := resolve("bare", mdns.TypeA); got == "bare.kube-system.svc.cluster.local." {
		t.Errorf("bare (in kube-system) resolved from default as %s", got)
	}
}

// The agent's wiring: a cluster with a thousand Services answers.
func TestManyServices(t *testing.T) {
	s := startServer(t, Config{}, manyServices(1000, 3))
	resp := ask(t, s.addr, "udp", "svc999.ns19.svc.cluster.local.", mdns.TypeA)
	if got := answers(resp); !slices.Equal(got, []string{"svc999.ns19.svc.cluster.local. 0 IN A 10.43.3.250"}) {
		t.Errorf("svc999: %v", got)
	}
}
