package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// firstRand starts every allocation's search at the first free place.
type firstRand struct{}

func (firstRand) IntN(int) int { return 0 }

// newNetServer is newServer with an address plan and first-free
// allocation, so that allocated values are known.
func newNetServer(t *testing.T, edit func(*ipam.Flags)) (*httptest.Server, store.Store) {
	t.Helper()
	f := ipam.DefaultFlags()
	if edit != nil {
		edit(&f)
	}
	cfg, err := ipam.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	if err := st.Update(func(tx store.Tx) error {
		return tx.Put(&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace}, ObjectMeta: api.ObjectMeta{Name: "default"}})
	}); err != nil {
		t.Fatal(err)
	}
	s := New(st, nil).WithNetwork(cfg)
	s.rand = firstRand{}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv, st
}

// The manifest pair, with a local image.
const webDeployment = `apiVersion: apps/v1
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
`

const webService = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ports:
    - {port: 8099, targetPort: 80, protocol: TCP, nodePort: 30080}
  selector: {app: web}
`

// service is a Service manifest of type typ named name with the given
// ports (YAML flow items).
func service(name, typ string, ports ...string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec:\n  type: %s\n  selector: {app: %s}\n  ports: [%s]\n",
		name, typ, name, strings.Join(ports, ", "))
}

func docs(d ...string) string { return strings.Join(d, "---\n") }

func getService(t *testing.T, srv *httptest.Server, name string) *api.Service {
	t.Helper()
	code, body := call(t, srv, "GET", "/api/v1/namespaces/default/services/"+name, "")
	var s api.Service
	if code != 200 || json.Unmarshal(body, &s) != nil {
		t.Fatalf("get service %s: %d %s", name, code, body)
	}
	return &s
}

// mustApply applies a YAML body and returns "Kind/name action" lines.
func mustApply(t *testing.T, srv *httptest.Server, body string) []string {
	t.Helper()
	code, out := call(t, srv, "POST", "/api/v1/apply", body)
	if code != 200 {
		t.Fatalf("apply: %d %s", code, out)
	}
	var resp api.ApplyResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.Results {
		got = append(got, r.Kind+"/"+r.Name+" "+r.Action)
	}
	return got
}

// refused applies a body that must be refused with 422 and nothing
// written, and returns the causes as "field: message" lines.
func refused(t *testing.T, srv *httptest.Server, st store.Store, body string) []string {
	t.Helper()
	before := st.Version()
	code, out := call(t, srv, "POST", "/api/v1/apply", body)
	var status api.Status
	if err := json.Unmarshal(out, &status); err != nil || code != http.StatusUnprocessableEntity || status.Reason != api.ReasonInvalid || status.Details == nil {
		t.Fatalf("apply: %d %s", code, out)
	}
	if st.Version() != before {
		t.Fatalf("a refused apply wrote something")
	}
	var got []string
	for _, c := range status.Details.Causes {
		got = append(got, c.Message)
	}
	return got
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestApplyAllocatesServiceAddresses: the pair applies; the
// Service gets a cluster IP from the service CIDR and keeps the node port
// it asked for; applying it again changes nothing.
func TestApplyAllocatesServiceAddresses(t *testing.T) {
	srv, _ := newNetServer(t, nil)
	wantLines(t, mustApply(t, srv, docs(webDeployment, webService)), "Deployment/web created", "Service/web created")
	s := getService(t, srv, "web")
	ip, err := netip.ParseAddr(s.Spec.ClusterIP)
	if err != nil || !netip.MustParsePrefix("10.43.0.0/16").Contains(ip) || ip.String() != "10.43.1.1" {
		t.Fatalf("clusterIP %q", s.Spec.ClusterIP)
	}
	if len(s.Spec.ClusterIPs) != 1 || s.Spec.ClusterIPs[0] != s.Spec.ClusterIP || s.Spec.Ports[0].NodePort != 30080 ||
		s.UID == "" || s.Generation != 1 || s.Spec.ExternalTrafficPolicy != api.ServiceTrafficPolicyCluster {
		t.Fatalf("stored %+v", s)
	}
	wantLines(t, mustApply(t, srv, docs(webDeployment, webService)), "Deployment/web unchanged", "Service/web unchanged")
	if again := getService(t, srv, "web"); again.Spec.ClusterIP != s.Spec.ClusterIP || again.ResourceVersion != s.ResourceVersion {
		t.Fatalf("re-applying moved the Service: %+v", again.Spec)
	}
	// A Service without a node port gets one from above the static band
	// (30000-30085); TCP and UDP on one number share one node port.
	mustApply(t, srv, service("dns", "NodePort", "{name: dns, port: 53, protocol: UDP}", "{name: dns-tcp, port: 53}", "{name: metrics, port: 9153}"))
	d := getService(t, srv, "dns")
	if p := d.Spec.Ports; p[0].NodePort != 30086 || p[1].NodePort != 30086 || p[2].NodePort != 30087 {
		t.Fatalf("node ports %+v", p)
	}
	// Headless: no address.
	mustApply(t, srv, "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432}]}\n")
	if h := getService(t, srv, "db"); h.Spec.ClusterIP != "None" || len(h.Spec.ClusterIPs) != 1 || h.Spec.ClusterIPs[0] != "None" {
		t.Fatalf("headless %+v", h.Spec)
	}
}

// TestApplyRefusesAddressClashes: a taken or out-of-range node port or
// cluster IP is a 422 naming the field, and nothing of the apply is
// stored.
func TestApplyRefusesAddressClashes(t *testing.T) {
	srv, st := newNetServer(t, nil)
	mustApply(t, srv, docs(webDeployment, webService, service("fixed", "ClusterIP", "{port: 80}")))
	fixedIP := getService(t, srv, "fixed").Spec.ClusterIP
	// The same number for UDP is another port.
	mustApply(t, srv, service("udp", "NodePort", "{port: 514, protocol: UDP, nodePort: 30080}"))

	wantLines(t, refused(t, srv, st, docs(
		"apiVersion: v1\nkind: Namespace\nmetadata: {name: fresh}\n",
		service("other", "NodePort", "{port: 80, nodePort: 30080}"),
		service("syslog", "NodePort", "{port: 514, protocol: UDP, nodePort: 30080}"),
		service("far", "NodePort", "{port: 80, nodePort: 40000}"),
		strings.Replace(service("taken", "ClusterIP", "{port: 80}"), "  type:", "  clusterIP: "+fixedIP+"\n  type:", 1),
		strings.Replace(service("outside", "ClusterIP", "{port: 80}"), "  type:", "  clusterIP: 10.44.0.1\n  type:", 1),
		strings.Replace(service("broadcast", "ClusterIP", "{port: 80}"), "  type:", "  clusterIP: 10.43.255.255\n  type:", 1),
	)),
		"document 2: spec.ports[0].nodePort: 30080/TCP is already allocated to Service default/web",
		"document 3: spec.ports[0].nodePort: 30080/UDP is already allocated to Service default/udp",
		"document 4: spec.ports[0].nodePort: 40000 is not in the node port range 30000-32767 (hub serve --service-node-port-range)",
		"document 5: spec.clusterIP: "+fixedIP+" is already allocated to Service default/fixed",
		"document 6: spec.clusterIP: 10.44.0.1 is not in the service CIDR 10.43.0.0/16 (hub serve --service-cidr)",
		"document 7: spec.clusterIP: 10.43.255.255 is the broadcast address of the service CIDR 10.43.0.0/16, which is never allocated",
	)
	// A List body (as the CLI sends) names the item.
	got := refused(t, srv, st, applyBody(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"other"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}}`))
	wantLines(t, got, "document 1: items[0].spec.ports[0].nodePort: 30080/TCP is already allocated to Service default/web")
}

