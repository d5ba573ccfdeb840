package ingress

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// echo is what a test backend answers: its name and what it was sent.
type echo struct {
	Backend string
	Host    string
	Path    string
	Proto   int
	Header  http.Header
}

// testBackend is an HTTP server on loopback that answers with an echo,
// counting the connections it accepted.
type testBackend struct {
	*httptest.Server
	name  string
	conns atomic.Int64
}

func newBackend(t *testing.T, name string, h2c bool) *testBackend {
	t.Helper()
	b := &testBackend{name: name}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo{Backend: name, Host: r.Host, Path: r.URL.Path, Proto: r.ProtoMajor, Header: r.Header})
	}))
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	if h2c {
		b.Config.Protocols = new(http.Protocols)
		b.Config.Protocols.SetHTTP1(true)
		b.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// port is the backend's port.
func (b *testBackend) port() int32 {
	_, p, _ := net.SplitHostPort(b.Listener.Addr().String())
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// service is a Service in default named name whose ready endpoints are
// the backends (on loopback), port "" each.
func service(name string, backends ...*testBackend) wire.Service {
	s := wire.Service{Namespace: "default", Name: name, Ports: []wire.ServicePort{{Protocol: "TCP", Port: 80}}}
	for i, b := range backends {
		s.Endpoints = append(s.Endpoints, wire.Endpoint{IP: "127.0.0.1", Node: "other", Name: fmt.Sprintf("%s-%d", name, i), Ready: true,
			Ports: map[string]int32{"": b.port()}})
	}
	return s
}

// route is an Ingress path to Service svc.
func route(path, typ, svc string) wire.IngressPath {
	return wire.IngressPath{Path: path, Type: typ, Backend: wire.IngressBackend{Service: svc, Port: 80}}
}

// serveProxy serves p on loopback and returns its URL.
func serveProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, c *http.Client, url, host string, header ...string) (int, echo, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e echo
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e, string(body)
}

// TestProxyRoutesAndAnswers: requests reach the backend their host and
// path route them to, with the client's Host and X-Forwarded-* set
// anew; what matches nothing is 404, a missing backend or one without
// a ready endpoint 503, each with a short body.
func TestProxyRoutesAndAnswers(t *testing.T) {
	dash, api := newBackend(t, "dashboard", false), newBackend(t, "sensors", false)
	gw := wire.Ingress{Namespace: "default", Name: "gw", Rules: []wire.IngressRule{
		{Host: "gateway.local", Paths: []wire.IngressPath{route("/", "Prefix", "dashboard"), route("/api", "Prefix", "sensors"),
			route("/gone", "Prefix", "gone"), route("/empty", "Exact", "empty")}},
	}}
	gw.Rules[0].Paths[2].Backend.Missing = `service "gone" not found`
	tab, err := Build([]wire.Ingress{gw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(Timeouts{}, nil)
	p.Swap(tab, BuildEndpoints(tab.Backends(), []wire.Service{service("dashboard", dash), service("sensors", api), service("empty")}))
	url := serveProxy(t, p)
	c := &http.Client{}

	code, e, _ := get(t, c, url+"/api/v1/temp", "gateway.local:80", "X-Forwarded-For", "203.0.113.9", "X-Forwarded-Host", "evil.example")
	if code != 200 || e.Backend != "sensors" || e.Path != "/api/v1/temp" || e.Host != "gateway.local:80" {
		t.Fatalf("/api: %d %+v", code, e)
	}
	if got := e.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q: the client's own must be replaced", got)
	}
	if e.Header.Get("X-Forwarded-Proto") != "http" || e.Header.Get("X-Forwarded-Host") != "gateway.local:80" {
		t.Errorf("X-Forwarded-Proto %q, -Host %q", e.Header.Get("X-Forwarded-Proto"), e.Header.Get("X-Forwarded-Host"))
	}
	if code, e, _ = get(t, c, url+"/index.html", "gateway.local"); code != 200 || e.Backend != "dashboard" {
		t.Fatalf("/: %d %+v", code, e)
	}
	for _, tc := range []struct {
		host, path string
		code       int
		body       string
	}{
		{"other.local", "/", 404, "404 not found: no Ingress rule matches this request\n"},
		{"gateway.local", "/gone", 503, "503 service unavailable: the backend does not exist\n"},
		{"gateway.local", "/empty", 503, "503 service unavailable: no ready endpoint\n"},
	} {
		code, _, body := get(t, c, url+tc.path, tc.host)
		if code != tc.code || body != tc.body {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.path, code, body, tc.code, tc.body)
		}
	}
}

// TestProxyKeepsConnectionsAlive: a hundred requests in a row reach the
// backend over one connection of the pool.
func TestProxyKeepsConnectionsAlive(t *testing.T) {
	b := newBackend(t, "web", false)
	tab, _ := Build([]wire.Ingress{{Namespace: "default", Name: "gw", Rules: []wire.IngressRule{{Paths: []wire.IngressPath{route("/", "Prefix", "web")}}}}}, nil)
	p := NewProxy(Timeouts{}, nil)
	p.Swap(tab, BuildEndpoints(tab.Backends(), []wire.Service{service("web", b)}))
	url := serveProxy(t, p)
	c := &http.Client{}
	for range 100 {
		if code, _, _ := get(t, c, url+"/", "x"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if n := b.conns.Load(); n != 1 {
		t.Errorf("the backend accepted %d connections for 100 requests in a row", n)
	}
}

// TestProxyTriesTheNextEndpoint: with one endpoint gone (its port
// closed), requests without a body all reach the other; one with a body
// sent to the gone one fails with 502 (it cannot be sent again).
func TestProxyTriesTheNextEndpoint(t *testing.T) {
	live, dead := newBackend(t, "live", false), newBackend(t, "dead", false)
	dead.Close()
	tab, _ := Build([]wire.Ingress{{Namespace: "default", Name: "gw", Rules: []wire.IngressRule{{Paths: []wire.IngressPath{route("/", "Prefix", "web")}}}}}, nil)
	p := NewProxy(Timeouts{}, nil)
	p.Swap(tab, BuildEndpoints(tab.Backends(), []wire.Service{service("web", dead, live)}))
	url := serveProxy(t, p)
	c := &http.Client{}
	for i := range 20 {
		if code, e, body := get(t, c, url+"/", "x"); code != 200 || e.Backend != "live" {
			t.Fatalf("request %d: %d %s", i, code, body)
		}
	}
	codes := map[int]int{}
	for range 4 {
		resp, err := c.Post(url+"/", "text/plain", strings.NewReader("reading"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[200] != 2 || codes[502] != 2 {
		t.Errorf("POSTs answered %v, want two 200 (live) and two 502 (dead)", codes)
	}
}

// TestProxyTimesOut: an endpoint that does not answer within the
// response-header timeout is answered 504.
func TestProxyTimesOut(t *testing.T) {
	b := newBackend(t, "slow", false)
	tab, _ := Build([]wire.Ingress{{Namespace: "default", Name: "gw", Rules: []wire.IngressRule{{Paths: []wire.IngressPath{route("/", "Prefix", "web")}}}}}, nil)
	p := NewProxy(Timeouts{ResponseHeader: 100 * time.Millisecond}, nil)
	p.Swap(tab, BuildEndpoints(tab.Backends(), []wire.Service{service("web", b)}))
	url := serveProxy(t, p)
	if code, _, body := get(t, &http.Client{}, url+"/?sleep=2s", "x"); code != 504 || body != "504 gateway timeout\n" {
		t.Errorf("%d %q", code, body)
	}
}

// TestProxyPassesUpgrades: a WebSocket handshake goes through, and then
// the bytes of the upgraded connection, both ways.
func TestProxyPassesUpgrades(t *testing.T) {
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		_, _ = brw.WriteString("echo " + line)
		_ = brw.Flush()
	}))
	t.Cleanup(ws.Close)
	port, _ := strconv.Atoi(ws.URL[strings.LastIndex(ws.URL, ":")+1:])
	svc := wire.Service{Namespace: "default", Name: "ws", Endpoints: []wire.Endpoint{{IP: "127.0.0.1", Ready: true, Ports: map[string]int32{"": int32(port)}}}}
	tab, _ := Build([]wire.Ingress{{Namespace: "default", Name: "gw", Rules: []wire.IngressRule{{Paths: []wire.IngressPath{route("/ws", "Prefix", "ws")}}}}}, nil)
	p := NewProxy(Timeouts{}, nil)
	p.Swap(tab, BuildEndpoints(tab.Backends(), []wire.Service{svc}))
	url := serveProxy(t, p)

	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: gateway.local\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	fmt.Fprintf(conn, "hello over the upgraded connection\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo hello over the upgraded connection\n" {
		t.Fatalf("after the upgrade: %q %v", line, err)
	}
}

// TestProxyHTTP2: a client speaks HTTP/2 to the proxy, over TLS or in the
// clear with prior knowledge; an h2c backend is spoken HTTP/2 to, an
// ordinary one HTTP/1.1.
func TestProxyHTTP2(t *testing.T) {
	h1, h2 := newBackend(t, "h1", false), newBackend(t, "h2", true)
	cert := newCert(t, "gateway.local")
	plainIng := wire.Ingress{Namespace: "default", Name: "plain", Rules: []wire.IngressRule{{Host: "gateway.local", Paths: []wire.IngressPath{route("/h1", "Prefix", "h1")}}},
		TLS: []wire.IngressTLS{{Hosts: []string{"gateway.local"}, SecretName: "gw"}}}
	grpcIng := wire.Ingress{Namespace: "default", Name: "grpc", BackendProtocol: wire.BackendH2C,
		Rules: []wire.IngressRule{{Host: "gateway.local", Paths: []wire.IngressPath{route("/h2", "Prefix", "h2")}}}}
	tab, err := Build([]wire.Ingress{plainIng, grpcIng}, []wire.SnapshotSecret{cert.secret("gw")})
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(Timeouts{}, nil)
	p.Swap(tab, BuildEndpoints(tab.Backends(), []wire.Service{service("h1", h1), service("h2", h2)}))

	tlsSrv := httptest.NewUnstartedServer(p)
	tlsSrv.TLS = &tls.Config{GetCertificate: p.certificate}
	tlsSrv.EnableHTTP2 = true
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	tlsClient := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: cert.pool, ServerName: "gateway.local"},
		ForceAttemptHTTP2: true,
	}}
	for _, tc := range []struct{ path, backend string }{{"/h1", "h1"}, {"/h2", "h2"}} {
		req, _ := http.NewRequest(http.MethodGet, tlsSrv.URL+tc.path, nil)
		req.Host = "gateway.local"
		resp, err := tlsClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e echo
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		wantBackendProto := map[string]int{"h1": 1, "h2": 2}[tc.backend]
		if resp.ProtoMajor != 2 || e.Backend != tc.backend || e.Proto != wantBackendProto || e.Header.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("%s over TLS: client spoke HTTP/%d, backend %q heard HTTP/%d, X-Forwarded-Proto %q", tc.path, resp.ProtoMajor, e.Backend, e.Proto, e.Header.Get("X-Forwarded-Proto"))
		}
	}

	plainSrv := httptest.NewUnstartedServer(p)
	plainSrv.Config.Protocols = new(http.Protocols)
	plainSrv.Config.Protocols.SetHTTP1(true)
	plainSrv.Config.Protocols.SetUnencryptedHTTP2(true)
	plainSrv.Start()
	t.Cleanup(plainSrv.Close)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2cClient := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, plainSrv.URL+"/h2", nil)
	req.Host = "gateway.local"
	resp, err := h2cClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e echo
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || e.Proto != 2 {
		t.Errorf("h2c: client spoke HTTP/%d, backend heard HTTP/%d", resp.ProtoMajor, e.Proto)
	}
}
