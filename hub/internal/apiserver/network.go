package apiserver

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
)

// Addresses at write time. A Service gets its cluster IP and node ports,
// and a node the pod subnet an operator gives it, in the transaction that
// writes it: the allocators are fed what the store holds in that same
// transaction, so two writes cannot take the same address, a clash is a
// 422 naming the field, and a refused write leaves nothing behind.

// WithNetwork sets the address plan (default ipam.DefaultConfig()).
func (s *Server) WithNetwork(cfg ipam.Config) *Server {
	s.network = cfg
	return s
}

// fieldErrors are problems of one object at its field paths, found when
// it is written; the caller locates them in its request.
type fieldErrors []fieldError

type fieldError struct{ field, msg string }

func (l fieldErrors) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.field + ": " + e.msg
	}
	return strings.Join(lines, "\n")
}

// located turns the problems of a document's object into manifest errors
// that name the document and, for a List item, the item.
func (l fieldErrors) located(d manifest.Document) manifest.ErrorList {
	out := make(manifest.ErrorList, len(l))
	for i, e := range l {
		f := e.field
		if d.Path != "" {
			f = d.Path + "." + f
		}
		out[i] = &manifest.Error{Source: d.Source, Document: d.Index, Field: f, Msg: e.msg}
	}
	return out
}

// networkKind reports whether obj is one whose network fields the hub
// fills in on every write, a patch's included.
func networkKind(obj api.Object) bool {
	switch obj.(type) {
	case *api.Service, *api.Node:
		return true
	}
	return false
}

// writeProblems is the answer to a single-object write refused by
// prepare or checkTargetPorts: a 422 with the problems, or err.
func writeProblems(err error, d manifest.Document, problems manifest.ErrorList) error {
	var fe fieldErrors
	switch {
	case errors.As(err, &fe):
		return invalid(fe.located(d))
	case err != nil:
		return err
	}
	return invalid(problems)
}

// addresses is what the store holds of the address plan, read once per
// write transaction, when the first Service or node needs it, and kept in
// step with what the transaction writes.
type addresses struct {
	tx    store.Tx
	cfg   ipam.Config
	rand  ipam.Rand
	ips   *ipam.ServiceIPs
	ports *ipam.NodePorts
	cidrs *ipam.NodeCIDRs
}

func (s *Server) addresses(tx store.Tx) *addresses {
	return &addresses{tx: tx, cfg: s.network, rand: s.rand}
}

// serviceOwner names a Service to the allocators.
func serviceOwner(svc *api.Service) string { return svc.Namespace + "/" + svc.Name }

// loadServices reads every Service's cluster IP and node ports.
func (a *addresses) loadServices() error {
	if a.ips != nil {
		return nil
	}
	svcs, err := store.ListShared[api.Service](a.tx, "")
	if err != nil {
		return fmt.Errorf("read Services: %w", err)
	}
	a.ips, a.ports = ipam.NewServiceIPs(a.cfg.ServiceCIDR, a.rand), ipam.NewNodePorts(a.cfg.NodePorts, a.rand)
	for _, svc := range svcs {
		owner := serviceOwner(svc)
		if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
			a.ips.Use(ip, owner)
		}
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				a.ports.Use(int(p.NodePort), protocolOf(p), owner)
			}
		}
	}
	return nil
}

// loadNodes reads every node's pod subnet.
func (a *addresses) loadNodes() error {
	if a.cidrs != nil {
		return nil
	}
	nodes, err := store.ListShared[api.Node](a.tx, "")
	if err != nil {
		return fmt.Errorf("read nodes: %w", err)
	}
	a.cidrs = ipam.NewNodeCIDRs(a.cfg.ClusterCIDR, a.cfg.NodeMaskSize)
	for _, n := range nodes {
		if p, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
			a.cidrs.Use(p, n.Name)
		}
	}
	return nil
}

func protocolOf(p api.ServicePort) api.Protocol {
	if p.Protocol == "" {
		return api.ProtocolTCP
	}
	return p.Protocol
}

