package enrol

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// testCA is a small CA for a fake hub.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) sign(t *testing.T, cn string, pub crypto.PublicKey, usage x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

func (ca *testCA) pin() string { return api.CAFingerprint(ca.cert.Raw) }

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// fakeHub speaks the enrolment protocol as the hub does, with knobs.
type fakeHub struct {
	t       *testing.T
	ca      *testCA
	signing ed25519.PrivateKey

	mu       sync.Mutex
	posts    int
	polls    int
	bodies   []string
	pendingN int              // answer Pending to this many polls before issuing
	deny     bool             // deny instead of issuing
	failN    int              // answer 503 to this many requests first
	postCode int              // answer POST with this status and a Status body
	certKey  crypto.PublicKey // sign this key instead of the request's
	certCN   string           // sign for this name instead of the request's
	answerCA *testCA
	csr      *x509.CertificateRequest
}

func newFakeHub(t *testing.T, ca *testCA) *fakeHub {
	_, sk, _ := ed25519.GenerateKey(rand.Reader)
	return &fakeHub{t: t, ca: ca, signing: sk}
}

func (h *fakeHub) issue() api.EnrolResponse {
	pub, cn := h.csr.PublicKey, h.csr.Subject.CommonName
	if h.certKey != nil {
		pub = h.certKey
	}
	if h.certCN != "" {
		cn = h.certCN
	}
	cert := h.ca.sign(h.t, cn, pub, x509.ExtKeyUsageClientAuth)
	answerCA := h.ca
	if h.answerCA != nil {
		answerCA = h.answerCA
	}
	sig, _ := wire.EncodeSigningKey(h.signing.Public().(ed25519.PublicKey))
	return api.EnrolResponse{Status: api.EnrolIssued, Name: "csr-abc", Certificate: pemCert(cert), CA: pemCert(answerCA.cert), SigningKey: string(sig)}
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	if h.failN > 0 {
		h.failN--
		reply(http.StatusServiceUnavailable, api.Status{Message: "starting"})
		return
	}
	switch {
	case r.Method == "POST" && r.URL.Path == api.EnrolPath:
		h.posts++
		b, _ := io.ReadAll(r.Body)
		h.bodies = append(h.bodies, string(b))
		if h.postCode != 0 {
			reply(h.postCode, api.Status{TypeMeta: api.TypeMeta{Kind: "Status"}, Code: h.postCode, Message: "refused by the test"})
			return
		}
		var req api.EnrolRequest
		if err := json.Unmarshal(b, &req); err != nil {
			reply(400, api.Status{Message: err.Error()})
			return
		}
		block, _ := pem.Decode([]byte(req.CSR))
		csr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != req.NodeName || req.Token != "abcdef.0123456789abcdef0123456789abcdef" {
			reply(422, api.Status{Message: "bad request"})
			return
		}
		h.csr = csr
		if h.pendingN > 0 || h.deny {
			reply(http.StatusAccepted, api.EnrolResponse{Status: api.EnrolPending, Name: "csr-abc", Message: "waiting"})
			return
		}
		reply(http.StatusCreated, h.issue())
	case r.Method == "GET" && r.URL.Path == api.EnrolPath+"/csr-abc":
		h.polls++
		switch {
		case h.csr == nil:
			reply(404, api.Status{Message: "not found"})
		case h.deny:
			reply(http.StatusForbidden, api.EnrolResponse{Status: api.EnrolDenied, Name: "csr-abc", Message: "not ours"})
		case h.pendingN > 0:
			h.pendingN--
			reply(http.StatusAccepted, api.EnrolResponse{Status: api.EnrolPending, Name: "csr-abc"})
		default:
			reply(http.StatusOK, h.issue())
		}
	default:
		reply(404, api.Status{Message: "no route"})
	}
}

