package wire

// The Ingress part of a node's desired snapshot: the Ingresses the node
// serves, resolved by the hub (their class's node selection, their
// backends' Service ports, the routes older Ingresses claimed first
// left out), in the order of their age. The TLS Secrets they name travel
// in Snapshot.Secrets, to these nodes only; the endpoints behind each
// backend are those of Snapshot.Services, which the agent merges with
// what it sees of its own pods.

// Path types of IngressPath.
const (
	PathExact  = "Exact"
	PathPrefix = "Prefix"
)

// Backend protocols of Ingress.BackendProtocol.
const (
	BackendHTTP = "http"
	BackendH2C  = "h2c"
)

// Ingress is one Ingress a node serves.
type Ingress struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Rules route requests by host and path; DefaultBackend serves the
	// requests no rule matches (unless an older Ingress's does).
	Rules          []IngressRule   `json:"rules,omitempty"`
	DefaultBackend *IngressBackend `json:"defaultBackend,omitempty"`
	TLS            []IngressTLS    `json:"tls,omitempty"`
	// BackendProtocol is how the agent speaks to the backends: http
	// (HTTP/1.1, the default) or h2c (HTTP/2 without TLS).
	BackendProtocol string `json:"backendProtocol,omitempty"`
}

// IngressRule is the paths of one host ("" for every host; "*.example"
// for one more label under example).
type IngressRule struct {
	Host  string        `json:"host,omitempty"`
	Paths []IngressPath `json:"paths"`
}

// IngressPath routes the requests whose path matches to a backend. Type
// is PathExact or PathPrefix (an ImplementationSpecific path is sent as
// a Prefix, an empty path as "/").
type IngressPath struct {
	Path    string         `json:"path"`
	Type    string         `json:"type"`
	Backend IngressBackend `json:"backend"`
}

// IngressBackend is a port of a Service in the Ingress's namespace.
type IngressBackend struct {
	Service string `json:"service"`
	// PortName and Port are the Service port the backend names, resolved
	// by the hub: the name keys Endpoint.Ports ("" for a Service's only,
	// unnamed port).
	PortName string `json:"portName,omitempty"`
	Port     int32  `json:"port,omitempty"`
	// Missing, when set, says why the backend cannot be reached (no such
	// Service, or no such port): the agent answers 503.
	Missing string `json:"missing,omitempty"`
}

// IngressTLS is a certificate, the kubernetes.io/tls Secret SecretName
// in the Ingress's namespace, and the hosts it serves.
type IngressTLS struct {
	Hosts      []string `json:"hosts,omitempty"`
	SecretName string   `json:"secretName"`
}
