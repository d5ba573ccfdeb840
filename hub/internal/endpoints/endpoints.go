// Package endpoints is the endpoints controller: for every Service with a
// selector it keeps the Endpoints object of the same name, owned by the
// Service, listing the pods the selector matches that have an address,
// ready or not ready (Subsets, as Kubernetes' endpoints controller
// computes them). It writes an Endpoints object only when what it holds
// changes, and deletes it with its Service (or when the Service loses its
// selector). It reads and writes only the store; dispatch sends each
// node the endpoints of its site.
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Options configure the controller; zero values take the defaults of
// controller.Options.
type Options struct {
	Store    store.Store
	Logger   *slog.Logger
	Debounce time.Duration
	Resync   time.Duration
	Now      func() time.Time
	OnSync   func(time.Duration)
}

// Controller keeps Services' Endpoints.
type Controller struct {
	store store.Store
	loop  *controller.Loop
	steps controller.Steps[Input, Result]
}

// New returns a controller; call Run to start it.
func New(opts Options) *Controller {
	c := &Controller{store: opts.Store}
	c.steps = controller.Steps[Input, Result]{Store: opts.Store, Read: read, Plan: c.plan, Write: c.write}
	c.loop = controller.New(controller.Options{
		Name: "endpoints", Store: opts.Store, Kinds: []string{api.KindService, api.KindPod, api.KindNode, api.KindEndpoints},
		Pass: c.steps.Pass, Debounce: opts.Debounce, Resync: opts.Resync, Now: opts.Now, Logger: opts.Logger, OnSync: opts.OnSync,
	})
	return c
}

// Run keeps Endpoints until ctx ends: on any change to a Service, Pod,
// Node or Endpoints, and every resync period.
func (c *Controller) Run(ctx context.Context) error { return c.loop.Run(ctx) }

// Sync runs one pass.
func (c *Controller) Sync() error {
	_, err := c.steps.Pass(context.Background(), controller.Started)
	return err
}

// Input is what a pass reads: the store's shared objects, which Plan
// does not change.
type Input struct {
	Services  []*api.Service
	Endpoints []*api.Endpoints
	Pods      []*api.Pod
	Nodes     []*api.Node
	// Now stamps the Endpoints a pass creates.
	Now api.Time
}

// Result is what a pass writes.
type Result struct {
	// Put are Endpoints to create or replace, each for its Service.
	Put []Write
	// Delete are Endpoints whose Service is gone or has no selector.
	Delete []store.Key
}

// Write is one Endpoints object to store for the Service of uid Service.
type Write struct {
	Service   string
	Endpoints *api.Endpoints
	Created   bool
	Ready     int
	NotReady  int
}

func read(tx store.Tx) (Input, error) {
	var in Input
	var err error
	if in.Services, err = store.ListShared[api.Service](tx, ""); err != nil {
		return in, err
	}
	if in.Endpoints, err = store.ListShared[api.Endpoints](tx, ""); err != nil {
		return in, err
	}
	if len(in.Services) == 0 && len(in.Endpoints) == 0 {
		return in, controller.ErrSkip // a fleet without Services costs a pass nothing
	}
	if in.Pods, err = store.ListShared[api.Pod](tx, ""); err != nil {
		return in, err
	}
	in.Nodes, err = store.ListShared[api.Node](tx, "")
	return in, err
}

func (c *Controller) plan(in Input) (Result, time.Time) {
	in.Now = api.NewTime(c.loop.Now().UTC().Truncate(time.Second))
	return Plan(in), time.Time{}
}

