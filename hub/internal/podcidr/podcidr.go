// Package podcidr gives every node its pod subnet: a controller that
// sets spec.podCIDR on each Node that has none to the first free subnet
// of the cluster CIDR (hub serve --cluster-cidr, cut by
// --node-cidr-mask-size), and never changes one that is set. What is free
// is read from the Nodes the store holds, so a deleted node's subnet is
// free again with it and there is nothing to persist or repair. When the
// cluster CIDR has no subnet left, the node gets a Warning event
// (CIDRNotAvailable) and the hub a log line, and the node's pods wait for
// their network until a node is deleted or the plan grows.
package podcidr

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// ReasonCIDRNotAvailable is the reason of the event on a node that got no
// subnet, Kubernetes' node IPAM controller's.
const ReasonCIDRNotAvailable = "CIDRNotAvailable"

// Options configure the controller; zero values take the defaults of
// controller.Options.
type Options struct {
	Store store.Store
	// Network is the cluster's address plan: the cluster CIDR and the
	// node mask size.
	Network ipam.Config
	Logger  *slog.Logger
	// EventTTL is how long the CIDRNotAvailable events are kept.
	EventTTL time.Duration
	Debounce time.Duration
	Resync   time.Duration
	Now      func() time.Time
	OnSync   func(time.Duration)
}

// Controller hands out pod subnets.
type Controller struct {
	opts  Options
	loop  *controller.Loop
	steps controller.Steps[Input, Result]

	mu sync.Mutex
	// warned are the nodes already told (event and log) that no subnet
	// was free, by uid: told once while they wait, not at every pass.
	warned map[string]bool
}

// New returns a controller; call Run to start it.
func New(opts Options) *Controller {
	c := &Controller{opts: opts, warned: map[string]bool{}}
	c.steps = controller.Steps[Input, Result]{Store: opts.Store, Read: c.read, Plan: c.plan, Write: c.write}
	c.loop = controller.New(controller.Options{
		Name: "podcidr", Store: opts.Store, Kinds: []string{api.KindNode},
		Pass: c.steps.Pass, Debounce: opts.Debounce, Resync: opts.Resync, Now: opts.Now, Logger: opts.Logger, OnSync: opts.OnSync,
	})
	return c
}

// Run gives nodes subnets until ctx ends: when a node is created (or
// deleted, which may free a subnet for a waiting one), and every resync
// period.
func (c *Controller) Run(ctx context.Context) error { return c.loop.Run(ctx) }

// Sync runs one pass.
func (c *Controller) Sync() error {
	_, err := c.steps.Pass(context.Background(), controller.Started)
	return err
}

// Input is what a pass reads: every node, and the nodes already warned.
type Input struct {
	Nodes  []*api.Node
	Warned map[string]bool
}

// Result is what a pass decided.
type Result struct {
	// Assign gives nodes their subnets.
	Assign []Assignment
	// Full are the nodes that got none because none is free, and were
	// not warned yet; Err says why.
	Full []*api.Node
	Err  error
	// Waiting are the uids of every node that got none.
	Waiting map[string]bool
}

// Assignment is one node's new subnet.
type Assignment struct {
	Node, UID string
	CIDR      netip.Prefix
}

func (c *Controller) read(tx store.Tx) (Input, error) {
	nodes, err := store.ListShared[api.Node](tx, "")
	if err != nil {
		return Input{}, err
	}
	for _, n := range nodes {
		if n.Spec.PodCIDR == "" {
			c.mu.Lock()
			warned := make(map[string]bool, len(c.warned))
			for uid := range c.warned {
				warned[uid] = true
			}
			c.mu.Unlock()
			return Input{Nodes: nodes, Warned: warned}, nil
		}
	}
	// Every node has its subnet: nothing to do, and nobody waits.
	c.mu.Lock()
	clear(c.warned)
	c.mu.Unlock()
	return Input{}, controller.ErrSkip
}

func (c *Controller) plan(in Input) (Result, time.Time) {
	return Plan(c.opts.Network, in), time.Time{}
}