// reserve holds, before an apply allocates anything, the addresses and
// node ports its Services ask for, so that an allocation for an earlier
// document cannot take what a later one names. What cannot be held is
// reported when its document is written.
func (a *addresses) reserve(docs []manifest.Document) error {
	for _, d := range docs {
		svc, ok := d.Object.(*api.Service)
		if !ok {
			continue
		}
		if err := a.loadServices(); err != nil {
			return err
		}
		owner := serviceOwner(svc)
		if ip, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil {
			_ = a.ips.Request(ip, owner)
		}
		if svc.Spec.Type == api.ServiceTypeNodePort {
			for _, p := range svc.Spec.Ports {
				if p.NodePort != 0 {
					_ = a.ports.Request(int(p.NodePort), protocolOf(p), owner)
				}
			}
		}
	}
	return nil
}

// prepare fills in and checks what the hub owns of an object about to be
// written over old (nil for a new object): a Service's addresses, a
// node's pod subnet. Problems of the object are fieldErrors.
func (a *addresses) prepare(old, obj api.Object) error {
	switch o := obj.(type) {
	case *api.Service:
		oldSvc, _ := old.(*api.Service)
		return a.prepareService(oldSvc, o)
	case *api.Node:
		oldNode, _ := old.(*api.Node)
		return a.prepareNode(oldNode, o)
	}
	return nil
}

