// Package ingress decides where and how the fleet serves its Ingresses:
// which IngressClass each belongs to, which nodes that class selects, the
// Service port behind each backend, and which Ingress owns a host and
// path two of them claim (Resolve, a pure function that dispatch and the
// status controller share). Its controller writes each Ingress's
// status.loadBalancer.ingress (the serving nodes' addresses) and records
// what keeps part of an Ingress from being served as Warning events on it.
package ingress

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Event reasons, for the problems Resolve finds.
const (
	ReasonConflict         = "RouteConflict"       // an older Ingress claims the host and path
	ReasonBackendNotFound  = "BackendNotFound"     // no such Service, or no such port
	ReasonClassNotFound    = "IngressClassMissing" // the class it names does not exist
	ReasonOtherController  = "NotFlotillaClass"    // its class belongs to another controller
	ReasonSecretNotFound   = "TLSSecretMissing"    // a TLS entry's Secret does not exist
	ReasonSecretNotTLS     = "TLSSecretNotTLS"     // … or is not of type kubernetes.io/tls
	ReasonSeveralDefaults  = "SeveralDefaultClasses"
	ReasonNoNodes          = "NoIngressNodes" // the class selects no node
	ReasonBadNodeSelection = "BadNodeSelector"
)

// Input is what Resolve decides from. It reads the objects and does not
// change them.
type Input struct {
	Ingresses []*api.Ingress
	Classes   []*api.IngressClass
	Nodes     []*api.Node
	// Service finds a Service (nil: none of that name).
	Service func(namespace, name string) *api.Service
	// SecretType is the type of a Secret, and whether it exists.
	SecretType func(namespace, name string) (string, bool)
}

// Plan is what Resolve decided: every Ingress Flotilla serves, oldest
// first, and the ones it does not serve with why.
type Plan struct {
	Served []*Served
	// NotServed are the Ingresses of no class Flotilla serves, each with
	// its problem (none when another controller's class is the default).
	NotServed []*Served
}

// Served is one Ingress as Resolve decided it.
type Served struct {
	Ingress *api.Ingress
	// Class is the IngressClass that serves it, nil for the default
	// selection (no class is the default).
	Class *api.IngressClass
	// Nodes are the names of the nodes that serve it, sorted; Addresses,
	// their InternalIPs (the ones that report one), sorted.
	Nodes     []string
	Addresses []string
	// Wire is the Ingress as its nodes receive it: backends resolved,
	// routes other Ingresses own left out.
	Wire wire.Ingress
	// Secrets are the TLS Secrets (in the Ingress's namespace) Wire
	// names, sorted.
	Secrets []string
	// Problems keep part of it from being served; each becomes a
	// Warning event on it.
	Problems []Problem
}

// Problem is one reason part of an Ingress is not served.
type Problem struct {
	Reason, Message string
}

func (s *Served) problem(reason, format string, args ...any) {
	s.Problems = append(s.Problems, Problem{Reason: reason, Message: fmt.Sprintf(format, args...)})
}

