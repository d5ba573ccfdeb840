package api

import "strconv"

// Ingress routes HTTP and HTTPS traffic from outside by host name and URL
// path to Services, as Kubernetes' networking.k8s.io/v1 Ingress does. The
// edge agents of the nodes its IngressClass selects serve it themselves,
// on their own addresses: a reverse proxy to the ready endpoints of the
// backend Services, terminating TLS with the certificates of the
// kubernetes.io/tls Secrets it names.
type Ingress struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       IngressSpec   `json:"spec,omitempty"`
	Status     IngressStatus `json:"status,omitempty"`
}

// IngressSpec is Kubernetes' IngressSpec.
type IngressSpec struct {
	// IngressClassName names the IngressClass that serves the Ingress;
	// empty: the default class (the one annotated
	// AnnotationIsDefaultClass), or, when there is none, the nodes
	// labelled LabelIngressNode.
	IngressClassName *string `json:"ingressClassName,omitempty"`
	// DefaultBackend serves requests that no rule matches.
	DefaultBackend *IngressBackend `json:"defaultBackend,omitempty"`
	// TLS terminates HTTPS for its hosts with the certificate of its
	// Secret, chosen by the name the client asks for (SNI).
	TLS   []IngressTLS  `json:"tls,omitempty"`
	Rules []IngressRule `json:"rules,omitempty"`
}

// IngressTLS is one certificate and the hosts it serves.
type IngressTLS struct {
	Hosts []string `json:"hosts,omitempty"`
	// SecretName is a Secret of type kubernetes.io/tls in the Ingress's
	// namespace.
	SecretName string `json:"secretName,omitempty"`
}

// IngressRule routes the requests for one host (every host when Host is
// empty). Host is a DNS name, or a wildcard "*.example.com" that matches
// exactly one more label ("a.example.com", not "a.b.example.com").
type IngressRule struct {
	Host             string `json:"host,omitempty"`
	IngressRuleValue `json:",inline"`
}

// IngressRuleValue holds a rule's routes: HTTP paths.
type IngressRuleValue struct {
	HTTP *HTTPIngressRuleValue `json:"http,omitempty"`
}

// HTTPIngressRuleValue lists the paths of a rule.
type HTTPIngressRuleValue struct {
	Paths []HTTPIngressPath `json:"paths"`
}

// PathType says how a path matches a request's URL path.
type PathType string

// Path types, as in Kubernetes.
const (
	// PathTypeExact matches the URL path exactly (case-sensitive).
	PathTypeExact PathType = "Exact"
	// PathTypePrefix matches element by element on the path split by
	// "/": /foo matches /foo and /foo/bar, not /foobar; a trailing slash
	// is ignored.
	PathTypePrefix PathType = "Prefix"
	// PathTypeImplementationSpecific is left to the controller:
	// Flotilla's matches as Prefix.
	PathTypeImplementationSpecific PathType = "ImplementationSpecific"
)

// PathTypes are the path types, in the order messages list them.
var PathTypes = []PathType{PathTypeExact, PathTypePrefix, PathTypeImplementationSpecific}

// HTTPIngressPath sends the requests whose path matches to a backend.
type HTTPIngressPath struct {
	Path     string         `json:"path,omitempty"`
	PathType *PathType      `json:"pathType"`
	Backend  IngressBackend `json:"backend"`
}

// IngressBackend is where matching requests go: a port of a Service in
// the Ingress's namespace.
type IngressBackend struct {
	Service *IngressServiceBackend `json:"service,omitempty"`
}

// IngressServiceBackend is a Service and one of its ports.
type IngressServiceBackend struct {
	Name string             `json:"name"`
	Port ServiceBackendPort `json:"port,omitempty"`
}

// ServiceBackendPort is a Service port by its name or its number.
type ServiceBackendPort struct {
	Name   string `json:"name,omitempty"`
	Number int32  `json:"number,omitempty"`
}

// String is the port as kubectl prints it: its name or its number.
func (p ServiceBackendPort) String() string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Number))
}

