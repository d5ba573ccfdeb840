package ingress

import (
	"crypto/tls"
	"encoding/json"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// FuzzTable builds a table from any Ingresses a snapshot could hold and
// routes a request and a client hello through it: nothing may panic, and
// a route always has its backend.
func FuzzTable(f *testing.F) {
	seed, _ := json.Marshal([]wire.Ingress{
		paths("a", "gateway.local", "Prefix /", "Exact /x", "Prefix /api/"),
		paths("b", "*.gateway.local", "Prefix /"),
		{Namespace: "default", Name: "c", DefaultBackend: &wire.IngressBackend{Service: "d"}, TLS: []wire.IngressTLS{{SecretName: "s"}}},
	})
	f.Add(seed, "a.gateway.local:80", "/api/v1")
	f.Add([]byte(`[{"rules":[{"host":"","paths":[{"path":"","type":"Prefix"},{"path":"/","type":"Regex"}]}]}]`), "[::1]:8080", "")
	f.Fuzz(func(t *testing.T, data []byte, host, path string) {
		var ings []wire.Ingress
		if json.Unmarshal(data, &ings) != nil {
			return
		}
		tab, _ := Build(ings, []wire.SnapshotSecret{{Namespace: "default", Name: "s"}})
		if r := tab.Match(host, path); r != nil && r.Backend == nil {
			t.Fatalf("route %+v without a backend", r)
		}
		_, _ = tab.Certificate(&tls.ClientHelloInfo{ServerName: host})
		BuildEndpoints(tab.Backends(), nil)
	})
}
