package e2e

// End-to-end tests of issue 8 (docs/security.md): the hub as it runs by
// default (TLS, client certificates, the broker's per-node access control,
// an authenticated API), agents that enrol with a bootstrap token, signed
// snapshots, Secrets delivered only where they are used, and revocation.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// httpClient trusts the hub CA when the hub runs TLS. It carries no
// credentials.
func (h *hubProc) httpClient() *http.Client {
	if !h.tls {
		return http.DefaultClient
	}
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(filepath.Join(h.dir, "data", "pki", "ca.crt")); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// pkiFile is a file of the hub's PKI directory.
func (h *hubProc) pkiFile(name string) string { return filepath.Join(h.dir, "data", "pki", name) }

// token creates a bootstrap token and returns it with the CA fingerprint.
func (h *hubProc) token(args ...string) (token, fingerprint string) {
	h.t.Helper()
	out := strings.Fields(h.mustCLI(append([]string{"token", "create", "-q"}, args...)...))
	if len(out) != 2 || !strings.HasPrefix(out[1], "sha256:") {
		h.t.Fatalf("hub token create -q: want a token and a fingerprint, got %q", out)
	}
	return out[0], out[1]
}

// startEnrolledAgent starts an agent that enrols with a fresh token and
// connects over mutual TLS, and waits for its node to be Ready.
func startEnrolledAgent(t *testing.T, h *hubProc, labels ...string) *agentProc {
	t.Helper()
	tok, fp := h.token()
	node := uniq("sec-")
	a := &agentProc{t: t, hub: h, node: node, ns: "e2e-" + node, stateDir: filepath.Join(env.dir, node), bin: env.agentBin}
	a.logPath = filepath.Join(env.dir, node+".log")
	a.args = []string{
		"--hub", h.URL, "--token", tok, "--ca-fingerprint", fp, "--broker", h.MQTT,
		"--node-name", node,
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", env.reg.Addr,
		"--heartbeat-interval", "1s", "--resync-interval", "2s",
	}
	a.args = append(a.args, hostNetworkFlags...)
	for _, l := range labels {
		a.args = append(a.args, "--label", l)
	}
	start := time.Now()
	a.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", a.node, a.proc.Logs())
		}
		_ = a.proc.Stop()
	})
	eventually(t, 30*time.Second, "node "+node+" Ready", func() error {
		if n := h.node(node); !n.IsReady() {
			return fmt.Errorf("node not ready: %+v", n.Status.Conditions)
		}
		return nil
	})
	t.Logf("node %s enrolled and Ready over mutual TLS in %s", node, time.Since(start).Round(time.Millisecond))
	return a
}

