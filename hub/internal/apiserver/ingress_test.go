package apiserver

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

const webIngress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
    - host: gateway.local
      http:
        paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 8099}}}}]
status:
  loadBalancer: {ingress: [{ip: 192.0.2.99}]}
`

// TestIngressApplyKeepsStatus: an Ingress and a class apply; status is
// the hub's (an applied one is dropped, the stored one kept across
// applies) and the generation moves with the spec only.
func TestIngressApplyKeepsStatus(t *testing.T) {
	srv, st := newServer(t)
	class := "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: edge}\nspec: {controller: flotilla.io/ingress}\n"
	wantLines(t, mustApply(t, srv, docs(webIngress, class)), "Ingress/web created", "IngressClass/edge created")
	get := func() *api.Ingress {
		code, body := call(t, srv, "GET", "/apis/networking.k8s.io/v1/namespaces/default/ingresses/web", "")
		var in api.Ingress
		if code != 200 || json.Unmarshal(body, &in) != nil {
			t.Fatalf("get ingress: %d %s", code, body)
		}
		return &in
	}
	in := get()
	if len(in.Status.LoadBalancer.Ingress) != 0 || in.Generation != 1 {
		t.Fatalf("created with status %+v, generation %d", in.Status, in.Generation)
	}
	// What the hub's controller writes.
	in.Status.LoadBalancer.Ingress = []api.IngressLoadBalancerIngress{{IP: "192.0.2.10"}}
	if err := st.Update(func(tx store.Tx) error { return tx.Put(in) }); err != nil {
		t.Fatal(err)
	}
	wantLines(t, mustApply(t, srv, webIngress), "Ingress/web unchanged")
	changed := strings.Replace(webIngress, "path: /,", "path: /app,", 1)
	wantLines(t, mustApply(t, srv, changed), "Ingress/web configured")
	in = get()
	if len(in.Status.LoadBalancer.Ingress) != 1 || in.Status.LoadBalancer.Ingress[0].IP != "192.0.2.10" || in.Generation != 2 {
		t.Fatalf("after a change: status %+v, generation %d", in.Status, in.Generation)
	}
	code, body := call(t, srv, "GET", "/apis/networking.k8s.io/v1/ingressclasses/edge", "")
	if code != 200 || !strings.Contains(string(body), `"controller":"flotilla.io/ingress"`) {
		t.Fatalf("get ingressclass: %d %s", code, body)
	}
}
