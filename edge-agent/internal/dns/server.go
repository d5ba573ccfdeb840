package dns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sync/singleflight"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Defaults of Config.
const (
	DefaultUpstreamTimeout = 2 * time.Second
	DefaultCacheSize       = 1024
	// shutdownGrace bounds how long Serve waits for queries in flight
	// when its context ends.
	shutdownGrace = 3 * time.Second
)

// TTL of cluster answers, as CoreDNS's kubernetes plugin gives them: short,
// because endpoints change; the SOA says the same for negative answers.
const (
	clusterTTL = 5
	// dnsSchemaVersion is the Kubernetes DNS schema the names follow,
	// served as TXT dns-version.ZONE.
	dnsSchemaVersion = "1.1.0"
)

// Config configures a Server.
type Config struct {
	// Addr is where to answer, on UDP and TCP: the node's bridge address
	// and port 53 ("10.42.0.1:53"). Port 0 picks a free one (tests).
	Addr string
	// ResolvConf is the node's resolv.conf, read for the upstream
	// resolvers of names outside the cluster ("/etc/resolv.conf"); ""
	// forwards nothing (SERVFAIL for those names).
	ResolvConf string
	// UpstreamPort is the port of the resolv.conf's nameservers: 53 but
	// in tests.
	UpstreamPort uint16
	// UpstreamTimeout bounds one upstream's answer (DefaultUpstreamTimeout);
	// a query gives up after two of them, before a client's own 5 s.
	UpstreamTimeout time.Duration
	// CacheSize is how many forwarded answers are kept (DefaultCacheSize);
	// negative keeps none.
	CacheSize int
	Logger    *slog.Logger
}

// Server answers DNS for the node's pods: cluster names from its table,
// the rest through the node's resolvers. It is safe for concurrent use.
type Server struct {
	addr  string
	log   *slog.Logger
	now   func() time.Time
	table atomic.Pointer[table]
	fwd   *forwarder
	cache *cache
	// budget bounds a forwarded query from start to SERVFAIL.
	budget time.Duration
	flight singleflight.Group

	mu       sync.Mutex
	pc       net.PacketConn
	ln       net.Listener
	self     netip.AddrPort  // where pc and ln are bound
	serveCtx context.Context // ends forwards in flight when Serve stops
}

// New returns a Server for cfg, answering for an empty cluster.local until
// Update gives it Services. It binds nothing yet.
func New(cfg Config) (*Server, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("dns server address %q: %w", cfg.Addr, err)
	}
	if cfg.UpstreamPort == 0 {
		cfg.UpstreamPort = 53
	}
	if cfg.UpstreamTimeout <= 0 {
		cfg.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "dns")
	s := &Server{
		addr:   cfg.Addr,
		log:    log,
		now:    time.Now,
		cache:  newCache(cfg.CacheSize),
		budget: 2 * cfg.UpstreamTimeout,
	}
	s.fwd = newForwarder(cfg.ResolvConf, cfg.UpstreamPort, cfg.UpstreamTimeout, log, func() time.Time { return s.now() })
	t, err := buildTable("", nil, 0)
	if err != nil {
		return nil, err
	}
	s.table.Store(t)
	return s, nil
}

// Update replaces the cluster's names with domain's and services' (the
// snapshot's Network.ClusterDomain and Services; "" is cluster.local), in
// one step: a query sees the old table or the new one. Services or
// endpoints it cannot use are left out and named in the error; the rest
// are served. A bad domain changes nothing.
func (s *Server) Update(domain string, services []wire.Service) error {
	t, err := buildTable(domain, services, uint32(s.now().Unix()))
	if t == nil {
		return fmt.Errorf("dns update: %w", err)
	}
	s.table.Store(t)
	if err != nil {
		return fmt.Errorf("dns update: %w", err)
	}
	return nil
}

