package pki

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// httpsServer serves h over TLS with the hub's HTTPS configuration and
// returns a client that trusts the hub CA.
func httpsServer(t *testing.T, a *Authority, h http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = a.creds.HTTPServerTLS()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.creds.CA.Pool(), ServerName: "localhost"}}}
	return srv, client
}

func call(t *testing.T, c *http.Client, method, url string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

func TestEnrolHandler(t *testing.T) {
	clk := newClock()
	a, _ := testAuthority(t, clk, false)
	srv, client := httpsServer(t, a, a.EnrolHandler())
	url := srv.URL + api.EnrolPath

	tok := mustToken(t, a, api.BootstrapTokenRequest{})
	code, body := call(t, client, "POST", url, enrolReq(t, tok, "edge-1"))
	if code != http.StatusCreated {
		t.Fatalf("enrol: %d %s", code, body)
	}
	resp := decode[api.EnrolResponse](t, body)
	issued(t, a, resp, "edge-1")

	code, body = call(t, client, "GET", url+"/"+resp.Name, nil)
	if code != http.StatusOK || decode[api.EnrolResponse](t, body).Certificate != resp.Certificate {
		t.Fatalf("poll: %d %s", code, body)
	}

	// The token is spent: 401, with a Status that says nothing more.
	code, body = call(t, client, "POST", url, enrolReq(t, tok, "edge-2"))
	st := decode[api.Status](t, body)
	if code != http.StatusUnauthorized || st.Kind != "Status" || st.Code != 401 || st.Message != ErrInvalidToken.Error() {
		t.Fatalf("spent token: %d %s", code, body)
	}

	// Taking over edge-1's name waits: 202.
	code, body = call(t, client, "POST", url, enrolReq(t, mustToken(t, a, api.BootstrapTokenRequest{}), "edge-1"))
	pending := decode[api.EnrolResponse](t, body)
	if code != http.StatusAccepted || pending.Status != api.EnrolPending {
		t.Fatalf("pending: %d %s", code, body)
	}
	if _, err := a.Deny(pending.Name, "", "no"); err != nil {
		t.Fatal(err)
	}
	if code, body = call(t, client, "GET", url+"/"+pending.Name, nil); code != http.StatusForbidden {
		t.Fatalf("denied: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, method, path string
		body               any
		code               int
	}{
		{"bad request", "POST", api.EnrolPath, api.EnrolRequest{Token: mustToken(t, a, api.BootstrapTokenRequest{}), NodeName: "x", CSR: "junk"}, http.StatusUnprocessableEntity},
		{"not JSON", "POST", api.EnrolPath, "{", http.StatusBadRequest},
		{"two values", "POST", api.EnrolPath, "{} {}", http.StatusBadRequest},
		{"too large", "POST", api.EnrolPath, `{"csr":"` + strings.Repeat("x", maxBody) + `"}`, http.StatusRequestEntityTooLarge},
		{"unknown request", "GET", api.EnrolPath + "/csr-nothere", nil, http.StatusNotFound},
		{"no listing", "GET", api.EnrolPath, nil, http.StatusMethodNotAllowed},
		{"no admin routes", "POST", api.TokensPath, api.BootstrapTokenRequest{}, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, client, tc.method, srv.URL+tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("%d %s, want %d", code, body, tc.code)
			}
		})
	}
}

func TestAdminHandler(t *testing.T) {
	clk := newClock()
	a, _ := testAuthority(t, clk, true)
	var revoked []string
	srv, client := httpsServer(t, a, a.AdminHandler(func(node string) { revoked = append(revoked, node) }))

	code, body := call(t, client, "POST", srv.URL+api.TokensPath, api.BootstrapTokenRequest{TTLSeconds: 600, Labels: map[string]string{"site": "s1"}})
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %s", code, body)
	}
	tok := decode[api.BootstrapTokenResponse](t, body)
	if tok.Token == "" || tok.CAFingerprint != a.creds.CA.Fingerprint() {
		t.Fatalf("token response %s", body)
	}
	code, body = call(t, client, "GET", srv.URL+api.TokensPath, nil)
	if code != http.StatusOK || !strings.Contains(string(body), tok.ID) || strings.Contains(string(body), tok.Token[7:]) {
		t.Fatalf("list tokens: %d %s", code, body)
	}
	if code, body = call(t, client, "POST", srv.URL+api.TokensPath, api.BootstrapTokenRequest{Uses: -1}); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad token request: %d %s", code, body)
	}

	resp, err := a.Enrol(enrolReq(t, tok.Token, "edge-1"))
	if err != nil || resp.Status != api.EnrolPending {
		t.Fatalf("enrol: %+v %v", resp, err)
	}
	approval := srv.URL + "/apis/certificates.k8s.io/v1/certificatesigningrequests/" + resp.Name + "/approval"
	if code, body = call(t, client, "POST", approval, api.CertificateApproval{Decision: "Maybe"}); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad decision: %d %s", code, body)
	}
	code, body = call(t, client, "POST", approval, api.CertificateApproval{Decision: api.CertificateApproved})
	obj := decode[api.CertificateSigningRequest](t, body)
	if code != http.StatusOK || obj.Status.Condition(api.CertificateApproved) == nil {
		t.Fatalf("approve: %d %s", code, body)
	}
	if code, body = call(t, client, "POST", approval, api.CertificateApproval{Decision: api.CertificateApproved}); code != http.StatusConflict {
		t.Fatalf("approve twice: %d %s", code, body)
	}
	cert := issued(t, a, must(a.Poll(resp.Name)), "edge-1")

	if code, body = call(t, client, "POST", srv.URL+"/api/v1/nodes/edge-1/revoke", nil); code != http.StatusOK || len(revoked) != 1 || revoked[0] != "edge-1" {
		t.Fatalf("revoke: %d %s %v", code, body, revoked)
	}
	if err := a.CheckCertificate(cert); err == nil {
		t.Fatal("revoked over HTTP but still good")
	}
	if code, _ = call(t, client, "DELETE", srv.URL+api.TokensPath+"/nothere", nil); code != http.StatusNotFound {
		t.Fatalf("delete a missing token: %d", code)
	}
}
