package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func kind(t *testing.T, name string) api.KindInfo {
	t.Helper()
	k, ok := api.LookupKind(name)
	if !ok {
		t.Fatalf("no kind %s", name)
	}
	return k
}

// serverCAPEM is the PEM of the certificate an httptest TLS server
// presents, as a hub CA would be given.
func serverCAPEM(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// otherCAPEM is a CA that signed nothing the tests serve.
func otherCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another hub CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeStatus answers as the hub answers an error.
func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(api.Status{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status: api.StatusFailure, Reason: reason, Code: code, Message: msg})
}

func TestNewChecksTheServerAndWhereATokenGoes(t *testing.T) {
	for _, tc := range []struct {
		server string
		opts   Options
		want   string // "" for no error
	}{
		{"http://127.0.0.1:8080", Options{}, ""},
		{"https://hub.example:8443/", Options{Token: "t"}, ""},
		{"http://127.0.0.1:8080", Options{Token: "t"}, ""},
		{"http://localhost:8080", Options{Token: "t"}, ""},
		{"http://[::1]:8080", Options{Token: "t"}, ""},
		{"http://hub.example:8080", Options{Token: "t"}, "a token is only sent over https (or to loopback)"},
		{"hub.example:8443", Options{}, `--server "hub.example:8443": want http://host:port or https://host:port`},
		{"ftp://hub.example", Options{}, "want http://host:port or https://host:port"},
		{"https://", Options{}, "want http://host:port or https://host:port"},
		{"https://hub.example", Options{CAPEM: []byte("not a certificate")}, "holds no PEM certificate"},
	} {
		_, err := NewWithOptions(tc.server, tc.opts)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %+v: %v", tc.server, tc.opts, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s %+v: %v, want an error with %q", tc.server, tc.opts, err, tc.want)
		}
	}
}

// TestTokenGoesWithEveryRequest: the token is sent as a Bearer token on
// every call, streamed logs included; without one, no Authorization.
func TestTokenGoesWithEveryRequest(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/log"):
			_, _ = io.WriteString(w, "hello\n")
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/nodes"):
			_ = json.NewEncoder(w).Encode(api.List{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "List"}})
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{"name": "n1"}})
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, token := range []string{"s3cret", ""} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		c, err := NewWithOptions(srv.URL, Options{CAPEM: serverCAPEM(srv), Token: token})
		if err != nil {
			t.Fatal(err)
		}
		node := kind(t, api.KindNode)
		if _, err := c.List(ctx, node, "", ListOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get(ctx, node, "", "n1"); err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, node, "", "n1"); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := c.Logs(ctx, "default", "p", LogOptions{}, &out); err != nil || out.String() != "hello\n" {
			t.Fatalf("logs %q, %v", out.String(), err)
		}
		want := ""
		if token != "" {
			want = "Bearer " + token
		}
		if len(seen) != 4 {
			t.Fatalf("requests %q", seen)
		}
		for _, s := range seen {
			if !strings.HasSuffix(s, " "+want) || (want == "" && strings.Contains(s, "Bearer")) {
				t.Errorf("token %q: request %q", token, s)
			}
		}
	}
}

// TestCertificateErrorsSayWhatToFix: a hub reached whose certificate is
// not trusted is told apart from one not reached, and by why: no CA
// given, a CA that did not sign it, or a name the certificate does not
// list.
func TestCertificateErrorsSayWhatToFix(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(api.List{})
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, tc := range []struct {
		name, server string
		ca           []byte
		want         []string
	}{
		{"the hub's CA", srv.URL, serverCAPEM(srv), nil},
		{"no CA: the system's roots", srv.URL, nil, []string{"answered, but its certificate is not trusted", "No hub CA is configured", "--certificate-authority"}},
		{"another hub's CA", srv.URL, otherCAPEM(t), []string{"answered, but its certificate is not trusted", "did not sign it"}},
		{"a name the certificate does not list", "https://localhost:" + port, serverCAPEM(srv), []string{"answered, but its certificate is not trusted", "--tls-san"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewWithOptions(tc.server, Options{CAPEM: tc.ca})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.List(context.Background(), kind(t, api.KindNode), "", ListOptions{})
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "cannot reach") {
				t.Errorf("a hub that answered reads as unreachable: %v", err)
			}
		})
	}
}

