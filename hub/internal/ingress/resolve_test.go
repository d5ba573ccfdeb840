package ingress

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ing builds an Ingress created age after t0 from its spec in JSON.
func ing(t *testing.T, name string, age time.Duration, spec string) *api.Ingress {
	t.Helper()
	in := &api.Ingress{ObjectMeta: api.ObjectMeta{Namespace: "default", Name: name, UID: "uid-" + name, CreationTimestamp: api.NewTime(t0.Add(age))}}
	if err := json.Unmarshal([]byte(spec), &in.Spec); err != nil {
		t.Fatalf("spec of %s: %v", name, err)
	}
	return in
}

func class(name string, age time.Duration, controller string, annotations map[string]string) *api.IngressClass {
	return &api.IngressClass{
		ObjectMeta: api.ObjectMeta{Name: name, CreationTimestamp: api.NewTime(t0.Add(age)), Annotations: annotations},
		Spec:       api.IngressClassSpec{Controller: controller},
	}
}

func node(name, ip string, labels map[string]string) *api.Node {
	n := &api.Node{ObjectMeta: api.ObjectMeta{Name: name, Labels: labels}}
	if ip != "" {
		n.Status.Addresses = []api.NodeAddress{{Type: "InternalIP", Address: ip}}
	}
	return n
}

// input is a fleet of three nodes (two labelled for ingress, one of them
// in site north), Services web (port 80, unnamed) and api (http 8080,
// udp 53), and Secrets gw-tls (TLS) and plain (Opaque).
func input(ings []*api.Ingress, classes ...*api.IngressClass) Input {
	ingress := map[string]string{api.LabelIngressNode: "true"}
	nodes := []*api.Node{
		node("gw-1", "192.168.1.20", ingress),
		node("gw-2", "192.168.1.21", map[string]string{api.LabelIngressNode: "true", "site": "north"}),
		node("worker", "192.168.1.30", nil),
	}
	svcs := map[string]*api.Service{
		"default/web": {Spec: api.ServiceSpec{Ports: []api.ServicePort{{Port: 80, Protocol: api.ProtocolTCP}}}},
		"default/api": {Spec: api.ServiceSpec{Ports: []api.ServicePort{
			{Name: "http", Port: 8080, Protocol: api.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: api.ProtocolUDP}}}},
	}
	secrets := map[string]string{"default/gw-tls": api.SecretTypeTLS, "default/plain": api.SecretTypeOpaque}
	return Input{
		Ingresses: ings, Classes: classes, Nodes: nodes,
		Service: func(ns, name string) *api.Service { return svcs[ns+"/"+name] },
		SecretType: func(ns, name string) (string, bool) {
			t, ok := secrets[ns+"/"+name]
			return t, ok
		},
	}
}

func served(t *testing.T, p Plan, name string) *Served {
	t.Helper()
	for _, s := range p.Served {
		if s.Ingress.Name == name {
			return s
		}
	}
	t.Fatalf("%s is not served; served: %d, not served: %+v", name, len(p.Served), p.NotServed)
	return nil
}

func reasons(s *Served) []string {
	var out []string
	for _, p := range s.Problems {
		out = append(out, p.Reason+": "+p.Message)
	}
	return out
}

const webRule = `{"rules":[{"host":"gateway.local","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}`