// serve starts h over TLS, presenting a server certificate from ca and
// the chain given (nil: leaf and CA).
func serve(t *testing.T, h http.Handler, ca *testCA, chain func(leaf *x509.Certificate) [][]byte) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := ca.sign(t, "flotilla-hub", key.Public(), x509.ExtKeyUsageServerAuth)
	certs := [][]byte{leaf.Raw, ca.cert.Raw}
	if chain != nil {
		certs = chain(leaf)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: certs, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func config(t *testing.T, hub, pin string) Config {
	return Config{
		Hub: hub, Token: "abcdef.0123456789abcdef0123456789abcdef", CAFingerprint: pin, NodeName: "edge-1",
		Dir: filepath.Join(t.TempDir(), "pki"), PollInterval: 10 * time.Millisecond, Timeout: 5 * time.Second,
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestEnrolAndLoad(t *testing.T) {
	ca := newTestCA(t)
	hub := newFakeHub(t, ca)
	cfg := config(t, serve(t, hub, ca, nil), ca.pin())

	id, err := Enrol(ctxFor(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if id.NodeName != "edge-1" || id.Certificate.Leaf.Subject.CommonName != "edge-1" || !id.CA.Equal(ca.cert) || !id.SigningKey.Equal(hub.signing.Public()) {
		t.Fatalf("identity %+v", id)
	}
	// Files: private, complete, the key never sent.
	fi, _ := os.Stat(cfg.Dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %04o", fi.Mode().Perm())
	}
	for _, name := range []string{keyFile, certFile, caFile, signingKeyFile} {
		fi, err := os.Stat(filepath.Join(cfg.Dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, err, fi)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, requestFile)); !os.IsNotExist(err) {
		t.Error("request.json left behind")
	}
	keyPEM, _ := os.ReadFile(filepath.Join(cfg.Dir, keyFile))
	block, _ := pem.Decode(keyPEM)
	for _, body := range hub.bodies {
		if strings.Contains(body, "PRIVATE KEY") || strings.Contains(body, string(keyPEM[30:60])) {
			t.Fatal("the private key went to the hub")
		}
	}
	if block == nil || hub.csr == nil || !id.Certificate.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(hub.csr.PublicKey) {
		t.Fatal("the certificate is not for the key made on the board")
	}

	// Later starts load it, without the hub.
	again, err := Enrol(ctxFor(t), Config{Dir: cfg.Dir, NodeName: "edge-1"})
	if err != nil || !again.Certificate.Leaf.Equal(id.Certificate.Leaf) {
		t.Fatalf("reload: %v", err)
	}
	if hub.posts != 1 {
		t.Fatalf("%d enrolment requests, want 1", hub.posts)
	}
	if _, err := Load(cfg.Dir, "edge-2"); !errors.Is(err, ErrInvalidIdentity) {
		t.Fatalf("identity of another node: %v", err)
	}
	if _, err := Load(t.TempDir(), "edge-1"); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("empty dir: %v", err)
	}
	_ = os.Chmod(filepath.Join(cfg.Dir, keyFile), 0o644)
	if _, err := Load(cfg.Dir, "edge-1"); err == nil {
		t.Fatal("a world-readable key was loaded")
	}
}

func TestIdentityWorks(t *testing.T) {
	ca := newTestCA(t)
	hub := newFakeHub(t, ca)
	id, err := Enrol(ctxFor(t), config(t, serve(t, hub, ca, nil), ca.pin()))
	if err != nil {
		t.Fatal(err)
	}
	// The MQTT configuration: a broker that requires a client certificate
	// from the CA accepts the node.
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvCert := ca.sign(t, "flotilla-hub", key.Public(), x509.ExtKeyUsageServerAuth)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: key}},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() == nil {
			peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), id.TLSConfig("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if cn := <-peer; cn != "edge-1" {
		t.Fatalf("broker saw %q", cn)
	}
	// The verifier trusts the hub's signing key for this node.
	v, err := id.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := wire.NewSigner(hub.signing)
	b, _ := signer.EncodeSnapshot(&wire.Snapshot{Node: "edge-1", Revision: 1}, 1, time.Now())
	if _, err := v.VerifyMessage(wire.NodeTopic("edge-1", wire.TopicDesired), b, 0); err != nil {
		t.Fatal(err)
	}
}

func TestEnrolPinning(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	for _, tc := range []struct {
		name  string
		srvCA *testCA
		chain func(*x509.Certificate) [][]byte
		pin   string
	}{
		{"wrong pin", ca, nil, other.pin()},
		{"another CA presented (a man in the middle)", other, nil, ca.pin()},
		{"no CA in the chain", ca, func(leaf *x509.Certificate) [][]byte { return [][]byte{leaf.Raw} }, ca.pin()},
		{"the pinned CA presented with a leaf of another CA", other, func(leaf *x509.Certificate) [][]byte { return [][]byte{leaf.Raw, ca.cert.Raw} }, ca.pin()},
		{"a node certificate posing as the hub", ca, func(*x509.Certificate) [][]byte {
			return nil // replaced below
		}, ca.pin()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub := newFakeHub(t, tc.srvCA)
			var url string
			if strings.HasPrefix(tc.name, "a node certificate") {
				// A stolen board's client certificate, served as a server one.
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				nodeCert := ca.sign(t, "edge-9", key.Public(), x509.ExtKeyUsageClientAuth)
				srv := httptest.NewUnstartedServer(hub)
				srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{nodeCert.Raw, ca.cert.Raw}, PrivateKey: key}}}
				srv.StartTLS()
				t.Cleanup(srv.Close)
				url = srv.URL
			} else {
				url = serve(t, hub, tc.srvCA, tc.chain)
			}
			_, err := Enrol(ctxFor(t), config(t, url, tc.pin))
			if !errors.Is(err, ErrPinMismatch) {
				t.Fatalf("got %v, want %v", err, ErrPinMismatch)
			}
			if hub.posts != 0 {
				t.Fatal("the token was sent to an unpinned hub")
			}
		})
	}
}

