package ingest

import (
	"errors"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

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
	// Decode before taking the lock.
	m, err := decodeMessage(topic, payload)
	if err != nil {
		in.drop(topic, err)
		return
	}
	node := m.env.Node
	now := in.opts.Now()
	if m.env.Type == wire.TypeMetrics && in.opts.Metrics != nil {
		in.opts.Metrics.Add(node, m.batch)
	}

	in.mu.Lock()
	defer in.mu.Unlock()
	if m.env.Type == wire.TypeEvent {
		in.roomForEvent(node)
	}
	if m.env.Type == wire.TypeHello {
		in.greeted[node] = true
		delete(in.asked, node)
	} else if m.env.Type != wire.TypeOnline || m.online.Online {
		in.wantHello(node, now)
	}
	in.update(node).add(m, now)
	// What controllers wait for is written after StatusGather; the rest
	// at the next FlushInterval.
	switch m.env.Type {
	case wire.TypePodStatus, wire.TypeHello, wire.TypeOnline:
		in.signal(true)
	default:
		in.signal(false)
	}
}

// message is one decoded agent message: its envelope, and its payload in
// the field of its type.
type message struct {
	env    wire.Envelope
	hello  wire.Hello
	hb     wire.Heartbeat
	report wire.PodStatusReport
	online wire.Online
	event  wire.Event
	batch  wire.MetricsBatch
}

// decodeMessage decodes envelope and payload in one pass.
func decodeMessage(topic string, payload []byte) (*message, error) {
	m := &message{}
	env, err := wire.DecodeMessage(topic, payload, func(typ string) any {
		switch typ {
		case wire.TypeHello:
			return &m.hello
		case wire.TypeHeartbeat:
			return &m.hb
		case wire.TypePodStatus:
			return &m.report
		case wire.TypeOnline:
			return &m.online
		case wire.TypeEvent:
			return &m.event
		case wire.TypeMetrics:
			return &m.batch
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.env = env
	return m, nil
}

// add folds m, received at now, into u: of each fact the one with the
// highest sequence number is kept, events are all kept, and anything but
// the broker's word that the agent went away is a sign of life.
func (u *nodeUpdate) add(m *message, now time.Time) {
	seq := m.env.Seq
	observe := func(rev uint64) {
		if seq > u.observedSeq {
			u.observed, u.observedSeq = rev, seq
		}
	}
	switch m.env.Type {
	case wire.TypeHello:
		if seq >= u.helloSeq {
			u.hello, u.helloSeq = &m.hello, seq
		}
		observe(m.hello.ObservedRevision)
		if seq > u.outboxSeq {
			u.outbox, u.outboxSeq = &m.hello.Outbox, seq
		}
	case wire.TypeHeartbeat, wire.TypeMetrics:
		beat := &m.hb
		if m.env.Type == wire.TypeMetrics {
			beat = m.batch.Heartbeat // a sample carries the heartbeat
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
			u.podReport, u.reportSeq = &m.report, seq
		}
		observe(m.report.ObservedRevision)
	case wire.TypeEvent:
		u.events = append(u.events, seqEvent{seq: seq, ev: m.event})
	case wire.TypeOnline:
		flag := m.online.Online
		u.online = &flag
		if !flag {
			return // the broker speaking for a vanished agent is no sign of life
		}
	}
	u.seen = now
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
	if now := in.opts.Now(); now.Sub(in.limitedLogged[node]) > time.Minute {
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
