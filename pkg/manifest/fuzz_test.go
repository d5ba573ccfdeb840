package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// FuzzDecode feeds arbitrary bytes to Decode, Default, Validate and Load,
// which must never panic. Whatever Decode accepts must also survive a round
// trip: encoded as JSON and decoded again, it is the same. Default applied
// twice must give what it gave once. Load accepts exactly what Decode
// accepts and Validate passes after Default, and names no problem twice.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{
		"testdata/fluentd-elasticsearch.yaml", "testdata/fluentd-elasticsearch-upstream.yaml",
		"testdata/nginx-deployment.yaml", "testdata/probe-daemonset.yaml", "testdata/rollout-daemonset.yaml",
		"testdata/config-daemonset.yaml", "testdata/web-nodeport.yaml",
	} {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(minimalDS))
	// Services of every shape, their Endpoints, a node's pod subnet and a
	// pod's DNS settings.
	f.Add([]byte(issueService))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIP: None, selector: {app: db}, ports: [{name: pg, port: 5432, targetPort: pg}]}\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"dns"},"spec":{"clusterIP":"10.43.0.10","clusterIPs":["10.43.0.10"],` +
		`"ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}},` +
		`"ports":[{"name":"dns","port":53,"protocol":"UDP","targetPort":53},{"name":"dns-tcp","port":53,"protocol":"TCP","targetPort":"dns-tcp"}],` +
		`"internalTrafficPolicy":"Local","selector":{"k8s-app":"dns"}},"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1"}]}}}`))
	f.Add([]byte("apiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\nsubsets: [{addresses: [{ip: 10.42.0.5, nodeName: a, targetRef: {kind: Pod, name: p}}], notReadyAddresses: [{ip: 10.42.1.5}], ports: [{port: 80, protocol: TCP}]}]\n"))
	f.Add([]byte("apiVersion: v1\nkind: Node\nmetadata: {name: a}\nspec: {podCIDR: 10.42.3.0/24, podCIDRs: [10.42.3.0/24]}\n"))
	f.Add([]byte(strings.Replace(minimalDS, "    spec:\n", "    spec:\n      dnsPolicy: None\n      dnsConfig: {nameservers: [192.0.2.53], searches: [a.example], options: [{name: ndots, value: \"2\"}]}\n", 1)))
	f.Add([]byte(ns("a") + "---\n" + ns("b")))
	// Security contexts: every field, and the rules that tie them.
	f.Add([]byte(secureDS))
	f.Add([]byte(strings.Replace(secureDS, "privileged: false", "privileged: true", 1)))
	// Device resources: limits, requests, the two disagreeing.
	f.Add([]byte(strings.Replace(minimalDS, "        ports:\n", "        resources: {limits: {devices.flotilla.io/serial: 1, devices.flotilla.io/video: 2}, requests: {devices.flotilla.io/video: 1}}\n        ports:\n", 1)))
	// Ingresses and their classes.
	f.Add([]byte(gatewayIngress))
	f.Add([]byte("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\nspec: {rules: [{host: \"*.a.example\", http: {paths: [{path: /x/, pathType: Exact, backend: {service: {name: s, port: {name: web}}}}]}}]}\n"))
	// Autoscalers: Kubernetes' walkthrough's, and one with every rule.
	f.Add([]byte(hpaYAML))
	f.Add([]byte(hpaYAML + "  - type: Resource\n    resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}\n" +
		"  behavior:\n    scaleUp: {stabilizationWindowSeconds: 30, selectPolicy: Min, policies: [{type: Pods, value: 2, periodSeconds: 60}]}\n    scaleDown: {selectPolicy: Disabled}\n"))
	// Small alias bombs: a scalar, lists of lists, merge keys, an anchor
	// containing its own alias.
	f.Add([]byte(aliasBomb(64, 8)))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {k: &s xx}\nx:\n  l1: &l1 [*s, *s]\n  l2: [*l1, *l1]\n"))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: &m {name: b}\ndata:\n  base: &b {k: v}\n  one: {<<: *b, a: c}\nx: {<<: [*m]}\n"))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\nx: &x [a, [*x]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		loaded, loadErr := Load("fuzz.yaml", data, LoadOptions{Apply: true})
		if loadErr != nil {
			if loaded != nil {
				t.Fatal("Load returned documents with an error")
			}
			seen := map[string]bool{}
			for _, line := range strings.Split(loadErr.Error(), "\n") {
				if seen[line] {
					t.Fatalf("Load names a problem twice: %q", line)
				}
				seen[line] = true
			}
		}
		docs, err := Decode("fuzz.yaml", data)
		if err != nil {
			if docs != nil {
				t.Fatal("documents returned with an error")
			}
			_ = err.Error()
			if loadErr == nil {
				t.Fatalf("Load accepted what Decode refused: %v", err)
			}
			return
		}
		valid := true
		for _, d := range docs {
			if k, _ := api.LookupKind(d.Object.GetTypeMeta().Kind); !k.Writable {
				valid = false
			}
		}
		for _, d := range docs {
			if d.Object == nil {
				t.Fatal("document without an object")
			}
			_ = Validate(d.Object)
			Default(d.Object, "fuzz")
			if err := d.Validate(); err != nil {
				_ = err.Error()
				valid = false
			}
			first, err := json.Marshal(d.Object)
			if err != nil {
				t.Fatalf("cannot encode a decoded object: %v", err)
			}
			Default(d.Object, "other")
			if twice, err := json.Marshal(d.Object); err != nil || !bytes.Equal(first, twice) {
				t.Fatalf("Default twice differs from once (%v):\n%s\n%s", err, first, twice)
			}
			again, err := Decode("again.json", first)
			if err != nil {
				t.Fatalf("re-decoding %s: %v", first, err)
			}
			if len(again) != 1 {
				t.Fatalf("re-decoding %s gave %d documents", first, len(again))
			}
			second, err := json.Marshal(again[0].Object)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, second) {
				t.Fatalf("round trip changed the object:\n%s\n%s", first, second)
			}
		}
		if valid != (loadErr == nil) {
			t.Fatalf("Decode and Validate say valid=%v, Load says %v", valid, loadErr)
		}
	})
}
