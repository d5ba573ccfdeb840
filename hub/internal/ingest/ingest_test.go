package ingest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newIngest(st store.Store, logs *syncBuffer) *Ingest {
	return New(Options{Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: func() time.Time { return t0 }})
}

func msg(t *testing.T, node, typ string, seq uint64, payload any) []byte {
	t.Helper()
	b, err := wire.Encode(typ, node, seq, t0, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func getNode(t *testing.T, st store.Store, name string) *api.Node {
	t.Helper()
	var n *api.Node
	err := st.View(func(tx store.Tx) error {
		var err error
		n, err = store.Get[api.Node](tx, "", name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// putPod stores pod default/p (uid u1) on node n1.
func putPod(t *testing.T, st store.Store) {
	t.Helper()
	pod := &api.Pod{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{Name: "p", Namespace: "default", UID: "u1"},
		Spec:       api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "c", Image: "i"}}},
	}
	if err := st.Update(func(tx store.Tx) error { return tx.Put(pod) }); err != nil {
		t.Fatal(err)
	}
}

// getPod reads pod default/p.
func getPod(t *testing.T, st store.Store) *api.Pod {
	t.Helper()
	var p *api.Pod
	if err := st.View(func(tx store.Tx) error {
		var err error
		p, err = store.Get[api.Pod](tx, "default", "p")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadMessagesAreDroppedAndNamed(t *testing.T) {
	st := store.NewMemory()
	var logs syncBuffer
	in := newIngest(st, &logs)
	status := wire.NodeTopic("n1", wire.TopicStatus)
	cases := []struct {
		name    string
		topic   string
		payload []byte
		want    string
	}{
		{"not json", status, []byte("{nope"), "node=n1"},
		{"oversized", status, bytes.Repeat([]byte("x"), wire.MaxPayload+1), "payload too large"},
		{"other node's envelope", status, msg(t, "n2", wire.TypeHeartbeat, 1, wire.Heartbeat{}), `names node`},
		{"wrong type for topic", status, msg(t, "n1", wire.TypeSnapshot, 1, wire.Snapshot{}), "not allowed"},
		{"payload of wrong shape", status, []byte(`{"v":1,"type":"Heartbeat","node":"n1","seq":1,"payload":{"observedRevision":"x"}}`), "Heartbeat payload"},
		{"bad version", status, []byte(`{"v":9,"type":"Heartbeat","node":"n1","seq":1,"payload":{}}`), "version 9"},
		{"topic outside the tree", "elsewhere/n1/status", []byte(`{}`), "topic=elsewhere/n1/status"},
	}
	for i, tc := range cases {
		in.Handle(tc.topic, tc.payload)
		if _, dropped := in.Stats(); dropped != uint64(i+1) {
			t.Fatalf("%s: dropped = %d, want %d", tc.name, dropped, i+1)
		}
		if !strings.Contains(logs.String(), tc.want) {
			t.Fatalf("%s: log lacks %q:\n%s", tc.name, tc.want, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "topic="+status) {
		t.Fatalf("log does not name the topic")
	}
	in.Flush()
	if err := st.View(func(tx store.Tx) error {
		_, err := tx.Get(store.Key{Kind: api.KindNode, Name: "n1"})
		return err
	}); !store.IsNotFound(err) {
		t.Fatalf("a bad message created a node: %v", err)
	}
}

func TestHelloRegistersNodeAndKeepsOperatorLabels(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	hello := wire.Hello{
		Labels:   map[string]string{"site": "lab", "zone": "a", api.LabelArch: "arm64"},
		Info:     api.NodeSystemInfo{Architecture: "arm64", AgentVersion: "v1"},
		Capacity: api.ResourceList{"cpu": "4", "memory": "1Gi"},
	}
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 1, hello))
	in.Flush()
	n := getNode(t, st, "n1")
	if n.Labels["site"] != "lab" || !n.IsReady() || n.Status.NodeInfo.Architecture != "arm64" || n.Status.Capacity["cpu"] != "4" || n.UID == "" {
		t.Fatalf("node = %+v", n)
	}

	// The operator relabels; the agent then drops "zone" from its flags.
	if err := st.Update(func(tx store.Tx) error {
		n.Labels["site"] = "field"
		n.Labels["owner"] = "ops"
		return tx.Put(n)
	}); err != nil {
		t.Fatal(err)
	}
	hello.Labels = map[string]string{"site": "lab", api.LabelArch: "arm64"}
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 2, hello))
	in.Flush()
	n = getNode(t, st, "n1")
	if n.Labels["site"] != "field" || n.Labels["owner"] != "ops" {
		t.Fatalf("operator's labels lost: %v", n.Labels)
	}
	if _, ok := n.Labels["zone"]; ok {
		t.Fatalf("label the agent dropped is still there: %v", n.Labels)
	}
}

func TestStaleMessagesAreIgnored(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 1, wire.Hello{}))
	in.Handle(topic, msg(t, "n1", wire.TypeHeartbeat, 5, wire.Heartbeat{ObservedRevision: 7}))
	in.Handle(topic, msg(t, "n1", wire.TypeHeartbeat, 4, wire.Heartbeat{ObservedRevision: 3}))
	in.Flush()
	if got := getNode(t, st, "n1").Status.ObservedRevision; got != 7 {
		t.Fatalf("observedRevision = %d, want 7 (the older message must not win)", got)
	}
}

func TestPodReportLandsOnTheRightPod(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	putPod(t, st)
	report := func(seq uint64, node, uid string) {
		rep := wire.PodStatusReport{ObservedRevision: 3, Pods: []wire.PodReport{{UID: uid, Name: "p", Namespace: "default", SpecHash: "h",
			Status: api.PodStatus{Phase: api.PodRunning}}}}
		in.Handle(wire.NodeTopic(node, wire.TopicStatus), msg(t, node, wire.TypePodStatus, seq, rep))
		in.Flush()
	}
	phase := func() string {
		p := getPod(t, st)
		return string(p.Status.Phase) + "/" + p.Status.SpecHash
	}
	report(1, "n2", "u1") // wrong node
	report(2, "n1", "u0") // a previous pod of the same name
	if phase() != "/" {
		t.Fatalf("status from the wrong node or pod was applied: %s", phase())
	}
	report(3, "n1", "u1")
	if phase() != string(api.PodRunning)+"/h" {
		t.Fatalf("status = %s", phase())
	}
}

func TestWillMarksNodeOffline(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypeHello, 1, wire.Hello{}))
	in.Flush()
	in.Handle(wire.NodeTopic("n1", wire.TopicOnline), msg(t, "n1", wire.TypeOnline, 0, wire.Online{Online: false}))
	in.Flush()
	n := getNode(t, st, "n1")
	if n.IsReady() || n.Status.Online {
		t.Fatalf("node still ready after its will: %+v", n.Status)
	}
	if c := n.Status.Condition(api.NodeReady); c.Reason != ReasonAgentOffline || c.Status != api.ConditionUnknown {
		t.Fatalf("ready = %s (%s), want Unknown (%s): the hub cannot hear it", c.Status, c.Reason, ReasonAgentOffline)
	}
}

