// Package lease is the hub's per-node lease: when the hub last heard from a
// node's agent, what the agent last said of its outbox, and the sequence
// numbers of the newest facts ingest applied for it. Ingest writes it;
// node lifecycle reads it to find silent nodes; the API joins it into the
// nodes it serves. It keeps a fleet's heartbeats off the Node objects, so
// that a heartbeat never wakes a controller that watches nodes (the role
// of Kubernetes' node Lease).
package lease

import (
	"sort"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Kind is the store kind of leases; metadata.name is the node's name.
const Kind = "NodeLease"

// Lease is one node's lease.
type Lease struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	// RenewTime is when the hub last heard from the node, to within
	// ingest's resolution (Options.SeenResolution).
	RenewTime api.Time `json:"renewTime"`
	// Outbox is the agent's queue as its newest hello or heartbeat said.
	Outbox api.NodeOutbox `json:"outbox"`
	// IngestDropped counts the node's messages ingest received and could
	// not use, by reason (ingest.DropMalformed...).
	IngestDropped map[string]uint64 `json:"ingestDropped,omitempty"`
	// Seq holds the sequence numbers of the newest facts applied.
	Seq Seq `json:"seq"`
}

// StoreKind is its kind in the store.
func (*Lease) StoreKind() string { return Kind }

// Seq is, for each kind of fact an agent reports, the sequence number of
// the newest one applied, so that a late or redelivered report never
// replaces a newer one, across hub restarts too.
type Seq struct {
	Hello     uint64 `json:"hello,omitempty"`
	Observed  uint64 `json:"observed,omitempty"`
	Outbox    uint64 `json:"outbox,omitempty"`
	PodStatus uint64 `json:"podStatus,omitempty"`
}

// Newest is the highest of the sequence numbers.
func (s Seq) Newest() uint64 { return max(s.Hello, s.Observed, s.Outbox, s.PodStatus) }

// New returns an empty lease for node.
func New(node string) *Lease {
	return &Lease{TypeMeta: api.TypeMeta{APIVersion: "flotilla.io/v1", Kind: Kind}, ObjectMeta: api.ObjectMeta{Name: node}}
}

// LastSeen is when the hub last heard from the node: the later of the
// lease's renewal and the node's own record (which ingest sets when the
// node becomes Ready); l may be nil.
func LastSeen(n *api.Node, l *Lease) time.Time {
	t := n.Status.LastSeen.Time
	if l != nil && l.RenewTime.After(t) {
		t = l.RenewTime.Time
	}
	return t
}

// Join fills in what the lease knows of a node being served: its last
// seen time, its outbox and what ingest dropped of its messages. l may be
// nil.
func Join(n *api.Node, l *Lease) {
	if l == nil {
		return
	}
	n.Status.LastSeen = api.NewTime(LastSeen(n, l))
	n.Status.Outbox = l.Outbox
	n.Status.IngestDropped = l.IngestDropped
}

// Unheard names the Ready nodes not heard from since since, by their
// leases (nil if none).
func Unheard(nodes []*api.Node, leases []*Lease, since time.Time) map[string]bool {
	if !sort.SliceIsSorted(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name }) {
		nodes = append([]*api.Node(nil), nodes...)
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	}
	if !sort.SliceIsSorted(leases, func(i, j int) bool { return leases[i].Name < leases[j].Name }) {
		leases = append([]*Lease(nil), leases...)
		sort.Slice(leases, func(i, j int) bool { return leases[i].Name < leases[j].Name })
	}
	var out map[string]bool
	li := 0
	for _, n := range nodes {
		for li < len(leases) && leases[li].Name < n.Name {
			li++
		}
		var l *Lease
		if li < len(leases) && leases[li].Name == n.Name {
			l = leases[li]
		}
		if n.IsReady() && LastSeen(n, l).Before(since) {
			if out == nil {
				out = map[string]bool{}
			}
			out[n.Name] = true
		}
	}
	return out
}
