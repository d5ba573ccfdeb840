package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

const webPair = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  replicas: 3
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: registry.local/busybox:v1
          ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ports:
    - {port: 8099, targetPort: 80, protocol: TCP, nodePort: 30080}
  selector: {app: web}
`

// TestServiceCommands: the pair applies and prints both objects;
// get svc, get ep and describe svc show what the hub allocated and the
// Endpoints and events it keeps.
func TestServiceCommands(t *testing.T) {
	isolate(t)
	h := newHub(t)
	out, errOut, err := h.cli(webPair, "apply", "-f", "-")
	if err != nil || out != "deployment.apps/web created\nservice/web created\n" {
		t.Fatalf("apply: %v\n%s%s", err, out, errOut)
	}
	svc := h.must("get", "svc")
	if !regexp.MustCompile(`(?m)^web +NodePort +10\.43\.\d+\.\d+ +<none> +8099:30080/TCP +\d+s$`).MatchString(svc) {
		t.Fatalf("get svc:\n%s", svc)
	}
	// The hub's endpoints controller writes Endpoints and events; here
	// the test does.
	if err := h.st.Update(func(tx store.Tx) error {
		ep := &api.Endpoints{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEndpoints}, ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web", CreationTimestamp: api.Now()},
			Subsets: []api.EndpointSubset{{Addresses: []api.EndpointAddress{{IP: "10.42.0.5"}, {IP: "10.42.1.5"}}, Ports: []api.EndpointPort{{Port: 80, Protocol: api.ProtocolTCP}}}}}
		if err := tx.Put(ep); err != nil {
			return err
		}
		return tx.Put(&api.Event{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEvent}, ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web.1"},
			InvolvedObject: api.ObjectReference{Kind: api.KindService, Namespace: "default", Name: "web"}, Type: api.EventNormal, Reason: "Allocated",
			Message: "node port 30080", Source: api.EventSource{Component: "hub"}, FirstTimestamp: api.Now(), LastTimestamp: api.Now(), Count: 1})
	}); err != nil {
		t.Fatal(err)
	}
	// Several kinds: each name with its kind, as kubectl prints them.
	both := h.must("get", "svc,ep")
	if !regexp.MustCompile(`(?m)^service/web +NodePort +10\.43\.\d+\.\d+ +<none> +8099:30080/TCP +\d+s$`).MatchString(both) ||
		!regexp.MustCompile(`(?m)^endpoints/web +10\.42\.0\.5:80,10\.42\.1\.5:80 +\d+s$`).MatchString(both) {
		t.Fatalf("get svc,ep:\n%s", both)
	}
	desc := h.must("describe", "svc", "web")
	for _, want := range []string{
		"Type:                     NodePort\n",
		"NodePort:                 <unset>  30080/TCP\n",
		"Endpoints:                10.42.0.5:80,10.42.1.5:80\n",
		"External Traffic Policy:  Cluster\n",
		"  Normal  Allocated",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe svc lacks %q:\n%s", want, desc)
		}
	}
	if desc := h.must("describe", "ep", "web"); !strings.Contains(desc, "  Addresses:          10.42.0.5,10.42.1.5\n") || !strings.HasSuffix(desc, "Events:  <none>\n") {
		t.Errorf("describe ep:\n%s", desc)
	}
}
