package ingress

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Table is the node's Ingresses compiled for lookup: routes by host and
// path, and certificates by server name. It is immutable once built, so
// requests read it without a lock while a new one is swapped in.
//
// A request is routed by the most specific host that has a path matching
// it: its exact host's rules, then the wildcard's ("*.example.local"
// matches one label more), then the rules with no host, then the default
// backend. Among one host's paths, as Kubernetes orders them, the longest
// matching path wins and an Exact path beats a Prefix one of the same
// length; a Prefix matches whole path elements (/foo matches /foo and
// /foo/bar, not /foobar) and ignores a trailing slash.
type Table struct {
	exact    map[string]*hostRoutes
	wildcard map[string]*hostRoutes // by the suffix after "*."
	any      *hostRoutes
	fallback *Route

	// certs by exact and wildcard server name; defaultCert serves a
	// name no entry lists, or no name.
	certs, wildCerts map[string]*tls.Certificate
	defaultCert      *tls.Certificate
	// backends are the backends the routes name, once each.
	backends []*Backend
}

// hostRoutes are one host's paths: exact ones by path, prefixes longest
// first.
type hostRoutes struct {
	exact    map[string]*Route
	prefixes []prefixRoute
}

type prefixRoute struct {
	prefix string // without trailing slashes; "" for "/"
	route  *Route
}

// Route is where a matching request goes.
type Route struct {
	// Ingress is the Ingress the route is from ("namespace/name").
	Ingress string
	// Rule says which rule matched, for logs and tests: "host path type",
	// or "default backend".
	Rule    string
	Backend *Backend
}

// Backend is a port of a Service.
type Backend struct {
	// Key identifies it: "namespace/service:port".
	Key                string
	Namespace, Service string
	// PortName keys the endpoints' ports.
	PortName string
	// Missing says why it cannot be reached (no such Service or port).
	Missing string
	// H2C: the backend speaks HTTP/2 without TLS.
	H2C bool
}

// Build compiles the Ingresses (oldest first, as the snapshot holds them)
// with the TLS Secrets of the snapshot. Routes, the default backend and
// certificate names are first come, first served, so an older Ingress
// keeps what a newer one claims too (the hub leaves such claims out
// already). A certificate that does not load is left out, and so is a
// route it cannot build; each is named in the returned error, which joins
// them: the rest is served.
func Build(ingresses []wire.Ingress, secrets []wire.SnapshotSecret) (*Table, error) {
	t := &Table{
		exact: map[string]*hostRoutes{}, wildcard: map[string]*hostRoutes{},
		certs: map[string]*tls.Certificate{}, wildCerts: map[string]*tls.Certificate{},
	}
	var errs []error
	backends := map[string]*Backend{}
	backend := func(ns string, b wire.IngressBackend, h2c bool) *Backend {
		key := fmt.Sprintf("%s/%s:%s", ns, b.Service, b.PortName)
		if h2c {
			key += "/h2c"
		}
		if b.Missing != "" {
			key += " missing"
		}
		if be := backends[key]; be != nil {
			return be
		}
		be := &Backend{Key: key, Namespace: ns, Service: b.Service, PortName: b.PortName, Missing: b.Missing, H2C: h2c}
		backends[key] = be
		t.backends = append(t.backends, be)
		return be
	}
	loaded := map[string]*tls.Certificate{}
	var firstCert *tls.Certificate
	for _, in := range ingresses {
		ref := in.Namespace + "/" + in.Name
		h2c := in.BackendProtocol == wire.BackendH2C
		if b := in.DefaultBackend; b != nil && t.fallback == nil {
			t.fallback = &Route{Ingress: ref, Rule: "default backend", Backend: backend(in.Namespace, *b, h2c)}
		}
		for _, r := range in.Rules {
			host := strings.ToLower(r.Host)
			hr := t.host(host)
			for _, p := range r.Paths {
				route := &Route{Ingress: ref, Rule: fmt.Sprintf("%s %s %s", hostOrAny(host), p.Path, p.Type)}
				added, err := hr.add(p, route)
				if err != nil {
					errs = append(errs, fmt.Errorf("ingress %s: %w", ref, err))
				}
				if added {
					route.Backend = backend(in.Namespace, p.Backend, h2c)
				}
			}
		}
		for _, tl := range in.TLS {
			key := in.Namespace + "/" + tl.SecretName
			cert, ok := loaded[key]
			if !ok {
				var err error
				cert, err = loadCertificate(secrets, in.Namespace, tl.SecretName)
				if err != nil {
					errs = append(errs, fmt.Errorf("ingress %s: %w", ref, err))
				}
				loaded[key] = cert
			}
			if cert == nil {
				continue
			}
			if firstCert == nil {
				firstCert = cert
			}
			if len(tl.Hosts) == 0 && t.defaultCert == nil {
				t.defaultCert = cert
			}
			for _, h := range tl.Hosts {
				h = strings.ToLower(h)
				m, name := t.certs, h
				if rest, ok := strings.CutPrefix(h, "*."); ok {
					m, name = t.wildCerts, rest
				}
				if _, taken := m[name]; !taken {
					m[name] = cert
				}
			}
		}
	}
	if t.defaultCert == nil {
		// Without an entry that names no host, the oldest certificate
		// answers a name no entry lists.
		t.defaultCert = firstCert
	}
	for _, hr := range t.allHosts() {
		slices.SortStableFunc(hr.prefixes, func(a, b prefixRoute) int { return cmp.Compare(len(b.prefix), len(a.prefix)) })
	}
	return t, errors.Join(errs...)
}

