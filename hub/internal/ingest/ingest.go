// Package ingest takes what agents publish (hellos, heartbeats, pod status,
// online flags) and lands it in the store. Messages are decoded and checked
// on arrival, merged per node in memory, and written in one transaction per
// flush, so a fleet's heartbeats cost one store write per flush interval,
// not one per message. A bad message is logged with its topic and node and
// dropped; it never stops ingest.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// AnnotationAgentLabels records the labels the agent last asked for, so a
// changed --label set can be applied without undoing an operator's own
// labels.
const AnnotationAgentLabels = "flotilla.io/agent-labels"

// Condition reasons the hub sets on nodes.
const (
	ReasonAgentReady   = "AgentReady"
	ReasonAgentOffline = "AgentOffline"
)

// Options configure ingest.
type Options struct {
	Store  store.Store
	Logger *slog.Logger
	// FlushInterval is how long updates gather before one write (default 100 ms).
	FlushInterval time.Duration
	// SeenResolution is how stale a node's stored lastSeen may get before a
	// heartbeat rewrites it (default 15 s). Heartbeats that change nothing
	// else then cost no store write; the grace period before a node is
	// NotReady must exceed it plus the heartbeat interval.
	SeenResolution time.Duration
	// EventTTL is how long events are kept (default 1 h).
	EventTTL time.Duration
	Now      func() time.Time
	// Metrics receives metric batches (nil drops them).
	Metrics MetricsSink
	// OnFlush, if set, is told how long each flush took and how many
	// nodes it wrote.
	OnFlush func(d time.Duration, nodes int)
	// Limiter, if set, bounds the messages each node may send; the rest
	// are dropped (counted as dropped, logged at most once a minute per
	// node), so that one noisy or hostile node cannot starve the others.
	Limiter Limiter
	// AskHello, if set, asks a node to send its hello again. Ingest calls
	// it, from its own goroutine, for a node it hears from without having
	// had its hello since the hub started: an external broker keeps
	// nothing for a hub that is away, so the hello of an agent that
	// connected meanwhile (its labels, facts and capacity) is lost. It
	// is also called for a node back to Ready by a heartbeat alone, whose
	// pods the hub may have marked lost: the agent answers with its
	// pods' status too. When it fails, the node's next message asks again.
	AskHello func(node string) error
}

// askHelloEvery bounds how often one node is asked for its hello.
const askHelloEvery = 30 * time.Second

// Limiter is a per-key token bucket; *ratelimit.Limiter satisfies it.
type Limiter interface {
	Allow(key string) bool
}

// MetricsSink takes the metric samples a node sent; it must not block.
type MetricsSink interface {
	Add(node string, b wire.MetricsBatch)
}

// Ingest receives agent messages.
type Ingest struct {
	opts Options
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	pending map[string]*nodeUpdate

	received atomic.Uint64
	dropped  atomic.Uint64
	// limitedLogged is when a node's refused messages were last logged.
	limitedMu     sync.Mutex
	limitedLogged map[string]time.Time

	// greeted holds the nodes whose hello arrived since the hub started;
	// asked, when each other node was last asked for it (under mu).
	greeted map[string]bool
	asked   map[string]time.Time
	askCh   chan string
}

// nodeUpdate is everything heard from one node since the last flush. Of
// each kind of fact it keeps the one with the highest sequence number;
// events are all kept.
type nodeUpdate struct {
	seen time.Time

	hello    *wire.Hello
	helloSeq uint64

	observed    uint64 // the revision the agent runs
	observedSeq uint64

	outbox    *wire.OutboxState
	outboxSeq uint64

	online *bool

	podReport *wire.PodStatusReport
	reportSeq uint64

	events []seqEvent
}

type seqEvent struct {
	seq uint64
	ev  wire.Event
}

// maxPendingEvents bounds the events one node may queue between flushes.
const maxPendingEvents = 10_000

