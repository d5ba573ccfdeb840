package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/pki"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// TestMosquittoWithDocumentedACL runs a real Mosquitto with
// docs/mosquitto/mosquitto-tls.conf and flotilla.acl (only paths, port
// and log changed: harness.StartDocumentedMosquitto) and checks that they keep nodes apart as the
// embedded broker does. It needs the mosquitto binary; -short skips it.
func TestMosquittoWithDocumentedACL(t *testing.T) {
	if testing.Short() {
		t.Skip("needs mosquitto")
	}
	if _, err := harness.FindBinary("mosquitto"); err != nil {
		t.Fatalf("this test runs the documented Mosquitto configuration: %v", err)
	}
	p := newTestPKI(t)
	st := store.NewMemory()
	defer st.Close()
	authority, err := pki.NewAuthority(pki.AuthorityOptions{Store: st, Credentials: p.creds, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	enrol := func(node string) *tls.Config {
		tok, err := authority.CreateToken(api.BootstrapTokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		resp, err := authority.Enrol(api.EnrolRequest{Token: tok.Token, NodeName: node, CSR: csrFor(t, node, key)})
		if err != nil || resp.Status != api.EnrolIssued {
			t.Fatalf("enrol %s: %+v %v", node, resp, err)
		}
		pair, err := tls.X509KeyPair([]byte(resp.Certificate), keyPEM(t, key))
		if err != nil {
			t.Fatal(err)
		}
		conf := p.creds.HubClientTLS("127.0.0.1")
		conf.Certificates = []tls.Certificate{pair}
		return conf
	}
	aTLS, bTLS, cTLS := enrol("node-a"), enrol("node-b"), enrol("node-c")
	if _, err := authority.Revoke("node-c"); err != nil {
		t.Fatal(err)
	}

	// The broker's files, where the documented configuration expects them.
	dir := t.TempDir()
	crl, err := authority.CRL()
	if err != nil {
		t.Fatal(err)
	}
	serverKey, err := os.ReadFile(filepath.Join(p.dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"ca.crt":      p.creds.CA.PEM,
		"server.crt":  pki.EncodeCertificate(p.creds.Server.Leaf.Raw),
		"server.key":  serverKey,
		"revoked.crl": crl,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mosq, err := harness.StartDocumentedMosquitto(ctx, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mosq.Stop()
	defer func() {
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", mosq.Logs())
		}
	}()
	url := mosq.URL

	hub, err := dial(t, url, "flotilla-hub-test", p.creds.HubClientTLS("127.0.0.1"), "")
	if err != nil {
		t.Fatal(err)
	}
	if code := hub.subscribe(t, wire.AllNodesTopic(wire.TopicStatus)); code >= 0x80 {
		t.Fatalf("hub subscribe: %#x", code)
	}
	if code := hub.subscribe(t, wire.SharedTopic("flotilla-hub", wire.AllNodesTopic(wire.TopicEvents))); code >= 0x80 {
		t.Fatalf("hub shared subscribe: %#x", code)
	}
	if err := hub.publish(wire.NodeTopic("node-b", wire.TopicDesired), "for-b", true); err != nil {
		t.Fatal(err)
	}
	if err := hub.publish(wire.NodeTopic("node-a", wire.TopicDesired), "for-a", true); err != nil {
		t.Fatal(err)
	}

	a, err := dial(t, url, wire.AgentClientID("node-a"), aTLS, wire.NodeTopic("node-a", wire.TopicOnline))
	if err != nil {
		t.Fatal(err)
	}
	if code := a.subscribe(t, wire.NodeTopic("node-a", wire.TopicDesired)); code >= 0x80 {
		t.Fatalf("own desired: %#x", code)
	}
	a.in.waitFor(t, wire.NodeTopic("node-a", wire.TopicDesired), "for-a")
	// Whatever Mosquitto answers to these subscriptions, node B's desired
	// state never reaches node A.
	for _, f := range []string{wire.NodeTopic("node-b", wire.TopicDesired), wire.AllNodesTopic(wire.TopicDesired), "#"} {
		code := a.subscribe(t, f)
		t.Logf("node A subscribing to %s: %#x", f, code)
	}

	// A forged status for node B is dropped; A's own goes through, and
	// the hub sees it after the forged one would have arrived.
	_ = a.publish(wire.NodeTopic("node-b", wire.TopicStatus), "forged", false)
	if err := a.publish(wire.NodeTopic("node-a", wire.TopicStatus), "a-status", false); err != nil {
		t.Fatal(err)
	}
	hub.in.waitFor(t, wire.NodeTopic("node-a", wire.TopicStatus), "a-status")
	if err := a.publish(wire.NodeTopic("node-a", wire.TopicEvents), "a-event", false); err != nil {
		t.Fatal(err)
	}
	hub.in.waitFor(t, wire.NodeTopic("node-a", wire.TopicEvents), "a-event")
	if got := hub.in.on(wire.NodeTopic("node-b", wire.TopicStatus)); len(got) != 0 {
		t.Errorf("the hub received a forged status for node B: %v", got)
	}
	if got := a.in.on(wire.NodeTopic("node-b", wire.TopicDesired)); len(got) != 0 {
		t.Errorf("node A read node B's desired state: %v", got)
	}

	// Node B connects; node A using B's client id does not cut B off.
	bc, err := dial(t, url, wire.AgentClientID("node-b"), bTLS, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, url, wire.AgentClientID("node-b"), aTLS, ""); err != nil {
		t.Logf("node A with B's client id: %v", err)
	}
	select {
	case err := <-bc.lost:
		t.Errorf("node B lost its session to node A: %v", err)
	case <-time.After(500 * time.Millisecond):
	}

	// The revoked node is refused by the CRL.
	if _, err := dial(t, url, wire.AgentClientID("node-c"), cTLS, ""); err == nil {
		t.Error("a revoked node connected to Mosquitto")
	}
}
