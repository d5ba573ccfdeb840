// Package dispatch turns the pods bound to each node into that node's
// desired snapshot and publishes it, retained, on the node's desired topic.
// A node's revision increases only when its snapshot's content changes, and
// is stored before the snapshot is published, so a node never receives a
// revision lower than one it has seen, across hub restarts included.
package dispatch

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/desired"
	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Publisher sends one MQTT message and waits for the broker to take it.
type Publisher interface {
	Publish(ctx context.Context, topic string, qos byte, retained bool, payload []byte) error
}

// Options configure a Dispatcher.
type Options struct {
	Store     store.Store
	Publisher Publisher
	Logger    *slog.Logger
	// Debounce gathers bursts of pod changes into one pass (default
	// controller.DefaultDebounce).
	Debounce time.Duration
	// Resync is the period of the pass that reads the store again
	// (default controller.DefaultResync).
	Resync time.Duration
	// Parallel bounds concurrent publishes (default 32).
	Parallel int
	// Signer, if set, signs every snapshot (wire.Signer); without it
	// snapshots go out unsigned.
	Signer *wire.Signer
	// HashKey, if set, keys the content hash stored in desired.Record
	// records (HMAC-SHA-256), so that the hash of a snapshot that holds
	// Secrets says nothing about them to a reader of the store.
	HashKey []byte
	// Resend is how long a Ready node may go without acknowledging the
	// snapshot it was sent before it is sent again (default 10 s),
	// doubling for each resend to at most 5 minutes.
	Resend time.Duration
	// Now is the clock (default time.Now): of resends, of the records'
	// published time and of the snapshots' envelopes.
	Now func() time.Time
	// Network is the cluster's address plan, which a node's snapshot
	// carries with its pod subnet (network.go); zero: the hub runs no
	// pod network, and snapshots carry none.
	Network ipam.Config
}

// HashKeyFrom derives Options.HashKey from a secret the hub keeps (its
// signing key's seed), so that it is the same across restarts.
func HashKeyFrom(secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte("flotilla dispatch content hash\x00"))
	h.Write(secret)
	return h.Sum(nil)
}

// Dispatcher keeps every node's published snapshot in step with its pods.
type Dispatcher struct {
	opts Options
	log  *slog.Logger
	loop *controller.Loop

	// nextLagCheck is when a pass next looks for nodes that did not
	// acknowledge their snapshot; only passes use it.
	nextLagCheck time.Time

	mu        sync.Mutex
	republish bool // publish every snapshot again (after a reconnect)
	// nodes holds each node's state; queue, the nodes with work for the
	// next pass (nodeState.dirty or unpublished).
	nodes map[string]*nodeState
	queue map[string]*nodeState
	// pods finds a pod's entry (on its node) by the pod's key.
	pods map[store.Key]*cachedPod
	// secrets and configMaps are every Secret and ConfigMap, as a
	// snapshot carries them to the nodes whose pods use them.
	secrets    map[store.Key]*wire.SnapshotSecret
	configMaps map[store.Key]*wire.SnapshotConfigMap
	// sites are the nodes by site; services and endpoints, every Service
	// and Endpoints object as snapshots carry them; serviceOrder, the
	// Services' keys in order (nil: to be sorted again). See network.go.
	sites        map[string]*siteState
	services     map[store.Key]*cachedService
	endpoints    map[store.Key]*cachedEndpoints
	serviceOrder []store.Key
	// ingress is what the Ingress part of the snapshots is made from
	// (ingress.go).
	ingress ingressState
}

// retryAfter is how long a failed publish waits for the next attempt.
const retryAfter = time.Second

