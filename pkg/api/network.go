package api

// DNSPolicy says where a pod's /etc/resolv.conf points.
type DNSPolicy string

// DNS policies, as in Kubernetes. A pod spec that names none is
// ClusterFirst.
const (
	// DNSClusterFirst: the node's cluster DNS answers, with the search
	// path of the pod's namespace; other names go to the node's own
	// resolvers. For a pod on the host network it means Default.
	DNSClusterFirst DNSPolicy = "ClusterFirst"
	// DNSClusterFirstWithHostNet is ClusterFirst for host-network pods too.
	DNSClusterFirstWithHostNet DNSPolicy = "ClusterFirstWithHostNet"
	// DNSDefault: the node's own resolv.conf.
	DNSDefault DNSPolicy = "Default"
	// DNSNone: only what the pod's dnsConfig says.
	DNSNone DNSPolicy = "None"
)

// EffectiveDNSPolicy is the policy a pod spec asks for, ClusterFirst when
// it names none.
func (s *PodSpec) EffectiveDNSPolicy() DNSPolicy {
	if s.DNSPolicy == "" {
		return DNSClusterFirst
	}
	return s.DNSPolicy
}

// PodDNSConfig adds to (or, with dnsPolicy None, makes up) a pod's
// resolv.conf.
type PodDNSConfig struct {
	Nameservers []string             `json:"nameservers,omitempty"`
	Searches    []string             `json:"searches,omitempty"`
	Options     []PodDNSConfigOption `json:"options,omitempty"`
}

// PodDNSConfigOption is one resolv.conf option, such as ndots:2.
type PodDNSConfigOption struct {
	Name  string  `json:"name,omitempty"`
	Value *string `json:"value,omitempty"`
}

// PodIP is one of a pod's addresses.
type PodIP struct {
	IP string `json:"ip"`
}

// Bounds on a pod's dnsConfig, as Kubernetes has them (those of glibc's
// resolver).
const (
	MaxDNSNameservers     = 3
	MaxDNSSearchPaths     = 32
	MaxDNSSearchListChars = 2048
)
