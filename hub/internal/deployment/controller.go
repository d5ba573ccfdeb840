// Package deployment is the Deployment controller: it keeps spec.replicas
// pods of each Deployment's template, placed by the scheduler on Ready,
// schedulable nodes with room for them; rolls template changes out with
// Kubernetes' RollingUpdate (maxSurge, maxUnavailable over the replicas)
// or Recreate; replaces pods whose node stays NotReady past their
// toleration; keeps the revision history and Kubernetes' status counts and
// conditions (Available, Progressing with ProgressDeadlineExceeded). Pods
// are named {deployment}-{template hash}-{random}. It reads and writes only
// the store.
package deployment

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
	// Suffix makes the random part of pod names (tests); nil is random.
	Suffix func() string
	// OnSync, if set, is told how long each reconcile pass took (the
	// hub's /metrics histogram of controller latencies).
	OnSync func(time.Duration)
}

// Controller runs Deployments.
type Controller struct {
	opts Options
	log  *slog.Logger
	// lookForOrphans is set while a pass must read the fleet even if
	// there are no Deployments: at start, after a Deployment changed, at
	// each resync, and while there are Deployments.
	lookForOrphans bool
	// started is when Run began: a node not heard from since may have
	// lost its pods while the hub was down. Zero once every node has
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
	return &Controller{opts: opts, log: opts.Logger.With("component", "deployment"), lookForOrphans: true}
}

// Run syncs until ctx ends: on any change to a Deployment, Node or Pod, on
// the times a Deployment waits for, and every resync period.
func (c *Controller) Run(ctx context.Context) error {
	c.started = c.opts.Now().UTC()
	events := c.opts.Store.Watch(ctx, api.KindDeployment, api.KindNode, api.KindPod)
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
		// to back. Gathering events for at least as long as the last pass
		// took keeps it under half of a core, and costs a small fleet
		// nothing (its passes take less than the debounce).
		window := max(c.opts.Debounce, time.Since(began))
		timer.Stop()
		var timerC <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(max(wake.Sub(c.opts.Now()), 0) + time.Second)
			timerC = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if drain(events, window) || ownsWork(ev) {
				c.lookForOrphans = true
			}
		case <-resync.C:
			c.lookForOrphans = true
		case <-timerC:
		}
	}
}

// ownsWork reports whether ev may have made work for the controller when
// there are no Deployments: a Deployment changed (one deleted leaves
// orphans), or the watch overflowed.
func ownsWork(ev store.Event) bool {
	return ev.Type == store.Overflow || ev.Key.Kind == api.KindDeployment
}

// drain swallows the rest of a burst of events, and reports whether any
// of them was one ownsWork picks.
func drain(events <-chan store.Event, window time.Duration) bool {
	timer := time.NewTimer(window)
	defer timer.Stop()
	work := false
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return work
			}
			work = work || ownsWork(ev)
		case <-timer.C:
			return work
		}
	}
}

// Sync runs one full pass over every Deployment and what they own.
func (c *Controller) Sync() error {
	c.lookForOrphans = true
	_, err := c.sync()
	return err
}