// TestWillAfterSilenceKeepsTheTransitionTime: node lifecycle marked the
// node Unknown for its silence; the broker's will for it comes later. The
// time the node stopped being Ready, from which tolerations of
// node.kubernetes.io/unreachable count, must not move.
func TestWillAfterSilenceKeepsTheTransitionTime(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypeHello, 1, wire.Hello{}))
	in.Flush()
	lost := api.NewTime(time.Date(2026, 1, 1, 0, 0, 40, 0, time.UTC))
	if err := st.Update(func(tx store.Tx) error { // as node lifecycle marks a silent node
		n, err := store.Get[api.Node](tx, "", "n1")
		if err != nil {
			return err
		}
		c := n.Status.Condition(api.NodeReady)
		c.Status, c.Reason, c.LastTransitionTime = api.ConditionUnknown, "NodeStatusUnknown", lost
		return tx.Put(n)
	}); err != nil {
		t.Fatal(err)
	}
	in.Handle(wire.NodeTopic("n1", wire.TopicOnline), msg(t, "n1", wire.TypeOnline, 0, wire.Online{Online: false}))
	in.Flush()
	c := getNode(t, st, "n1").Status.Condition(api.NodeReady)
	if c.Status != api.ConditionUnknown || !c.LastTransitionTime.Equal(lost.Time) {
		t.Fatalf("ready = %s since %v, want Unknown since %v", c.Status, c.LastTransitionTime, lost)
	}
}

