package ingest

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

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
		start := in.opts.Now()
		defer func() { in.opts.OnFlush(in.opts.Now().Sub(start), len(batch)) }()
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
			mergeUpdates(u, newer)
		} else {
			in.pending[node] = u
		}
	}
	in.signal(false)
}

// mergeUpdates folds older, an update put back after a failed write, into newer,
// what arrived from the node since: of each fact the one with the higher
// sequence number wins, the online flag is newer's if it has one, events
// keep their order and drop counts add up.
func mergeUpdates(older, newer *nodeUpdate) {
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

// apply lands one node's update: mergeNode decides, then apply writes the
// Node, the hub's events about it, its pods' status and its lease, as
// the landing says. It returns the lease it wrote, if it wrote one. The
// Node is written only when something an operator or a controller reads
// changed (labels, facts, readiness, the revision the agent runs);
// heartbeats renew the node's lease instead, at most every
// SeenResolution, so that they wake no controller.
func (in *Ingest) apply(tx store.Tx, name string, u *nodeUpdate) (*lease.Lease, error) {
	ls, err := in.leaseOf(tx, name)
	if err != nil {
		return nil, err
	}
	stored, err := store.GetShared[api.Node](tx, "", name)
	if store.IsNotFound(err) {
		stored, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read node %s: %w", name, err)
	}
	now := in.opts.Now()
	out := mergeNode(name, u, ls.latest, stored, now)
	if out.skip {
		return nil, nil
	}
	ls.latest = out.lease
	in.report(name, u, &out, now)
	if out.node != nil {
		if err := tx.Put(out.node); err != nil {
			return nil, fmt.Errorf("write node %s: %w", name, err)
		}
	}
	for _, r := range out.events {
		if err := events.Put(tx, r, in.opts.EventTTL); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
	}
	podsWritten := false
	if out.report != nil {
		if podsWritten, err = applyPodReport(tx, name, out.report); err != nil {
			return nil, fmt.Errorf("pod status of node %s: %w", name, err)
		}
	}
	if !leaseNeedsWrite(ls.stored, &ls.latest, out.node != nil, podsWritten, in.opts.SeenResolution) {
		return nil, nil
	}
	l := ls.latest
	fresh := lease.New(name)
	l.TypeMeta, l.ObjectMeta = fresh.TypeMeta, fresh.ObjectMeta
	if err := tx.Put(&l); err != nil {
		return nil, fmt.Errorf("write the lease of node %s: %w", name, err)
	}
	return &l, nil
}

// report logs what a landing says went wrong on the agent's side, and
// asks the node for what the hub misses: its hello (back by a heartbeat
// alone), or a pod status report that never arrived (at most every
// askStatusEvery).
func (in *Ingest) report(name string, u *nodeUpdate, out *landing, now time.Time) {
	if out.restartedFrom > 0 {
		in.log.Warn("agent sequence numbers restarted; resetting its ordering", "node", name, "seq", u.helloSeq, "previous", out.restartedFrom)
	}
	if out.badAgentLabels != nil {
		in.log.Warn("the labels the agent asked for last time do not decode; taking all it asks for now as new",
			"node", name, "err", out.badAgentLabels)
	}
	if out.askHello {
		in.askAgain(name)
	}
	if out.statusMissed && now.Sub(in.resent[name]) >= askStatusEvery {
		// The agent's newest report reached the broker but not the hub
		// (a broker that dropped it, say, under a burst): ask for the
		// status again; the agent resends it under a new number.
		in.resent[name] = now
		in.log.Warn("a pod status report of this node never arrived; asking for it again", "node", name,
			"applied", out.lease.Seq.PodStatus, "sent", u.statusClaim)
		in.askAgain(name)
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
		// Compared as stored: what the store holds is this JSON.
		same, err := sameJSON(&cur.Status, &st)
		if err != nil {
			return wrote, fmt.Errorf("pod %s/%s: %w", pr.Namespace, pr.Name, err)
		}
		if same {
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

// sameJSON reports whether a and b encode to the same JSON.
func sameJSON(a, b any) (bool, error) {
	ja, err := json.Marshal(a)
	if err != nil {
		return false, fmt.Errorf("encode status: %w", err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		return false, fmt.Errorf("encode status: %w", err)
	}
	return string(ja) == string(jb), nil
}