// prepareService gives svc its cluster IP and node ports. On an update,
// the cluster IP cannot change (as in Kubernetes); one left out is kept,
// and so is the node port of a port left without one, matched by name.
// A node port may change, as in Kubernetes: the old one is released.
func (a *addresses) prepareService(old, svc *api.Service) error {
	if err := a.loadServices(); err != nil {
		return err
	}
	var errs fieldErrors
	spec := &svc.Spec
	if old != nil {
		was := old.Spec.ClusterIP
		switch {
		case was == "":
		case spec.ClusterIP == "":
			spec.ClusterIP, spec.ClusterIPs = was, []string{was}
		case spec.ClusterIP != was:
			errs = append(errs, fieldError{"spec.clusterIP", fmt.Sprintf("field is immutable: the Service has %s (delete it and apply it again to change its address)", was)})
		}
		if old.Spec.Type == api.ServiceTypeNodePort && spec.Type == api.ServiceTypeNodePort {
			keepNodePorts(old.Spec.Ports, spec.Ports)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	owner := serviceOwner(svc)
	a.ips.Release(owner)
	a.ports.Release(owner)

	switch ip := spec.ClusterIP; {
	case spec.IsHeadless():
		spec.ClusterIPs = []string{api.ClusterIPNone}
	case ip == "":
		got, err := a.ips.Allocate(owner)
		if err != nil {
			errs = append(errs, fieldError{"spec.clusterIP", allocMessage(err)})
			break
		}
		spec.ClusterIP, spec.ClusterIPs = got.String(), []string{got.String()}
	default:
		addr, err := netip.ParseAddr(ip) // validation refused anything else
		if err == nil {
			err = a.ips.Request(addr, owner)
		}
		if err != nil {
			errs = append(errs, fieldError{"spec.clusterIP", allocMessage(err)})
		}
	}
	if spec.Type == api.ServiceTypeNodePort {
		errs = append(errs, a.nodePorts(owner, spec.Ports)...)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// keepNodePorts gives each port of ports without a node port the one the
// port of the same name had in old, unless another port now asks for it.
func keepNodePorts(old, ports []api.ServicePort) {
	byName := map[string]int32{}
	for _, p := range old {
		byName[p.Name] = p.NodePort
	}
	asked := map[int32]bool{}
	for _, p := range ports {
		asked[p.NodePort] = true
	}
	for i := range ports {
		if np := byName[ports[i].Name]; ports[i].NodePort == 0 && np != 0 && !asked[np] {
			ports[i].NodePort = np
		}
	}
}

// nodePorts gives a NodePort Service's ports their node ports: the ones
// they ask for, and for the others one per port number, free for every
// protocol the Service serves on that number (53/TCP and 53/UDP share
// one), as Kubernetes does.
func (a *addresses) nodePorts(owner string, ports []api.ServicePort) fieldErrors {
	var errs fieldErrors
	byPort := map[int32]int32{} // service port → its node port
	for i, p := range ports {
		if p.NodePort == 0 {
			continue
		}
		if err := a.ports.Request(int(p.NodePort), protocolOf(p), owner); err != nil {
			errs = append(errs, fieldError{fmt.Sprintf("spec.ports[%d].nodePort", i), allocMessage(err)})
			continue
		}
		if byPort[p.Port] == 0 {
			byPort[p.Port] = p.NodePort
		}
	}
	// The ports without one, grouped by number, in order.
	var numbers []int32
	groups := map[int32][]int{}
	for i, p := range ports {
		if p.NodePort == 0 {
			if groups[p.Port] == nil {
				numbers = append(numbers, p.Port)
			}
			groups[p.Port] = append(groups[p.Port], i)
		}
	}
	for _, n := range numbers {
		idx := groups[n]
		protocols := make([]api.Protocol, len(idx))
		for j, i := range idx {
			protocols[j] = protocolOf(ports[i])
		}
		np := int(byPort[n])
		if np != 0 && a.ports.RequestAll(np, protocols, owner) != nil {
			np = 0 // the number asked for with one protocol is taken for another
		}
		if np == 0 {
			got, err := a.ports.Allocate(owner, protocols...)
			if err != nil {
				errs = append(errs, fieldError{fmt.Sprintf("spec.ports[%d].nodePort", idx[0]), allocMessage(err)})
				continue
			}
			np = got
		}
		for _, i := range idx {
			ports[i].NodePort = int32(np)
		}
	}
	return errs
}

// prepareNode checks a pod subnet an operator gives a node: it cannot
// change once set (one left out is kept), and a new one must be one of
// the cluster CIDR's node subnets and free.
func (a *addresses) prepareNode(old, n *api.Node) error {
	spec := &n.Spec
	if old != nil && old.Spec.PodCIDR != "" {
		switch was := old.Spec.PodCIDR; {
		case spec.PodCIDR == "":
			spec.PodCIDR, spec.PodCIDRs = was, old.Spec.PodCIDRs
			return nil
		case spec.PodCIDR != was:
			return fieldErrors{{"spec.podCIDR", fmt.Sprintf("field is immutable once set: the node has %s", was)}}
		default:
			return nil
		}
	}
	if spec.PodCIDR == "" {
		return nil
	}
	if err := a.loadNodes(); err != nil {
		return err
	}
	p, err := netip.ParsePrefix(spec.PodCIDR) // validation refused anything else
	if err == nil {
		err = a.cidrs.Request(p, n.Name)
	}
	if err != nil {
		return fieldErrors{{"spec.podCIDR", allocMessage(err)}}
	}
	return nil
}

// allocMessage is an allocator's refusal, as the field's message.
func allocMessage(err error) string {
	var ae *ipam.Error
	if errors.As(err, &ae) {
		return ae.Msg
	}
	return err.Error()
}

// checkTargetPorts refuses a write that leaves a Service with a targetPort
// name that no container of the pods it selects declares (for the
// Service's protocol): such a port would never have an endpoint. The pods
// are those the DaemonSets and Deployments of the Service's namespace
// make, as the store holds them at the end of the transaction, this
// write's objects included. A Service that selects no workload yet is
// accepted, since its pods may be applied later. Each problem is reported
// at the Service's targetPort when the Service is among written, else at
// the containers of the workload that was written.
func checkTargetPorts(tx store.Tx, written []manifest.Document) (manifest.ErrorList, error) {
	type key struct{ kind, namespace, name string }
	docs := map[key]manifest.Document{}
	namespaces := map[string]bool{}
	for _, d := range written {
		switch d.Object.(type) {
		case *api.Service, *api.Deployment, *api.DaemonSet:
			m := d.Object.GetObjectMeta()
			docs[key{d.Object.GetTypeMeta().Kind, m.Namespace, m.Name}] = d
			namespaces[m.Namespace] = true
		}
	}
	var out manifest.ErrorList
	for _, ns := range sortedKeys(namespaces) {
		svcs, err := store.ListShared[api.Service](tx, ns)
		if err != nil {
			return nil, fmt.Errorf("read Services: %w", err)
		}
		workloads, err := podTemplates(tx, ns)
		if err != nil {
			return nil, err
		}
		for _, svc := range svcs {
			if len(svc.Spec.Selector) == 0 {
				continue
			}
			var selected []workloadTemplate
			for _, w := range workloads {
				if matchesSelector(svc.Spec.Selector, w.template.Labels) {
					selected = append(selected, w)
				}
			}
			if len(selected) == 0 {
				continue
			}
			svcDoc, svcWritten := docs[key{api.KindService, ns, svc.Name}]
			for i, p := range svc.Spec.Ports {
				if !p.TargetPort.IsString {
					continue
				}
				problem := missingPortName(p.TargetPort.StrVal, protocolOf(p), selected)
				if problem == "" {
					continue
				}
				path := fmt.Sprintf("spec.ports[%d].targetPort", i)
				if svcWritten {
					out = append(out, fieldErrors{{path, problem}}.located(svcDoc)...)
					continue
				}
				for _, w := range selected {
					if d, ok := docs[key{w.kind, ns, w.name}]; ok {
						msg := fmt.Sprintf("Service %s/%s targets port %q (%s) of these pods, which no container declares for %s", ns, svc.Name, p.TargetPort.StrVal, path, protocolOf(p))
						out = append(out, fieldErrors{{"spec.template.spec.containers", msg}}.located(d)...)
						break
					}
				}
			}
		}
	}
	return out, nil
}

// workloadTemplate is the pod template of a DaemonSet or Deployment.
type workloadTemplate struct {
	kind, name string
	template   *api.PodTemplateSpec
}

func podTemplates(tx store.Tx, ns string) ([]workloadTemplate, error) {
	dss, err := store.ListShared[api.DaemonSet](tx, ns)
	if err != nil {
		return nil, fmt.Errorf("read DaemonSets: %w", err)
	}
	deps, err := store.ListShared[api.Deployment](tx, ns)
	if err != nil {
		return nil, fmt.Errorf("read Deployments: %w", err)
	}
	var out []workloadTemplate
	for _, d := range dss {
		out = append(out, workloadTemplate{api.KindDaemonSet, d.Name, &d.Spec.Template})
	}
	for _, d := range deps {
		out = append(out, workloadTemplate{api.KindDeployment, d.Name, &d.Spec.Template})
	}
	return out, nil
}

// matchesSelector reports whether labels has every pair of a Service's
// selector.
func matchesSelector(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// missingPortName says why no container of the selected workloads
// declares a port named name for protocol, or "" if one does.
func missingPortName(name string, protocol api.Protocol, selected []workloadTemplate) string {
	var elsewhere []string
	for _, w := range selected {
		for _, c := range w.template.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name != name {
					continue
				}
				p := cp.Protocol
				if p == "" {
					p = api.ProtocolTCP
				}
				if p == protocol {
					return ""
				}
				elsewhere = append(elsewhere, fmt.Sprintf("container %s of %s declares it for %s", c.Name, workloadName(w), p))
			}
		}
	}
	names := make([]string, len(selected))
	for i, w := range selected {
		names[i] = workloadName(w)
	}
	msg := fmt.Sprintf("no container of the pods this Service selects (%s) declares a %s port named %q", strings.Join(names, ", "), protocol, name)
	if len(elsewhere) > 0 {
		msg += " (" + strings.Join(elsewhere, "; ") + ")"
	}
	return msg
}

func workloadName(w workloadTemplate) string {
	if w.kind == api.KindDaemonSet {
		return "daemonset.apps/" + w.name
	}
	return "deployment.apps/" + w.name
}
