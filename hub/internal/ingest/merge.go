package ingest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// landing is what one node's update comes to, decided by mergeNode
// without touching the store; flush then writes it.
type landing struct {
	// skip: nothing to land (a will, or unusable messages, from a node
	// the hub never met).
	skip bool
	// node is the Node to write; nil: the stored one stays.
	node *api.Node
	// lease is the node's newest lease (written or not: see
	// leaseNeedsWrite).
	lease lease.Lease
	// events are the hub's own events about the node (its Ready
	// changing).
	events []events.Record
	// report is the update's pod status report, newer than the last one
	// applied: its pods' status is to be written.
	report *wire.PodStatusReport
	// askHello: the node came back to Ready by a heartbeat alone, so the
	// hub asks for its hello and pods' status.
	askHello bool
	// statusMissed: a heartbeat names a pod status report the hub never
	// applied.
	statusMissed bool
	// restartedFrom is, when the agent's sequence numbers restarted
	// (its local state was rebuilt), the newest number it had sent
	// before; 0 otherwise.
	restartedFrom uint64
	// badAgentLabels is why the stored AnnotationAgentLabels did not
	// decode (the hello's labels were then all taken as new); nil if it
	// did.
	badAgentLabels error
}

// mergeNode decides how update u lands on a node: against the stored Node
// (nil: none; never modified: edits go to a copy) and ingest's newest
// lease for it, at now. It is a pure function; the steps it takes are
// named below, each on the merge under way.
func mergeNode(name string, u *nodeUpdate, l lease.Lease, stored *api.Node, now time.Time) landing {
	m := &merging{u: u, stored: stored, out: landing{lease: l}, seq: l.Seq, now: now}
	if stored == nil {
		if u.seen.IsZero() {
			return landing{skip: true}
		}
		m.created = true
		m.stored = &api.Node{}
		m.node = &api.Node{
			TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
			ObjectMeta: api.ObjectMeta{Name: name, UID: api.NewUID(), CreationTimestamp: api.NewTime(now.UTC().Truncate(time.Second))},
		}
	}
	m.restartOrdering()
	m.hello()
	m.observed()
	m.leaseFacts()
	m.liveness()
	m.readyChange(name)
	m.podStatus()
	m.out.lease.Seq = m.seq
	m.out.node = m.node
	return m.out
}

// merging is a merge under way.
type merging struct {
	u   *nodeUpdate
	now time.Time
	// stored is the Node as stored (empty when created); node, the copy
	// being edited (nil until the first edit).
	stored, node *api.Node
	created      bool
	seq          lease.Seq
	out          landing
}

// current is the node as edited so far.
func (m *merging) current() *api.Node {
	if m.node != nil {
		return m.node
	}
	return m.stored
}

// edit returns the node to change: a copy of the stored one, made once.
func (m *merging) edit() *api.Node {
	if m.node == nil {
		m.node = editableNode(m.stored)
	}
	return m.node
}

// editableNode copies n so that the copy's labels, annotations and
// conditions (what a merge changes in place) can be changed without
// changing n; the rest is shared, and only ever replaced in the copy.
func editableNode(n *api.Node) *api.Node {
	c := *n
	c.Labels = maps.Clone(n.Labels)
	c.Annotations = maps.Clone(n.Annotations)
	c.Status.Conditions = slices.Clone(n.Status.Conditions)
	return &c
}

// restartOrdering: a hello takes a fresh number, above everything the
// agent sent before; one that does not means the agent's local state was
// rebuilt. Its ordering starts afresh rather than ignore it forever.
func (m *merging) restartOrdering() {
	if newest := m.seq.Newest(); m.u.hello != nil && newest > 0 && m.u.helloSeq <= newest {
		m.out.restartedFrom = newest
		m.seq = lease.Seq{}
	}
}

// hello applies a newer hello's labels and facts; the same hello again (a
// reconnect) changes nothing.
func (m *merging) hello() {
	u := m.u
	if u.hello == nil || u.helloSeq < m.seq.Hello {
		return
	}
	m.seq.Hello = u.helloSeq
	n := editableNode(m.current())
	m.out.badAgentLabels = applyHello(n, u.hello)
	if m.created || m.node != nil || !sameHelloFacts(n, m.stored) {
		m.node = n
	}
}

