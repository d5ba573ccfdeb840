// Command provision turns a device image's provisioning file (hub URL,
// node name and labels, registries, hostname; see
// firmware-images/provision.example.yaml) into the files the image
// carries: the agent's /etc/flotilla/agent.yaml and /etc/hostname. It
// decodes strictly and validates names and labels as the agent would, so
// a typo fails the image build instead of a board in the field.
//
//	go run ./firmware-images/provision -in provision.yaml -agent-config agent.yaml -hostname hostname
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Provision is the provisioning file.
type Provision struct {
	// Hostname is the image's /etc/hostname.
	Hostname string `json:"hostname"`
	Hub      struct {
		// Broker is the hub's MQTT broker URL, tcp://host:1883.
		Broker string `json:"broker"`
	} `json:"hub"`
	Node struct {
		// Name is the node's name; empty means each board's hostname.
		Name   string            `json:"name,omitempty"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"node"`
	Registries struct {
		// Insecure registries are reached over plain HTTP.
		Insecure []string `json:"insecure,omitempty"`
	} `json:"registries"`
}

// Agent paths on the device.
const (
	stateDir         = "/var/lib/flotilla-agent"
	containerdSocket = "/run/containerd/containerd.sock"
)

func main() {
	in := flag.String("in", "", "provisioning YAML file")
	agentConfig := flag.String("agent-config", "", "where to write the agent's config file")
	hostname := flag.String("hostname", "", "where to write the hostname file")
	flag.Parse()
	if err := run(*in, *agentConfig, *hostname); err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

func run(in, agentConfig, hostname string) error {
	if in == "" || agentConfig == "" || hostname == "" {
		return errors.New("-in, -agent-config and -hostname are required")
	}
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	p, err := Decode(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err := os.WriteFile(agentConfig, AgentConfig(p), 0o600); err != nil {
		return err
	}
	return os.WriteFile(hostname, []byte(p.Hostname+"\n"), 0o644)
}

// Decode reads and validates a provisioning file.
func Decode(raw []byte) (Provision, error) {
	var p Provision
	if err := yaml.UnmarshalStrict(raw, &p); err != nil {
		return p, fmt.Errorf("decode: %w", err)
	}
	var errs []error
	if p.Hostname == "" {
		errs = append(errs, errors.New("hostname: required"))
	} else if err := api.ValidateDNSLabel(p.Hostname); err != nil {
		errs = append(errs, fmt.Errorf("hostname: %w", err))
	}
	if p.Hub.Broker == "" {
		errs = append(errs, errors.New("hub.broker: required (tcp://HUB:1883)"))
	} else if u, err := url.Parse(p.Hub.Broker); err != nil || u.Host == "" ||
		!slices.Contains([]string{"tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss"}, u.Scheme) {
		errs = append(errs, fmt.Errorf("hub.broker %q: want scheme://host:port with tcp, ssl, tls, mqtt, mqtts, ws or wss", p.Hub.Broker))
	}
	if p.Node.Name != "" {
		if err := api.ValidateDNSSubdomain(p.Node.Name); err != nil {
			errs = append(errs, fmt.Errorf("node.name: %w", err))
		}
	}
	for _, k := range sortedKeys(p.Node.Labels) {
		if err := api.ValidateLabelKey(k); err != nil {
			errs = append(errs, fmt.Errorf("node.labels: %w", err))
		}
		if err := api.ValidateLabelValue(p.Node.Labels[k]); err != nil {
			errs = append(errs, fmt.Errorf("node.labels.%s: %w", k, err))
		}
	}
	for i, r := range p.Registries.Insecure {
		if r == "" || strings.ContainsAny(r, "/ ") {
			errs = append(errs, fmt.Errorf("registries.insecure[%d] %q: want host:port", i, r))
		}
	}
	return p, errors.Join(errs...)
}

// AgentConfig renders the agent's config file: keys are the agent's flag
// names, as its --config takes them.
func AgentConfig(p Provision) []byte {
	var b strings.Builder
	b.WriteString("# Flotilla edge agent settings, from the image's provisioning file.\n")
	b.WriteString("# Keys are edge-agent's flag names (edge-agent --help).\n")
	fmt.Fprintf(&b, "broker: %q\n", p.Hub.Broker)
	if p.Node.Name != "" {
		fmt.Fprintf(&b, "node-name: %q\n", p.Node.Name)
	}
	if len(p.Node.Labels) > 0 {
		b.WriteString("label:\n")
		for _, k := range sortedKeys(p.Node.Labels) {
			fmt.Fprintf(&b, "  - %q\n", k+"="+p.Node.Labels[k])
		}
	}
	if len(p.Registries.Insecure) > 0 {
		b.WriteString("insecure-registry:\n")
		for _, r := range p.Registries.Insecure {
			fmt.Fprintf(&b, "  - %q\n", r)
		}
	}
	fmt.Fprintf(&b, "state-dir: %q\n", stateDir)
	fmt.Fprintf(&b, "containerd-socket: %q\n", containerdSocket)
	return []byte(b.String())
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
