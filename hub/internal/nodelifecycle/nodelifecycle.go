// Package nodelifecycle marks nodes whose agents went quiet: a node not
// heard from for longer than the grace period becomes NotReady (Ready
// Unknown, as Kubernetes does), and the pods on any node that is not Ready
// show Unknown instead of a stale Running until the agent reports again.
// When the hub last heard from a node is its lease (package lease); a hub
// that has just started gives every node a whole grace period from its
// start, so that a hub outage does not make the fleet NotReady; so does a
// hub that has just reconnected to an external broker, and while it is
// disconnected no node is marked (BrokerLost, BrokerConnected).
package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Reasons the controller sets.
const (
	ReasonNodeStatusUnknown = "NodeStatusUnknown"
	ReasonNodeLost          = "NodeLost"
)

// Options configure the controller.
type Options struct {
	Store  store.Store
	Logger *slog.Logger
	// Grace is how long a node may stay silent before it is NotReady
	// (default 40 s, as kube-controller-manager's node-monitor-grace-period).
	Grace time.Duration
	// Period is how often nodes are checked (default 2 s).
	Period time.Duration
	// EventTTL is how long the NodeNotReady events it records are kept.
	EventTTL time.Duration
	Now      func() time.Time
}

// Controller watches node liveness.
type Controller struct {
	opts Options
	loop *controller.Loop

	mu sync.Mutex
	// hearing is since when the hub has been able to hear nodes: its
	// start, or its last reconnect to an external broker. A node's silence
	// counts from then at the earliest.
	hearing time.Time
	// deaf: the hub's own connection to the broker is down, so no node
	// can be heard and none is marked for its silence.
	deaf bool
}

// New returns a controller; call Run to start it.
func New(opts Options) *Controller {
	if opts.Grace <= 0 {
		opts.Grace = 40 * time.Second
	}
	if opts.Period <= 0 {
		opts.Period = 2 * time.Second
	}
	c := &Controller{opts: opts}
	// Periodic: what makes a node NotReady is that nothing changes.
	c.loop = controller.New(controller.Options{Name: "nodelifecycle", Resync: opts.Period, Now: opts.Now, Logger: opts.Logger,
		Pass: func(context.Context, controller.Cause) (time.Time, error) { return time.Time{}, c.Sync() }})
	c.hearing = c.loop.Now().UTC()
	return c
}

// BrokerLost tells the controller that the hub has lost its connection to
// the broker. Until BrokerConnected no node can be heard, so none becomes
// NotReady for being silent: a broker outage is not every node's.
func (c *Controller) BrokerLost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deaf = true
}

// BrokerConnected tells the controller that the hub is connected to the
// broker again: as at the hub's start, each node has a full grace period
// from now to be heard (a fleet reconnecting at once needs it).
func (c *Controller) BrokerConnected() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deaf {
		c.deaf = false
		c.hearing = c.loop.Now().UTC()
	}
}

// listening returns since when nodes can have been heard, and false while
// the hub cannot hear any.
func (c *Controller) listening() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hearing, !c.deaf
}

// Run checks nodes every period until ctx ends.
func (c *Controller) Run(ctx context.Context) error { return c.loop.Run(ctx) }