// observed records the revision the agent runs, if a newer message says.
func (m *merging) observed() {
	if m.u.observedSeq <= m.seq.Observed {
		return
	}
	m.seq.Observed = m.u.observedSeq
	if m.current().Status.ObservedRevision != m.u.observed {
		m.edit().Status.ObservedRevision = m.u.observed
	}
}

// leaseFacts counts what ingest dropped of the node's messages and takes
// the agent's newest word on its outbox.
func (m *merging) leaseFacts() {
	u, l := m.u, &m.out.lease
	if len(u.dropped) > 0 {
		// A new map: the stored lease must not share the one that grows.
		dropped := maps.Clone(l.IngestDropped)
		if dropped == nil {
			dropped = map[string]uint64{}
		}
		for reason, n := range u.dropped {
			dropped[reason] += n
		}
		l.IngestDropped = dropped
	}
	if u.outbox != nil && u.outboxSeq > m.seq.Outbox {
		l.Outbox = api.NodeOutbox{Queued: u.outbox.Queued, Dropped: u.outbox.Dropped, DroppedByClass: u.outbox.DroppedByClass, AppendedByClass: u.outbox.AppendedByClass}
		m.seq.Outbox = u.outboxSeq
	}
}

// liveness: a node heard from renews its lease and is Ready and online;
// one whose will arrived (and nothing since) is offline, Ready Unknown.
func (m *merging) liveness() {
	switch {
	case !m.u.seen.IsZero():
		seen := api.NewTime(m.u.seen.UTC())
		m.out.lease.RenewTime = seen
		if c := m.current(); !c.IsReady() || !c.Status.Online {
			n := m.edit()
			n.Status.LastSeen = seen
			n.Status.Online = true
			setReady(n, api.ConditionTrue, ReasonAgentReady, "agent is posting heartbeats", seen)
		}
	case m.u.online != nil && !*m.u.online:
		c := m.current()
		// The hub can no longer hear the node: Unknown (the
		// node.kubernetes.io/unreachable taint), as Kubernetes has it for a
		// kubelet that stopped posting status; not False (not-ready), which
		// a node says of itself. Node lifecycle may have set Unknown
		// already for its silence: the transition time then stays, so a
		// toleration's clock starts once.
		if cond := c.Status.Condition(api.NodeReady); c.Status.Online || cond == nil || cond.Status != api.ConditionUnknown || cond.Reason != ReasonAgentOffline {
			n := m.edit()
			n.Status.Online = false
			setReady(n, api.ConditionUnknown, ReasonAgentOffline, "agent disconnected from the broker", api.NewTime(m.now.UTC()))
		}
	}
}

// readyChange records an event when the node's readiness changed, and
// asks a node back by a heartbeat alone for its pods: the agent never
// left (the hub was late), so it will not re-report its pods, which node
// lifecycle may have marked NodeLost meanwhile; its hello comes with its
// pods' current status.
func (m *merging) readyChange(name string) {
	wasReady := !m.created && m.stored.IsReady()
	after := m.current()
	ready := after.IsReady()
	if ready && !wasReady && !m.created && m.u.hello == nil && m.u.podReport == nil {
		m.out.askHello = true
	}
	if ready == wasReady {
		return
	}
	reason, typ := "NodeReady", api.EventNormal
	if !ready {
		reason, typ = "NodeNotReady", api.EventWarning
	}
	c := after.Status.Condition(api.NodeReady)
	m.out.events = append(m.out.events, events.Record{
		Object: api.ObjectReference{Kind: api.KindNode, Name: name, UID: after.UID},
		Type:   typ, Reason: reason, Message: fmt.Sprintf("Node %s status is now: %s (%s)", name, reason, c.Message),
		Time: m.now, Source: api.EventSource{Component: "hub"},
	})
}

