package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

// testCreds loads fresh credentials into a temporary directory.
func testCreds(t *testing.T, clk *clock) *Credentials {
	t.Helper()
	c, err := Load(Options{Dir: t.TempDir() + "/pki", Hosts: []string{"localhost", "127.0.0.1"}, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testAuthority(t *testing.T, clk *clock, manual bool) (*Authority, *store.Memory) {
	t.Helper()
	st := store.NewMemory()
	t.Cleanup(func() { st.Close() })
	a, err := NewAuthority(AuthorityOptions{Store: st, Credentials: testCreds(t, clk), ManualApproval: manual, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrPEM makes a PEM certificate request for cn with key.
func csrPEM(t *testing.T, key crypto.Signer, cn string, mutate ...func(*x509.CertificateRequest)) string {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}
	for _, m := range mutate {
		m(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
