package serve

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/pki"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// The auth-scheme is case-insensitive (RFC 7235 §2.1, RFC 6750 §2.1), and
// one or more spaces separate it from the token.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	a := newAuthenticator("s3cret-token")
	for header, want := range map[string]bool{
		"Bearer s3cret-token":   true,
		"bearer s3cret-token":   true,
		"BEARER s3cret-token":   true,
		"Bearer   s3cret-token": true,
		"Bearer s3cret-token ":  true,
		"Bearer wrong":          false,
		"Bearer":                false,
		"Bearer ":               false,
		"Bearers3cret-token":    false,
		"Basic s3cret-token":    false,
		"s3cret-token":          false,
		"":                      false,
	} {
		r := httptest.NewRequest("GET", "/api/v1/nodes", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		if got := a.ok(r); got != want {
			t.Errorf("Authorization: %q: admitted %v, want %v", header, got, want)
		}
	}
}

// FuzzBearerToken: whatever the header, no panic, and a token is only
// found after a Bearer scheme, trimmed and not empty.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "Basic abc", "", "Bearer", " Bearer x", "BEARER\tx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, ok := bearerToken(header)
		if !ok {
			if tok != "" {
				t.Fatalf("%q: token %q without ok", header, tok)
			}
			return
		}
		scheme, rest, _ := strings.Cut(header, " ")
		if !strings.EqualFold(scheme, "bearer") || tok == "" || tok != strings.TrimSpace(tok) || !strings.Contains(rest, tok) {
			t.Fatalf("%q: token %q", header, tok)
		}
	})
}

// Who is refused how: no credentials or a wrong token is 401, a
// certificate of the hub CA for anyone but the administrator is 403 (as
// Kubernetes answers a user it knows but does not authorize), each with
// a Status.
func TestAPIAuthentication(t *testing.T) {
	a := newAuthenticator("s3cret-token")
	h := a.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	verified := func(cn string) *tls.ConnectionState {
		cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn}}
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
	}
	for _, c := range []struct {
		name   string
		token  string
		tls    *tls.ConnectionState
		code   int
		reason string
	}{
		{"nothing", "", nil, http.StatusUnauthorized, "Unauthorized"},
		{"wrong token", "nope", nil, http.StatusUnauthorized, "Unauthorized"},
		{"token", "s3cret-token", nil, http.StatusTeapot, ""},
		{"admin certificate", "", verified(pki.AdminIdentity), http.StatusTeapot, ""},
		{"admin certificate, wrong token", "nope", verified(pki.AdminIdentity), http.StatusTeapot, ""},
		{"node certificate", "", verified("edge-1"), http.StatusForbidden, api.ReasonForbidden},
		{"node certificate and the token", "s3cret-token", verified("edge-1"), http.StatusTeapot, ""},
		{"unverified admin certificate", "", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: pki.AdminIdentity}}}},
			http.StatusUnauthorized, "Unauthorized"},
	} {
		r := httptest.NewRequest("GET", "/api/v1/nodes", nil)
		r.TLS = c.tls
		if c.token != "" {
			r.Header.Set("Authorization", "Bearer "+c.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("%s: %d, want %d", c.name, w.Code, c.code)
			continue
		}
		if c.reason == "" {
			continue
		}
		var st api.Status
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Kind != "Status" || st.Reason != c.reason || st.Code != c.code {
			t.Errorf("%s: body %s (%v)", c.name, w.Body, err)
		}
		if c.code == http.StatusForbidden && !strings.Contains(st.Message, `User "edge-1" cannot get /api/v1/nodes`) {
			t.Errorf("%s: message %q", c.name, st.Message)
		}
	}
}
