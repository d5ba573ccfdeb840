package manifest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// gatewayIngress is the gateway: a dashboard at / and a sensor
// API at /api, on two hosts, with TLS.
const gatewayIngress = `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: gateway
  annotations: {kubernetes.io/ingress.class: edge}
spec:
  ingressClassName: edge
  tls:
    - hosts: [gateway.local, "*.gateway.local"]
      secretName: gateway-tls
  defaultBackend:
    service: {name: dashboard, port: {number: 80}}
  rules:
    - host: gateway.local
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: dashboard, port: {number: 80}}}}
          - {path: /api, pathType: Prefix, backend: {service: {name: sensors, port: {name: http}}}}
          - {path: /healthz, pathType: Exact, backend: {service: {name: sensors, port: {number: 8080}}}}
    - host: "*.gateway.local"
      http:
        paths:
          - {pathType: ImplementationSpecific, backend: {service: {name: dashboard, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: edge
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
    flotilla.io/ingress-node-selector: "site in (north,south),node-role.kubernetes.io/ingress=true"
spec:
  controller: flotilla.io/ingress
`

// TestIngressLoads: the gateway's Ingress and class apply, and the
// Ingress knows its class.
func TestIngressLoads(t *testing.T) {
	docs, err := Load("gw.yaml", []byte(gatewayIngress), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	in := docs[0].Object.(*api.Ingress)
	if in.Namespace != "default" || in.ClassName() != "edge" || len(in.Spec.Rules) != 2 || in.Spec.Rules[1].HTTP.Paths[0].Path != "" {
		t.Fatalf("decoded %+v", in)
	}
	class := docs[1].Object.(*api.IngressClass)
	sel, err := api.IngressNodeSelector(class)
	if err != nil || !class.IsDefaultClass() || class.Namespace != "" {
		t.Fatalf("class %+v: %v", class, err)
	}
	if !sel.Matches(map[string]string{"site": "north", api.LabelIngressNode: "true"}) || sel.Matches(map[string]string{"site": "north"}) {
		t.Fatalf("selector %s", sel)
	}
	def, _ := api.IngressNodeSelector(nil)
	if !def.Matches(map[string]string{api.LabelIngressNode: "true"}) || def.Matches(map[string]string{api.LabelIngressNode: "false"}) {
		t.Fatalf("default selector %s", def)
	}
}

// TestIngressValidation: each broken Ingress or class is refused with
// every problem at its field path.
func TestIngressValidation(t *testing.T) {
	ing := func(spec string) string {
		return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec:\n" + spec
	}
	path := func(host, p, typ, backend string) string {
		h := ""
		if host != "" {
			h = "host: " + host + ", "
		}
		return "  rules: [{" + h + "http: {paths: [{path: " + p + ", pathType: " + typ + ", backend: " + backend + "}]}}]\n"
	}
	web := "{service: {name: web, port: {number: 80}}}"
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"empty spec", ing("  tls: []\n"), []string{"spec: either defaultBackend or rules must be specified"}},
		{"no pathType", ing("  rules: [{http: {paths: [{path: /, backend: " + web + "}]}}]\n"),
			[]string{"spec.rules[0].http.paths[0].pathType: required: one of Exact, Prefix, ImplementationSpecific"}},
		{"unknown pathType", ing(path("", "/", "Regex", web)),
			[]string{`spec.rules[0].http.paths[0].pathType: "Regex" is not one of Exact, Prefix, ImplementationSpecific`}},
		{"relative path", ing(path("", "api", "Prefix", web)),
			[]string{`spec.rules[0].http.paths[0].path: "api" must be an absolute path (begin with '/')`}},
		{"relative ImplementationSpecific path", ing(path("", "api", "ImplementationSpecific", web)),
			[]string{`spec.rules[0].http.paths[0].path: "api" must be an absolute path (begin with '/')`}},
		{"dot segments", ing(path("", "/a/../b/.", "Exact", web)),
			[]string{`spec.rules[0].http.paths[0].path: "/a/../b/." must not contain '/../'`, `spec.rules[0].http.paths[0].path: "/a/../b/." cannot end with '/.'`}},
		{"encoded slash", ing(path("", "/a%2Fb", "Prefix", web)),
			[]string{`spec.rules[0].http.paths[0].path: "/a%2Fb" must not contain '%2F'`}},
		{"IP host", ing(path("192.0.2.1", "/", "Prefix", web)),
			[]string{`spec.rules[0].host: "192.0.2.1" must be a DNS name, not an IP address`}},
		{"bad wildcard", ing(path("a.*.example.com", "/", "Prefix", web)),
			[]string{`spec.rules[0].host: "a.*.example.com": a wildcard host is "*." and a DNS name, such as *.example.com`}},
		{"bad host", ing(path("Gateway_1", "/", "Prefix", web)),
			[]string{`spec.rules[0].host: "Gateway_1" is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`}},
		{"no paths", ing("  rules: [{host: a.example, http: {paths: []}}]\n"), []string{"spec.rules[0].http.paths: required"}},
		{"same path twice", ing("  rules:\n  - {host: a.example, http: {paths: [{path: /api, pathType: Prefix, backend: " + web + "}]}}\n" +
			"  - {host: a.example, http: {paths: [{path: /api/, pathType: ImplementationSpecific, backend: " + web + "}]}}\n"),
			[]string{`spec.rules[1].http.paths[0].path: host "a.example" and path "/api/" are routed already by spec.rules[0].http.paths[0]`}},
		{"exact and prefix of one path", ing("  rules:\n  - {http: {paths: [{path: /api, pathType: Prefix, backend: " + web + "}, {path: /api, pathType: Exact, backend: " + web + "}]}}\n"), nil},
		{"backend without service", ing(path("", "/", "Prefix", "{}")),
			[]string{"spec.rules[0].http.paths[0].backend.service: required: a backend is a Service and its port"}},
		{"resource backend", ing(path("", "/", "Prefix", "{resource: {kind: Bucket, name: b}}")),
			[]string{"spec.rules[0].http.paths[0].backend.resource: not supported by Flotilla",
				"spec.rules[0].http.paths[0].backend.service: required: a backend is a Service and its port"}},
		{"port name and number", ing("  defaultBackend: {service: {name: web, port: {name: http, number: 80}}}\n"),
			[]string{"spec.defaultBackend.service.port: may have name or number, not both"}},
		{"no port", ing("  defaultBackend: {service: {name: web}}\n"),
			[]string{"spec.defaultBackend.service.port: required: a port name or number"}},
		{"port out of range", ing("  defaultBackend: {service: {name: web, port: {number: 70000}}}\n"),
			[]string{"spec.defaultBackend.service.port.number: must be between 1 and 65535, not 70000"}},
		{"bad port name", ing("  defaultBackend: {service: {name: web, port: {name: HTTP}}}\n"),
			[]string{`spec.defaultBackend.service.port.name: "HTTP" may contain only lower-case letters, digits and '-'`}},
		{"bad service name", ing("  defaultBackend: {service: {name: web.v2, port: {number: 80}}}\n"),
			[]string{`spec.defaultBackend.service.name: "web.v2" is not a valid name: use lower-case letters, digits and '-', starting and ending with a letter or digit`}},
		{"tls without secret", ing("  defaultBackend: " + web + "\n  tls: [{hosts: [a.example]}]\n"),
			[]string{"spec.tls[0].secretName: required: Flotilla has no default certificate"}},
		{"tls host twice", ing("  defaultBackend: " + web + "\n  tls: [{hosts: [a.example], secretName: a}, {hosts: [a.example, b.example], secretName: b}]\n"),
			[]string{`spec.tls[1].hosts[0]: host "a.example" has a certificate already, from Secret "a"`}},
		{"tls IP host", ing("  defaultBackend: " + web + "\n  tls: [{hosts: [\"::1\"], secretName: a}]\n"),
			[]string{`spec.tls[0].hosts[0]: "::1" must be a DNS name, not an IP address`}},
		{"class annotation differs", strings.Replace(ing("  ingressClassName: edge\n  defaultBackend: "+web+"\n"), "{name: web}", "{name: web, annotations: {kubernetes.io/ingress.class: nginx}}", 1),
			[]string{`metadata.annotations[kubernetes.io/ingress.class]: must not differ from spec.ingressClassName ("edge"); the annotation is the deprecated way to name the class`}},
		{"backend protocol", strings.Replace(ing("  defaultBackend: "+web+"\n"), "{name: web}", "{name: web, annotations: {flotilla.io/backend-protocol: grpc}}", 1),
			[]string{`metadata.annotations[flotilla.io/backend-protocol]: must be "http" or "h2c", not "grpc"`}},
		{"status", ing("  defaultBackend: " + web + "\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.1, ports: [{port: 80, protocol: TCP}]}]}}\n"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("ing.yaml", []byte(tc.doc), LoadOptions{Apply: true})
			checkProblems(t, err, "ing.yaml: document 1: ", tc.want)
		})
	}

	class := func(meta, spec string) string {
		return "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: edge" + meta + "}\nspec: " + spec + "\n"
	}
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"no controller", class("", "{}"), []string{`spec.controller: required, such as "flotilla.io/ingress"`}},
		{"controller without path", class("", "{controller: flotilla.io}"),
			[]string{`spec.controller: "flotilla.io" must be a domain-prefixed path, such as "flotilla.io/ingress"`}},
		{"controller with a bad domain", class("", "{controller: Flotilla_IO/ingress}"),
			[]string{`spec.controller: "Flotilla_IO/ingress": its domain: "Flotilla_IO" is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit`}},
		{"another controller", class("", "{controller: k8s.io/ingress-nginx}"), nil},
		{"parameters", class("", "{controller: flotilla.io/ingress, parameters: {kind: Config, name: c}}"),
			[]string{"spec.parameters: not supported by Flotilla"}},
		{"namespaced", strings.Replace(class("", "{controller: flotilla.io/ingress}"), "{name: edge}", "{name: edge, namespace: default}", 1),
			[]string{"metadata.namespace: must be empty: IngressClass is not namespaced"}},
		{"default not a boolean", class(", annotations: {ingressclass.kubernetes.io/is-default-class: \"yes\"}", "{controller: flotilla.io/ingress}"),
			[]string{`metadata.annotations[ingressclass.kubernetes.io/is-default-class]: must be "true" or "false", not "yes"`}},
		{"bad node selector", class(", annotations: {flotilla.io/ingress-node-selector: \"site in north\"}", "{controller: flotilla.io/ingress}"),
			[]string{`metadata.annotations[flotilla.io/ingress-node-selector]: not a label selector: selector term "site in north": want in (value,...)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("class.yaml", []byte(tc.doc), LoadOptions{Apply: true})
			checkProblems(t, err, "class.yaml: document 1: ", tc.want)
		})
	}
}

// TestTLSSecretMustBeAPair: a kubernetes.io/tls Secret whose certificate
// and key are not a pair is refused at the field that is wrong, whether
// the values come from data or stringData; a pair applies.
func TestTLSSecretMustBeAPair(t *testing.T) {
	crt, key := testPair(t, "gateway.local")
	_, otherKey := testPair(t, "other.local")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	secret := func(data string) string {
		return "apiVersion: v1\nkind: Secret\nmetadata: {name: gw}\ntype: kubernetes.io/tls\n" + data
	}
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"pair", secret("data: {tls.crt: " + b64(crt) + ", tls.key: " + b64(key) + "}\n"), nil},
		{"pair in stringData", secret("stringData:\n  tls.crt: " + quoteYAML(crt) + "\n  tls.key: " + quoteYAML(key) + "\n"), nil},
		{"key of another certificate", secret("data: {tls.crt: " + b64(crt) + ", tls.key: " + b64(otherKey) + "}\n"),
			[]string{"data[tls.key]: not the private key of the certificate in data[tls.crt]: private key does not match public key"}},
		// Load merges stringData into data before it validates.
		{"key in stringData", secret("data: {tls.crt: " + b64(crt) + "}\nstringData:\n  tls.key: " + quoteYAML(otherKey) + "\n"),
			[]string{"data[tls.key]: not the private key of the certificate in data[tls.crt]: private key does not match public key"}},
		{"not a certificate", secret("data: {tls.crt: " + b64("hello") + ", tls.key: " + b64(key) + "}\n"),
			[]string{"data[tls.crt]: holds no PEM certificate"}},
		{"a key where the certificate goes", secret("data: {tls.crt: " + b64(key) + ", tls.key: " + b64(key) + "}\n"),
			[]string{`data[tls.crt]: holds a PEM block of type "EC PRIVATE KEY" where certificates are expected`}},
		{"broken certificate", secret("data: {tls.crt: " + b64(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))) + ", tls.key: " + b64(key) + "}\n"),
			[]string{"data[tls.crt]: certificate 1 does not parse: x509: malformed certificate"}},
		{"not a key", secret("data: {tls.crt: " + b64(crt) + ", tls.key: " + b64("nope") + "}\n"),
			[]string{"data[tls.key]: not the private key of the certificate in data[tls.crt]: failed to find any PEM data in key input"}},
		{"missing key", secret("data: {tls.crt: " + b64(crt) + "}\n"),
			[]string{`data: a Secret of type kubernetes.io/tls must have the key "tls.key"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("tls.yaml", []byte(tc.doc), LoadOptions{Apply: true})
			checkProblems(t, err, "tls.yaml: document 1: ", tc.want)
		})
	}
}

// TestTLSPairNamesStringData: validated before defaulting, a value from
// stringData is named there.
func TestTLSPairNamesStringData(t *testing.T) {
	crt, _ := testPair(t, "gateway.local")
	_, otherKey := testPair(t, "other.local")
	s := &api.Secret{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindSecret},
		ObjectMeta: api.ObjectMeta{Name: "gw", Namespace: "default"},
		Type:       api.SecretTypeTLS,
		Data:       map[string][]byte{api.TLSCertKey: []byte(crt)},
		StringData: map[string]string{api.TLSPrivateKeyKey: otherKey},
	}
	err := Validate(s)
	if err == nil || err.Error() != "stringData[tls.key]: not the private key of the certificate in data[tls.crt]: private key does not match public key" {
		t.Fatalf("got %v", err)
	}
}

func quoteYAML(s string) string {
	return `"` + strings.ReplaceAll(s, "\n", `\n`) + `"`
}

// testPair makes a self-signed certificate for host and its key, as PEM.
func testPair(t testing.TB, host string) (crt, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}
