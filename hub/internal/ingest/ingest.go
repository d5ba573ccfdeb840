// Package ingest takes what agents publish (hellos, heartbeats, pod status,
// online flags) and lands it in the store. Messages are decoded and checked
// on arrival, merged per node in memory, and written in one transaction per
// flush, so a fleet's heartbeats cost one store write per flush interval,
// not one per message. A node sending faster than its rate limit is held
// back, never dropped: the broker acknowledged what reaches ingest (or
// acknowledges it when Handle returns), so a dropped message would be lost
// with its agent believing it delivered. A bad message is logged with its
// topic and node, dropped and counted on the node's lease; it never stops
// ingest.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
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
	// FlushInterval is how long heartbeats, metrics and events gather
	// before one write (default 100 ms).
	FlushInterval time.Duration
	// StatusGather is how long a pod status report, hello or online change
	// waits for others before they are written (default 10 ms): what
	// controllers wait for (a rolling update's next nodes wait for the
	// last ones' Ready) is written as soon as it comes. Under load, flushes
	// run back to back and batch whatever arrived meanwhile.
	StatusGather time.Duration
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
	// Limiter, if set, bounds the messages each node may send, so that a
	// noisy or hostile node cannot take the hub's time from the others.
	// A node over it is held back, not dropped: Handle waits the node's
	// turn before it takes the message, which on the embedded broker
	// holds the publisher's connection (and so its PUBACKs) through the
	// inline session, and on an external broker delays the hub's
	// acknowledgement, so the broker sends no faster (logged at most once
	// a minute per node).
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

// askStatusEvery bounds how often one node is asked again for a pod
// status report the hub missed: a little over the agent's heartbeat, so
// the resend has arrived before the next heartbeat is weighed.
const askStatusEvery = 15 * time.Second

// Limiter is a per-key token bucket; *ratelimit.Limiter satisfies it.
// Reserve takes a token, lending it if the key has none, and says how long
// to wait before acting on it.
type Limiter interface {
	Reserve(key string) time.Duration
}

// Reasons a message is dropped, the keys of a node's
// api.NodeStatus.IngestDropped.
const (
	// DropMalformed: not a v1 envelope, a payload that does not decode,
	// a type not allowed on its topic.
	DropMalformed = "malformed"
	// DropTooLarge: over wire.MaxPayload.
	DropTooLarge = "tooLarge"
	// DropWrongNode: the envelope names another node than its topic.
	DropWrongNode = "wrongNode"
)

// MetricsSink takes the metric samples a node sent; it must not block.
type MetricsSink interface {
	Add(node string, b wire.MetricsBatch)
}

// Ingest receives agent messages.
type Ingest struct {
	opts Options
	log  *slog.Logger
	// wake says something is pending; urgent, that it should be written
	// after StatusGather rather than at the next FlushInterval.
	wake, urgent chan struct{}

	mu      sync.Mutex
	pending map[string]*nodeUpdate
	// swapped is closed when Flush takes pending (under mu), for a
	// handler waiting for room for its node's events.
	swapped chan struct{}

	// stop is closed when Run returns: a held message waits no longer.
	stop     chan struct{}
	stopOnce sync.Once

	received atomic.Uint64
	dropped  atomic.Uint64
	// held counts the messages held back by the rate limit, and heldFor
	// their waits (nanoseconds).
	held, heldFor atomic.Uint64
	// limitedLogged is when a node's held messages were last logged.
	limitedMu     sync.Mutex
	limitedLogged map[string]time.Time

	// greeted holds the nodes whose hello arrived since the hub started;
	// asked, when each other node was last asked for it (under mu).
	greeted map[string]bool
	asked   map[string]time.Time
	askCh   chan string

	// flushMu serializes flushes; leases and resent are only used under it.
	flushMu sync.Mutex
	leases  map[string]*leaseState
	// resent is when each node was last asked for a pod status report
	// the hub missed.
	resent map[string]time.Time
}

