package manifest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// issueService is the Service of issue 15's manifest pair.
const issueService = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ports:
    - {port: 8099, targetPort: 80, protocol: TCP, nodePort: 30080}
  selector: {app: web}
`

// TestServiceLoadsAndDefaults: the issue's Service applies unchanged and
// gets Kubernetes' defaults; a Service exported from Kubernetes (with
// its allocated address, families and status) applies too.
func TestServiceLoadsAndDefaults(t *testing.T) {
	docs, err := Load("svc.yaml", []byte(issueService), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	s := docs[0].Object.(*api.Service)
	got, _ := json.Marshal(s.Spec)
	want := `{"type":"NodePort","selector":{"app":"web"},"ports":[{"protocol":"TCP","port":8099,"targetPort":80,"nodePort":30080}],` +
		`"ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","sessionAffinity":"None","internalTrafficPolicy":"Cluster","externalTrafficPolicy":"Cluster"}`
	if string(got) != want || s.Namespace != "default" {
		t.Fatalf("defaulted spec\n%s\nwant\n%s", got, want)
	}

	exported := `apiVersion: v1
kind: Service
metadata:
  name: dns
  namespace: kube-system
  creationTimestamp: "2024-05-01T12:00:00Z"
  resourceVersion: "123"
  uid: 0c1b6b5e-0000-4000-8000-000000000000
spec:
  clusterIP: 10.43.0.10
  clusterIPs: [10.43.0.10]
  internalTrafficPolicy: Cluster
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: dns-tcp}
  selector: {k8s-app: kube-dns}
  sessionAffinity: ClientIP
  type: ClusterIP
status:
  loadBalancer: {}
