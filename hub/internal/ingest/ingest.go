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
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

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
	Now            func() time.Time
}

// Ingest receives agent messages.
type Ingest struct {
	opts Options
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	pending map[string]*nodeUpdate
	lastSeq map[string]uint64

	received atomic.Uint64
	dropped  atomic.Uint64
}

// nodeUpdate is everything heard from one node since the last flush.
type nodeUpdate struct {
	seen      time.Time
	hello     *wire.Hello
	observed  uint64
	hasObs    bool
	online    *bool
	podReport *wire.PodStatusReport
}

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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ingest{
		opts: opts, log: opts.Logger.With("component", "ingest"),
		wake:    make(chan struct{}, 1),
		pending: map[string]*nodeUpdate{},
		lastSeq: map[string]uint64{},
	}
}

// Stats returns how many messages arrived and how many were dropped as bad.
func (in *Ingest) Stats() (received, dropped uint64) {
	return in.received.Load(), in.dropped.Load()
}

// Handle decodes one message from an agent topic and queues its effect. It
// is safe for concurrent use and never blocks on the store.
func (in *Ingest) Handle(topic string, payload []byte) {
	in.received.Add(1)
	env, err := wire.Decode(topic, payload)
	if err != nil {
		in.drop(err)
		return
	}
	node := env.Node
	now := in.opts.Now()

	in.mu.Lock()
	defer in.mu.Unlock()
	// Keep only the newest report of a sender. A hello starts a new
	// session and may follow a wiped agent state, so it resets the order.
	// The will (sequence 0) is the broker speaking for the agent.
	if env.Seq != 0 && env.Type != wire.TypeHello && env.Seq <= in.lastSeq[node] {
		in.log.Debug("dropping stale message", "node", node, "topic", topic, "seq", env.Seq, "newest", in.lastSeq[node])
		return
	}
	var u *nodeUpdate
	get := func() *nodeUpdate {
		if u == nil {
			if u = in.pending[node]; u == nil {
				u = &nodeUpdate{}
				in.pending[node] = u
			}
		}
		return u
	}
	switch env.Type {
	case wire.TypeHello:
		var h wire.Hello
		if err := wire.DecodePayload(env, topic, &h); err != nil {
			in.drop(err)
			return
		}
		up := get()
		up.hello = &h
		up.observed, up.hasObs = h.ObservedRevision, true
	case wire.TypeHeartbeat:
		var hb wire.Heartbeat
		if err := wire.DecodePayload(env, topic, &hb); err != nil {
			in.drop(err)
			return
		}
		up := get()
		up.observed, up.hasObs = hb.ObservedRevision, true
	case wire.TypePodStatus:
		var rep wire.PodStatusReport
		if err := wire.DecodePayload(env, topic, &rep); err != nil {
			in.drop(err)
			return
		}
		up := get()
		up.podReport = &rep
		up.observed, up.hasObs = rep.ObservedRevision, true
	case wire.TypeOnline:
		var o wire.Online
		if err := wire.DecodePayload(env, topic, &o); err != nil {
			in.drop(err)
			return
		}
		online := o.Online
		get().online = &online
		if !online {
			// The node is gone; do not count the will as a sign of life.
			in.signal()
			return
		}
	}
	if env.Seq != 0 {
		in.lastSeq[node] = env.Seq
	}
	get().seen = now
	in.signal()
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
	before, _ := json.Marshal(node)

	if u.hello != nil {
		applyHello(node, u.hello)
	}
	if u.hasObs {
		node.Status.ObservedRevision = u.observed
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
	if u.podReport != nil {
		return applyPodReport(tx, name, u.podReport)
	}
	return nil
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
