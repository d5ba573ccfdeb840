package dispatch

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/desired"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// nodeState is everything dispatch knows of one node: the pods bound to
// it, the record of the revision last numbered for it, what its agent
// reports, and how its snapshot went out.
type nodeState struct {
	name string
	// pods are the node's pods' snapshot entries.
	pods map[store.Key]*cachedPod
	// record is the last numbered (and stored) record; nil: none yet.
	record *desired.Record
	// observed is the revision the agent reports running; ready, that the
	// node is Ready and online.
	observed uint64
	ready    bool
	// published is the revision this process last published to the node,
	// sentAt when, and resends how often it was sent again since, for want
	// of an acknowledgement.
	published uint64
	sentAt    time.Time
	resends   int
	// site is the key of the node's site; exists, that it has a Node
	// object; ip and podCIDR, its InternalIP and pod subnet (network.go).
	site        string
	exists      bool
	ip, podCIDR string
	// dirty: the node's content may have changed, so its snapshot must be
	// built and compared with its record. unpublished: its last publish
	// failed, or a resend is due, so its recorded revision must be sent
	// (again). A node with either is in Dispatcher.queue.
	dirty, unpublished bool
}

// cachedPod is one pod as its node's snapshot holds it.
type cachedPod struct {
	node string
	pod  wire.SnapshotPod
	// src is the store's shared object the entry was made from: the same
	// object is the same version, so a resync skips it.
	src *api.Pod
	// raw is pod's JSON, the pod's part of its node's content hash.
	raw []byte
	// secrets and configMaps are the names (in the pod's namespace) its
	// spec refers to.
	secrets, configMaps []string
}

// node returns name's state, making it. The caller holds d.mu.
func (d *Dispatcher) node(name string) *nodeState {
	ns := d.nodes[name]
	if ns == nil {
		ns = &nodeState{name: name, pods: map[store.Key]*cachedPod{}}
		d.nodes[name] = ns
		d.moveToSite(ns, siteKey(name, nil))
	}
	return ns
}

// markDirty queues ns for a pass that builds its snapshot and numbers it
// if it changed. The caller holds d.mu.
func (d *Dispatcher) markDirty(ns *nodeState) {
	ns.dirty = true
	d.queue[ns.name] = ns
}

// markUnpublished queues ns for its recorded revision to be published
// again. The caller holds d.mu.
func (d *Dispatcher) markUnpublished(ns *nodeState) {
	ns.unpublished = true
	d.queue[ns.name] = ns
}

// handle updates the cache for one store event.
func (d *Dispatcher) handle(ev store.Event) {
	if ev.Type == store.Overflow {
		if err := d.resync(); err != nil {
			d.log.Error("resync after overflow", "err", err)
		}
		return
	}
	switch ev.Key.Kind {
	case api.KindPod:
		d.handlePod(ev)
	case api.KindNode:
		d.handleNode(ev)
	case api.KindSecret, api.KindConfigMap:
		d.handleConfig(ev)
	case api.KindService, api.KindEndpoints:
		d.handleNetwork(ev)
	case api.KindIngress, api.KindIngressClass:
		d.handleIngress(ev)
	}
}

