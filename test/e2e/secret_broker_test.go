package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
)

// TestSecretOnExternalBrokerDisk: a node's snapshot carries the Secrets
// its pods use and is retained, so an external broker that persists
// retained messages (Mosquitto's persistence true, as docs/mosquitto
// sets it) writes them to its persistence file. The real hub, agent and
// Mosquitto; docs/security.md must name the file and what to do about it.
func TestSecretOnExternalBrokerDisk(t *testing.T) {
	bin, err := harness.FindBinary("mosquitto")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(env.dir, uniq("mosquitto-persist-"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nuser root\n"+
		"persistence true\npersistence_location %s/\nlog_dest stderr\n", port, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	broker, err := harness.StartProcess("mosquitto", filepath.Join(dir, "mosquitto.log"), bin, "-c", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := broker.WaitReady(ctx, harness.DialCheck("tcp", addr)); err != nil {
		t.Fatal(err)
	}

	h := startHub(t, hubOptions{broker: "tcp://" + addr})
	a := startAgent(t, h)
	value := "s3cr3t-" + uniq("broker") + "-" + fmt.Sprint(time.Now().UnixNano())
	h.applyYAML(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: token}
stringData: {value: %q}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: uses-token}
spec:
  selector: {matchLabels: {app: uses-token}}
  template:
    metadata: {labels: {app: uses-token}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: %s
          command: ["sleep", "3600"]
          env:
            - name: TOKEN
              valueFrom: {secretKeyRef: {name: token, key: value}}
`, value, env.image))
	eventually(t, 60*time.Second, "the pod runs", func() error {
		if n := len(running(t, a.ns)); n != 1 {
			return fmt.Errorf("%d containers running", n)
		}
		return nil
	})
	// Mosquitto writes its persistence file when it stops.
	if err := broker.Stop(); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "mosquitto.db")
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatalf("mosquitto kept no persistence file: %v", err)
	}
	// In the snapshot's JSON, Secret data is base64: encoded, not sealed.
	if !bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString([]byte(value)))) {
		t.Fatalf("the node's retained snapshot, with the Secret, is not in %s", db)
	}
	if doc := securityDoc(t); !strings.Contains(doc, "mosquitto.db") || !strings.Contains(doc, "persistence") {
		t.Errorf("the Secret is on the broker's disk in %s, which docs/security.md does not name (with its persistence setting)", db)
	}
}
