package wire

import (
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Snapshot is the full set of pods one node should run, published retained
// on the node's desired topic. Revision increases with every change for that
// node; an agent ignores a snapshot that is not newer than the one it holds,
// so applying one is idempotent and a node back after a week needs nothing
// but the retained message.
type Snapshot struct {
	Node     string        `json:"node"`
	Revision uint64        `json:"revision"`
	Pods     []SnapshotPod `json:"pods"`
	// Secrets and ConfigMaps are the ones the node's pods use, and no
	// others (see config.go).
	Secrets    []SnapshotSecret    `json:"secrets,omitempty"`
	ConfigMaps []SnapshotConfigMap `json:"configMaps,omitempty"`
	// Network and Services are the node's pod network and the Services
	// its pods and its site reach (network.go); nil when the hub runs no
	// pod networking.
	Network  *Network  `json:"network,omitempty"`
	Services []Service `json:"services,omitempty"`
	// Ingresses are the Ingresses the node serves (ingress.go); nil for a
	// node that serves none.
	Ingresses []Ingress `json:"ingresses,omitempty"`
}

// SnapshotPod is one pod of a snapshot: its identity and its spec. SpecHash
// identifies the spec; the agent labels containers with it and replaces a
// pod whose hash changed.
type SnapshotPod struct {
	UID       string            `json:"uid"`
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
	SpecHash  string            `json:"specHash"`
	Spec      api.PodSpec       `json:"spec"`
	// PrePull lists images to stage on the board ahead of a rollout,
	// while the pod keeps running its current spec.
	PrePull []string `json:"prePull,omitempty"`
	// ProgressDeadlineSeconds, when set, lets the agent revert the pod to
	// its last known-good spec if this spec crash-loops or is not Ready
	// within that many seconds, even while the hub is unreachable.
	ProgressDeadlineSeconds int32 `json:"progressDeadlineSeconds,omitempty"`
}

// Hello is the agent's announcement on connect: who it is and what the
// board is.
type Hello struct {
	Labels           map[string]string  `json:"labels,omitempty"`
	Info             api.NodeSystemInfo `json:"info"`
	Capacity         api.ResourceList   `json:"capacity,omitempty"`
	Addresses        []api.NodeAddress  `json:"addresses,omitempty"`
	ObservedRevision uint64             `json:"observedRevision"`
	Outbox           OutboxState        `json:"outbox"`

	// Devices are the board's device nodes and who holds each; their
	// counts by class are in Capacity (devices.flotilla.io/CLASS).
	Devices []api.NodeDevice `json:"devices,omitempty"`
}

// Heartbeat says the agent is alive and which snapshot it runs.
type Heartbeat struct {
	ObservedRevision uint64 `json:"observedRevision"`
	// Outbox is the state of the agent's store-and-forward queue.
	Outbox OutboxState `json:"outbox"`
	// StatusSeq is the sequence number of the newest pod status report the
	// broker acknowledged. That report reached the broker before this
	// heartbeat, on the same topic, whose order the broker keeps; so a hub
	// that has applied an older one lost it on the way (a broker that
	// dropped it, say) and asks for the status again (a HelloRequest).
	// Zero: not known.
	StatusSeq uint64 `json:"statusSeq,omitempty"`
}

// OutboxState is how full the agent's queue of undelivered reports is and
// how many reports it ever had to drop because it was full.
type OutboxState struct {
	Queued  int    `json:"queued"`
	Bytes   int64  `json:"bytes"`
	Dropped uint64 `json:"dropped"`
	// DroppedByClass splits Dropped by kind of report: telemetry, status,
	// event.
	DroppedByClass map[string]uint64 `json:"droppedByClass,omitempty"`
	// AppendedByClass counts every report ever queued, by kind, so that
	// queued + delivered + dropped can be checked to add up.
	AppendedByClass map[string]uint64 `json:"appendedByClass,omitempty"`
}

// Event is something that happened on the node, about a pod or the node
// itself. Events travel through the agent's outbox, in order, so a node
// back from an outage delivers everything that happened while it was away.
type Event struct {
	Object  api.ObjectReference `json:"object"`
	Type    api.EventType       `json:"type"` // Normal or Warning
	Reason  string              `json:"reason"`
	Message string              `json:"message"`
	Time    time.Time           `json:"time"`
}

// PodStatusReport is the status of every pod the agent runs or ran for the
// snapshot with ObservedRevision. It is a full report: a pod the hub expects
// but that is missing here is not running on the node.
type PodStatusReport struct {
	ObservedRevision uint64      `json:"observedRevision"`
	Pods             []PodReport `json:"pods"`
}

// PodReport is one pod's status as the agent sees it.
type PodReport struct {
	UID       string        `json:"uid"`
	Name      string        `json:"name"`
	Namespace string        `json:"namespace"`
	SpecHash  string        `json:"specHash"`
	Status    api.PodStatus `json:"status"`
	// PrePulled is true once every image of the pod's PrePull list is on
	// the board.
	PrePulled bool `json:"prePulled,omitempty"`
	// Reverted is set when the agent gave up on the desired spec and runs
	// the last known-good one instead.
	Reverted *Revert `json:"reverted,omitempty"`
}

// Revert says which spec the agent refused and why.
type Revert struct {
	FromSpecHash string `json:"fromSpecHash"`
	ToSpecHash   string `json:"toSpecHash"`
	Reason       string `json:"reason"`
}

// Online is the payload of the retained online topic. The agent's last will
// publishes Online{false}.
type Online struct {
	Online bool `json:"online"`
}
