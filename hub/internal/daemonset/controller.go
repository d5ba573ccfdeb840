// Package daemonset is the DaemonSet controller: for every DaemonSet it
// makes sure each node whose labels match the template's node selector has
// exactly one pod, rolls template changes out through the rollout planner
// (within maxUnavailable, canaries first, stopping or rolling back on
// failures), keeps the numbered revision history, removes pods from nodes
// that no longer match, collects what a deleted DaemonSet leaves, and keeps
// the DaemonSet's status. It reads and writes only the store; everything a
// rollout needs to carry on after a hub restart is in the store.
package daemonset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
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
	// OnSync, if set, is told how long each reconcile pass took (the
	// hub's /metrics histogram of controller latencies).
	OnSync func(time.Duration)
}

// Controller runs DaemonSets.
type Controller struct {
	opts Options
	log  *slog.Logger
	// hashes remembers the spec hash of each pod version the last pass
	// read: the store hands out one shared object per version, so a pod
	// that did not change is not hashed again.
	hashes map[*api.Pod]string
	// started is when Run began: what the store says of a node the hub
	// has not heard from since is from before, possibly from before a
	// crash, and a rollout must not act on it. Zero once every node has
	// been heard from.
	started time.Time
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
// it, and so does the time a rollout waits for (a deadline, a pause); the
// sync itself is level-triggered over everything.
func (c *Controller) Run(ctx context.Context) error {
	c.started = c.opts.Now().UTC()
	events := c.opts.Store.Watch(ctx, api.KindDaemonSet, api.KindNode, api.KindPod)
	resync := time.NewTicker(c.opts.Resync)
	defer resync.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		began := time.Now()
		wake, err := c.sync()
		if err != nil {
			c.log.Error("sync", "err", err)
		}
		if c.opts.OnSync != nil {
			c.opts.OnSync(time.Since(began))
		}
		// A pass reads the whole fleet, so a busy fleet (a status write
		// every few milliseconds) would keep the controller syncing back
		// to back. Gathering events for as long as the last pass took
		// keeps it under half of a core, and costs a small fleet nothing
		// (its passes take less than the debounce). The wait is bounded:
		// on a busy hub a pass's wall time is mostly waiting for the CPU,
		// not using it (a 10,000-node pass uses 10-35 ms of CPU and took
		// 0.6 s of wall time in the rolling update benchmark), and a
		// rolling update's next nodes wait for the pass.
		window := min(max(c.opts.Debounce, time.Since(began)), maxWindow)
		timer.Stop()
		var timerC <-chan time.Time
		if !wake.IsZero() {
			// Whole seconds: the controller's clock is truncated to them.
			timer.Reset(max(wake.Sub(c.opts.Now()), 0) + time.Second)
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				return nil
			}
			drain(events, window)
		case <-resync.C:
		case <-timerC:
		}
	}
}

// maxWindow bounds how long the controller gathers events after a pass.
const maxWindow = 200 * time.Millisecond

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
	_, err := c.sync()
	return err
}

