package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/services"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Defaults of Config.
const (
	DefaultDebounce = 20 * time.Millisecond
	DefaultResync   = 30 * time.Second
	// ShutdownTimeout is how long stopping waits for requests in flight.
	ShutdownTimeout = 5 * time.Second
)

// Event reasons of the node events the server reports.
const (
	ReasonListenFailed = "IngressListenFailed" // a port could not be opened
	ReasonNotServed    = "IngressNotServed"    // part of an Ingress the node cannot serve (a certificate that does not load)
	ReasonServed       = "IngressServed"       // all is well again
)

// Config configures a Server.
type Config struct {
	// NodeName is this node's name: endpoints on it are its own.
	NodeName string
	// HTTPAddr and HTTPSAddr are where the node serves its Ingresses
	// (":80", ":443"); "" serves none on that protocol. They are opened
	// only while the node serves an Ingress (HTTPS: one with a
	// certificate), so a node no class selects opens no port.
	HTTPAddr, HTTPSAddr string
	// Snapshot reads the newest snapshot, with the Secrets the agent holds
	// in memory.
	Snapshot func() (wire.Snapshot, error)
	// Event reports a problem (or its end) as a node event.
	Event    func(typ api.EventType, reason, message string)
	Timeouts Timeouts
	// Debounce is how long a change waits for the next before the
	// configuration is built again (DefaultDebounce); Resync how often it
	// is built anyway (DefaultResync).
	Debounce, Resync time.Duration
	Logger           *slog.Logger
}

// Server serves the node's Ingresses: whenever the snapshot or the node's
// own pods change (a little later, to take changes that come together in
// one go) it builds the routing table and the backends' endpoints (the
// node's merged view of its Services, services.Merge: a local pod's
// readiness counts at once, hub or no hub) and swaps them into its Proxy,
// and keeps its listeners open while it serves anything. It runs in Run;
// the other methods may be called from any goroutine.
type Server struct {
	cfg   Config
	log   *slog.Logger
	proxy *Proxy

	mu     sync.Mutex
	report *wire.PodStatusReport
	gen    uint64        // generation of the inputs
	done   uint64        // generation the last pass started from
	passed chan struct{} // closed (and replaced) when a pass ends
	wake   chan struct{}
	addrs  [2]net.Addr // what the HTTP and HTTPS listeners are bound to
}

// New returns a Server for cfg; Run runs it.
func New(cfg Config) (*Server, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("ingress: node name is empty")
	}
	if cfg.Snapshot == nil {
		return nil, errors.New("ingress: no snapshot source")
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Resync <= 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Event == nil {
		cfg.Event = func(api.EventType, string, string) {}
	}
	log := cfg.Logger.With("component", "ingress")
	return &Server{
		cfg: cfg, log: log, proxy: NewProxy(cfg.Timeouts, log),
		passed: make(chan struct{}), wake: make(chan struct{}, 1),
	}, nil
}

// Proxy is the server's handler.
func (s *Server) Proxy() *Proxy { return s.proxy }

// Changed says the snapshot (or the Secrets) changed; it returns the
// generation of the inputs that includes the change, for Programmed.
func (s *Server) Changed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bump()
}

// SetReport hands over the reconciler's newest pod status report; it
// returns the generation of the inputs that includes it.
func (s *Server) SetReport(r wire.PodStatusReport) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report = &r
	return s.bump()
}

func (s *Server) bump() uint64 {
	s.gen++
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return s.gen
}

// Programmed waits until a pass that saw the inputs of generation gen (or
// newer) has ended, or ctx ends.
func (s *Server) Programmed(ctx context.Context, gen uint64) error {
	for {
		s.mu.Lock()
		done, passed := s.done, s.passed
		s.mu.Unlock()
		if done >= gen {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-passed:
		}
	}
}

// Addrs are the addresses the HTTP and HTTPS listeners are bound to (nil
// while one is closed).
func (s *Server) Addrs() (httpAddr, httpsAddr net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[0], s.addrs[1]
}

