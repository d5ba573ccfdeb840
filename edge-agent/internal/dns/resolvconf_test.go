package dns

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func ptr(s string) *string { return &s }

// The cases of kubelet's own table (TestGetPodDNSCustom) and the outputs
// the Kubernetes documentation shows ("DNS for Services and Pods"), with
// the node's resolv.conf "nameserver 8.8.8.8 / search host.domain".
func TestPodResolvConfAsKubelet(t *testing.T) {
	host := ResolvConf{Nameservers: []string{"8.8.8.8"}, Searches: []string{"host.domain"}, Options: []string{"edns0", "trust-ad"}}
	podConfig := &DNSConfig{
		Nameservers: []string{"10.0.0.11"},
		Searches:    []string{"my.domain"},
		Options:     []DNSOption{{Name: "ndots", Value: ptr("3")}, {Name: "debug"}},
	}
	cases := []struct {
		name        string
		policy      string
		hostNetwork bool
		clusterDNS  string
		config      *DNSConfig
		want        string
	}{
		{
			name: "ClusterFirst (the default), as the documentation shows it", policy: "",
			clusterDNS: "10.42.0.1",
			want:       "search testns.svc.cluster.local svc.cluster.local cluster.local host.domain\nnameserver 10.42.0.1\noptions ndots:5\n",
		},
		{
			name: "ClusterFirst with dnsConfig merged", policy: PolicyClusterFirst, clusterDNS: "10.0.0.10", config: podConfig,
			want: "search testns.svc.cluster.local svc.cluster.local cluster.local host.domain my.domain\nnameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:3 debug\n",
		},
		{
			name: "ClusterFirst on host network falls back to Default", policy: PolicyClusterFirst, hostNetwork: true, clusterDNS: "10.0.0.10",
			want: "search host.domain\nnameserver 8.8.8.8\noptions edns0 trust-ad\n",
		},
		{
			name: "ClusterFirstWithHostNet on host network", policy: PolicyClusterFirstWithHostNet, hostNetwork: true, clusterDNS: "10.0.0.10", config: podConfig,
			want: "search testns.svc.cluster.local svc.cluster.local cluster.local host.domain my.domain\nnameserver 10.0.0.10\nnameserver 10.0.0.11\noptions ndots:3 debug\n",
		},
		{
			name: "ClusterFirstWithHostNet on a pod network", policy: PolicyClusterFirstWithHostNet, clusterDNS: "10.0.0.10",
			want: "search testns.svc.cluster.local svc.cluster.local cluster.local host.domain\nnameserver 10.0.0.10\noptions ndots:5\n",
		},
		{
			name: "ClusterFirst without a cluster DNS address falls back to Default", policy: PolicyClusterFirst,
			want: "search host.domain\nnameserver 8.8.8.8\noptions edns0 trust-ad\n",
		},
		{
			name: "Default with dnsConfig merged", policy: PolicyDefault, clusterDNS: "10.0.0.10", config: podConfig,
			want: "search host.domain my.domain\nnameserver 8.8.8.8\nnameserver 10.0.0.11\noptions edns0 trust-ad ndots:3 debug\n",
		},
		{
			name: "None with the documentation's dnsConfig", policy: PolicyNone,
			config: &DNSConfig{
				Nameservers: []string{"192.0.2.1"},
				Searches:    []string{"ns1.svc.cluster-domain.example", "my.dns.search.suffix"},
				Options:     []DNSOption{{Name: "ndots", Value: ptr("2")}, {Name: "edns0"}},
			},
			want: "search ns1.svc.cluster-domain.example my.dns.search.suffix\nnameserver 192.0.2.1\noptions ndots:2 edns0\n",
		},
		{
			name: "None with kubelet's dnsConfig", policy: PolicyNone,
			config: &DNSConfig{
				Nameservers: []string{"203.0.113.1"},
				Searches:    []string{"my.domain", "second.domain"},
				Options:     []DNSOption{{Name: "ndots", Value: ptr("3")}, {Name: "debug"}},
			},
			want: "search my.domain second.domain\nnameserver 203.0.113.1\noptions ndots:3 debug\n",
		},
		{
			name: "duplicates from dnsConfig are dropped", policy: PolicyClusterFirst, clusterDNS: "10.0.0.10",
			config: &DNSConfig{Nameservers: []string{"10.0.0.10"}, Searches: []string{"svc.cluster.local", "host.domain"}, Options: []DNSOption{{Name: "ndots", Value: ptr("5")}}},
			want:   "search testns.svc.cluster.local svc.cluster.local cluster.local host.domain\nnameserver 10.0.0.10\noptions ndots:5\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conf, _, err := PodResolvConf(PodDNS{
				Policy: tc.policy, HostNetwork: tc.hostNetwork, Namespace: "testns",
				ClusterDomain: "cluster.local", ClusterDNS: tc.clusterDNS, Host: host, Config: tc.config,
			})
			if err != nil {
				t.Fatalf("PodResolvConf: %v", err)
			}
			if got := string(conf.Bytes()); got != tc.want {
				t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestPodResolvConfFallbackWarns(t *testing.T) {
	_, warnings, err := PodResolvConf(PodDNS{Namespace: "ns", ClusterDomain: "cluster.local", Host: ResolvConf{Nameservers: []string{"192.0.2.53"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "falling back to Default") {
		t.Errorf("warnings = %q, want the fallback to Default named", warnings)
	}
}

// systemd-resolved's stub is on the host's loopback: a pod with its own
// network cannot reach it, a hostNetwork pod can.
func TestPodResolvConfLoopbackNameservers(t *testing.T) {
	host := ResolvConf{Nameservers: []string{"127.0.0.53"}, Options: []string{"edns0", "trust-ad"}}
	conf, warnings, err := PodResolvConf(PodDNS{Policy: PolicyDefault, Namespace: "ns", ClusterDNS: "10.42.0.1", Host: host})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(conf.Nameservers, []string{"10.42.0.1"}) || len(warnings) != 1 {
		t.Errorf("pod network: nameservers %q warnings %q, want the node's cluster DNS and a warning", conf.Nameservers, warnings)
	}
	host.Nameservers = []string{"127.0.0.53", "192.0.2.53", "::1"}
	conf, _, _ = PodResolvConf(PodDNS{Policy: PolicyDefault, Namespace: "ns", ClusterDNS: "10.42.0.1", Host: host})
	if !slices.Equal(conf.Nameservers, []string{"192.0.2.53"}) {
		t.Errorf("pod network, one reachable: nameservers %q, want [192.0.2.53]", conf.Nameservers)
	}
	conf, warnings, _ = PodResolvConf(PodDNS{Policy: PolicyDefault, HostNetwork: true, Namespace: "ns", ClusterDNS: "10.42.0.1", Host: host})
	if !slices.Equal(conf.Nameservers, []string{"127.0.0.53", "192.0.2.53", "::1"}) || len(warnings) != 0 {
		t.Errorf("host network: nameservers %q warnings %q, want the node's own", conf.Nameservers, warnings)
	}
}

func TestPodResolvConfLimits(t *testing.T) {
	var searches []string
	for i := range 40 {
		searches = append(searches, "d"+strings.Repeat("x", 40)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	long := strings.Repeat("a", 254)
	conf, warnings, err := PodResolvConf(PodDNS{
		Policy: PolicyNone,
		Config: &DNSConfig{Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}, Searches: append([]string{long}, searches...)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(conf.Nameservers, []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}) {
		t.Errorf("nameservers %q, want the first 3", conf.Nameservers)
	}
	// 32 kept at most, the 254-character one among them dropped.
	if len(conf.Searches) != 31 || conf.Searches[0] != searches[0] {
		t.Errorf("%d searches starting %q, want 31 starting %q", len(conf.Searches), conf.Searches[0], searches[0])
	}
	if len(warnings) != 2 {
		t.Errorf("warnings %q, want one for nameservers and one for searches", warnings)
	}

	// The line's 2048 characters: cut from the end.
	searches = nil
	for i := range 30 {
		searches = append(searches, strings.Repeat(string(rune('a'+i%26)), 100))
	}
	conf, _, _ = PodResolvConf(PodDNS{Policy: PolicyNone, Config: &DNSConfig{Nameservers: []string{"192.0.2.1"}, Searches: searches}})
	if line := strings.Join(conf.Searches, " "); len(line) > 2048 || len(conf.Searches) != 20 {
		t.Errorf("search line of %d characters, %d domains; want at most 2048, 20 domains", len(line), len(conf.Searches))
	}
}

func TestPodResolvConfRejects(t *testing.T) {
	cases := []struct {
		name string
		pod  PodDNS
		want string
	}{
		{"unknown policy", PodDNS{Policy: "Cluster"}, `dnsPolicy "Cluster"`},
		{"None without dnsConfig", PodDNS{Policy: PolicyNone}, "dnsConfig is required"},
		{"None without nameservers", PodDNS{Policy: PolicyNone, Config: &DNSConfig{Searches: []string{"a"}}}, "dnsConfig.nameservers"},
		{"bad nameserver", PodDNS{Policy: PolicyDefault, Config: &DNSConfig{Nameservers: []string{"192.0.2.1", "dns.example"}}}, `dnsConfig.nameservers[1] "dns.example"`},
		{"bad option", PodDNS{Policy: PolicyDefault, Config: &DNSConfig{Options: []DNSOption{{Name: ""}}}}, "dnsConfig.options[0].name"},
		{"bad search", PodDNS{Policy: PolicyDefault, Config: &DNSConfig{Searches: []string{"a b"}}}, "dnsConfig.searches[0]"},
		{"no namespace", PodDNS{ClusterDNS: "10.42.0.1"}, "namespace is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := PodResolvConf(tc.pod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestParseResolvConf(t *testing.T) {
	data := `# Generated by NetworkManager
domain lan
search lan. example.com
nameserver 192.0.2.53
nameserver 2001:db8::53 ; second
nameserver
options timeout:1
options edns0 trust-ad
search corp.example
`
	conf, err := ParseResolvConf([]byte(data))
	if err == nil || !strings.Contains(err.Error(), "line 6") {
		t.Errorf("err = %v, want line 6 named", err)
	}
	want := ResolvConf{
		Nameservers: []string{"192.0.2.53", "2001:db8::53"},
		Searches:    []string{"corp.example"},
		Options:     []string{"edns0", "trust-ad"},
	}
	if !slices.Equal(conf.Nameservers, want.Nameservers) || !slices.Equal(conf.Searches, want.Searches) || !slices.Equal(conf.Options, want.Options) {
		t.Errorf("parsed %+v, want %+v", conf, want)
	}

	// systemd-resolved's stub file.
	conf, err = ParseResolvConf([]byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n"))
	if err != nil || len(conf.Searches) != 0 {
		t.Errorf("stub: %+v %v, want no search domain", conf, err)
	}
}

func TestReadResolvConf(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadResolvConf(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxResolvConfBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResolvConf(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: err = %v", err)
	}
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("search a b.\nnameserver 1.2.3.4\noptions ndots:5\n"))
	f.Add([]byte("nameserver\n#x\n;y\nsearch .\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, _ := ParseResolvConf(data)
		for _, s := range conf.Searches {
			if s == "" {
				t.Fatalf("empty search domain from %q", data)
			}
		}
		// Whatever the node's file says, a pod's file comes out or an error.
		_, _, _ = PodResolvConf(PodDNS{Namespace: "ns", ClusterDomain: "cluster.local", ClusterDNS: "10.42.0.1", Host: conf})
		_, _, _ = PodResolvConf(PodDNS{Policy: PolicyDefault, Host: conf})
	})
}
