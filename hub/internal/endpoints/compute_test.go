package endpoints

import (
	"fmt"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// pod is a Running, Ready pod of app=web on node with ip; opts change it.
func pod(name, node, ip string, opts ...func(*api.Pod)) *api.Pod {
	p := &api.Pod{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: name, UID: "uid-" + name, Labels: map[string]string{"app": "web"}},
		Spec: api.PodSpec{NodeName: node, Containers: []api.Container{{Name: "web", Image: "httpd",
			Ports: []api.ContainerPort{{ContainerPort: 80}}}}},
		Status: api.PodStatus{Phase: api.PodRunning, Conditions: []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}},
	}
	if ip != "" {
		p.Status.PodIP, p.Status.PodIPs = ip, []api.PodIP{{IP: ip}}
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func notReady(p *api.Pod) { p.Status.Conditions[0].Status = api.ConditionFalse }

func ports(ps ...api.ContainerPort) func(*api.Pod) {
	return func(p *api.Pod) { p.Spec.Containers[0].Ports = ps }
}

func service(mod ...func(*api.Service)) *api.Service {
	s := &api.Service{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindService},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-svc-web"},
		Spec: api.ServiceSpec{Type: api.ServiceTypeNodePort, ClusterIP: "10.43.0.10", Selector: map[string]string{"app": "web"},
			Ports: []api.ServicePort{{Protocol: api.ProtocolTCP, Port: 8099, TargetPort: api.FromInt(80), NodePort: 30080}}},
	}
	for _, m := range mod {
		m(s)
	}
	return s
}

// render writes subsets compactly: each subset as
// "READY | NOTREADY : PORTS", an address as ip(node/pod[,hostname]).
func render(subsets []api.EndpointSubset) string {
	addrs := func(as []api.EndpointAddress) string {
		var out []string
		for _, a := range as {
			s := a.IP + "(" + a.NodeName
			if r := a.TargetRef; r != nil {
				if r.Kind != api.KindPod || r.Namespace != "default" || r.UID != "uid-"+r.Name {
					s += "/BADREF"
				}
				s += "/" + r.Name
			}
			if a.Hostname != "" {
				s += "," + a.Hostname
			}
			out = append(out, s+")")
		}
		return strings.Join(out, " ")
	}
	var out []string
	for _, s := range subsets {
		var ps []string
		for _, p := range s.Ports {
			ps = append(ps, fmt.Sprintf("%s:%d/%s", p.Name, p.Port, p.Protocol))
		}
		out = append(out, addrs(s.Addresses)+" | "+addrs(s.NotReadyAddresses)+" : "+strings.Join(ps, " "))
	}
	return strings.Join(out, "; ")
}