// TestApplyHoldsRequestedAddressesFirst: within one apply, a Service that
// asks for a node port gets it even when an earlier document's Service
// is allocated one dynamically.
func TestApplyHoldsRequestedAddressesFirst(t *testing.T) {
	srv, _ := newNetServer(t, nil)
	// With first-free allocation, "a" would take 30086 if "b" did not
	// hold it first.
	mustApply(t, srv, docs(service("a", "NodePort", "{port: 80}"), service("b", "NodePort", "{port: 80, nodePort: 30086}")))
	if a, b := getService(t, srv, "a"), getService(t, srv, "b"); a.Spec.Ports[0].NodePort != 30087 || b.Spec.Ports[0].NodePort != 30086 {
		t.Fatalf("a has %d, b has %d", a.Spec.Ports[0].NodePort, b.Spec.Ports[0].NodePort)
	}
}

// TestApplyFullServiceCIDR: more Services than the CIDR holds is a 422
// saying so, and none of that apply's Services is stored.
func TestApplyFullServiceCIDR(t *testing.T) {
	srv, st := newNetServer(t, func(f *ipam.Flags) { f.ServiceCIDR = "10.43.0.0/29" }) // 6 addresses
	var six []string
	for i := range 6 {
		six = append(six, service(fmt.Sprintf("s%d", i), "ClusterIP", "{port: 80}"))
	}
	mustApply(t, srv, docs(six[:5]...))
	wantLines(t, refused(t, srv, st, docs(service("sx", "ClusterIP", "{port: 80}"), service("sy", "ClusterIP", "{port: 80}"))),
		"document 2: spec.clusterIP: the service CIDR 10.43.0.0/29 is full: all 6 of its addresses are allocated (hub serve --service-cidr can give a larger one)")
	mustApply(t, srv, six[5])
	// Deleting one frees its address: there is no state but the store's.
	if code, body := call(t, srv, "DELETE", "/api/v1/namespaces/default/services/s2", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	mustApply(t, srv, service("sx", "ClusterIP", "{port: 80}"))
}

// TestServiceUpdates: the cluster IP is immutable, one left out is kept;
// a node port left out is kept (by port name); a node port may change,
// as in Kubernetes, which frees the old one.
func TestServiceUpdates(t *testing.T) {
	srv, st := newNetServer(t, nil)
	mustApply(t, srv, service("web", "NodePort", "{name: http, port: 80}", "{name: admin, port: 81, nodePort: 30001}"))
	s := getService(t, srv, "web")
	ip, httpPort := s.Spec.ClusterIP, s.Spec.Ports[0].NodePort

	wantLines(t, refused(t, srv, st, strings.Replace(service("web", "NodePort", "{name: http, port: 80}"), "  type:", "  clusterIP: 10.43.0.99\n  type:", 1)),
		"document 1: spec.clusterIP: field is immutable: the Service has "+ip+" (delete it and apply it again to change its address)")

	wantLines(t, mustApply(t, srv, service("web", "NodePort", "{name: http, port: 80}", "{name: admin, port: 81, nodePort: 30002}")), "Service/web configured")
	s = getService(t, srv, "web")
	if s.Spec.ClusterIP != ip || s.Spec.Ports[0].NodePort != httpPort || s.Spec.Ports[1].NodePort != 30002 || s.Generation != 2 {
		t.Fatalf("after update: %+v (generation %d)", s.Spec, s.Generation)
	}
	mustApply(t, srv, service("other", "NodePort", "{port: 80, nodePort: 30001}"))

	// ClusterIP drops the node ports; NodePort again allocates new ones.
	mustApply(t, srv, service("web", "ClusterIP", "{name: http, port: 80}", "{name: admin, port: 81}"))
	if s = getService(t, srv, "web"); s.Spec.Ports[0].NodePort != 0 || s.Spec.ExternalTrafficPolicy != "" || s.Spec.ClusterIP != ip {
		t.Fatalf("as ClusterIP: %+v", s.Spec)
	}
	mustApply(t, srv, service("another", "NodePort", "{port: 80, nodePort: 30002}"))

	// Patches keep what the hub gave and refuse what apply refuses.
	code, body := call(t, srv, "PATCH", "/api/v1/namespaces/default/services/web", `{"metadata":{"labels":{"tier":"front"}}}`)
	if code != 200 || getService(t, srv, "web").Spec.ClusterIP != ip {
		t.Fatalf("label patch: %d %s", code, body)
	}
	code, body = call(t, srv, "PATCH", "/api/v1/namespaces/default/services/web", `{"spec":{"clusterIP":"10.43.0.98","clusterIPs":null}}`)
	if code != 422 || !strings.Contains(string(body), "spec.clusterIP: field is immutable") {
		t.Fatalf("clusterIP patch: %d %s", code, body)
	}
	code, body = call(t, srv, "PATCH", "/api/v1/namespaces/default/services/web", `{"spec":{"type":"NodePort","ports":[{"name":"http","port":80,"nodePort":30002}]}}`)
	if code != 422 || !strings.Contains(string(body), "spec.ports[0].nodePort: 30002/TCP is already allocated to Service default/another") {
		t.Fatalf("node port patch: %d %s", code, body)
	}
}

// TestApplyChecksTargetPortNames: a targetPort name is checked against
// the workloads the Service selects, wherever the two are written.
func TestApplyChecksTargetPortNames(t *testing.T) {
	srv, st := newNetServer(t, nil)
	named := service("web", "ClusterIP", "{port: 8099, targetPort: http}")
	wantLines(t, refused(t, srv, st, docs(webDeployment, named)),
		`document 2: spec.ports[0].targetPort: no container of the pods this Service selects (deployment.apps/web) declares a TCP port named "http"`)

	withName := strings.Replace(webDeployment, "[{containerPort: 80}]", "[{name: http, containerPort: 80}]", 1)
	mustApply(t, srv, docs(withName, named))

	// Changing the workload so that no container declares the name any
	// more is refused at the workload.
	wantLines(t, refused(t, srv, st, webDeployment),
		`document 1: spec.template.spec.containers: Service default/web targets port "http" (spec.ports[0].targetPort) of these pods, which no container declares for TCP`)

	// The protocol must match too.
	wantLines(t, refused(t, srv, st, service("web", "ClusterIP", "{port: 8099, targetPort: http, protocol: UDP}")),
		`document 1: spec.ports[0].targetPort: no container of the pods this Service selects (deployment.apps/web) declares a UDP port named "http" (container web of deployment.apps/web declares it for TCP)`)

	// A Service that selects nothing yet is accepted: its pods may come later.
	mustApply(t, srv, service("later", "ClusterIP", "{port: 80, targetPort: metrics}"))
}

// TestNodePodCIDRs: a pod subnet an operator gives a node must be a free
// node subnet of the cluster CIDR, cannot change, and is kept when a Node
// manifest leaves it out.
func TestNodePodCIDRs(t *testing.T) {
	srv, st := newNetServer(t, nil)
	node := func(name, cidr string) string {
		spec := "{}"
		if cidr != "" {
			spec = "{podCIDR: " + cidr + "}"
		}
		return "apiVersion: v1\nkind: Node\nmetadata: {name: " + name + "}\nspec: " + spec + "\n"
	}
	mustApply(t, srv, node("edge-1", "10.42.5.0/24"))
	wantLines(t, refused(t, srv, st, docs(node("edge-2", "10.42.5.0/24"), node("edge-3", "10.44.0.0/24"), node("edge-4", "10.42.6.0/25"))),
		"document 1: spec.podCIDR: 10.42.5.0/24 is already allocated to node edge-1",
		"document 2: spec.podCIDR: 10.44.0.0/24 is not inside the cluster CIDR 10.42.0.0/16 (hub serve --cluster-cidr)",
		"document 3: spec.podCIDR: 10.42.6.0/25 is a /25: node subnets are /24 (hub serve --node-cidr-mask-size)")
	wantLines(t, refused(t, srv, st, node("edge-1", "10.42.6.0/24")),
		"document 1: spec.podCIDR: field is immutable once set: the node has 10.42.5.0/24")
	wantLines(t, mustApply(t, srv, strings.Replace(node("edge-1", ""), "{name: edge-1}", "{name: edge-1, labels: {site: north}}", 1)), "Node/edge-1 configured")
	code, body := call(t, srv, "GET", "/api/v1/nodes/edge-1", "")
	var n api.Node
	if code != 200 || json.Unmarshal(body, &n) != nil || n.Spec.PodCIDR != "10.42.5.0/24" || len(n.Spec.PodCIDRs) != 1 {
		t.Fatalf("node: %d %s", code, body)
	}
}
