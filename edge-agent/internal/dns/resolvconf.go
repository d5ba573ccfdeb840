package dns

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// The pod side of cluster DNS: the /etc/resolv.conf the agent writes into
// each pod, by the rules kubelet follows (pkg/kubelet/network/dns) for a
// pod's dnsPolicy and dnsConfig.

// DNS policies of a pod (spec.dnsPolicy).
const (
	PolicyClusterFirst            = "ClusterFirst"
	PolicyClusterFirstWithHostNet = "ClusterFirstWithHostNet"
	PolicyDefault                 = "Default"
	PolicyNone                    = "None"
)

// The limits kubelet applies to what it hands a pod (the glibc resolver's,
// as Kubernetes validates them since ExpandedDNSConfig went GA).
const (
	maxNameservers     = 3
	maxSearchPaths     = 32
	maxSearchLineChars = 2048
	maxSearchPathChars = 253
	maxResolvConfBytes = 1 << 20
)

// ResolvConf is what a resolver reads from a resolv.conf file.
type ResolvConf struct {
	Nameservers []string
	Searches    []string
	// Options are "name" or "name:value" ("ndots:5", "edns0").
	Options []string
}

// Bytes renders c as a resolv.conf file, in the order containerd writes a
// pod's: search, then nameservers, then options.
func (c ResolvConf) Bytes() []byte {
	var b strings.Builder
	if len(c.Searches) > 0 {
		b.WriteString("search " + strings.Join(c.Searches, " ") + "\n")
	}
	for _, ns := range c.Nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	if len(c.Options) > 0 {
		b.WriteString("options " + strings.Join(c.Options, " ") + "\n")
	}
	return []byte(b.String())
}

// ReadResolvConf reads and parses the resolv.conf at path (at most 1 MiB).
func ReadResolvConf(path string) (ResolvConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return ResolvConf{}, fmt.Errorf("read resolv.conf: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxResolvConfBytes+1))
	if err != nil {
		return ResolvConf{}, fmt.Errorf("read resolv.conf %s: %w", path, err)
	}
	if len(data) > maxResolvConfBytes {
		return ResolvConf{}, fmt.Errorf("read resolv.conf %s: larger than %d bytes", path, maxResolvConfBytes)
	}
	conf, err := ParseResolvConf(data)
	if err != nil {
		return conf, fmt.Errorf("resolv.conf %s: %w", path, err)
	}
	return conf, nil
}

// ParseResolvConf parses a resolv.conf as kubelet does: nameserver lines
// accumulate, the last search line and the last options line win, "domain"
// and unknown keywords are ignored, '#' and ';' start comments. A search
// domain loses its trailing dot; "search ." (systemd-resolved's "no search
// domain") adds none. The error names each bad line; conf still holds
// everything the good lines said.
func ParseResolvConf(data []byte) (ResolvConf, error) {
	var conf ResolvConf
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		if cut := strings.IndexAny(line, "#;"); cut >= 0 {
			line = line[:cut]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) < 2 {
				errs = append(errs, fmt.Errorf("line %d: nameserver without an address", i+1))
				continue
			}
			conf.Nameservers = append(conf.Nameservers, fields[1])
		case "search":
			conf.Searches = nil
			for _, s := range fields[1:] {
				if s = strings.TrimSuffix(s, "."); s != "" {
					conf.Searches = append(conf.Searches, s)
				}
			}
		case "options":
			conf.Options = append([]string(nil), fields[1:]...)
		}
	}
	return conf, errors.Join(errs...)
}

// DNSConfig is a pod's spec.dnsConfig.
type DNSConfig struct {
	Nameservers []string
	Searches    []string
	Options     []DNSOption
}

// DNSOption is one of dnsConfig.options: a nil Value is an option without
// one ("edns0").
type DNSOption struct {
	Name  string
	Value *string
}

