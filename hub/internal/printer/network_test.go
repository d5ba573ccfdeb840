package printer

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func int32p(v int32) *int32 { return &v }

// testServices: the NodePort Service, a ClusterIP Service with two
// ports and ClientIP affinity, and a headless one.
func testServices() []*api.Service {
	web := &api.Service{
		ObjectMeta: meta("default", "web", 5*time.Minute, nil),
		Spec: api.ServiceSpec{
			Type: api.ServiceTypeNodePort, Selector: map[string]string{"app": "web"},
			ClusterIP: "10.43.1.17", ClusterIPs: []string{"10.43.1.17"},
			IPFamilies: []api.IPFamily{api.IPv4Protocol}, IPFamilyPolicy: api.IPFamilyPolicySingleStack,
			Ports:                 []api.ServicePort{{Protocol: api.ProtocolTCP, Port: 8099, TargetPort: api.FromInt(80), NodePort: 30080}},
			SessionAffinity:       api.ServiceAffinityNone,
			InternalTrafficPolicy: api.ServiceTrafficPolicyCluster, ExternalTrafficPolicy: api.ServiceTrafficPolicyCluster,
		},
	}
	dns := &api.Service{
		ObjectMeta: meta("kube-system", "dns", 49*time.Hour, map[string]string{"k8s-app": "dns"}),
		Spec: api.ServiceSpec{
			Type: api.ServiceTypeClusterIP, Selector: map[string]string{"k8s-app": "dns", "tier": "infra"},
			ClusterIP: "10.43.0.10", ClusterIPs: []string{"10.43.0.10"},
			IPFamilies: []api.IPFamily{api.IPv4Protocol}, IPFamilyPolicy: api.IPFamilyPolicySingleStack,
			Ports: []api.ServicePort{
				{Name: "dns", Protocol: api.ProtocolUDP, Port: 53, TargetPort: api.FromString("dns")},
				{Name: "dns-tcp", Protocol: api.ProtocolTCP, Port: 53, TargetPort: api.FromInt(5353)},
			},
			SessionAffinity:       api.ServiceAffinityClientIP,
			SessionAffinityConfig: &api.SessionAffinityConfig{ClientIP: &api.ClientIPConfig{TimeoutSeconds: int32p(10800)}},
			InternalTrafficPolicy: api.ServiceTrafficPolicyLocal,
		},
	}
	db := &api.Service{
		ObjectMeta: meta("default", "db", 90*time.Second, nil),
		Spec: api.ServiceSpec{
			Type: api.ServiceTypeClusterIP, ClusterIP: api.ClusterIPNone, ClusterIPs: []string{api.ClusterIPNone},
			SessionAffinity: api.ServiceAffinityNone,
		},
	}
	return []*api.Service{web, dns, db}
}

// webEndpoints: four ready pods and one that is not.
func webEndpoints() *api.Endpoints {
	var ready []api.EndpointAddress
	for i := range 4 {
		ready = append(ready, api.EndpointAddress{IP: fmt.Sprintf("10.42.%d.5", i), NodeName: fmt.Sprintf("edge-%d", i)})
	}
	return &api.Endpoints{
		ObjectMeta: meta("default", "web", 5*time.Minute, nil),
		Subsets: []api.EndpointSubset{{
			Addresses:         ready,
			NotReadyAddresses: []api.EndpointAddress{{IP: "10.42.9.5"}},
			Ports:             []api.EndpointPort{{Port: 80, Protocol: api.ProtocolTCP}},
		}},
	}
}

