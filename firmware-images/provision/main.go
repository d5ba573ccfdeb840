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
	"regexp"
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
		// URL is the hub's HTTPS API, https://host:8443: a board enrols
		// there on first boot with Token, pinning the CA by CAFingerprint,
		// and then connects to ssl://host:8883 unless Broker says
		// otherwise.
		URL           string `json:"url,omitempty"`
		Token         string `json:"token,omitempty"`
		CAFingerprint string `json:"caFingerprint,omitempty"`
		// Broker is the hub's MQTT broker URL: ssl://host:8883, or
		// tcp://host:1883 for a hub run with --insecure.
		Broker string `json:"broker,omitempty"`
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
	errs = append(errs, validateHub(p)...)
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

// validateHub checks how the board reaches the hub: enrolment (url, token,
// CA fingerprint, all three) or a plaintext broker for an --insecure hub.
func validateHub(p Provision) []error {
	var errs []error
	h := p.Hub
	if h.URL == "" && h.Broker == "" {
		return []error{errors.New("hub.url: required (https://HUB:8443, with hub.token and hub.caFingerprint), or hub.broker for an --insecure hub")}
	}
	plain := false
	if h.Broker != "" {
		u, err := url.Parse(h.Broker)
		if err != nil || u.Host == "" || !slices.Contains([]string{"tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss"}, u.Scheme) {
			errs = append(errs, fmt.Errorf("hub.broker %q: want scheme://host:port with tcp, ssl, tls, mqtt, mqtts, ws or wss", h.Broker))
		} else {
			plain = u.Scheme == "tcp" || u.Scheme == "mqtt" || u.Scheme == "ws"
		}
	}
	if h.URL == "" {
		if h.Token != "" || h.CAFingerprint != "" {
			errs = append(errs, errors.New("hub.url: required with hub.token and hub.caFingerprint (where the board enrols)"))
		}
		return errs
	}
	if u, err := url.Parse(h.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("hub.url %q: want https://host:port", h.URL))
	}
	if h.Token == "" {
		errs = append(errs, errors.New("hub.token: required with hub.url (hub token create --uses N --ttl D)"))
	} else if !tokenPattern.MatchString(h.Token) {
		errs = append(errs, fmt.Errorf("hub.token: want ID.SECRET as `hub token create` prints it"))
	}
	if h.CAFingerprint == "" {
		errs = append(errs, errors.New("hub.caFingerprint: required with hub.url (hub token create prints it)"))
	} else if !fingerprintPattern.MatchString(strings.ToLower(h.CAFingerprint)) {
		errs = append(errs, fmt.Errorf("hub.caFingerprint %q: want sha256: and 64 hex digits", h.CAFingerprint))
	}
	if plain {
		errs = append(errs, fmt.Errorf("hub.broker %q: an enrolled board connects over TLS; use ssl://host:8883 or leave it out", h.Broker))
	}
	return errs
}

var (
	tokenPattern       = regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{32}$`)
	fingerprintPattern = regexp.MustCompile(`^sha256:([0-9a-f]{64}|([0-9a-f]{2}:){31}[0-9a-f]{2})$`)
)

// AgentConfig renders the agent's config file: keys are the agent's flag
// names, as its --config takes them.
func AgentConfig(p Provision) []byte {
	var b strings.Builder
	b.WriteString("# Flotilla edge agent settings, from the image's provisioning file.\n")
	b.WriteString("# Keys are edge-agent's flag names (edge-agent --help).\n")
	if p.Hub.URL != "" {
		fmt.Fprintf(&b, "hub: %q\n", p.Hub.URL)
		fmt.Fprintf(&b, "token: %q\n", p.Hub.Token)
		fmt.Fprintf(&b, "ca-fingerprint: %q\n", p.Hub.CAFingerprint)
	}
	if p.Hub.Broker != "" {
		fmt.Fprintf(&b, "broker: %q\n", p.Hub.Broker)
	}
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