// New returns an Ingest; register its handlers with Handle and call Run.
func New(opts Options) *Ingest {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.SeenResolution <= 0 {
		opts.SeenResolution = 15 * time.Second
	}
	if opts.EventTTL <= 0 {
		opts.EventTTL = events.DefaultTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ingest{
		opts: opts, log: opts.Logger.With("component", "ingest"),
		wake:    make(chan struct{}, 1),
		pending: map[string]*nodeUpdate{},
		greeted: map[string]bool{},
		asked:   map[string]time.Time{},
		askCh:   make(chan string, 1024),
	}
}

// askAgain queues a hello request for node whatever it sent before; it
// never blocks (a full queue drops it: the node is asked at the next
// transition).
func (in *Ingest) askAgain(node string) {
	if in.opts.AskHello == nil {
		return
	}
	select {
	case in.askCh <- node:
	default:
	}
}

// wantHello notes that node spoke without a hello this hub has seen and,
// at most every askHelloEvery, queues a request for it. Called under mu.
func (in *Ingest) wantHello(node string, now time.Time) {
	if in.opts.AskHello == nil || in.greeted[node] || now.Sub(in.asked[node]) < askHelloEvery {
		return
	}
	select {
	case in.askCh <- node:
		in.asked[node] = now
	default: // a burst; the node's next message asks again
	}
}

// Stats returns how many messages arrived and how many were dropped as bad.
func (in *Ingest) Stats() (received, dropped uint64) {
	return in.received.Load(), in.dropped.Load()
}

// Handle decodes one message from an agent topic and queues its effect. It
// is safe for concurrent use and never blocks on the store; whether a fact
// is newer than what the hub already holds is decided at flush time,
// against the node's stored cursor.
func (in *Ingest) Handle(topic string, payload []byte) {
	in.received.Add(1)
	env, err := wire.Decode(topic, payload)
	if err != nil {
		in.drop(err)
		return
	}
	if in.opts.Limiter != nil && !in.opts.Limiter.Allow(env.Node) {
		in.limited(env.Node)
		return
	}
	// Decode the payload before taking the lock.
	var (
		hello  wire.Hello
		hb     wire.Heartbeat
		report wire.PodStatusReport
		online wire.Online
		event  wire.Event
		batch  wire.MetricsBatch
		target any
	)
	switch env.Type {
	case wire.TypeHello:
		target = &hello
	case wire.TypeHeartbeat:
		target = &hb
	case wire.TypePodStatus:
		target = &report
	case wire.TypeOnline:
		target = &online
	case wire.TypeEvent:
		target = &event
	case wire.TypeMetrics:
		target = &batch
	}
	if err := wire.DecodePayload(env, topic, target); err != nil {
		in.drop(err)
		return
	}
	node, seq := env.Node, env.Seq
	now := in.opts.Now()
	if env.Type == wire.TypeMetrics && in.opts.Metrics != nil {
		in.opts.Metrics.Add(node, batch)
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	u := in.pending[node]
	if u == nil {
		u = &nodeUpdate{}
		in.pending[node] = u
	}
	observe := func(rev uint64) {
		if seq > u.observedSeq {
			u.observed, u.observedSeq = rev, seq
		}
	}
	if env.Type == wire.TypeHello {
		in.greeted[node] = true
		delete(in.asked, node)
	} else if env.Type != wire.TypeOnline || online.Online {
		in.wantHello(node, now)
	}
	switch env.Type {
	case wire.TypeHello:
		if seq >= u.helloSeq {
			u.hello, u.helloSeq = &hello, seq
		}
		observe(hello.ObservedRevision)
		if seq > u.outboxSeq {
			u.outbox, u.outboxSeq = &hello.Outbox, seq
		}
	case wire.TypeHeartbeat:
		observe(hb.ObservedRevision)
		if seq > u.outboxSeq {
			u.outbox, u.outboxSeq = &hb.Outbox, seq
		}
	case wire.TypePodStatus:
		if seq > u.reportSeq {
			u.podReport, u.reportSeq = &report, seq
		}
		observe(report.ObservedRevision)
	case wire.TypeEvent:
		if len(u.events) < maxPendingEvents {
			u.events = append(u.events, seqEvent{seq: seq, ev: event})
		} else {
			in.log.Warn("too many events from one node in one flush; dropping", "node", node, "seq", seq)
		}
	case wire.TypeOnline:
		flag := online.Online
		u.online = &flag
		if !flag {
			// The broker speaking for a vanished agent is no sign of life.
			in.signal()
			return
		}
	}
	u.seen = now
	in.signal()
}

// limited drops a message over its node's rate limit.
func (in *Ingest) limited(node string) {
	in.dropped.Add(1)
	in.limitedMu.Lock()
	defer in.limitedMu.Unlock()
	if in.limitedLogged == nil {
		in.limitedLogged = map[string]time.Time{}
	}
	if now := time.Now(); now.Sub(in.limitedLogged[node]) > time.Minute {
		in.limitedLogged[node] = now
		in.log.Warn("node is over its ingest rate limit; dropping its messages", "node", node)
	}
}

func (in *Ingest) drop(err error) {
	in.dropped.Add(1)
	var we *wire.Error
	if errors.As(err, &we) {
		in.log.Warn("dropping bad agent message", "node", we.Node, "topic", we.Topic, "err", we.Err)
		return
	}
	in.log.Warn("dropping bad agent message", "err", err)
}

func (in *Ingest) signal() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// Run flushes queued updates until ctx ends.
func (in *Ingest) Run(ctx context.Context) error {
	t := time.NewTicker(in.opts.FlushInterval)
	defer t.Stop()
	if in.opts.AskHello != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case node := <-in.askCh:
					in.log.Info("asking a node for its hello, missed while the hub was away", "node", node)
					if err := in.opts.AskHello(node); err != nil {
						in.log.Warn("ask a node for its hello; asking again at its next message", "node", node, "err", err)
						in.mu.Lock()
						delete(in.asked, node)
						in.mu.Unlock()
					}
				}
			}
		}()
	}
	pending := false
	for {
		select {
		case <-ctx.Done():
			in.Flush()
			return nil
		case <-in.wake:
			pending = true
			continue
		case <-t.C:
		}
		if pending {
			pending = false
			in.Flush()
		}
	}
}

