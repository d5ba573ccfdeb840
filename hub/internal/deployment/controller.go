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
	// Suffix makes the random part of pod names (tests); nil is random.
	Suffix func() string
	// OnSync, if set, is told how long each reconcile pass took (the
	// hub's /metrics histogram of controller latencies).
	OnSync func(time.Duration)
}

// Controller runs Deployments.
type Controller struct {
	store  store.Store
	suffix func() string
	loop   *controller.Loop
	steps  controller.Steps[Input, *Result]
	// lookForOrphans is set while a pass must read the fleet even if
	// there are no Deployments: at start, after a Deployment changed, at
	// each resync, after a failed write, and while there are Deployments.
	lookForOrphans bool
	// unheard finds the nodes not heard from since Run began: a node not
	// heard from since may have lost its pods while the hub was down.
	unheard controller.Unheard
}

// New returns a controller; call Run to start it.
func New(opts Options) *Controller {
	c := &Controller{store: opts.Store, suffix: opts.Suffix, lookForOrphans: true}
	c.steps = controller.Steps[Input, *Result]{Store: opts.Store, Read: c.read, Plan: c.plan, Write: c.writePlan}
	c.loop = controller.New(controller.Options{
		Name: "deployment", Store: opts.Store, Kinds: []string{api.KindDeployment, api.KindNode, api.KindPod},
		Pass: c.pass, Event: c.event,
		Debounce: opts.Debounce, Resync: opts.Resync, Now: opts.Now, Logger: opts.Logger, OnSync: opts.OnSync,
	})
	return c
}

// Run syncs until ctx ends: on any change to a Deployment, Node or Pod, on
// the times a Deployment waits for, and every resync period.
func (c *Controller) Run(ctx context.Context) error {
	c.unheard.Start(c.loop.Now())
	return c.loop.Run(ctx)
}

// Sync runs one full pass over every Deployment and what they own.
func (c *Controller) Sync() error {
	c.lookForOrphans = true
	_, err := c.steps.Pass(context.Background(), controller.Started)
	return err
}

func (c *Controller) pass(ctx context.Context, why controller.Cause) (time.Time, error) {
	if why == controller.Resynced {
		c.lookForOrphans = true
	}
	return c.steps.Pass(ctx, why)
}

// event notes the changes that may have made work for the controller
// when there are no Deployments: a Deployment changed (one deleted leaves
// orphans), or the watch overflowed.
func (c *Controller) event(ev store.Event) {
	if ev.Type == store.Overflow || ev.Key.Kind == api.KindDeployment {
		c.lookForOrphans = true
	}
}

// read gathers a pass's input. Plan only reads its input (the simulation
// tests check it with store.VerifyShared), so the pass reads the store's
// shared objects without copying the fleet.
func (c *Controller) read(tx store.Tx) (Input, error) {
	in := Input{Suffix: c.suffix}
	if !c.lookForOrphans {
		// With no Deployments, a node or pod change is no work of this
		// controller's: only a Deployment change (or a resync) can be.
		recs, err := tx.List(api.KindDeployment, "")
		if err != nil {
			return in, err
		}
		if len(recs) == 0 {
			return in, controller.ErrSkip
		}
	}
	var err error
	if in.Deployments, err = store.ListShared[api.Deployment](tx, ""); err != nil {
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

// plan plans a pass at the controller's time.
func (c *Controller) plan(in Input) (*Result, time.Time) {
	in.Now = api.NewTime(c.loop.Now().UTC().Truncate(time.Second))
	res := Plan(in)
	// A full pass with no Deployments collects every orphan (writePlan);
	// the next one is due at the next Deployment change or resync.
	c.lookForOrphans = len(in.Deployments) > 0
	wake := res.Wake
	if !wake.IsZero() {
		wake = wake.Add(time.Second) // whole seconds: the plan's clock is truncated to them
	}
	return res, wake
}

// writePlan stores what a pass decided: it collects orphans, then writes
// each Deployment's changes.
func (c *Controller) writePlan(res *Result) error {
	if res.Empty() {
		return nil
	}
	var errs []error
	if len(res.Orphans) > 0 {
		c.loop.Logger().Info("delete what deleted Deployments left", "objects", len(res.Orphans))
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
			errs = append(errs, fmt.Errorf("deployment %s/%s: %w", set.Deployment.Namespace, set.Deployment.Name, err))
		}
	}
	if len(errs) > 0 {
		c.lookForOrphans = true // try again next pass
	}
	return errors.Join(errs...)
}

func (c *Controller) logSet(set *SetResult) {
	d := set.Deployment
	log := c.loop.Logger().With("deployment", d.Namespace+"/"+d.Name)
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

// write stores one Deployment's plan in one transaction that first checks
// the Deployment still has the planned template and uid (a plan made for
// another is dropped: the next pass plans again). Pod updates go onto the
// stored pod of the same uid.
func (c *Controller) write(set *SetResult) error {
	type op = controller.Op[*api.Deployment]
	var ops []op
	for _, cr := range set.CreateRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.Deployment) error { return controller.PutIfAbsent(tx, cr) })
	}
	for _, cr := range set.UpdateRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.Deployment) error { return controller.UpdateRevision(tx, cr) })
	}
	for _, k := range set.DeleteRevisions {
		ops = append(ops, func(tx store.Tx, _ *api.Deployment) error { return controller.DeleteIfPresent(tx, k) })
	}
	for _, p := range set.Create {
		ops = append(ops, func(tx store.Tx, _ *api.Deployment) error { return controller.PutIfAbsent(tx, p) })
	}
	for _, p := range set.Update {
		ops = append(ops, func(tx store.Tx, _ *api.Deployment) error { return controller.UpdatePod(tx, p) })
	}
	for _, k := range set.Delete {
		ops = append(ops, func(tx store.Tx, _ *api.Deployment) error { return controller.DeleteIfPresent(tx, k) })
	}
	if set.Status != nil {
		ops = append(ops, func(tx store.Tx, cur *api.Deployment) error {
			cur.Status = *set.Status
			return tx.Put(cur)
		})
	}
	d := set.Deployment
	guard := func(tx store.Tx) (*api.Deployment, error) {
		cur, err := store.Get[api.Deployment](tx, d.Namespace, d.Name)
		if store.IsNotFound(err) {
			return nil, controller.ErrStale
		}
		if err != nil {
			return nil, err
		}
		if cur.UID != d.UID || api.HashTemplate(&cur.Spec.Template) != set.Hash {
			return nil, controller.ErrStale
		}
		return cur, nil
	}
	// One transaction: a Deployment's creates and deletes land together.
	if err := controller.Guarded(c.store, 0, guard, ops); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}
