package ingress

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// hundred is 100 Ingresses of one host and two paths each (200 rules).
func hundred() ([]wire.Ingress, []wire.Service) {
	var ings []wire.Ingress
	for i := range 100 {
		ings = append(ings, paths(fmt.Sprintf("ing-%d", i), fmt.Sprintf("h%d.example.local", i), "Prefix /", "Prefix /api"))
	}
	svcs := []wire.Service{{Namespace: "default", Name: "svc/", Endpoints: []wire.Endpoint{{IP: "10.42.0.5", Ready: true, Ports: map[string]int32{"": 8080}}}},
		{Namespace: "default", Name: "svc/api", Endpoints: []wire.Endpoint{{IP: "10.42.0.6", Ready: true, Ports: map[string]int32{"": 8080}}}}}
	return ings, svcs
}

// BenchmarkBuild100: building the table and endpoints of 100 Ingresses,
// what a change costs the agent, and what the table holds (B/op).
func BenchmarkBuild100(b *testing.B) {
	ings, svcs := hundred()
	b.ReportAllocs()
	for b.Loop() {
		t, err := Build(ings, nil)
		if err != nil {
			b.Fatal(err)
		}
		BuildEndpoints(t.Backends(), svcs)
	}
}

// BenchmarkMatch100: routing one request among 100 Ingresses.
func BenchmarkMatch100(b *testing.B) {
	ings, _ := hundred()
	t, _ := Build(ings, nil)
	b.ReportAllocs()
	for b.Loop() {
		if t.Match("h57.example.local:80", "/api/v1/temperature") == nil {
			b.Fatal("no match")
		}
	}
}

// BenchmarkProxyOverhead: one client, requests back to back over kept-
// alive connections, to an HTTP server on loopback directly and through
// the Proxy; the difference per request is the proxy's cost.
func BenchmarkProxyOverhead(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "dashboard\n")
	}))
	defer backend.Close()
	var port int32
	_, _ = fmt.Sscanf(backend.URL[len("http://127.0.0.1:"):], "%d", &port)
	tab, _ := Build([]wire.Ingress{paths("gw", "gateway.local", "Prefix /")}, nil)
	p := NewProxy(Timeouts{}, nil)
	p.Swap(tab, BuildEndpoints(tab.Backends(), []wire.Service{{Namespace: "default", Name: "svc/",
		Endpoints: []wire.Endpoint{{IP: "127.0.0.1", Ready: true, Ports: map[string]int32{"": port}}}}}))
	front := httptest.NewServer(p)
	defer front.Close()
	for _, tc := range []struct{ name, url string }{{"direct", backend.URL}, {"ingress", front.URL}} {
		b.Run(tc.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			req, _ := http.NewRequest(http.MethodGet, tc.url+"/", nil)
			req.Host = "gateway.local"
			for b.Loop() {
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
