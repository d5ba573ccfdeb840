package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/ratelimit"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// agentEvents counts the events the hub stored from node's agent.
func agentEvents(t *testing.T, st store.Store, node string) int {
	t.Helper()
	n := 0
	if err := st.View(func(tx store.Tx) error {
		evs, err := store.List[api.Event](tx, "")
		for _, e := range evs {
			if e.Source.Component == "edge-agent" && e.Source.Host == node {
				n += int(e.Count) // repeats are one Event, counted
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func nodeEvent(node string, i int) wire.Event {
	return wire.Event{Object: api.ObjectReference{Kind: api.KindNode, Name: node}, Type: api.EventNormal, Reason: "Queued",
		Message: fmt.Sprintf("report %d", i), Time: t0.Add(time.Duration(i) * time.Millisecond)}
}

// TestNodeOverItsRateIsPacedNotDropped: a node draining a backlog far
// faster than its rate limit has every message taken, later: the broker
// acknowledged each (or acknowledges it when Handle returns), so a drop
// would lose it for good with the agent believing it delivered.
func TestNodeOverItsRateIsPacedNotDropped(t *testing.T) {
	st := store.NewMemory()
	limiter, err := ratelimit.New(ratelimit.Options{Rate: 100, Burst: 5})
	if err != nil {
		t.Fatal(err)
	}
	in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }, Limiter: limiter})
	const backlog = 50
	topic := wire.NodeTopic("n1", wire.TopicEvents)
	for i := range backlog {
		in.Handle(topic, msg(t, "n1", wire.TypeEvent, uint64(i+1), nodeEvent("n1", i)))
	}
	in.Flush()
	if got := agentEvents(t, st, "n1"); got != backlog {
		t.Fatalf("%d of %d events stored", got, backlog)
	}
	if received, dropped := in.Stats(); received != backlog || dropped != 0 {
		t.Fatalf("received %d, dropped %d", received, dropped)
	}
	// How many had to wait depends on how fast this machine handles them
	// (the bucket refills meanwhile), but 45 past the burst at 100/s do
	// not all find a token.
	if held, waited := in.Held(); held == 0 || held > backlog-5 || waited <= 0 {
		t.Fatalf("held %d messages for %s; want some of the %d past the burst", held, waited, backlog-5)
	}
}

// holdOne is a Limiter that holds one node for an hour.
type holdOne string

func (h holdOne) Reserve(key string) time.Duration {
	if key == string(h) {
		return time.Hour
	}
	return 0
}

// TestHeldNodeHoldsUpNoOther: a node waiting for its turn waits in its
// own handler; another node's messages are taken meanwhile. When ingest
// stops, the held message is still taken, not dropped.
func TestHeldNodeHoldsUpNoOther(t *testing.T) {
	st := store.NewMemory()
	in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }, Limiter: holdOne("noisy"), FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- in.Run(ctx) }()
	hello := wire.Hello{Info: api.NodeSystemInfo{Architecture: "amd64"}}
	noisy := msg(t, "noisy", wire.TypeHello, 1, hello)
	var wg sync.WaitGroup
	wg.Go(func() { in.Handle(wire.NodeTopic("noisy", wire.TopicStatus), noisy) })
	in.Handle(wire.NodeTopic("quiet", wire.TopicStatus), msg(t, "quiet", wire.TypeHello, 1, hello))
	in.Flush()
	_ = getNode(t, st, "quiet")
	cancel()
	wg.Wait()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	in.Flush()
	if n := getNode(t, st, "noisy"); n.Status.NodeInfo.Architecture != "amd64" {
		t.Fatalf("the held hello was not taken: %+v", n.Status)
	}
	if _, dropped := in.Stats(); dropped != 0 {
		t.Fatalf("dropped %d", dropped)
	}
}

