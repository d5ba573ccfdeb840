package api

// Service gives the pods its selector matches one stable virtual address
// (its cluster IP) and, with type NodePort, a port on every node's address,
// as Kubernetes' v1 Service does. The hub allocates the cluster IP and the
// node ports when the Service is applied; agents translate traffic to the
// Service into traffic to its ready endpoints.
type Service struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       ServiceSpec   `json:"spec,omitempty"`
	Status     ServiceStatus `json:"status,omitempty"`
}

// ServiceType is how a Service is reached.
type ServiceType string

// Service types. Flotilla supports ClusterIP and NodePort; the other two
// are Kubernetes' and are named so that refusing them can say so.
const (
	ServiceTypeClusterIP    ServiceType = "ClusterIP"
	ServiceTypeNodePort     ServiceType = "NodePort"
	ServiceTypeLoadBalancer ServiceType = "LoadBalancer"
	ServiceTypeExternalName ServiceType = "ExternalName"
)

// ClusterIPNone is the clusterIP of a headless Service: no virtual
// address; its DNS name resolves to the ready pods' own addresses.
const ClusterIPNone = "None"

// Protocol is a port's transport protocol.
type Protocol string

// Protocols. Services support TCP and UDP.
const (
	ProtocolTCP  Protocol = "TCP"
	ProtocolUDP  Protocol = "UDP"
	ProtocolSCTP Protocol = "SCTP"
)

// ServiceAffinity says whether a client keeps reaching the same endpoint.
type ServiceAffinity string

// Session affinities.
const (
	ServiceAffinityNone     ServiceAffinity = "None"
	ServiceAffinityClientIP ServiceAffinity = "ClientIP"
)

// Bounds of sessionAffinityConfig.clientIP.timeoutSeconds, as in
// Kubernetes: the default is 3 hours, the most one day.
const (
	DefaultClientIPServiceAffinitySeconds int32 = 10800
	MaxClientIPServiceAffinitySeconds     int32 = 86400
)

// ServiceTrafficPolicy says which endpoints serve traffic: all of them
// (Cluster), or only those on the node the traffic arrives at (Local).
type ServiceTrafficPolicy string

// Traffic policies, for internalTrafficPolicy and externalTrafficPolicy.
const (
	ServiceTrafficPolicyCluster ServiceTrafficPolicy = "Cluster"
	ServiceTrafficPolicyLocal   ServiceTrafficPolicy = "Local"
)

// IPFamily is an address family.
type IPFamily string

// Address families.
const (
	IPv4Protocol IPFamily = "IPv4"
	IPv6Protocol IPFamily = "IPv6"
)

// IPFamilyPolicy says how many address families a Service wants.
type IPFamilyPolicy string

// IP family policies. Flotilla's Service network is IPv4 only, so
// PreferDualStack means SingleStack and RequireDualStack is refused.
const (
	IPFamilyPolicySingleStack      IPFamilyPolicy = "SingleStack"
	IPFamilyPolicyPreferDualStack  IPFamilyPolicy = "PreferDualStack"
	IPFamilyPolicyRequireDualStack IPFamilyPolicy = "RequireDualStack"
)

