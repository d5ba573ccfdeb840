// Package autoscaler is the HorizontalPodAutoscaler controller: every
// period (15 s, Kubernetes' sync period) it reads each autoscaler's
// target, the target's pods and their usage in their nodes' newest
// samples (the hub's metrics), computes the replica count as Kubernetes'
// controller does (ceil(current × usage/target), a 10 % tolerance,
// missing and not-ready pods handled as its replica calculator handles
// them, stabilization windows and scaling policies, minReplicas and
// maxReplicas), and writes the target's spec.replicas, the autoscaler's
// status and events. A pod whose node is not Ready or whose samples are
// stale is missing, never idle: a site cut off is not scaled down for
// its silence. A scale-up is held to what the scheduler can place.
package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// DefaultPeriod is how often every autoscaler is computed, Kubernetes'
// --horizontal-pod-autoscaler-sync-period.
const DefaultPeriod = 15 * time.Second

// Samples is where the controller reads the usage of pods: the hub's
// metrics fleet has it.
type Samples interface {
	// Latest returns a node's newest sample, stale or not.
	Latest(node string) (wire.MetricSample, bool)
}

// Options configure the controller; zero values take the defaults of
// controller.Options, and Period DefaultPeriod.
type Options struct {
	Store   store.Store
	Samples Samples
	// Period is how often every autoscaler is computed.
	Period time.Duration
	// CPUInitializationPeriod is how long after its start a pod's cpu
	// samples count only once it is Ready and sampled since (default
	// 5 min, Kubernetes' --horizontal-pod-autoscaler-cpu-initialization-period).
	CPUInitializationPeriod time.Duration
	EventTTL                time.Duration
	Logger                  *slog.Logger
	Now                     func() time.Time
	OnSync                  func(time.Duration)
}

// Controller runs the autoscalers.
type Controller struct {
	opts  Options
	loop  *controller.Loop
	steps controller.Steps[Input, *Result]

	// history is each autoscaler's memory, by uid; only the loop's
	// goroutine touches it.
	history map[string]History
	// mu guards what the watch's events note for the next pass.
	mu sync.Mutex
	// dirty are the autoscalers written since the last pass (by key), and
	// seen the generation each was last planned at (by uid): a write of
	// the controller's own (a status) is no reason for a pass, a new
	// autoscaler or a new spec is.
	dirty map[store.Key]bool
	seen  map[string]int64
	// full is set while the next pass must plan every autoscaler.
	full bool
}

// New returns a controller; call Run to start it.
func New(opts Options) *Controller {
	if opts.Period <= 0 {
		opts.Period = DefaultPeriod
	}
	c := &Controller{opts: opts, history: map[string]History{}, dirty: map[store.Key]bool{}, seen: map[string]int64{}}
	c.steps = controller.Steps[Input, *Result]{Store: opts.Store, Read: c.read, Plan: c.plan, Write: c.write}
	c.loop = controller.New(controller.Options{
		Name: "autoscaler", Store: opts.Store, Kinds: []string{api.KindHorizontalPodAutoscaler},
		Pass: c.pass, Event: c.event,
		Resync: opts.Period, Now: opts.Now, Logger: opts.Logger, OnSync: opts.OnSync,
	})
	return c
}

// Run computes the autoscalers until ctx ends: every period, and soon
// after an autoscaler is created or its spec changes.
func (c *Controller) Run(ctx context.Context) error { return c.loop.Run(ctx) }

// Sync runs one pass over every autoscaler.
func (c *Controller) Sync() error {
	_, err := c.pass(context.Background(), controller.Resynced)
	return err
}

func (c *Controller) event(ev store.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Type == store.Overflow {
		c.full = true
		return
	}
	c.dirty[ev.Key] = true
}

// pass plans every autoscaler, but for a pass woken by changes (Changed),
// which plans only the ones whose spec changed unless events were lost.
func (c *Controller) pass(ctx context.Context, why controller.Cause) (time.Time, error) {
	if why != controller.Changed {
		c.mu.Lock()
		c.full = true
		c.mu.Unlock()
	}
	return c.steps.Pass(ctx, why)
}