func (c *Controller) sync() (time.Time, error) {
	var in Input
	// Plan only reads its input (the simulation tests check it with
	// store.VerifyShared), so the pass reads the store's shared objects
	// without copying the fleet.
	err := c.opts.Store.View(func(tx store.Tx) error {
		var err error
		if in.DaemonSets, err = store.ListShared[api.DaemonSet](tx, ""); err != nil {
			return err
		}
		if in.Nodes, err = store.ListShared[api.Node](tx, ""); err != nil {
			return err
		}
		if in.Revisions, err = store.ListShared[api.ControllerRevision](tx, ""); err != nil {
			return err
		}
		if !c.started.IsZero() {
			leases, err := store.ListShared[lease.Lease](tx, "")
			if err != nil {
				return err
			}
			if in.Unheard = lease.Unheard(in.Nodes, leases, c.started); len(in.Unheard) == 0 {
				c.started = time.Time{} // heard from every node: no need to look again
			}
		}
		in.Pods, err = store.ListShared[api.Pod](tx, "")
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read state: %w", err)
	}
	in.Now = api.NewTime(c.opts.Now().UTC().Truncate(time.Second))
	hashes := make(map[*api.Pod]string, len(in.Pods))
	in.SpecHash = func(p *api.Pod) string {
		h, ok := c.hashes[p]
		if !ok {
			h = api.HashPodSpec(&p.Spec)
		}
		hashes[p] = h
		return h
	}
	plan := Plan(in)
	c.hashes = hashes
	if plan.Empty() {
		return plan.Wake, nil
	}
	var errs []error
	if len(plan.Orphans) > 0 {
		c.log.Info("delete what deleted DaemonSets left", "objects", len(plan.Orphans))
		if err := c.deleteOrphans(plan.Orphans); err != nil {
			errs = append(errs, err)
		}
	}
	for _, set := range plan.Sets {
		if set.Empty() {
			continue
		}
		c.logSet(set)
		if err := c.write(set); err != nil {
			errs = append(errs, fmt.Errorf("daemonset %s/%s: %w", set.DaemonSet.Namespace, set.DaemonSet.Name, err))
		}
	}
	return plan.Wake, errors.Join(errs...)
}

func (c *Controller) logSet(set *SetResult) {
	ds := set.DaemonSet
	log := c.log.With("daemonset", ds.Namespace+"/"+ds.Name)
	for _, cr := range set.CreateRevisions {
		log.Info("new revision", "revision", cr.Revision, "hash", set.Hash)
	}
	if len(set.Moved) > 0 {
		log.Info("move nodes to the current template", "nodes", set.Moved, "hash", set.Hash)
	}
	for _, k := range set.Delete {
		log.Info("delete pod", "pod", k.Namespace+"/"+k.Name)
	}
	if set.Rollback != nil {
		log.Warn("rollout failed; rolling back", "message", set.Status.Rollout.Message)
	}
	if set.Pause {
		log.Info("canary nodes updated; rollout paused until resumed")
	}
	if set.Status != nil && set.Status.Rollout != nil && (ds.Status.Rollout == nil || ds.Status.Rollout.Phase != set.Status.Rollout.Phase) {
		log.Info("rollout phase", "phase", set.Status.Rollout.Phase, "revision", set.Status.Rollout.Revision, "message", set.Status.Rollout.Message)
	}
}

// errStale abandons the writes of a DaemonSet whose template changed since
// the pass read it; the next pass plans again.
var errStale = errors.New("daemonset changed since the pass read it")

// batch bounds the writes of one transaction.
const batch = 500

// write stores one DaemonSet's plan, in transactions that each first check
// that the DaemonSet still has the template the plan was made for. Pod
// writes go onto the stored pod, so a status an agent reported meanwhile
// is kept.
func (c *Controller) write(set *SetResult) error {
	ds := set.DaemonSet
	var ops []func(tx store.Tx, cur *api.DaemonSet) error
	for _, cr := range set.CreateRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return putIfAbsent(tx, cr) })
	}
	for _, cr := range set.UpdateRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error {
			cur, err := store.Get[api.ControllerRevision](tx, cr.Namespace, cr.Name)
			if store.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			cur.Revision, cur.Annotations = cr.Revision, cr.Annotations
			return tx.Put(cur)
		})
	}
	for _, k := range set.DeleteRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return deleteIfPresent(tx, k) })
	}
	for _, p := range set.Create {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return putIfAbsent(tx, p) })
	}
	for _, p := range set.Update {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return updatePod(tx, p) })
	}
	for _, k := range set.Delete {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return deleteIfPresent(tx, k) })
	}
	if set.Status != nil || set.Rollback != nil || set.Pause {
		ops = append(ops, func(tx store.Tx, cur *api.DaemonSet) error {
			if set.Rollback != nil {
				cur.Spec.Template = *set.Rollback
				cur.Generation++
				if r := cur.Spec.Rollout; r != nil && r.Paused {
					// A pause (a canary's, most often) held the revision that
					// failed; the rollback must not wait for a resume, nor
					// leave the next rollout paused.
					unpaused := *r
					unpaused.Paused = false
					cur.Spec.Rollout = &unpaused
				}
			}
			if set.Pause {
				r := api.RolloutSpec{}
				if cur.Spec.Rollout != nil {
					r = *cur.Spec.Rollout
				}
				r.Paused = true
				cur.Spec.Rollout = &r
				cur.Generation++
			}
			if set.Status != nil {
				cur.Status = *set.Status
			}
			return tx.Put(cur)
		})
	}
	for start := 0; start < len(ops); start += batch {
		part := ops[start:min(start+batch, len(ops))]
		err := c.opts.Store.Update(func(tx store.Tx) error {
			cur, err := store.Get[api.DaemonSet](tx, ds.Namespace, ds.Name)
			if store.IsNotFound(err) {
				return errStale
			}
			if err != nil {
				return err
			}
			if cur.UID != ds.UID || api.HashTemplate(&cur.Spec.Template) != set.Hash {
				return errStale
			}
			for _, op := range part {
				if err := op(tx, cur); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, errStale) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	return nil
}

func (c *Controller) deleteOrphans(keys []store.Key) error {
	for start := 0; start < len(keys); start += batch {
		part := keys[start:min(start+batch, len(keys))]
		if err := c.opts.Store.Update(func(tx store.Tx) error {
			for _, k := range part {
				if err := deleteIfPresent(tx, k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("delete orphans: %w", err)
		}
	}
	return nil
}

// putIfAbsent creates obj unless its key is taken (an earlier pass made it).
func putIfAbsent(tx store.Tx, obj api.Object) error {
	_, err := tx.Get(store.KeyOf(obj))
	if err == nil {
		return nil
	}
	if !store.IsNotFound(err) {
		return err
	}
	return tx.Put(obj)
}

// updatePod writes p's labels, annotations and spec onto the stored pod
// of the same uid, keeping the stored status.
func updatePod(tx store.Tx, p *api.Pod) error {
	cur, err := store.Get[api.Pod](tx, p.Namespace, p.Name)
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.UID != p.UID {
		return nil
	}
	cur.Labels, cur.Annotations, cur.Spec = p.Labels, p.Annotations, p.Spec
	return tx.Put(cur)
}

func deleteIfPresent(tx store.Tx, k store.Key) error {
	if err := tx.Delete(k); err != nil && !store.IsNotFound(err) {
		return err
	}
	return nil
}