// PodDNS is what decides a pod's resolv.conf.
type PodDNS struct {
	// Policy is the pod's dnsPolicy; "" is ClusterFirst.
	Policy      string
	HostNetwork bool
	Namespace   string
	// ClusterDomain is the Services' DNS suffix ("cluster.local").
	ClusterDomain string
	// ClusterDNS is the node's cluster DNS address (its bridge address);
	// "" when the node has no pod network, and then ClusterFirst falls
	// back to Default as kubelet does without --cluster-dns.
	ClusterDNS string
	// Host is the node's own resolv.conf.
	Host ResolvConf
	// Config is the pod's dnsConfig, nil if it has none.
	Config *DNSConfig
}

// PodResolvConf returns the resolv.conf of a pod, as kubelet forms it:
//
//   - ClusterFirst (a pod with its own network): the node's cluster DNS as
//     the only nameserver, search NS.svc.DOMAIN svc.DOMAIN DOMAIN and then
//     the node's search domains, options ndots:5. On a hostNetwork pod it
//     is Default, as in kubelet.
//   - ClusterFirstWithHostNet: ClusterFirst, on host network too.
//   - Default: the node's resolv.conf.
//   - None: nothing but the dnsConfig.
//
// A dnsConfig is then merged in: its nameservers and searches appended
// (duplicates dropped), its options replacing the same-named ones (kept in
// first-seen order, where kubelet's order is a map's). Then kubelet's
// limits: 3 nameservers, 32 search domains, none over 253 characters and
// 2048 for the line; what is cut is said in the warnings, as kubelet's
// DNSConfigForming events say it.
//
// One departure: a pod with its own network namespace cannot reach a
// loopback nameserver of the node (systemd-resolved's 127.0.0.53), so
// Default drops those for it, and if none is left uses the node's cluster
// DNS, which forwards to them from the host's namespace.
func PodResolvConf(p PodDNS) (ResolvConf, []string, error) {
	policy := p.Policy
	if policy == "" {
		policy = PolicyClusterFirst
	}
	var warnings []string
	var conf ResolvConf
	cluster := false
	switch policy {
	case PolicyNone:
		if p.Config == nil {
			return ResolvConf{}, nil, errors.New("dnsPolicy None: dnsConfig is required")
		}
		if len(p.Config.Nameservers) == 0 {
			return ResolvConf{}, nil, errors.New("dnsPolicy None: dnsConfig.nameservers needs at least one address")
		}
	case PolicyClusterFirstWithHostNet:
		cluster = true
	case PolicyClusterFirst:
		cluster = !p.HostNetwork
	case PolicyDefault:
	default:
		return ResolvConf{}, nil, fmt.Errorf("dnsPolicy %q: not one of %s, %s, %s, %s", p.Policy,
			PolicyClusterFirst, PolicyClusterFirstWithHostNet, PolicyDefault, PolicyNone)
	}
	if err := validateDNSConfig(p.Config); err != nil {
		return ResolvConf{}, nil, err
	}
	if cluster && p.ClusterDNS == "" {
		warnings = append(warnings, fmt.Sprintf("dnsPolicy %s: the node has no cluster DNS address; falling back to %s", policy, PolicyDefault))
		cluster = false
	}
	switch {
	case policy == PolicyNone:
	case cluster:
		if p.Namespace == "" {
			return ResolvConf{}, nil, errors.New("pod DNS: namespace is required for the cluster search path")
		}
		domain := strings.TrimSuffix(p.ClusterDomain, ".")
		conf.Nameservers = []string{p.ClusterDNS}
		if domain != "" {
			conf.Searches = []string{p.Namespace + ".svc." + domain, "svc." + domain, domain}
		}
		conf.Searches = omitDuplicates(append(conf.Searches, p.Host.Searches...))
		conf.Options = []string{"ndots:5"}
	default:
		conf.Nameservers = append([]string(nil), p.Host.Nameservers...)
		conf.Searches = append([]string(nil), p.Host.Searches...)
		conf.Options = append([]string(nil), p.Host.Options...)
		if !p.HostNetwork {
			var kept []string
			for _, ns := range conf.Nameservers {
				if a, err := netip.ParseAddr(ns); err == nil && a.IsLoopback() {
					continue
				}
				kept = append(kept, ns)
			}
			if len(kept) < len(conf.Nameservers) {
				if len(kept) == 0 && p.ClusterDNS != "" {
					kept = []string{p.ClusterDNS}
				}
				warnings = append(warnings, fmt.Sprintf("the node's loopback nameservers are not reachable from the pod's network; nameservers: %s", strings.Join(kept, " ")))
			}
			conf.Nameservers = kept
		}
	}
	if c := p.Config; c != nil {
		conf.Nameservers = omitDuplicates(append(conf.Nameservers, c.Nameservers...))
		conf.Searches = omitDuplicates(append(conf.Searches, c.Searches...))
		conf.Options = mergeOptions(conf.Options, c.Options)
	}
	if len(conf.Nameservers) > maxNameservers {
		conf.Nameservers = conf.Nameservers[:maxNameservers]
		warnings = append(warnings, "nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: "+strings.Join(conf.Nameservers, " "))
	}
	var cut bool
	conf.Searches, cut = fitSearches(conf.Searches)
	if cut {
		warnings = append(warnings, "search line limits were exceeded, some search paths have been omitted, the applied search line is: "+strings.Join(conf.Searches, " "))
	}
	return conf, warnings, nil
}