// read gathers a pass's input: the autoscalers (all of them, or the
// changed ones), their targets, every pod and node, and the newest
// sample of each node that runs a target's pods.
func (c *Controller) read(tx store.Tx) (Input, error) {
	in := Input{Now: c.loop.Now(), CPUInitializationPeriod: c.opts.CPUInitializationPeriod}
	c.mu.Lock()
	full, dirty := c.full, c.dirty
	c.full, c.dirty = false, map[store.Key]bool{}
	c.mu.Unlock()
	var err error
	if full {
		in.HPAs, err = store.ListShared[api.HorizontalPodAutoscaler](tx, "")
		if err != nil {
			return in, err
		}
		if len(in.HPAs) == 0 {
			clear(c.history)
			clear(c.seen)
			return in, controller.ErrSkip
		}
	} else {
		// Between periodic passes: only autoscalers that are new or whose
		// spec changed, not the ones whose status this controller wrote.
		in.Only = map[string]bool{}
		for k := range dirty {
			h, err := store.Get[api.HorizontalPodAutoscaler](tx, k.Namespace, k.Name)
			if store.IsNotFound(err) {
				continue
			}
			if err != nil {
				return in, err
			}
			if gen, ok := c.seen[h.UID]; ok && gen == h.Generation {
				continue
			}
			in.HPAs = append(in.HPAs, h)
			in.Only[h.UID] = true
		}
		if len(in.HPAs) == 0 {
			return in, controller.ErrSkip
		}
	}
	deps, err := store.ListShared[api.Deployment](tx, "")
	if err != nil {
		return in, err
	}
	in.Deployments = make(map[string]*api.Deployment, len(deps))
	targets := map[string]bool{}
	for _, h := range in.HPAs {
		if h.Spec.ScaleTargetRef.Kind == api.KindDeployment {
			targets[key(h.Namespace, h.Spec.ScaleTargetRef.Name)] = true
		}
	}
	uids := map[string]bool{}
	for _, d := range deps {
		if k := key(d.Namespace, d.Name); targets[k] {
			in.Deployments[k] = d
			uids[d.UID] = true
		}
	}
	if in.Nodes, err = store.ListShared[api.Node](tx, ""); err != nil {
		return in, err
	}
	if in.Pods, err = store.ListShared[api.Pod](tx, ""); err != nil {
		return in, err
	}
	in.Samples = map[string]wire.MetricSample{}
	for _, p := range in.Pods {
		ref := p.ControllerRef()
		if ref == nil || !uids[ref.UID] || p.Spec.NodeName == "" {
			continue
		}
		if _, ok := in.Samples[p.Spec.NodeName]; ok || c.opts.Samples == nil {
			continue
		}
		if s, ok := c.opts.Samples.Latest(p.Spec.NodeName); ok {
			in.Samples[p.Spec.NodeName] = s
		}
	}
	in.History = c.history
	return in, nil
}

func (c *Controller) plan(in Input) (*Result, time.Time) {
	return Plan(in), time.Time{}
}