`
	docs, err = Load("dns.yaml", []byte(exported), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	s = docs[0].Object.(*api.Service)
	if s.Spec.AffinityTimeoutSeconds() != api.DefaultClientIPServiceAffinitySeconds || s.Spec.ExternalTrafficPolicy != "" {
		t.Fatalf("defaults: %+v", s.Spec)
	}

	headless := "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: None, selector: {app: db}}\n"
	if _, err := Load("db.yaml", []byte(headless), LoadOptions{Apply: true}); err != nil {
		t.Fatalf("a headless Service without ports: %v", err)
	}
}

// TestServiceValidation: each broken Service is refused with every
// problem at its field path, as Kubernetes' rules have it.
func TestServiceValidation(t *testing.T) {
	svc := func(spec string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n" + spec
	}
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"name not a DNS label", strings.Replace(svc("  ports: [{port: 80}]\n"), "name: web", "name: 1web", 1),
			[]string{`metadata.name: "1web" is not a valid name: it must start with a letter (a Service's name is a DNS label: no '.', and a letter first)`}},
		{"dotted name", strings.Replace(svc("  ports: [{port: 80}]\n"), "name: web", "name: web.v2", 1),
			[]string{`metadata.name: "web.v2" is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit (a Service's name is a DNS label: no '.', and a letter first)`}},
		{"no ports", svc("  selector: {app: web}\n"),
			[]string{"spec.ports: at least one port is required (only a headless Service, clusterIP: None, may have none)"}},
		{"LoadBalancer", svc("  type: LoadBalancer\n  ports: [{port: 80}]\n"),
			[]string{"spec.type: LoadBalancer is not supported by Flotilla: use NodePort, which every node serves on its own address"}},
		{"ExternalName", svc("  type: ExternalName\n  ports: [{port: 80}]\n"),
			[]string{"spec.type: ExternalName is not supported by Flotilla: give the Service a selector or use the external name directly"}},
		{"unknown type", svc("  type: Cluster\n  ports: [{port: 80}]\n"),
			[]string{`spec.type: "Cluster" is not one of ClusterIP, NodePort`}},
		{"externalName field", svc("  externalName: db.example.com\n  ports: [{port: 80}]\n"),
			[]string{"spec.externalName: not supported by Flotilla"}},
		{"appProtocol", svc("  ports: [{port: 80, appProtocol: http}]\n"),
			[]string{"spec.ports[0].appProtocol: not supported by Flotilla"}},
		{"unknown field", svc("  ports: [{port: 80, nodeport: 30001}]\n"),
			[]string{"spec.ports[0].nodeport: unknown field"}},
		{"names required with two ports", svc("  ports: [{port: 80}, {name: b, port: 81}]\n"),
			[]string{"spec.ports[0].name: required when the Service has more than one port"}},
		{"duplicate names", svc("  ports: [{name: a, port: 80}, {name: a, port: 81}]\n"),
			[]string{`spec.ports[1].name: duplicate port name "a" (spec.ports[0] has it too)`}},
		{"bad name", svc("  ports: [{name: A_b, port: 80}]\n"),
			[]string{`spec.ports[0].name: "A_b" is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit`}},
		{"duplicate port and protocol", svc("  ports: [{name: a, port: 80}, {name: b, port: 80, protocol: TCP}]\n"),
			[]string{"spec.ports[1]: duplicate port 80/TCP (spec.ports[0] has it too)"}},
		{"same port, other protocol", svc("  ports: [{name: a, port: 53}, {name: b, port: 53, protocol: UDP}]\n"), nil},
		{"port range", svc("  ports: [{name: a, port: 0}, {name: b, port: 65536}]\n"),
			[]string{"spec.ports[0].port: must be between 1 and 65535", "spec.ports[1].port: must be between 1 and 65535"}},
		{"SCTP", svc("  ports: [{port: 80, protocol: SCTP}]\n"),
			[]string{"spec.ports[0].protocol: SCTP is not supported by Flotilla: use TCP or UDP"}},
		{"unknown protocol", svc("  ports: [{port: 80, protocol: tcp}]\n"),
			[]string{`spec.ports[0].protocol: "tcp" is not one of TCP, UDP`}},
		{"targetPort out of range", svc("  ports: [{port: 80, targetPort: 70000}]\n"),
			[]string{"spec.ports[0].targetPort: must be between 1 and 65535, or the name of a container port"}},
		{"targetPort not an IANA name", svc("  ports: [{port: 80, targetPort: web-server-port-1}]\n"),
			[]string{`spec.ports[0].targetPort: "web-server-port-1" is longer than 15 characters`}},
		{"targetPort empty", svc("  ports: [{port: 80, targetPort: \"\"}]\n"),
			[]string{"spec.ports[0].targetPort: must be a port number or the name of a container port, not empty"}},
		{"targetPort wrong type", svc("  ports: [{port: 80, targetPort: true}]\n"),
			[]string{`spec.ports[0].targetPort: must be an integer or a string (such as 8080, "http" or "25%")`}},
		{"nodePort on ClusterIP", svc("  ports: [{port: 80, nodePort: 30080}]\n"),
			[]string{"spec.ports[0].nodePort: may only be set when type is NodePort"}},
		{"nodePort out of range", svc("  type: NodePort\n  ports: [{port: 80, nodePort: 70000}]\n"),
			[]string{"spec.ports[0].nodePort: must be between 1 and 65535, within the hub's --service-node-port-range (30000-32767 by default)"}},
		{"duplicate nodePort", svc("  type: NodePort\n  ports: [{name: a, port: 80, nodePort: 30080}, {name: b, port: 81, nodePort: 30080}]\n"),
			[]string{"spec.ports[1].nodePort: duplicate node port 30080/TCP (spec.ports[0] has it too)"}},
		{"same nodePort, other protocol", svc("  type: NodePort\n  ports: [{name: a, port: 53, nodePort: 30053}, {name: b, port: 53, protocol: UDP, nodePort: 30053}]\n"), nil},
		{"clusterIP not an address", svc("  clusterIP: web\n  ports: [{port: 80}]\n"),
			[]string{`spec.clusterIP: "web" is not an IP address: must be empty (the hub allocates one), None (headless) or an IPv4 address`}},
		{"clusterIP with leading zeros", svc("  clusterIP: 10.43.0.010\n  ports: [{port: 80}]\n"),
			[]string{`spec.clusterIP: "10.43.0.010" is not an IP address: must be empty (the hub allocates one), None (headless) or an IPv4 address`}},
		{"clusterIP IPv6", svc("  clusterIP: fd00::1\n  ports: [{port: 80}]\n"),
			[]string{`spec.clusterIP: "fd00::1" is not an IPv4 address: Flotilla's pod and Service networks are IPv4`}},
		{"clusterIPs differ", svc("  clusterIP: 10.43.0.5\n  clusterIPs: [10.43.0.6]\n  ports: [{port: 80}]\n"),
			[]string{`spec.clusterIPs[0]: "10.43.0.6" must be the same as clusterIP "10.43.0.5"`}},
		{"two clusterIPs", svc("  clusterIPs: [10.43.0.5, fd00::5]\n  ports: [{port: 80}]\n"),
			[]string{"spec.clusterIPs: may hold at most one address: Flotilla's Service network is IPv4 only"}},
		{"headless NodePort", svc("  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n"),
			[]string{"spec.clusterIP: may not be None for a NodePort Service: its node ports forward to the cluster IP"}},
		{"bad selector", svc("  selector: {app: \"a b\"}\n  ports: [{port: 80}]\n"),
			[]string{`spec.selector.app: label value "a b" is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit`}},
		{"affinity config without ClientIP", svc("  sessionAffinity: None\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10}}\n  ports: [{port: 80}]\n"),
			[]string{"spec.sessionAffinityConfig: may only be set when sessionAffinity is ClientIP"}},
		{"affinity timeout", svc("  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}\n  ports: [{port: 80}]\n"),
			[]string{"spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be between 1 and 86400 (a day)"}},
		{"zero affinity timeout", svc("  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 0}}\n  ports: [{port: 80}]\n"),
			[]string{"spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be between 1 and 86400 (a day)"}},
		{"unknown affinity", svc("  sessionAffinity: Cookie\n  ports: [{port: 80}]\n"),
			[]string{`spec.sessionAffinity: "Cookie" is not one of None, ClientIP`}},
		{"externalTrafficPolicy on ClusterIP", svc("  externalTrafficPolicy: Local\n  ports: [{port: 80}]\n"),
			[]string{"spec.externalTrafficPolicy: may only be set for a NodePort Service: only those are reached from outside the cluster"}},
		{"traffic policies", svc("  type: NodePort\n  externalTrafficPolicy: local\n  internalTrafficPolicy: Node\n  ports: [{port: 80}]\n"),
			[]string{`spec.internalTrafficPolicy: "Node" is not one of Cluster, Local`, `spec.externalTrafficPolicy: "local" is not one of Cluster, Local`}},
		{"Local policies", svc("  type: NodePort\n  externalTrafficPolicy: Local\n  internalTrafficPolicy: Local\n  ports: [{port: 80}]\n"), nil},
		{"dual stack", svc("  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n  ports: [{port: 80}]\n"),
			[]string{"spec.ipFamilyPolicy: RequireDualStack is not supported by Flotilla: its Service network is IPv4 only",
				"spec.ipFamilies[1]: IPv6 is not supported by Flotilla: its Service network is IPv4 only"}},
		{"prefer dual stack", svc("  ipFamilyPolicy: PreferDualStack\n  ports: [{port: 80}]\n"), nil},
		{"loadBalancer status", svc("  ports: [{port: 80}]\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.1}]}}\n"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("svc.yaml", []byte(tc.doc), LoadOptions{Apply: true})
			checkProblems(t, err, "svc.yaml: document 1: ", tc.want)
		})
	}
}

