package manifest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Ingresses, IngressClasses and the certificates of TLS Secrets, with
// Kubernetes' validation rules and a few of Flotilla's own, each named in
// its message: a TLS entry needs a Secret (there is no default
// certificate), one Ingress may not route the same host and path twice,
// and a TLS Secret's certificate and key must be a pair. What needs the
// store (the Services, Secrets and classes an Ingress names, a clash with
// another Ingress) is the hub's to report, as events on the Ingress.

// validateIngress checks an Ingress's spec.
func validateIngress(c *collector, in *api.Ingress) {
	spec := &in.Spec
	if spec.IngressClassName != nil {
		if err := api.ValidateDNSSubdomain(*spec.IngressClassName); err != nil {
			c.add("spec.ingressClassName", errText(err))
		}
		if a, ok := in.Annotations[api.AnnotationIngressClass]; ok && a != *spec.IngressClassName {
			c.addf(key("metadata.annotations", api.AnnotationIngressClass),
				"must not differ from spec.ingressClassName (%q); the annotation is the deprecated way to name the class", clip(*spec.IngressClassName, 64))
		}
	}
	if v, ok := in.Annotations[api.AnnotationBackendProtocol]; ok && v != api.BackendProtocolHTTP && v != api.BackendProtocolH2C {
		c.addf(key("metadata.annotations", api.AnnotationBackendProtocol), "must be %q or %q, not %q",
			api.BackendProtocolHTTP, api.BackendProtocolH2C, clip(v, 64))
	}
	if spec.DefaultBackend == nil && len(spec.Rules) == 0 {
		c.add("spec", "either defaultBackend or rules must be specified")
	}
	if spec.DefaultBackend != nil {
		validateIngressBackend(c, spec.DefaultBackend, "spec.defaultBackend")
	}
	// Where each host+path was first routed in this Ingress.
	routes := map[string]string{}
	for i := range spec.Rules {
		r := &spec.Rules[i]
		p := index("spec.rules", i)
		if r.Host != "" {
			validateIngressHost(c, r.Host, field(p, "host"))
		}
		if r.HTTP == nil {
			continue
		}
		hp := field(field(p, "http"), "paths")
		if len(r.HTTP.Paths) == 0 {
			c.add(hp, "required")
		}
		for j := range r.HTTP.Paths {
			path := &r.HTTP.Paths[j]
			pp := index(hp, j)
			if !validateIngressPath(c, path, pp) {
				continue
			}
			k := strings.ToLower(r.Host) + " " + IngressRouteKey(*path.PathType, path.Path)
			if first, dup := routes[k]; dup {
				c.addf(field(pp, "path"), "host %q and path %q are routed already by %s", hostOrAny(r.Host), path.Path, first)
				continue
			}
			routes[k] = pp
			validateIngressBackend(c, &path.Backend, field(pp, "backend"))
		}
	}
	secrets := map[string]string{}
	for i := range spec.TLS {
		t := &spec.TLS[i]
		p := index("spec.tls", i)
		if t.SecretName == "" {
			c.add(field(p, "secretName"), "required: Flotilla has no default certificate")
		} else if err := api.ValidateDNSSubdomain(t.SecretName); err != nil {
			c.add(field(p, "secretName"), errText(err))
		}
		for j, h := range t.Hosts {
			hp := index(field(p, "hosts"), j)
			validateIngressHost(c, h, hp)
			h = strings.ToLower(h)
			if other, dup := secrets[h]; dup && other != t.SecretName {
				c.addf(hp, "host %q has a certificate already, from Secret %q", h, other)
				continue
			}
			secrets[h] = t.SecretName
		}
	}
}

func hostOrAny(h string) string {
	if h == "" {
		return "*"
	}
	return h
}

// IngressRouteKey identifies what a path claims, so that two paths that
// match the same requests the same way have the same key: an Exact path
// as it is; a Prefix path (and an ImplementationSpecific one, which
// Flotilla matches as Prefix) without its trailing slashes, empty being
// "/".
func IngressRouteKey(t api.PathType, path string) string {
	if t == api.PathTypeExact {
		return "exact " + path
	}
	p := strings.TrimRight(path, "/")
	if p == "" {
		p = "/"
	}
	return "prefix " + p
}

// invalidPathSequences and invalidPathSuffixes may not appear in an Exact
// or Prefix path, as in Kubernetes.
var (
	invalidPathSequences = []string{"//", "/./", "/../", "%2f", "%2F"}
	invalidPathSuffixes  = []string{"/..", "/."}
)