// TestSubsets is the endpoint computation, case by case.
func TestSubsets(t *testing.T) {
	named := func(s *api.Service) {
		s.Spec.Ports = []api.ServicePort{
			{Name: "http", Protocol: api.ProtocolTCP, Port: 80, TargetPort: api.FromString("http")},
			{Name: "metrics", Protocol: api.ProtocolTCP, Port: 9100, TargetPort: api.FromInt(9100)},
		}
	}
	headless := func(s *api.Service) { s.Spec.ClusterIP, s.Spec.Type = api.ClusterIPNone, api.ServiceTypeClusterIP }
	for _, tc := range []struct {
		name     string
		svc      *api.Service
		pods     []*api.Pod
		notReady []string // nodes not Ready
		want     string
	}{
		{name: "no pods", svc: service(), want: ""},
		{
			name:     "ready, not ready, ready on a NotReady node",
			svc:      service(),
			pods:     []*api.Pod{pod("a", "n1", "10.42.0.5"), pod("b", "n1", "10.42.0.6", notReady), pod("c", "n2", "10.42.1.5")},
			notReady: []string{"n2"},
			want:     "10.42.0.5(n1/a) | 10.42.0.6(n1/b) 10.42.1.5(n2/c) : :80/TCP",
		},
		{
			name: "a NodeLost pod (Unknown, not Ready) keeps its address, not ready",
			svc:  service(),
			pods: []*api.Pod{pod("a", "n1", "10.42.0.5", func(p *api.Pod) {
				p.Status.Phase, p.Status.Reason = api.PodUnknown, "NodeLost"
				notReady(p)
			})},
			notReady: []string{"n1"},
			want:     " | 10.42.0.5(n1/a) : :80/TCP",
		},
		{
			name: "a node the hub does not know is not Ready",
			svc:  service(),
			pods: []*api.Pod{pod("a", "gone", "10.42.0.5")},
			want: " | 10.42.0.5(gone/a) : :80/TCP",
		},
		{
			name: "left out: no address, finished, unbound",
			svc:  service(),
			pods: []*api.Pod{
				pod("noip", "n1", ""),
				pod("done", "n1", "10.42.0.7", func(p *api.Pod) { p.Status.Phase = api.PodSucceeded }),
				pod("failed", "n1", "10.42.0.8", func(p *api.Pod) { p.Status.Phase = api.PodFailed }),
				pod("unbound", "", "10.42.0.9"),
				pod("a", "n1", "10.42.0.5"),
			},
			want: "10.42.0.5(n1/a) |  : :80/TCP",
		},
		{
			name: "pending with an address: not ready",
			svc:  service(),
			pods: []*api.Pod{pod("a", "n1", "10.42.0.5", func(p *api.Pod) { p.Status.Phase, p.Status.Conditions = api.PodPending, nil })},
			want: " | 10.42.0.5(n1/a) : :80/TCP",
		},
		{
			name: "addresses in numeric order, whatever the pods' order",
			svc:  service(),
			pods: []*api.Pod{pod("c", "n1", "10.42.0.10"), pod("a", "n1", "10.42.0.9"), pod("b", "n1", "10.42.0.100")},
			want: "10.42.0.9(n1/a) 10.42.0.10(n1/c) 10.42.0.100(n1/b) |  : :80/TCP",
		},
		{
			name: "the IPv4 one of podIPs; podIP alone; IPv6 only is left out",
			svc:  service(),
			pods: []*api.Pod{
				pod("dual", "n1", "", func(p *api.Pod) {
					p.Status.PodIP, p.Status.PodIPs = "fd00::5", []api.PodIP{{IP: "fd00::5"}, {IP: "10.42.0.5"}}
				}),
				pod("legacy", "n1", "", func(p *api.Pod) { p.Status.PodIP = "10.42.0.6" }),
				pod("v6", "n1", "", func(p *api.Pod) { p.Status.PodIP, p.Status.PodIPs = "fd00::7", []api.PodIP{{IP: "fd00::7"}} }),
				pod("junk", "n1", "", func(p *api.Pod) { p.Status.PodIP, p.Status.PodIPs = "not-an-ip", []api.PodIP{{IP: "not-an-ip"}} }),
			},
			want: "10.42.0.5(n1/dual) 10.42.0.6(n1/legacy) |  : :80/TCP",
		},
		{
			name: "named targetPort resolved per pod; a pod without the name is left out of that port only",
			svc:  service(named),
			pods: []*api.Pod{
				pod("a", "n1", "10.42.0.5", ports(api.ContainerPort{Name: "http", ContainerPort: 8080})),
				pod("b", "n1", "10.42.0.6", ports(api.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: api.ProtocolTCP})),
				pod("c", "n2", "10.42.1.5", ports(api.ContainerPort{Name: "http", ContainerPort: 9090})),
				pod("d", "n2", "10.42.1.6", ports(api.ContainerPort{Name: "web", ContainerPort: 80})),
				pod("e", "n2", "10.42.1.7", ports(api.ContainerPort{Name: "http", ContainerPort: 8080, Protocol: api.ProtocolUDP})),
			},
			want: "10.42.0.5(n1/a) 10.42.0.6(n1/b) |  : http:8080/TCP; " +
				"10.42.0.5(n1/a) 10.42.0.6(n1/b) 10.42.1.5(n2/c) 10.42.1.6(n2/d) 10.42.1.7(n2/e) |  : metrics:9100/TCP; " +
				"10.42.1.5(n2/c) |  : http:9090/TCP",
		},
		{
			name: "ports the same pods serve share a subset, sorted by name",
			svc: service(func(s *api.Service) {
				s.Spec.Ports = []api.ServicePort{
					{Name: "web", Protocol: api.ProtocolTCP, Port: 80, TargetPort: api.FromInt(80)},
					{Name: "dns", Protocol: api.ProtocolUDP, Port: 53, TargetPort: api.FromInt(5353)},
				}
			}),
			pods: []*api.Pod{pod("a", "n1", "10.42.0.5"), pod("b", "n1", "10.42.0.6", notReady)},
			want: "10.42.0.5(n1/a) | 10.42.0.6(n1/b) : dns:5353/UDP web:80/TCP",
		},
		{
			name: "no targetPort: the Service port",
			svc:  service(func(s *api.Service) { s.Spec.Ports[0].TargetPort = api.IntOrString{} }),
			pods: []*api.Pod{pod("a", "n1", "10.42.0.5")},
			want: "10.42.0.5(n1/a) |  : :8099/TCP",
		},
		{
			name: "hostname only when the subdomain names the Service",
			svc:  service(headless),
			pods: []*api.Pod{
				pod("a", "n1", "10.42.0.5", func(p *api.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "web-0", "web" }),
				pod("b", "n1", "10.42.0.6", func(p *api.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "web-1", "other" }),
				pod("c", "n1", "10.42.0.7", func(p *api.Pod) { p.Spec.Subdomain = "web" }),
			},
			want: "10.42.0.5(n1/a,web-0) 10.42.0.6(n1/b) 10.42.0.7(n1/c) |  : :80/TCP",
		},
		{
			name: "headless without ports: addresses without ports",
			svc:  service(headless, func(s *api.Service) { s.Spec.Ports = nil }),
			pods: []*api.Pod{pod("a", "n1", "10.42.0.5"), pod("b", "n1", "10.42.0.6", notReady)},
			want: "10.42.0.5(n1/a) | 10.42.0.6(n1/b) : ",
		},
		{
			name: "not headless, without ports: nothing",
			svc:  service(func(s *api.Service) { s.Spec.Ports = nil }),
			pods: []*api.Pod{pod("a", "n1", "10.42.0.5")},
			want: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			down := map[string]bool{}
			for _, n := range tc.notReady {
				down[n] = true
			}
			known := func(n string) bool { return n == "n1" || n == "n2" }
			got := render(Subsets(tc.svc, tc.pods, func(n string) bool { return known(n) && !down[n] }))
			if got != tc.want {
				t.Fatalf("subsets\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestPodIndex: the index finds exactly the pods of the namespace that
// have every label of the selector, as a scan would.
func TestPodIndex(t *testing.T) {
	mk := func(ns, name string, labels map[string]string) *api.Pod {
		p := pod(name, "n1", "10.42.0.1")
		p.Namespace, p.Labels = ns, labels
		return p
	}
	pods := []*api.Pod{
		mk("default", "a", map[string]string{"app": "web", "tier": "front"}),
		mk("default", "b", map[string]string{"app": "web"}),
		mk("other", "c", map[string]string{"app": "web", "tier": "front"}),
		mk("default", "d", map[string]string{"app": "db", "tier": "front"}),
		mk("default", "e", nil),
	}
	idx := indexPods(pods)
	for _, tc := range []struct {
		ns       string
		selector map[string]string
		want     string
	}{
		{"default", map[string]string{"app": "web"}, "a b"},
		{"default", map[string]string{"app": "web", "tier": "front"}, "a"},
		{"default", map[string]string{"tier": "front"}, "a d"},
		{"other", map[string]string{"app": "web"}, "c"},
		{"default", map[string]string{"app": "none"}, ""},
		{"default", map[string]string{"app": "web", "zone": "x"}, ""},
	} {
		var got []string
		for _, p := range idx.matching(tc.ns, tc.selector) {
			got = append(got, p.Name)
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.ns, tc.selector, g, tc.want)
		}
	}
}
