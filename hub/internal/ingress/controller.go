package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Options configure the controller; zero values take the defaults of
// controller.Options.
type Options struct {
	Store  store.Store
	Logger *slog.Logger
	// EventTTL is how long its events are kept.
	EventTTL time.Duration
	Debounce time.Duration
	Resync   time.Duration
	Now      func() time.Time
	OnSync   func(time.Duration)
}

// Controller keeps Ingresses' status and reports their problems.
type Controller struct {
	opts  Options
	loop  *controller.Loop
	steps controller.Steps[Input, Result]

	mu sync.Mutex
	// reported are the problems recorded as events, per Ingress uid: a
	// problem is recorded once while it lasts, not at every pass.
	reported map[string]map[Problem]bool
}

// New returns a controller; call Run to start it.
func New(opts Options) *Controller {
	c := &Controller{opts: opts, reported: map[string]map[Problem]bool{}}
	c.steps = controller.Steps[Input, Result]{Store: opts.Store, Read: c.read, Plan: c.plan, Write: c.write}
	c.loop = controller.New(controller.Options{
		Name: "ingress", Store: opts.Store,
		Kinds: []string{api.KindIngress, api.KindIngressClass, api.KindNode, api.KindService, api.KindSecret},
		Pass:  c.steps.Pass, Debounce: opts.Debounce, Resync: opts.Resync, Now: opts.Now, Logger: opts.Logger, OnSync: opts.OnSync,
	})
	return c
}

// Run keeps the status until ctx ends: on any change to an Ingress, a
// class, a Node, a Service or a Secret, and every resync period.
func (c *Controller) Run(ctx context.Context) error { return c.loop.Run(ctx) }

// Sync runs one pass.
func (c *Controller) Sync() error {
	_, err := c.steps.Pass(context.Background(), controller.Started)
	return err
}

// Result is what a pass writes.
type Result struct {
	// Status are the Ingresses whose status changes, with the new one.
	Status []*api.Ingress
	// Events are the problems not recorded yet.
	Events []Event
	// Reported are every Ingress's problems now, by uid.
	Reported map[string]map[Problem]bool
}

// Event is one problem to record on an Ingress.
type Event struct {
	Ingress *api.Ingress
	Problem Problem
}

// read gathers the Ingresses and what they refer to; the Secrets' types
// only, of the Secrets their TLS entries name.
func (c *Controller) read(tx store.Tx) (Input, error) {
	var in Input
	var err error
	if in.Ingresses, err = store.ListShared[api.Ingress](tx, ""); err != nil {
		return in, err
	}
	if len(in.Ingresses) == 0 {
		c.mu.Lock()
		clear(c.reported)
		c.mu.Unlock()
		return in, controller.ErrSkip
	}
	if in.Classes, err = store.ListShared[api.IngressClass](tx, ""); err != nil {
		return in, err
	}
	if in.Nodes, err = store.ListShared[api.Node](tx, ""); err != nil {
		return in, err
	}
	svcs, err := store.ListShared[api.Service](tx, "")
	if err != nil {
		return in, err
	}
	byKey := make(map[string]*api.Service, len(svcs))
	for _, s := range svcs {
		byKey[s.Namespace+"/"+s.Name] = s
	}
	in.Service = func(ns, name string) *api.Service { return byKey[ns+"/"+name] }
	types := map[string]string{}
	for _, ing := range in.Ingresses {
		for _, t := range ing.Spec.TLS {
			k := ing.Namespace + "/" + t.SecretName
			if _, done := types[k]; done || t.SecretName == "" {
				continue
			}
			sec, err := store.Get[api.Secret](tx, ing.Namespace, t.SecretName)
			switch {
			case store.IsNotFound(err):
				continue
			case err != nil:
				return in, err
			}
			types[k] = sec.Type
		}
	}
	in.SecretType = func(ns, name string) (string, bool) {
		t, ok := types[ns+"/"+name]
		return t, ok
	}
	return in, nil
}