// Older orders Ingresses by age: creation time, then namespace and name.
// An older Ingress owns a host and path a newer one claims too.
func Older(a, b *api.Ingress) int {
	return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
		cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// Resolve decides every Ingress, in three steps: its class and nodes
// (classOf, nodesOf), its routes and certificates as its nodes receive
// them (wireOf), then which Ingress owns what two claim (claims). A host
// and path, the default backend and a TLS host belong to the oldest
// Ingress that claims them, whatever its class.
func Resolve(in Input) Plan {
	classes := make(map[string]*api.IngressClass, len(in.Classes))
	for _, c := range in.Classes {
		classes[c.Name] = c
	}
	def, defaults := defaultClass(in.Classes)
	ings := slices.Clone(in.Ingresses)
	slices.SortFunc(ings, Older)
	var plan Plan
	for _, ing := range ings {
		s := &Served{Ingress: ing}
		class, ok := classOf(s, classes, def, defaults)
		if !ok {
			if len(s.Problems) > 0 {
				plan.NotServed = append(plan.NotServed, s)
			}
			continue
		}
		s.Class = class
		nodesOf(s, in.Nodes)
		wireOf(s, in)
		plan.Served = append(plan.Served, s)
	}
	claims(plan.Served)
	return plan
}

// defaultClass is the default class: the newest of the classes annotated
// as such (Kubernetes' admission takes the newest too), with the names of
// all of them when there are several.
func defaultClass(classes []*api.IngressClass) (*api.IngressClass, []string) {
	var def *api.IngressClass
	var names []string
	for _, c := range classes {
		if !c.IsDefaultClass() {
			continue
		}
		names = append(names, c.Name)
		if def == nil || c.CreationTimestamp.After(def.CreationTimestamp.Time) ||
			(c.CreationTimestamp.Equal(def.CreationTimestamp.Time) && c.Name > def.Name) {
			def = c
		}
	}
	slices.Sort(names)
	return def, names
}

// classOf is the class that serves the Ingress (nil: the default
// selection), and whether Flotilla serves it at all.
func classOf(s *Served, classes map[string]*api.IngressClass, def *api.IngressClass, defaults []string) (*api.IngressClass, bool) {
	name := s.Ingress.ClassName()
	class := def
	if name != "" {
		class = classes[name]
		if class == nil {
			s.problem(ReasonClassNotFound, "IngressClass %q not found: the Ingress is not served", name)
			return nil, false
		}
	} else if len(defaults) > 1 {
		s.problem(ReasonSeveralDefaults, "several IngressClasses are the default (%s): the newest, %s, serves the Ingress",
			strings.Join(defaults, ", "), def.Name)
	}
	if class != nil && class.Spec.Controller != api.IngressController {
		if name != "" {
			s.problem(ReasonOtherController, "IngressClass %q is controller %q's, not %s: Flotilla does not serve the Ingress",
				class.Name, class.Spec.Controller, api.IngressController)
		}
		return nil, false
	}
	return class, true
}

// nodesOf selects the nodes that serve the Ingress, and their addresses.
func nodesOf(s *Served, nodes []*api.Node) {
	sel, err := api.IngressNodeSelector(s.Class)
	if err != nil {
		s.problem(ReasonBadNodeSelection, "IngressClass %q: annotation %s: %v: no node serves the Ingress",
			s.Class.Name, api.AnnotationIngressNodeSelector, err)
		return
	}
	for _, n := range nodes {
		if !sel.Matches(n.Labels) {
			continue
		}
		s.Nodes = append(s.Nodes, n.Name)
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" && a.Address != "" {
				s.Addresses = append(s.Addresses, a.Address)
				break
			}
		}
	}
	slices.Sort(s.Nodes)
	slices.Sort(s.Addresses)
	s.Addresses = slices.Compact(s.Addresses)
	if len(s.Nodes) == 0 {
		what := fmt.Sprintf("labelled %s=true", api.LabelIngressNode)
		if s.Class != nil {
			what = fmt.Sprintf("that IngressClass %q selects (%s)", s.Class.Name, sel)
		}
		s.problem(ReasonNoNodes, "no node %s: the Ingress is not served", what)
	}
}

// wireOf builds the Ingress as its nodes receive it: paths typed as the
// agent matches them, backends resolved to a Service port, and the TLS
// entries whose Secret is a kubernetes.io/tls Secret.
func wireOf(s *Served, in Input) {
	ing := s.Ingress
	w := wire.Ingress{Namespace: ing.Namespace, Name: ing.Name, BackendProtocol: wire.BackendHTTP}
	if ing.Annotations[api.AnnotationBackendProtocol] == api.BackendProtocolH2C {
		w.BackendProtocol = wire.BackendH2C
	}
	missing := map[string]bool{} // each backend problem once
	backend := func(b *api.IngressBackend) wire.IngressBackend {
		wb, problem := resolveBackend(ing.Namespace, b, in.Service)
		if problem != "" && !missing[problem] {
			missing[problem] = true
			s.problem(ReasonBackendNotFound, "%s: requests to it are answered 503", problem)
		}
		return wb
	}
	if ing.Spec.DefaultBackend != nil {
		b := backend(ing.Spec.DefaultBackend)
		w.DefaultBackend = &b
	}
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		wr := wire.IngressRule{Host: strings.ToLower(r.Host)}
		for _, p := range r.HTTP.Paths {
			if p.PathType == nil {
				continue // refused at apply
			}
			wp := wire.IngressPath{Path: p.Path, Type: wire.PathPrefix, Backend: backend(&p.Backend)}
			if *p.PathType == api.PathTypeExact {
				wp.Type = wire.PathExact
			}
			if wp.Path == "" {
				wp.Path = "/"
			}
			wr.Paths = append(wr.Paths, wp)
		}
		if len(wr.Paths) > 0 {
			w.Rules = append(w.Rules, wr)
		}
	}
	for _, t := range ing.Spec.TLS {
		typ, ok := in.SecretType(ing.Namespace, t.SecretName)
		hosts := strings.Join(t.Hosts, ", ")
		switch {
		case !ok:
			s.problem(ReasonSecretNotFound, "TLS Secret %q not found: HTTPS for %s is not served", t.SecretName, hosts)
			continue
		case typ != api.SecretTypeTLS:
			s.problem(ReasonSecretNotTLS, "TLS Secret %q is of type %s, not %s: HTTPS for %s is not served", t.SecretName, typ, api.SecretTypeTLS, hosts)
			continue
		}
		wt := wire.IngressTLS{SecretName: t.SecretName}
		for _, h := range t.Hosts {
			wt.Hosts = append(wt.Hosts, strings.ToLower(h))
		}
		w.TLS = append(w.TLS, wt)
		s.Secrets = append(s.Secrets, t.SecretName)
	}
	slices.Sort(s.Secrets)
	s.Secrets = slices.Compact(s.Secrets)
	s.Wire = w
}

