// Package daemonset is the DaemonSet controller: for every DaemonSet it
// makes sure each node whose labels match the template's node selector has
// exactly one pod of the current template, removes pods from nodes that no
// longer match, collects pods whose DaemonSet is gone, and keeps the
// DaemonSet's status counts. It reads and writes only the store.
package daemonset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Labels the controller puts on its pods, as Kubernetes does.
const (
	LabelTemplateHash = "controller-revision-hash"
)

// Options configure the controller.
type Options struct {
	Store  store.Store
	Logger *slog.Logger
	// Debounce gathers bursts of changes into one pass (default 20 ms).
	Debounce time.Duration
	// Resync is the period of the full pass (default 30 s).
	Resync time.Duration
	Now    func() time.Time
}

// Controller runs DaemonSets.
type Controller struct {
	opts Options
	log  *slog.Logger
}

// New returns a controller; call Run to start it.
func New(opts Options) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Controller{opts: opts, log: opts.Logger.With("component", "daemonset")}
}

// Run syncs until ctx ends. Any change to a DaemonSet, Node or Pod wakes
// it; the sync itself is level-triggered over everything.
func (c *Controller) Run(ctx context.Context) error {
	events := c.opts.Store.Watch(ctx, api.KindDaemonSet, api.KindNode, api.KindPod)
	resync := time.NewTicker(c.opts.Resync)
	defer resync.Stop()
	for {
		if err := c.Sync(); err != nil {
			c.log.Error("sync", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				return nil
			}
			drain(events, c.opts.Debounce)
		case <-resync.C:
		}
	}
}

// drain swallows the rest of a burst of events.
func drain(events <-chan store.Event, window time.Duration) {
	timer := time.NewTimer(window)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timer.C:
			return
		}
	}
}

