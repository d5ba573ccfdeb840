package printer

import (
	"bytes"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func strp(s string) *string { return &s }

// testIngresses: the gateway (two hosts, a path split, TLS, a default
// backend, served by two nodes), one with no host and no class, and one
// with six hosts served by three nodes.
func testIngresses() []*api.Ingress {
	prefix, exact := api.PathTypePrefix, api.PathTypeExact
	backend := func(svc string, port api.ServiceBackendPort) api.IngressBackend {
		return api.IngressBackend{Service: &api.IngressServiceBackend{Name: svc, Port: port}}
	}
	web := backend("web", api.ServiceBackendPort{Number: 8099})
	gw := &api.Ingress{
		ObjectMeta: meta("default", "gateway", 5*time.Minute, nil),
		Spec: api.IngressSpec{
			IngressClassName: strp("edge"),
			DefaultBackend:   &web,
			TLS:              []api.IngressTLS{{Hosts: []string{"gateway.local", "api.gateway.local"}, SecretName: "gateway-tls"}},
			Rules: []api.IngressRule{
				{Host: "gateway.local", IngressRuleValue: api.IngressRuleValue{HTTP: &api.HTTPIngressRuleValue{Paths: []api.HTTPIngressPath{
					{Path: "/", PathType: &prefix, Backend: web},
					{Path: "/api", PathType: &prefix, Backend: backend("sensors", api.ServiceBackendPort{Name: "http"})},
				}}}},
				{Host: "api.gateway.local", IngressRuleValue: api.IngressRuleValue{HTTP: &api.HTTPIngressRuleValue{Paths: []api.HTTPIngressPath{
					{Path: "/healthz", PathType: &exact, Backend: backend("gone", api.ServiceBackendPort{Number: 80})},
				}}}},
			},
		},
		Status: api.IngressStatus{LoadBalancer: api.IngressLoadBalancerStatus{Ingress: []api.IngressLoadBalancerIngress{{IP: "192.168.1.20"}, {IP: "192.168.1.21"}}}},
	}
	any := &api.Ingress{
		ObjectMeta: meta("default", "any", 90*time.Second, nil),
		Spec:       api.IngressSpec{DefaultBackend: &web},
	}
	var rules []api.IngressRule
	for _, h := range []string{"a.example", "b.example", "c.example", "d.example", "e.example", "f.example"} {
		rules = append(rules, api.IngressRule{Host: h})
	}
	many := &api.Ingress{
		ObjectMeta: meta("default", "many", 49*time.Hour, nil),
		Spec:       api.IngressSpec{IngressClassName: strp("edge"), Rules: rules},
		Status: api.IngressStatus{LoadBalancer: api.IngressLoadBalancerStatus{Ingress: []api.IngressLoadBalancerIngress{
			{IP: "10.0.0.1"}, {IP: "10.0.0.2"}, {Hostname: "gw.example"}}}},
	}
	return []*api.Ingress{gw, any, many}
}

func TestPrintIngresses(t *testing.T) {
	var objs []api.Object
	for _, in := range testIngresses() {
		objs = append(objs, in)
	}
	class := &api.IngressClass{ObjectMeta: meta("", "edge", 49*time.Hour, nil), Spec: api.IngressClassSpec{Controller: api.IngressController}}
	for _, tc := range []struct {
		name, kind string
		objs       []api.Object
		opts       Options
		want       string
	}{
		{"ingresses", api.KindIngress, objs, Options{}, `
NAME      CLASS    HOSTS                                                 ADDRESS            PORTS     AGE
gateway   edge     gateway.local,api.gateway.local                       192.168.1.20,...   80, 443   5m
any       <none>   *                                                                        80        90s
many      edge     a.example,b.example,c.example,d.example + 2 more...   10.0.0.1,10.0...   80        2d1h
`},
		{"ingresses wide", api.KindIngress, objs[:1], Options{Wide: true}, `
NAME      CLASS   HOSTS                             ADDRESS                     PORTS     AGE
gateway   edge    gateway.local,api.gateway.local   192.168.1.20,192.168.1.21   80, 443   5m
`},
		{"ingresses with their kind", api.KindIngress, objs[1:2], Options{WithKind: true}, `
NAME                            CLASS    HOSTS   ADDRESS   PORTS   AGE
ingress.networking.k8s.io/any   <none>   *                 80      90s
`},
		{"classes", api.KindIngressClass, []api.Object{class}, Options{}, `
NAME   CONTROLLER            PARAMETERS   AGE
edge   flotilla.io/ingress   <none>       2d1h
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			opts := tc.opts
			opts.Now = testNow
			if err := PrintTable(&b, tc.kind, tc.objs, opts); err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != text(tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, text(tc.want))
			}
		})
	}
}

func TestDescribeIngress(t *testing.T) {
	svcs := testServices()
	sensors := &api.Service{
		ObjectMeta: meta("default", "sensors", time.Hour, nil),
		Spec:       api.ServiceSpec{Ports: []api.ServicePort{{Name: "http", Port: 80}, {Name: "metrics", Port: 9100}}},
	}
	sensorsEP := &api.Endpoints{Subsets: []api.EndpointSubset{{
		Addresses: []api.EndpointAddress{{IP: "10.42.0.7"}},
		Ports:     []api.EndpointPort{{Name: "http", Port: 8080}, {Name: "metrics", Port: 9100}},
	}}}
	ev := &api.Event{
		ObjectMeta: meta("default", "gateway.x", time.Minute, nil), Type: api.EventWarning, Reason: "BackendNotFound",
		Message: `service "gone" not found`, Source: api.EventSource{Component: "ingress-controller"},
		FirstTimestamp: ago(time.Minute), LastTimestamp: ago(time.Minute), Count: 1,
	}
	out := describe(t, testIngresses()[0], Related{ShowEvents: true, Events: []*api.Event{ev}, IngressBackends: map[string]IngressBackend{
		"web": {Service: svcs[0], Endpoints: webEndpoints()}, "sensors": {Service: sensors, Endpoints: sensorsEP},
	}})
	want := `
Name:             gateway
Labels:           <none>
Namespace:        default
Address:          192.168.1.20,192.168.1.21
Ingress Class:    edge
Default backend:  web:8099 (10.42.0.5:80,10.42.1.5:80,10.42.2.5:80 + 1 more...)
TLS:
  gateway-tls terminates gateway.local,api.gateway.local
Rules:
  Host               Path  Backends
  ----               ----  --------
  gateway.local      
                     /      web:8099 (10.42.0.5:80,10.42.1.5:80,10.42.2.5:80 + 1 more...)
                     /api   sensors:http (10.42.0.7:8080)
  api.gateway.local  
                     /healthz   gone:80 (<error: services "gone" not found>)
Annotations:         <none>
Events:
  Type     Reason           Age   From                Message
  ----     ------           ----  ----                -------
  Warning  BackendNotFound  60s   ingress-controller  service "gone" not found
`
	if out != text(want) {
		t.Errorf("got:\n%s\nwant:\n%s", out, text(want))
	}

	out = describe(t, testIngresses()[1], Related{IngressBackends: map[string]IngressBackend{"web": {Service: svcs[0]}}})
	want = `
Name:             any
Labels:           <none>
Namespace:        default
Address:          
Ingress Class:    <none>
Default backend:  web:8099 (<none>)
Rules:
  Host        Path  Backends
  ----        ----  --------
  *           *     web:8099 (<none>)
Annotations:  <none>
`
	if out != text(want) {
		t.Errorf("got:\n%s\nwant:\n%s", out, text(want))
	}

	class := &api.IngressClass{ObjectMeta: meta("", "edge", time.Hour, nil), Spec: api.IngressClassSpec{Controller: api.IngressController}}
	class.Annotations = map[string]string{api.AnnotationIsDefaultClass: "true"}
	out = describe(t, class, Related{})
	want = `
Name:         edge
Labels:       <none>
Annotations:  ingressclass.kubernetes.io/is-default-class: true
Controller:   flotilla.io/ingress
`
	if out != text(want) {
		t.Errorf("got:\n%s\nwant:\n%s", out, text(want))
	}
}
