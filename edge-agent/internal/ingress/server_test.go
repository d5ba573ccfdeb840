package ingress

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// snapshots is a snapshot source a test changes.
type snapshots struct {
	mu   sync.Mutex
	snap wire.Snapshot
}

func (s *snapshots) get() (wire.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap, nil
}

func (s *snapshots) set(snap wire.Snapshot) {
	s.mu.Lock()
	s.snap = snap
	s.mu.Unlock()
}

// events collects the node events a Server reports.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(typ api.EventType, reason, msg string) {
	e.mu.Lock()
	e.list = append(e.list, string(typ)+" "+reason+": "+msg)
	e.mu.Unlock()
}

func (e *events) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

// startServer runs a Server on loopback ports until the test ends.
func startServer(t *testing.T, src *snapshots, ev *events) *Server {
	t.Helper()
	if ev == nil {
		ev = &events{}
	}
	s, err := New(Config{NodeName: "gw", HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", Snapshot: src.get, Event: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// programmed makes s take what changed and waits for it.
func programmed(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Programmed(ctx, s.Changed()); err != nil {
		t.Fatal(err)
	}
}

// localSnapshot is a snapshot with the node's own pod web-1 (app=web),
// Service web selecting it with targetPort port, and an Ingress routing
// gateway.local to it, with TLS when certs are given (one Secret each,
// for the host of its certificate).
func localSnapshot(port int32, certs ...*testCert) wire.Snapshot {
	snap := wire.Snapshot{
		Revision: 1,
		Pods:     []wire.SnapshotPod{{UID: "uid-1", Name: "web-1", Namespace: "default", Labels: map[string]string{"app": "web"}}},
		Services: []wire.Service{{Namespace: "default", Name: "web", Type: "ClusterIP", Selector: map[string]string{"app": "web"},
			Ports: []wire.ServicePort{{Protocol: "TCP", Port: 80, TargetPort: strconv.Itoa(int(port))}}}},
	}
	ing := wire.Ingress{Namespace: "default", Name: "gw"}
	for i, c := range certs {
		name := fmt.Sprintf("tls-%d", i)
		ing.Rules = append(ing.Rules, wire.IngressRule{Host: c.name, Paths: []wire.IngressPath{route("/", "Prefix", "web")}})
		ing.TLS = append(ing.TLS, wire.IngressTLS{Hosts: []string{c.name}, SecretName: name})
		snap.Secrets = append(snap.Secrets, c.secret(name))
	}
	if len(certs) == 0 {
		ing.Rules = []wire.IngressRule{{Host: "gateway.local", Paths: []wire.IngressPath{route("/", "Prefix", "web")}}}
	}
	snap.Ingresses = []wire.Ingress{ing}
	return snap
}

// report is the node's pod status report: web-1 running on loopback,
// ready or not.
func report(ready bool) wire.PodStatusReport {
	st := api.ConditionFalse
	if ready {
		st = api.ConditionTrue
	}
	return wire.PodStatusReport{Pods: []wire.PodReport{{UID: "uid-1", Name: "web-1", Namespace: "default", Status: api.PodStatus{
		Phase: api.PodRunning, PodIP: "127.0.0.1", Conditions: []api.PodCondition{{Type: api.PodReady, Status: st}}}}}}
}

func httpURL(t *testing.T, s *Server) string {
	t.Helper()
	a, _ := s.Addrs()
	if a == nil {
		t.Fatal("no HTTP listener")
	}
	return "http://" + a.String()
}

// TestServerFollowsLocalReadiness: the node's own pod serves the Ingress
// once its report says it is ready, stops the moment a report says it is
// not (503, no hub involved), and serves again when it is back.
func TestServerFollowsLocalReadiness(t *testing.T) {
	b := newBackend(t, "web", false)
	src := &snapshots{snap: localSnapshot(b.port())}
	s := startServer(t, src, nil)
	programmed(t, s)
	url := httpURL(t, s)
	c := &http.Client{}
	// No report yet: the hub sent no endpoint either.
	if code, _, _ := get(t, c, url+"/", "gateway.local"); code != 503 {
		t.Fatalf("before any report: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, ready := range []bool{true, false, true} {
		if err := s.Programmed(ctx, s.SetReport(report(ready))); err != nil {
			t.Fatal(err)
		}
		want := map[bool]int{true: 200, false: 503}[ready]
		if code, _, _ := get(t, c, url+"/", "gateway.local"); code != want {
			t.Fatalf("step %d (ready %v): %d, want %d", i, ready, code, want)
		}
	}
}

// TestServerOpensPortsOnlyWhileServing: no Ingress, no port; an Ingress
// opens HTTP, a certificate HTTPS; each closes when what needs it goes.
func TestServerOpensPortsOnlyWhileServing(t *testing.T) {
	src := &snapshots{}
	s := startServer(t, src, nil)
	programmed(t, s)
	if h, hs := s.Addrs(); h != nil || hs != nil {
		t.Fatalf("ports open with no Ingress: %v %v", h, hs)
	}
	b := newBackend(t, "web", false)
	src.set(localSnapshot(b.port()))
	programmed(t, s)
	if h, hs := s.Addrs(); h == nil || hs != nil {
		t.Fatalf("with an Ingress without TLS: %v %v", h, hs)
	}
	src.set(localSnapshot(b.port(), newCert(t, "gateway.local")))
	programmed(t, s)
	h, hs := s.Addrs()
	if h == nil || hs == nil {
		t.Fatalf("with TLS: %v %v", h, hs)
	}
	src.set(wire.Snapshot{Revision: 3})
	programmed(t, s)
	if h, hs := s.Addrs(); h != nil || hs != nil {
		t.Fatalf("ports open after the Ingress went: %v %v", h, hs)
	}
	if _, err := net.DialTimeout("tcp", hs.String(), time.Second); err == nil {
		t.Errorf("the HTTPS port still accepts connections")
	}
}

// TestServerCertificatePerHost: over real TLS handshakes, each host is
// served its own certificate, chosen by the name the client sends.
func TestServerCertificatePerHost(t *testing.T) {
	b := newBackend(t, "web", false)
	gw, api2 := newCert(t, "gateway.local"), newCert(t, "api.gateway.local")
	src := &snapshots{snap: localSnapshot(b.port(), gw, api2)}
	s := startServer(t, src, nil)
	programmed(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Programmed(ctx, s.SetReport(report(true))); err != nil {
		t.Fatal(err)
	}
	_, hs := s.Addrs()
	for _, c := range []*testCert{gw, api2} {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.pool, ServerName: c.name}}}
		req, _ := http.NewRequest(http.MethodGet, "https://"+hs.String()+"/", nil)
		req.Host = c.name
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var e echo
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != c.name || resp.StatusCode != 200 || e.Header.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("%s: certificate %s, status %d, X-Forwarded-Proto %q", c.name, got, resp.StatusCode, e.Header.Get("X-Forwarded-Proto"))
		}
	}
}

// TestServerReportsBadCertificateOnce: a TLS Secret whose key is not its
// certificate's is a node event, once while it lasts, and its end is
// said; the rest is served meanwhile.
func TestServerReportsBadCertificateOnce(t *testing.T) {
	b := newBackend(t, "web", false)
	gw, other := newCert(t, "gateway.local"), newCert(t, "other.local")
	snap := localSnapshot(b.port(), gw)
	snap.Secrets[0].Data[api.TLSPrivateKeyKey] = other.key
	src := &snapshots{snap: snap}
	ev := &events{}
	s := startServer(t, src, ev)
	programmed(t, s)
	programmed(t, s)
	if h, _ := s.Addrs(); h == nil {
		t.Fatal("HTTP not served")
	}
	src.set(localSnapshot(b.port(), gw))
	programmed(t, s)
	want := []string{
		"Warning IngressNotServed: ingress default/gw: TLS Secret default/tls-0: tls: private key does not match public key",
		"Normal IngressServed: the node's Ingresses are served again",
	}
	if got := ev.all(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
}

// TestSwapUnderLoad: while four clients send requests as fast as they
// can and a slow request is in flight, the configuration is swapped 200
// times between two backends' Services: no request fails, and the slow
// one finishes.
func TestSwapUnderLoad(t *testing.T) {
	a, b := newBackend(t, "a", false), newBackend(t, "b", false)
	snapFor := func(rev uint64, be *testBackend, path string) wire.Snapshot {
		return wire.Snapshot{Revision: rev, Services: []wire.Service{service("web", be)},
			Ingresses: []wire.Ingress{{Namespace: "default", Name: "gw", Rules: []wire.IngressRule{{Paths: []wire.IngressPath{
				route("/", "Prefix", "web"), route(path, "Exact", "web")}}}}}}
	}
	src := &snapshots{snap: snapFor(1, a, "/a")}
	s := startServer(t, src, nil)
	programmed(t, s)
	url := httpURL(t, s)

	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get(url + "/?sleep=1s")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		slow <- err
	}()
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url + "/")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	for i := range 200 {
		be, path := a, "/a"
		if i%2 == 0 {
			be, path = b, "/b"
		}
		src.set(snapFor(uint64(i+2), be, path))
		programmed(t, s)
	}
	close(stop)
	wg.Wait()
	if err := <-slow; err != nil {
		t.Errorf("the slow request failed across the swaps: %v", err)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed across 200 swaps; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	if ok.Load() < 200 {
		t.Errorf("only %d requests went through during the swaps", ok.Load())
	}
}
