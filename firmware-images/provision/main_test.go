package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestExampleRenders(t *testing.T) {
	raw, err := os.ReadFile("../provision.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(raw)
	if err != nil {
		t.Fatalf("the example does not decode: %v", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(AgentConfig(p), &cfg); err != nil {
		t.Fatalf("rendered config is not YAML: %v\n%s", err, AgentConfig(p))
	}
	if cfg["hub"] != "https://hub.example.internal:8443" || cfg["token"] != "abc123.0123456789abcdefghijklmnopqrstuv" ||
		cfg["ca-fingerprint"] != "sha256:4807e05863c45a4e81fe7c247beed368742dcc73c85e31e9388349db41279938" ||
		cfg["state-dir"] != "/var/lib/flotilla-agent" {
		t.Fatalf("config = %v", cfg)
	}
	if _, ok := cfg["broker"]; ok {
		t.Fatalf("no broker given: the agent derives it from the hub URL, so none must be written: %v", cfg)
	}
	if _, ok := cfg["node-name"]; ok {
		t.Fatalf("an empty node name must be left out, so the board's hostname is used: %v", cfg)
	}
	labels, _ := cfg["label"].([]any)
	if len(labels) != 2 || labels[0] != "role=sensor-gateway" || labels[1] != "site=north" {
		t.Fatalf("labels = %v", cfg["label"])
	}
}

func TestRunWritesFiles(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "p.yaml")
	os.WriteFile(in, []byte("hostname: gw-7\nhub: {broker: 'ssl://hub:8883'}\nnode: {name: gw-7.site, labels: {site: south}}\n"), 0o644)
	if err := run(in, filepath.Join(dir, "agent.yaml"), filepath.Join(dir, "hostname")); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "agent.yaml"))
	host, _ := os.ReadFile(filepath.Join(dir, "hostname"))
	if !strings.Contains(string(cfg), `node-name: "gw-7.site"`) || !strings.Contains(string(cfg), `- "site=south"`) || string(host) != "gw-7\n" {
		t.Fatalf("agent.yaml:\n%s\nhostname: %q", cfg, host)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "agent.yaml")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent.yaml mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestInvalidProvisioning(t *testing.T) {
	const fp = "4807e05863c45a4e81fe7c247beed368742dcc73c85e31e9388349db41279938"
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown field":   {"hostname: a\nhub: {broker: tcp://h:1}\nnode: {nmae: x}\n", "unknown field"},
		"no hub":          {"hostname: a\n", "hub.url: required"},
		"token, no url":   {"hostname: a\nhub: {broker: 'ssl://h:1', token: abc123.0123456789abcdefghijklmnopqrstuv}\n", "hub.url: required with hub.token"},
		"url, no token":   {"hostname: a\nhub: {url: 'https://h:8443', caFingerprint: 'sha256:" + fp + "'}\n", "hub.token: required"},
		"bad token":       {"hostname: a\nhub: {url: 'https://h:8443', token: nope, caFingerprint: 'sha256:" + fp + "'}\n", "hub.token: want ID.SECRET"},
		"bad fingerprint": {"hostname: a\nhub: {url: 'https://h:8443', token: abc123.0123456789abcdefghijklmnopqrstuv, caFingerprint: 'md5:1'}\n", "hub.caFingerprint"},
		"http url":        {"hostname: a\nhub: {url: 'http://h:8080', token: abc123.0123456789abcdefghijklmnopqrstuv, caFingerprint: 'sha256:" + fp + "'}\n", "want https://"},
		"plain enrolled":  {"hostname: a\nhub: {url: 'https://h:8443', broker: 'tcp://h:1883', token: abc123.0123456789abcdefghijklmnopqrstuv, caFingerprint: 'sha256:" + fp + "'}\n", "connects over TLS"},
		"bad scheme":      {"hostname: a\nhub: {broker: 'http://h:1'}\n", "want scheme://host:port"},
		"no hostname":     {"hub: {broker: tcp://h:1}\n", "hostname: required"},
		"bad hostname":    {"hostname: Not_A_Host\nhub: {broker: tcp://h:1}\n", "hostname"},
		"bad label key":   {"hostname: a\nhub: {broker: tcp://h:1}\nnode: {labels: {'-x': y}}\n", "node.labels"},
		"bad label value": {"hostname: a\nhub: {broker: tcp://h:1}\nnode: {labels: {x: 'a b'}}\n", "node.labels.x"},
		"bad node name":   {"hostname: a\nhub: {broker: tcp://h:1}\nnode: {name: 'UPPER'}\n", "node.name"},
		"bad registry":    {"hostname: a\nhub: {broker: tcp://h:1}\nregistries: {insecure: ['http://r/x']}\n", "registries.insecure[0]"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
