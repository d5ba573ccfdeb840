package dispatch

import (
	"bytes"
	"maps"
	"slices"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/ingress"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The Ingress part of the snapshots. A node that serves Ingresses (its
// class selects it: ingress.Resolve decides) is sent them, resolved, and
// the TLS Secrets they name, and no other node is sent either. Resolving
// reads every Ingress, class and node, so it is done once per pass, and
// only when something it reads changed (ingressState.stale): an Ingress's
// spec, a class, a node's labels or address, a Service, a Secret. Then the
// nodes whose part changed get a new snapshot.

// ingressState is what dispatch keeps of the Ingresses.
type ingressState struct {
	ingresses map[store.Key]*api.Ingress
	classes   map[string]*api.IngressClass
	// nodes are the Nodes as Resolve reads them (labels, addresses).
	nodes map[string]*api.Node
	// stale: byNode must be worked out again before the next snapshot.
	stale bool
	// byNode is each serving node's part of its snapshot.
	byNode map[string]*nodeIngress
}

// nodeIngress is one node's Ingresses and the TLS Secrets they name.
type nodeIngress struct {
	ingresses []wire.Ingress
	secrets   []store.Key
	// raw is ingresses' JSON: what identifies the part in the node's
	// content hash, and tells whether it changed.
	raw []byte
}

func newIngressState() ingressState {
	return ingressState{
		ingresses: map[store.Key]*api.Ingress{}, classes: map[string]*api.IngressClass{},
		nodes: map[string]*api.Node{}, byNode: map[string]*nodeIngress{},
	}
}

// handleIngress updates a cached Ingress or IngressClass.
func (d *Dispatcher) handleIngress(ev store.Event) {
	var in *api.Ingress
	var class *api.IngressClass
	if ev.Type == store.Put {
		err := d.opts.Store.View(func(tx store.Tx) error {
			var err error
			if ev.Key.Kind == api.KindIngress {
				in, err = store.GetShared[api.Ingress](tx, ev.Key.Namespace, ev.Key.Name)
			} else {
				class, err = store.GetShared[api.IngressClass](tx, "", ev.Key.Name)
			}
			return err
		})
		if err != nil && !store.IsNotFound(err) {
			d.log.Error("read "+ev.Key.Kind, "key", ev.Key, "err", err)
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ev.Key.Kind == api.KindIngress {
		d.setIngress(ev.Key, in)
	} else {
		d.setIngressClass(ev.Key.Name, class)
	}
}

// setIngress records an Ingress (nil: gone). A new status alone changes
// nothing nodes are sent. The caller holds d.mu.
func (d *Dispatcher) setIngress(key store.Key, in *api.Ingress) {
	old := d.ingress.ingresses[key]
	if in == nil {
		if old == nil {
			return
		}
		delete(d.ingress.ingresses, key)
	} else {
		d.ingress.ingresses[key] = in
		if old != nil && old.UID == in.UID && controller.Equal(old.Spec, in.Spec) && maps.Equal(old.Annotations, in.Annotations) &&
			old.CreationTimestamp.Equal(in.CreationTimestamp.Time) {
			return
		}
	}
	d.ingress.stale = true
}

// setIngressClass records a class (nil: gone). The caller holds d.mu.
func (d *Dispatcher) setIngressClass(name string, c *api.IngressClass) {
	if c == nil {
		if _, ok := d.ingress.classes[name]; !ok {
			return
		}
		delete(d.ingress.classes, name)
	} else {
		d.ingress.classes[name] = c
	}
	d.ingress.stale = true
}

// setIngressNode records what Resolve reads of a node (nil: gone); a
// change matters only while there are Ingresses. The caller holds d.mu.
func (d *Dispatcher) setIngressNode(name string, n *api.Node) {
	old := d.ingress.nodes[name]
	if n == nil {
		if old == nil {
			return
		}
		delete(d.ingress.nodes, name)
	} else {
		d.ingress.nodes[name] = n
		if old != nil && maps.Equal(old.Labels, n.Labels) && internalIP(old) == internalIP(n) {
			return
		}
	}
	if len(d.ingress.ingresses) > 0 {
		d.ingress.stale = true
	}
}

// ingressInputsChanged says that a Service or a Secret changed, which
// may change what the Ingresses' nodes are sent. The caller holds d.mu.
func (d *Dispatcher) ingressInputsChanged() {
	if len(d.ingress.ingresses) > 0 || len(d.ingress.byNode) > 0 {
		d.ingress.stale = true
	}
}

// ingressSecretChanged says that a Secret changed: the nodes whose
// Ingresses name it are sent it again, and the Ingresses are resolved
// again (it may have come, gone or changed type). The caller holds d.mu.
func (d *Dispatcher) ingressSecretChanged(key store.Key) {
	d.ingressInputsChanged()
	for name, ni := range d.ingress.byNode {
		if slices.Contains(ni.secrets, key) {
			d.markDirty(d.node(name))
		}
	}
}

// refreshIngressLocked resolves the Ingresses again if anything they
// depend on changed, and marks the nodes whose part changed. flush calls
// it before it takes the queue, so they go out in the same pass. The
// caller holds d.mu.
func (d *Dispatcher) refreshIngressLocked() {
	if !d.ingress.stale {
		return
	}
	d.ingress.stale = false
	in := ingress.Input{
		Ingresses: make([]*api.Ingress, 0, len(d.ingress.ingresses)),
		Classes:   make([]*api.IngressClass, 0, len(d.ingress.classes)),
		Nodes:     make([]*api.Node, 0, len(d.ingress.nodes)),
		Service: func(ns, name string) *api.Service {
			if c := d.services[store.Key{Kind: api.KindService, Namespace: ns, Name: name}]; c != nil {
				return c.src
			}
			return nil
		},
		SecretType: func(ns, name string) (string, bool) {
			if s := d.secrets[store.Key{Kind: api.KindSecret, Namespace: ns, Name: name}]; s != nil {
				return s.Type, true
			}
			return "", false
		},
	}
	for _, i := range d.ingress.ingresses {
		in.Ingresses = append(in.Ingresses, i)
	}
	for _, c := range d.ingress.classes {
		in.Classes = append(in.Classes, c)
	}
	for _, n := range d.ingress.nodes {
		in.Nodes = append(in.Nodes, n)
	}
	byNode := map[string]*nodeIngress{}
	for _, s := range ingress.Resolve(in).Served {
		for _, name := range s.Nodes {
			ni := byNode[name]
			if ni == nil {
				ni = &nodeIngress{}
				byNode[name] = ni
			}
			ni.ingresses = append(ni.ingresses, s.Wire)
			for _, sec := range s.Secrets {
				ni.secrets = append(ni.secrets, store.Key{Kind: api.KindSecret, Namespace: s.Ingress.Namespace, Name: sec})
			}
		}
	}
	for name, ni := range byNode {
		ni.raw = mustJSON(ni.ingresses)
		if old := d.ingress.byNode[name]; old == nil || !bytes.Equal(old.raw, ni.raw) || !slices.Equal(old.secrets, ni.secrets) {
			d.markDirty(d.node(name))
		}
	}
	for name := range d.ingress.byNode {
		if byNode[name] == nil {
			d.markDirty(d.node(name))
		}
	}
	d.ingress.byNode = byNode
	if n := len(byNode); n > 0 {
		d.log.Debug("ingresses resolved", "ingresses", len(in.Ingresses), "nodes", n)
	}
}

// addIngressLocked puts ns's Ingresses in its snapshot, and the TLS
// Secrets they name with the Secrets its pods use (have, by key). The
// caller holds d.mu.
func (d *Dispatcher) addIngressLocked(ns *nodeState, snap *wire.Snapshot, have map[store.Key]bool) {
	ni := d.ingress.byNode[ns.name]
	if ni == nil || !ns.exists {
		return
	}
	snap.Ingresses = ni.ingresses
	for _, k := range ni.secrets {
		if s := d.secrets[k]; s != nil && !have[k] {
			have[k] = true
			snap.Secrets = append(snap.Secrets, *s)
		}
	}
}

// resyncIngress replaces the cached Ingresses and classes with the
// store's. The caller holds d.mu.
func (d *Dispatcher) resyncIngress(ings []*api.Ingress, classes []*api.IngressClass) {
	seen := make(map[store.Key]bool, len(ings))
	for _, in := range ings {
		k := store.KeyOf(in)
		seen[k] = true
		d.setIngress(k, in)
	}
	for k := range d.ingress.ingresses {
		if !seen[k] {
			d.setIngress(k, nil)
		}
	}
	names := make(map[string]bool, len(classes))
	for _, c := range classes {
		names[c.Name] = true
		if old := d.ingress.classes[c.Name]; old != c {
			d.setIngressClass(c.Name, c)
		}
	}
	for name := range d.ingress.classes {
		if !names[name] {
			d.setIngressClass(name, nil)
		}
	}
}