// Listen binds the server's UDP and TCP sockets (the same port for both),
// so that queries sent once it returns are answered once Serve runs.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pc != nil {
		return nil
	}
	host, port, _ := net.SplitHostPort(s.addr)
	// With port 0, the free UDP port may be taken on TCP: try again.
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", s.addr)
		if err != nil {
			return fmt.Errorf("dns listen udp %s: %w", s.addr, err)
		}
		udpAddr := pc.LocalAddr().(*net.UDPAddr)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(udpAddr.Port)))
		if err != nil {
			pc.Close()
			if port == "0" && attempt < 10 {
				continue
			}
			return fmt.Errorf("dns listen tcp %s: %w", s.addr, err)
		}
		s.pc, s.ln = pc, ln
		self := udpAddr.AddrPort()
		s.self = netip.AddrPortFrom(self.Addr().Unmap(), self.Port())
		s.fwd.setSelf(s.self)
		return nil
	}
}

// Addr is the address the server answers on, once Listen has returned.
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self
}

// Serve answers queries, on UDP and TCP, until ctx ends; then it stops
// both, lets queries in flight finish (a few seconds at most), closes the
// sockets and returns nil. It binds first if Listen was not called.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.serveCtx = ctx
	pc, ln := s.pc, s.ln
	s.mu.Unlock()

	servers := []*mdns.Server{
		{PacketConn: pc, Handler: s},
		{Listener: ln, Handler: s, ReadTimeout: 2 * time.Second},
	}
	started := make(chan struct{}, len(servers))
	failed := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, srv := range servers {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		wg.Add(1)
		go func() {
			defer wg.Done()
			// nil once shut down.
			if err := srv.ActivateAndServe(); err != nil {
				failed <- err
			}
		}()
	}
	// ShutdownContext refuses a server that has not started yet: wait
	// for both (or a failure) before anything can stop them.
	var err error
	for running := 0; running < len(servers) && err == nil; {
		select {
		case <-started:
			running++
		case err = <-failed:
		}
	}
	if err == nil {
		s.log.Info("serving cluster DNS", "addr", pc.LocalAddr().String())
		select {
		case <-ctx.Done():
		case err = <-failed:
		}
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.Background(), shutdownGrace)
	defer stop()
	for _, srv := range servers {
		_ = srv.ShutdownContext(shutdownCtx) // "not started" for one that failed
	}
	wg.Wait()
	pc.Close()
	ln.Close()
	s.mu.Lock()
	s.pc, s.ln = nil, nil
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("dns serve %s: %w", s.addr, err)
	}
	return nil
}

// ServeDNS answers one query: mdns.Handler.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	resp := s.answer(req, isTCP(w))
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("write answer", "client", w.RemoteAddr().String(), "err", err)
	}
}

func isTCP(w mdns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// answer is the reply to req, sized for its transport.
func (s *Server) answer(req *mdns.Msg, tcp bool) *mdns.Msg {
	if req.Opcode != mdns.OpcodeQuery {
		return reply(req, mdns.RcodeNotImplemented)
	}
	if len(req.Question) != 1 {
		return reply(req, mdns.RcodeFormatError)
	}
	q := req.Question[0]
	name := strings.ToLower(mdns.Fqdn(q.Name))
	t := s.table.Load()
	var resp *mdns.Msg
	switch {
	case mdns.IsSubDomain(t.zone, name):
		if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
			resp = reply(req, mdns.RcodeRefused)
		} else {
			resp = s.cluster(t, req, q, name)
		}
	case q.Qtype == mdns.TypePTR && len(t.ptr(name)) > 0:
		resp = reply(req, mdns.RcodeSuccess)
		resp.Authoritative = true
		for _, target := range t.ptr(name) {
			resp.Answer = append(resp.Answer, &mdns.PTR{Hdr: hdr(q.Name, mdns.TypePTR, clusterTTL), Ptr: target})
		}
	default:
		resp = s.forward(req, q, name)
	}
	return fit(resp, req, tcp)
}

// ptr is the cluster's names of a reverse-lookup name's address.
func (t *table) ptr(name string) []string {
	a, ok := reverseAddr(name)
	if !ok {
		return nil
	}
	return t.reverse[a]
}

