package dns

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// failAfter bounds every wait of a test on the code under test.
const failAfter = 5 * time.Second

// fakeClock is a clock that moves only when the test advances it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// listenPair binds UDP and TCP on one free port of 127.0.0.1.
func listenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("no port free on both UDP and TCP")
	return nil, nil
}

// upstream is a fake resolver of the node, a miekg server on loopback:
//
//	nx.example.      NXDOMAIN, SOA TTL 60 minimum 30
//	big.example.     truncated over UDP; 40 A records over TCP
//	fail.example.    SERVFAIL
//	swap.example.    an answer to another question (evil.example.)
//	*.lan.           NXDOMAIN but printer.lan.
//	anything else    A 192.0.2.1 TTL 30 (the name's TXT: "upstream NAME")
type upstream struct {
	t     testing.TB
	addr  netip.AddrPort
	name  string
	mu    sync.Mutex
	asked map[string]int // "name/TYPE/udp|tcp"
	stop  func()
}

func startUpstream(t testing.TB, name string) *upstream {
	t.Helper()
	pc, ln := listenPair(t)
	u := &upstream{t: t, name: name, asked: map[string]int{}, addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	var wg sync.WaitGroup
	var servers []*mdns.Server
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: u}, {Listener: ln, Handler: u}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				t.Errorf("upstream: %v", err)
			}
		}()
		select {
		case <-started:
		case <-time.After(failAfter):
			t.Fatal("upstream did not start")
		}
		servers = append(servers, srv)
	}
	var once sync.Once
	u.stop = func() {
		once.Do(func() {
			for _, srv := range servers {
				_ = srv.Shutdown()
			}
			wg.Wait()
		})
	}
	t.Cleanup(u.stop)
	return u
}

func (u *upstream) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	q := req.Question[0]
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	transport := "udp"
	if tcp {
		transport = "tcp"
	}
	u.mu.Lock()
	u.asked[strings.ToLower(q.Name)+"/"+mdns.TypeToString[q.Qtype]+"/"+transport]++
	u.mu.Unlock()

	m := new(mdns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	switch strings.ToLower(q.Name) {
	case "nx.example.":
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{&mdns.SOA{Hdr: hdr("example.", mdns.TypeSOA, 60), Ns: "ns.example.", Mbox: "h.example.", Serial: 1, Minttl: 30}}
	case "big.example.":
		if !tcp {
			m.Truncated = true
			break
		}
		for i := range 40 {
			m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(q.Name, mdns.TypeA, 30), A: net.IPv4(192, 0, 2, byte(i+1))})
		}
	case "fail.example.":
		m.Rcode = mdns.RcodeServerFailure
	case "swap.example.":
		m.Question[0].Name = "evil.example."
		m.Answer = []mdns.RR{&mdns.A{Hdr: hdr("evil.example.", mdns.TypeA, 30), A: net.IPv4(203, 0, 113, 66)}}
	default:
		if n := strings.ToLower(q.Name); strings.HasSuffix(n, ".lan.") && n != "printer.lan." {
			m.Rcode = mdns.RcodeNameError
			break
		}
		switch q.Qtype {
		case mdns.TypeA:
			m.Answer = []mdns.RR{&mdns.A{Hdr: hdr(q.Name, mdns.TypeA, 30), A: net.IPv4(192, 0, 2, 1)}}
		case mdns.TypeTXT:
			m.Answer = []mdns.RR{&mdns.TXT{Hdr: hdr(q.Name, mdns.TypeTXT, 30), Txt: []string{u.name + " " + q.Name}}}
		}
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	_ = w.WriteMsg(m)
}

// count is how often name (any case) of type qtype was asked over transport.
func (u *upstream) count(name, qtype, transport string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.asked[strings.ToLower(name)+"/"+qtype+"/"+transport]
}

