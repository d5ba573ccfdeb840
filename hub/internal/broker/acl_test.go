package broker

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/pki"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testPKI is a hub CA with certificates for the hub and some nodes.
type testPKI struct {
	creds *pki.Credentials
	dir   string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	c, err := pki.Load(pki.Options{Dir: dir, Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{creds: c, dir: dir}
}

// clientCert issues a client certificate for cn from the hub CA.
func (p *testPKI) clientCert(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert, err := p.creds.CA.IssueClient(cn, key.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// conn returns the broker side of a TLS connection whose client
// presented cert (none if cert is nil), after the handshake.
func (p *testPKI) conn(t *testing.T, cert *tls.Certificate) net.Conn {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	srvConf := p.creds.MQTTServerTLS()
	srvConf.ClientAuth = tls.VerifyClientCertIfGiven // let the hook see certificate-less clients
	srv := tls.Server(a, srvConf)
	cliConf := p.creds.HubClientTLS("localhost")
	cliConf.Certificates = nil
	if cert != nil {
		cliConf.Certificates = []tls.Certificate{*cert}
	}
	cli := tls.Client(b, cliConf)
	done := make(chan error, 1)
	go func() { done <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return srv
}

type fakeChecker map[string]bool // revoked common names

func (f fakeChecker) CheckCertificate(c *x509.Certificate) error {
	if f[c.Subject.CommonName] {
		return errors.New("revoked")
	}
	return nil
}

func newTestACL(t *testing.T, revoked fakeChecker) *ACL {
	t.Helper()
	h, err := NewACL(ACLOptions{HubIdentity: pki.HubIdentity, Checker: revoked, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// connectInfo is what the broker tells Auth of a client on conn.
func connectInfo(id string, conn net.Conn, will string) ConnectInfo {
	info := ConnectInfo{ClientID: id, Remote: "test", WillTopic: will}
	if tc, ok := conn.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		info.TLS = &cs
	}
	return info
}

func TestACLRules(t *testing.T) {
	for _, tc := range []struct {
		node, topic    string
		pub, subscribe bool
	}{
		{"n1", "flotilla/v1/nodes/n1/status", true, false},
		{"n1", "flotilla/v1/nodes/n1/metrics", true, false},
		{"n1", "flotilla/v1/nodes/n1/events", true, false},
		{"n1", "flotilla/v1/nodes/n1/online", true, false},
		{"n1", "flotilla/v1/nodes/n1/replies", true, false},
		{"n1", "flotilla/v1/nodes/n1/desired", false, true},
		{"n1", "flotilla/v1/nodes/n1/requests", false, true},
		{"n1", "flotilla/v1/nodes/n2/status", false, false},
		{"n1", "flotilla/v1/nodes/n2/desired", false, false},
		{"n1", "flotilla/v1/nodes/+/desired", false, false},
		{"n1", "flotilla/v1/nodes/#", false, false},
		{"n1", "flotilla/v1/nodes/n1/#", false, false},
		{"n1", "flotilla/v1/nodes/n1/+", false, false},
		{"n1", "#", false, false},
		{"n1", "$SYS/broker/clients", false, false},
		{"n1", "$share/g/flotilla/v1/nodes/n1/desired", false, false},
		{"n1", "flotilla/v1/nodes/n1/status/x", false, false},
		{"n1", "flotilla/v1/nodes/n1/other", false, false},
		{"n1", "flotilla/v2/nodes/n1/status", false, false},
		{"n1", "", false, false},
	} {
		if got := NodeMayPublish(tc.node, tc.topic); got != tc.pub {
			t.Errorf("NodeMayPublish(%s, %q) = %v", tc.node, tc.topic, got)
		}
		if got := NodeMaySubscribe(tc.node, tc.topic); got != tc.subscribe {
			t.Errorf("NodeMaySubscribe(%s, %q) = %v", tc.node, tc.topic, got)
		}
	}
}

func TestACLHook(t *testing.T) {
	p := newTestPKI(t)
	h := newTestACL(t, fakeChecker{"stolen": true})
	var _ Auth = h
	n1 := p.clientCert(t, "n1")
	hub := p.creds.HubClient

	t.Run("connect", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			cert     *tls.Certificate
			clientID string
			will     string
			plain    bool
			ok       bool
		}{
			{"node", &n1, wire.AgentClientID("n1"), "", false, true},
			{"node with its will", &n1, wire.AgentClientID("n1"), wire.NodeTopic("n1", wire.TopicOnline), false, true},
			{"node with another's client id", &n1, wire.AgentClientID("n2"), "", false, false},
			{"node with a free client id", &n1, "anything", "", false, false},
			{"node with a will on another node", &n1, wire.AgentClientID("n1"), wire.NodeTopic("n2", wire.TopicOnline), false, false},
			{"node with a will on its desired topic", &n1, wire.AgentClientID("n1"), wire.NodeTopic("n1", wire.TopicDesired), false, false},
			{"hub with any client id", &hub, "flotilla-hub-x-1", "", false, true},
			{"revoked node", ptr(p.clientCert(t, "stolen")), wire.AgentClientID("stolen"), "", false, false},
			{"certificate name that is no node name", ptr(p.clientCert(t, "a+b")), wire.AgentClientID("a+b"), "", false, false},
			{"admin identity", ptr(p.clientCert(t, pki.AdminIdentity)), wire.AgentClientID(pki.AdminIdentity), "", false, false},
			{"no certificate", nil, wire.AgentClientID("n1"), "", false, false},
			{"plain TCP", nil, wire.AgentClientID("n1"), "", true, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var conn net.Conn
				if tc.plain {
					a, b := net.Pipe()
					t.Cleanup(func() { a.Close(); b.Close() })
					conn = a
				} else {
					conn = p.conn(t, tc.cert)
				}
				id, err := h.Authenticate(connectInfo(tc.clientID, conn, tc.will))
				if (err == nil) != tc.ok {
					t.Fatalf("Authenticate = %v, %v; want ok %v", id, err, tc.ok)
				}
				if err == nil && id.Name != tc.cert.Leaf.Subject.CommonName {
					t.Fatalf("Authenticate named %q", id.Name)
				}
			})
		}
	})

	t.Run("access", func(t *testing.T) {
		node, err := h.Authenticate(connectInfo(wire.AgentClientID("n1"), p.conn(t, &n1), ""))
		if err != nil {
			t.Fatal(err)
		}
		hubCl, err := h.Authenticate(connectInfo("hub", p.conn(t, &hub), ""))
		if err != nil {
			t.Fatal(err)
		}
		anon, err := h.Authenticate(connectInfo("x", p.conn(t, nil), ""))
		if err == nil {
			t.Fatal("a client without a certificate authenticated")
		}
		for _, tc := range []struct {
			cl    Identity
			topic string
			write bool
			ok    bool
		}{
			{node, "flotilla/v1/nodes/n1/status", true, true},
			{node, "flotilla/v1/nodes/n1/status", false, false},
			{node, "flotilla/v1/nodes/n2/status", true, false},
			{node, "flotilla/v1/nodes/n1/desired", false, true},
			{node, "flotilla/v1/nodes/n1/desired", true, false}, // a node never writes its own orders
			{node, "flotilla/v1/nodes/n2/desired", false, false},
			{node, "flotilla/v1/nodes/+/status", false, false},
			{hubCl, "flotilla/v1/nodes/n2/desired", true, true},
			{hubCl, "$share/flotilla-hub/flotilla/v1/nodes/+/status", false, true},
			{anon, "flotilla/v1/nodes/n1/status", true, false},
			{anon, "flotilla/v1/nodes/n1/desired", false, false},
		} {
			got := h.MaySubscribe(tc.cl, tc.topic)
			if tc.write {
				got = h.MayPublish(tc.cl, tc.topic)
			}
			if got != tc.ok {
				t.Errorf("%+v: may %q (write %v) = %v", tc.cl, tc.topic, tc.write, got)
			}
		}
	})

	if _, err := NewACL(ACLOptions{}); err == nil {
		t.Error("NewACL without a hub identity")
	}
	if _, err := NewACL(ACLOptions{HubIdentity: "hub"}); err == nil {
		t.Error("NewACL with a hub identity a node could take")
	}
}

func ptr[T any](v T) *T { return &v }

func csrFor(t *testing.T, cn string, key crypto.PrivateKey) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func keyPEM(t *testing.T, key crypto.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