// validateIngressPath checks a path and its type; it reports whether
// both are good enough to route.
func validateIngressPath(c *collector, path *api.HTTPIngressPath, p string) bool {
	before := c.count()
	if path.PathType == nil {
		c.add(field(p, "pathType"), "required: one of Exact, Prefix, ImplementationSpecific")
		return false
	}
	switch *path.PathType {
	case api.PathTypeExact, api.PathTypePrefix:
		if !strings.HasPrefix(path.Path, "/") {
			c.addf(field(p, "path"), "%q must be an absolute path (begin with '/')", clip(path.Path, 64))
			break
		}
		for _, s := range invalidPathSequences {
			if strings.Contains(path.Path, s) {
				c.addf(field(p, "path"), "%q must not contain '%s'", clip(path.Path, 64), s)
			}
		}
		for _, s := range invalidPathSuffixes {
			if strings.HasSuffix(path.Path, s) {
				c.addf(field(p, "path"), "%q cannot end with '%s'", clip(path.Path, 64), s)
			}
		}
	case api.PathTypeImplementationSpecific:
		if path.Path != "" && !strings.HasPrefix(path.Path, "/") {
			c.addf(field(p, "path"), "%q must be an absolute path (begin with '/')", clip(path.Path, 64))
		}
	default:
		c.add(field(p, "pathType"), notOneOf(*path.PathType, api.PathTypes))
	}
	return c.count() == before
}

// validateIngressHost checks a rule's or a TLS entry's host: a DNS name,
// or "*." and one, never an IP address.
func validateIngressHost(c *collector, h, p string) {
	if _, err := netip.ParseAddr(h); err == nil {
		c.addf(p, "%q must be a DNS name, not an IP address", clip(h, 64))
		return
	}
	name := h
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		name = rest
	}
	if strings.Contains(name, "*") {
		c.addf(p, "%q: a wildcard host is \"*.\" and a DNS name, such as *.example.com", clip(h, 64))
		return
	}
	if err := api.ValidateDNSSubdomain(name); err != nil {
		c.add(p, errText(err))
	}
}

// validateIngressBackend checks a backend: a Service and one of its
// ports, by name or number.
func validateIngressBackend(c *collector, b *api.IngressBackend, p string) {
	if b.Service == nil {
		c.add(field(p, "service"), "required: a backend is a Service and its port")
		return
	}
	sp := field(p, "service")
	if err := api.ValidateDNS1035Label(b.Service.Name); err != nil {
		c.add(field(sp, "name"), errText(err))
	}
	port := b.Service.Port
	pp := field(sp, "port")
	switch {
	case port.Name != "" && port.Number != 0:
		c.add(pp, "may have name or number, not both")
	case port.Name != "":
		if err := validatePortName(port.Name); err != nil {
			c.add(field(pp, "name"), err.Error())
		}
	case port.Number == 0:
		c.add(pp, "required: a port name or number")
	case port.Number < 1 || port.Number > 65535:
		c.addf(field(pp, "number"), "must be between 1 and 65535, not %d", port.Number)
	}
}

// controllerPath is the path part of a domain-prefixed controller name.
var controllerPath = regexp.MustCompile(`^[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$`)

// validateIngressClass checks a class: its controller name and the node
// selector annotation.
func validateIngressClass(c *collector, ic *api.IngressClass) {
	ctl := ic.Spec.Controller
	p := "spec.controller"
	switch {
	case ctl == "":
		c.addf(p, "required, such as %q", api.IngressController)
	case len(ctl) > 250:
		c.addf(p, "must be at most 250 characters, not %d", len(ctl))
	default:
		domain, path, ok := strings.Cut(ctl, "/")
		if !ok || path == "" || !controllerPath.MatchString(path) {
			c.addf(p, "%q must be a domain-prefixed path, such as %q", clip(ctl, 64), api.IngressController)
		} else if err := api.ValidateDNSSubdomain(domain); err != nil {
			c.addf(p, "%q: its domain: %s", clip(ctl, 64), errText(err))
		}
	}
	if v, ok := ic.Annotations[api.AnnotationIsDefaultClass]; ok && v != "true" && v != "false" {
		c.addf(key("metadata.annotations", api.AnnotationIsDefaultClass), "must be \"true\" or \"false\", not %q", clip(v, 64))
	}
	if v, ok := ic.Annotations[api.AnnotationIngressNodeSelector]; ok {
		if _, err := api.ParseSelector(v); err != nil {
			c.addf(key("metadata.annotations", api.AnnotationIngressNodeSelector), "not a label selector: %s", errText(err))
		}
	}
}

// validateTLSPair checks that a kubernetes.io/tls Secret's tls.crt is a
// PEM certificate chain and its tls.key the private key of the first
// certificate, as the agents will load them. data and fields are the
// Secret's merged values and the field each came from.
func validateTLSPair(c *collector, data map[string][]byte, fields map[string]string) {
	crt, okC := data[api.TLSCertKey]
	keyPEM, okK := data[api.TLSPrivateKeyKey]
	if !okC || !okK {
		return // the missing key is reported already
	}
	if err := checkCertificates(crt); err != nil {
		c.add(fields[api.TLSCertKey], err.Error())
		return
	}
	if _, err := tls.X509KeyPair(crt, keyPEM); err != nil {
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		c.addf(fields[api.TLSPrivateKeyKey], "not the private key of the certificate in %s: %s", fields[api.TLSCertKey], clip(msg, 200))
	}
}

// checkCertificates checks that b holds PEM certificates and nothing else
// that is PEM.
func checkCertificates(b []byte) error {
	n := 0
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a PEM block of type %q where certificates are expected", clip(block.Type, 64))
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %s", n+1, clip(err.Error(), 200))
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("holds no PEM certificate")
	}
	return nil
}