// host returns the routes of host ("" for no host, "*.x" for a
// wildcard), making them.
func (t *Table) host(host string) *hostRoutes {
	var m map[string]*hostRoutes
	key := host
	switch {
	case host == "":
		if t.any == nil {
			t.any = &hostRoutes{exact: map[string]*Route{}}
		}
		return t.any
	case strings.HasPrefix(host, "*."):
		m, key = t.wildcard, host[2:]
	default:
		m = t.exact
	}
	hr := m[key]
	if hr == nil {
		hr = &hostRoutes{exact: map[string]*Route{}}
		m[key] = hr
	}
	return hr
}

func (t *Table) allHosts() []*hostRoutes {
	var out []*hostRoutes
	for _, hr := range t.exact {
		out = append(out, hr)
	}
	for _, hr := range t.wildcard {
		out = append(out, hr)
	}
	if t.any != nil {
		out = append(out, t.any)
	}
	return out
}

// add adds one path, and reports whether it did: a path another route
// has already is left to it.
func (hr *hostRoutes) add(p wire.IngressPath, r *Route) (bool, error) {
	if !strings.HasPrefix(p.Path, "/") {
		return false, fmt.Errorf("path %q is not absolute; left out", p.Path)
	}
	switch p.Type {
	case wire.PathExact:
		if _, taken := hr.exact[p.Path]; taken {
			return false, nil
		}
		hr.exact[p.Path] = r
	case wire.PathPrefix:
		prefix := strings.TrimRight(p.Path, "/")
		for _, pr := range hr.prefixes {
			if pr.prefix == prefix {
				return false, nil
			}
		}
		hr.prefixes = append(hr.prefixes, prefixRoute{prefix: prefix, route: r})
	default:
		return false, fmt.Errorf("path %q: unknown type %q; left out", p.Path, p.Type)
	}
	return true, nil
}

// match finds the route of one path among a host's.
func (hr *hostRoutes) match(path string) *Route {
	if hr == nil {
		return nil
	}
	if r := hr.exact[path]; r != nil {
		return r
	}
	for _, pr := range hr.prefixes {
		if prefixMatches(pr.prefix, path) {
			return pr.route
		}
	}
	return nil
}

// prefixMatches reports whether path is prefix or under it, element by
// element: prefix "/foo" (without trailing slashes; "" is the root)
// matches "/foo", "/foo/" and "/foo/bar", not "/foobar".
func prefixMatches(prefix, path string) bool {
	if prefix == "" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// Match routes a request for host (as the Host header has it, with or
// without a port) and path (the URL's path); nil when nothing matches.
func (t *Table) Match(host, path string) *Route {
	host = canonicalHost(host)
	if path == "" {
		path = "/"
	}
	if r := t.exact[host].match(path); r != nil {
		return r
	}
	if _, rest, ok := strings.Cut(host, "."); ok && rest != "" {
		if r := t.wildcard[rest].match(path); r != nil {
			return r
		}
	}
	if r := t.any.match(path); r != nil {
		return r
	}
	return t.fallback
}

// canonicalHost is a Host header's name: without its port and a final
// dot, lower case.
func canonicalHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// Certificate is the certificate for a TLS client hello: by the server
// name it asks for, exact or by wildcard, else the default one.
func (t *Table) Certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := canonicalHost(hello.ServerName)
	if c := t.certs[name]; c != nil {
		return c, nil
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		if c := t.wildCerts[rest]; c != nil {
			return c, nil
		}
	}
	if t.defaultCert != nil {
		return t.defaultCert, nil
	}
	return nil, fmt.Errorf("no certificate for %q", name)
}

// HasCertificates reports whether the table terminates TLS at all.
func (t *Table) HasCertificates() bool { return t.defaultCert != nil }

// Backends are the backends the table's routes name, once each.
func (t *Table) Backends() []*Backend { return t.backends }

// loadCertificate loads the certificate and key of a kubernetes.io/tls
// Secret of the snapshot.
func loadCertificate(secrets []wire.SnapshotSecret, namespace, name string) (*tls.Certificate, error) {
	for _, s := range secrets {
		if s.Namespace != namespace || s.Name != name {
			continue
		}
		cert, err := tls.X509KeyPair(s.Data[api.TLSCertKey], s.Data[api.TLSPrivateKeyKey])
		if err != nil {
			return nil, fmt.Errorf("TLS Secret %s/%s: %w", namespace, name, err)
		}
		if cert.Leaf == nil && len(cert.Certificate) > 0 {
			cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
		}
		return &cert, nil
	}
	return nil, fmt.Errorf("TLS Secret %s/%s is not on the node (the hub sends it with the snapshot)", namespace, name)
}

func hostOrAny(h string) string {
	if h == "" {
		return "*"
	}
	return h
}