// listener is one open port and the server on it; done is closed when
// the server has stopped, err then says why (nil: it was shut down).
type listener struct {
	srv  *http.Server
	done chan struct{}
	err  error
	// cancel ends the context of its requests, which ends the upgraded
	// ones (WebSocket) that shutting the server down leaves running;
	// active counts its handlers, so that stop can wait for them.
	cancel context.CancelFunc
	active sync.WaitGroup
}

// run is what one Run keeps between passes.
type run struct {
	http, https *listener
	// died is signalled when a listener stops on its own.
	died chan struct{}
	// problems are those the last pass reported, so each is reported
	// once while it lasts; lost are listeners' deaths seen between
	// passes, which the next pass reports.
	problems map[string]bool
	lost     []string
	retry    bool
	attempt  int
	serving  string // a summary of what was last served, for the log
}

// Run serves until ctx ends; then it stops its listeners, waiting up to
// ShutdownTimeout for the requests in flight.
func (s *Server) Run(ctx context.Context) error {
	r := &run{problems: map[string]bool{}, died: make(chan struct{}, 1)}
	defer s.stopAll(r)
	resync := time.NewTicker(s.cfg.Resync)
	defer resync.Stop()
	var retry <-chan time.Time
	for first := true; ; first = false {
		if !first {
			select {
			case <-ctx.Done():
				return nil
			case <-s.wake:
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(s.cfg.Debounce):
				}
			case <-resync.C:
			case <-retry:
			case <-r.died:
				s.reap(r)
			}
		}
		select {
		case <-s.wake: // taken by this pass
		default:
		}
		s.mu.Lock()
		gen := s.gen
		s.mu.Unlock()
		now := map[string]bool{}
		r.retry = false
		s.pass(r, now)
		s.reportProblems(r, now)
		s.mu.Lock()
		s.done = gen
		close(s.passed)
		s.passed = make(chan struct{})
		s.mu.Unlock()
		retry = nil
		if r.retry {
			r.attempt++
			retry = time.After(link.Backoff(r.attempt, 250*time.Millisecond, 30*time.Second))
		} else {
			r.attempt = 0
		}
	}
}

// reap forgets the listeners that stopped on their own, for the next
// pass to open again, and keeps why for it to report.
func (s *Server) reap(r *run) {
	for i, l := range []**listener{&r.http, &r.https} {
		if *l == nil {
			continue
		}
		select {
		case <-(*l).done:
			r.lost = append(r.lost, fmt.Sprintf("the Ingress port %s stopped serving: %v", (*l).srv.Addr, (*l).err))
			(*l).cancel()
			_ = (*l).srv.Close()
			(*l).active.Wait()
			*l = nil
			s.mu.Lock()
			s.addrs[i] = nil
			s.mu.Unlock()
		default:
		}
	}
}

// pass builds the table and endpoints from the newest snapshot and
// report, swaps them in and opens or closes the listeners.
func (s *Server) pass(r *run, problems map[string]bool) {
	for _, msg := range r.lost {
		s.note(problems, ReasonListenFailed, msg)
	}
	r.lost = nil
	snap, err := s.cfg.Snapshot()
	if err != nil {
		s.note(problems, ReasonNotServed, fmt.Sprintf("read the desired snapshot: %v", err))
		r.retry = true
		return
	}
	if len(snap.Ingresses) == 0 {
		s.proxy.Swap(&Table{}, nil)
		s.stopAll(r)
		if r.serving != "" {
			s.log.Info("no Ingress to serve; ports closed")
			r.serving = ""
		}
		return
	}
	table, err := Build(snap.Ingresses, snap.Secrets)
	for _, leaf := range leaves(err) {
		s.note(problems, ReasonNotServed, oneLine(leaf.Error()))
	}
	s.mu.Lock()
	report := s.report
	s.mu.Unlock()
	eps := BuildEndpoints(table.Backends(), services.Merge(s.cfg.NodeName, &snap, report))
	s.proxy.Swap(table, eps)

	s.listen(r, 0, s.cfg.HTTPAddr, false, problems)
	if table.HasCertificates() {
		s.listen(r, 1, s.cfg.HTTPSAddr, true, problems)
	} else if r.https != nil {
		s.stop(r, 1)
	}
	summary := fmt.Sprintf("%d Ingresses, %d backends", len(snap.Ingresses), len(table.Backends()))
	if summary != r.serving {
		ready := 0
		for _, b := range table.Backends() {
			if eps.Ready(b.Key) > 0 {
				ready++
			}
		}
		s.log.Info("serving Ingresses", "ingresses", len(snap.Ingresses), "backends", len(table.Backends()), "backendsWithEndpoints", ready, "revision", snap.Revision)
		r.serving = summary
	}
}