// Sync runs one pass over every DaemonSet.
func (c *Controller) Sync() error {
	var dss []*api.DaemonSet
	var nodes []*api.Node
	var pods []*api.Pod
	err := c.opts.Store.View(func(tx store.Tx) error {
		var err error
		if dss, err = store.List[api.DaemonSet](tx, api.KindDaemonSet, ""); err != nil {
			return err
		}
		if nodes, err = store.List[api.Node](tx, api.KindNode, ""); err != nil {
			return err
		}
		pods, err = store.List[api.Pod](tx, api.KindPod, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	now := api.NewTime(c.opts.Now().UTC().Truncate(time.Second))
	plan := Plan(dss, nodes, pods, now)
	if plan.Empty() {
		return nil
	}
	for _, p := range plan.Create {
		c.log.Info("create pod", "pod", p.Namespace+"/"+p.Name, "node", p.Spec.NodeName)
	}
	for _, p := range plan.Update {
		c.log.Info("update pod to new template", "pod", p.Namespace+"/"+p.Name, "node", p.Spec.NodeName)
	}
	for _, k := range plan.Delete {
		c.log.Info("delete pod", "pod", k.Namespace+"/"+k.Name)
	}
	return c.apply(plan)
}

// apply writes a plan in batches that fit one transaction each.
func (c *Controller) apply(plan *Result) error {
	var ops []func(tx store.Tx) error
	for _, p := range plan.Create {
		ops = append(ops, putOp(p))
	}
	for _, p := range plan.Update {
		ops = append(ops, putOp(p))
	}
	for _, k := range plan.Delete {
		k := k
		ops = append(ops, func(tx store.Tx) error {
			if err := tx.Delete(k); err != nil && !store.IsNotFound(err) {
				return err
			}
			return nil
		})
	}
	for _, ds := range plan.Status {
		ds := ds
		ops = append(ops, func(tx store.Tx) error {
			// Write the status onto the current object, so a spec change
			// that raced this pass is kept.
			cur, err := store.Get[api.DaemonSet](tx, api.KindDaemonSet, ds.Namespace, ds.Name)
			if store.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			if cur.UID != ds.UID {
				return nil
			}
			cur.Status = ds.Status
			return tx.Put(cur)
		})
	}
	const batch = 500
	for start := 0; start < len(ops); start += batch {
		part := ops[start:min(start+batch, len(ops))]
		if err := c.opts.Store.Update(func(tx store.Tx) error {
			for _, op := range part {
				if err := op(tx); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("write pods: %w", err)
		}
	}
	return nil
}

func putOp(p *api.Pod) func(tx store.Tx) error {
	return func(tx store.Tx) error { return tx.Put(p) }
}

// Result is what one pass decided.
type Result struct {
	Create []*api.Pod
	Update []*api.Pod
	Delete []store.Key
	// Status holds DaemonSets whose status changed.
	Status []*api.DaemonSet
}

// Empty reports whether the pass has nothing to write.
func (r *Result) Empty() bool {
	return len(r.Create)+len(r.Update)+len(r.Delete)+len(r.Status) == 0
}

// Plan computes, from the whole state, the pods to create, update and
// delete, and the DaemonSet statuses. It is a pure function.
func Plan(dss []*api.DaemonSet, nodes []*api.Node, pods []*api.Pod, now api.Time) *Result {
	res := &Result{}
	byUID := make(map[string]*api.DaemonSet, len(dss))
	for _, ds := range dss {
		byUID[ds.UID] = ds
	}
	// owned[ds uid][node] → pods of that DaemonSet on that node.
	owned := map[string]map[string][]*api.Pod{}
	for _, p := range pods {
		ref := p.ControllerRef()
		if ref == nil || ref.Kind != api.KindDaemonSet {
			continue
		}
		ds, ok := byUID[ref.UID]
		if !ok || ds.Namespace != p.Namespace {
			// Garbage: its DaemonSet is gone.
			res.Delete = append(res.Delete, store.KeyOf(p))
			continue
		}
		if owned[ref.UID] == nil {
			owned[ref.UID] = map[string][]*api.Pod{}
		}
		owned[ref.UID][p.Spec.NodeName] = append(owned[ref.UID][p.Spec.NodeName], p)
	}

	sortedNodes := append([]*api.Node(nil), nodes...)
	sort.Slice(sortedNodes, func(i, j int) bool { return sortedNodes[i].Name < sortedNodes[j].Name })
	nodeNames := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		nodeNames[n.Name] = true
	}

	for _, ds := range dss {
		hash := api.HashTemplate(&ds.Spec.Template)
		nodeSel := api.SelectorFromMap(ds.Spec.Template.Spec.NodeSelector)
		mine := owned[ds.UID]
		status := api.DaemonSetStatus{ObservedGeneration: ds.Generation}
		for _, node := range sortedNodes {
			want := nodeSel.Matches(node.Labels)
			have := mine[node.Name]
			if !want {
				for _, p := range have {
					res.Delete = append(res.Delete, store.KeyOf(p))
				}
				if len(have) > 0 {
					status.NumberMisscheduled++
				}
				continue
			}
			status.DesiredNumberScheduled++
			if len(have) == 0 {
				res.Create = append(res.Create, newPod(ds, node.Name, hash, now))
				continue
			}
			status.CurrentNumberScheduled++
			// Keep one pod per node; extra ones (never made by this
			// controller, but possible after a restore) go.
			sort.Slice(have, func(i, j int) bool { return have[i].Name < have[j].Name })
			pod := have[0]
			for _, extra := range have[1:] {
				res.Delete = append(res.Delete, store.KeyOf(extra))
			}
			if pod.Labels[LabelTemplateHash] != hash {
				res.Update = append(res.Update, updatedPod(ds, pod, hash))
				continue
			}
			status.UpdatedNumberScheduled++
			if pod.IsReady() {
				status.NumberReady++
				status.NumberAvailable++
			}
		}
		// Pods on nodes that no longer exist.
		for nodeName, have := range mine {
			if !nodeNames[nodeName] {
				for _, p := range have {
					res.Delete = append(res.Delete, store.KeyOf(p))
				}
			}
		}
		status.NumberUnavailable = status.DesiredNumberScheduled - status.NumberAvailable
		if status != ds.Status {
			cp := *ds
			cp.Status = status
			res.Status = append(res.Status, &cp)
		}
	}
	return res
}

// PodName is the name of ds's pod on node: stable, so that the pod keeps
// its name through template changes, and distinct per node.
func PodName(dsName, node string) string {
	sum := sha256.Sum256([]byte(node))
	suffix := hex.EncodeToString(sum[:])[:5]
	base := dsName
	if len(base) > 253-6 {
		base = base[:253-6]
	}
	return base + "-" + suffix
}

func newPod(ds *api.DaemonSet, node, hash string, now api.Time) *api.Pod {
	isController := true
	p := &api.Pod{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{
			Name:              PodName(ds.Name, node),
			Namespace:         ds.Namespace,
			UID:               api.NewUID(),
			CreationTimestamp: now,
			OwnerReferences: []api.OwnerReference{{
				APIVersion: "apps/v1", Kind: api.KindDaemonSet, Name: ds.Name, UID: ds.UID, Controller: &isController,
			}},
		},
		Status: api.PodStatus{Phase: api.PodPending},
	}
	setTemplate(p, ds, node, hash)
	return p
}

// updatedPod moves an existing pod to the current template, keeping its
// identity. The agent replaces its containers when it sees the new spec.
func updatedPod(ds *api.DaemonSet, old *api.Pod, hash string) *api.Pod {
	p := *old
	p.ObjectMeta.Labels = nil
	p.ObjectMeta.Annotations = nil
	setTemplate(&p, ds, old.Spec.NodeName, hash)
	return &p
}

func setTemplate(p *api.Pod, ds *api.DaemonSet, node, hash string) {
	t := &ds.Spec.Template
	p.Labels = map[string]string{}
	for k, v := range t.Labels {
		p.Labels[k] = v
	}
	p.Labels[LabelTemplateHash] = hash
	if len(t.Annotations) > 0 {
		p.Annotations = map[string]string{}
		for k, v := range t.Annotations {
			p.Annotations[k] = v
		}
	}
	// Deep-copy the spec through its fields the agent reads; the slices are
	// never mutated after decoding, so sharing them is safe.
	p.Spec = t.Spec
	p.Spec.NodeName = node
}
