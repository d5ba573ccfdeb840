package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts bound the proxy's waits. Zero values take the defaults.
type Timeouts struct {
	// Dial bounds a connection to an endpoint (DefaultDialTimeout).
	Dial time.Duration
	// ResponseHeader bounds the wait for an endpoint's response headers
	// once the request is sent (DefaultResponseHeaderTimeout); a body
	// then streams for as long as it takes.
	ResponseHeader time.Duration
	// ReadHeader bounds a client's request headers
	// (DefaultReadHeaderTimeout).
	ReadHeader time.Duration
	// Idle is how long a kept-alive connection, the client's or an
	// endpoint's, may wait for its next request (DefaultIdleTimeout).
	Idle time.Duration
}

// Defaults of Timeouts, those of ingress-nginx where it has them.
const (
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultReadHeaderTimeout     = 10 * time.Second
	DefaultIdleTimeout           = 90 * time.Second
)

func (t Timeouts) withDefaults() Timeouts {
	if t.Dial <= 0 {
		t.Dial = DefaultDialTimeout
	}
	if t.ResponseHeader <= 0 {
		t.ResponseHeader = DefaultResponseHeaderTimeout
	}
	if t.ReadHeader <= 0 {
		t.ReadHeader = DefaultReadHeaderTimeout
	}
	if t.Idle <= 0 {
		t.Idle = DefaultIdleTimeout
	}
	return t
}

// maxTries is how many endpoints a request whose connection fails is
// tried on, one after another.
const maxTries = 3

// Proxy serves requests by its table: it routes each by host and path and
// hands it to the standard library's reverse proxy, which sends it to one
// of the backend's ready endpoints over a pool of kept-alive connections
// (HTTP/1.1, or HTTP/2 without TLS for an h2c backend), passes upgrades
// (WebSocket) through, and sets X-Forwarded-For, -Host and -Proto (the
// client's own are not trusted: they are replaced). A request that matches
// nothing is answered 404, one whose backend has no ready endpoint (or
// does not exist) 503, both with a short body; a connection to an endpoint
// that fails before anything is sent is tried on the next endpoint, for a
// request without a body. Swap replaces the table and endpoints at once:
// requests in flight finish on what they started with.
type Proxy struct {
	table     atomic.Pointer[Table]
	endpoints atomic.Pointer[Endpoints]
	http1     *httputil.ReverseProxy
	h2c       *httputil.ReverseProxy
	// transports are closed (their idle connections) when endpoints go.
	transports []*http.Transport
	log        *slog.Logger
	timeouts   Timeouts
}

// NewProxy returns a proxy with an empty table (every request is 404).
func NewProxy(timeouts Timeouts, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.Default()
	}
	timeouts = timeouts.withDefaults()
	p := &Proxy{log: log, timeouts: timeouts}
	dialer := &net.Dialer{Timeout: timeouts.Dial, KeepAlive: 30 * time.Second}
	newTransport := func(h2c bool) *http.Transport {
		tr := &http.Transport{
			Proxy:                 nil, // never the environment's proxy
			DialContext:           dialer.DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       timeouts.Idle,
			ResponseHeaderTimeout: timeouts.ResponseHeader,
			ExpectContinueTimeout: time.Second,
			// Pass the client's Accept-Encoding through; never add one.
			DisableCompression: true,
		}
		if h2c {
			var protos http.Protocols
			protos.SetUnencryptedHTTP2(true)
			tr.Protocols = &protos
		}
		p.transports = append(p.transports, tr)
		return tr
	}
	pool := &bufferPool{}
	newReverseProxy := func(tr *http.Transport) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{
			Rewrite:      rewrite,
			Transport:    &balancer{next: tr},
			BufferPool:   pool,
			ErrorHandler: p.proxyError,
			ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
	}
	p.http1 = newReverseProxy(newTransport(false))
	p.h2c = newReverseProxy(newTransport(true))
	p.table.Store(&Table{})
	return p
}