func TestEnrolWaitsForApproval(t *testing.T) {
	ca := newTestCA(t)
	hub := newFakeHub(t, ca)
	hub.pendingN = 1 << 30 // until the test says otherwise
	cfg := config(t, serve(t, hub, ca, nil), ca.pin())

	// The first run gives up (the agent is stopped) while the request
	// waits, once the hub has been polled for it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := Enrol(ctx, cfg); done <- err }()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		hub.mu.Lock()
		polled := hub.polls > 0
		hub.mu.Unlock()
		if polled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hub was never polled for the pending request")
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Dir, requestFile))
	if err != nil || !strings.Contains(string(b), "csr-abc") {
		t.Fatalf("request.json: %s %v", b, err)
	}
	hub.mu.Lock()
	if hub.polls == 0 {
		t.Error("no polls while pending")
	}
	hub.pendingN = 2
	hub.mu.Unlock()

	// A restarted agent keeps waiting for the same request, spending no
	// new token, and gets its certificate once approved.
	if _, err := Enrol(ctxFor(t), cfg); err != nil {
		t.Fatal(err)
	}
	if hub.posts != 1 {
		t.Fatalf("%d enrolment requests, want 1", hub.posts)
	}
}

func TestEnrolRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *fakeHub, other *testCA)
		want  error
	}{
		{"bad token", func(h *fakeHub, _ *testCA) { h.postCode = http.StatusUnauthorized }, ErrInvalidToken},
		{"name refused", func(h *fakeHub, _ *testCA) { h.postCode = http.StatusUnprocessableEntity }, ErrRefused},
		{"token for another node", func(h *fakeHub, _ *testCA) { h.postCode = http.StatusForbidden }, ErrRefused},
		{"denied", func(h *fakeHub, _ *testCA) { h.deny = true }, ErrDenied},
		{"certificate for another key", func(h *fakeHub, _ *testCA) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			h.certKey = k.Public()
		}, ErrBadResponse},
		{"certificate for another node", func(h *fakeHub, _ *testCA) { h.certCN = "edge-2" }, ErrBadResponse},
		{"another CA in the answer", func(h *fakeHub, other *testCA) { h.answerCA = other }, ErrBadResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := newTestCA(t)
			hub := newFakeHub(t, ca)
			tc.setup(hub, newTestCA(t))
			cfg := config(t, serve(t, hub, ca, nil), ca.pin())
			_, err := Enrol(ctxFor(t), cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(cfg.Dir, certFile)); !os.IsNotExist(err) {
				t.Fatal("a certificate was kept")
			}
		})
	}
}

func TestEnrolRetriesAnUnavailableHub(t *testing.T) {
	ca := newTestCA(t)
	hub := newFakeHub(t, ca)
	hub.failN = 2
	if _, err := Enrol(ctxFor(t), config(t, serve(t, hub, ca, nil), ca.pin())); err != nil {
		t.Fatal(err)
	}
}

func TestEnrolConfig(t *testing.T) {
	ca := newTestCA(t)
	for name, mutate := range map[string]func(*Config){
		"plain http":      func(c *Config) { c.Hub = "http://127.0.0.1:1" },
		"no token":        func(c *Config) { c.Token = "" },
		"bad fingerprint": func(c *Config) { c.CAFingerprint = "sha256:xyz" },
		"no node":         func(c *Config) { c.NodeName = "" },
	} {
		cfg := config(t, "https://127.0.0.1:1", ca.pin())
		mutate(&cfg)
		if _, err := Enrol(ctxFor(t), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