// resolveBackend finds the Service port a backend names; it returns the
// problem when there is none.
func resolveBackend(namespace string, b *api.IngressBackend, service func(ns, name string) *api.Service) (wire.IngressBackend, string) {
	if b.Service == nil {
		return wire.IngressBackend{Missing: "no Service"}, "a backend names no Service" // refused at apply
	}
	wb := wire.IngressBackend{Service: b.Service.Name}
	svc := service(namespace, b.Service.Name)
	if svc == nil {
		wb.Missing = fmt.Sprintf("service %q not found", b.Service.Name)
		return wb, fmt.Sprintf("Service %q not found", namespace+"/"+b.Service.Name)
	}
	port := b.Service.Port
	for _, sp := range svc.Spec.Ports {
		if sp.Protocol != "" && sp.Protocol != api.ProtocolTCP {
			continue
		}
		if (port.Name != "" && sp.Name == port.Name) || (port.Name == "" && sp.Port == port.Number) {
			wb.PortName, wb.Port = sp.Name, sp.Port
			return wb, ""
		}
	}
	wb.Missing = fmt.Sprintf("service %q has no TCP port %s", b.Service.Name, port)
	return wb, fmt.Sprintf("Service %q has no TCP port %s", namespace+"/"+b.Service.Name, port)
}

// claims gives each host and path, the default backend and each TLS host
// to the oldest served Ingress that claims it, and takes it out of the
// newer ones' Wire, with a problem naming the owner.
func claims(served []*Served) {
	routes := map[string]*Served{}
	tlsHosts := map[string]*Served{}
	var defaultOwner *Served
	for _, s := range served {
		w := &s.Wire
		if w.DefaultBackend != nil {
			if defaultOwner != nil {
				s.problem(ReasonConflict, "the default backend is the older Ingress %s's: this one's is not served", ref(defaultOwner))
				w.DefaultBackend = nil
			} else {
				defaultOwner = s
			}
		}
		rules := w.Rules[:0]
		for _, r := range w.Rules {
			paths := r.Paths[:0]
			for _, p := range r.Paths {
				k := r.Host + " " + routeKey(p)
				if owner := routes[k]; owner != nil && owner != s {
					s.problem(ReasonConflict, "host %q path %q (%s) is routed by the older Ingress %s: this one's route is not served",
						hostOrAny(r.Host), p.Path, p.Type, ref(owner))
					continue
				}
				routes[k] = s
				paths = append(paths, p)
			}
			if len(paths) > 0 {
				r.Paths = paths
				rules = append(rules, r)
			}
		}
		w.Rules = rules
		tls := w.TLS[:0]
		for _, t := range w.TLS {
			if len(t.Hosts) == 0 {
				// No hosts: the certificate for names no entry lists
				// (and clients that send none).
				if owner := tlsHosts[""]; owner != nil && owner != s {
					s.problem(ReasonConflict, "the certificate for hosts no TLS entry names is the older Ingress %s's: this one's Secret %q is not used for them",
						ref(owner), t.SecretName)
					continue
				}
				tlsHosts[""] = s
				tls = append(tls, t)
				continue
			}
			hosts := t.Hosts[:0]
			for _, h := range t.Hosts {
				if owner := tlsHosts[h]; owner != nil && owner != s {
					s.problem(ReasonConflict, "the certificate for %q is the older Ingress %s's: this one's Secret %q is not used for it",
						h, ref(owner), t.SecretName)
					continue
				}
				tlsHosts[h] = s
				hosts = append(hosts, h)
			}
			if len(hosts) > 0 {
				t.Hosts = hosts
				tls = append(tls, t)
			}
		}
		w.TLS = tls
		if len(w.TLS) == 0 {
			w.TLS = nil
		}
		if len(w.Rules) == 0 {
			w.Rules = nil
		}
		s.Secrets = s.Secrets[:0]
		for _, t := range w.TLS {
			s.Secrets = append(s.Secrets, t.SecretName)
		}
		slices.Sort(s.Secrets)
		s.Secrets = slices.Compact(s.Secrets)
	}
}

// routeKey identifies what a path claims: two paths with the same key
// match the same requests (as apply's check within one Ingress has it).
func routeKey(p wire.IngressPath) string {
	return manifest.IngressRouteKey(api.PathType(p.Type), p.Path)
}

func ref(s *Served) string { return s.Ingress.Namespace + "/" + s.Ingress.Name }

func hostOrAny(h string) string {
	if h == "" {
		return "*"
	}
	return h
}
