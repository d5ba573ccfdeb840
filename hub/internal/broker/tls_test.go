package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/flotilla-edge/flotilla/hub/internal/pki"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// inbox collects the messages a client receives.
type inbox struct {
	mu   sync.Mutex
	msgs map[string][]string
	got  chan struct{}
}

func newInbox() *inbox { return &inbox{msgs: map[string][]string{}, got: make(chan struct{}, 100)} }

func (b *inbox) handler(_ paho.Client, m paho.Message) {
	b.mu.Lock()
	b.msgs[m.Topic()] = append(b.msgs[m.Topic()], string(m.Payload()))
	b.mu.Unlock()
	select {
	case b.got <- struct{}{}:
	default:
	}
}

func (b *inbox) on(topic string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.msgs[topic]...)
}

// waitFor waits until topic has a message with payload.
func (b *inbox) waitFor(t *testing.T, topic, payload string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		for _, p := range b.on(topic) {
			if p == payload {
				return
			}
		}
		select {
		case <-b.got:
		case <-deadline:
			t.Fatalf("no %q on %s; have %v", payload, topic, b.on(topic))
		}
	}
}

type mqttClient struct {
	paho.Client
	lost chan error
	in   *inbox
}

func dial(t *testing.T, url, clientID string, conf *tls.Config, will string) (*mqttClient, error) {
	t.Helper()
	c := &mqttClient{lost: make(chan error, 1), in: newInbox()}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetTLSConfig(conf).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(c.in.handler).
		SetConnectionLostHandler(func(_ paho.Client, err error) { c.lost <- err })
	if will != "" {
		o.SetWill(will, "gone", 1, true)
	}
	c.Client = paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("connect %s: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func (c *mqttClient) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, c.in.handler)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("subscribe %s: no answer", filter)
	}
	if tok.Error() != nil {
		return 0x80
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func (c *mqttClient) publish(topic, payload string, retained bool) error {
	tok := c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(3 * time.Second) {
		return fmt.Errorf("publish %s: no acknowledgement", topic)
	}
	return tok.Error()
}

// TestBrokerTLSAndACL runs the embedded broker with TLS and the ACL, and
// paho clients for the hub and two nodes.
func TestBrokerTLSAndACL(t *testing.T) {
	p := newTestPKI(t)
	st := store.NewMemory()
	defer st.Close()
	authority, err := pki.NewAuthority(pki.AuthorityOptions{Store: st, Credentials: p.creds, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	acl, err := NewACL(ACLOptions{HubIdentity: pki.HubIdentity, Checker: authority, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Listen: "127.0.0.1:0", TLS: p.creds.MQTTServerTLS(), Auth: acl, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	url := b.URL()
	if url[:6] != "ssl://" {
		t.Fatalf("URL %s", url)
	}

	// Nodes enrol through the authority, as agents will.
	nodeTLS := func(node string) *tls.Config {
		tok, err := authority.CreateToken(api.BootstrapTokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // made "on the board"
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
	aTLS, bTLS := nodeTLS("node-a"), nodeTLS("node-b")

	hub, err := dial(t, url, "flotilla-hub-test", p.creds.HubClientTLS("127.0.0.1"), "")
	if err != nil {
		t.Fatal(err)
	}
	if code := hub.subscribe(t, wire.AllNodesTopic(wire.TopicStatus)); code != 1 {
		t.Fatalf("hub subscribe: %#x", code)
	}
	if code := hub.subscribe(t, wire.SharedTopic("flotilla-hub", wire.AllNodesTopic(wire.TopicEvents))); code >= 0x80 {
		t.Fatalf("hub shared subscribe: %#x", code)
	}

	a, err := dial(t, url, wire.AgentClientID("node-a"), aTLS, wire.NodeTopic("node-a", wire.TopicOnline))
	if err != nil {
		t.Fatal(err)
	}
	// Its own topics work.
	if code := a.subscribe(t, wire.NodeTopic("node-a", wire.TopicDesired)); code != 1 {
		t.Fatalf("own desired: %#x", code)
	}
	if err := a.publish(wire.NodeTopic("node-a", wire.TopicStatus), "a-status", false); err != nil {
		t.Fatal(err)
	}
	hub.in.waitFor(t, wire.NodeTopic("node-a", wire.TopicStatus), "a-status")
	if err := a.publish(wire.NodeTopic("node-a", wire.TopicEvents), "a-event", false); err != nil {
		t.Fatal(err)
	}
	hub.in.waitFor(t, wire.NodeTopic("node-a", wire.TopicEvents), "a-event")
	if err := hub.publish(wire.NodeTopic("node-a", wire.TopicDesired), "for-a", true); err != nil {
		t.Fatal(err)
	}
	a.in.waitFor(t, wire.NodeTopic("node-a", wire.TopicDesired), "for-a")

	// Node A cannot read node B's desired state, nor everyone's.
	if err := hub.publish(wire.NodeTopic("node-b", wire.TopicDesired), "for-b", true); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{wire.NodeTopic("node-b", wire.TopicDesired), wire.AllNodesTopic(wire.TopicDesired), "flotilla/#", "#", "$SYS/#"} {
		if code := a.subscribe(t, f); code != 0x80 {
			t.Errorf("node A subscribed to %s: %#x", f, code)
		}
	}

	// Node A cannot publish node B's status: the broker drops it and, as
	// MQTT 3.1.1 allows nothing else, closes A's connection.
	_ = a.publish(wire.NodeTopic("node-b", wire.TopicStatus), "forged", false)
	select {
	case <-a.lost:
	case <-time.After(5 * time.Second):
		t.Error("node A kept its connection after a forbidden publish")
	}

	// Node A cannot connect as node B (and so cut B off).
	if _, err := dial(t, url, wire.AgentClientID("node-b"), aTLS, ""); err == nil {
		t.Error("node A connected with node B's client id")
	}
	// B is fine, and does receive its own retained desired state.
	bc, err := dial(t, url, wire.AgentClientID("node-b"), bTLS, "")
	if err != nil {
		t.Fatal(err)
	}
	if code := bc.subscribe(t, wire.NodeTopic("node-b", wire.TopicDesired)); code != 1 {
		t.Fatalf("node B own desired: %#x", code)
	}
	bc.in.waitFor(t, wire.NodeTopic("node-b", wire.TopicDesired), "for-b")
	if got := hub.in.on(wire.NodeTopic("node-b", wire.TopicStatus)); len(got) != 0 {
		t.Errorf("the hub received a forged status for node B: %v", got)
	}

	// A client without a certificate does not get through TLS.
	noCert := p.creds.HubClientTLS("127.0.0.1")
	noCert.Certificates = nil
	if _, err := dial(t, url, wire.AgentClientID("node-a"), noCert, ""); err == nil {
		t.Error("a client without a certificate connected")
	}

	// Revoking node B cuts its connection and keeps it out.
	if _, err := authority.Revoke("node-b"); err != nil {
		t.Fatal(err)
	}
	if n := b.DisconnectIdentity("node-b"); n != 1 {
		t.Errorf("DisconnectIdentity closed %d connections", n)
	}
	select {
	case <-bc.lost:
	case <-time.After(5 * time.Second):
		t.Error("revoked node B kept its connection")
	}
	if _, err := dial(t, url, wire.AgentClientID("node-b"), bTLS, ""); err == nil {
		t.Error("revoked node B reconnected")
	}
	// Node A, unaffected, reconnects.
	if _, err := dial(t, url, wire.AgentClientID("node-a"), aTLS, ""); err != nil {
		t.Errorf("node A after B's revocation: %v", err)
	}
}
