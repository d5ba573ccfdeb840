package daemonset

import (
	"fmt"

	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/scheduler"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// A DaemonSet whose pod asks for devices (devices.flotilla.io/CLASS) runs
// only on the nodes that have them free, as Kubernetes' DaemonSet
// controller treated a node short of a resource: a node the node
// selector matches without room for the pod is not a target (it gets no
// pod, and is not counted in desiredNumberScheduled), and the DaemonSet
// gets a FailedPlacement event naming the node and what it lacks. A pod
// already on a node keeps running there whatever the node now has (a
// device unplugged is the agent's to handle: the pod waits for it).

// ReasonFailedPlacement is the reason of the event about a node that
// gets no pod for want of devices, as Kubernetes names it.
const ReasonFailedPlacement = "FailedPlacement"

// deviceFit tracks, through one pass, the devices free on each node:
// what the node offers less what the pods bound to it asked for, and
// what targets this pass took.
type deviceFit struct {
	nodes map[string]*scheduler.Node
	// wants holds what each DaemonSet's pod asks for.
	wants map[*api.DaemonSet]map[string]int64
}

// newDeviceFit reads the devices of nodes and of the pods bound to them;
// nil when no DaemonSet asks for devices (the pass then costs nothing
// more).
func newDeviceFit(sets []*api.DaemonSet, nodes []*api.Node, pods []*api.Pod) *deviceFit {
	wants := map[*api.DaemonSet]map[string]int64{}
	for _, ds := range sets {
		if want := scheduler.Requests(&ds.Spec.Template.Spec).Devices; len(want) > 0 {
			wants[ds] = want
		}
	}
	if len(wants) == 0 {
		return nil
	}
	view := scheduler.NodesFrom(nodes, pods, nil)
	f := &deviceFit{nodes: make(map[string]*scheduler.Node, len(view)), wants: wants}
	for i := range view {
		f.nodes[view[i].Name] = &view[i]
	}
	return f
}

// take reserves want on node and returns "", or returns why node has no
// room for it ("Insufficient devices.flotilla.io/serial").
func (f *deviceFit) take(node string, want map[string]int64) string {
	n := f.nodes[node]
	if n == nil {
		return scheduler.InsufficientDevices(nil, nil, want)
	}
	if why := scheduler.InsufficientDevices(n.Allocatable.Devices, n.Requested.Devices, want); why != "" {
		return why
	}
	n.Requested.Devices = scheduler.AddDevices(n.Requested.Devices, want, 1)
	return ""
}

// placeable says whether node, which the node selector matches and which
// has no pod of the DaemonSet, has the devices its pod asks for; it
// takes them for the pod if so, and notes the node as unplaced if not.
func (sp *setPlanner) placeable(node *api.Node) bool {
	if sp.fit == nil {
		return true
	}
	want := sp.fit.wants[sp.ds]
	if len(want) == 0 {
		return true
	}
	if why := sp.fit.take(node.Name, want); why != "" {
		sp.unplaced = append(sp.unplaced, api.NodeReason{Node: node.Name, Reason: why})
		return false
	}
	return true
}

// recordUnplaced records a FailedPlacement Warning event on the DaemonSet
// for each node newly left without its pod for want of devices (or for
// another reason than before), and logs it; a node that stays so is not
// recorded again while the hub runs.
func (c *Controller) recordUnplaced(res *Result) error {
	now := c.loop.Now()
	seen := map[string]string{}
	var recs []events.Record
	for _, set := range res.Sets {
		ds := set.DaemonSet
		for _, u := range set.Unplaced {
			k := ds.UID + "/" + u.Node
			seen[k] = u.Reason
			if c.unplaced[k] == u.Reason {
				continue
			}
			recs = append(recs, events.Record{
				Object: api.ObjectReference{Kind: api.KindDaemonSet, Namespace: ds.Namespace, Name: ds.Name, UID: ds.UID},
				Type:   api.EventWarning, Reason: ReasonFailedPlacement,
				Message: fmt.Sprintf("failed to place pod on %q: %s", u.Node, u.Reason),
				Time:    now, Source: api.EventSource{Component: "daemonset-controller"},
			})
		}
	}
	if len(recs) > 0 {
		err := c.store.Update(func(tx store.Tx) error {
			for _, r := range recs {
				if err := events.Put(tx, r, c.eventTTL); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("record %s events: %w", ReasonFailedPlacement, err) // recorded again next pass
		}
		for _, r := range recs {
			c.loop.Logger().Warn("daemonset pod not placed", "daemonset", r.Object.Namespace+"/"+r.Object.Name, "message", r.Message)
		}
	}
	c.unplaced = seen
	return nil
}
