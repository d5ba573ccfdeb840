package wire

// The network part of a node's desired snapshot: what its agent needs to
// give its pods addresses, reach the pods of the other nodes of its site,
// translate Service addresses to endpoints in the kernel, and answer
// cluster DNS, all from the last snapshot alone while the hub is away.

// Network is the node's pod network: set when the hub runs pod networking
// (a node without a pod CIDR yet gets none, and its pods wait).
type Network struct {
	// PodCIDR is this node's pod subnet (a /24 of ClusterCIDR by
	// default); the agent's bridge takes its first address, which is also
	// the pods' DNS server.
	PodCIDR     string `json:"podCIDR"`
	ClusterCIDR string `json:"clusterCIDR"`
	ServiceCIDR string `json:"serviceCIDR"`
	// ClusterDomain is the DNS suffix of Services ("cluster.local").
	ClusterDomain string `json:"clusterDomain"`
	// Peers are the other nodes of this node's site (the same
	// topology.kubernetes.io/zone): their pod CIDRs are routed through
	// their addresses on the site's LAN.
	Peers []NetworkPeer `json:"peers,omitempty"`
}

// NetworkPeer is another node of the site.
type NetworkPeer struct {
	Node    string `json:"node"`
	IP      string `json:"ip"`
	PodCIDR string `json:"podCIDR"`
}

// Service is one Service as a node needs it: its virtual address and
// ports, and the endpoints the hub last knew (the agent overrides those of
// its own pods from what it sees itself).
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Type is ClusterIP or NodePort.
	Type string `json:"type"`
	// ClusterIP is the virtual address, "None" for a headless Service.
	ClusterIP string        `json:"clusterIP"`
	Ports     []ServicePort `json:"ports,omitempty"`
	// Selector is the Service's pod selector: the agent matches its own
	// pods against it to follow their readiness and addresses offline.
	Selector map[string]string `json:"selector,omitempty"`
	// AffinityTimeoutSeconds, when not zero, sends a client IP to the
	// same endpoint for that long (sessionAffinity: ClientIP).
	AffinityTimeoutSeconds int32 `json:"affinityTimeoutSeconds,omitempty"`
	// InternalLocal and ExternalLocal are internalTrafficPolicy and
	// externalTrafficPolicy Local: only this node's endpoints serve
	// traffic from this node's pods, or from outside through a NodePort.
	InternalLocal bool       `json:"internalLocal,omitempty"`
	ExternalLocal bool       `json:"externalLocal,omitempty"`
	Endpoints     []Endpoint `json:"endpoints,omitempty"`
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name     string `json:"name,omitempty"`
	Protocol string `json:"protocol"` // TCP or UDP
	Port     int32  `json:"port"`
	NodePort int32  `json:"nodePort,omitempty"`
	// TargetPort is the Service's targetPort: a number, or the name of a
	// container port, which each endpoint resolves (Endpoint.Ports).
	TargetPort string `json:"targetPort"`
}

// Endpoint is one pod behind a Service.
type Endpoint struct {
	IP string `json:"ip"`
	// Node runs the pod; PodUID, Namespace and Name identify it.
	Node      string `json:"node"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	PodUID    string `json:"podUID"`
	// Hostname is the pod's spec.hostname when its spec.subdomain names
	// this (headless) Service, as Kubernetes' endpoints controller sets
	// it: cluster DNS then names the endpoint HOSTNAME.SERVICE.NAMESPACE.svc
	// instead of by its dashed IP.
	Hostname string `json:"hostname,omitempty"`
	Ready    bool   `json:"ready"`
	// Ports maps each Service port name ("" for an unnamed one) to the
	// pod's port number it targets.
	Ports map[string]int32 `json:"ports"`
}