// checkProblems compares the problems err lists with want, each with the
// prefix.
func checkProblems(t *testing.T, err error, prefix string, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted; want %q", want)
	}
	var lines []string
	for _, w := range want {
		lines = append(lines, prefix+w)
	}
	if got := err.Error(); got != strings.Join(lines, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", got, strings.Join(lines, "\n"))
	}
}

func TestEndpointsAreWrittenByTheHubOnly(t *testing.T) {
	ep := `apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets:
- addresses: [{ip: 10.42.0.5, nodeName: edge-1, targetRef: {kind: Pod, namespace: default, name: web-1, uid: u}}]
  notReadyAddresses: [{ip: 10.42.1.7, nodeName: edge-2}]
  ports: [{port: 80, protocol: TCP}]
`
	_, err := Load("ep.yaml", []byte(ep), LoadOptions{Apply: true})
	checkProblems(t, err, "ep.yaml: document 1: ", []string{
		"kind: Endpoints cannot be applied: the hub keeps each Service's endpoints from the ready pods its selector matches"})
	if _, err := Load("ep.yaml", []byte(ep), LoadOptions{}); err != nil {
		t.Fatalf("hub get ep -o yaml does not read back: %v", err)
	}
	bad := strings.NewReplacer("10.42.0.5", "10.42.0.300", "port: 80", "port: 0", "nodeName: edge-2", "nodeName: Edge_2").Replace(ep)
	_, err = Load("ep.yaml", []byte(bad), LoadOptions{})
	checkProblems(t, err, "ep.yaml: document 1: ", []string{
		`subsets[0].addresses[0].ip: "10.42.0.300" is not an IP address`,
		`subsets[0].notReadyAddresses[0].nodeName: "Edge_2" is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`,
		"subsets[0].ports[0].port: must be between 1 and 65535",
	})
}