// validateDNSConfig checks a dnsConfig as the API does, naming the field.
func validateDNSConfig(c *DNSConfig) error {
	if c == nil {
		return nil
	}
	var errs []error
	for i, ns := range c.Nameservers {
		if _, err := netip.ParseAddr(ns); err != nil {
			errs = append(errs, fmt.Errorf("dnsConfig.nameservers[%d] %q: not an IP address", i, ns))
		}
	}
	for i, s := range c.Searches {
		if s == "" || strings.ContainsAny(s, " \t\n") {
			errs = append(errs, fmt.Errorf("dnsConfig.searches[%d] %q: not a domain name", i, s))
		}
	}
	for i, o := range c.Options {
		if o.Name == "" || strings.ContainsAny(o.Name, " \t\n:") {
			errs = append(errs, fmt.Errorf("dnsConfig.options[%d].name %q: not an option name", i, o.Name))
		}
		if o.Value != nil && strings.ContainsAny(*o.Value, " \t\n") {
			errs = append(errs, fmt.Errorf("dnsConfig.options[%d].value %q: has white space", i, *o.Value))
		}
	}
	return errors.Join(errs...)
}

func omitDuplicates(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// mergeOptions overrides existing "name[:value]" options by the pod's,
// keeping each name once, in the order it first appeared.
func mergeOptions(existing []string, pod []DNSOption) []string {
	var names []string
	values := map[string]string{}
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			names = append(names, name)
		}
		values[name] = value
	}
	for _, o := range existing {
		name, value, _ := strings.Cut(o, ":")
		set(name, value)
	}
	for _, o := range pod {
		value := ""
		if o.Value != nil {
			value = *o.Value
		}
		set(o.Name, value)
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if v := values[n]; v != "" {
			out = append(out, n+":"+v)
		} else {
			out = append(out, n)
		}
	}
	return out
}

// fitSearches applies kubelet's search limits: at most 32 domains, each at
// most 253 characters, the line at most 2048, cutting from the end.
func fitSearches(in []string) ([]string, bool) {
	cut := false
	if len(in) > maxSearchPaths {
		in, cut = in[:maxSearchPaths], true
	}
	out := in[:0:0]
	for _, s := range in {
		if len(s) > maxSearchPathChars {
			cut = true
			continue
		}
		out = append(out, s)
	}
	for len(out) > 0 && len(strings.Join(out, " ")) > maxSearchLineChars {
		out, cut = out[:len(out)-1], true
	}
	return out, cut
}