// cluster answers a name under the cluster domain; it is never forwarded.
func (s *Server) cluster(t *table, req *mdns.Msg, q mdns.Question, name string) *mdns.Msg {
	m := reply(req, mdns.RcodeSuccess)
	m.Authoritative = true
	switch {
	case name == t.zone:
		switch q.Qtype {
		case mdns.TypeSOA:
			m.Answer = append(m.Answer, t.soa())
		case mdns.TypeNS:
			m.Answer = append(m.Answer, &mdns.NS{Hdr: hdr(q.Name, mdns.TypeNS, clusterTTL), Ns: "ns.dns." + t.zone})
			if rr := s.selfRecord("ns.dns."+t.zone, mdns.TypeA); rr != nil {
				m.Extra = append(m.Extra, rr)
			}
		}
	case name == "dns-version."+t.zone && q.Qtype == mdns.TypeTXT:
		m.Answer = append(m.Answer, &mdns.TXT{Hdr: hdr(q.Name, mdns.TypeTXT, 28800), Txt: []string{dnsSchemaVersion}})
	case name == "ns.dns."+t.zone:
		if rr := s.selfRecord(q.Name, q.Qtype); rr != nil {
			m.Answer = append(m.Answer, rr)
		}
	default:
		records, exists := t.lookup(name)
		if !exists {
			m.Rcode = mdns.RcodeNameError
			break
		}
		switch q.Qtype {
		case mdns.TypeA, mdns.TypeAAAA:
			m.Answer = addressRecords(q.Name, q.Qtype, records)
		case mdns.TypeSRV:
			m.Answer, m.Extra = srvRecords(q.Name, records)
		}
	}
	if len(m.Answer) == 0 {
		// NXDOMAIN or NODATA: the zone's SOA says for how long.
		m.Ns = append(m.Ns, t.soa())
	}
	return m
}

func (t *table) soa() *mdns.SOA {
	return &mdns.SOA{
		Hdr:     hdr(t.zone, mdns.TypeSOA, clusterTTL),
		Ns:      "ns.dns." + t.zone,
		Mbox:    "hostmaster." + t.zone,
		Serial:  t.serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  clusterTTL,
	}
}

// selfRecord is the server's own address as a record of name, if it is of
// type qtype.
func (s *Server) selfRecord(name string, qtype uint16) mdns.RR {
	a := s.Addr().Addr()
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return nil
	case a.Is4() && qtype == mdns.TypeA:
		return &mdns.A{Hdr: hdr(name, mdns.TypeA, clusterTTL), A: a.AsSlice()}
	case a.Is6() && qtype == mdns.TypeAAAA:
		return &mdns.AAAA{Hdr: hdr(name, mdns.TypeAAAA, clusterTTL), AAAA: a.AsSlice()}
	}
	return nil
}

// addressRecords are the A (or AAAA) records of name for records, each
// address once.
func addressRecords(name string, qtype uint16, records []record) []mdns.RR {
	var out []mdns.RR
	seen := map[netip.Addr]bool{}
	for _, r := range records {
		if seen[r.addr] {
			continue
		}
		if rr := addressRecord(name, qtype, r.addr); rr != nil {
			seen[r.addr] = true
			out = append(out, rr)
		}
	}
	return out
}

func addressRecord(name string, qtype uint16, a netip.Addr) mdns.RR {
	switch {
	case a.Is4() && qtype == mdns.TypeA:
		return &mdns.A{Hdr: hdr(name, mdns.TypeA, clusterTTL), A: a.AsSlice()}
	case a.Is6() && qtype == mdns.TypeAAAA:
		return &mdns.AAAA{Hdr: hdr(name, mdns.TypeAAAA, clusterTTL), AAAA: a.AsSlice()}
	}
	return nil
}