// podStatus takes a newer pod status report, and notes a heartbeat that
// names a report the hub never applied (the broker took it, but it did
// not reach the hub).
func (m *merging) podStatus() {
	if m.u.podReport != nil && m.u.reportSeq > m.seq.PodStatus {
		m.out.report = m.u.podReport
		m.seq.PodStatus = m.u.reportSeq
	}
	m.out.statusMissed = m.u.statusClaim > m.seq.PodStatus
}

// leaseNeedsWrite reports whether latest must be written over stored
// (nil: none stored). The lease is written with every fact it orders (so
// that a stored fact is never newer than its stored sequence number, and
// a report that changed nothing needs no write), for a new node, when the
// agent's outbox gained or lost entries or ingest dropped a message, and
// otherwise at most every resolution to renew it.
func leaseNeedsWrite(stored, latest *lease.Lease, nodeWritten, podsWritten bool, resolution time.Duration) bool {
	return stored == nil || nodeWritten || podsWritten || stored.Seq.Hello != latest.Seq.Hello ||
		latest.RenewTime.Sub(stored.RenewTime.Time) >= resolution ||
		stored.Outbox.Queued != latest.Outbox.Queued || stored.Outbox.Dropped != latest.Outbox.Dropped ||
		!maps.Equal(stored.IngestDropped, latest.IngestDropped)
}

// applyHello merges the agent's announcement into the node. Labels the
// agent asks for are applied as a change against what it asked for last
// time, so labels an operator set or removed by hand stay as they are.
// If what it asked for last time does not decode (someone edited the
// annotation), every label it asks for is taken as new, and the error
// says why.
func applyHello(node *api.Node, h *wire.Hello) error {
	var previous map[string]string
	var bad error
	if raw := node.Annotations[AnnotationAgentLabels]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &previous); err != nil {
			previous = nil
			bad = fmt.Errorf("annotation %s: %w", AnnotationAgentLabels, err)
		}
	}
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	for k := range previous {
		if _, still := h.Labels[k]; !still {
			delete(node.Labels, k)
		}
	}
	for k, v := range h.Labels {
		if old, had := previous[k]; !had || old != v || isWellKnown(k) {
			node.Labels[k] = v
		}
	}
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[AnnotationAgentLabels] = agentLabelsAnnotation(h.Labels)
	node.Status.NodeInfo = h.Info
	node.Status.Capacity = h.Capacity
	node.Status.Allocatable = h.Capacity
	node.Status.Addresses = h.Addresses
	node.Status.Devices = h.Devices
	return bad
}

// agentLabelsAnnotation is the value of AnnotationAgentLabels for labels:
// their JSON, keys sorted.
func agentLabelsAnnotation(labels map[string]string) string {
	raw, err := json.Marshal(labels)
	if err != nil {
		panic("ingest: labels do not encode: " + err.Error()) // a map of strings always encodes
	}
	return string(raw)
}

// sameHelloFacts reports whether a and b agree on everything a hello
// sets.
func sameHelloFacts(a, b *api.Node) bool {
	return maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) &&
		a.Status.NodeInfo == b.Status.NodeInfo && maps.Equal(a.Status.Capacity, b.Status.Capacity) &&
		maps.Equal(a.Status.Allocatable, b.Status.Allocatable) && slices.Equal(a.Status.Addresses, b.Status.Addresses) &&
		slices.Equal(a.Status.Devices, b.Status.Devices)
}

func isWellKnown(k string) bool {
	return k == api.LabelHostname || k == api.LabelOS || k == api.LabelArch
}

// setReady sets the Ready condition, moving its transition time only when
// its status changes.
func setReady(node *api.Node, status api.ConditionStatus, reason, message string, now api.Time) {
	c := node.Status.Condition(api.NodeReady)
	if c == nil {
		node.Status.Conditions = append(node.Status.Conditions, api.NodeCondition{Type: api.NodeReady})
		c = &node.Status.Conditions[len(node.Status.Conditions)-1]
	}
	if c.Status != status {
		c.LastTransitionTime = now
	}
	c.Status, c.Reason, c.Message = status, reason, message
	if status == api.ConditionTrue {
		c.LastHeartbeatTime = now
	}
}
