package ingress

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// paths makes one Ingress with the rule host and the paths given as
// "TYPE PATH" (the backend is the Service named after the path).
func paths(name, host string, specs ...string) wire.Ingress {
	r := wire.IngressRule{Host: host}
	for _, s := range specs {
		typ, path, _ := strings.Cut(s, " ")
		r.Paths = append(r.Paths, wire.IngressPath{Path: path, Type: typ, Backend: wire.IngressBackend{Service: "svc" + path, Port: 80}})
	}
	return wire.Ingress{Namespace: "default", Name: name, Rules: []wire.IngressRule{r}}
}

func build(t *testing.T, ings ...wire.Ingress) *Table {
	t.Helper()
	tab, err := Build(ings, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// matched is the path of the rule a request matches, "" for none.
func matched(tab *Table, host, path string) string {
	r := tab.Match(host, path)
	if r == nil {
		return ""
	}
	return r.Rule
}

// TestPathMatchingAsKubernetesDocuments: the examples table of
// Kubernetes' Ingress documentation ("Examples" under "Path types"), row
// by row: the paths of one Ingress, a request path, and which path (if
// any) serves it.
func TestPathMatchingAsKubernetesDocuments(t *testing.T) {
	for _, tc := range []struct {
		paths   []string
		request string
		want    string // "TYPE PATH" of the path that matches; "" none
	}{
		{[]string{"Prefix /"}, "/anything/at/all", "Prefix /"},
		{[]string{"Exact /foo"}, "/foo", "Exact /foo"},
		{[]string{"Exact /foo"}, "/bar", ""},
		{[]string{"Exact /foo"}, "/foo/", ""},
		{[]string{"Exact /foo/"}, "/foo", ""},
		{[]string{"Prefix /foo"}, "/foo", "Prefix /foo"},
		{[]string{"Prefix /foo"}, "/foo/", "Prefix /foo"},
		{[]string{"Prefix /foo/"}, "/foo", "Prefix /foo/"},
		{[]string{"Prefix /foo/"}, "/foo/", "Prefix /foo/"},
		{[]string{"Prefix /aaa/bb"}, "/aaa/bbb", ""},
		{[]string{"Prefix /aaa/bbb"}, "/aaa/bbb", "Prefix /aaa/bbb"},
		{[]string{"Prefix /aaa/bbb/"}, "/aaa/bbb", "Prefix /aaa/bbb/"}, // ignores the trailing slash
		{[]string{"Prefix /aaa/bbb"}, "/aaa/bbb/", "Prefix /aaa/bbb"},  // matches the trailing slash
		{[]string{"Prefix /aaa/bbb"}, "/aaa/bbb/ccc", "Prefix /aaa/bbb"},
		{[]string{"Prefix /aaa/bbb"}, "/aaa/bbbxyz", ""}, // not a string prefix
		{[]string{"Prefix /", "Prefix /aaa"}, "/aaa/ccc", "Prefix /aaa"},
		{[]string{"Prefix /", "Prefix /aaa", "Prefix /aaa/bbb"}, "/aaa/bbb", "Prefix /aaa/bbb"},
		{[]string{"Prefix /", "Prefix /aaa", "Prefix /aaa/bbb"}, "/ccc", "Prefix /"},
		{[]string{"Prefix /aaa"}, "/ccc", ""}, // the default backend's
		{[]string{"Prefix /foo", "Exact /foo"}, "/foo", "Exact /foo"},
		// The longest matching path first, whatever the order given.
		{[]string{"Prefix /aaa/bbb", "Prefix /", "Prefix /aaa"}, "/aaa/bbb/c", "Prefix /aaa/bbb"},
		{[]string{"Exact /aaa", "Prefix /aaa/b"}, "/aaa/b", "Prefix /aaa/b"},
	} {
		name := strings.Join(tc.paths, ",") + " " + tc.request
		t.Run(name, func(t *testing.T) {
			tab := build(t, paths("ing", "", tc.paths...))
			want := ""
			if tc.want != "" {
				typ, path, _ := strings.Cut(tc.want, " ")
				want = "* " + path + " " + typ
			}
			if got := matched(tab, "example.local", tc.request); got != want {
				t.Errorf("matched %q, want %q", got, want)
			}
		})
	}
}

// TestHostPrecedence: the exact host's paths first, then the wildcard's
// (one label more, no fewer, no more), then the rules without a host,
// then the default backend; hosts compare without case, port or final dot.
func TestHostPrecedence(t *testing.T) {
	def := wire.Ingress{Namespace: "default", Name: "fallback", DefaultBackend: &wire.IngressBackend{Service: "fallback", Port: 80}}
	tab := build(t,
		paths("exact", "gateway.local", "Prefix /api"),
		paths("wild", "*.gateway.local", "Prefix /api", "Prefix /docs"),
		paths("any", "", "Prefix /", "Exact /status"),
		def,
	)
	for _, tc := range []struct{ host, path, want string }{
		{"gateway.local", "/api/v1", "gateway.local /api Prefix"},
		{"GATEWAY.local:8443", "/api", "gateway.local /api Prefix"},
		{"gateway.local.", "/api", "gateway.local /api Prefix"},
		{"gateway.local", "/docs", "* / Prefix"}, // the exact host has no /docs; the wildcard does not match gateway.local
		{"a.gateway.local", "/api", "*.gateway.local /api Prefix"},
		{"a.gateway.local", "/docs/x", "*.gateway.local /docs Prefix"},
		{"a.b.gateway.local", "/docs", "* / Prefix"}, // one label only
		{"a.gateway.local", "/status", "* /status Exact"},
		{"other.local", "/x", "* / Prefix"},
		{"192.0.2.1:80", "/status", "* /status Exact"},
	} {
		if got := matched(tab, tc.host, tc.path); got != tc.want {
			t.Errorf("%s%s: matched %q, want %q", tc.host, tc.path, got, tc.want)
		}
	}
	// Without rules for every host, what matches nothing goes to the
	// default backend; without one, nowhere.
	tab = build(t, paths("exact", "gateway.local", "Prefix /api"), def)
	if r := tab.Match("gateway.local", "/x"); r == nil || r.Rule != "default backend" || r.Ingress != "default/fallback" {
		t.Errorf("default backend: %+v", r)
	}
	tab = build(t, paths("exact", "gateway.local", "Prefix /api"))
	if r := tab.Match("gateway.local", "/x"); r != nil {
		t.Errorf("matched %+v without a default backend", r)
	}
	if r := (&Table{}).Match("gateway.local", "/"); r != nil {
		t.Errorf("the empty table matched %+v", r)
	}
}

// TestFirstIngressKeepsWhatItClaims: of two Ingresses in the snapshot
// (oldest first) that route the same host and path, or both have a
// default backend, the first keeps it; a route of its own the second
// keeps. Backends are built once each.
func TestFirstIngressKeepsWhatItClaims(t *testing.T) {
	old := paths("old", "gateway.local", "Prefix /api", "Exact /x")
	old.DefaultBackend = &wire.IngressBackend{Service: "old-default", PortName: "http"}
	young := paths("young", "gateway.local", "Prefix /api/", "Exact /x", "Prefix /y")
	young.DefaultBackend = &wire.IngressBackend{Service: "young-default"}
	tab := build(t, old, young)
	for _, tc := range []struct{ path, ingress string }{
		{"/api/v1", "default/old"}, {"/x", "default/old"}, {"/y", "default/young"}, {"/z", "default/old"},
	} {
		if r := tab.Match("gateway.local", tc.path); r == nil || r.Ingress != tc.ingress {
			t.Errorf("%s: %+v, want %s's", tc.path, r, tc.ingress)
		}
	}
	if n := len(tab.Backends()); n != 4 { // svc/api, svc/x (both's), old-default, svc/y
		t.Errorf("%d backends", n)
	}
}

// TestCertificateBySNI: the certificate of the exact name, then of the
// wildcard, then of the entry without hosts (or, without one, the
// oldest); a Secret that is missing or does not load is said and its
// hosts left without.
func TestCertificateBySNI(t *testing.T) {
	gw, wild, def, other := newCert(t, "gateway.local"), newCert(t, "*.gateway.local"), newCert(t, "default.local"), newCert(t, "other.local")
	secrets := []wire.SnapshotSecret{gw.secret("gw"), wild.secret("wild"), def.secret("def"), other.secret("other"),
		{Namespace: "default", Name: "broken", Type: api.SecretTypeTLS, Data: map[string][]byte{api.TLSCertKey: gw.crt, api.TLSPrivateKeyKey: other.key}}}
	a := wire.Ingress{Namespace: "default", Name: "a", TLS: []wire.IngressTLS{
		{Hosts: []string{"gateway.local"}, SecretName: "gw"}, {Hosts: []string{"*.gateway.local"}, SecretName: "wild"},
		{Hosts: []string{"broken.local"}, SecretName: "broken"}, {Hosts: []string{"gone.local"}, SecretName: "gone"}}}
	b := wire.Ingress{Namespace: "default", Name: "b", TLS: []wire.IngressTLS{
		{Hosts: []string{"gateway.local", "other.local"}, SecretName: "other"}, {SecretName: "def"}}}
	tab, err := Build([]wire.Ingress{a, b}, secrets)
	want := []string{
		"ingress default/a: TLS Secret default/broken: tls: private key does not match public key",
		"ingress default/a: TLS Secret default/gone is not on the node (the hub sends it with the snapshot)",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("errors:\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
	for _, tc := range []struct {
		sni  string
		want *testCert
	}{
		{"gateway.local", gw}, {"GATEWAY.LOCAL", gw}, {"a.gateway.local", wild}, {"other.local", other},
		{"a.b.gateway.local", def}, {"", def}, {"broken.local", def}, {"gone.local", def},
	} {
		c, err := tab.Certificate(&tls.ClientHelloInfo{ServerName: tc.sni})
		if err != nil || c.Leaf.Subject.CommonName != tc.want.name {
			t.Errorf("%q: %v %v, want %s", tc.sni, c.Leaf.Subject.CommonName, err, tc.want.name)
		}
	}
	// Without an entry without hosts, the oldest certificate answers.
	tab, _ = Build([]wire.Ingress{b}, secrets)
	tab2, _ := Build([]wire.Ingress{{Namespace: "default", Name: "c", TLS: []wire.IngressTLS{{Hosts: []string{"other.local"}, SecretName: "other"}}}}, secrets)
	if c, _ := tab2.Certificate(&tls.ClientHelloInfo{ServerName: "unknown.local"}); c == nil || c.Leaf.Subject.CommonName != "other.local" {
		t.Errorf("fallback certificate: %+v", c)
	}
	if !tab.HasCertificates() || (&Table{}).HasCertificates() {
		t.Error("HasCertificates")
	}
	if _, err := (&Table{}).Certificate(&tls.ClientHelloInfo{ServerName: "x"}); err == nil {
		t.Error("a certificate from the empty table")
	}
}

type testCert struct {
	name     string
	crt, key []byte
	pool     *x509.CertPool
}

func (c *testCert) secret(name string) wire.SnapshotSecret {
	return wire.SnapshotSecret{Namespace: "default", Name: name, Type: api.SecretTypeTLS,
		Data: map[string][]byte{api.TLSCertKey: c.crt, api.TLSPrivateKeyKey: c.key}}
}

// newCert makes a self-signed certificate for name.
func newCert(t testing.TB, name string) *testCert {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &testCert{name: name, pool: pool,
		crt: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}
}
