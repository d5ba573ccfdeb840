package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestInvalidManifestsWriteNothing applies broken files through the real
// CLI and hub: each error names the file, the document and the field path,
// and nothing of a file with an invalid document is stored.
func TestInvalidManifestsWriteNothing(t *testing.T) {
	h := startHub(t, hubOptions{})
	good := daemonSet("good", env.image, "", "sleep 1")
	cases := []struct {
		name, doc2, want string
	}{
		{"missing image", strings.Replace(daemonSet("bad", env.image, "", "sleep 1"), "image: "+env.image, "image: \"\"", 1),
			"document 2: spec.template.spec.containers[0].image: required"},
		{"unknown field", strings.Replace(daemonSet("bad", env.image, "", "sleep 1"), "          image:", "          imagee: x\n          image:", 1),
			"document 2: spec.template.spec.containers[0].imagee: unknown field"},
		{"unsupported field", strings.Replace(daemonSet("bad", env.image, "", "sleep 1"), "      containers:", "      affinity: {}\n      containers:", 1),
			"document 2: spec.template.spec.affinity: not supported by Flotilla"},
		{"selector does not match", strings.Replace(daemonSet("bad", env.image, "", "sleep 1"), "matchLabels: {app: bad}", "matchLabels: {app: other}", 1),
			"document 2: spec.template.metadata.labels: selector does not match template labels"},
		{"invalid name", strings.Replace(daemonSet("bad", env.image, "", "sleep 1"), "name: bad", "name: Bad_Name", 1),
			"document 2: metadata.name:"},
		{"invalid quantity", strings.Replace(daemonSet("bad", env.image, "", "sleep 1"), "          command:", "          resources: {limits: {memory: 12XB}}\n          command:", 1),
			"document 2: spec.template.spec.containers[0].resources.limits.memory:"},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, "ds.yaml")
			if err := os.WriteFile(file, []byte(good+"---\n"+tc.doc2), 0o644); err != nil {
				t.Fatal(err)
			}
			out, errOut, err := h.cli("", "apply", "-f", file)
			if err == nil {
				t.Fatalf("apply of an invalid file succeeded:\n%s", out)
			}
			if want := file + ": " + tc.want; !strings.Contains(errOut, want) {
				t.Fatalf("error output lacks %q:\n%s", want, errOut)
			}
			if got, _, _ := h.cli("", "get", "ds", "-A", "-o", "name"); strings.TrimSpace(got) != "" {
				t.Fatalf("something was stored: %q", got)
			}
		})
	}
	// Pods are made by controllers, not applied.
	_, errOut, err := h.cli(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x"}]}}`, "apply", "-f", "-")
	if err == nil || !strings.Contains(errOut, "cannot be applied") {
		t.Fatalf("applying a Pod: err %v, %s", err, errOut)
	}
}

// TestBadAgentMessagesLeaveHubRunning publishes malformed, spoofed and
// oversized payloads on an agent's topics: the hub logs which node and
// topic, drops them, and keeps serving the real node.
func TestBadAgentMessagesLeaveHubRunning(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startAgent(t, h)

	opts := mqtt.NewClientOptions().AddBroker(h.MQTT).SetClientID("attacker").SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	status := wire.NodeTopic(a.node, wire.TopicStatus)
	publish := func(topic string, payload []byte) {
		t.Helper()
		tok := c.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	publish(status, []byte("{this is not json"))
	publish(status, []byte(`{"v":1,"type":"PodStatus","node":"someone-else","seq":99999,"payload":{}}`))
	publish(status, []byte(`{"v":1,"type":"Heartbeat","node":"`+a.node+`","seq":99999,"payload":{"observedRevision":"lots"}}`))
	// Over the hub's payload limit but under the broker's packet limit, so
	// it reaches ingest.
	big := append([]byte(`{"v":1,"type":"Heartbeat","node":"`+a.node+`","pad":"`), bytes.Repeat([]byte("x"), wire.MaxPayload)...)
	publish(status, append(big, []byte(`"}`)...))

	eventually(t, 10*time.Second, "hub logs the bad messages with node and topic", func() error {
		logs := h.proc.Logs()
		for _, want := range []string{"envelope: invalid character", `names node \"someone-else\"`, "Heartbeat payload", "payload too large"} {
			if !strings.Contains(logs, want) {
				return fmt.Errorf("log lacks %q", want)
			}
		}
		if !strings.Contains(logs, "node="+a.node) || !strings.Contains(logs, "topic="+status) {
			return fmt.Errorf("log does not name node %s and topic %s", a.node, status)
		}
		return nil
	})
	// Each drop is counted on the node, by reason, where the operator
	// looks: beside what the agent itself dropped.
	eventually(t, 10*time.Second, "describe node counts the drops", func() error {
		out := h.mustCLI("describe", "node", a.node)
		if want := "Dropped by hub:     4 (malformed 2, tooLarge 1, wrongNode 1)"; !strings.Contains(out, want) {
			return fmt.Errorf("no %q in:\n%s", want, out)
		}
		return nil
	})
	// The hub still works: the real agent's pods run.
	h.applyYAML(daemonSet(uniq("ds"), env.image, "", "sleep 3600"))
	eventually(t, 30*time.Second, "pod running after the garbage", func() error {
		if len(running(t, a.ns)) != 1 {
			return fmt.Errorf("not running")
		}
		return nil
	})
	if !h.node(a.node).IsReady() {
		t.Fatalf("real node not ready after the garbage")
	}
}