// TestClassesChooseNodes: an Ingress without a class is served by the
// nodes labelled for ingress while no class is the default, by the
// default class's nodes once one is, and by its own class's otherwise;
// classes of other controllers and missing classes are not served.
func TestClassesChooseNodes(t *testing.T) {
	classless := ing(t, "classless", 0, webRule)
	named := func(name, class string) *api.Ingress {
		in := ing(t, name, time.Minute, strings.Replace(webRule, "gateway.local", name+".local", 1))
		in.Spec.IngressClassName = &class
		return in
	}
	north := class("north", 0, api.IngressController, map[string]string{api.AnnotationIngressNodeSelector: "site=north"})
	every := class("every", 0, api.IngressController, map[string]string{api.AnnotationIngressNodeSelector: ""})

	p := Resolve(input([]*api.Ingress{classless, named("a", "north"), named("b", "every")}, north, every))
	if s := served(t, p, "classless"); !slices.Equal(s.Nodes, []string{"gw-1", "gw-2"}) || !slices.Equal(s.Addresses, []string{"192.168.1.20", "192.168.1.21"}) || s.Class != nil {
		t.Errorf("classless: nodes %v, addresses %v", s.Nodes, s.Addresses)
	}
	if s := served(t, p, "a"); !slices.Equal(s.Nodes, []string{"gw-2"}) {
		t.Errorf("class north: nodes %v", s.Nodes)
	}
	if s := served(t, p, "b"); !slices.Equal(s.Nodes, []string{"gw-1", "gw-2", "worker"}) {
		t.Errorf("an empty selector: nodes %v", s.Nodes)
	}

	// The default class serves the classless; of two defaults the newer.
	def := func(c *api.IngressClass) *api.IngressClass {
		c.Annotations = map[string]string{api.AnnotationIsDefaultClass: "true", api.AnnotationIngressNodeSelector: c.Annotations[api.AnnotationIngressNodeSelector]}
		return c
	}
	p = Resolve(input([]*api.Ingress{classless}, def(class("north", time.Hour, api.IngressController, map[string]string{api.AnnotationIngressNodeSelector: "site=north"}))))
	if s := served(t, p, "classless"); !slices.Equal(s.Nodes, []string{"gw-2"}) || s.Class.Name != "north" || len(s.Problems) != 0 {
		t.Errorf("default class: nodes %v, problems %v", s.Nodes, reasons(s))
	}
	older := def(class("all", 0, api.IngressController, map[string]string{api.AnnotationIngressNodeSelector: ""}))
	newer := def(class("north", time.Hour, api.IngressController, map[string]string{api.AnnotationIngressNodeSelector: "site=north"}))
	p = Resolve(input([]*api.Ingress{classless}, older, newer))
	s := served(t, p, "classless")
	want := []string{"SeveralDefaultClasses: several IngressClasses are the default (all, north): the newest, north, serves the Ingress"}
	if s.Class.Name != "north" || !slices.Equal(reasons(s), want) {
		t.Errorf("two defaults: class %s, problems %v", s.Class.Name, reasons(s))
	}

	// Another controller's default class takes the classless away; a
	// missing class or another controller's named class is said.
	nginx := class("nginx", 0, "k8s.io/ingress-nginx", map[string]string{api.AnnotationIsDefaultClass: "true"})
	p = Resolve(input([]*api.Ingress{classless, named("n", "nginx"), named("m", "missing")}, nginx))
	if len(p.Served) != 0 || len(p.NotServed) != 2 {
		t.Fatalf("served %d, not served %d", len(p.Served), len(p.NotServed))
	}
	got := []string{reasons(p.NotServed[0])[0], reasons(p.NotServed[1])[0]}
	want = []string{
		`IngressClassMissing: IngressClass "missing" not found: the Ingress is not served`,
		`NotFlotillaClass: IngressClass "nginx" is controller "k8s.io/ingress-nginx"'s, not flotilla.io/ingress: Flotilla does not serve the Ingress`,
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("not served:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A class that selects nothing is said too.
	none := class("none", 0, api.IngressController, map[string]string{api.AnnotationIngressNodeSelector: "site=south"})
	p = Resolve(input([]*api.Ingress{named("x", "none")}, none))
	if s := served(t, p, "x"); len(s.Nodes) != 0 || !slices.Equal(reasons(s), []string{`NoIngressNodes: no node that IngressClass "none" selects (site=south): the Ingress is not served`}) {
		t.Errorf("no nodes: %v %v", s.Nodes, reasons(s))
	}
}

// TestBackendsResolve: a backend's port by number or name becomes the
// Service port's name and number; a missing Service, a missing port and a
// UDP port are said and sent as missing (the agent answers 503).
func TestBackendsResolve(t *testing.T) {
	in := ing(t, "gw", 0, `{"defaultBackend":{"service":{"name":"web","port":{"number":80}}},
	 "rules":[{"host":"Gateway.Local","http":{"paths":[
	  {"path":"/api","pathType":"Prefix","backend":{"service":{"name":"api","port":{"name":"http"}}}},
	  {"path":"/x","pathType":"ImplementationSpecific","backend":{"service":{"name":"gone","port":{"number":80}}}},
	  {"pathType":"ImplementationSpecific","backend":{"service":{"name":"api","port":{"number":9090}}}},
	  {"path":"/dns","pathType":"Exact","backend":{"service":{"name":"api","port":{"name":"dns"}}}}]}}]}`)
	in.Annotations = map[string]string{api.AnnotationBackendProtocol: "h2c"}
	s := served(t, Resolve(input([]*api.Ingress{in})), "gw")
	got, _ := json.Marshal(s.Wire)
	want := `{"namespace":"default","name":"gw","rules":[{"host":"gateway.local","paths":[` +
		`{"path":"/api","type":"Prefix","backend":{"service":"api","portName":"http","port":8080}},` +
		`{"path":"/x","type":"Prefix","backend":{"service":"gone","missing":"service \"gone\" not found"}},` +
		`{"path":"/","type":"Prefix","backend":{"service":"api","missing":"service \"api\" has no TCP port 9090"}},` +
		`{"path":"/dns","type":"Exact","backend":{"service":"api","missing":"service \"api\" has no TCP port dns"}}]}],` +
		`"defaultBackend":{"service":"web","port":80},"backendProtocol":"h2c"}`
	if string(got) != want {
		t.Errorf("wire\n%s\nwant\n%s", got, want)
	}
	wantProblems := []string{
		`BackendNotFound: Service "default/gone" not found: requests to it are answered 503`,
		`BackendNotFound: Service "default/api" has no TCP port 9090: requests to it are answered 503`,
		`BackendNotFound: Service "default/api" has no TCP port dns: requests to it are answered 503`,
	}
	if !slices.Equal(reasons(s), wantProblems) {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(reasons(s), "\n"), strings.Join(wantProblems, "\n"))
	}
}

// TestOlderIngressWins: of two Ingresses that claim the same host and
// path (as Prefix and ImplementationSpecific, or with a trailing slash),
// the same default backend or the same TLS host, the older keeps it and
// the newer is told whose it is; what only one claims stays with it.
func TestOlderIngressWins(t *testing.T) {
	old := ing(t, "old", 0, `{"defaultBackend":{"service":{"name":"web","port":{"number":80}}},
	 "tls":[{"hosts":["gateway.local"],"secretName":"gw-tls"}],
	 "rules":[{"host":"gateway.local","http":{"paths":[{"path":"/api","pathType":"Prefix","backend":{"service":{"name":"api","port":{"number":8080}}}}]}}]}`)
	young := ing(t, "young", time.Minute, `{"defaultBackend":{"service":{"name":"api","port":{"number":8080}}},
	 "tls":[{"hosts":["gateway.local","api.gateway.local"],"secretName":"gw-tls"}],
	 "rules":[{"host":"gateway.local","http":{"paths":[
	   {"path":"/api/","pathType":"ImplementationSpecific","backend":{"service":{"name":"web","port":{"number":80}}}},
	   {"path":"/api","pathType":"Exact","backend":{"service":{"name":"web","port":{"number":80}}}}]}},
	  {"host":"other.local","http":{"paths":[{"path":"/api","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}`)
	// The order given does not matter: age does.
	p := Resolve(input([]*api.Ingress{young, old}))
	if p.Served[0].Ingress.Name != "old" {
		t.Fatalf("order: %s first", p.Served[0].Ingress.Name)
	}
	o, y := served(t, p, "old"), served(t, p, "young")
	if len(o.Problems) != 0 || len(o.Wire.Rules) != 1 || o.Wire.DefaultBackend == nil || !slices.Equal(o.Wire.TLS[0].Hosts, []string{"gateway.local"}) {
		t.Errorf("old lost something: %+v, problems %v", o.Wire, reasons(o))
	}
	got, _ := json.Marshal(y.Wire)
	want := `{"namespace":"default","name":"young","rules":[` +
		`{"host":"gateway.local","paths":[{"path":"/api","type":"Exact","backend":{"service":"web","port":80}}]},` +
		`{"host":"other.local","paths":[{"path":"/api","type":"Prefix","backend":{"service":"web","port":80}}]}],` +
		`"tls":[{"hosts":["api.gateway.local"],"secretName":"gw-tls"}],"backendProtocol":"http"}`
	if string(got) != want {
		t.Errorf("young\n%s\nwant\n%s", got, want)
	}
	wantProblems := []string{
		"RouteConflict: the default backend is the older Ingress default/old's: this one's is not served",
		`RouteConflict: host "gateway.local" path "/api/" (Prefix) is routed by the older Ingress default/old: this one's route is not served`,
		`RouteConflict: the certificate for "gateway.local" is the older Ingress default/old's: this one's Secret "gw-tls" is not used for it`,
	}
	if !slices.Equal(reasons(y), wantProblems) {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(reasons(y), "\n"), strings.Join(wantProblems, "\n"))
	}
	if !slices.Equal(y.Secrets, []string{"gw-tls"}) {
		t.Errorf("young's secrets %v", y.Secrets)
	}
}