func TestPrintServicesAndEndpoints(t *testing.T) {
	var svcs []api.Object
	for _, s := range testServices() {
		svcs = append(svcs, s)
	}
	dnsEP := &api.Endpoints{
		ObjectMeta: meta("kube-system", "dns", 49*time.Hour, nil),
		Subsets: []api.EndpointSubset{{
			Addresses: []api.EndpointAddress{{IP: "10.42.0.9"}},
			Ports:     []api.EndpointPort{{Name: "dns", Port: 5353, Protocol: api.ProtocolUDP}, {Name: "dns-tcp", Port: 5353, Protocol: api.ProtocolTCP}},
		}},
	}
	notReady := &api.Endpoints{
		ObjectMeta: meta("default", "starting", time.Minute, nil),
		Subsets:    []api.EndpointSubset{{NotReadyAddresses: []api.EndpointAddress{{IP: "10.42.0.7"}}, Ports: []api.EndpointPort{{Port: 80}}}},
	}
	headless := &api.Endpoints{
		ObjectMeta: meta("default", "db", 90*time.Second, nil),
		Subsets:    []api.EndpointSubset{{Addresses: []api.EndpointAddress{{IP: "10.42.0.8"}, {IP: "10.42.1.8"}}}},
	}
	empty := &api.Endpoints{ObjectMeta: meta("default", "later", 10*time.Second, nil)}
	eps := []api.Object{webEndpoints(), dnsEP, notReady, headless, empty}
	for _, tc := range []struct {
		name, kind string
		objs       []api.Object
		opts       Options
		want       string
	}{
		{"services", api.KindService, svcs, Options{}, `
NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)          AGE
web    NodePort    10.43.1.17   <none>        8099:30080/TCP   5m
dns    ClusterIP   10.43.0.10   <none>        53/UDP,53/TCP    2d1h
db     ClusterIP   None         <none>        <none>           90s
`},
		{"services wide", api.KindService, svcs, Options{Wide: true}, `
NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)          AGE    SELECTOR
web    NodePort    10.43.1.17   <none>        8099:30080/TCP   5m     app=web
dns    ClusterIP   10.43.0.10   <none>        53/UDP,53/TCP    2d1h   k8s-app=dns,tier=infra
db     ClusterIP   None         <none>        <none>           90s    <none>
`},
		{"services with their kind", api.KindService, svcs[:1], Options{WithKind: true}, `
NAME          TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)          AGE
service/web   NodePort   10.43.1.17   <none>        8099:30080/TCP   5m
`},
		{"endpoints with their kind", api.KindEndpoints, eps[:1], Options{WithKind: true}, `
NAME            ENDPOINTS                                            AGE
endpoints/web   10.42.0.5:80,10.42.1.5:80,10.42.2.5:80 + 1 more...   5m
`},
		{"endpoints", api.KindEndpoints, eps, Options{}, `
NAME       ENDPOINTS                                            AGE
web        10.42.0.5:80,10.42.1.5:80,10.42.2.5:80 + 1 more...   5m
dns        10.42.0.9:5353,10.42.0.9:5353                        2d1h
starting                                                        60s
db         10.42.0.8,10.42.1.8                                  90s
later      <none>                                               10s
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

func TestDescribeService(t *testing.T) {
	svcs := testServices()
	ev := func(reason, msg string, first, last time.Duration, count int32) *api.Event {
		return &api.Event{
			ObjectMeta: meta("default", "web."+reason, first, nil), Type: api.EventWarning, Reason: reason, Message: msg,
			Source: api.EventSource{Component: "endpoints-controller"}, FirstTimestamp: ago(first), LastTimestamp: ago(last), Count: count,
		}
	}
	out := describe(t, svcs[0], Related{Endpoints: webEndpoints(), ShowEvents: true, Events: []*api.Event{
		ev("FailedToUpdateEndpoint", "pod web-2 has no address yet ", 3*time.Minute, 30*time.Second, 4),
		ev("NoReadyPods", "no pod is ready", 4*time.Minute, 4*time.Minute, 1),
	}})
	want := `
Name:                     web
Namespace:                default
Labels:                   <none>
Annotations:              <none>
Selector:                 app=web
Type:                     NodePort
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.43.1.17
IPs:                      10.43.1.17
Port:                     <unset>  8099/TCP
TargetPort:               80/TCP
NodePort:                 <unset>  30080/TCP
Endpoints:                10.42.0.5:80,10.42.1.5:80,10.42.2.5:80 + 1 more...
Session Affinity:         None
External Traffic Policy:  Cluster
Internal Traffic Policy:  Cluster
Events:
  Type     Reason                  Age               From                  Message
  ----     ------                  ----              ----                  -------
  Warning  NoReadyPods             4m                endpoints-controller  no pod is ready
  Warning  FailedToUpdateEndpoint  30s (x4 over 3m)  endpoints-controller  pod web-2 has no address yet
`
	if out != text(want) {
		t.Errorf("got:\n%s\nwant:\n%s", out, text(want))
	}

	// Two named ports, each with its endpoints; no Endpoints yet; no events.
	out = describe(t, svcs[1], Related{ShowEvents: true})
	want = `
Name:                     dns
Namespace:                kube-system
Labels:                   k8s-app=dns
Annotations:              <none>
Selector:                 k8s-app=dns,tier=infra
Type:                     ClusterIP
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.43.0.10
IPs:                      10.43.0.10
Port:                     dns  53/UDP
TargetPort:               dns/UDP
Endpoints:                <none>
Port:                     dns-tcp  53/TCP
TargetPort:               5353/TCP
Endpoints:                <none>
Session Affinity:         ClientIP
Internal Traffic Policy:  Local
Events:                   <none>
`
	if out != text(want) {
		t.Errorf("got:\n%s\nwant:\n%s", out, text(want))
	}
	wantLines(t, describe(t, svcs[2], Related{}), "IP:                None", "IPs:               None", "IP Families:       <none>")
}

func TestDescribeEndpoints(t *testing.T) {
	out := describe(t, webEndpoints(), Related{ShowEvents: true})
	want := `
Name:         web
Namespace:    default
Labels:       <none>
Annotations:  <none>
Subsets:
  Addresses:          10.42.0.5,10.42.1.5,10.42.2.5,10.42.3.5
  NotReadyAddresses:  10.42.9.5
  Ports:
    Name     Port  Protocol
    ----     ----  --------
    <unset>  80    TCP

Events:  <none>
`
	if out != text(want) {
		t.Errorf("got:\n%s\nwant:\n%s", out, text(want))
	}
}