// TestUnreachableHubSaysWhere: no hub at the address is "cannot reach",
// with the hint about where the address came from.
func TestUnreachableHubSaysWhere(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, hint := range []string{"", "from --server"} {
		c, err := NewWithOptions("http://"+addr, Options{UnreachableHint: hint})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Get(context.Background(), kind(t, api.KindNode), "", "n1")
		if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the hub at http://"+addr+": ") {
			t.Fatalf("hint %q: %v", hint, err)
		}
		if hint != "" && !strings.HasSuffix(err.Error(), "("+hint+")") {
			t.Fatalf("hint %q missing: %v", hint, err)
		}
		var se *StatusError
		if errors.As(err, &se) || IsNotFound(err) {
			t.Fatalf("a transport error classified as the hub's answer: %v", err)
		}
	}
}

// TestHubErrorsAreClassified: the hub's Status answers become
// StatusErrors that read like kubectl's, NotFound is recognised, and an
// answer that is not a Status still says what was asked and what came
// back.
func TestHubErrorsAreClassified(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/nodes/gone":
			writeStatus(w, http.StatusNotFound, api.ReasonNotFound, `nodes "gone" not found`)
		case "/api/v1/nodes/secret":
			writeStatus(w, http.StatusUnauthorized, "Unauthorized", "this hub requires credentials")
		case "/api/v1/nodes/odd":
			writeStatus(w, http.StatusInternalServerError, "", "the store is closed")
		case "/api/v1/nodes/proxy":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "upstream down\n")
		case "/api/v1/nodes/garbled":
			_, _ = io.WriteString(w, "{not json")
		case "/api/v1/namespaces/default/pods/gone/log":
			writeStatus(w, http.StatusNotFound, api.ReasonNotFound, `pods "gone" not found`)
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node := kind(t, api.KindNode)
	for _, tc := range []struct {
		name     string
		code     int
		notFound bool
		text     string
	}{
		{"gone", http.StatusNotFound, true, `Error from server (NotFound): nodes "gone" not found`},
		{"secret", http.StatusUnauthorized, false, "Error from server (Unauthorized): this hub requires credentials"},
		{"odd", http.StatusInternalServerError, false, "Error from server: the store is closed"},
		{"proxy", http.StatusBadGateway, false, "Error from server: GET /api/v1/nodes/proxy: 502 Bad Gateway: upstream down"},
	} {
		_, err := c.Get(ctx, node, "", tc.name)
		var se *StatusError
		if !errors.As(err, &se) || se.Status.Code != tc.code || IsNotFound(err) != tc.notFound || err.Error() != tc.text {
			t.Errorf("%s: %v (%T), want %d %q, not found %v", tc.name, err, err, tc.code, tc.text, tc.notFound)
		}
	}
	if _, err := c.Get(ctx, node, "", "garbled"); err == nil || !strings.Contains(err.Error(), "decode answer to GET /api/v1/nodes/garbled") {
		t.Errorf("garbled answer: %v", err)
	}
	if err := c.Logs(ctx, "default", "gone", LogOptions{}, io.Discard); !IsNotFound(err) {
		t.Errorf("logs of a missing pod: %v, want NotFound", err)
	}
}

// TestRequestsSayWhatTheyAskFor: paths of namespaced, cluster and group
// kinds, selectors, dry runs and log options go on the wire as the API
// reads them.
func TestRequestsSayWhatTheyAskFor(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/log"):
		case r.URL.Path == "/api/v1/apply":
			_ = json.NewEncoder(w).Encode(api.ApplyResponse{})
		default:
			_ = json.NewEncoder(w).Encode(api.List{})
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tail := int64(5)
	steps := []func() error{
		func() error {
			_, err := c.List(ctx, kind(t, api.KindPod), "prod", ListOptions{LabelSelector: "app=web", FieldSelector: "spec.nodeName=n1"})
			return err
		},
		func() error { _, err := c.List(ctx, kind(t, api.KindPod), "", ListOptions{}); return err },
		func() error { _, err := c.List(ctx, kind(t, api.KindDaemonSet), "default", ListOptions{}); return err },
		func() error { _, err := c.List(ctx, kind(t, api.KindNode), "ignored", ListOptions{}); return err },
		func() error { _, err := c.Apply(ctx, nil, true); return err },
		func() error {
			return c.Logs(ctx, "default", "p", LogOptions{Container: "c", Follow: true, TailLines: &tail, Since: 1500 * time.Millisecond}, io.Discard)
		},
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := []string{
		"GET /api/v1/namespaces/prod/pods?" + url.Values{"labelSelector": {"app=web"}, "fieldSelector": {"spec.nodeName=n1"}}.Encode(),
		"GET /api/v1/pods",
		"GET /apis/apps/v1/namespaces/default/daemonsets",
		"GET /api/v1/nodes",
		"POST /api/v1/apply?dryRun=true",
		"GET /api/v1/namespaces/default/pods/p/log?container=c&follow=true&sinceSeconds=2&tailLines=5",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
