package api

// Endpoints lists the pods behind a Service, as Kubernetes' v1 Endpoints
// does: the hub keeps one per Service with a selector, under the
// Service's name, from the pods the selector matches (ready ones in
// Addresses, the others in NotReadyAddresses). Users do not write them.
type Endpoints struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Subsets    []EndpointSubset `json:"subsets,omitempty"`
}

// EndpointSubset is a set of addresses that share a set of ports: the
// pods that resolve the Service's target ports to the same numbers.
type EndpointSubset struct {
	Addresses         []EndpointAddress `json:"addresses,omitempty"`
	NotReadyAddresses []EndpointAddress `json:"notReadyAddresses,omitempty"`
	Ports             []EndpointPort    `json:"ports,omitempty"`
}

// EndpointAddress is one pod's address.
type EndpointAddress struct {
	IP string `json:"ip"`
	// Hostname is the pod's spec.hostname when its spec.subdomain names
	// the Service.
	Hostname string `json:"hostname,omitempty"`
	// NodeName is the node that runs the pod.
	NodeName string `json:"nodeName,omitempty"`
	// TargetRef points at the pod.
	TargetRef *ObjectReference `json:"targetRef,omitempty"`
}

// EndpointPort is one port of the pods: Name is the Service port's name
// ("" for a Service's only, unnamed port), Port the pod's port number.
type EndpointPort struct {
	Name     string   `json:"name,omitempty"`
	Port     int32    `json:"port"`
	Protocol Protocol `json:"protocol,omitempty"`
}