// srvRecords are the SRV records of name for records (those with a port),
// with their targets' addresses as extra records, weighted evenly as
// CoreDNS does (100 shared out, each at least 1).
func srvRecords(name string, records []record) (answer, extra []mdns.RR) {
	n := 0
	for _, r := range records {
		if r.port >= 0 {
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	weight := uint16(max(1, 100/n))
	type srvKey struct {
		target string
		port   int32
	}
	type addrKey struct {
		target string
		addr   netip.Addr
	}
	seenSRV, seenAddr := map[srvKey]bool{}, map[addrKey]bool{}
	for _, r := range records {
		if r.port < 0 {
			continue
		}
		if k := (srvKey{r.target, r.port}); !seenSRV[k] {
			seenSRV[k] = true
			answer = append(answer, &mdns.SRV{
				Hdr: hdr(name, mdns.TypeSRV, clusterTTL), Priority: 0, Weight: weight, Port: uint16(r.port), Target: r.target,
			})
		}
		if k := (addrKey{r.target, r.addr}); !seenAddr[k] {
			seenAddr[k] = true
			qtype := mdns.TypeA
			if !r.addr.Is4() {
				qtype = mdns.TypeAAAA
			}
			extra = append(extra, addressRecord(r.target, qtype, r.addr))
		}
	}
	return answer, extra
}

// forward answers a name outside the cluster from the cache or the
// upstreams; SERVFAIL if none answers in time.
func (s *Server) forward(req *mdns.Msg, q mdns.Question, name string) *mdns.Msg {
	key := cacheKey{name: name, qtype: q.Qtype, class: q.Qclass, cd: req.CheckingDisabled}
	if opt := req.IsEdns0(); opt != nil {
		key.do = opt.Do()
	}
	if m := s.cache.get(key, s.now()); m != nil {
		return fromUpstream(m, req)
	}
	flightKey := name + "/" + strconv.Itoa(int(q.Qtype)) + "/" + strconv.Itoa(int(q.Qclass)) + "/" + strconv.FormatBool(key.do) + strconv.FormatBool(key.cd)
	v, err, _ := s.flight.Do(flightKey, func() (any, error) {
		s.mu.Lock()
		ctx := s.serveCtx
		s.mu.Unlock()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, s.budget)
		defer cancel()
		up := new(mdns.Msg)
		up.Id = mdns.Id()
		up.RecursionDesired = req.RecursionDesired
		up.CheckingDisabled = req.CheckingDisabled
		up.Question = []mdns.Question{q}
		up.SetEdns0(upstreamUDPSize, key.do)
		m, err := s.fwd.exchange(ctx, up)
		if err != nil {
			return nil, err
		}
		stripOPT(m)
		s.cache.put(key, m, s.now())
		return m, nil
	})
	if err != nil {
		s.log.Debug("forward failed", "name", q.Name, "type", mdns.TypeToString[q.Qtype], "err", err)
		return reply(req, mdns.RcodeServerFailure)
	}
	// Shared with the cache and other waiters: answer with a copy.
	return fromUpstream(v.(*mdns.Msg).Copy(), req)
}

// fromUpstream makes an upstream's answer m (a copy, free to change) the
// reply to req.
func fromUpstream(m *mdns.Msg, req *mdns.Msg) *mdns.Msg {
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	m.RecursionDesired = req.RecursionDesired
	m.RecursionAvailable = true
	m.Authoritative = false
	m.Question = req.Question
	// The cached records are named as the first asker spelled the name:
	// spell them as this one does.
	if len(req.Question) == 1 {
		for _, rr := range m.Answer {
			if h := rr.Header(); h.Name != req.Question[0].Name && strings.EqualFold(h.Name, req.Question[0].Name) {
				h.Name = req.Question[0].Name
			}
		}
	}
	return m
}

func stripOPT(m *mdns.Msg) {
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != mdns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
}

// fit gives m the EDNS record req asked for (RFC 6891) and, over UDP, cuts
// it to the client's buffer with TC set, so that it asks again over TCP.
func fit(m, req *mdns.Msg, tcp bool) *mdns.Msg {
	size := mdns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), mdns.MinMsgSize), 4096)
		m.SetEdns0(uint16(size), opt.Do())
	}
	if tcp {
		size = mdns.MaxMsgSize
	}
	m.Truncate(size)
	m.Compress = true
	return m
}

func reply(req *mdns.Msg, rcode int) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetRcode(req, rcode)
	m.RecursionAvailable = true
	return m
}

func hdr(name string, rrtype uint16, ttl uint32) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: ttl}
}