// Plan decides every Service's Endpoints: each Service with a selector
// gets the Endpoints of its name, computed by Subsets, written when its
// subsets, labels or owner differ from the stored one's; Endpoints the
// Services own whose Service is gone or has no selector are deleted.
// Endpoints no Service owns (none the hub wrote) are left alone unless a
// Service of their name takes them over.
func Plan(in Input) Result {
	ready := make(map[string]bool, len(in.Nodes))
	for _, n := range in.Nodes {
		ready[n.Name] = n.IsReady()
	}
	nodeReady := func(name string) bool { return ready[name] }
	stored := make(map[store.Key]*api.Endpoints, len(in.Endpoints))
	for _, ep := range in.Endpoints {
		stored[store.KeyOf(ep)] = ep
	}
	pods := indexPods(in.Pods)

	var res Result
	selecting := map[store.Key]bool{} // the Endpoints the Services with a selector keep
	for _, svc := range in.Services {
		if len(svc.Spec.Selector) == 0 {
			continue
		}
		key := store.Key{Kind: api.KindEndpoints, Namespace: svc.Namespace, Name: svc.Name}
		selecting[key] = true
		want := desired(svc, Subsets(svc, pods.matching(svc.Namespace, svc.Spec.Selector), nodeReady))
		cur := stored[key]
		if cur != nil && sameEndpoints(cur, want) {
			continue
		}
		w := Write{Service: svc.UID, Endpoints: want, Created: cur == nil}
		if cur != nil {
			// Replace what the controller keeps; the object stays the same.
			want.UID, want.CreationTimestamp, want.Annotations = cur.UID, cur.CreationTimestamp, cur.Annotations
		} else {
			want.UID, want.CreationTimestamp = api.NewUID(), in.Now
		}
		for _, s := range want.Subsets {
			w.Ready += len(s.Addresses)
			w.NotReady += len(s.NotReadyAddresses)
		}
		res.Put = append(res.Put, w)
	}
	for _, ep := range in.Endpoints {
		key := store.KeyOf(ep)
		if ref := ep.ControllerRef(); ref != nil && ref.Kind == api.KindService && !selecting[key] {
			res.Delete = append(res.Delete, key)
		}
	}
	return res
}

// desired is the Endpoints object svc should have: its name and
// namespace, its labels (and the headless label), owned by it.
func desired(svc *api.Service, subsets []api.EndpointSubset) *api.Endpoints {
	labels := maps.Clone(svc.Labels)
	if svc.Spec.IsHeadless() {
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelHeadless] = ""
	}
	isController := true
	return &api.Endpoints{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEndpoints},
		ObjectMeta: api.ObjectMeta{
			Namespace: svc.Namespace, Name: svc.Name, Labels: labels,
			OwnerReferences: []api.OwnerReference{{APIVersion: "v1", Kind: api.KindService, Name: svc.Name, UID: svc.UID, Controller: &isController}},
		},
		Subsets: subsets,
	}
}

// sameEndpoints reports whether stored already holds what want says:
// its subsets, labels and owner.
func sameEndpoints(stored, want *api.Endpoints) bool {
	return controller.Equal(stored.Subsets, want.Subsets) && controller.Equal(stored.Labels, want.Labels) &&
		controller.Equal(stored.OwnerReferences, want.OwnerReferences)
}

// write stores a plan, controller.Batch objects a transaction. An
// Endpoints object is written only if its Service is still the one it was
// computed for (the next pass computes a recreated one's); a deletion
// checks again that no Service with a selector has the name.
func (c *Controller) write(res Result) error {
	log := c.loop.Logger()
	var errs []error
	for start := 0; start < len(res.Put); start += controller.Batch {
		part := res.Put[start:min(start+controller.Batch, len(res.Put))]
		err := c.store.Update(func(tx store.Tx) error {
			for _, w := range part {
				ep := w.Endpoints
				svc, err := store.GetShared[api.Service](tx, ep.Namespace, ep.Name)
				if store.IsNotFound(err) {
					continue
				}
				if err != nil {
					return err
				}
				if svc.UID != w.Service || len(svc.Spec.Selector) == 0 {
					continue
				}
				if err := tx.Put(ep); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("write %d Endpoints: %w", len(part), err))
			continue
		}
		for _, w := range part {
			verb := "update"
			if w.Created {
				verb = "create"
			}
			log.Debug(verb+" endpoints", "service", w.Endpoints.Namespace+"/"+w.Endpoints.Name, "ready", w.Ready, "notReady", w.NotReady)
		}
	}
	if len(res.Delete) > 0 {
		for start := 0; start < len(res.Delete); start += controller.Batch {
			part := res.Delete[start:min(start+controller.Batch, len(res.Delete))]
			err := c.store.Update(func(tx store.Tx) error {
				for _, k := range part {
					svc, err := store.GetShared[api.Service](tx, k.Namespace, k.Name)
					if err == nil && len(svc.Spec.Selector) > 0 {
						continue // a Service took the name back since
					}
					if err != nil && !store.IsNotFound(err) {
						return err
					}
					if err := controller.DeleteIfPresent(tx, k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("delete %d Endpoints: %w", len(part), err))
				continue
			}
			for _, k := range part {
				log.Info("delete endpoints: their Service is gone or selects no pods", "endpoints", k.Namespace+"/"+k.Name)
			}
		}
	}
	return errors.Join(errs...)
}