// ServiceSpec is the supported subset of Kubernetes' ServiceSpec.
type ServiceSpec struct {
	// Type is ClusterIP (the default) or NodePort.
	Type ServiceType `json:"type,omitempty"`
	// Selector picks the pods behind the Service; without one the
	// Service has no endpoints from pods.
	Selector map[string]string `json:"selector,omitempty"`
	Ports    []ServicePort     `json:"ports,omitempty"`
	// ClusterIP is the virtual address: empty asks the hub to allocate
	// one from its service CIDR, an address asks for that one, "None"
	// makes the Service headless. It cannot change once set.
	ClusterIP string `json:"clusterIP,omitempty"`
	// ClusterIPs holds ClusterIP (Kubernetes lists one address per
	// family; Flotilla has one family).
	ClusterIPs     []string       `json:"clusterIPs,omitempty"`
	IPFamilies     []IPFamily     `json:"ipFamilies,omitempty"`
	IPFamilyPolicy IPFamilyPolicy `json:"ipFamilyPolicy,omitempty"`
	// SessionAffinity ClientIP sends each client address to the same
	// endpoint for SessionAffinityConfig.ClientIP.TimeoutSeconds.
	SessionAffinity       ServiceAffinity        `json:"sessionAffinity,omitempty"`
	SessionAffinityConfig *SessionAffinityConfig `json:"sessionAffinityConfig,omitempty"`
	// InternalTrafficPolicy Local serves traffic from a node's own pods
	// only by endpoints on that node.
	InternalTrafficPolicy ServiceTrafficPolicy `json:"internalTrafficPolicy,omitempty"`
	// ExternalTrafficPolicy Local serves traffic arriving at a NodePort
	// only by endpoints on that node (and keeps the client's address).
	ExternalTrafficPolicy ServiceTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
}

// IsHeadless reports whether the Service has no virtual address.
func (s *ServiceSpec) IsHeadless() bool { return s.ClusterIP == ClusterIPNone }

// ServicePort is one port of a Service.
type ServicePort struct {
	// Name is required when the Service has more than one port.
	Name     string   `json:"name,omitempty"`
	Protocol Protocol `json:"protocol,omitempty"`
	Port     int32    `json:"port"`
	// TargetPort is the pods' port: a number, or the name of a container
	// port (each pod resolves it to its own number). It defaults to Port.
	TargetPort IntOrString `json:"targetPort,omitempty"`
	// NodePort is the port on every node's address, for a NodePort
	// Service: allocated from the hub's node port range when left out.
	NodePort int32 `json:"nodePort,omitempty"`
}

// SessionAffinityConfig holds the settings of a session affinity.
type SessionAffinityConfig struct {
	ClientIP *ClientIPConfig `json:"clientIP,omitempty"`
}

// ClientIPConfig is the ClientIP affinity's timeout.
type ClientIPConfig struct {
	TimeoutSeconds *int32 `json:"timeoutSeconds,omitempty"`
}

// AffinityTimeoutSeconds is how long a client stays with its endpoint, 0
// when the Service has no session affinity.
func (s *ServiceSpec) AffinityTimeoutSeconds() int32 {
	if s.SessionAffinity != ServiceAffinityClientIP {
		return 0
	}
	if c := s.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		return *c.ClientIP.TimeoutSeconds
	}
	return DefaultClientIPServiceAffinitySeconds
}

// ServiceStatus is Kubernetes' Service status. Flotilla has no load
// balancers; the fields are here so that Services exported from
// Kubernetes (with `status: {loadBalancer: {}}`) decode.
type ServiceStatus struct {
	LoadBalancer LoadBalancerStatus `json:"loadBalancer,omitempty"`
	Conditions   []Condition        `json:"conditions,omitempty"`
}

// LoadBalancerStatus lists a load balancer's ingress points.
type LoadBalancerStatus struct {
	Ingress []LoadBalancerIngress `json:"ingress,omitempty"`
}

// LoadBalancerIngress is one ingress point of a load balancer.
type LoadBalancerIngress struct {
	IP       string       `json:"ip,omitempty"`
	Hostname string       `json:"hostname,omitempty"`
	IPMode   string       `json:"ipMode,omitempty"`
	Ports    []PortStatus `json:"ports,omitempty"`
}

// PortStatus is the state of one port of an ingress point.
type PortStatus struct {
	Port     int32    `json:"port"`
	Protocol Protocol `json:"protocol"`
	Error    string   `json:"error,omitempty"`
}

// Condition is Kubernetes' generic condition (metav1.Condition).
type Condition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	ObservedGeneration int64           `json:"observedGeneration,omitempty"`
	LastTransitionTime Time            `json:"lastTransitionTime"`
	Reason             string          `json:"reason"`
	Message            string          `json:"message"`
}