// write stores what a pass decided: the rescales with their autoscalers'
// statuses and events, each made only while the target still has the
// replicas the pass read (else the next pass plans again); then the
// other statuses and events; controller.Batch autoscalers a transaction. The histories move only for what was
// written.
func (c *Controller) write(res *Result) error {
	if res.Full {
		for uid := range c.seen {
			if _, ok := res.Planned[uid]; !ok {
				delete(c.seen, uid)
			}
		}
		for uid := range c.history {
			if _, ok := res.Planned[uid]; !ok {
				delete(c.history, uid)
			}
		}
	}
	var errs []error
	var rest, scales []*Decision
	for _, d := range res.Decisions {
		if d.Scale == nil {
			rest = append(rest, d)
		} else {
			scales = append(scales, d)
		}
	}
	for start := 0; start < len(scales); start += controller.Batch {
		part := scales[start:min(start+controller.Batch, len(scales))]
		written, err := c.rescale(part)
		for _, d := range part {
			switch {
			case err != nil:
				if ferr := c.failedRescale(d, err, res.Now); ferr != nil {
					errs = append(errs, ferr)
				}
			case !written[d]:
				c.loop.Poke() // the target changed since the pass read it
				delete(res.History, d.HPA.UID)
			default:
				h := res.History[d.HPA.UID]
				res.History[d.HPA.UID] = h.Record(d.Rules, d.Scale.From, d.Scale.To, res.Now)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	for start := 0; start < len(rest); start += controller.Batch {
		part := rest[start:min(start+controller.Batch, len(rest))]
		if err := c.opts.Store.Update(func(tx store.Tx) error {
			for _, d := range part {
				if err := c.putStatus(tx, d); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			errs = append(errs, fmt.Errorf("write the status of %d autoscalers: %w", len(part), err))
		}
	}
	for uid, h := range res.History {
		c.history[uid] = h
	}
	for uid, gen := range res.Planned {
		c.seen[uid] = gen
	}
	return errors.Join(errs...)
}

// rescale writes targets' new replicas, each with its autoscaler's
// status and events, in one transaction; it leaves out (written false)
// each target that is not the one its pass read (another uid, other
// replicas).
func (c *Controller) rescale(part []*Decision) (map[*Decision]bool, error) {
	var written map[*Decision]bool
	err := c.opts.Store.Update(func(tx store.Tx) error {
		written = make(map[*Decision]bool, len(part))
		for _, d := range part {
			ok, err := setReplicas(tx, d.Scale)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := c.putStatus(tx, d); err != nil {
				return err
			}
			written[d] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rescale %d targets: %w", len(part), err)
	}
	for _, d := range part {
		if sc := d.Scale; written[d] {
			c.loop.Logger().Info("rescale", "hpa", d.HPA.Namespace+"/"+d.HPA.Name, "target", sc.Target.String(),
				"from", sc.From, "to", sc.To, "reason", sc.Reason)
		}
	}
	return written, nil
}

// setReplicas writes a target's spec.replicas, as a write of its scale
// subresource does (its generation moves), if it is still the object of
// the uid and replicas the pass read; it reports whether it wrote.
func setReplicas(tx store.Tx, sc *ScaleChange) (bool, error) {
	switch sc.Target.Kind {
	case api.KindDeployment:
		dep, err := store.Get[api.Deployment](tx, sc.Target.Namespace, sc.Target.Name)
		if store.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		cur := int32(1)
		if dep.Spec.Replicas != nil {
			cur = *dep.Spec.Replicas
		}
		if dep.UID != sc.UID || cur != sc.From {
			return false, nil
		}
		to := sc.To
		dep.Spec.Replicas = &to
		dep.Generation++
		return true, tx.Put(dep)
	}
	return false, fmt.Errorf("%s cannot be scaled", sc.Target)
}

// failedRescale records a rescale that could not be written, as
// Kubernetes does: AbleToScale False and a FailedRescale event.
func (c *Controller) failedRescale(d *Decision, cause error, at time.Time) error {
	st := d.HPA.Status
	if d.Status != nil {
		st = *d.Status
	}
	st.DesiredReplicas, st.LastScaleTime = d.Scale.From, d.HPA.Status.LastScaleTime
	now := api.NewTime(at.UTC().Truncate(time.Second))
	for i := range st.Conditions {
		if st.Conditions[i].Type == api.AbleToScale {
			st.Conditions[i] = api.HorizontalPodAutoscalerCondition{Type: api.AbleToScale, Status: api.ConditionFalse, Reason: ReasonFailedUpdateScale,
				Message: "the HPA controller was unable to update the target scale: " + cause.Error(), LastTransitionTime: now}
		}
	}
	failed := &Decision{HPA: d.HPA, Status: &st, Events: []events.Record{{
		Object: api.ObjectReference{Kind: api.KindHorizontalPodAutoscaler, Namespace: d.HPA.Namespace, Name: d.HPA.Name, UID: d.HPA.UID},
		Type:   api.EventWarning, Reason: ReasonFailedRescale, Time: now.Time, Source: api.EventSource{Component: Component},
		Message: fmt.Sprintf("New size: %d; reason: %s; error: %v", d.Scale.To, d.Scale.Reason, cause),
	}}}
	return c.opts.Store.Update(func(tx store.Tx) error { return c.putStatus(tx, failed) })
}

// putStatus writes a decision's status onto the stored autoscaler of the
// same uid (its spec may have changed since the pass read it), and its
// events.
func (c *Controller) putStatus(tx store.Tx, d *Decision) error {
	if d.Status != nil {
		cur, err := store.Get[api.HorizontalPodAutoscaler](tx, d.HPA.Namespace, d.HPA.Name)
		switch {
		case store.IsNotFound(err):
			return nil
		case err != nil:
			return err
		case cur.UID != d.HPA.UID:
			return nil
		}
		cur.Status = *d.Status
		if err := tx.Put(cur); err != nil {
			return err
		}
	}
	for _, e := range d.Events {
		if err := events.Put(tx, e, c.opts.EventTTL); err != nil {
			return err
		}
	}
	return nil
}