func TestEventsAreStoredOnceWithTheirNode(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	ev := wire.Event{Object: api.ObjectReference{Kind: api.KindPod, Namespace: "default", Name: "web-1", UID: "u"},
		Type: api.EventWarning, Reason: "Exited", Message: "Container main exited with code 3", Time: t0}
	topic := wire.NodeTopic("n1", wire.TopicEvents)
	in.Handle(topic, msg(t, "n1", wire.TypeEvent, 7, ev))
	in.Handle(topic, msg(t, "n1", wire.TypeEvent, 7, ev)) // redelivered
	in.Handle(topic, msg(t, "n1", wire.TypeEvent, 8, ev))
	in.Flush()
	var evs []*api.Event
	_ = st.View(func(tx store.Tx) error {
		evs, _ = store.List[api.Event](tx, "default")
		return nil
	})
	var fromAgent []*api.Event
	for _, e := range evs {
		if e.Source.Component == "edge-agent" {
			fromAgent = append(fromAgent, e)
		}
	}
	// The same event twice is one Event counted twice; the redelivery
	// is not counted.
	if len(fromAgent) != 1 || fromAgent[0].Count != 2 {
		t.Fatalf("agent events = %+v, want one counted twice (a redelivery must not count)", fromAgent)
	}
	e := fromAgent[0]
	if e.Source.Host != "n1" || e.InvolvedObject.Name != "web-1" || e.Reason != "Exited" || !e.LastTimestamp.Equal(t0) || e.Type != api.EventWarning {
		t.Fatalf("event = %+v", e)
	}
}

func TestQueuedReportsNeverOverwriteNewerOnes(t *testing.T) {
	st := store.NewMemory()
	putPod(t, st)
	report := func(in *Ingest, seq uint64, phase api.PodPhase, rev uint64) {
		rep := wire.PodStatusReport{ObservedRevision: rev, Pods: []wire.PodReport{{UID: "u1", Name: "p", Namespace: "default", Status: api.PodStatus{Phase: phase}}}}
		in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypePodStatus, seq, rep))
		in.Flush()
	}
	phase := func() (api.PodPhase, uint64) {
		return getPod(t, st).Status.Phase, getNode(t, st, "n1").Status.ObservedRevision
	}
	in := newIngest(st, &syncBuffer{})
	report(in, 10, api.PodRunning, 4)
	// A new hub process (the cursor is in the store), then a late copy of
	// an older report.
	in = newIngest(st, &syncBuffer{})
	report(in, 9, api.PodPending, 3)
	if ph, rev := phase(); ph != api.PodRunning || rev != 4 {
		t.Fatalf("older report won: %s rev %d", ph, rev)
	}
	// An agent whose state was rebuilt starts its sequence over with a hello.
	in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypeHello, 2, wire.Hello{ObservedRevision: 0}))
	in.Flush()
	report(in, 3, api.PodFailed, 5)
	if ph, rev := phase(); ph != api.PodFailed || rev != 5 {
		t.Fatalf("reports after an agent reset were ignored: %s rev %d", ph, rev)
	}
}

