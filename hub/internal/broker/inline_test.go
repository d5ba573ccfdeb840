package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/pki"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestInlineSessionWithACL: the hub's inline session on the TLS broker
// with the ACL receives nodes' reports (also through a shared filter) and
// its retained publishes reach the node they are for, while nodes stay
// confined to their own topics.
func TestInlineSessionWithACL(t *testing.T) {
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
	b, err := New(Options{Listen: "127.0.0.1:0", TLS: p.creds.MQTTServerTLS(), Auth: acl, Logger: quiet, WritesPending: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- b.Run(ctx) }()

	var mu sync.Mutex
	got := map[string][]string{}
	record := func(topic string, payload []byte) {
		mu.Lock()
		got[topic] = append(got[topic], string(payload))
		mu.Unlock()
	}
	connected := make(chan struct{})
	hub := b.Session(func(context.Context) { close(connected) })
	hub.Subscribe(wire.SharedTopic("flotilla-hub", wire.AllNodesTopic(wire.TopicStatus)), 1, record)
	hub.Subscribe(wire.AllNodesTopic(wire.TopicOnline), 1, record)
	go func() { done <- hub.Run(ctx) }()
	defer func() { cancel(); <-done; <-done }()
	select {
	case <-connected:
	case <-time.After(5 * time.Second):
		t.Fatal("inline session did not start")
	}
	if err := hub.Publish(ctx, wire.NodeTopic("node-a", wire.TopicDesired), 1, true, []byte("for-a")); err != nil {
		t.Fatal(err)
	}
	if err := hub.Publish(ctx, wire.NodeTopic("node-b", wire.TopicDesired), 1, true, []byte("for-b")); err != nil {
		t.Fatal(err)
	}

	tok, err := authority.CreateToken(api.BootstrapTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	resp, err := authority.Enrol(api.EnrolRequest{Token: tok.Token, NodeName: "node-a", CSR: csrFor(t, "node-a", key)})
	if err != nil || resp.Status != api.EnrolIssued {
		t.Fatalf("enrol: %+v %v", resp, err)
	}
	pair, err := tls.X509KeyPair([]byte(resp.Certificate), keyPEM(t, key))
	if err != nil {
		t.Fatal(err)
	}
	conf := p.creds.HubClientTLS("127.0.0.1")
	conf.Certificates = []tls.Certificate{pair}
	a, err := dial(t, b.URL(), wire.AgentClientID("node-a"), conf, wire.NodeTopic("node-a", wire.TopicOnline))
	if err != nil {
		t.Fatal(err)
	}
	if code := a.subscribe(t, wire.NodeTopic("node-a", wire.TopicDesired)); code != 1 {
		t.Fatalf("own desired: %#x", code)
	}
	a.in.waitFor(t, wire.NodeTopic("node-a", wire.TopicDesired), "for-a")
	if code := a.subscribe(t, wire.NodeTopic("node-b", wire.TopicDesired)); code != 0x80 {
		t.Errorf("node A subscribed to node B's desired state: %#x", code)
	}
	if err := a.publish(wire.NodeTopic("node-a", wire.TopicStatus), "a-status", false); err != nil {
		t.Fatal(err)
	}
	waitGot := func(topic, payload string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			msgs := got[topic]
			mu.Unlock()
			if len(msgs) == 1 && msgs[0] == payload {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("hub received %v on %s, want %q", msgs, topic, payload)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitGot(wire.NodeTopic("node-a", wire.TopicStatus), "a-status")
	// A forged status is refused, and never reaches the hub.
	_ = a.publish(wire.NodeTopic("node-b", wire.TopicStatus), "forged", false)
	select {
	case <-a.lost:
	case <-time.After(5 * time.Second):
		t.Error("node A kept its connection after a forbidden publish")
	}
	// Its will reaches the hub; the forged status never did.
	waitGot(wire.NodeTopic("node-a", wire.TopicOnline), "gone")
	mu.Lock()
	forged := got[wire.NodeTopic("node-b", wire.TopicStatus)]
	mu.Unlock()
	if len(forged) != 0 {
		t.Fatalf("the hub received a forged status: %v", forged)
	}
}