// Sync runs one pass. It looks for what to change in a read-only
// transaction, so that the store's writers (ingest above all) wait only
// while it writes the few changes, not while it reads the whole fleet;
// the write re-reads each object and checks again.
func (c *Controller) Sync() error {
	now := c.loop.Now().UTC()
	hearing, ok := c.listening()
	if !ok {
		return nil
	}
	var stale []string
	var lost []store.Key
	err := c.opts.Store.View(func(tx store.Tx) error {
		// Read only: the store's objects as it keeps them, uncopied.
		nodes, err := store.ListShared[api.Node](tx, "")
		if err != nil {
			return err
		}
		leases, err := store.ListShared[lease.Lease](tx, "")
		if err != nil {
			return err
		}
		notReady := map[string]bool{}
		// Both lists are in name order: walk them side by side.
		li := 0
		for _, n := range nodes {
			for li < len(leases) && leases[li].Name < n.Name {
				li++
			}
			var l *lease.Lease
			if li < len(leases) && leases[li].Name == n.Name {
				l = leases[li]
			}
			if c.silent(n, l, hearing, now) {
				stale = append(stale, n.Name)
				notReady[n.Name] = true
			} else if !n.IsReady() {
				notReady[n.Name] = true
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		pods, err := store.ListShared[api.Pod](tx, "")
		if err != nil {
			return err
		}
		for _, p := range pods {
			if notReady[p.Spec.NodeName] && p.Status.Reason != ReasonNodeLost {
				lost = append(lost, store.KeyOf(p))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// In batches: after a hub outage every node of a large fleet is
	// silent at once, and 10,000 nodes and their events do not fit in one
	// Badger transaction.
	for i := 0; i < len(stale) || i < len(lost); i += writeBatch {
		if err := c.write(batch(stale, i), batch(lost, i), now); err != nil {
			return err
		}
	}
	return nil
}

// writeBatch is how many nodes, and how many pods, one transaction marks.
const writeBatch = 200

// batch returns the writeBatch items of s from i (none past its end).
func batch[T any](s []T, i int) []T {
	if i >= len(s) {
		return nil
	}
	return s[i:min(i+writeBatch, len(s))]
}

// write marks the stale nodes NotReady and the lost pods NodeLost,
// re-reading each and checking again.
func (c *Controller) write(stale []string, lost []store.Key, now time.Time) error {
	hearing, ok := c.listening()
	if !ok {
		stale = nil // the hub has lost its broker since the pass read
	}
	return c.opts.Store.Update(func(tx store.Tx) error {
		for _, name := range stale {
			n, err := store.Get[api.Node](tx, "", name)
			if store.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			l, err := store.GetShared[lease.Lease](tx, "", name)
			if err != nil && !store.IsNotFound(err) {
				return err
			}
			if !c.silent(n, l, hearing, now) {
				continue // heard from since
			}
			seen := lease.LastSeen(n, l)
			cond := n.Status.Condition(api.NodeReady)
			cond.Status = api.ConditionUnknown
			cond.Reason = ReasonNodeStatusUnknown
			cond.Message = fmt.Sprintf("agent stopped posting heartbeats (last seen %s ago)", now.Sub(seen).Round(time.Second))
			cond.LastTransitionTime = api.NewTime(now.Truncate(time.Second))
			c.loop.Logger().Warn("node not ready: no heartbeat", "node", n.Name, "lastSeen", seen)
			if err := tx.Put(n); err != nil {
				return err
			}
			if err := events.Put(tx, events.Record{
				Object: api.ObjectReference{Kind: api.KindNode, Name: n.Name, UID: n.UID},
				Type:   api.EventWarning, Reason: "NodeNotReady", Message: "Node " + n.Name + " status is now: NodeNotReady (" + cond.Message + ")",
				Time: now, Source: api.EventSource{Component: "hub"},
			}, c.opts.EventTTL); err != nil {
				return err
			}
		}
		ready := map[string]bool{}
		for _, key := range lost {
			p, err := store.Get[api.Pod](tx, key.Namespace, key.Name)
			if store.IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			if p.Status.Reason == ReasonNodeLost {
				continue
			}
			r, seen := ready[p.Spec.NodeName]
			if !seen {
				n, err := store.Get[api.Node](tx, "", p.Spec.NodeName)
				if err != nil && !store.IsNotFound(err) {
					return err
				}
				r = err == nil && n.IsReady()
				ready[p.Spec.NodeName] = r
			}
			if r {
				continue
			}
			markLost(p, now)
			if err := tx.Put(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// silent reports whether n is Ready but has not been heard from for
// longer than the grace period, counted from hearing (since when the hub
// could hear it) at the earliest. l, its lease, may be nil.
func (c *Controller) silent(n *api.Node, l *lease.Lease, hearing, now time.Time) bool {
	cond := n.Status.Condition(api.NodeReady)
	if cond == nil || cond.Status != api.ConditionTrue {
		return false
	}
	seen := lease.LastSeen(n, l)
	if seen.Before(hearing) {
		seen = hearing
	}
	return now.Sub(seen) > c.opts.Grace
}

// markLost shows a pod whose node is unreachable as Unknown and not ready;
// the container states stay as last reported.
func markLost(p *api.Pod, now time.Time) {
	p.Status.Phase = api.PodUnknown
	p.Status.Reason = ReasonNodeLost
	p.Status.Message = fmt.Sprintf("node %s is not ready", p.Spec.NodeName)
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == api.PodReady && p.Status.Conditions[i].Status != api.ConditionFalse {
			p.Status.Conditions[i].Status = api.ConditionFalse
			p.Status.Conditions[i].LastTransitionTime = api.NewTime(now.Truncate(time.Second))
		}
	}
	for i := range p.Status.ContainerStatuses {
		p.Status.ContainerStatuses[i].Ready = false
	}
}