// leaseState is ingest's view of one node's lease: the newest values,
// some of which may not be stored yet, and the values last stored.
type leaseState struct {
	latest lease.Lease
	stored *lease.Lease // nil: not in the store
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

	// statusClaim is the newest pod status report the agent says the
	// broker acknowledged before its latest heartbeat
	// (wire.Heartbeat.StatusSeq); claimSeq is that heartbeat's number.
	statusClaim, claimSeq uint64

	events []seqEvent

	// dropped counts the node's messages that could not be used, by
	// reason (DropMalformed...).
	dropped map[string]uint64

	// tries counts the flushes that failed to write this update.
	tries int
}

type seqEvent struct {
	seq uint64
	ev  wire.Event
}

// maxPendingEvents bounds the events one node may queue between flushes:
// past it, the node's next event waits for the next flush (at most
// eventRoomWait, then it is queued anyway: an acknowledged event is never
// dropped).
const maxPendingEvents = 10_000

// eventRoomWait bounds how long an event waits for a flush to make room.
const eventRoomWait = 5 * time.Second

// New returns an Ingest; register its handlers with Handle and call Run.
func New(opts Options) *Ingest {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.StatusGather <= 0 {
		opts.StatusGather = 10 * time.Millisecond
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
		urgent:  make(chan struct{}, 1),
		pending: map[string]*nodeUpdate{},
		swapped: make(chan struct{}),
		stop:    make(chan struct{}),
		greeted: map[string]bool{},
		asked:   map[string]time.Time{},
		askCh:   make(chan string, 1024),
		leases:  map[string]*leaseState{},
		resent:  map[string]time.Time{},
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

// Stats returns how many messages arrived and how many were dropped: as
// bad, or given up after the store refused them maxWriteTries times.
func (in *Ingest) Stats() (received, dropped uint64) {
	return in.received.Load(), in.dropped.Load()
}

// Held returns how many messages the rate limit held back, and for how
// long in all.
func (in *Ingest) Held() (messages uint64, waited time.Duration) {
	return in.held.Load(), time.Duration(in.heldFor.Load())
}

// Handle decodes one message from an agent topic and queues its effect. It
// is safe for concurrent use. It waits for the node's turn when the node
// is over its rate limit, and for the next flush when the node's events
// fill their bound (so at most for one flush's store write): that is how
// ingest holds a publisher back instead of dropping what the broker
// acknowledged. Whether a fact is newer than what the hub already holds
// is decided at flush time, against the node's stored cursor.
func (in *Ingest) Handle(topic string, payload []byte) {
	in.received.Add(1)
	// The node a message comes from is in its topic (the broker's ACL lets
	// an agent publish only on its own, and decoding checks the envelope
	// names it): a node over its limit waits before any decoding.
	if node, _, err := wire.ParseNodeTopic(topic); err == nil && in.opts.Limiter != nil {
		if wait := in.opts.Limiter.Reserve(node); wait > 0 {
			in.holdBack(node, wait)
		}
	}
	// Decode envelope and payload, in one pass, before taking the lock.
	var (
		hello  wire.Hello
		hb     wire.Heartbeat
		report wire.PodStatusReport
		online wire.Online
		event  wire.Event
		batch  wire.MetricsBatch
	)
	env, err := wire.DecodeMessage(topic, payload, func(typ string) any {
		switch typ {
		case wire.TypeHello:
			return &hello
		case wire.TypeHeartbeat:
			return &hb
		case wire.TypePodStatus:
			return &report
		case wire.TypeOnline:
			return &online
		case wire.TypeEvent:
			return &event
		case wire.TypeMetrics:
			return &batch
		}
		return nil
	})
	if err != nil {
		in.drop(topic, err)
		return
	}
	node, seq := env.Node, env.Seq
	now := in.opts.Now()
	if env.Type == wire.TypeMetrics && in.opts.Metrics != nil {
		in.opts.Metrics.Add(node, batch)
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	if env.Type == wire.TypeEvent {
		in.roomForEvent(node)
	}
	u := in.update(node)
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
	case wire.TypeHeartbeat, wire.TypeMetrics:
		beat := &hb
		if env.Type == wire.TypeMetrics {
			beat = batch.Heartbeat // a sample carries the heartbeat
		}
		if beat != nil {
			observe(beat.ObservedRevision)
			if seq > u.outboxSeq {
				u.outbox, u.outboxSeq = &beat.Outbox, seq
			}
			if seq > u.claimSeq {
				u.claimSeq, u.statusClaim = seq, beat.StatusSeq
			}
		}
	case wire.TypePodStatus:
		if seq > u.reportSeq {
			u.podReport, u.reportSeq = &report, seq
		}
		observe(report.ObservedRevision)
	case wire.TypeEvent:
		u.events = append(u.events, seqEvent{seq: seq, ev: event})
	case wire.TypeOnline:
		flag := online.Online
		u.online = &flag
		if !flag {
			// The broker speaking for a vanished agent is no sign of life.
			in.signal(true)
			return
		}
	}
	u.seen = now
	switch env.Type {
	case wire.TypePodStatus, wire.TypeHello, wire.TypeOnline:
		in.signal(true)
	default:
		in.signal(false)
	}
}

// update returns node's pending update, making it. Called under mu.
func (in *Ingest) update(node string) *nodeUpdate {
	u := in.pending[node]
	if u == nil {
		u = &nodeUpdate{}
		in.pending[node] = u
	}
	return u
}

// roomForEvent waits, while node has maxPendingEvents events pending, for
// the next flush to take them, at most eventRoomWait. Called under mu,
// which it releases while it waits.
func (in *Ingest) roomForEvent(node string) {
	u := in.pending[node]
	if u == nil || len(u.events) < maxPendingEvents {
		return
	}
	swapped := in.swapped
	in.mu.Unlock()
	in.signal(true)
	t := time.NewTimer(eventRoomWait)
	select {
	case <-swapped:
	case <-t.C:
		in.log.Warn("a node's events wait for a flush longer than expected; queueing them anyway", "node", node, "pending", maxPendingEvents)
	case <-in.stop:
	}
	t.Stop()
	in.mu.Lock()
}

// holdBack waits out a node's turn under its rate limit (or until Run
// ends): the caller's broker session sends no more of the node's messages
// meanwhile.
func (in *Ingest) holdBack(node string, wait time.Duration) {
	in.held.Add(1)
	in.heldFor.Add(uint64(wait))
	in.limitedMu.Lock()
	if in.limitedLogged == nil {
		in.limitedLogged = map[string]time.Time{}
	}
	if now := time.Now(); now.Sub(in.limitedLogged[node]) > time.Minute {
		in.limitedLogged[node] = now
		in.log.Info("node is over its ingest rate limit; holding its messages back", "node", node)
	}
	in.limitedMu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.stop:
	}
}

// drop counts a message that cannot be used: in all, and on the node its
// topic names, so that `hub describe node` shows it next to what the
// agent itself dropped.
func (in *Ingest) drop(topic string, err error) {
	in.dropped.Add(1)
	var we *wire.Error
	if errors.As(err, &we) {
		in.log.Warn("dropping bad agent message", "node", we.Node, "topic", we.Topic, "err", we.Err)
	} else {
		in.log.Warn("dropping bad agent message", "err", err)
	}
	node, _, perr := wire.ParseNodeTopic(topic)
	if perr != nil {
		return // not a node's topic: no node to count it on
	}
	reason := DropMalformed
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		reason = DropTooLarge
	case errors.Is(err, wire.ErrNodeMismatch):
		reason = DropWrongNode
	}
	in.mu.Lock()
	u := in.update(node)
	if u.dropped == nil {
		u.dropped = map[string]uint64{}
	}
	u.dropped[reason]++
	in.mu.Unlock()
	in.signal(false)
}