// mqttConnect connects a paho client with a certificate (nil: none) and
// the hub CA as root.
func mqttConnect(h *hubProc, clientID string, cert *tls.Certificate) (mqtt.Client, error) {
	pool := x509.NewCertPool()
	b, err := os.ReadFile(h.pkiFile("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool.AppendCertsFromPEM(b)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	opts := mqtt.NewClientOptions().AddBroker(h.MQTT).SetClientID(clientID).SetTLSConfig(cfg).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetProtocolVersion(4)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}

func loadPair(t *testing.T, certFile, keyFile string) *tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

// hubClient connects with the hub's own identity, which the broker lets
// publish and subscribe anywhere: what a compromised broker, or a broker
// without access control, could do.
func hubClient(t *testing.T, h *hubProc) mqtt.Client {
	t.Helper()
	c, err := mqttConnect(h, uniq("test-hub-identity-"), loadPair(t, h.pkiFile("hub-client.crt"), h.pkiFile("hub-client.key")))
	if err != nil {
		t.Fatalf("connect with the hub's identity: %v", err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// retainedSnapshot returns the raw retained desired message of node.
func retainedSnapshot(t *testing.T, c mqtt.Client, node string, minRevision uint64) []byte {
	t.Helper()
	var out []byte
	eventually(t, 15*time.Second, "retained snapshot of "+node, func() error {
		got := make(chan []byte, 1)
		topic := wire.NodeTopic(node, wire.TopicDesired)
		tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			select {
			case got <- append([]byte(nil), m.Payload()...):
			default:
			}
		})
		tok.Wait()
		defer c.Unsubscribe(topic).Wait()
		select {
		case b := <-got:
			env, err := wire.Decode(topic, b)
			if err != nil {
				return err
			}
			if env.Seq < minRevision {
				return fmt.Errorf("revision %d, want at least %d", env.Seq, minRevision)
			}
			out = b
			return nil
		case <-time.After(2 * time.Second):
			return errors.New("no retained message")
		}
	})
	return out
}

func decodeSnapshot(t *testing.T, node string, b []byte) wire.Snapshot {
	t.Helper()
	topic := wire.NodeTopic(node, wire.TopicDesired)
	env, err := wire.Decode(topic, b)
	if err != nil {
		t.Fatal(err)
	}
	var s wire.Snapshot
	if err := wire.DecodePayload(env, topic, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func publish(t *testing.T, c mqtt.Client, topic string, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to %s: %v", topic, tok.Error())
	}
}

// rejections returns the messages of node's SnapshotRejected events.
func rejections(t *testing.T, h *hubProc, node string) []string {
	var out []string
	for _, e := range nodeEvents(t, h, node) {
		if e.Reason == "SnapshotRejected" {
			out = append(out, e.Message)
		}
	}
	return out
}

// connects counts the agent's connections to the broker so far.
func (a *agentProc) connects() int {
	b, _ := os.ReadFile(a.logPath)
	return strings.Count(string(b), "msg=connected")
}

// waitConnects waits until the agent has connected n times (and so
// subscribed again).
func (a *agentProc) waitConnects(n int) {
	a.t.Helper()
	eventually(a.t, 20*time.Second, fmt.Sprintf("%s connected %d times", a.node, n), func() error {
		if got := a.connects(); got < n {
			return fmt.Errorf("%d connects", got)
		}
		return nil
	})
}

// forgeries returns snapshots forged for current's node, each adding a
// pod "evil" above current's revision: one unsigned, one signed with a
// key the agent does not pin; and what the agent's rejections say.
func forgeries(t *testing.T, current wire.Snapshot) ([][]byte, []string) {
	t.Helper()
	evil := current
	evil.Revision = current.Revision + 10
	evilPod := evil.Pods[0]
	evilPod.UID, evilPod.Name, evilPod.SpecHash = "evil-uid", "evil", "evil"
	evil.Pods = append(slices.Clone(evil.Pods), evilPod)
	unsigned, err := wire.Encode(wire.TypeSnapshot, current.Node, evil.Revision, time.Now(), evil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := wire.NewSigner(otherKey)
	misSigned, err := otherSigner.EncodeSnapshot(&evil, evil.Revision, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{unsigned, misSigned}, []string{"not signed", "not the pinned hub key"}
}

// otherNodeRejection is what an agent's rejection of other's snapshot
// says.
func otherNodeRejection(other string) string { return `envelope names node "` + other }

// waitRejected waits until node has reported SnapshotRejected events
// saying each of want.
func waitRejected(t *testing.T, h *hubProc, node string, want []string) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("%d SnapshotRejected events from %s", len(want), node), func() error {
		got := strings.Join(rejections(t, h, node), "\n")
		for _, w := range want {
			if !strings.Contains(got, w) {
				return fmt.Errorf("no rejection saying %q in:\n%s", w, got)
			}
		}
		return nil
	})
}

// runsOnly fails unless a's only running container is cid and (unless
// revision is 0) the hub sees a at revision.
func runsOnly(t *testing.T, a *agentProc, cid string, revision uint64, when string) {
	t.Helper()
	if rs := running(t, a.ns); len(rs) != 1 || rs[0].ID != cid {
		t.Fatalf("%s %s runs %+v, want only %s", when, a.node, rs, cid)
	}
	if revision == 0 {
		return
	}
	if n := a.hub.node(a.node); n.Status.ObservedRevision != revision {
		t.Fatalf("%s %s reports revision %d, want %d", when, a.node, n.Status.ObservedRevision, revision)
	}
}

// TestSecurityEnrolACLSignedSnapshotsRevoke: an agent enrols with a token
// and runs a pod over mutual TLS; a node's certificate reaches neither
// another node's topics nor the broker under another client id; no
// certificate, no connection; forged, unsigned, other-node and replayed
// snapshots are rejected while the pod keeps running; the API refuses
// unauthenticated calls; a revoked node cannot connect again.
func TestSecurityEnrolACLSignedSnapshotsRevoke(t *testing.T) {
	h := startHub(t, hubOptions{tls: true})

	// The API refuses calls without credentials, with a clear message.
	resp, err := h.httpClient().Get(h.URL + "/api/v1/nodes")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /api/v1/nodes without credentials: %s, want 401", resp.Status)
	}
	cmd := []string{"get", "nodes", "--server", h.URL, "--certificate-authority", h.pkiFile("ca.crt")}
	out, errOut, err := runHubCLI(cmd...)
	if err == nil || !strings.Contains(errOut, "Unauthorized") || !strings.Contains(errOut, "admin.conf") {
		t.Fatalf("hub get nodes without credentials: err %v, stdout %q, stderr %q; want Unauthorized naming admin.conf", err, out, errOut)
	}
	// Plain HTTP to the HTTPS port gets nowhere.
	if resp, err := http.Get(strings.Replace(h.URL, "https://", "http://", 1) + "/api/v1/nodes"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP to the API: %s", resp.Status)
		}
	}

	a := startEnrolledAgent(t, h, "role=a")
	b := startEnrolledAgent(t, h, "role=b")
	for _, name := range []string{"node.key", "node.crt", "ca.crt", "hub-signing.pub"} {
		fi, err := os.Stat(filepath.Join(a.stateDir, "pki", name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", name, fi.Mode().Perm())
		}
	}
	var csrs struct {
		Items []api.CertificateSigningRequest
	}
	h.getJSON(&csrs, "get", "csr", "-o", "json")
	if len(csrs.Items) != 2 {
		t.Fatalf("hub get csr: %d requests, want 2", len(csrs.Items))
	}
	if out := h.mustCLI("get", "csr"); !strings.Contains(out, "Approved,Issued") {
		t.Fatalf("hub get csr:\n%s", out)
	}

	// A pod on a; then a new spec, so that a holds revision 2.
	h.applyYAML(daemonSet("seca", env.image, "role=a", "sleep 3600"))
	var podA *api.Pod
	eventually(t, 30*time.Second, "pod on a Running", func() error {
		podA = podOn(h.pods(), "seca", a.node)
		if podA == nil || podA.Status.Phase != api.PodRunning {
			return fmt.Errorf("pod %+v", podA)
		}
		return nil
	})
	hc := hubClient(t, h)
	rev1 := retainedSnapshot(t, hc, a.node, 1)
	h.applyYAML(daemonSet("seca", env.image, "role=a", "sleep 3601"))
	var cid string
	eventually(t, 30*time.Second, "a runs the new spec", func() error {
		rs := running(t, a.ns)
		if len(rs) != 1 || !strings.Contains(strings.Join(rs[0].Args, " "), "sleep 3601") {
			return fmt.Errorf("running: %+v", rs)
		}
		cid = rs[0].ID
		return nil
	})
	rev2 := retainedSnapshot(t, hc, a.node, 2)
	current := decodeSnapshot(t, a.node, rev2)

	// b's pod, so that b has a snapshot to steal.
	h.applyYAML(daemonSet("secb", env.image, "role=b", "sleep 3600"))
	snapB := retainedSnapshot(t, hc, b.node, 1)

	// Access control: a's certificate under another client id is refused.
	certA := loadPair(t, filepath.Join(a.stateDir, "pki", "node.crt"), filepath.Join(a.stateDir, "pki", "node.key"))
	if c, err := mqttConnect(h, wire.AgentClientID(b.node), certA); err == nil {
		c.Disconnect(0)
		t.Fatal("a's certificate connected with b's client id")
	}
	if c, err := mqttConnect(h, uniq("no-cert-"), nil); err == nil {
		c.Disconnect(0)
		t.Fatal("a client without a certificate connected")
	}
	// With its own client id (this takes the real agent's session over for
	// a moment; it reconnects), it cannot subscribe to b's topics...
	thief, err := mqttConnect(h, wire.AgentClientID(a.node), certA)
	if err != nil {
		t.Fatalf("a's certificate with a's client id: %v", err)
	}
	st := thief.Subscribe(wire.NodeTopic(b.node, wire.TopicDesired), 1, func(mqtt.Client, mqtt.Message) {
		t.Error("a's certificate received b's desired snapshot")
	})
	if !st.WaitTimeout(10 * time.Second) {
		t.Fatal("subscribe timed out")
	}
	if res := st.(*mqtt.SubscribeToken).Result()[wire.NodeTopic(b.node, wire.TopicDesired)]; res != 0x80 {
		t.Fatalf("subscription to b's desired topic with a's certificate: granted %#x, want failure 0x80", res)
	}
	// ...nor publish b's status: the hub's view never sees it.
	var mu sync.Mutex
	var leaked [][]byte
	statusB := wire.NodeTopic(b.node, wire.TopicStatus)
	hc.Subscribe(statusB, 1, func(_ mqtt.Client, m mqtt.Message) {
		if bytes.Contains(m.Payload(), []byte("forged-by-a")) {
			mu.Lock()
			leaked = append(leaked, m.Payload())
			mu.Unlock()
		}
	}).Wait()
	forged, _ := wire.Encode(wire.TypeHeartbeat, b.node, 1<<40, time.Now(), map[string]string{"note": "forged-by-a"})
	thief.Publish(statusB, 1, false, forged).WaitTimeout(3 * time.Second)
	eventually(t, 5*time.Second, "the broker closes a after a refused publish", func() error {
		if thief.IsConnectionOpen() {
			return errors.New("still connected")
		}
		return nil
	})
	thief.Disconnect(0)
	// The real agent reconnects (its session was taken over).
	a.waitConnects(2)
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	if len(leaked) > 0 {
		t.Fatalf("a's certificate published on b's status topic: %s", leaked[0])
	}
	mu.Unlock()

	// Forged snapshots on a's desired topic, published with an identity
	// the broker lets publish anywhere. Each adds a pod that must not run.
	fakes, want := forgeries(t, current)
	for _, m := range append(fakes, snapB, rev1) {
		publish(t, hc, wire.NodeTopic(a.node, wire.TopicDesired), m)
	}
	waitRejected(t, h, a.node, append(want, otherNodeRejection(b.node), "not newer"))
	time.Sleep(3 * time.Second) // two resyncs: nothing may have changed
	runsOnly(t, a, cid, current.Revision, "after forged snapshots")

	// Revocation: a's connection is cut and it cannot connect again.
	if out := h.mustCLI("node", "revoke", a.node); !strings.Contains(out, "revoked") {
		t.Fatalf("hub node revoke: %q", out)
	}
	if c, err := mqttConnect(h, wire.AgentClientID(a.node), certA); err == nil {
		c.Disconnect(0)
		t.Fatal("a revoked certificate connected")
	}
	eventually(t, 20*time.Second, "revoked node NotReady", func() error {
		if h.node(a.node).IsReady() {
			return errors.New("still Ready")
		}
		return nil
	})
	// The agent keeps its pod running meanwhile, offline.
	runsOnly(t, a, cid, 0, "after revocation")
	// b is untouched.
	if !h.node(b.node).IsReady() {
		t.Fatal("b is not Ready after a was revoked")
	}
}

// runHubCLI runs the hub CLI with exactly args.
func runHubCLI(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(env.hubBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestSecuritySecrets: a Secret and a ConfigMap reach a pod as
// environment variables and as files (the secret on a tmpfs), go only to
// the node whose pods use them, and are in clear neither in the hub's data
// directory nor in the agent's state.
func TestSecuritySecrets(t *testing.T) {
	h := startHub(t, hubOptions{tls: true})
	a := startEnrolledAgent(t, h, "secret=yes")
	b := startEnrolledAgent(t, h, "secret=no")
	t.Cleanup(func() { unmountUnder(t, a.stateDir) })
	value := "s3cr3t-" + uniq("v") + "-" + fmt.Sprint(time.Now().UnixNano())
	outDir := filepath.Join(env.dir, uniq("secret-out-"))
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	h.applyYAML(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: db}
stringData:
  password: %q
---
apiVersion: v1
kind: ConfigMap
metadata: {name: greeting}
data:
  GREETING: hello-from-configmap
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: uses-secret}
spec:
  selector: {matchLabels: {app: uses-secret}}
  template:
    metadata: {labels: {app: uses-secret}}
    spec:
      nodeSelector: {secret: "yes"}
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: %s
          command: ["sh", "-c", "if grep -q ' /etc/db ' /proc/mounts; then echo ro > /out/mounted; else echo no > /out/mounted; fi; echo \"$PASSWORD\" > /out/env; cat /etc/db/password > /out/file; echo \"$GREETING\" > /out/cm; sleep 3600"]
          env:
            - name: PASSWORD
              valueFrom: {secretKeyRef: {name: db, key: password}}
          envFrom:
            - configMapRef: {name: greeting}
          volumeMounts:
            - {name: db, mountPath: /etc/db}
            - {name: out, mountPath: /out}
      volumes:
        - name: db
          secret: {secretName: db}
        - name: out
          hostPath: {path: %s}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: plain}
spec:
  selector: {matchLabels: {app: plain}}
  template:
    metadata: {labels: {app: plain}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: %s
          command: ["sleep", "3600"]
`, value, env.image, outDir, env.image))

	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(outDir, name))
		return strings.TrimSpace(string(b))
	}
	eventually(t, 40*time.Second, "the pod sees the secret and the configmap", func() error {
		if got := read("env"); got != value {
			return fmt.Errorf("env PASSWORD %q", got)
		}
		if got := read("file"); got != value {
			return fmt.Errorf("file /etc/db/password %q", got)
		}
		if got := read("cm"); got != "hello-from-configmap" {
			return fmt.Errorf("env GREETING %q", got)
		}
		return nil
	})
	// Written before the files the wait above looked at.
	if read("mounted") != "ro" {
		t.Errorf("/etc/db is not a mount in the container")
	}

	// Only a's snapshot carries the Secret.
	hc := hubClient(t, h)
	snapA := decodeSnapshot(t, a.node, retainedSnapshot(t, hc, a.node, 1))
	if data, ok := snapA.Secret("default", "db"); !ok || string(data["password"]) != value {
		t.Fatalf("a's snapshot lacks the secret: %+v", snapA.Secrets)
	}
	var snapB wire.Snapshot
	eventually(t, 20*time.Second, "b's snapshot with its pod", func() error {
		snapB = decodeSnapshot(t, b.node, retainedSnapshot(t, hc, b.node, 1))
		if len(snapB.Pods) != 1 {
			return fmt.Errorf("%d pods", len(snapB.Pods))
		}
		return nil
	})
	if len(snapB.Secrets) != 0 || len(snapB.ConfigMaps) != 0 {
		t.Fatalf("b's snapshot carries Secrets %v / ConfigMaps %v it does not use", snapB.Secrets, snapB.ConfigMaps)
	}

	// Tables never print values.
	if out := h.mustCLI("get", "secrets"); strings.Contains(out, value) || !strings.Contains(out, "db") {
		t.Fatalf("hub get secrets:\n%s", out)
	}

	// Neither the hub's data directory nor the agent's state (its disk,
	// not the tmpfs of the secret volume) holds the value in clear. Both
	// run: Badger's write-ahead logs hold every entry as written (its
	// tables are compressed, where a search could miss a value), and the
	// ConfigMap's value, which is not sealed, is the control that the
	// search does see what was written.
	for _, dir := range []string{filepath.Join(h.dir, "data"), a.stateDir} {
		n, hits := grepTree(t, dir, []byte(value))
		if len(hits) > 0 {
			t.Errorf("the secret is in clear in %v", hits)
		}
		if n == 0 {
			t.Errorf("no files read under %s", dir)
		}
		if _, hits := grepTree(t, dir, []byte("hello-from-configmap")); len(hits) == 0 {
			t.Errorf("the ConfigMap value is not found under %s either: the search proves nothing", dir)
		}
	}

	// containerd, though, keeps the container's OCI spec, environment
	// included, in its metadata database under its root, and the task's
	// bundle config.json under its state directory: a Secret given as an
	// environment variable is in clear in both. docs/security.md must name
	// each place it is found, and what to do about it.
	doc := securityDoc(t)
	sites := map[string]bool{}
	for _, dir := range []string{env.ctd.Root, env.ctd.State, filepath.Join("/run/containerd/runc", a.ns)} {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		_, hits := grepTree(t, dir, []byte(value))
		for _, h := range hits {
			sites[filepath.Base(h)] = true
			if !strings.Contains(doc, filepath.Base(h)) {
				t.Errorf("the secret is in clear in %s, which docs/security.md does not name", h)
			}
		}
	}
	for _, want := range []string{"meta.db", "config.json"} {
		if !sites[want] {
			t.Errorf("the secret is not in containerd's %s (found in %v): docs/security.md says it is", want, sites)
		}
	}
}

// securityDoc is docs/security.md.
func securityDoc(t *testing.T) string {
	t.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// grepTree reads every regular file under root that is on root's file
// system (so not a tmpfs mounted below it) and returns how many it read
// and which hold needle.
func grepTree(t *testing.T, root string, needle []byte) (int, []string) {
	t.Helper()
	var rootSt syscall.Stat_t
	if err := syscall.Stat(root, &rootSt); err != nil {
		t.Fatal(err)
	}
	n := 0
	var hits []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			var st syscall.Stat_t
			if syscall.Stat(path, &st) == nil && st.Dev != rootSt.Dev {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		n++
		if bytes.Contains(b, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, hits
}

// unmountUnder detaches every mount below dir (the secret volume's tmpfs
// of an agent the test stopped), so that no mount outlives the test.
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Error(err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			if err := syscall.Unmount(f[1], syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", f[1], err)
			}
		}
	}
}
