package ingest

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// readyNode is a stored node, Ready and online since t0, running revision 3.
func readyNode() *api.Node {
	n := &api.Node{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
		ObjectMeta: api.ObjectMeta{Name: "n1", UID: "uid-n1", Labels: map[string]string{"site": "lab"}},
	}
	n.Status.Online = true
	n.Status.ObservedRevision = 3
	setReady(n, api.ConditionTrue, ReasonAgentReady, "agent is posting heartbeats", api.NewTime(t0))
	return n
}

// silentNode is readyNode after node lifecycle marked it Unknown for its
// silence.
func silentNode() *api.Node {
	n := readyNode()
	setReady(n, api.ConditionUnknown, "NodeStatusUnknown", "silent past the grace period", api.NewTime(t0.Add(time.Minute)))
	return n
}

// offlineNode is readyNode after its will arrived.
func offlineNode() *api.Node {
	n := readyNode()
	n.Status.Online = false
	setReady(n, api.ConditionUnknown, ReasonAgentOffline, "agent disconnected from the broker", api.NewTime(t0.Add(time.Minute)))
	return n
}

func withAgentLabels(n *api.Node, raw string) *api.Node {
	n.Annotations = map[string]string{AnnotationAgentLabels: raw}
	return n
}

func ptr[T any](v T) *T { return &v }