// handleNetwork updates a cached Service or Endpoints object and marks
// the nodes whose snapshots it changes.
func (d *Dispatcher) handleNetwork(ev store.Event) {
	var svc *api.Service
	var ep *api.Endpoints
	if ev.Type == store.Put {
		err := d.opts.Store.View(func(tx store.Tx) error {
			var err error
			// Read only: the cache keeps what it builds from them.
			if ev.Key.Kind == api.KindService {
				svc, err = store.GetShared[api.Service](tx, ev.Key.Namespace, ev.Key.Name)
			} else {
				ep, err = store.GetShared[api.Endpoints](tx, ev.Key.Namespace, ev.Key.Name)
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
	if ev.Key.Kind == api.KindService {
		d.setService(ev.Key, svc)
	} else {
		d.setEndpoints(ev.Key, ep)
	}
}

// handleConfig updates a cached Secret or ConfigMap and marks the nodes
// whose pods use it.
func (d *Dispatcher) handleConfig(ev store.Event) {
	var sec *api.Secret
	var cm *api.ConfigMap
	if ev.Type == store.Put {
		err := d.opts.Store.View(func(tx store.Tx) error {
			var err error
			if ev.Key.Kind == api.KindSecret {
				sec, err = store.Get[api.Secret](tx, ev.Key.Namespace, ev.Key.Name)
			} else {
				cm, err = store.Get[api.ConfigMap](tx, ev.Key.Namespace, ev.Key.Name)
			}
			return err
		})
		if err != nil && !store.IsNotFound(err) {
			d.log.Error("read config object", "key", ev.Key, "err", err)
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setConfigLocked(ev.Key, sec, cm)
}

// setConfigLocked records a Secret or ConfigMap (both nil: gone) and marks
// the nodes of the pods that refer to it. The caller holds d.mu.
func (d *Dispatcher) setConfigLocked(key store.Key, sec *api.Secret, cm *api.ConfigMap) {
	isSecret := key.Kind == api.KindSecret
	switch {
	case sec != nil:
		d.secrets[key] = &wire.SnapshotSecret{Namespace: sec.Namespace, Name: sec.Name, Type: sec.Type, Data: sec.Data}
	case cm != nil:
		d.configMaps[key] = &wire.SnapshotConfigMap{Namespace: cm.Namespace, Name: cm.Name, Data: cm.Data, BinaryData: cm.BinaryData}
	case isSecret:
		delete(d.secrets, key)
	default:
		delete(d.configMaps, key)
	}
	if isSecret {
		d.ingressSecretChanged(key)
	}
	for _, p := range d.pods {
		if p.pod.Namespace != key.Namespace {
			continue
		}
		names := p.configMaps
		if isSecret {
			names = p.secrets
		}
		if slices.Contains(names, key.Name) {
			d.markDirty(d.node(p.node))
		}
	}
}

func (d *Dispatcher) handlePod(ev store.Event) {
	var pod *api.Pod
	if ev.Type == store.Put {
		err := d.opts.Store.View(func(tx store.Tx) error {
			var err error
			// Read only: what it keeps of the pod are its labels and spec,
			// which the store's shared object never changes.
			pod, err = store.GetShared[api.Pod](tx, ev.Key.Namespace, ev.Key.Name)
			return err
		})
		if err != nil && !store.IsNotFound(err) {
			d.log.Error("read pod", "pod", ev.Key, "err", err)
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setPod(ev.Key, pod)
}

// setPod records pod (nil: gone) in the cache and marks the nodes whose
// snapshot changes. The caller holds d.mu.
func (d *Dispatcher) setPod(key store.Key, pod *api.Pod) {
	old := d.pods[key]
	if pod == nil || pod.Spec.NodeName == "" {
		if old != nil {
			d.removePod(key, old)
		}
		return
	}
	if old != nil && old.src == pod {
		return // the same version (a resync)
	}
	entry := &cachedPod{node: pod.Spec.NodeName, pod: snapshotPod(pod), src: pod}
	entry.secrets, entry.configMaps = wire.PodConfigRefs(&pod.Spec)
	if old != nil && old.node == entry.node && sameSnapshotPod(&old.pod, &entry.pod) {
		old.src = pod
		return // a status update: the snapshot does not change
	}
	entry.raw = mustJSON(&entry.pod)
	if old != nil && old.node != entry.node {
		d.removePod(key, old)
	}
	d.pods[key] = entry
	ns := d.node(entry.node)
	ns.pods[key] = entry
	d.markDirty(ns)
}

// removePod takes key's entry p off its node. The caller holds d.mu.
func (d *Dispatcher) removePod(key store.Key, p *cachedPod) {
	delete(d.pods, key)
	ns := d.node(p.node)
	delete(ns.pods, key)
	d.markDirty(ns)
}

// sameSnapshotPod reports whether a and b, entries made from two versions
// of one pod, say the same to the agent. The spec is compared by its
// hash, which is part of each.
func sameSnapshotPod(a, b *wire.SnapshotPod) bool {
	return a.UID == b.UID && a.SpecHash == b.SpecHash && maps.Equal(a.Labels, b.Labels) &&
		slices.Equal(a.PrePull, b.PrePull) && a.ProgressDeadlineSeconds == b.ProgressDeadlineSeconds
}

func (d *Dispatcher) handleNode(ev store.Event) {
	var node *api.Node
	if ev.Type == store.Put {
		err := d.opts.Store.View(func(tx store.Tx) error {
			var err error
			node, err = store.GetShared[api.Node](tx, "", ev.Key.Name)
			return err
		})
		if err != nil && !store.IsNotFound(err) {
			d.log.Error("read node", "node", ev.Key.Name, "err", err)
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if node == nil {
		if ns := d.nodes[ev.Key.Name]; ns != nil {
			d.setNodeNetwork(ns, nil) // gone: it leaves its site
		}
		return
	}
	d.setNode(node)
}

// setNode remembers the revision a node's agent runs and whether the node
// is Ready and online. An agent that holds a revision the hub does not
// know (the hub's data was lost) gets a fresh snapshot numbered above it.
// The caller holds d.mu.
func (d *Dispatcher) setNode(node *api.Node) {
	ns := d.node(node.Name)
	obs := node.Status.ObservedRevision
	ns.observed = obs
	if obs > 0 && (ns.record == nil || obs > ns.record.Revision) {
		d.markDirty(ns)
	}
	ns.ready = node.IsReady() && node.Status.Online
	d.setNodeNetwork(ns, node)
}

// resync rebuilds the cache from the store.
func (d *Dispatcher) resync() error {
	var pods []*api.Pod
	var nodes []*api.Node
	var recs []*desired.Record
	var secs []*api.Secret
	var cms []*api.ConfigMap
	var svcs []*api.Service
	var eps []*api.Endpoints
	var ings []*api.Ingress
	var classes []*api.IngressClass
	err := d.opts.Store.View(func(tx store.Tx) error {
		var err error
		if ings, err = store.ListShared[api.Ingress](tx, ""); err != nil {
			return err
		}
		if classes, err = store.ListShared[api.IngressClass](tx, ""); err != nil {
			return err
		}
		if svcs, err = store.ListShared[api.Service](tx, ""); err != nil {
			return err
		}
		if eps, err = store.ListShared[api.Endpoints](tx, ""); err != nil {
			return err
		}
		if pods, err = store.ListShared[api.Pod](tx, ""); err != nil {
			return err
		}
		if secs, err = store.List[api.Secret](tx, ""); err != nil {
			return err
		}
		if cms, err = store.List[api.ConfigMap](tx, ""); err != nil {
			return err
		}
		if nodes, err = store.ListShared[api.Node](tx, ""); err != nil {
			return err
		}
		recs, err = store.ListShared[desired.Record](tx, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("dispatch resync: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range recs {
		d.node(r.Name).record = r
	}
	d.secrets = map[store.Key]*wire.SnapshotSecret{}
	for _, sec := range secs {
		d.setConfigLocked(store.KeyOf(sec), sec, nil)
	}
	d.configMaps = map[store.Key]*wire.SnapshotConfigMap{}
	for _, cm := range cms {
		d.setConfigLocked(store.KeyOf(cm), nil, cm)
	}
	seen := make(map[store.Key]bool, len(pods))
	for _, p := range pods {
		k := store.KeyOf(p)
		seen[k] = true
		d.setPod(k, p)
	}
	for k := range d.pods {
		if !seen[k] {
			d.setPod(k, nil)
		}
	}
	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n.Name] = true
		d.setNode(n)
	}
	for name, ns := range d.nodes {
		if !known[name] {
			d.setNodeNetwork(ns, nil)
		}
	}
	// Services and Endpoints: the same object as cached is the same
	// version, so only what changed marks sites.
	seen = make(map[store.Key]bool, len(svcs)+len(eps))
	for _, svc := range svcs {
		k := store.KeyOf(svc)
		seen[k] = true
		d.setService(k, svc)
	}
	for k := range d.services {
		if !seen[k] {
			d.setService(k, nil)
		}
	}
	for _, ep := range eps {
		k := store.KeyOf(ep)
		seen[k] = true
		d.setEndpoints(k, ep)
	}
	for k := range d.endpoints {
		if !seen[k] {
			d.setEndpoints(k, nil)
		}
	}
	d.resyncIngress(ings, classes)
	// Compare every known node's content with its record; flush skips the
	// ones that did not change.
	for _, ns := range d.nodes {
		d.markDirty(ns)
	}
	return nil
}
