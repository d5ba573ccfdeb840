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
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
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
	// Now is the clock (default time.Now).
	Now func() time.Time
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
	// AskHello, if set, asks a node to send its hello again, giving up
	// when ctx ends. Ingest calls it, from a goroutine of its Run, for a
	// node it hears from without having
	// had its hello since the hub started: an external broker keeps
	// nothing for a hub that is away, so the hello of an agent that
	// connected meanwhile (its labels, facts and capacity) is lost. It
	// is also called for a node back to Ready by a heartbeat alone, whose
	// pods the hub may have marked lost: the agent answers with its
	// pods' status too. When it fails, the node's next message asks again.
	AskHello func(ctx context.Context, node string) error
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

// Run flushes queued updates until ctx ends, then flushes what is left.
// Everything it starts has ended when it returns.
func (in *Ingest) Run(ctx context.Context) error {
	defer in.stopOnce.Do(func() { close(in.stop) })
	if err := in.dropCursors(); err != nil {
		return err
	}
	if in.opts.AskHello != nil {
		askCtx, stopAsking := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { in.askHellos(askCtx) })
		defer wg.Wait()
		defer stopAsking()
	}
	in.flushLoop(ctx)
	return nil
}

// askHellos sends the hello requests queued on askCh until ctx ends.
func (in *Ingest) askHellos(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case node := <-in.askCh:
			in.log.Info("asking a node for its hello, missed while the hub was away", "node", node)
			if err := in.opts.AskHello(ctx, node); err != nil {
				if ctx.Err() != nil {
					return
				}
				in.log.Warn("ask a node for its hello; asking again at its next message", "node", node, "err", err)
				in.mu.Lock()
				delete(in.asked, node)
				in.mu.Unlock()
			}
		}
	}
}

// flushLoop flushes: StatusGather after an urgent update, at the next
// FlushInterval tick after another, and once more when ctx ends.
func (in *Ingest) flushLoop(ctx context.Context) {
	t := time.NewTicker(in.opts.FlushInterval)
	defer t.Stop()
	// pending: something waits for a flush; armed: the gather timer runs
	// for an urgent one.
	pending, armed := false, false
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	defer gather.Stop()
	for {
		select {
		case <-ctx.Done():
			in.Flush()
			return
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