// listen opens listener i (0: HTTP, 1: HTTPS) on addr if it is not open.
func (s *Server) listen(r *run, i int, addr string, useTLS bool, problems map[string]bool) {
	l := &r.http
	if i == 1 {
		l = &r.https
	}
	if addr == "" || *l != nil {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.note(problems, ReasonListenFailed, fmt.Sprintf("open the Ingress port %s: %v", addr, err))
		r.retry = true
		return
	}
	lst := &listener{done: make(chan struct{})}
	base, cancel := context.WithCancel(context.Background())
	lst.cancel = cancel
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			lst.active.Add(1)
			defer lst.active.Done()
			s.proxy.ServeHTTP(w, req)
		}),
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: s.proxy.timeouts.ReadHeader,
		IdleTimeout:       s.proxy.timeouts.Idle,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	if useTLS {
		srv.Protocols.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{GetCertificate: s.proxy.certificate, MinVersion: tls.VersionTLS12}
	} else {
		// HTTP/2 without TLS, with prior knowledge (gRPC clients).
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	srv.Addr = ln.Addr().String()
	lst.srv = srv
	// Joined by stop, which Run's end calls.
	go func() {
		var err error
		if useTLS {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		lst.err = err
		close(lst.done)
		if err != nil {
			select {
			case r.died <- struct{}{}:
			default:
			}
		}
	}()
	*l = lst
	s.mu.Lock()
	s.addrs[i] = ln.Addr()
	s.mu.Unlock()
	s.log.Info("Ingress port open", "addr", ln.Addr().String(), "tls", useTLS)
}

// stop closes listener i, waiting for its requests in flight.
func (s *Server) stop(r *run, i int) {
	l := &r.http
	if i == 1 {
		l = &r.https
	}
	if *l == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	// Requests in flight finish, for up to ShutdownTimeout; then what is
	// left (upgraded connections, long streams) is cut.
	_ = (*l).srv.Shutdown(ctx)
	(*l).cancel()
	_ = (*l).srv.Close()
	<-(*l).done
	(*l).active.Wait()
	*l = nil
	s.mu.Lock()
	s.addrs[i] = nil
	s.mu.Unlock()
}

func (s *Server) stopAll(r *run) {
	s.stop(r, 0)
	s.stop(r, 1)
	s.proxy.CloseIdle()
}

// note records a problem of this pass.
func (s *Server) note(problems map[string]bool, reason, message string) {
	problems[reason+"\x00"+message] = true
}

// reportProblems reports the problems of a pass that the last did not
// have, and says so once all are gone.
func (s *Server) reportProblems(r *run, now map[string]bool) {
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if r.problems[k] {
			continue
		}
		reason, message, _ := strings.Cut(k, "\x00")
		s.log.Warn(message, "reason", reason)
		s.cfg.Event(api.EventWarning, reason, message)
	}
	if len(now) == 0 && len(r.problems) > 0 {
		s.log.Info("Ingresses served again")
		s.cfg.Event(api.EventNormal, ReasonServed, "the node's Ingresses are served again")
	}
	r.problems = now
}

// leaves are the errors err joins.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }
