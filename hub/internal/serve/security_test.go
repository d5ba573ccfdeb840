package serve

import (
	"net/http/httptest"
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