// Swap makes t and e the table and endpoints of the requests that come
// next.
func (p *Proxy) Swap(t *Table, e *Endpoints) {
	p.table.Store(t)
	p.endpoints.Store(e)
}

// SwapEndpoints replaces the endpoints only.
func (p *Proxy) SwapEndpoints(e *Endpoints) { p.endpoints.Store(e) }

// Table is the table requests are routed by now.
func (p *Proxy) Table() *Table { return p.table.Load() }

// CloseIdle closes the kept-alive connections to endpoints that wait
// for a request (endpoints that went away keep none open).
func (p *Proxy) CloseIdle() {
	for _, tr := range p.transports {
		tr.CloseIdleConnections()
	}
}

// certificate is the TLS listener's certificate for a client hello.
func (p *Proxy) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.table.Load().Certificate(hello)
}

// targetKey carries a request's target in its context.
type targetKey struct{}

// target is where a request goes: the backend's ready endpoints, the
// first to try.
type target struct {
	addrs []string
	first int
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := p.table.Load().Match(r.Host, r.URL.Path)
	if route == nil {
		plain(w, http.StatusNotFound, "404 not found: no Ingress rule matches this request\n")
		return
	}
	b := route.Backend
	if b.Missing != "" {
		plain(w, http.StatusServiceUnavailable, "503 service unavailable: the backend does not exist\n")
		return
	}
	addrs, first := p.endpoints.Load().pick(b.Key)
	if len(addrs) == 0 {
		plain(w, http.StatusServiceUnavailable, "503 service unavailable: no ready endpoint\n")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), targetKey{}, &target{addrs: addrs, first: first}))
	if b.H2C {
		p.h2c.ServeHTTP(w, r)
		return
	}
	p.http1.ServeHTTP(w, r)
}

// rewrite makes the request to the endpoint: its first target (the
// balancer may try others), the client's Host header kept, X-Forwarded-*
// set anew.
func rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(*target)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = t.addrs[t.first]
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
}

// plain answers with a short text body.
func plain(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

// proxyError answers a request the endpoints failed: 504 when an endpoint
// did not answer in time, 502 otherwise (nothing is written for a client
// that went away).
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client is gone
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		p.log.Debug("endpoint timed out", "host", r.Host, "path", r.URL.Path, "err", err)
		plain(w, http.StatusGatewayTimeout, "504 gateway timeout\n")
		return
	}
	p.log.Debug("endpoint failed", "host", r.Host, "path", r.URL.Path, "err", err)
	plain(w, http.StatusBadGateway, "502 bad gateway\n")
}

// balancer sends a request to its target's endpoints: the first, and,
// when the connection to it fails before anything was sent (refused, no
// route: an endpoint that just went away) and the request has no body to
// send again, the next ones.
type balancer struct {
	next http.RoundTripper
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	t, _ := req.Context().Value(targetKey{}).(*target)
	if t == nil {
		return b.next.RoundTrip(req)
	}
	tries := min(len(t.addrs), maxTries)
	var err error
	for i := range tries {
		out := req
		if i > 0 {
			o := *req
			u := *req.URL
			u.Host = t.addrs[(t.first+i)%len(t.addrs)]
			o.URL = &u
			out = &o
		}
		var resp *http.Response
		resp, err = b.next.RoundTrip(out)
		if err == nil || !retriable(req, err) {
			return resp, err
		}
	}
	return nil, err
}

// retriable reports whether a failed request may go to another endpoint:
// its connection failed before it was sent, and it has no body.
func retriable(req *http.Request, err error) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	if req.Context().Err() != nil {
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// bufferPool lends the reverse proxy its copy buffers.
type bufferPool struct{ p sync.Pool }

const bufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, bufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == bufferSize {
		buf = buf[:bufferSize]
		b.p.Put(&buf)
	}
}
