package broker

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/pki"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// mosquittoClient runs mosquitto_pub or mosquitto_sub against b.
func mosquittoClient(t *testing.T, ctx context.Context, name string, b *Broker, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := harness.FindBinary(name)
	if err != nil {
		t.Fatalf("this test runs Mosquitto's clients (Debian's mosquitto-clients): %v", err)
	}
	_, port, _ := strings.Cut(b.Addr(), ":")
	return exec.CommandContext(ctx, bin, append([]string{"-h", "127.0.0.1", "-p", port}, args...)...)
}

// TestMosquittoClients: Mosquitto's own command-line clients, over plain
// TCP and over TLS with the ACL, publish (QoS 0, 1, 2, retained) and
// subscribe through the broker. -short skips it.
func TestMosquittoClients(t *testing.T) {
	if testing.Short() {
		t.Skip("needs mosquitto_sub and mosquitto_pub")
	}
	t.Run("tcp", func(t *testing.T) {
		b := startBroker(t, Options{})
		mosquittoRoundTrip(t, b, "a")
		// An MQTT 5 client is told the version is not acceptable.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := mosquittoClient(t, ctx, "mosquitto_pub", b, "-V", "mqttv5", "-t", "a/b", "-m", "x").CombinedOutput()
		if err == nil || !strings.Contains(strings.ToLower(string(out)), "protocol version") {
			t.Errorf("mosquitto_pub -V mqttv5: %v: %s", err, out)
		}
	})
	t.Run("tls", func(t *testing.T) {
		p := newTestPKI(t)
		acl, err := NewACL(ACLOptions{HubIdentity: pki.HubIdentity, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		b := startBroker(t, Options{TLS: p.creds.MQTTServerTLS(), Auth: acl})
		mosquittoRoundTrip(t, b, "flotilla/v1/nodes/n1",
			"--cafile", filepath.Join(p.dir, "ca.crt"), "--cert", filepath.Join(p.dir, "hub-client.crt"),
			"--key", filepath.Join(p.dir, "hub-client.key"))
	})
}

// mosquittoRoundTrip publishes under prefix with mosquitto_pub and reads
// the messages back with mosquitto_sub.
func mosquittoRoundTrip(t *testing.T, b *Broker, prefix string, tlsArgs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub := func(args ...string) {
		t.Helper()
		cmd := mosquittoClient(t, ctx, "mosquitto_pub", b, append(tlsArgs, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub %v: %v: %s", args, err, out)
		}
	}
	pub("-q", "1", "-r", "-t", prefix+"/retained", "-m", "R")
	sub := mosquittoClient(t, ctx, "mosquitto_sub", b, append(tlsArgs, "-q", "1", "-v", "-C", "4", "-W", "15", "-t", prefix+"/#")...)
	var out strings.Builder
	sub.Stdout, sub.Stderr = &out, &out
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		b.router.mu.RLock()
		defer b.router.mu.RUnlock()
		return b.router.find(prefix+"/#") != nil
	})
	for qos := range 3 {
		pub("-q", strconv.Itoa(qos), "-t", prefix+"/q"+strconv.Itoa(qos), "-m", "m"+strconv.Itoa(qos))
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, out.String())
	}
	want := []string{prefix + "/retained R", prefix + "/q0 m0", prefix + "/q1 m1", prefix + "/q2 m2"}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("mosquitto_sub received %q, want %q", got, want)
	}
}