// TestTLSSecrets: a TLS entry whose Secret is missing or not a TLS Secret
// is said and left out, and its Secret is not sent.
func TestTLSSecrets(t *testing.T) {
	in := ing(t, "gw", 0, `{"defaultBackend":{"service":{"name":"web","port":{"number":80}}},
	 "tls":[{"hosts":["a.local"],"secretName":"gw-tls"},{"hosts":["b.local"],"secretName":"plain"},{"hosts":["c.local"],"secretName":"gone"},{"secretName":"gw-tls"}]}`)
	s := served(t, Resolve(input([]*api.Ingress{in})), "gw")
	want := []wire.IngressTLS{{Hosts: []string{"a.local"}, SecretName: "gw-tls"}, {SecretName: "gw-tls"}}
	got, _ := json.Marshal(s.Wire.TLS)
	wantJSON, _ := json.Marshal(want)
	if string(got) != string(wantJSON) || !slices.Equal(s.Secrets, []string{"gw-tls"}) {
		t.Errorf("tls %s, secrets %v", got, s.Secrets)
	}
	wantProblems := []string{
		`TLSSecretNotTLS: TLS Secret "plain" is of type Opaque, not kubernetes.io/tls: HTTPS for b.local is not served`,
		`TLSSecretMissing: TLS Secret "gone" not found: HTTPS for c.local is not served`,
	}
	if !slices.Equal(reasons(s), wantProblems) {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(reasons(s), "\n"), strings.Join(wantProblems, "\n"))
	}
}