func TestNodePodCIDR(t *testing.T) {
	node := func(spec string) string {
		return "apiVersion: v1\nkind: Node\nmetadata: {name: edge-1}\nspec:\n" + spec
	}
	docs, err := Load("n.yaml", []byte(node("  podCIDR: 10.42.3.0/24\n")), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := docs[0].Object.(*api.Node); len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != "10.42.3.0/24" {
		t.Fatalf("podCIDRs not defaulted: %+v", n.Spec)
	}
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"not a CIDR", "  podCIDR: 10.42.3.0\n", []string{`spec.podCIDR: "10.42.3.0" is not a CIDR such as 10.42.3.0/24`}},
		{"host bits", "  podCIDR: 10.42.3.1/24\n", []string{`spec.podCIDR: "10.42.3.1/24" has address bits set past its prefix length: write 10.42.3.0/24`}},
		{"podCIDRs differ", "  podCIDR: 10.42.3.0/24\n  podCIDRs: [10.42.4.0/24]\n", []string{`spec.podCIDRs[0]: "10.42.4.0/24" must be the same as podCIDR "10.42.3.0/24"`}},
		{"two of a family", "  podCIDRs: [10.42.3.0/24, 10.42.4.0/24]\n", []string{"spec.podCIDRs[1]: has the same address family as spec.podCIDRs[0]: at most one subnet per family"}},
		{"dual stack", "  podCIDRs: [10.42.3.0/24, fd00:42:3::/64]\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("n.yaml", []byte(node(tc.spec)), LoadOptions{Apply: true})
			checkProblems(t, err, "n.yaml: document 1: ", tc.want)
		})
	}
}

func TestPodDNS(t *testing.T) {
	ds := func(dns string) string {
		return strings.Replace(minimalDS, "    spec:\n", "    spec:\n"+dns, 1)
	}
	for _, tc := range []struct {
		name, dns string
		want      []string
	}{
		{"ClusterFirst", "      dnsPolicy: ClusterFirst\n", nil},
		{"None with config", "      dnsPolicy: None\n      dnsConfig:\n        nameservers: [192.0.2.53]\n        searches: [corp.example., example.com]\n        options: [{name: ndots, value: \"2\"}, {name: edns0}]\n", nil},
		{"unknown policy", "      dnsPolicy: ClusterOnly\n",
			[]string{`spec.template.spec.dnsPolicy: "ClusterOnly" is not one of ClusterFirst, ClusterFirstWithHostNet, Default, None`}},
		{"None without config", "      dnsPolicy: None\n",
			[]string{"spec.template.spec.dnsConfig: required when dnsPolicy is None: it must name at least one nameserver"}},
		{"None without nameservers", "      dnsPolicy: None\n      dnsConfig: {searches: [example.com]}\n",
			[]string{"spec.template.spec.dnsConfig.nameservers: at least one nameserver is required when dnsPolicy is None"}},
		{"too many nameservers", "      dnsConfig: {nameservers: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]}\n",
			[]string{"spec.template.spec.dnsConfig.nameservers: must have at most 3 nameservers, not 4"}},
		{"bad nameserver and search", "      dnsConfig: {nameservers: [dns.example.com], searches: [Example_Com], options: [{value: \"1\"}]}\n",
			[]string{`spec.template.spec.dnsConfig.nameservers[0]: "dns.example.com" is not an IP address`,
				`spec.template.spec.dnsConfig.searches[0]: "Example_Com" is not a DNS domain: use lower-case letters, digits, '-' and '.'`,
				"spec.template.spec.dnsConfig.options[0].name: required"}},
		{"too many searches", "      dnsConfig: {searches: [" + strings.Repeat("a.example,", 33) + "]}\n",
			[]string{"spec.template.spec.dnsConfig.searches: must have at most 32 search domains, not 33"}},
		{"hostname and subdomain", "      hostname: web-0\n      subdomain: web\n", nil},
		{"bad hostname and subdomain", "      hostname: Web_0\n      subdomain: web.default\n",
			[]string{`spec.template.spec.hostname: "Web_0" is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit`,
				`spec.template.spec.subdomain: "web.default" is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("ds.yaml", []byte(ds(tc.dns)), LoadOptions{Apply: true})
			checkProblems(t, err, "ds.yaml: document 1: ", tc.want)
		})
	}
	// dnsPolicy is not filled in: ClusterFirst is what an empty one
	// means, and templates applied before it existed keep their hash.
	docs, err := Load("ds.yaml", []byte(minimalDS), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := docs[0].Object.(*api.DaemonSet).Spec.Template.Spec.DNSPolicy; p != "" {
		t.Fatalf("dnsPolicy defaulted to %q", p)
	}
}