func (c *Controller) plan(in Input) (Result, time.Time) {
	c.mu.Lock()
	reported := make(map[string]map[Problem]bool, len(c.reported))
	maps.Copy(reported, c.reported)
	c.mu.Unlock()
	return PlanStatus(Resolve(in), reported), time.Time{}
}

// PlanStatus decides each Ingress's status (the addresses of the nodes
// that serve it; none for one Flotilla does not serve) and the events
// of the problems not reported before (reported, by Ingress uid).
func PlanStatus(p Plan, reported map[string]map[Problem]bool) Result {
	res := Result{Reported: map[string]map[Problem]bool{}}
	all := append(slices.Clone(p.Served), p.NotServed...)
	for _, s := range all {
		ing := s.Ingress
		var want api.IngressStatus
		for _, a := range s.Addresses {
			want.LoadBalancer.Ingress = append(want.LoadBalancer.Ingress, api.IngressLoadBalancerIngress{IP: a})
		}
		if !controller.Equal(ing.Status, want) {
			next := *ing
			next.Status = want
			res.Status = append(res.Status, &next)
		}
		now := map[Problem]bool{}
		for _, pr := range s.Problems {
			now[pr] = true
			if !reported[ing.UID][pr] {
				res.Events = append(res.Events, Event{Ingress: ing, Problem: pr})
			}
		}
		if len(now) > 0 {
			res.Reported[ing.UID] = now
		}
	}
	return res
}

// write stores the statuses, controller.Batch a transaction, each on the
// stored Ingress if it is still the one planned for (same uid), then
// records the events.
func (c *Controller) write(res Result) error {
	var errs []error
	for start := 0; start < len(res.Status); start += controller.Batch {
		part := res.Status[start:min(start+controller.Batch, len(res.Status))]
		err := c.opts.Store.Update(func(tx store.Tx) error {
			for _, want := range part {
				cur, err := store.Get[api.Ingress](tx, want.Namespace, want.Name)
				if store.IsNotFound(err) {
					continue
				}
				if err != nil {
					return err
				}
				if cur.UID != want.UID {
					continue
				}
				cur.Status = want.Status
				if err := tx.Put(cur); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("write the status of %d Ingresses: %w", len(part), err))
			continue
		}
		for _, in := range part {
			c.loop.Logger().Info("ingress served", "ingress", in.Namespace+"/"+in.Name, "addresses", addresses(in.Status))
		}
	}
	if len(res.Events) > 0 {
		if err := c.record(res.Events); err != nil {
			errs = append(errs, err)
			return errors.Join(errs...) // reported stays: the next pass tries again
		}
	}
	c.mu.Lock()
	c.reported = res.Reported
	c.mu.Unlock()
	return errors.Join(errs...)
}

// record writes the events, 500 a transaction.
func (c *Controller) record(evs []Event) error {
	now := c.loop.Now().UTC()
	for start := 0; start < len(evs); start += controller.Batch {
		part := evs[start:min(start+controller.Batch, len(evs))]
		err := c.opts.Store.Update(func(tx store.Tx) error {
			for _, e := range part {
				if err := events.Put(tx, events.Record{
					Object: api.ObjectReference{Kind: api.KindIngress, Namespace: e.Ingress.Namespace, Name: e.Ingress.Name, UID: e.Ingress.UID},
					Type:   api.EventWarning, Reason: e.Problem.Reason, Message: e.Problem.Message,
					Time: now, Source: api.EventSource{Component: "ingress-controller"},
				}, c.opts.EventTTL); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("record %d Ingress events: %w", len(part), err)
		}
		for _, e := range part {
			c.loop.Logger().Warn(e.Problem.Message, "ingress", e.Ingress.Namespace+"/"+e.Ingress.Name, "reason", e.Problem.Reason)
		}
	}
	return nil
}

func addresses(s api.IngressStatus) string {
	var list []string
	for _, in := range s.LoadBalancer.Ingress {
		list = append(list, in.IP)
	}
	return strings.Join(list, ",")
}