// TestAsksForAMissedHello: a node heard from without a hello since the hub
// started (it connected while the hub was away from an external broker) is
// asked for it, at most every askHelloEvery; one whose hello arrived, or
// that only left a will, is not.
func TestAsksForAMissedHello(t *testing.T) {
	st := store.NewMemory()
	var clock atomic.Int64 // the test's clock, read by Run's flushes too
	clock.Store(t0.UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	asked := make(chan string, 16)
	in := New(Options{Store: st, Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)), Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() },
		AskHello: func(_ context.Context, node string) error { asked <- node; return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Run(ctx)
	next := func() string {
		select {
		case n := <-asked:
			return n
		case <-time.After(2 * time.Second):
			return ""
		}
	}
	none := func(why string) {
		select {
		case n := <-asked:
			t.Fatalf("%s: asked %s", why, n)
		case <-time.After(100 * time.Millisecond):
		}
	}

	in.Handle(wire.NodeTopic("quiet", wire.TopicStatus), msg(t, "quiet", wire.TypeHeartbeat, 5, wire.Heartbeat{}))
	if got := next(); got != "quiet" {
		t.Fatalf("a heartbeat without a hello: asked %q, want quiet", got)
	}
	in.Handle(wire.NodeTopic("quiet", wire.TopicEvents), msg(t, "quiet", wire.TypeEvent, 6, wire.Event{Reason: "Started", Type: "Normal"}))
	none("a second message within the interval")
	advance(askHelloEvery)
	in.Handle(wire.NodeTopic("quiet", wire.TopicStatus), msg(t, "quiet", wire.TypeHeartbeat, 7, wire.Heartbeat{}))
	if got := next(); got != "quiet" {
		t.Fatalf("after the interval: asked %q, want quiet again", got)
	}
	in.Handle(wire.NodeTopic("quiet", wire.TopicStatus), msg(t, "quiet", wire.TypeHello, 8, wire.Hello{}))
	advance(askHelloEvery)
	in.Handle(wire.NodeTopic("quiet", wire.TopicStatus), msg(t, "quiet", wire.TypeHeartbeat, 9, wire.Heartbeat{}))
	none("after its hello")

	in.Handle(wire.NodeTopic("greeter", wire.TopicStatus), msg(t, "greeter", wire.TypeHello, 1, wire.Hello{}))
	in.Handle(wire.NodeTopic("greeter", wire.TopicStatus), msg(t, "greeter", wire.TypeHeartbeat, 2, wire.Heartbeat{}))
	none("a node that said hello first")
	in.Handle(wire.NodeTopic("gone", wire.TopicOnline), msg(t, "gone", wire.TypeOnline, 0, wire.Online{Online: false}))
	none("a will")
}

// TestAsksAgainAfterAFailedAsk: a request that could not be sent (the hub's
// session not connected yet) does not wait out the interval.
func TestAsksAgainAfterAFailedAsk(t *testing.T) {
	asked := make(chan string, 16)
	var fail atomic.Bool
	fail.Store(true)
	in := New(Options{Store: store.NewMemory(), Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)), Now: func() time.Time { return t0 },
		AskHello: func(_ context.Context, node string) error {
			asked <- node
			if fail.Load() {
				return errors.New("not connected to the broker")
			}
			return nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Run(ctx)
	for i, want := range []bool{true, true, false} {
		fail.Store(want)
		in.Handle(wire.NodeTopic("n", wire.TopicStatus), msg(t, "n", wire.TypeHeartbeat, uint64(i+1), wire.Heartbeat{}))
		select {
		case <-asked:
		case <-time.After(2 * time.Second):
			t.Fatalf("message %d: not asked, although the ask before it failed", i+1)
		}
		time.Sleep(50 * time.Millisecond) // the failure is recorded
	}
	in.Handle(wire.NodeTopic("n", wire.TopicStatus), msg(t, "n", wire.TypeHeartbeat, 9, wire.Heartbeat{}))
	select {
	case <-asked:
		t.Fatal("asked again within the interval after a request that was sent")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestAsksANodeBackByHeartbeatForItsPods: a node the hub marked NotReady
// that comes back by a heartbeat alone (it never disconnected; the hub was
// late) is asked for its hello and pods' status, although its hello is
// known; one that comes back with its own hello is not.
func TestAsksANodeBackByHeartbeatForItsPods(t *testing.T) {
	st := store.NewMemory()
	asked := make(chan string, 16)
	in := New(Options{Store: st, Logger: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)), Now: func() time.Time { return t0 },
		AskHello: func(_ context.Context, node string) error { asked <- node; return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Run(ctx)
	notReady := func(node string) {
		t.Helper()
		if err := st.Update(func(tx store.Tx) error {
			n, err := store.Get[api.Node](tx, "", node)
			if err != nil {
				return err
			}
			setReady(n, api.ConditionUnknown, "NodeStatusUnknown", "silent past the grace period", api.NewTime(t0))
			return tx.Put(n)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range []string{"late", "rebooted"} {
		in.Handle(wire.NodeTopic(node, wire.TopicStatus), msg(t, node, wire.TypeHello, 1, wire.Hello{}))
		in.Flush()
		notReady(node)
	}
	in.Handle(wire.NodeTopic("late", wire.TopicStatus), msg(t, "late", wire.TypeHeartbeat, 2, wire.Heartbeat{}))
	in.Handle(wire.NodeTopic("rebooted", wire.TopicStatus), msg(t, "rebooted", wire.TypeHello, 2, wire.Hello{}))
	in.Flush()
	if !getNode(t, st, "late").IsReady() || !getNode(t, st, "rebooted").IsReady() {
		t.Fatal("nodes not Ready again")
	}
	select {
	case n := <-asked:
		if n != "late" {
			t.Fatalf("asked %s, want late", n)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a node back by a heartbeat alone was not asked for its pods")
	}
	select {
	case n := <-asked:
		t.Fatalf("asked %s as well", n)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestHeartbeatsRenewTheLeaseNotTheNode: once a node is registered, its
// heartbeats do not rewrite the Node (which every node-watching controller
// would wake for); they renew its lease at most every SeenResolution, and
// what they carry (the revision it runs, its outbox) is written when it
// changes.
func TestHeartbeatsRenewTheLeaseNotTheNode(t *testing.T) {
	st := store.NewMemory()
	now := t0
	in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }, SeenResolution: 15 * time.Second})
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 1, wire.Hello{ObservedRevision: 2}))
	in.Flush()
	nodeVersion := getNode(t, st, "n1").ResourceVersion
	readLease := func() *lease.Lease {
		t.Helper()
		var l *lease.Lease
		if err := st.View(func(tx store.Tx) error {
			var err error
			l, err = store.Get[lease.Lease](tx, "", "n1")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return l
	}
	first := readLease()
	if !first.RenewTime.Equal(t0) {
		t.Fatalf("lease renewed at %v, want %v", first.RenewTime, t0)
	}
	seq := uint64(2)
	beat := func(hb wire.Heartbeat) {
		seq++
		in.Handle(topic, msg(t, "n1", wire.TypeHeartbeat, seq, hb))
		in.Flush()
	}
	appended := map[string]uint64{"telemetry": 1}
	for i := range 3 {
		now = t0.Add(time.Duration(i+1) * 4 * time.Second) // 4, 8, 12 s: inside the resolution
		appended["telemetry"]++
		beat(wire.Heartbeat{ObservedRevision: 2, Outbox: wire.OutboxState{AppendedByClass: appended}})
	}
	if v := getNode(t, st, "n1").ResourceVersion; v != nodeVersion {
		t.Fatalf("heartbeats rewrote the node: version %s → %s", nodeVersion, v)
	}
	if l := readLease(); l.ResourceVersion != first.ResourceVersion {
		t.Fatalf("the lease was rewritten inside the resolution: %+v", l)
	}
	now = t0.Add(16 * time.Second)
	beat(wire.Heartbeat{ObservedRevision: 2, Outbox: wire.OutboxState{AppendedByClass: appended}})
	l := readLease()
	if !l.RenewTime.Equal(now) || l.Outbox.AppendedByClass["telemetry"] != 4 {
		t.Fatalf("after the resolution the lease is %+v", l)
	}
	if v := getNode(t, st, "n1").ResourceVersion; v != nodeVersion {
		t.Fatalf("renewing the lease rewrote the node: version %s → %s", nodeVersion, v)
	}
	// A change the hub acts on is written at once: queued reports, and
	// the revision the node runs (on the node, with the lease that
	// orders it).
	now = t0.Add(17 * time.Second)
	beat(wire.Heartbeat{ObservedRevision: 2, Outbox: wire.OutboxState{Queued: 7}})
	if l := readLease(); l.Outbox.Queued != 7 {
		t.Fatalf("queued reports not written: %+v", l.Outbox)
	}
	beat(wire.Heartbeat{ObservedRevision: 3})
	if n := getNode(t, st, "n1"); n.Status.ObservedRevision != 3 {
		t.Fatalf("observed revision %d, want 3", n.Status.ObservedRevision)
	}
	if l := readLease(); l.Seq.Observed != seq {
		t.Fatalf("the lease orders the observed revision at %d, want %d", l.Seq.Observed, seq)
	}
}

// TestAsksAgainForALostPodStatus: a heartbeat that says the broker took a
// newer pod status report than the hub applied means the report was lost
// on the way (a broker that dropped it):
// the node is asked for its status again, at most every askStatusEvery.
// A report still queued on the agent, or one the hub has, asks nothing.
func TestAsksAgainForALostPodStatus(t *testing.T) {
	st := store.NewMemory()
	now := t0
	asked := make(chan string, 16)
	in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
		AskHello: func(_ context.Context, node string) error { asked <- node; return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Run(ctx)
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	send := func(typ string, seq uint64, payload any) {
		in.Handle(topic, msg(t, "n1", typ, seq, payload))
		in.Flush()
	}
	expect := func(want bool, what string) {
		t.Helper()
		select {
		case n := <-asked:
			if !want {
				t.Fatalf("%s: asked %s", what, n)
			}
		case <-time.After(300 * time.Millisecond):
			if want {
				t.Fatalf("%s: not asked", what)
			}
		}
	}
	send(wire.TypeHello, 1, wire.Hello{})
	send(wire.TypePodStatus, 2, wire.PodStatusReport{ObservedRevision: 1})
	send(wire.TypeHeartbeat, 3, wire.Heartbeat{ObservedRevision: 1, StatusSeq: 2})
	expect(false, "the report the hub has")
	send(wire.TypeHeartbeat, 5, wire.Heartbeat{ObservedRevision: 1, StatusSeq: 2, Outbox: wire.OutboxState{Queued: 1}})
	expect(false, "a report still queued on the agent")
	send(wire.TypeHeartbeat, 7, wire.Heartbeat{ObservedRevision: 1, StatusSeq: 6})
	expect(true, "a report that never arrived")
	now = now.Add(10 * time.Second)
	send(wire.TypeHeartbeat, 8, wire.Heartbeat{ObservedRevision: 1, StatusSeq: 6})
	expect(false, "asked again within askStatusEvery")
	// The resend arrives, then the heartbeat that claims it.
	now = now.Add(10 * time.Second)
	send(wire.TypePodStatus, 9, wire.PodStatusReport{ObservedRevision: 1})
	send(wire.TypeHeartbeat, 10, wire.Heartbeat{ObservedRevision: 1, StatusSeq: 9})
	expect(false, "after the resend arrived")
}

// A metrics batch that carries the heartbeat is a heartbeat: the revision
// the node runs, its outbox and its status claim are taken from it, in
// sequence order with the node's other messages.
func TestMetricsCarryTheHeartbeat(t *testing.T) {
	st := store.NewMemory()
	asked := make(chan string, 4)
	in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 },
		AskHello: func(_ context.Context, node string) error { asked <- node; return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Run(ctx)
	in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypeHello, 1, wire.Hello{}))
	in.Flush()
	metrics := func(seq uint64, hb *wire.Heartbeat) {
		in.Handle(wire.NodeTopic("n1", wire.TopicMetrics), msg(t, "n1", wire.TypeMetrics, seq, wire.MetricsBatch{Heartbeat: hb}))
		in.Flush()
	}
	metrics(5, &wire.Heartbeat{ObservedRevision: 4, Outbox: wire.OutboxState{Queued: 3}})
	if got := getNode(t, st, "n1").Status.ObservedRevision; got != 4 {
		t.Fatalf("observed revision %d, want 4 from the metrics' heartbeat", got)
	}
	metrics(3, &wire.Heartbeat{ObservedRevision: 2}) // older: ignored
	metrics(6, nil)                                  // no heartbeat: nothing to take
	if got := getNode(t, st, "n1").Status.ObservedRevision; got != 4 {
		t.Fatalf("observed revision %d after an older and an empty one, want 4", got)
	}
	metrics(7, &wire.Heartbeat{ObservedRevision: 4, StatusSeq: 6})
	select {
	case <-asked:
	case <-time.After(2 * time.Second):
		t.Fatal("a status claim riding on metrics was not weighed")
	}
}

// A pod status report is what controllers wait for (a rolling update's
// next nodes wait for the last ones' Ready): Run writes it after
// StatusGather, without waiting for the next FlushInterval, which only
// heartbeats wait for.
func TestRunWritesPodStatusWithoutWaitingForTheFlushInterval(t *testing.T) {
	st := store.NewMemory()
	now := t0
	var mu sync.Mutex
	in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), FlushInterval: time.Hour, StatusGather: time.Millisecond,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	putPod(t, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 1, wire.Hello{ObservedRevision: 1}))
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was not written within 10 s, with a one-hour flush interval", what)
			}
		}
	}
	waitFor("the hello", func() bool {
		return st.View(func(tx store.Tx) error { _, err := store.Get[api.Node](tx, "", "n1"); return err }) == nil
	})
	// A heartbeat alone waits for the interval...
	mu.Lock()
	now = t0.Add(time.Minute) // past SeenResolution: the heartbeat has a lease to write
	mu.Unlock()
	in.Handle(topic, msg(t, "n1", wire.TypeHeartbeat, 2, wire.Heartbeat{ObservedRevision: 1}))
	rep := wire.PodStatusReport{ObservedRevision: 1, Pods: []wire.PodReport{{UID: "u1", Name: "p", Namespace: "default", SpecHash: "h",
		Status: api.PodStatus{Phase: api.PodRunning}}}}
	// ...and goes with the next status report.
	in.Handle(topic, msg(t, "n1", wire.TypePodStatus, 3, rep))
	waitFor("the pod status", func() bool { return getPod(t, st).Status.Phase == api.PodRunning })
	var l *lease.Lease
	if err := st.View(func(tx store.Tx) error {
		var err error
		l, err = store.Get[lease.Lease](tx, "", "n1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !l.RenewTime.Equal(t0.Add(time.Minute)) {
		t.Errorf("the heartbeat before the status report was not written with it: lease renewed at %v", l.RenewTime)
	}
}

// TestRunJoinsTheHelloAsker: when Run returns, the goroutine that asks
// nodes for their hello has returned too, an ask in flight included: it
// is given Run's context and must end with it.
func TestRunJoinsTheHelloAsker(t *testing.T) {
	var returned atomic.Bool
	entered := make(chan struct{})
	in := New(Options{Store: store.NewMemory(), Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 },
		AskHello: func(ctx context.Context, node string) error {
			close(entered)
			<-ctx.Done() // a broker that never takes the request
			time.Sleep(20 * time.Millisecond)
			returned.Store(true)
			return ctx.Err()
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypeHeartbeat, 1, wire.Heartbeat{}))
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the node was not asked for its hello")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if !returned.Load() {
		t.Fatal("Run returned while the hello asker was still asking")
	}
}

// TestUndecodableAgentLabelsAreReported: the annotation that holds the
// labels the agent asked for last time, edited into something that does
// not decode, is reported with its node; the hello is still applied and
// the annotation repaired.
func TestUndecodableAgentLabelsAreReported(t *testing.T) {
	st := store.NewMemory()
	logs := &syncBuffer{}
	in := newIngest(st, logs)
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	hello := wire.Hello{Labels: map[string]string{"site": "lab"}}
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 1, hello))
	in.Flush()
	if err := st.Update(func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, "", "n1")
		if err != nil {
			return err
		}
		n.Annotations[AnnotationAgentLabels] = `{"site":`
		return tx.Put(n)
	}); err != nil {
		t.Fatal(err)
	}
	hello.Labels["zone"] = "a"
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 2, hello))
	in.Flush()
	out := logs.String()
	if !strings.Contains(out, "do not decode") || !strings.Contains(out, "node=n1") || !strings.Contains(out, AnnotationAgentLabels) {
		t.Fatalf("no warning naming the node and the annotation; logs:\n%s", out)
	}
	n := getNode(t, st, "n1")
	if n.Labels["zone"] != "a" || n.Annotations[AnnotationAgentLabels] != `{"site":"lab","zone":"a"}` {
		t.Fatalf("labels %v, annotations %v", n.Labels, n.Annotations)
	}
}