// TestMergeNode: each step of the merge, one row per case, and the merge
// pure (it changes neither the stored node nor the lease it is given).
// It is long for its table: a row per case reads better than a test each.
func TestMergeNode(t *testing.T) {
	now := t0.Add(time.Hour)
	seen := now.Add(-time.Second)
	hello := &wire.Hello{Labels: map[string]string{"site": "lab"}}
	for _, tc := range []struct {
		name   string
		u      nodeUpdate
		lease  lease.Lease
		stored *api.Node
		check  func(t *testing.T, out landing)
	}{
		{name: "a will from a node never met lands nothing",
			u: nodeUpdate{online: ptr(false)},
			check: func(t *testing.T, out landing) {
				if !out.skip {
					t.Fatalf("landing %+v, want skip", out)
				}
			}},
		{name: "a first heartbeat makes the node, Ready",
			u: nodeUpdate{seen: seen, observed: 2, observedSeq: 4},
			check: func(t *testing.T, out landing) {
				n := out.node
				if n == nil || n.Name != "n1" || n.UID == "" || !n.IsReady() || !n.Status.Online || n.Status.ObservedRevision != 2 {
					t.Fatalf("node %+v", n)
				}
				if !n.CreationTimestamp.Equal(now.Truncate(time.Second)) || !n.Status.LastSeen.Equal(seen) {
					t.Fatalf("created %v, last seen %v", n.CreationTimestamp, n.Status.LastSeen)
				}
				if len(out.events) != 1 || out.events[0].Reason != "NodeReady" || out.events[0].Type != api.EventNormal {
					t.Fatalf("events %+v", out.events)
				}
				if out.askHello || !out.lease.RenewTime.Equal(seen) || out.lease.Seq.Observed != 4 {
					t.Fatalf("askHello %v, lease %+v", out.askHello, out.lease)
				}
			}},
		{name: "a heartbeat from a Ready node renews the lease only",
			u: nodeUpdate{seen: seen, observed: 3, observedSeq: 9}, lease: lease.Lease{Seq: lease.Seq{Observed: 8}}, stored: readyNode(),
			check: func(t *testing.T, out landing) {
				if out.node != nil || len(out.events) != 0 || out.askHello {
					t.Fatalf("node %+v, events %+v, askHello %v", out.node, out.events, out.askHello)
				}
				if !out.lease.RenewTime.Equal(seen) || out.lease.Seq.Observed != 9 {
					t.Fatalf("lease %+v", out.lease)
				}
			}},
		{name: "a newer revision is written on the node",
			u: nodeUpdate{seen: seen, observed: 4, observedSeq: 9}, lease: lease.Lease{Seq: lease.Seq{Observed: 8}}, stored: readyNode(),
			check: func(t *testing.T, out landing) {
				if out.node == nil || out.node.Status.ObservedRevision != 4 || len(out.events) != 0 {
					t.Fatalf("node %+v, events %+v", out.node, out.events)
				}
			}},
		{name: "an older revision is not",
			u: nodeUpdate{seen: seen, observed: 1, observedSeq: 7}, lease: lease.Lease{Seq: lease.Seq{Observed: 8}}, stored: readyNode(),
			check: func(t *testing.T, out landing) {
				if out.node != nil || out.lease.Seq.Observed != 8 {
					t.Fatalf("node %+v, lease %+v", out.node, out.lease)
				}
			}},
		{name: "back by a heartbeat alone: Ready, and asked for its pods",
			u: nodeUpdate{seen: seen}, stored: silentNode(),
			check: func(t *testing.T, out landing) {
				if out.node == nil || !out.node.IsReady() || !out.askHello {
					t.Fatalf("node %+v, askHello %v", out.node, out.askHello)
				}
				if c := out.node.Status.Condition(api.NodeReady); !c.LastTransitionTime.Equal(seen) || c.Reason != ReasonAgentReady {
					t.Fatalf("condition %+v", c)
				}
				if len(out.events) != 1 || out.events[0].Reason != "NodeReady" || !out.events[0].Time.Equal(now) {
					t.Fatalf("events %+v", out.events)
				}
			}},
		{name: "back with its hello: not asked",
			u: nodeUpdate{seen: seen, hello: hello, helloSeq: 5}, lease: lease.Lease{Seq: lease.Seq{Hello: 1, Observed: 4}}, stored: silentNode(),
			check: func(t *testing.T, out landing) {
				if out.node == nil || !out.node.IsReady() || out.askHello {
					t.Fatalf("node %+v, askHello %v", out.node, out.askHello)
				}
			}},
		{name: "a will makes a Ready node Unknown and offline",
			u: nodeUpdate{online: ptr(false)}, stored: readyNode(),
			check: func(t *testing.T, out landing) {
				n := out.node
				c := n.Status.Condition(api.NodeReady)
				if n.Status.Online || c.Status != api.ConditionUnknown || c.Reason != ReasonAgentOffline || !c.LastTransitionTime.Equal(now) {
					t.Fatalf("node online %v, condition %+v", n.Status.Online, c)
				}
				if len(out.events) != 1 || out.events[0].Reason != "NodeNotReady" || out.events[0].Type != api.EventWarning {
					t.Fatalf("events %+v", out.events)
				}
				if !out.lease.RenewTime.IsZero() {
					t.Fatalf("a will renewed the lease: %+v", out.lease)
				}
			}},
		{name: "a will again changes nothing",
			u: nodeUpdate{online: ptr(false)}, stored: offlineNode(),
			check: func(t *testing.T, out landing) {
				if out.node != nil || len(out.events) != 0 {
					t.Fatalf("node %+v, events %+v", out.node, out.events)
				}
			}},
		{name: "a will after silence keeps the transition time",
			u: nodeUpdate{online: ptr(false)}, stored: silentNode(),
			check: func(t *testing.T, out landing) {
				c := out.node.Status.Condition(api.NodeReady)
				if c.Reason != ReasonAgentOffline || !c.LastTransitionTime.Equal(t0.Add(time.Minute)) || len(out.events) != 0 {
					t.Fatalf("condition %+v, events %+v", c, out.events)
				}
			}},
		{name: "the same hello again writes no node",
			u:      nodeUpdate{seen: seen, hello: hello, helloSeq: 6},
			lease:  lease.Lease{Seq: lease.Seq{Hello: 5, Observed: 5}},
			stored: withAgentLabels(readyNode(), `{"site":"lab"}`),
			check: func(t *testing.T, out landing) {
				if out.node != nil || out.lease.Seq.Hello != 6 || out.restartedFrom != 0 {
					t.Fatalf("node %+v, lease %+v, restarted from %d", out.node, out.lease, out.restartedFrom)
				}
			}},
		{name: "a hello's labels change the agent's, not the operator's",
			u: nodeUpdate{seen: seen, hello: &wire.Hello{Labels: map[string]string{"site": "lab", "zone": "b"}}, helloSeq: 6},
			stored: func() *api.Node {
				n := withAgentLabels(readyNode(), `{"site":"lab","zone":"a","old":"x"}`)
				n.Labels = map[string]string{"site": "field", "zone": "a", "old": "x", "owner": "ops"}
				return n
			}(),
			check: func(t *testing.T, out landing) {
				want := map[string]string{"site": "field", "zone": "b", "owner": "ops"}
				if !maps.Equal(out.node.Labels, want) || out.node.Annotations[AnnotationAgentLabels] != `{"site":"lab","zone":"b"}` {
					t.Fatalf("labels %v, annotations %v", out.node.Labels, out.node.Annotations)
				}
				if out.badAgentLabels != nil {
					t.Fatal(out.badAgentLabels)
				}
			}},
		{name: "an agent-labels annotation that does not decode is reported, the hello applied",
			u:      nodeUpdate{seen: seen, hello: hello, helloSeq: 6},
			stored: withAgentLabels(readyNode(), `{"site":`),
			check: func(t *testing.T, out landing) {
				if out.badAgentLabels == nil || out.node == nil || out.node.Annotations[AnnotationAgentLabels] != `{"site":"lab"}` {
					t.Fatalf("error %v, node %+v", out.badAgentLabels, out.node)
				}
			}},
		{name: "a hello numbered below what was applied restarts the ordering",
			u:      nodeUpdate{seen: seen, hello: hello, helloSeq: 3, observed: 0, observedSeq: 3},
			lease:  lease.Lease{Seq: lease.Seq{Hello: 10, Observed: 40, PodStatus: 50}},
			stored: withAgentLabels(readyNode(), `{"site":"lab"}`),
			check: func(t *testing.T, out landing) {
				if out.restartedFrom != 50 || out.lease.Seq != (lease.Seq{Hello: 3, Observed: 3}) {
					t.Fatalf("restarted from %d, seq %+v", out.restartedFrom, out.lease.Seq)
				}
				if out.node == nil || out.node.Status.ObservedRevision != 0 {
					t.Fatalf("node %+v", out.node)
				}
			}},
		{name: "a newer pod report is to be applied",
			u:     nodeUpdate{seen: seen, podReport: &wire.PodStatusReport{ObservedRevision: 3}, reportSeq: 12},
			lease: lease.Lease{Seq: lease.Seq{PodStatus: 11}}, stored: readyNode(),
			check: func(t *testing.T, out landing) {
				if out.report == nil || out.lease.Seq.PodStatus != 12 || out.statusMissed {
					t.Fatalf("report %v, seq %+v, missed %v", out.report, out.lease.Seq, out.statusMissed)
				}
			}},
		{name: "an older one is not; a heartbeat naming a newer one says it was missed",
			u:     nodeUpdate{seen: seen, podReport: &wire.PodStatusReport{}, reportSeq: 10, statusClaim: 13, claimSeq: 14},
			lease: lease.Lease{Seq: lease.Seq{PodStatus: 11}}, stored: readyNode(),
			check: func(t *testing.T, out landing) {
				if out.report != nil || out.lease.Seq.PodStatus != 11 || !out.statusMissed {
					t.Fatalf("report %v, seq %+v, missed %v", out.report, out.lease.Seq, out.statusMissed)
				}
			}},
		{name: "drops add up on a new map, the newer outbox is taken",
			u: nodeUpdate{dropped: map[string]uint64{DropMalformed: 2}, outbox: &wire.OutboxState{Queued: 7}, outboxSeq: 9},
			lease: lease.Lease{IngestDropped: map[string]uint64{DropMalformed: 1, DropTooLarge: 1}, Outbox: api.NodeOutbox{Queued: 1},
				Seq: lease.Seq{Outbox: 8}},
			stored: readyNode(),
			check: func(t *testing.T, out landing) {
				if !maps.Equal(out.lease.IngestDropped, map[string]uint64{DropMalformed: 3, DropTooLarge: 1}) || out.lease.Outbox.Queued != 7 {
					t.Fatalf("lease %+v", out.lease)
				}
			}},
		{name: "an older outbox is not taken",
			u:     nodeUpdate{seen: seen, outbox: &wire.OutboxState{Queued: 7}, outboxSeq: 7},
			lease: lease.Lease{Outbox: api.NodeOutbox{Queued: 1}, Seq: lease.Seq{Outbox: 8}}, stored: readyNode(),
			check: func(t *testing.T, out landing) {
				if out.lease.Outbox.Queued != 1 || out.lease.Seq.Outbox != 8 {
					t.Fatalf("lease %+v", out.lease)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before []byte
			if tc.stored != nil {
				before = mustMarshal(t, tc.stored)
			}
			leaseBefore := mustMarshal(t, &tc.lease)
			out := mergeNode("n1", &tc.u, tc.lease, tc.stored, now)
			tc.check(t, out)
			// Pure: what it was given is unchanged.
			if tc.stored != nil && string(mustMarshal(t, tc.stored)) != string(before) {
				t.Fatalf("the stored node changed:\n%s\n%s", before, mustMarshal(t, tc.stored))
			}
			if string(mustMarshal(t, &tc.lease)) != string(leaseBefore) {
				t.Fatalf("the lease given changed:\n%s\n%s", leaseBefore, mustMarshal(t, &tc.lease))
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLeaseNeedsWrite(t *testing.T) {
	const res = 15 * time.Second
	stored := &lease.Lease{RenewTime: api.NewTime(t0), Outbox: api.NodeOutbox{Queued: 1, Dropped: 2},
		IngestDropped: map[string]uint64{DropMalformed: 1}, Seq: lease.Seq{Hello: 3, Observed: 5}}
	same := func(f func(l *lease.Lease)) *lease.Lease {
		l := *stored
		l.IngestDropped = maps.Clone(stored.IngestDropped)
		if f != nil {
			f(&l)
		}
		return &l
	}
	for _, tc := range []struct {
		name                     string
		stored, latest           *lease.Lease
		nodeWritten, podsWritten bool
		want                     bool
	}{
		{name: "none stored", latest: same(nil), want: true},
		{name: "nothing new", stored: stored, latest: same(nil), want: false},
		{name: "renewed inside the resolution, newer facts it does not order", stored: stored,
			latest: same(func(l *lease.Lease) { l.RenewTime = api.NewTime(t0.Add(res - time.Second)); l.Seq.Observed = 9 }), want: false},
		{name: "renewed past the resolution", stored: stored,
			latest: same(func(l *lease.Lease) { l.RenewTime = api.NewTime(t0.Add(res)) }), want: true},
		{name: "the node was written", stored: stored, latest: same(nil), nodeWritten: true, want: true},
		{name: "pods were written", stored: stored, latest: same(nil), podsWritten: true, want: true},
		{name: "a new hello", stored: stored, latest: same(func(l *lease.Lease) { l.Seq.Hello = 4 }), want: true},
		{name: "queued changed", stored: stored, latest: same(func(l *lease.Lease) { l.Outbox.Queued = 0 }), want: true},
		{name: "the agent dropped more", stored: stored, latest: same(func(l *lease.Lease) { l.Outbox.Dropped = 3 }), want: true},
		{name: "ingest dropped more", stored: stored, latest: same(func(l *lease.Lease) { l.IngestDropped[DropTooLarge] = 1 }), want: true},
	} {
		if got := leaseNeedsWrite(tc.stored, tc.latest, tc.nodeWritten, tc.podsWritten, res); got != tc.want {
			t.Errorf("%s: leaseNeedsWrite = %v, want %v", tc.name, got, tc.want)
		}
	}
}