// IngressStatus is where an Ingress is served.
type IngressStatus struct {
	LoadBalancer IngressLoadBalancerStatus `json:"loadBalancer,omitempty"`
}

// IngressLoadBalancerStatus lists the addresses an Ingress is served on:
// the InternalIPs of the nodes that serve it.
type IngressLoadBalancerStatus struct {
	Ingress []IngressLoadBalancerIngress `json:"ingress,omitempty"`
}

// IngressLoadBalancerIngress is one address the Ingress is served on.
type IngressLoadBalancerIngress struct {
	IP       string              `json:"ip,omitempty"`
	Hostname string              `json:"hostname,omitempty"`
	Ports    []IngressPortStatus `json:"ports,omitempty"`
}

// IngressPortStatus is the state of one port of an address.
type IngressPortStatus struct {
	Port     int32    `json:"port"`
	Protocol Protocol `json:"protocol"`
	Error    *string  `json:"error,omitempty"`
}

// ClassName is the IngressClass the Ingress names: spec.ingressClassName,
// or the deprecated kubernetes.io/ingress.class annotation; "" when it
// names none (the default class serves it).
func (in *Ingress) ClassName() string {
	if n := in.Spec.IngressClassName; n != nil && *n != "" {
		return *n
	}
	return in.Annotations[AnnotationIngressClass]
}

// IngressClass names a kind of Ingress and who serves it, as Kubernetes'
// networking.k8s.io/v1 IngressClass. Flotilla serves the classes whose
// controller is IngressController, on the nodes the class selects
// (AnnotationIngressNodeSelector; by default those labelled
// LabelIngressNode).
type IngressClass struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       IngressClassSpec `json:"spec,omitempty"`
}

// IngressClassSpec is Kubernetes' IngressClassSpec without parameters: a
// class chooses its nodes by annotation instead.
type IngressClassSpec struct {
	// Controller names the implementation that serves the class's
	// Ingresses: IngressController for Flotilla's agents.
	Controller string `json:"controller,omitempty"`
}

// IngressController is the controller name of the classes Flotilla's
// agents serve.
const IngressController = "flotilla.io/ingress"

// Ingress annotations and labels.
const (
	// AnnotationIsDefaultClass "true" makes an IngressClass the default:
	// Ingresses that name no class belong to it.
	AnnotationIsDefaultClass = "ingressclass.kubernetes.io/is-default-class"
	// AnnotationIngressClass is the deprecated way an Ingress named its
	// class, read when spec.ingressClassName is empty.
	AnnotationIngressClass = "kubernetes.io/ingress.class"
	// AnnotationIngressNodeSelector on an IngressClass is a label selector
	// ("site=north,tier in (edge)") that picks the nodes serving the
	// class's Ingresses, instead of LabelIngressNode=true.
	AnnotationIngressNodeSelector = "flotilla.io/ingress-node-selector"
	// AnnotationBackendProtocol on an Ingress, "h2c", makes its agents
	// speak HTTP/2 without TLS to its backends (gRPC); by default they
	// speak HTTP/1.1.
	AnnotationBackendProtocol = "flotilla.io/backend-protocol"
	// LabelIngressNode "true" marks the nodes that serve the Ingresses
	// of a class without AnnotationIngressNodeSelector, and those of no
	// class when no class is the default.
	LabelIngressNode = "node-role.kubernetes.io/ingress"
)

// Backend protocols of AnnotationBackendProtocol.
const (
	BackendProtocolHTTP = "http"
	BackendProtocolH2C  = "h2c"
)

// IngressNodeSelector is the selector of the nodes that serve the
// Ingresses of class c (nil: no class, the default selection).
func IngressNodeSelector(c *IngressClass) (Selector, error) {
	if c != nil {
		if text, ok := c.Annotations[AnnotationIngressNodeSelector]; ok {
			return ParseSelector(text)
		}
	}
	return SelectorFromMap(map[string]string{LabelIngressNode: "true"}), nil
}

// IsDefaultClass reports whether c is annotated as the default class.
func (c *IngressClass) IsDefaultClass() bool {
	return c.Annotations[AnnotationIsDefaultClass] == "true"
}
