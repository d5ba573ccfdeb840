package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// The forwarding half: names outside the cluster domain go to the node's
// own resolvers, read from its resolv.conf (and read again when that file
// changes, as DHCP rewrites it).

// reloadEvery is how often, at most, the resolv.conf is looked at for a
// change.
const reloadEvery = 2 * time.Second

// upstreamUDPSize is the EDNS buffer size the forwarder offers upstream:
// the size DNS Flag Day 2020 settled on, below common path MTUs.
const upstreamUDPSize = 1232

var errNoUpstream = errors.New("no upstream resolver")

type forwarder struct {
	path    string        // the resolv.conf; "" for none
	port    uint16        // the upstreams' port (53)
	timeout time.Duration // per upstream attempt
	log     *slog.Logger
	now     func() time.Time
	udp     *mdns.Client
	tcp     *mdns.Client

	mu        sync.Mutex
	self      netip.AddrPort // the server's own address, never an upstream
	upstreams []string       // host:port
	checked   time.Time
	stamp     fileStamp
	preferred int // the upstream that answered last, tried first
}

type fileStamp struct {
	mod  time.Time
	size int64
	ok   bool
}

func newForwarder(path string, port uint16, timeout time.Duration, log *slog.Logger, now func() time.Time) *forwarder {
	return &forwarder{
		path: path, port: port, timeout: timeout, log: log, now: now,
		udp: &mdns.Client{Net: "udp", Timeout: timeout, UDPSize: upstreamUDPSize},
		tcp: &mdns.Client{Net: "tcp", Timeout: timeout},
	}
}

// setSelf tells the forwarder the server's own address, never an upstream.
func (f *forwarder) setSelf(self netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.self = self
	f.upstreams, f.checked = nil, time.Time{} // list again without it
}

// list returns the upstreams, reading the resolv.conf again if it changed.
func (f *forwarder) list() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.path == "" {
		return nil, 0
	}
	now := f.now()
	if !f.checked.IsZero() && !now.Before(f.checked) && now.Sub(f.checked) < reloadEvery {
		return f.upstreams, f.preferred
	}
	f.checked = now
	var stamp fileStamp
	if fi, err := os.Stat(f.path); err == nil {
		stamp = fileStamp{mod: fi.ModTime(), size: fi.Size(), ok: true}
	}
	if stamp == f.stamp && f.upstreams != nil {
		return f.upstreams, f.preferred
	}
	f.stamp = stamp
	conf, err := ReadResolvConf(f.path)
	if err != nil && len(conf.Nameservers) == 0 {
		f.log.Warn("no upstream resolvers: cluster names only", "resolvConf", f.path, "err", err)
		f.upstreams, f.preferred = []string{}, 0
		return f.upstreams, 0
	}
	ups := upstreamsOf(conf, f.port, f.self)
	if !slices.Equal(ups, f.upstreams) {
		f.log.Info("upstream resolvers", "resolvConf", f.path, "upstreams", ups)
		f.upstreams, f.preferred = ups, 0
	}
	return f.upstreams, f.preferred
}

// upstreamsOf lists the nameservers of conf that the server may forward to:
// addresses only, at port, without the server's own address (a loop).
// Loopback resolvers stay: the server runs in the node's namespace, where
// systemd-resolved's 127.0.0.53 answers.
func upstreamsOf(conf ResolvConf, port uint16, self netip.AddrPort) []string {
	ups := []string{}
	for _, ns := range conf.Nameservers {
		a, err := netip.ParseAddr(ns)
		if err != nil {
			continue
		}
		ap := netip.AddrPortFrom(a.Unmap(), port)
		if ap == self || self.Addr().IsUnspecified() && port == self.Port() && a.IsLoopback() {
			continue
		}
		if s := ap.String(); !slices.Contains(ups, s) {
			ups = append(ups, s)
		}
	}
	return ups
}

// exchange asks the upstreams for q, the one that answered last first,
// each for one timeout at most: over UDP, again over TCP if the answer
// was truncated. A SERVFAIL or REFUSED from one sends the question on to
// the next. The error says why none answered.
func (f *forwarder) exchange(ctx context.Context, q *mdns.Msg) (*mdns.Msg, error) {
	ups, first := f.list()
	if len(ups) == 0 {
		return nil, errNoUpstream
	}
	var errs []error
	for i := range ups {
		n := (first + i) % len(ups)
		resp, err := f.ask(ctx, q, ups[n])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ups[n], err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		f.mu.Lock()
		if slices.Equal(f.upstreams, ups) {
			f.preferred = n
		}
		f.mu.Unlock()
		return resp, nil
	}
	return nil, errors.Join(errs...)
}

func (f *forwarder) ask(ctx context.Context, q *mdns.Msg, addr string) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	resp, _, err := f.udp.ExchangeContext(ctx, q, addr)
	if err == nil && resp.Truncated {
		resp, _, err = f.tcp.ExchangeContext(ctx, q, addr)
	}
	if err != nil {
		return nil, err
	}
	if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
		return nil, fmt.Errorf("answered %s", mdns.RcodeToString[resp.Rcode])
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, q.Question[0].Name) ||
		resp.Question[0].Qtype != q.Question[0].Qtype || resp.Question[0].Qclass != q.Question[0].Qclass {
		return nil, fmt.Errorf("answered another question: %v", resp.Question)
	}
	return resp, nil
}
