package e2e

// Issue 8 with an external broker: a real Mosquitto run with the files of
// docs/mosquitto (harness.StartDocumentedMosquitto), which operators copy.

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// freeze stops the agent's process (SIGSTOP) until thaw: a frozen agent
// does not reconnect, so a test client can use its identity on a broker
// that allows one connection per identity (Mosquitto with
// use_username_as_clientid) without the two taking the session from each
// other.
func freeze(t *testing.T, a *agentProc) (thaw func()) {
	t.Helper()
	if err := syscall.Kill(a.proc.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	thaw = func() {
		once.Do(func() {
			if err := syscall.Kill(a.proc.Pid(), syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(thaw)
	return thaw
}

// copyFile copies a file of the hub's PKI directory into dir.
func copyFile(t *testing.T, from, dir string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(from)), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// crlSerials returns the serial numbers a PEM CRL file lists.
func crlSerials(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "X509 CRL" {
		t.Fatalf("%s is not a PEM CRL", path)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, e.SerialNumber.Text(16))
	}
	return out
}

// collector records the topics of the messages a test client receives.
type collector struct {
	mu  sync.Mutex
	got map[string]int
}

func (c *collector) handle(_ mqtt.Client, m mqtt.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.got == nil {
		c.got = map[string]int{}
	}
	c.got[m.Topic()]++
}

func (c *collector) count(topic string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[topic]
}

// TestSecurityMosquitto runs the hub with --broker on a real Mosquitto
// configured as docs/mosquitto says (TLS with the hub's CA and server
// certificate, client certificates required, flotilla.acl, the hub's CRL):
// agents enrol with tokens and run pods through it; node A's certificate
// reads only A's desired state and cannot speak for node B; on the same
// broker without its ACL, B's certificate can publish on A's desired
// topic, and A rejects every snapshot forged there while its container
// keeps running; after `hub node revoke`, the hub's CRL copied to
// Mosquitto and a restart, A's certificate is refused.
func TestSecurityMosquitto(t *testing.T) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The hub creates its CA, server certificate and CRL on first start;
	// it keeps dialling the broker until Mosquitto, given those files, is
	// up on the port it was told.
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h := startHub(t, hubOptions{tls: true, broker: fmt.Sprintf("ssl://127.0.0.1:%d", port)})
	dir := filepath.Join(env.dir, uniq("mosquitto-tls-"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// As docs/security.md says: the CA, a server certificate for the
	// broker's address from it (the hub's own lists 127.0.0.1), and the
	// hub's CRL.
	for _, f := range []string{"ca.crt", "server.crt", "server.key", "revoked.crl"} {
		copyFile(t, h.pkiFile(f), dir)
	}
	mosq, err := harness.StartDocumentedMosquitto(ctx, dir, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- mosquitto log (tail)\n%s", mosq.Logs())
		}
		_ = mosq.Stop()
	})

	// The hub must be subscribed before the agents say hello: Mosquitto
	// keeps nothing for a shared subscription without members, and an
	// agent says hello (its labels) only when it connects.
	eventually(t, 20*time.Second, "the hub connected to Mosquitto", func() error {
		b, _ := os.ReadFile(h.logPath)
		if !strings.Contains(string(b), "msg=connected component=link") {
			return errors.New("not yet")
		}
		return nil
	})

	// Enrolment with a token, then pods, all through Mosquitto.
	a := startEnrolledAgent(t, h, "role=a")
	b := startEnrolledAgent(t, h, "role=b")
	h.applyYAML(daemonSet("mqa", env.image, "role=a", "sleep 3600"))
	h.applyYAML(daemonSet("mqb", env.image, "role=b", "sleep 3600"))
	eventually(t, 30*time.Second, "a pod Running on each node", func() error {
		pods := h.pods()
		for _, p := range []*api.Pod{podOn(pods, "mqa", a.node), podOn(pods, "mqb", b.node)} {
			if p == nil || p.Status.Phase != api.PodRunning {
				return fmt.Errorf("pod %+v", p)
			}
		}
		return nil
	})
	var cid string
	eventually(t, 10*time.Second, "a's container", func() error {
		rs := running(t, a.ns)
		if len(rs) != 1 {
			return fmt.Errorf("running: %+v", rs)
		}
		cid = rs[0].ID
		return nil
	})
	t.Logf("enrolled two nodes and ran their pods through Mosquitto in %s", time.Since(begin).Round(time.Millisecond))

	// Node A's certificate (agent A frozen meanwhile): it gets A's own
	// desired state but, whatever it subscribes to, never B's.
	certA := loadPair(t, filepath.Join(a.stateDir, "pki", "node.crt"), filepath.Join(a.stateDir, "pki", "node.key"))
	certB := loadPair(t, filepath.Join(b.stateDir, "pki", "node.crt"), filepath.Join(b.stateDir, "pki", "node.key"))
	desiredA, desiredB := wire.NodeTopic(a.node, wire.TopicDesired), wire.NodeTopic(b.node, wire.TopicDesired)
	thawA := freeze(t, a)
	thief, err := mqttConnect(h, wire.AgentClientID(a.node), certA)
	if err != nil {
		t.Fatalf("a's certificate: %v", err)
	}
	var seen collector
	for _, f := range []string{desiredB, wire.AllNodesTopic(wire.TopicDesired), "#", desiredA} {
		if tok := thief.Subscribe(f, 1, seen.handle); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", f, tok.Error())
		}
	}
	// Nor does it speak for B: a status that would set B's observed
	// revision and an event of B's are dropped, while the same event on
	// A's own topic, sent after them, reaches the hub.
	const forgedRevision = 777777
	forgedStatus, _ := wire.Encode(wire.TypeHeartbeat, b.node, 1<<40, time.Now(), wire.Heartbeat{ObservedRevision: forgedRevision})
	event := func(node string) []byte {
		m, _ := wire.Encode(wire.TypeEvent, node, 1<<40, time.Now(), wire.Event{
			Object: api.ObjectReference{Kind: api.KindNode, Name: node}, Type: "Warning", Reason: "ForgedByA", Message: "sent with a's certificate",
		})
		return m
	}
	publish(t, thief, wire.NodeTopic(b.node, wire.TopicStatus), forgedStatus)
	publish(t, thief, wire.NodeTopic(b.node, wire.TopicEvents), event(b.node))
	publish(t, thief, wire.NodeTopic(a.node, wire.TopicEvents), event(a.node))
	eventually(t, 10*time.Second, "a's own event at the hub", func() error {
		for _, e := range nodeEvents(t, h, a.node) {
			if e.Reason == "ForgedByA" {
				return nil
			}
		}
		return errors.New("not yet")
	})
	if n := seen.count(desiredA); n == 0 {
		t.Fatal("a's certificate did not receive a's own retained snapshot: the subscription check proves nothing")
	}
	time.Sleep(500 * time.Millisecond)
	if n := seen.count(desiredB); n > 0 {
		t.Fatalf("a's certificate received %d of b's desired snapshots", n)
	}
	for _, e := range nodeEvents(t, h, b.node) {
		if e.Reason == "ForgedByA" {
			t.Fatalf("the hub took a's forged event for b: %+v", e)
		}
	}
	if n := h.node(b.node); n.Status.ObservedRevision == forgedRevision {
		t.Fatal("the hub took a's forged status for b")
	}
	thief.Disconnect(100)
	connectsA := a.connects()
	thawA()
	a.waitConnects(connectsA + 1)

	// The same broker without its ACL (misconfigured, or compromised):
	// B's certificate (a stolen board; agent B frozen) reads A's desired
	// state and publishes snapshots on A's topic. A rejects them all.
	connectsA, connectsB := a.connects(), b.connects()
	if err := mosq.Restart(ctx, false); err != nil {
		t.Fatal(err)
	}
	a.waitConnects(connectsA + 1)
	b.waitConnects(connectsB + 1)
	thawB := freeze(t, b)
	forger, err := mqttConnect(h, wire.AgentClientID(b.node), certB)
	if err != nil {
		t.Fatalf("b's certificate on the broker without ACL: %v", err)
	}
	current := decodeSnapshot(t, a.node, retainedSnapshot(t, forger, a.node, 1))
	snapB := retainedSnapshot(t, forger, b.node, 1)
	fakes, want := forgeries(t, current)
	for _, m := range append(fakes, snapB) {
		publish(t, forger, desiredA, m)
	}
	forger.Disconnect(100)
	thawB()
	waitRejected(t, h, a.node, append(want, otherNodeRejection(b.node)))
	time.Sleep(2 * time.Second) // a resync: nothing may have changed
	runsOnly(t, a, cid, current.Revision, "after forged snapshots")

	// Revocation: the hub rewrites its CRL; Mosquitto still runs with the
	// old one and takes A's certificate until it is restarted with the
	// new one (and its ACL back).
	if out := h.mustCLI("node", "revoke", a.node); !strings.Contains(out, "revoked") {
		t.Fatalf("hub node revoke: %q", out)
	}
	if got := crlSerials(t, h.pkiFile("revoked.crl")); len(got) != 1 || got[0] != certA.Leaf.SerialNumber.Text(16) {
		t.Fatalf("the hub's CRL lists %v, want a's serial %s", got, certA.Leaf.SerialNumber.Text(16))
	}
	connectsA = a.connects()
	if c, err := mqttConnect(h, wire.AgentClientID(a.node), certA); err != nil {
		t.Fatalf("a's certificate before Mosquitto rereads the CRL: %v", err)
	} else {
		c.Disconnect(0)
	}
	a.waitConnects(connectsA + 1) // the session this took from agent a
	copyFile(t, h.pkiFile("revoked.crl"), dir)
	connectsA, connectsB = a.connects(), b.connects()
	if err := mosq.Restart(ctx, true); err != nil {
		t.Fatal(err)
	}
	if c, err := mqttConnect(h, wire.AgentClientID(a.node), certA); err == nil {
		c.Disconnect(0)
		t.Fatal("a's revoked certificate connected to Mosquitto")
	} else {
		t.Logf("a's revoked certificate: %v", err)
	}
	b.waitConnects(connectsB + 1)
	eventually(t, 20*time.Second, "a NotReady, b Ready", func() error {
		if h.node(a.node).IsReady() {
			return errors.New("a still Ready")
		}
		if !h.node(b.node).IsReady() {
			return errors.New("b not Ready")
		}
		return nil
	})
	runsOnly(t, a, cid, 0, "after revocation")
	if n := a.connects(); n != connectsA {
		t.Fatalf("the revoked agent connected again (%d connects, had %d)", n, connectsA)
	}
	t.Logf("done in %s", time.Since(begin).Round(time.Millisecond))
}