// New returns a Dispatcher; call Run to start it.
func New(opts Options) *Dispatcher {
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	if opts.Resend <= 0 {
		opts.Resend = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	d := &Dispatcher{
		opts:       opts,
		nodes:      map[string]*nodeState{},
		queue:      map[string]*nodeState{},
		pods:       map[store.Key]*cachedPod{},
		secrets:    map[store.Key]*wire.SnapshotSecret{},
		configMaps: map[store.Key]*wire.SnapshotConfigMap{},
		sites:      map[string]*siteState{},
		services:   map[store.Key]*cachedService{},
		endpoints:  map[store.Key]*cachedEndpoints{},
		ingress:    newIngressState(),
	}
	// Dispatch gathers a burst for Debounce, however long its passes
	// take: a node's snapshot waits for nothing else.
	debounce := cmp.Or(opts.Debounce, controller.DefaultDebounce)
	d.loop = controller.New(controller.Options{
		Name: "dispatch", Store: opts.Store, Kinds: []string{api.KindPod, api.KindNode, api.KindSecret, api.KindConfigMap, api.KindService, api.KindEndpoints,
			api.KindIngress, api.KindIngressClass},
		Init:     func(context.Context) error { return d.resync() },
		Event:    d.handle,
		Pass:     d.pass,
		Debounce: debounce, MaxWindow: debounce,
		Resync: opts.Resync, Now: opts.Now, Logger: opts.Logger,
	})
	d.log = d.loop.Logger()
	return d
}

// Republish asks for every node's snapshot to be published again, as after
// a reconnect to a broker that may have lost its retained messages.
func (d *Dispatcher) Republish() {
	d.mu.Lock()
	d.republish = true
	d.mu.Unlock()
	d.loop.Poke()
}

// Run dispatches until ctx ends, on the controller runtime: it reads the
// store once (Init), keeps its cache by the store's events, and passes
// after each burst of them, every Options.Resync (reading the store
// again), when poked and when its last pass asked. Everything it starts
// has ended when it returns.
func (d *Dispatcher) Run(ctx context.Context) error {
	return d.loop.Run(ctx)
}

// pass is one pass: after a resync period, the store read again; every
// Resend/2, the nodes that did not acknowledge their snapshot queued
// again; then the queue flushed. It asks to run again at the next lag
// check, or retryAfter from now if a publish failed.
func (d *Dispatcher) pass(ctx context.Context, why controller.Cause) (time.Time, error) {
	var err error
	if why == controller.Resynced {
		err = d.resync()
	}
	now := d.opts.Now()
	if !now.Before(d.nextLagCheck) {
		d.resendLagging(now)
		d.nextLagCheck = now.Add(d.opts.Resend / 2)
	}
	wake := d.nextLagCheck
	if failed := d.flush(ctx); failed {
		wake = controller.Sooner(wake, now.Add(retryAfter))
	}
	return wake, err
}

// resendLagging queues the snapshot again for every Ready node that has
// not acknowledged its revision within Options.Resend of being sent it
// (doubling per resend): a message lost between broker and agent (a
// broker whose queue for the agent was full, a connection taken over)
// is otherwise never sent again, since snapshots go out on change.
func (d *Dispatcher) resendLagging(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ns := range d.nodes {
		rec := ns.record
		if rec == nil {
			continue
		}
		if rec.Revision <= ns.observed {
			ns.resends = 0
			continue
		}
		if !ns.ready || ns.published != rec.Revision {
			continue
		}
		wait := min(d.opts.Resend<<min(ns.resends, 5), 5*time.Minute)
		if now.Sub(ns.sentAt) < wait {
			continue
		}
		ns.resends++
		d.markUnpublished(ns)
		d.log.Warn("node has not acknowledged its snapshot; sending it again", "node", ns.name, "revision", rec.Revision,
			"observed", ns.observed, "resends", ns.resends)
	}
}

// flush numbers and stores the snapshots of the queued nodes whose
// content changed, and publishes them with those queued to be sent again
// (every node's, after Republish). It reports whether a publish failed.
func (d *Dispatcher) flush(ctx context.Context) (failed bool) {
	d.mu.Lock()
	republish := d.republish
	d.republish = false
	d.refreshIngressLocked()
	queued := d.queue
	d.queue = map[string]*nodeState{}
	snaps := make(map[*nodeState]built, len(queued))
	for _, ns := range queued {
		if ns.dirty {
			ns.dirty = false
			snaps[ns] = d.buildLocked(ns)
		}
	}
	d.mu.Unlock()

	changed, err := d.commit(snaps)
	if err != nil {
		d.log.Error("store snapshot revisions", "err", err)
		d.mu.Lock()
		for _, ns := range queued {
			if _, ok := snaps[ns]; ok {
				ns.dirty = true
			}
			d.queue[ns.name] = ns
		}
		d.mu.Unlock()
		return false
	}

	d.mu.Lock()
	toPublish := changed
	again := func(ns *nodeState) {
		if _, ok := toPublish[ns]; ok {
			return
		}
		// Publish the recorded revision only with the content it was
		// recorded for; if the pods changed since, the next pass numbers it.
		b, ok := snaps[ns]
		if !ok {
			b = d.buildLocked(ns)
		}
		if rec := ns.record; rec == nil || rec.Hash != b.hash {
			d.markDirty(ns)
			d.loop.Poke()
			return
		}
		toPublish[ns] = b.snap
	}
	for _, ns := range queued {
		if ns.unpublished {
			ns.unpublished = false
			again(ns)
		}
	}
	if republish {
		for _, ns := range d.nodes {
			if ns.record != nil {
				again(ns)
			}
		}
	}
	d.mu.Unlock()
	return d.publish(ctx, toPublish) > 0
}

// commit gives every snapshot whose content changed the next revision and
// stores the records, in batches. It returns the changed snapshots.
func (d *Dispatcher) commit(snaps map[*nodeState]built) (map[*nodeState]*wire.Snapshot, error) {
	changed := map[*nodeState]*wire.Snapshot{}
	var batch []*desired.Record
	published := api.NewTime(d.opts.Now().UTC().Truncate(time.Second))
	d.mu.Lock()
	for ns, b := range snaps {
		snap, hash := b.snap, b.hash
		rec, obs := ns.record, ns.observed
		if rec != nil && rec.Hash == hash && rec.Revision >= obs {
			continue
		}
		if rec == nil && len(snap.Pods) == 0 && !b.services && len(snap.Ingresses) == 0 && obs == 0 {
			continue // a node that never ran anything, and has no Services to serve, needs no empty snapshot
		}
		revision := obs + 1
		if rec != nil && rec.Revision+1 > revision {
			revision = rec.Revision + 1
		}
		snap.Revision = revision
		batch = append(batch, desired.New(ns.name, revision, hash, published))
		changed[ns] = snap
	}
	d.mu.Unlock()

	const batchSize = 500
	for start := 0; start < len(batch); start += batchSize {
		part := batch[start:min(start+batchSize, len(batch))]
		err := d.opts.Store.Update(func(tx store.Tx) error {
			for _, rec := range part {
				if err := tx.Put(rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		for _, rec := range part {
			d.nodes[rec.Name].record = rec
		}
		d.mu.Unlock()
	}
	return changed, nil
}

// publish sends snapshots, at most Options.Parallel at a time, and
// returns once every send has ended, with how many failed. A failed node
// is queued to be sent again.
func (d *Dispatcher) publish(ctx context.Context, snaps map[*nodeState]*wire.Snapshot) (failed int) {
	var g errgroup.Group
	g.SetLimit(d.opts.Parallel)
	for ns, snap := range snaps {
		if snap.Revision == 0 {
			continue
		}
		g.Go(func() error {
			d.mu.Lock()
			if d.getsServices(ns) {
				// Built now, not kept: the cache does not change while a
				// pass publishes (events and passes take turns on the loop).
				snap.Services = d.servicesFor(ns)
			}
			d.mu.Unlock()
			err := d.publishOne(ctx, snap)
			d.mu.Lock()
			defer d.mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("publish snapshot; will retry", "node", ns.name, "revision", snap.Revision, "err", err)
				}
				failed++
				d.markUnpublished(ns)
				return nil
			}
			if ns.published != snap.Revision {
				ns.resends = 0
			}
			ns.published = snap.Revision
			ns.sentAt = d.opts.Now()
			return nil
		})
	}
	_ = g.Wait() // every Go returns nil: failures are counted and queued
	return failed
}

func (d *Dispatcher) publishOne(ctx context.Context, snap *wire.Snapshot) error {
	var b []byte
	var err error
	if d.opts.Signer != nil {
		b, err = d.opts.Signer.EncodeSnapshot(snap, snap.Revision, d.opts.Now())
	} else {
		b, err = wire.Encode(wire.TypeSnapshot, snap.Node, snap.Revision, d.opts.Now(), snap)
	}
	if err != nil {
		return fmt.Errorf("encode the snapshot for node %s: %w", snap.Node, err)
	}
	if len(b) > wire.MaxPayload {
		return fmt.Errorf("snapshot for node %s is %d bytes, over the %d limit", snap.Node, len(b), wire.MaxPayload)
	}
	return d.opts.Publisher.Publish(ctx, wire.NodeTopic(snap.Node, wire.TopicDesired), 1, true, b)
}

// PublishedRevision returns the revision last published to node by this
// process (0 if none).
func (d *Dispatcher) PublishedRevision(node string) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ns := d.nodes[node]; ns != nil {
		return ns.published
	}
	return 0
}