func (c *Controller) sync() (time.Time, error) {
	if !c.lookForOrphans {
		// With no Deployments, a node or pod change is no work of this
		// controller's: only a Deployment change (or a resync) can be.
		var none bool
		if err := c.opts.Store.View(func(tx store.Tx) error {
			recs, err := tx.List(api.KindDeployment, "")
			none = len(recs) == 0
			return err
		}); err != nil {
			return time.Time{}, fmt.Errorf("read state: %w", err)
		}
		if none {
			return time.Time{}, nil
		}
	}
	in := Input{Suffix: c.opts.Suffix}
	// Plan only reads its input (the simulation tests check it with
	// store.VerifyShared), so the pass reads the store's shared objects
	// without copying the fleet.
	err := c.opts.Store.View(func(tx store.Tx) error {
		var err error
		if in.Deployments, err = store.ListShared[api.Deployment](tx, ""); err != nil {
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
	plan := Plan(in)
	// A full pass with no Deployments collected every orphan (below); the
	// next one is due at the next Deployment change or resync.
	c.lookForOrphans = len(in.Deployments) > 0
	if plan.Empty() {
		return plan.Wake, nil
	}
	var errs []error
	if len(plan.Orphans) > 0 {
		c.log.Info("delete what deleted Deployments left", "objects", len(plan.Orphans))
		if err := c.update(func(tx store.Tx) error {
			for _, k := range plan.Orphans {
				if err := deleteIfPresent(tx, k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			errs = append(errs, err)
		}
	}
	for _, set := range plan.Sets {
		if set.Empty() {
			continue
		}
		c.logSet(set)
		if err := c.write(set); err != nil {
			errs = append(errs, fmt.Errorf("deployment %s/%s: %w", set.Deployment.Namespace, set.Deployment.Name, err))
		}
	}
	if len(errs) > 0 {
		c.lookForOrphans = true // try again next pass
	}
	return plan.Wake, errors.Join(errs...)
}

func (c *Controller) update(fn func(tx store.Tx) error) error {
	return c.opts.Store.Update(fn)
}

func (c *Controller) logSet(set *SetResult) {
	d := set.Deployment
	log := c.log.With("deployment", d.Namespace+"/"+d.Name)
	for _, cr := range set.CreateRevisions {
		log.Info("new revision", "revision", cr.Revision, "hash", set.Hash)
	}
	for _, e := range set.Evicted {
		log.Warn("replace pod on a node NotReady past its toleration", "pod", e)
	}
	for _, p := range set.Create {
		log.Info("create pod", "pod", p.Name, "node", p.Spec.NodeName)
	}
	for _, k := range set.Delete {
		log.Info("delete pod", "pod", k.Name)
	}
	if set.Status != nil && set.Status.Rollout != nil && (d.Status.Rollout == nil || d.Status.Rollout.Phase != set.Status.Rollout.Phase) {
		log.Info("rollout phase", "phase", set.Status.Rollout.Phase, "revision", set.Status.Rollout.Revision, "message", set.Status.Rollout.Message)
	}
}

var errStale = errors.New("deployment changed since the pass read it")

// write stores one Deployment's plan in one transaction that first checks
// the Deployment still has the planned template and uid. Pod updates go
// onto the stored pod of the same uid.
func (c *Controller) write(set *SetResult) error {
	d := set.Deployment
	err := c.opts.Store.Update(func(tx store.Tx) error {
		cur, err := store.Get[api.Deployment](tx, d.Namespace, d.Name)
		if store.IsNotFound(err) {
			return errStale
		}
		if err != nil {
			return err
		}
		if cur.UID != d.UID || api.HashTemplate(&cur.Spec.Template) != set.Hash {
			return errStale
		}
		for _, cr := range set.CreateRevisions {
			if err := putIfAbsent(tx, cr); err != nil {
				return err
			}
		}
		for _, cr := range set.UpdateRevisions {
			stored, err := store.Get[api.ControllerRevision](tx, cr.Namespace, cr.Name)
			if store.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			stored.Revision, stored.Annotations = cr.Revision, cr.Annotations
			if err := tx.Put(stored); err != nil {
				return err
			}
		}
		for _, k := range set.DeleteRevisions {
			if err := deleteIfPresent(tx, k); err != nil {
				return err
			}
		}
		for _, p := range set.Create {
			if err := putIfAbsent(tx, p); err != nil {
				return err
			}
		}
		for _, p := range set.Update {
			stored, err := store.Get[api.Pod](tx, p.Namespace, p.Name)
			if store.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			if stored.UID != p.UID {
				continue
			}
			if stored.Spec.NodeName == "" {
				// Binding (or an unschedulable reason) sets the status too:
				// no agent reports on an unbound pod.
				stored.Status = p.Status
			}
			stored.Labels, stored.Annotations, stored.Spec = p.Labels, p.Annotations, p.Spec
			if err := tx.Put(stored); err != nil {
				return err
			}
		}
		for _, k := range set.Delete {
			if err := deleteIfPresent(tx, k); err != nil {
				return err
			}
		}
		if set.Status != nil {
			cur.Status = *set.Status
			return tx.Put(cur)
		}
		return nil
	})
	if errors.Is(err, errStale) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

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

func deleteIfPresent(tx store.Tx, k store.Key) error {
	if err := tx.Delete(k); err != nil && !store.IsNotFound(err) {
		return err
	}
	return nil
}
