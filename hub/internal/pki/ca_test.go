package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestParseNodeCSR(t *testing.T) {
	p256 := newKey(t)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, pemText := range map[string]string{
		"ecdsa p-256": csrPEM(t, p256, "edge-1"),
		"ed25519":     csrPEM(t, edKey, "edge-1"),
		"rsa 2048":    csrPEM(t, rsa2048, "edge-1"),
	} {
		if _, err := ParseNodeCSR([]byte(pemText), "edge-1"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := csrPEM(t, p256, "edge-1")
	// A request whose signature no longer matches its content: the last
	// byte of the DER is the signature's.
	block, _ := pem.Decode([]byte(good))
	block.Bytes[len(block.Bytes)-1] ^= 0x01
	tampered := pem.EncodeToMemory(block)
	if _, err := x509.ParseCertificateRequest(block.Bytes); err != nil {
		t.Fatalf("the tampered request should still parse: %v", err)
	}

	for _, tc := range []struct {
		name, pem, node string
		want            error
	}{
		{"rsa 1024", csrPEM(t, rsa1024, "edge-1"), "edge-1", ErrWeakKey},
		{"ecdsa p-224", csrPEM(t, p224, "edge-1"), "edge-1", ErrWeakKey},
		{"common name is another node", good, "edge-2", ErrInvalidRequest},
		{"upper-case name", csrPEM(t, p256, "Edge-1"), "Edge-1", ErrInvalidName},
		{"mqtt wildcard in name", csrPEM(t, p256, "edge+1"), "edge+1", ErrInvalidName},
		{"topic separator in name", csrPEM(t, p256, "a/b"), "a/b", ErrInvalidName},
		{"the hub's identity", csrPEM(t, p256, HubIdentity), HubIdentity, ErrInvalidName},
		{"empty name", csrPEM(t, p256, ""), "", ErrInvalidName},
		{"not PEM", "hello", "edge-1", ErrInvalidRequest},
		{"a certificate, not a request", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "edge-1", ErrInvalidRequest},
		{"trailing data", good + "junk", "edge-1", ErrInvalidRequest},
		{"bad signature", string(tampered), "edge-1", ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNodeCSR([]byte(tc.pem), tc.node)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignNodeCSR(t *testing.T) {
	clk := newClock()
	creds := testCreds(t, clk)
	csr, err := ParseNodeCSR([]byte(csrPEM(t, newKey(t), "edge-1", func(r *x509.CertificateRequest) {
		r.DNSNames = []string{"hub.example"} // asks for more than it gets
		r.Subject.Organization = []string{"system:masters"}
	})), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := creds.CA.SignNodeCSR(csr, NodeValidity)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "edge-1" || len(cert.DNSNames) != 0 || cert.IsCA || cert.Subject.Organization[0] != organization {
		t.Fatalf("certificate: CN %q, DNS %v, CA %v, O %v", cert.Subject.CommonName, cert.DNSNames, cert.IsCA, cert.Subject.Organization)
	}
	opts := x509.VerifyOptions{Roots: creds.CA.Pool(), CurrentTime: clk.now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := cert.Verify(opts); err != nil {
		t.Fatalf("node certificate does not verify as a client: %v", err)
	}
	// A node certificate is no server certificate: a stolen board cannot
	// pose as the hub to another agent.
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if _, err := cert.Verify(opts); err == nil {
		t.Fatal("node certificate verifies as a server certificate")
	}
	if d := cert.NotAfter.Sub(clk.now()); d < NodeValidity-backdate || d > NodeValidity {
		t.Fatalf("validity %s", d)
	}
	if _, err := creds.CA.IssueClient("", newKey(t).Public(), NodeValidity); err == nil {
		t.Fatal("client certificate without a name")
	}
}

func TestFingerprint(t *testing.T) {
	creds := testCreds(t, newClock())
	fp := creds.CA.Fingerprint()
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+64 {
		t.Fatalf("fingerprint %q", fp)
	}
	want, err := api.ParseCAFingerprint(fp)
	if err != nil {
		t.Fatal(err)
	}
	// openssl x509 -noout -fingerprint -sha256 prints upper-case pairs.
	var pairs []string
	for _, b := range want {
		pairs = append(pairs, strings.ToUpper(string("0123456789abcdef"[b>>4])+string("0123456789abcdef"[b&15])))
	}
	for _, form := range []string{fp, strings.ToUpper(fp), "sha256 Fingerprint=" + strings.Join(pairs, ":"), strings.Join(pairs, ":"), strings.TrimPrefix(fp, "sha256:")} {
		got, err := api.ParseCAFingerprint(form)
		if err != nil || string(got) != string(want) {
			t.Errorf("%q: %x, %v", form, got, err)
		}
	}
	for _, bad := range []string{"", "sha256:", "sha256:abc", "md5:" + strings.Repeat("0", 32), strings.Repeat("zz", 32)} {
		if _, err := api.ParseCAFingerprint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
