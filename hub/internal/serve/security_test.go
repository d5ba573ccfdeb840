package serve

import (
	"net/http/httptest"
	"strings"
	"testing"
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
