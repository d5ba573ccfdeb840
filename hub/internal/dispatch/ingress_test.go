package dispatch

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func tlsSecret(name, data string) *api.Secret {
	return &api.Secret{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindSecret},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: name}, Type: api.SecretTypeTLS,
		Data: map[string][]byte{api.TLSCertKey: []byte("crt " + data), api.TLSPrivateKeyKey: []byte("key " + data)}}
}

func gatewayIngress(path string) *api.Ingress {
	prefix := api.PathTypePrefix
	return &api.Ingress{
		TypeMeta:   api.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: api.KindIngress},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "gateway", UID: "uid-ing"},
		Spec: api.IngressSpec{
			TLS: []api.IngressTLS{{Hosts: []string{"gateway.local"}, SecretName: "gw-tls"}},
			Rules: []api.IngressRule{{Host: "gateway.local", IngressRuleValue: api.IngressRuleValue{HTTP: &api.HTTPIngressRuleValue{
				Paths: []api.HTTPIngressPath{{Path: path, PathType: &prefix, Backend: api.IngressBackend{
					Service: &api.IngressServiceBackend{Name: "web", Port: api.ServiceBackendPort{Name: "http"}}}}}}}}},
		},
	}
}

func secretNames(s wire.Snapshot) []string {
	var out []string
	for _, sec := range s.Secrets {
		out = append(out, sec.Name)
	}
	return out
}

// TestIngressGoesToItsNodesOnly: the node its class selects is sent the
// Ingress, with its backend's Service port resolved, and the TLS Secret
// it names; another node is sent neither (though both get the Services).
// A status write sends nothing; a label, a Secret's change and the
// Ingress's removal send what they change, to whom it changes.
func TestIngressGoesToItsNodesOnly(t *testing.T) {
	gw := netNode("gw", "north", "192.168.1.20", "10.42.0.0/24")
	gw.Labels[api.LabelIngressNode] = "true"
	worker := netNode("worker", "north", "192.168.1.21", "10.42.1.0/24")
	f := newNetFixture(t, gw, worker, webService(8099), tlsSecret("gw-tls", "v1"), tlsSecret("unused", "v1"), gatewayIngress("/"))
	snaps := f.pass()
	g, w := snaps["gw"], snaps["worker"]
	want := []wire.Ingress{{Namespace: "default", Name: "gateway", BackendProtocol: wire.BackendHTTP,
		Rules: []wire.IngressRule{{Host: "gateway.local", Paths: []wire.IngressPath{{Path: "/", Type: wire.PathPrefix,
			Backend: wire.IngressBackend{Service: "web", PortName: "http", Port: 8099}}}}},
		TLS: []wire.IngressTLS{{Hosts: []string{"gateway.local"}, SecretName: "gw-tls"}}}}
	gotJSON, _ := json.Marshal(g.Ingresses)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) || !slices.Equal(secretNames(g), []string{"gw-tls"}) || len(g.Services) != 1 {
		t.Fatalf("gw: ingresses %s, secrets %v, services %d", gotJSON, secretNames(g), len(g.Services))
	}
	if len(w.Ingresses) != 0 || len(w.Secrets) != 0 || len(w.Services) != 1 {
		t.Fatalf("worker: ingresses %d, secrets %v, services %d", len(w.Ingresses), secretNames(w), len(w.Services))
	}

	// The controller writes the status: nobody gets a new snapshot.
	ing := gatewayIngress("/")
	ing.Status.LoadBalancer.Ingress = []api.IngressLoadBalancerIngress{{IP: "192.168.1.20"}}
	f.change(store.KeyOf(ing), ing)
	if got := f.pass(); len(got) != 0 {
		t.Fatalf("a status write sent snapshots to %v", keys(got))
	}
	// The Secret changes: gw is sent it, nobody else.
	f.change(store.KeyOf(tlsSecret("gw-tls", "")), tlsSecret("gw-tls", "v2"))
	got := f.pass()
	if len(got) != 1 || string(got["gw"].Secrets[0].Data[api.TLSCertKey]) != "crt v2" {
		t.Fatalf("after the Secret changed: %v", keys(got))
	}
	// The worker is labelled: it serves the Ingress too.
	worker.Labels[api.LabelIngressNode] = "true"
	f.change(store.KeyOf(worker), worker)
	got = f.pass()
	if len(got) != 1 || len(got["worker"].Ingresses) != 1 || !slices.Equal(secretNames(got["worker"]), []string{"gw-tls"}) {
		t.Fatalf("after the label: %v", keys(got))
	}
	// A new path: both are sent it.
	f.change(store.KeyOf(ing), gatewayIngress("/app"))
	got = f.pass()
	if len(got) != 2 || got["gw"].Ingresses[0].Rules[0].Paths[0].Path != "/app" {
		t.Fatalf("after the change: %v", keys(got))
	}
	// The Ingress goes: both lose it and its Secret.
	f.change(store.KeyOf(ing), nil)
	got = f.pass()
	if len(got) != 2 || len(got["gw"].Ingresses) != 0 || len(got["gw"].Secrets) != 0 || len(got["worker"].Secrets) != 0 {
		t.Fatalf("after the removal: %v", keys(got))
	}
}

func keys(m map[string]wire.Snapshot) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