// TestEventsPastTheirBoundWaitForAFlush: a node whose events fill their
// bound between flushes waits for the next flush instead of losing the
// next event.
func TestEventsPastTheirBoundWaitForAFlush(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	topic := wire.NodeTopic("n1", wire.TopicEvents)
	for i := range maxPendingEvents {
		in.Handle(topic, msg(t, "n1", wire.TypeEvent, uint64(i+1), nodeEvent("n1", i)))
	}
	last := msg(t, "n1", wire.TypeEvent, maxPendingEvents+1, nodeEvent("n1", maxPendingEvents))
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.Handle(topic, last)
	}()
	select {
	case <-done:
		t.Fatal("an event past the bound was taken without waiting for a flush")
	case <-time.After(50 * time.Millisecond):
	}
	in.Flush()
	<-done
	in.Flush()
	if got := agentEvents(t, st, "n1"); got != maxPendingEvents+1 {
		t.Fatalf("%d of %d events stored", got, maxPendingEvents+1)
	}
	if _, dropped := in.Stats(); dropped != 0 {
		t.Fatalf("dropped %d", dropped)
	}
}

// TestDropsAreCountedOnTheNode: what ingest cannot use is counted on the
// node its topic names, by reason, in its lease (which the API joins into
// the node); garbage on the topics of a node the hub never met makes no
// node.
func TestDropsAreCountedOnTheNode(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	status := wire.NodeTopic("n1", wire.TopicStatus)
	in.Handle(status, msg(t, "n1", wire.TypeHello, 1, wire.Hello{}))
	in.Flush()
	in.Handle(status, []byte("{nope"))
	in.Handle(status, []byte(`{"v":1,"type":"Heartbeat","node":"n1","seq":2,"payload":{"observedRevision":"x"}}`))
	in.Handle(status, make([]byte, wire.MaxPayload+1))
	in.Handle(status, msg(t, "n2", wire.TypeHeartbeat, 3, wire.Heartbeat{}))
	in.Handle(wire.NodeTopic("stranger", wire.TopicStatus), []byte("{nope"))
	in.Flush()
	var l *lease.Lease
	if err := st.View(func(tx store.Tx) error {
		var err error
		l, err = store.Get[lease.Lease](tx, "", "n1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{DropMalformed: 2, DropTooLarge: 1, DropWrongNode: 1}
	if len(l.IngestDropped) != len(want) {
		t.Fatalf("dropped %v, want %v", l.IngestDropped, want)
	}
	for reason, n := range want {
		if l.IngestDropped[reason] != n {
			t.Fatalf("dropped %v, want %v", l.IngestDropped, want)
		}
	}
	node := getNode(t, st, "n1")
	lease.Join(node, l)
	if node.Status.IngestDropped[DropMalformed] != 2 {
		t.Fatalf("the node as served: %v", node.Status.IngestDropped)
	}
	if err := st.View(func(tx store.Tx) error {
		_, err := store.Get[api.Node](tx, "", "stranger")
		return err
	}); !store.IsNotFound(err) {
		t.Fatalf("garbage made a node: %v", err)
	}
	// Counts add up across flushes; the stored lease is written anew.
	in.Handle(status, []byte("{nope"))
	in.Flush()
	if err := st.View(func(tx store.Tx) error {
		var err error
		l, err = store.Get[lease.Lease](tx, "", "n1")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if l.IngestDropped[DropMalformed] != 3 {
		t.Fatalf("after one more: %v", l.IngestDropped)
	}
}

// TestABurstOfEventsFitsTheStore: a node's backlog lands thousands of
// events in one flush. They are written in transactions the store can
// take, not in one that it refuses as too big, losing them all after the
// broker acknowledged them.
func TestABurstOfEventsFitsTheStore(t *testing.T) {
	st, err := store.OpenBadger(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := &syncBuffer{}
	in := newIngest(st, logs)
	in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypeHello, 1, wire.Hello{}))
	topic := wire.NodeTopic("n1", wire.TopicEvents)
	const burst = maxPendingEvents
	for i := range burst {
		ev := nodeEvent("n1", i)
		ev.Message = "Readiness probe failed: the container's check exited 1 after 1s, and it said why at some length"
		in.Handle(topic, msg(t, "n1", wire.TypeEvent, uint64(i+2), ev))
	}
	in.Flush()
	if got := agentEvents(t, st, "n1"); got != burst {
		t.Fatalf("%d of %d events stored; log:\n%.2000s", got, burst, logs.String())
	}
}

// failingStore refuses the first n writes.
type failingStore struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (f *failingStore) Update(fn func(store.Tx) error) error {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return errors.New("disk on fire")
	}
	return f.Store.Update(fn)
}

// TestAFailedWriteIsRetried: what the store refused is written at the
// next flush, merged with what arrived meanwhile (the newer facts win),
// not dropped: the broker acknowledged it, so no one sends it again.
func TestAFailedWriteIsRetried(t *testing.T) {
	mem := store.NewMemory()
	putPod(t, mem)
	st := &failingStore{Store: mem, n: 2}
	in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }})
	status, evTopic := wire.NodeTopic("n1", wire.TopicStatus), wire.NodeTopic("n1", wire.TopicEvents)
	report := func(phase api.PodPhase) wire.PodStatusReport {
		return wire.PodStatusReport{ObservedRevision: 1, Pods: []wire.PodReport{{UID: "u1", Name: "p", Namespace: "default", SpecHash: "h",
			Status: api.PodStatus{Phase: phase}}}}
	}
	in.Handle(status, msg(t, "n1", wire.TypeHello, 1, wire.Hello{ObservedRevision: 1}))
	in.Handle(status, msg(t, "n1", wire.TypePodStatus, 3, report(api.PodRunning)))
	in.Handle(evTopic, msg(t, "n1", wire.TypeEvent, 2, nodeEvent("n1", 2)))
	in.Flush() // the facts' write fails
	in.Handle(status, msg(t, "n1", wire.TypePodStatus, 4, report(api.PodFailed)))
	in.Handle(evTopic, msg(t, "n1", wire.TypeEvent, 5, nodeEvent("n1", 5)))
	in.Flush() // the facts' write fails again
	in.Flush()
	if n := getNode(t, mem, "n1"); n.Status.ObservedRevision != 1 {
		t.Fatalf("node %+v", n.Status)
	}
	if p := getPod(t, mem); p.Status.Phase != api.PodFailed {
		t.Fatalf("pod is %s; the newer report (seq 4) should win", p.Status.Phase)
	}
	if got := agentEvents(t, mem, "n1"); got != 2 {
		t.Fatalf("%d of 2 events stored", got)
	}
	if _, dropped := in.Stats(); dropped != 0 {
		t.Fatalf("dropped %d", dropped)
	}
}

// pace is a Limiter that makes every message wait a millisecond.
type pace struct{}

func (pace) Reserve(string) time.Duration { return time.Millisecond }

// TestHeldNodesAreLoggedOncePerMinuteOfItsClock: a node held back by its
// rate limit is logged at most once a minute, by ingest's clock.
func TestHeldNodesAreLoggedOncePerMinuteOfItsClock(t *testing.T) {
	logs := &syncBuffer{}
	now := t0
	in := New(Options{Store: store.NewMemory(), Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: func() time.Time { return now }, Limiter: pace{}})
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	logged := func() int { return strings.Count(logs.String(), "over its ingest rate limit") }
	for i, step := range []struct {
		advance time.Duration
		want    int
	}{{0, 1}, {30 * time.Second, 1}, {31 * time.Second, 2}, {time.Second, 2}} {
		now = now.Add(step.advance)
		in.Handle(topic, msg(t, "n1", wire.TypeHeartbeat, uint64(i+1), wire.Heartbeat{}))
		if got := logged(); got != step.want {
			t.Fatalf("message %d, clock at %v: logged %d times, want %d", i+1, now.Sub(t0), got, step.want)
		}
	}
}
