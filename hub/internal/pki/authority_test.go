package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func enrolReq(t *testing.T, token, node string) api.EnrolRequest {
	t.Helper()
	return api.EnrolRequest{Token: token, NodeName: node, CSR: csrPEM(t, newKey(t), node)}
}

func mustToken(t *testing.T, a *Authority, req api.BootstrapTokenRequest) string {
	t.Helper()
	resp, err := a.CreateToken(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Token
}

// issued checks an Issued response and returns its certificate.
func issued(t *testing.T, a *Authority, resp api.EnrolResponse, node string) *x509.Certificate {
	t.Helper()
	if resp.Status != api.EnrolIssued {
		t.Fatalf("status %s (%s), want Issued", resp.Status, resp.Message)
	}
	cert, err := ParseCertificate([]byte(resp.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ParseCertificate([]byte(resp.CA))
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Equal(a.creds.CA.Cert) {
		t.Fatal("the response's CA is not the hub's")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: a.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != node {
		t.Fatalf("CN %q, want %q", cert.Subject.CommonName, node)
	}
	key, err := wire.ParseSigningKey([]byte(resp.SigningKey))
	if err != nil || !key.Equal(a.creds.SigningKey.Public()) {
		t.Fatalf("signing key: %v", err)
	}
	return cert
}

func TestCreateToken(t *testing.T) {
	clk := newClock()
	a, st := testAuthority(t, clk, false)
	resp, err := a.CreateToken(api.BootstrapTokenRequest{TTLSeconds: 3600, Labels: map[string]string{"site": "north"}, Description: "line 3"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{32}$`).MatchString(resp.Token) {
		t.Fatalf("token %q does not have the documented form", resp.Token)
	}
	if resp.ID != resp.Token[:6] || resp.UsesLeft != 1 || resp.Unlimited || !resp.Expires.Equal(clk.now().Add(time.Hour)) {
		t.Fatalf("token info %+v", resp.BootstrapToken)
	}
	if resp.CAFingerprint != a.creds.CA.Fingerprint() {
		t.Fatal("no CA fingerprint with the token")
	}
	// Only the hash is stored: the secret is nowhere in the store.
	secret := resp.Token[7:]
	_ = st.View(func(tx store.Tx) error {
		recs, _ := tx.List(KindBootstrapToken, "")
		for _, r := range recs {
			if strings.Contains(string(r.Value), secret) {
				t.Errorf("the token's secret is stored: %s", r.Value)
			}
		}
		if len(recs) != 1 {
			t.Errorf("%d token records", len(recs))
		}
		return nil
	})
	list, err := a.Tokens()
	if err != nil || len(list) != 1 || list[0].ID != resp.ID || list[0].Labels["site"] != "north" {
		t.Fatalf("Tokens() = %+v, %v", list, err)
	}
	// Defaults.
	def, _ := a.CreateToken(api.BootstrapTokenRequest{})
	if !def.Expires.Equal(clk.now().Add(DefaultTokenTTL)) || def.UsesLeft != 1 {
		t.Errorf("defaults: %+v", def.BootstrapToken)
	}

	for name, bad := range map[string]api.BootstrapTokenRequest{
		"negative ttl":         {TTLSeconds: -1},
		"ttl over a year":      {TTLSeconds: int64(MaxTokenTTL/time.Second) + 1},
		"negative uses":        {Uses: -1},
		"uses and unlimited":   {Uses: 2, Unlimited: true},
		"bad label key":        {Labels: map[string]string{"-x": "y"}},
		"bad label value":      {Labels: map[string]string{"x": "a b"}},
		"bad node name":        {NodeName: "Edge_1"},
		"node name is the hub": {NodeName: HubIdentity},
		"long description":     {Description: strings.Repeat("x", 257)},
	} {
		if _, err := a.CreateToken(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}

	if err := a.DeleteToken(resp.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Enrol(enrolReq(t, resp.Token, "edge-1")); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("deleted token: %v", err)
	}
	if err := a.DeleteToken(resp.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestEnrol(t *testing.T) {
	clk := newClock()
	a, st := testAuthority(t, clk, false)
	token := mustToken(t, a, api.BootstrapTokenRequest{Labels: map[string]string{"site": "north"}})

	resp, err := a.Enrol(enrolReq(t, token, "edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	cert := issued(t, a, resp, "edge-1")
	if err := a.CheckCertificate(cert); err != nil {
		t.Fatal(err)
	}
	// The request is recorded, approved, with its certificate.
	_ = st.View(func(tx store.Tx) error {
		obj, err := store.Get[api.CertificateSigningRequest](tx, "", resp.Name)
		if err != nil {
			t.Fatal(err)
		}
		if obj.Spec.NodeName != "edge-1" || obj.Status.Condition(api.CertificateApproved) == nil || len(obj.Status.Certificate) == 0 ||
			!strings.HasPrefix(obj.Spec.Username, "flotilla:bootstrap:") || obj.Spec.SignerName != api.SignerNodeClient {
			t.Errorf("request %+v", obj)
		}
		// The node exists, with the token's labels.
		node, err := store.Get[api.Node](tx, "", "edge-1")
		if err != nil || node.Labels["site"] != "north" || node.UID == "" {
			t.Errorf("node %+v, %v", node, err)
		}
		cred, err := store.Get[NodeCredential](tx, "", "edge-1")
		if err != nil || len(cred.Certificates) != 1 || cred.Certificates[0].Serial != SerialString(cert.SerialNumber) || cred.Certificates[0].Request != resp.Name {
			t.Errorf("credential %+v, %v", cred, err)
		}
		return nil
	})
	// Poll returns the same.
	polled, err := a.Poll(resp.Name)
	if err != nil || polled.Status != api.EnrolIssued || polled.Certificate != resp.Certificate {
		t.Fatalf("poll: %+v, %v", polled, err)
	}
	if _, err := a.Poll("csr-nothere"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("poll of a missing request: %v", err)
	}

	// The token was for one node: it is used up.
	if _, err := a.Enrol(enrolReq(t, token, "edge-2")); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("second use of a single-use token: %v", err)
	}
}

func TestEnrolTokenRules(t *testing.T) {
	clk := newClock()
	a, _ := testAuthority(t, clk, false)

	two := mustToken(t, a, api.BootstrapTokenRequest{Uses: 2})
	for i, node := range []string{"a1", "a2"} {
		if resp, err := a.Enrol(enrolReq(t, two, node)); err != nil || resp.Status != api.EnrolIssued {
			t.Fatalf("use %d: %+v %v", i+1, resp, err)
		}
	}
	if _, err := a.Enrol(enrolReq(t, two, "a3")); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("third use of a two-use token: %v", err)
	}

	unlimited := mustToken(t, a, api.BootstrapTokenRequest{Unlimited: true, TTLSeconds: 60})
	for i := range 5 {
		if _, err := a.Enrol(enrolReq(t, unlimited, "u"+string(rune('0'+i)))); err != nil {
			t.Fatalf("unlimited use %d: %v", i+1, err)
		}
	}
	toks, _ := a.Tokens()
	for _, tk := range toks {
		if tk.ID == unlimited[:6] && tk.Used != 5 {
			t.Errorf("unlimited token used %d times, want 5", tk.Used)
		}
	}
	clk.advance(61 * time.Second)
	if _, err := a.Enrol(enrolReq(t, unlimited, "u9")); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token: %v", err)
	}

	good := mustToken(t, a, api.BootstrapTokenRequest{})
	for name, tok := range map[string]string{
		"wrong secret":     good[:7] + strings.Repeat("a", 32),
		"unknown id":       "zzzzzz." + good[7:],
		"malformed":        "not-a-token",
		"upper case":       strings.ToUpper(good),
		"empty":            "",
		"secret too short": good[:len(good)-1],
	} {
		if _, err := a.Enrol(enrolReq(t, tok, "b1")); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A bad request does not spend the token.
	if _, err := a.Enrol(api.EnrolRequest{Token: good, NodeName: "b1", CSR: csrPEM(t, newKey(t), "b2")}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("mismatched name: %v", err)
	}
	if _, err := a.Enrol(enrolReq(t, good, "b1")); err != nil {
		t.Fatalf("the token was spent by a refused request: %v", err)
	}

	bound := mustToken(t, a, api.BootstrapTokenRequest{NodeName: "c1"})
	if _, err := a.Enrol(enrolReq(t, bound, "c2")); !errors.Is(err, ErrForbidden) {
		t.Fatalf("token bound to c1 used for c2: %v", err)
	}
	if resp, err := a.Enrol(enrolReq(t, bound, "c1")); err != nil || resp.Status != api.EnrolIssued {
		t.Fatalf("token bound to c1 used for c1: %+v %v", resp, err)
	}
}

func TestEnrolNeedsApprovalToReplaceAName(t *testing.T) {
	clk := newClock()
	a, _ := testAuthority(t, clk, false)
	first := issued(t, a, must(a.Enrol(enrolReq(t, mustToken(t, a, api.BootstrapTokenRequest{}), "edge-1"))), "edge-1")

	// Someone else with a fresh token asks for edge-1's name.
	resp, err := a.Enrol(enrolReq(t, mustToken(t, a, api.BootstrapTokenRequest{}), "edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != api.EnrolPending || !strings.Contains(resp.Message, "already holds a valid certificate") || resp.Certificate != "" {
		t.Fatalf("takeover of an enrolled name: %+v", resp)
	}
	if _, err := a.Deny(resp.Name, "", "not ours"); err != nil {
		t.Fatal(err)
	}
	polled, _ := a.Poll(resp.Name)
	if polled.Status != api.EnrolDenied || polled.Message != "not ours" || polled.Certificate != "" {
		t.Fatalf("denied: %+v", polled)
	}
	if _, err := a.Approve(resp.Name, "", ""); !errors.Is(err, ErrAlreadyDecided) {
		t.Fatalf("approve after deny: %v", err)
	}
	if err := a.CheckCertificate(first); err != nil {
		t.Fatalf("the first certificate suffered: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestManualApproval(t *testing.T) {
	clk := newClock()
	a, _ := testAuthority(t, clk, true)
	resp, err := a.Enrol(enrolReq(t, mustToken(t, a, api.BootstrapTokenRequest{Labels: map[string]string{"role": "gw"}}), "edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != api.EnrolPending || resp.Name == "" || resp.Certificate != "" || resp.SigningKey != "" {
		t.Fatalf("manual approval: %+v", resp)
	}
	if p, _ := a.Poll(resp.Name); p.Status != api.EnrolPending {
		t.Fatalf("poll: %+v", p)
	}
	obj, err := a.Approve(resp.Name, "", "checked the serial sticker")
	if err != nil {
		t.Fatal(err)
	}
	if c := obj.Status.Condition(api.CertificateApproved); c == nil || c.Reason != "OperatorApproved" || c.Message != "checked the serial sticker" {
		t.Fatalf("conditions %+v", obj.Status.Conditions)
	}
	issued(t, a, must(a.Poll(resp.Name)), "edge-1")
	if _, err := a.Approve(resp.Name, "", ""); !errors.Is(err, ErrAlreadyDecided) {
		t.Fatalf("approve twice: %v", err)
	}
	if _, err := a.Approve("csr-nothere", "", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("approve a missing request: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	clk := newClock()
	a, _ := testAuthority(t, clk, false)
	tok := mustToken(t, a, api.BootstrapTokenRequest{Uses: 2})
	victim := issued(t, a, must(a.Enrol(enrolReq(t, tok, "edge-1"))), "edge-1")
	bystander := issued(t, a, must(a.Enrol(enrolReq(t, tok, "edge-2"))), "edge-2")
	// A certificate for edge-1 the hub has no record of, issued before
	// the revocation (as from a restored backup).
	unlisted, err := a.creds.CA.IssueClient("edge-1", newKey(t).Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	clk.advance(time.Minute)
	n, err := a.Revoke("edge-1")
	if err != nil || n != 1 {
		t.Fatalf("Revoke = %d, %v", n, err)
	}
	if err := a.CheckCertificate(victim); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked certificate: %v", err)
	}
	if err := a.CheckCertificate(unlisted); !errors.Is(err, ErrRevoked) {
		t.Fatalf("unlisted older certificate: %v", err)
	}
	if err := a.CheckCertificate(bystander); err != nil {
		t.Fatalf("another node's certificate: %v", err)
	}
	if err := a.CheckCertificate(a.creds.HubClient.Leaf); err != nil {
		t.Fatalf("the hub's certificate: %v", err)
	}
	list, err := a.RevocationList()
	if err != nil || len(list) != 1 || list[0].Node != "edge-1" || list[0].Serial != SerialString(victim.SerialNumber) {
		t.Fatalf("revocation list %+v, %v", list, err)
	}

	// The name comes back only with an operator's approval.
	resp, err := a.Enrol(enrolReq(t, mustToken(t, a, api.BootstrapTokenRequest{}), "edge-1"))
	if err != nil || resp.Status != api.EnrolPending || !strings.Contains(resp.Message, "was revoked") {
		t.Fatalf("re-enrolment after revocation: %+v, %v", resp, err)
	}
	if _, err := a.Approve(resp.Name, "", ""); err != nil {
		t.Fatal(err)
	}
	// In the same second as the revocation or not, the new certificate is
	// listed and good; the old one stays revoked.
	replacement := issued(t, a, must(a.Poll(resp.Name)), "edge-1")
	if err := a.CheckCertificate(replacement); err != nil {
		t.Fatalf("replacement certificate: %v", err)
	}
	if err := a.CheckCertificate(victim); !errors.Is(err, ErrRevoked) {
		t.Fatalf("the old certificate came back: %v", err)
	}

	// Revoking an unknown node still refuses its older certificates.
	ghost, _ := a.creds.CA.IssueClient("ghost", newKey(t).Public(), time.Hour)
	clk.advance(time.Second)
	if _, err := a.Revoke("ghost"); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckCertificate(ghost); !errors.Is(err, ErrRevoked) {
		t.Fatalf("certificate of a node revoked without a record: %v", err)
	}
	if _, err := a.Revoke("Bad_Name"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("revoke a bad name: %v", err)
	}
}

func TestCheckCertificateFailsClosed(t *testing.T) {
	clk := newClock()
	a, _ := testAuthority(t, clk, false)
	// A name the store cannot even look up is refused, not waved through.
	odd, err := a.creds.CA.issue("a/b", newKey(t).Public(), x509.ExtKeyUsageClientAuth, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CheckCertificate(odd); err == nil {
		t.Fatal("a certificate with a malformed name passed")
	}
}

func TestCRL(t *testing.T) {
	clk := newClock()
	a, _ := testAuthority(t, clk, false)
	tok := mustToken(t, a, api.BootstrapTokenRequest{Uses: 2})
	victim := issued(t, a, must(a.Enrol(enrolReq(t, tok, "edge-1"))), "edge-1")
	other := issued(t, a, must(a.Enrol(enrolReq(t, tok, "edge-2"))), "edge-2")
	if _, err := a.Revoke("edge-1"); err != nil {
		t.Fatal(err)
	}
	b, err := a.CRL()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "X509 CRL" {
		t.Fatalf("not a PEM CRL: %s", b)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(a.creds.CA.Cert); err != nil {
		t.Fatal(err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(victim.SerialNumber) != 0 {
		t.Fatalf("CRL entries %+v", crl.RevokedCertificateEntries)
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(other.SerialNumber) == 0 {
			t.Fatal("an unrevoked certificate is in the CRL")
		}
	}

	// WriteCRL writes the same list to a file only root can read.
	path := filepath.Join(t.TempDir(), CRLFile)
	if err := a.WriteCRL(path); err != nil {
		t.Fatal(err)
	}
	fb, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %04o, want 0600", path, fi.Mode().Perm())
	}
	if block, _ := pem.Decode(fb); block == nil {
		t.Fatalf("%s is not PEM: %s", path, fb)
	} else if crl, err := x509.ParseRevocationList(block.Bytes); err != nil || len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("%s: %v, entries %+v", path, err, crl)
	}
}