func (in *Ingest) signal(urgent bool) {
	ch := in.wake
	if urgent {
		ch = in.urgent
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Run flushes queued updates until ctx ends.
func (in *Ingest) Run(ctx context.Context) error {
	defer in.stopOnce.Do(func() { close(in.stop) })
	if err := in.dropCursors(); err != nil {
		return err
	}
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
	// pending: something waits for a flush; armed: the gather timer runs
	// for an urgent one.
	pending, armed := false, false
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	for {
		select {
		case <-ctx.Done():
			in.Flush()
			return nil
		case <-in.wake:
			pending = true
			continue
		case <-in.urgent:
			pending = true
			if !armed {
				armed = true
				gather.Reset(in.opts.StatusGather)
			}
			continue
		case <-gather.C:
		case <-t.C:
			if !pending {
				continue
			}
		}
		pending, armed = false, false
		gather.Stop()
		in.Flush()
	}
}

// kindIngestCursor is the kind of the per-node records that held
// ingest's sequence numbers before leases did.
const kindIngestCursor = "IngestCursor"

// dropCursors deletes the records leases replaced. Their sequence numbers
// are not carried over: at worst one late report that was already applied
// before the upgrade is applied again.
func (in *Ingest) dropCursors() error {
	var keys []store.Key
	if err := in.opts.Store.View(func(tx store.Tx) error {
		recs, err := tx.List(kindIngestCursor, "")
		for _, r := range recs {
			keys = append(keys, r.Key)
		}
		return err
	}); err != nil {
		return fmt.Errorf("read old ingest cursors: %w", err)
	}
	for start := 0; start < len(keys); start += 500 {
		part := keys[start:min(start+500, len(keys))]
		if err := in.opts.Store.Update(func(tx store.Tx) error {
			for _, k := range part {
				if err := tx.Delete(k); err != nil && !store.IsNotFound(err) {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("delete old ingest cursors: %w", err)
		}
	}
	return nil
}

// Flush writes every queued update now: each node's facts in one
// transaction per 200 nodes, then their events, at most eventsPerTx per
// transaction. What a failed write did not store goes back to pending
// for the next flush (up to maxWriteTries times): the broker acknowledged
// it, so no one will send it again.
func (in *Ingest) Flush() {
	in.mu.Lock()
	batch := in.pending
	in.pending = map[string]*nodeUpdate{}
	close(in.swapped)
	in.swapped = make(chan struct{})
	in.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	in.flushMu.Lock()
	defer in.flushMu.Unlock()
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
		var written []*lease.Lease
		err := in.opts.Store.Update(func(tx store.Tx) error {
			written = written[:0]
			for _, n := range part {
				l, err := in.apply(tx, n, batch[n])
				if err != nil {
					return err
				}
				if l != nil {
					written = append(written, l)
				}
			}
			return nil
		})
		if err != nil {
			in.log.Error("write agent updates; retrying at the next flush", "nodes", len(part), "err", err)
			// What ingest holds of these nodes' leases may be ahead of the
			// store now: read them again next time.
			for _, n := range part {
				delete(in.leases, n)
			}
			failed := make(map[string]*nodeUpdate, len(part))
			for _, n := range part {
				failed[n] = batch[n]
			}
			in.retry(failed)
			continue
		}
		for _, l := range written {
			in.leases[l.Name].stored = l
		}
		in.writeEvents(part, batch)
	}
}

// eventsPerTx bounds the agent events written in one transaction: a
// node's backlog can bring thousands in one flush, more than the store
// takes at once (its transactions are bounded in bytes).
const eventsPerTx = 500

// maxWriteTries is how many flushes try to write an update before ingest
// gives up on it: the store refusing the same write that often is broken,
// and holding on would grow pending without bound.
const maxWriteTries = 5

// writeEvents stores the agent events of the nodes of part, oldest first,
// at most eventsPerTx per transaction. What a failed write did not store
// is put back for the next flush.
func (in *Ingest) writeEvents(part []string, batch map[string]*nodeUpdate) {
	type nodeEvent struct {
		node string
		se   seqEvent
	}
	var all []nodeEvent
	for _, n := range part {
		for _, se := range batch[n].events {
			all = append(all, nodeEvent{n, se})
		}
	}
	for start := 0; start < len(all); start += eventsPerTx {
		chunk := all[start:min(start+eventsPerTx, len(all))]
		err := in.opts.Store.Update(func(tx store.Tx) error {
			for _, ne := range chunk {
				e := ne.se.ev
				if err := events.Put(tx, events.Record{
					Object: e.Object, Type: e.Type, Reason: e.Reason, Message: e.Message, Time: e.Time,
					Source: api.EventSource{Component: "edge-agent", Host: ne.node},
					Seq:    ne.se.seq,
				}, in.opts.EventTTL); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			in.log.Error("write agent events; retrying at the next flush", "events", len(all)-start, "err", err)
			rest := map[string]*nodeUpdate{}
			for _, ne := range all[start:] {
				u := rest[ne.node]
				if u == nil {
					u = &nodeUpdate{tries: batch[ne.node].tries}
					rest[ne.node] = u
				}
				u.events = append(u.events, ne.se)
			}
			in.retry(rest)
			return
		}
	}
}

// retry puts back updates a failed write did not store, under what
// arrived since, for the next flush; after maxWriteTries it gives up on
// one, logging what is lost and counting its messages as dropped.
func (in *Ingest) retry(updates map[string]*nodeUpdate) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for node, u := range updates {
		u.tries++
		if u.tries >= maxWriteTries {
			in.log.Error("the store refused a node's updates too often; giving them up", "node", node, "tries", u.tries, "events", len(u.events))
			in.dropped.Add(uint64(1 + len(u.events)))
			continue
		}
		if newer := in.pending[node]; newer != nil {
			merge(u, newer)
		} else {
			in.pending[node] = u
		}
	}
	in.signal(false)
}

// merge folds older, an update put back after a failed write, into newer,
// what arrived from the node since: of each fact the one with the higher
// sequence number wins, the online flag is newer's if it has one, events
// keep their order and drop counts add up.
func merge(older, newer *nodeUpdate) {
	if newer.seen.IsZero() || older.seen.After(newer.seen) {
		newer.seen = older.seen
	}
	if older.hello != nil && (newer.hello == nil || older.helloSeq > newer.helloSeq) {
		newer.hello, newer.helloSeq = older.hello, older.helloSeq
	}
	if older.observedSeq > newer.observedSeq {
		newer.observed, newer.observedSeq = older.observed, older.observedSeq
	}
	if older.outbox != nil && older.outboxSeq > newer.outboxSeq {
		newer.outbox, newer.outboxSeq = older.outbox, older.outboxSeq
	}
	if newer.online == nil {
		newer.online = older.online
	}
	if older.podReport != nil && older.reportSeq > newer.reportSeq {
		newer.podReport, newer.reportSeq = older.podReport, older.reportSeq
	}
	if older.claimSeq > newer.claimSeq {
		newer.statusClaim, newer.claimSeq = older.statusClaim, older.claimSeq
	}
	newer.events = append(append(make([]seqEvent, 0, len(older.events)+len(newer.events)), older.events...), newer.events...)
	for reason, n := range older.dropped {
		if newer.dropped == nil {
			newer.dropped = map[string]uint64{}
		}
		newer.dropped[reason] += n
	}
	newer.tries = max(newer.tries, older.tries)
}

// leaseOf returns ingest's view of node's lease, reading it from the store
// the first time.
func (in *Ingest) leaseOf(tx store.Tx, node string) (*leaseState, error) {
	if ls := in.leases[node]; ls != nil {
		return ls, nil
	}
	ls := &leaseState{}
	stored, err := store.Get[lease.Lease](tx, "", node)
	switch {
	case err == nil:
		ls.latest, ls.stored = *stored, stored
	case store.IsNotFound(err):
		ls.latest = *lease.New(node)
	default:
		return nil, err
	}
	in.leases[node] = ls
	return ls, nil
}

// apply lands one node's update. It returns the lease it wrote, if it
// wrote one. The Node is written only when something an operator or a
// controller reads changed (labels, facts, readiness, the revision the
// agent runs); heartbeats renew the node's lease instead, at most every
// SeenResolution, so that they wake no controller.
func (in *Ingest) apply(tx store.Tx, name string, u *nodeUpdate) (*lease.Lease, error) {
	ls, err := in.leaseOf(tx, name)
	if err != nil {
		return nil, err
	}
	seq := ls.latest.Seq
	before, err := store.GetShared[api.Node](tx, "", name)
	created := false
	var node *api.Node // the node to write; nil while unchanged
	switch {
	case store.IsNotFound(err):
		if u.seen.IsZero() {
			// A will, or messages that could not be used, from a node we
			// never met: no sign of a node to make.
			return nil, nil
		}
		node = &api.Node{
			TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
			ObjectMeta: api.ObjectMeta{Name: name, UID: api.NewUID(), CreationTimestamp: api.NewTime(in.opts.Now().UTC().Truncate(time.Second))},
		}
		before, created = &api.Node{}, true
	case err != nil:
		return nil, err
	}
	// edit returns the node to change: a copy of the stored one, made once.
	edit := func() (*api.Node, error) {
		if node == nil {
			if node, err = store.Get[api.Node](tx, "", name); err != nil {
				return nil, err
			}
		}
		return node, nil
	}
	current := func() *api.Node {
		if node != nil {
			return node
		}
		return before
	}
	if newest := seq.Newest(); u.hello != nil && newest > 0 && u.helloSeq <= newest {
		// A hello takes a fresh number, above everything the agent sent
		// before; one that does not means the agent's local state was
		// rebuilt. Start its ordering afresh rather than ignore it forever.
		in.log.Warn("agent sequence numbers restarted; resetting its ordering", "node", name, "seq", u.helloSeq, "previous", newest)
		seq = lease.Seq{}
	}

	if u.hello != nil && u.helloSeq >= seq.Hello {
		was, _ := json.Marshal(current())
		n, err := edit()
		if err != nil {
			return nil, err
		}
		applyHello(n, u.hello)
		if now, _ := json.Marshal(n); string(now) == string(was) && !created {
			node = nil // the same hello again (a reconnect): nothing to write
		}
		seq.Hello = u.helloSeq
	}
	if u.observedSeq > seq.Observed {
		seq.Observed = u.observedSeq
		if current().Status.ObservedRevision != u.observed {
			n, err := edit()
			if err != nil {
				return nil, err
			}
			n.Status.ObservedRevision = u.observed
		}
	}
	if len(u.dropped) > 0 {
		// A new map: the stored lease must not share the one that grows.
		dropped := maps.Clone(ls.latest.IngestDropped)
		if dropped == nil {
			dropped = map[string]uint64{}
		}
		for reason, n := range u.dropped {
			dropped[reason] += n
		}
		ls.latest.IngestDropped = dropped
	}
	if u.outbox != nil && u.outboxSeq > seq.Outbox {
		ls.latest.Outbox = api.NodeOutbox{Queued: u.outbox.Queued, Dropped: u.outbox.Dropped, DroppedByClass: u.outbox.DroppedByClass, AppendedByClass: u.outbox.AppendedByClass}
		seq.Outbox = u.outboxSeq
	}
	switch {
	case !u.seen.IsZero():
		seen := api.NewTime(u.seen.UTC())
		ls.latest.RenewTime = seen
		if c := current(); !c.IsReady() || !c.Status.Online {
			n, err := edit()
			if err != nil {
				return nil, err
			}
			n.Status.LastSeen = seen
			n.Status.Online = true
			setReady(n, api.ConditionTrue, ReasonAgentReady, "agent is posting heartbeats", seen)
		}
	case u.online != nil && !*u.online:
		c := current()
		// The hub can no longer hear the node: Unknown (the
		// node.kubernetes.io/unreachable taint), as Kubernetes has it for a
		// kubelet that stopped posting status; not False (not-ready), which
		// a node says of itself. Node lifecycle may have set Unknown
		// already for its silence: the transition time then stays, so a
		// toleration's clock starts once.
		if cond := c.Status.Condition(api.NodeReady); c.Status.Online || cond == nil || cond.Status != api.ConditionUnknown || cond.Reason != ReasonAgentOffline {
			n, err := edit()
			if err != nil {
				return nil, err
			}
			n.Status.Online = false
			setReady(n, api.ConditionUnknown, ReasonAgentOffline, "agent disconnected from the broker", api.NewTime(in.opts.Now().UTC()))
		}
	}
	wasReady := !created && before.IsReady()
	if node != nil {
		if err := tx.Put(node); err != nil {
			return nil, err
		}
	}
	after := current()
	if after.IsReady() && !wasReady && !created && u.hello == nil && u.podReport == nil {
		// Back by a heartbeat alone: the agent never left (the hub was
		// late), so it will not re-report its pods, which node lifecycle
		// may have marked NodeLost meanwhile. Ask for its hello, which
		// comes with its pods' current status.
		in.askAgain(name)
	}
	if ready := after.IsReady(); ready != wasReady {
		reason, typ := "NodeReady", api.EventNormal
		if !ready {
			reason, typ = "NodeNotReady", api.EventWarning
		}
		c := after.Status.Condition(api.NodeReady)
		at := in.opts.Now()
		if err := events.Put(tx, events.Record{
			Object: api.ObjectReference{Kind: api.KindNode, Name: name, UID: after.UID},
			Type:   typ, Reason: reason, Message: fmt.Sprintf("Node %s status is now: %s (%s)", name, reason, c.Message),
			Time: at, Source: api.EventSource{Component: "hub"},
		}, in.opts.EventTTL); err != nil {
			return nil, err
		}
	}
	podsWritten := false
	if u.podReport != nil && u.reportSeq > seq.PodStatus {
		if podsWritten, err = applyPodReport(tx, name, u.podReport); err != nil {
			return nil, err
		}
		seq.PodStatus = u.reportSeq
	}
	ls.latest.Seq = seq
	if u.statusClaim > seq.PodStatus {
		// The agent's newest report reached the broker but not the hub
		// (a broker that dropped it, say, under a burst): ask for the
		// status again; the agent resends it under a new number.
		if now := in.opts.Now(); now.Sub(in.resent[name]) >= askStatusEvery {
			in.resent[name] = now
			in.log.Warn("a pod status report of this node never arrived; asking for it again", "node", name, "applied", seq.PodStatus, "sent", u.statusClaim)
			in.askAgain(name)
		}
	}

	// The lease is written with every fact it orders (so that a stored
	// fact is never newer than its stored sequence number, and a report
	// that changed nothing needs no write), for a new node, when the
	// agent's outbox gained or lost entries or ingest dropped a message,
	// and otherwise at most every SeenResolution to renew it.
	if st := ls.stored; st != nil && node == nil && !podsWritten && st.Seq.Hello == seq.Hello &&
		ls.latest.RenewTime.Sub(st.RenewTime.Time) < in.opts.SeenResolution &&
		st.Outbox.Queued == ls.latest.Outbox.Queued && st.Outbox.Dropped == ls.latest.Outbox.Dropped &&
		maps.Equal(st.IngestDropped, ls.latest.IngestDropped) {
		return nil, nil
	}
	l := ls.latest
	fresh := lease.New(name)
	l.TypeMeta, l.ObjectMeta = fresh.TypeMeta, fresh.ObjectMeta
	if err := tx.Put(&l); err != nil {
		return nil, err
	}
	return &l, nil
}

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

// applyPodReport stores each reported pod's status on the pod the hub
// assigned, if it is still the same pod on the same node. It reports
// whether it wrote any.
func applyPodReport(tx store.Tx, node string, rep *wire.PodStatusReport) (bool, error) {
	wrote := false
	for i := range rep.Pods {
		pr := &rep.Pods[i]
		cur, err := store.GetShared[api.Pod](tx, pr.Namespace, pr.Name)
		if store.IsNotFound(err) {
			continue
		}
		if err != nil {
			return wrote, err
		}
		if cur.UID != pr.UID || cur.Spec.NodeName != node {
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
		before, _ := json.Marshal(cur.Status)
		after, _ := json.Marshal(st)
		if string(before) == string(after) {
			continue
		}
		pod, err := store.Get[api.Pod](tx, pr.Namespace, pr.Name)
		if err != nil {
			return wrote, err
		}
		pod.Status = st
		if err := tx.Put(pod); err != nil {
			return wrote, err
		}
		wrote = true
	}
	return wrote, nil
}