// Plan gives each node without a subnet the first free one, the nodes
// created first first (then by name). Subnets in use are those the nodes
// hold; a node's subnet outside the cluster CIDR (the plan changed) is
// kept and takes nothing from it. Nodes left without one when the CIDR
// is full are Waiting, and Full if not warned yet.
func Plan(cfg ipam.Config, in Input) Result {
	alloc := ipam.NewNodeCIDRs(cfg.ClusterCIDR, cfg.NodeMaskSize)
	var without []*api.Node
	for _, n := range in.Nodes {
		if n.Spec.PodCIDR == "" {
			without = append(without, n)
			continue
		}
		if p, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
			alloc.Use(p, n.Name)
		}
	}
	slices.SortStableFunc(without, func(a, b *api.Node) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	var res Result
	for _, n := range without {
		p, err := alloc.Allocate(n.Name)
		if err != nil {
			if res.Waiting == nil {
				res.Waiting = map[string]bool{}
			}
			res.Waiting[n.UID] = true
			res.Err = err
			if !in.Warned[n.UID] {
				res.Full = append(res.Full, n)
			}
			continue
		}
		res.Assign = append(res.Assign, Assignment{Node: n.Name, UID: n.UID, CIDR: p})
	}
	return res
}

// write stores the assignments, controller.Batch nodes a transaction,
// and warns the nodes that got none. Each transaction checks again that
// the node still has no subnet and that its subnet is still free (an
// operator's apply may have taken it since the pass read): one that is
// not is left for the next pass, which the write asks for.
func (c *Controller) write(res Result) error {
	var errs []error
	now := c.loop.Now().UTC()
	for start := 0; start < len(res.Assign); start += controller.Batch {
		part := res.Assign[start:min(start+controller.Batch, len(res.Assign))]
		var done []Assignment
		stale := false
		err := c.opts.Store.Update(func(tx store.Tx) error {
			done, stale = nil, false
			nodes, err := store.ListShared[api.Node](tx, "")
			if err != nil {
				return err
			}
			taken := make(map[netip.Prefix]string, len(nodes))
			for _, n := range nodes {
				if p, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
					taken[p.Masked()] = n.Name
				}
			}
			for _, a := range part {
				n, err := store.Get[api.Node](tx, "", a.Node)
				if store.IsNotFound(err) {
					continue
				}
				if err != nil {
					return err
				}
				if n.UID != a.UID || n.Spec.PodCIDR != "" {
					continue // another node of the name, or given one since
				}
				if owner, ok := taken[a.CIDR]; ok && owner != a.Node {
					stale = true
					continue
				}
				n.Spec.PodCIDR = a.CIDR.String()
				n.Spec.PodCIDRs = []string{n.Spec.PodCIDR}
				if err := tx.Put(n); err != nil {
					return err
				}
				taken[a.CIDR] = a.Node
				done = append(done, a)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("give %d nodes their pod subnets: %w", len(part), err))
			continue
		}
		for _, a := range done {
			c.loop.Logger().Info("pod subnet", "node", a.Node, "podCIDR", a.CIDR.String())
		}
		if stale {
			c.loop.Poke()
		}
	}
	if len(res.Full) > 0 {
		if err := c.warn(res.Full, res.Err, now); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	for uid := range c.warned {
		if !res.Waiting[uid] {
			delete(c.warned, uid)
		}
	}
	c.mu.Unlock()
	return errors.Join(errs...)
}

// warn records a Warning event on each node that got no subnet, and logs
// it, once while it waits.
func (c *Controller) warn(nodes []*api.Node, why error, now time.Time) error {
	msg := fmt.Sprintf("no pod subnet for the node: %v; its pods wait for one", why)
	err := c.opts.Store.Update(func(tx store.Tx) error {
		for _, n := range nodes {
			if err := events.Put(tx, events.Record{
				Object: api.ObjectReference{Kind: api.KindNode, Name: n.Name, UID: n.UID},
				Type:   api.EventWarning, Reason: ReasonCIDRNotAvailable, Message: msg,
				Time: now, Source: api.EventSource{Component: "hub"},
			}, c.opts.EventTTL); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record %s events: %w", ReasonCIDRNotAvailable, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range nodes {
		c.warned[n.UID] = true
		c.loop.Logger().Warn("no pod subnet for node: the cluster CIDR is full; its pods wait", "node", n.Name, "err", why)
	}
	return nil
}
