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

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Options configure the controller; zero values take the defaults of
// controller.Options.
type Options struct {
	Store  store.Store
	Logger *slog.Logger
	// Debounce gathers bursts of changes into one pass.
	Debounce time.Duration
	// Resync is the period of the full pass.
	Resync time.Duration
	Now    func() time.Time
	// OnSync, if set, is told how long each reconcile pass took (the
	// hub's /metrics histogram of controller latencies).
	OnSync func(time.Duration)
	// EventTTL is how long its events are kept (default events.DefaultTTL).
	EventTTL time.Duration
}

// Controller runs DaemonSets.
type Controller struct {
	store store.Store
	loop  *controller.Loop
	steps controller.Steps[Input, *Result]
	// hashes remembers the spec hash of each pod version the last pass
	// read: the store hands out one shared object per version, so a pod
	// that did not change is not hashed again.
	hashes map[*api.Pod]string
	// unheard finds the nodes not heard from since Run began: what the
	// store says of them is from before, possibly from before a crash,
	// and a rollout must not act on it.
	unheard controller.Unheard
	// unplaced holds the nodes last recorded as left without a pod for
	// want of devices, by DaemonSet UID/node, with the reason
	// (devices.go); eventTTL is how long those events are kept.
	unplaced map[string]string
	eventTTL time.Duration
}

// New returns a controller; call Run to start it.
func New(opts Options) *Controller {
	c := &Controller{store: opts.Store, eventTTL: opts.EventTTL}
	c.steps = controller.Steps[Input, *Result]{Store: opts.Store, Read: c.read, Plan: c.plan, Write: c.writePlan}
	c.loop = controller.New(controller.Options{
		Name: "daemonset", Store: opts.Store, Kinds: []string{api.KindDaemonSet, api.KindNode, api.KindPod},
		Pass: c.steps.Pass, Debounce: opts.Debounce, Resync: opts.Resync, Now: opts.Now, Logger: opts.Logger, OnSync: opts.OnSync,
	})
	return c
}

// Run syncs until ctx ends. Any change to a DaemonSet, Node or Pod wakes
// it, and so does the time a rollout waits for (a deadline, a pause); the
// sync itself is level-triggered over everything.
func (c *Controller) Run(ctx context.Context) error {
	c.unheard.Start(c.loop.Now())
	return c.loop.Run(ctx)
}

// Sync runs one pass over every DaemonSet.
func (c *Controller) Sync() error {
	_, err := c.steps.Pass(context.Background(), controller.Started)
	return err
}

// read gathers a pass's input. Plan only reads its input (the simulation
// tests check it with store.VerifyShared), so the pass reads the store's
// shared objects without copying the fleet.
func (c *Controller) read(tx store.Tx) (Input, error) {
	var in Input
	var err error
	if in.DaemonSets, err = store.ListShared[api.DaemonSet](tx, ""); err != nil {
		return in, err
	}
	if in.Nodes, err = store.ListShared[api.Node](tx, ""); err != nil {
		return in, err
	}
	if in.Revisions, err = store.ListShared[api.ControllerRevision](tx, ""); err != nil {
		return in, err
	}
	if in.Unheard, err = c.unheard.Read(tx, in.Nodes); err != nil {
		return in, err
	}
	in.Pods, err = store.ListShared[api.Pod](tx, "")
	return in, err
}

// plan plans a pass at the controller's time, with the spec hashes of
// the pods the last pass saw.
func (c *Controller) plan(in Input) (*Result, time.Time) {
	in.Now = api.NewTime(c.loop.Now().UTC().Truncate(time.Second))
	hashes := make(map[*api.Pod]string, len(in.Pods))
	in.SpecHash = func(p *api.Pod) string {
		h, ok := c.hashes[p]
		if !ok {
			h = api.HashPodSpec(&p.Spec)
		}
		hashes[p] = h
		return h
	}
	res := Plan(in)
	c.hashes = hashes
	wake := res.Wake
	if !wake.IsZero() {
		wake = wake.Add(time.Second) // whole seconds: the plan's clock is truncated to them
	}
	return res, wake
}

// writePlan stores what a pass decided: it collects orphans, then writes
// each DaemonSet's changes.
func (c *Controller) writePlan(res *Result) error {
	var errs []error
	if err := c.recordUnplaced(res); err != nil {
		errs = append(errs, err)
	}
	if res.Empty() {
		return errors.Join(errs...)
	}
	if len(res.Orphans) > 0 {
		c.loop.Logger().Info("delete what deleted DaemonSets left", "objects", len(res.Orphans))
		if err := controller.DeleteAll(c.store, res.Orphans); err != nil {
			errs = append(errs, fmt.Errorf("delete orphans: %w", err))
		}
	}
	for _, set := range res.Sets {
		if set.Empty() {
			continue
		}
		c.logSet(set)
		if err := c.write(set); err != nil {
			errs = append(errs, fmt.Errorf("daemonset %s/%s: %w", set.DaemonSet.Namespace, set.DaemonSet.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) logSet(set *SetResult) {
	ds := set.DaemonSet
	log := c.loop.Logger().With("daemonset", ds.Namespace+"/"+ds.Name)
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

// write stores one DaemonSet's plan, in transactions of controller.Batch
// writes that each first check that the DaemonSet still has the template
// the plan was made for (a plan made for another is dropped: the next
// pass plans again). Pod writes go onto the stored pod, so a status an
// agent reported meanwhile is kept.
func (c *Controller) write(set *SetResult) error {
	type op = controller.Op[*api.DaemonSet]
	var ops []op
	for _, cr := range set.CreateRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return controller.PutIfAbsent(tx, cr) })
	}
	for _, cr := range set.UpdateRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return controller.UpdateRevision(tx, cr) })
	}
	for _, k := range set.DeleteRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return controller.DeleteIfPresent(tx, k) })
	}
	for _, p := range set.Create {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return controller.PutIfAbsent(tx, p) })
	}
	for _, p := range set.Update {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return controller.UpdatePod(tx, p) })
	}
	for _, k := range set.Delete {
		ops = append(ops, func(tx store.Tx, _ *api.DaemonSet) error { return controller.DeleteIfPresent(tx, k) })
	}
	if set.Status != nil || set.Rollback != nil || set.Pause {
		ops = append(ops, func(tx store.Tx, cur *api.DaemonSet) error { return tx.Put(withSpecAndStatus(cur, set)) })
	}
	ds := set.DaemonSet
	guard := func(tx store.Tx) (*api.DaemonSet, error) {
		cur, err := store.Get[api.DaemonSet](tx, ds.Namespace, ds.Name)
		if store.IsNotFound(err) {
			return nil, controller.ErrStale
		}
		if err != nil {
			return nil, err
		}
		if cur.UID != ds.UID || api.HashTemplate(&cur.Spec.Template) != set.Hash {
			return nil, controller.ErrStale
		}
		return cur, nil
	}
	if err := controller.Guarded(c.store, controller.Batch, guard, ops); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// withSpecAndStatus applies to cur, the DaemonSet as stored, what set
// changes of it: a rollback's template, a pause, the status.
func withSpecAndStatus(cur *api.DaemonSet, set *SetResult) *api.DaemonSet {
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
	return cur
}