// Flush writes every queued update now.
func (in *Ingest) Flush() {
	in.mu.Lock()
	batch := in.pending
	in.pending = map[string]*nodeUpdate{}
	in.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if in.opts.OnFlush != nil {
		start := time.Now()
		defer func() { in.opts.OnFlush(time.Since(start), len(batch)) }()
	}
	nodes := make([]string, 0, len(batch))
	for n := range batch {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	const perTx = 200
	for start := 0; start < len(nodes); start += perTx {
		part := nodes[start:min(start+perTx, len(nodes))]
		err := in.opts.Store.Update(func(tx store.Tx) error {
			for _, n := range part {
				if err := in.apply(tx, n, batch[n]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			in.log.Error("write agent updates; they will be re-sent", "nodes", len(part), "err", err)
		}
	}
}

// KindIngestCursor is the store kind of ingest's per-node bookkeeping:
// the sequence numbers of the newest facts applied, so that nothing older
// replaces something newer, across hub restarts too.
const KindIngestCursor = "IngestCursor"

// Cursor records, for one node, the sequence numbers of the newest hello,
// observed revision, outbox state and pod status applied.
type Cursor struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	Hello          uint64 `json:"hello"`
	Observed       uint64 `json:"observed"`
	Outbox         uint64 `json:"outbox"`
	PodStatus      uint64 `json:"podStatus"`
}

// apply lands one node's update.
func (in *Ingest) apply(tx store.Tx, name string, u *nodeUpdate) error {
	node, err := store.Get[api.Node](tx, api.KindNode, "", name)
	created := false
	if store.IsNotFound(err) {
		if u.online != nil && !*u.online && u.seen.IsZero() {
			return nil // a will from a node we never met
		}
		node = &api.Node{
			TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
			ObjectMeta: api.ObjectMeta{Name: name, UID: api.NewUID(), CreationTimestamp: api.NewTime(in.opts.Now().UTC().Truncate(time.Second))},
		}
		created = true
	} else if err != nil {
		return err
	}
	cur, err := store.Get[Cursor](tx, KindIngestCursor, "", name)
	if store.IsNotFound(err) {
		cur = &Cursor{TypeMeta: api.TypeMeta{Kind: KindIngestCursor}, ObjectMeta: api.ObjectMeta{Name: name}}
	} else if err != nil {
		return err
	}
	seqsBefore := cur.seqs()
	if newest := slices.Max(seqsBefore[:]); u.hello != nil && newest > 0 && u.helloSeq <= newest {
		// A hello takes a fresh number, above everything the agent sent
		// before; one that does not means the agent's local state was
		// rebuilt. Start its ordering afresh rather than ignore it forever.
		in.log.Warn("agent sequence numbers restarted; resetting its ordering", "node", name, "seq", u.helloSeq, "previous", newest)
		cur.Hello, cur.Observed, cur.Outbox, cur.PodStatus = 0, 0, 0, 0
	}
	before, _ := json.Marshal(node)
	wasReady := node.IsReady()

	if u.hello != nil && u.helloSeq >= cur.Hello {
		applyHello(node, u.hello)
		cur.Hello = u.helloSeq
	}
	if u.observedSeq > cur.Observed {
		node.Status.ObservedRevision = u.observed
		cur.Observed = u.observedSeq
	}
	if u.outbox != nil && u.outboxSeq > cur.Outbox {
		node.Status.Outbox = api.NodeOutbox{Queued: u.outbox.Queued, Dropped: u.outbox.Dropped, DroppedByClass: u.outbox.DroppedByClass, AppendedByClass: u.outbox.AppendedByClass}
		cur.Outbox = u.outboxSeq
	}
	now := api.NewTime(u.seen.UTC())
	switch {
	case !u.seen.IsZero():
		if !node.IsReady() || !node.Status.Online || u.seen.Sub(node.Status.LastSeen.Time) >= in.opts.SeenResolution {
			node.Status.LastSeen = now
			node.Status.Online = true
			setReady(node, api.ConditionTrue, ReasonAgentReady, "agent is posting heartbeats", now)
		}
	case u.online != nil && !*u.online:
		node.Status.Online = false
		setReady(node, api.ConditionFalse, ReasonAgentOffline, "agent disconnected from the broker", api.NewTime(in.opts.Now().UTC()))
	}
	after, _ := json.Marshal(node)
	if created || string(before) != string(after) {
		if err := tx.Put(node); err != nil {
			return err
		}
	}
	if node.IsReady() && !wasReady && !created && u.hello == nil && u.podReport == nil {
		// Back by a heartbeat alone: the agent never left (the hub was
		// late), so it will not re-report its pods, which node lifecycle
		// may have marked NodeLost meanwhile. Ask for its hello, which
		// comes with its pods' current status.
		in.askAgain(name)
	}
	if ready := node.IsReady(); ready != wasReady {
		reason, typ := "NodeReady", api.EventNormal
		if !ready {
			reason, typ = "NodeNotReady", api.EventWarning
		}
		c := node.Status.Condition(api.NodeReady)
		at := in.opts.Now()
		if err := events.Put(tx, events.Record{
			Object: api.ObjectReference{Kind: api.KindNode, Name: name, UID: node.UID},
			Type:   typ, Reason: reason, Message: fmt.Sprintf("Node %s status is now: %s (%s)", name, reason, c.Message),
			Time: at, Source: api.EventSource{Component: "hub"}, Key: events.HubKey(at),
		}, in.opts.EventTTL); err != nil {
			return err
		}
	}
	for _, se := range u.events {
		e := se.ev
		if err := events.Put(tx, events.Record{
			Object: e.Object, Type: e.Type, Reason: e.Reason, Message: e.Message, Time: e.Time,
			Source: api.EventSource{Component: "edge-agent", Host: name},
			Key:    fmt.Sprintf("%s.%016x", name, se.seq),
		}, in.opts.EventTTL); err != nil {
			return err
		}
	}
	if u.podReport != nil && u.reportSeq > cur.PodStatus {
		if err := applyPodReport(tx, name, u.podReport); err != nil {
			return err
		}
		cur.PodStatus = u.reportSeq
	}
	if cur.seqs() != seqsBefore {
		return tx.Put(cur)
	}
	return nil
}

func (c *Cursor) seqs() [4]uint64 { return [4]uint64{c.Hello, c.Observed, c.Outbox, c.PodStatus} }

// applyHello merges the agent's announcement into the node. Labels the
// agent asks for are applied as a change against what it asked for last
// time, so labels an operator set or removed by hand stay as they are.
func applyHello(node *api.Node, h *wire.Hello) {
	var previous map[string]string
	if raw := node.Annotations[AnnotationAgentLabels]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &previous)
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
	raw, _ := json.Marshal(h.Labels)
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[AnnotationAgentLabels] = string(raw)
	node.Status.NodeInfo = h.Info
	node.Status.Capacity = h.Capacity
	node.Status.Allocatable = h.Capacity
	node.Status.Addresses = h.Addresses
}

func isWellKnown(k string) bool {
	return k == api.LabelHostname || k == api.LabelOS || k == api.LabelArch
}

// setReady sets the Ready condition, moving its transition time only when
// its status changes.
func setReady(node *api.Node, status, reason, message string, now api.Time) {
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

// applyPodReport stores each reported pod's status on the pod the hub
// assigned, if it is still the same pod on the same node.
func applyPodReport(tx store.Tx, node string, rep *wire.PodStatusReport) error {
	for i := range rep.Pods {
		pr := &rep.Pods[i]
		pod, err := store.Get[api.Pod](tx, api.KindPod, pr.Namespace, pr.Name)
		if store.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if pod.UID != pr.UID || pod.Spec.NodeName != node {
			continue
		}
		st := pr.Status
		st.ObservedRevision = rep.ObservedRevision
		st.SpecHash = pr.SpecHash
		st.PrePulled = pr.PrePulled
		st.Reverted = nil
		if r := pr.Reverted; r != nil {
			st.Reverted = &api.PodRevert{FromSpecHash: r.FromSpecHash, ToSpecHash: r.ToSpecHash, Reason: r.Reason}
		}
		before, _ := json.Marshal(pod.Status)
		after, _ := json.Marshal(st)
		if string(before) == string(after) {
			continue
		}
		pod.Status = st
		if err := tx.Put(pod); err != nil {
			return err
		}
	}
	return nil
}