// writeResolvConf writes a resolv.conf into a test directory.
func writeResolvConf(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type testServer struct {
	*Server
	addr  string
	clock *fakeClock
}

// startServer runs a Server on a free port of 127.0.0.1 until the test
// ends (and checks that Serve then returns nil).
func startServer(t testing.TB, cfg Config, services []wire.Service) *testServer {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update("cluster.local", services); err != nil {
		t.Fatal(err)
	}
	return serveTest(t, s)
}

// serveTest runs s, on a fake clock, until the test ends (and checks that
// Serve then returns nil).
func serveTest(t testing.TB, s *Server) *testServer {
	t.Helper()
	clock := newFakeClock()
	s.now = clock.Now
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(failAfter + shutdownGrace):
			t.Error("Serve did not return after its context ended")
		}
	})
	return &testServer{Server: s, addr: s.Addr().String(), clock: clock}
}

// ask sends one query over network ("udp" or "tcp") and returns the answer.
func ask(t testing.TB, addr, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: failAfter}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return resp
}

// answers renders a reply's answer section without TTLs, for comparison.
func answers(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		out = append(out, rrString(rr))
	}
	return out
}

func rrString(rr mdns.RR) string {
	c := mdns.Copy(rr)
	c.Header().Ttl = 0
	return strings.ReplaceAll(c.String(), "\t", " ")
}

// testServices is a small cluster:
//
//	default/web   ClusterIP 10.43.0.10, ports http 8099/TCP -> 80, dns 53/UDP
//	default/db    headless, port pg 5432 -> 5432, endpoints db-0 (hostname),
//	              10.42.0.8 (no hostname), 10.42.0.9 not ready
//	default/empty headless, no ready endpoint
//	kube-system/bare ClusterIP 10.43.0.20, no ports
func testServices() []wire.Service {
	return []wire.Service{
		{
			Namespace: "default", Name: "web", Type: "ClusterIP", ClusterIP: "10.43.0.10",
			Ports: []wire.ServicePort{
				{Name: "http", Protocol: "TCP", Port: 8099, TargetPort: "80"},
				{Name: "dns", Protocol: "UDP", Port: 53, TargetPort: "5353"},
			},
			Endpoints: []wire.Endpoint{{IP: "10.42.0.5", Ready: true, Ports: map[string]int32{"http": 80, "dns": 5353}}},
		},
		{
			Namespace: "default", Name: "db", Type: "ClusterIP", ClusterIP: "None",
			Ports: []wire.ServicePort{{Name: "pg", Protocol: "TCP", Port: 5432, TargetPort: "postgres"}},
			Endpoints: []wire.Endpoint{
				{IP: "10.42.0.7", Hostname: "db-0", Name: "db-0", Ready: true, Ports: map[string]int32{"pg": 15432}},
				{IP: "10.42.0.8", Name: "db-x", Ready: true, Ports: map[string]int32{"pg": 15432}},
				{IP: "10.42.0.9", Name: "db-y", Ready: false, Ports: map[string]int32{"pg": 15432}},
			},
		},
		{
			Namespace: "default", Name: "empty", Type: "ClusterIP", ClusterIP: "None",
			Ports:     []wire.ServicePort{{Name: "x", Protocol: "TCP", Port: 1, TargetPort: "1"}},
			Endpoints: []wire.Endpoint{{IP: "10.42.0.11", Ready: false}},
		},
		{Namespace: "kube-system", Name: "bare", Type: "ClusterIP", ClusterIP: "10.43.0.20"},
	}
}

func manyServices(n, endpoints int) []wire.Service {
	out := make([]wire.Service, 0, n)
	for i := range n {
		s := wire.Service{
			Namespace: fmt.Sprintf("ns%d", i%20), Name: fmt.Sprintf("svc%d", i), Type: "ClusterIP",
			ClusterIP: fmt.Sprintf("10.43.%d.%d", i/250, i%250+1),
			Ports:     []wire.ServicePort{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: "8080"}},
		}
		for j := range endpoints {
			s.Endpoints = append(s.Endpoints, wire.Endpoint{
				IP: fmt.Sprintf("10.42.%d.%d", j, i%250+1), Node: "edge-1", Namespace: s.Namespace,
				Name: fmt.Sprintf("%s-%d", s.Name, j), PodUID: fmt.Sprintf("uid-%d-%d", i, j), Ready: true,
				Ports: map[string]int32{"http": 8080},
			})
		}
		out = append(out, s)
	}
	return out
}

func itoa(i int) string { return fmt.Sprint(i) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
