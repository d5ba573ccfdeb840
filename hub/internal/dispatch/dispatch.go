// Package dispatch turns the pods bound to each node into that node's
// desired snapshot and publishes it, retained, on the node's desired topic.
// A node's revision increases only when its snapshot's content changes, and
// is stored before the snapshot is published, so a node never receives a
// revision lower than one it has seen, across hub restarts included.
package dispatch

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/desired"
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
	// Debounce gathers bursts of pod changes into one pass (default 20 ms).
	Debounce time.Duration
	// Resync is the period of the full pass (default 30 s).
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
	Now    func() time.Time
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
	wake chan struct{}

	mu          sync.Mutex
	republish   bool                          // publish every snapshot again (after a reconnect)
	pods        map[store.Key]*cachedPod      // pod → its snapshot entry
	nodes       map[string]map[store.Key]bool // node → its pods
	dirty       map[string]bool               // nodes whose snapshot may have changed
	unpublished map[string]bool               // nodes whose last publish failed
	records     map[string]*desired.Record    // node → last dispatched record
	observed    map[string]uint64             // node → revision the agent reports
	published   map[string]uint64             // node → revision published in this process
	sentAt      map[string]time.Time          // node → when it was last sent its snapshot
	resends     map[string]int                // node → resends of its current revision
	ready       map[string]bool               // node → Ready and online
	secrets     map[store.Key]*wire.SnapshotSecret
	configMaps  map[store.Key]*wire.SnapshotConfigMap
}

type cachedPod struct {
	node string
	pod  wire.SnapshotPod
	// src is the store's shared object the entry was made from: the same
	// object is the same version, so a resync skips it.
	src *api.Pod
	// raw is pod's JSON, the pod's part of its node's content hash.
	raw []byte
	// secrets and configMaps are the names (in the pod's namespace) its
	// spec refers to.
	secrets, configMaps []string
}

// New returns a Dispatcher; call Run to start it.
func New(opts Options) *Dispatcher {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 20 * time.Millisecond
	}
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	if opts.Resend <= 0 {
		opts.Resend = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Dispatcher{
		opts: opts, log: opts.Logger.With("component", "dispatch"),
		wake:        make(chan struct{}, 1),
		pods:        map[store.Key]*cachedPod{},
		nodes:       map[string]map[store.Key]bool{},
		dirty:       map[string]bool{},
		unpublished: map[string]bool{},
		records:     map[string]*desired.Record{},
		observed:    map[string]uint64{},
		published:   map[string]uint64{},
		sentAt:      map[string]time.Time{},
		resends:     map[string]int{},
		ready:       map[string]bool{},
		secrets:     map[store.Key]*wire.SnapshotSecret{},
		configMaps:  map[store.Key]*wire.SnapshotConfigMap{},
	}
}

// Republish asks for every node's snapshot to be published again, as after
// a reconnect to a broker that may have lost its retained messages.
func (d *Dispatcher) Republish() {
	d.mu.Lock()
	d.republish = true
	d.mu.Unlock()
	d.poke()
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	events := d.opts.Store.Watch(ctx, api.KindPod, api.KindNode, api.KindSecret, api.KindConfigMap)
	if err := d.resync(); err != nil {
		return err
	}
	resync := time.NewTicker(d.opts.Resync)
	defer resync.Stop()
	lag := time.NewTicker(d.opts.Resend / 2)
	defer lag.Stop()
	for {
		d.flush(ctx)
		select {
		case <-lag.C:
			d.resendLagging()
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			d.handle(ev)
			// Gather the rest of a burst before the next pass.
			timer := time.NewTimer(d.opts.Debounce)
		gather:
			for {
				select {
				case ev, ok := <-events:
					if !ok {
						break gather
					}
					d.handle(ev)
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		case <-d.wake:
		case <-resync.C:
			if err := d.resync(); err != nil {
				d.log.Error("resync", "err", err)
			}
		}
	}
}

// handle updates the cache for one store event.
func (d *Dispatcher) handle(ev store.Event) {
	if ev.Type == store.Overflow {
		if err := d.resync(); err != nil {
			d.log.Error("resync after overflow", "err", err)
		}
		return
	}
	switch ev.Key.Kind {
	case api.KindPod:
		d.handlePod(ev)
	case api.KindNode:
		d.handleNode(ev)
	case api.KindSecret, api.KindConfigMap:
		d.handleConfig(ev)
	}
}

// handleConfig updates a cached Secret or ConfigMap and marks the nodes
// whose pods use it.
func (d *Dispatcher) handleConfig(ev store.Event) {
	var sec *api.Secret
	var cm *api.ConfigMap
	if ev.Type == store.Put {
		err := d.opts.Store.View(func(tx store.Tx) error {
			var err error
			if ev.Key.Kind == api.KindSecret {
				sec, err = store.Get[api.Secret](tx, ev.Key.Namespace, ev.Key.Name)
			} else {
				cm, err = store.Get[api.ConfigMap](tx, ev.Key.Namespace, ev.Key.Name)
			}
			return err
		})
		if err != nil && !store.IsNotFound(err) {
			d.log.Error("read config object", "key", ev.Key, "err", err)
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setConfigLocked(ev.Key, sec, cm)
}

// setConfigLocked records a Secret or ConfigMap (both nil: gone) and marks
// the nodes of the pods that refer to it. The caller holds d.mu.
func (d *Dispatcher) setConfigLocked(key store.Key, sec *api.Secret, cm *api.ConfigMap) {
	isSecret := key.Kind == api.KindSecret
	switch {
	case sec != nil:
		d.secrets[key] = &wire.SnapshotSecret{Namespace: sec.Namespace, Name: sec.Name, Type: sec.Type, Data: sec.Data}
	case cm != nil:
		d.configMaps[key] = &wire.SnapshotConfigMap{Namespace: cm.Namespace, Name: cm.Name, Data: cm.Data, BinaryData: cm.BinaryData}
	case isSecret:
		delete(d.secrets, key)
	default:
		delete(d.configMaps, key)
	}
	for _, p := range d.pods {
		if p.pod.Namespace != key.Namespace {
			continue
		}
		names := p.configMaps
		if isSecret {
			names = p.secrets
		}
		if slices.Contains(names, key.Name) {
			d.dirty[p.node] = true
		}
	}
}

func (d *Dispatcher) handlePod(ev store.Event) {
	var pod *api.Pod
	if ev.Type == store.Put {
		err := d.opts.Store.View(func(tx store.Tx) error {
			var err error
			// Read only: what it keeps of the pod are its labels and spec,
			// which the store's shared object never changes.
			pod, err = store.GetShared[api.Pod](tx, ev.Key.Namespace, ev.Key.Name)
			return err
		})
		if err != nil && !store.IsNotFound(err) {
			d.log.Error("read pod", "pod", ev.Key, "err", err)
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setPod(ev.Key, pod)
}

// setPod records pod (nil: gone) in the cache and marks the nodes whose
// snapshot changes. The caller holds d.mu.
func (d *Dispatcher) setPod(key store.Key, pod *api.Pod) {
	old := d.pods[key]
	if pod == nil || pod.Spec.NodeName == "" {
		if old != nil {
			delete(d.pods, key)
			delete(d.nodes[old.node], key)
			d.dirty[old.node] = true
		}
		return
	}
	if old != nil && old.src == pod {
		return // the same version (a resync)
	}
	entry := &cachedPod{node: pod.Spec.NodeName, pod: snapshotPod(pod), src: pod}
	entry.secrets, entry.configMaps = wire.PodConfigRefs(&pod.Spec)
	if old != nil && old.node == entry.node && old.pod.UID == entry.pod.UID &&
		old.pod.SpecHash == entry.pod.SpecHash && equalLabels(old.pod.Labels, entry.pod.Labels) &&
		slices.Equal(old.pod.PrePull, entry.pod.PrePull) && old.pod.ProgressDeadlineSeconds == entry.pod.ProgressDeadlineSeconds {
		old.src = pod
		return // a status update: the snapshot does not change
	}
	entry.raw = mustJSON(&entry.pod)
	if old != nil && old.node != entry.node {
		delete(d.nodes[old.node], key)
		d.dirty[old.node] = true
	}
	d.pods[key] = entry
	if d.nodes[entry.node] == nil {
		d.nodes[entry.node] = map[store.Key]bool{}
	}
	d.nodes[entry.node][key] = true
	d.dirty[entry.node] = true
}

func (d *Dispatcher) handleNode(ev store.Event) {
	if ev.Type != store.Put {
		return
	}
	var node *api.Node
	err := d.opts.Store.View(func(tx store.Tx) error {
		var err error
		node, err = store.GetShared[api.Node](tx, "", ev.Key.Name)
		return err
	})
	if err != nil {
		if !store.IsNotFound(err) {
			d.log.Error("read node", "node", ev.Key.Name, "err", err)
		}
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.noteObserved(node)
	d.ready[node.Name] = node.IsReady() && node.Status.Online
}

// resendLagging queues the snapshot again for every Ready node that has
// not acknowledged its revision within Options.Resend of being sent it
// (doubling per resend): a message lost between broker and agent (a
// broker whose queue for the agent was full, a connection taken over)
// is otherwise never sent again, since snapshots go out on change.
func (d *Dispatcher) resendLagging() {
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for node, rec := range d.records {
		if rec.Revision <= d.observed[node] || !d.ready[node] || d.published[node] != rec.Revision {
			if rec.Revision <= d.observed[node] {
				delete(d.resends, node)
			}
			continue
		}
		wait := d.opts.Resend << min(d.resends[node], 5)
		if wait > 5*time.Minute {
			wait = 5 * time.Minute
		}
		if now.Sub(d.sentAt[node]) < wait {
			continue
		}
		d.resends[node]++
		d.unpublished[node] = true
		d.log.Warn("node has not acknowledged its snapshot; sending it again", "node", node, "revision", rec.Revision,
			"observed", d.observed[node], "resends", d.resends[node])
	}
}

// noteObserved remembers the revision a node's agent runs. An agent that
// holds a revision the hub does not know (the hub's data was lost) gets a
// fresh snapshot numbered above it. The caller holds d.mu.
func (d *Dispatcher) noteObserved(node *api.Node) {
	obs := node.Status.ObservedRevision
	d.observed[node.Name] = obs
	if rec := d.records[node.Name]; obs > 0 && (rec == nil || obs > rec.Revision) {
		d.dirty[node.Name] = true
	}
}

// resync rebuilds the cache from the store.
func (d *Dispatcher) resync() error {
	var pods []*api.Pod
	var nodes []*api.Node
	var recs []*desired.Record
	var secs []*api.Secret
	var cms []*api.ConfigMap
	err := d.opts.Store.View(func(tx store.Tx) error {
		var err error
		if pods, err = store.ListShared[api.Pod](tx, ""); err != nil {
			return err
		}
		if secs, err = store.List[api.Secret](tx, ""); err != nil {
			return err
		}
		if cms, err = store.List[api.ConfigMap](tx, ""); err != nil {
			return err
		}
		if nodes, err = store.ListShared[api.Node](tx, ""); err != nil {
			return err
		}
		recs, err = store.ListShared[desired.Record](tx, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("dispatch resync: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range recs {
		d.records[r.Name] = r
	}
	d.secrets = map[store.Key]*wire.SnapshotSecret{}
	for _, sec := range secs {
		d.setConfigLocked(store.KeyOf(sec), sec, nil)
	}
	d.configMaps = map[store.Key]*wire.SnapshotConfigMap{}
	for _, cm := range cms {
		d.setConfigLocked(store.KeyOf(cm), nil, cm)
	}
	seen := make(map[store.Key]bool, len(pods))
	for _, p := range pods {
		k := store.KeyOf(p)
		seen[k] = true
		d.setPod(k, p)
	}
	for k := range d.pods {
		if !seen[k] {
			d.setPod(k, nil)
		}
	}
	for _, n := range nodes {
		d.noteObserved(n)
		d.ready[n.Name] = n.IsReady() && n.Status.Online
	}
	// Compare every known node's content with its record; flush skips the
	// ones that did not change.
	for node := range d.nodes {
		d.dirty[node] = true
	}
	for node := range d.records {
		d.dirty[node] = true
	}
	return nil
}

// flush writes and publishes the snapshots of dirty nodes.
func (d *Dispatcher) flush(ctx context.Context) {
	d.mu.Lock()
	republish := d.republish
	d.republish = false
	var todo []string
	for node := range d.dirty {
		todo = append(todo, node)
	}
	d.dirty = map[string]bool{}
	snaps := make(map[string]built, len(todo))
	for _, node := range todo {
		snaps[node] = d.buildLocked(node)
	}
	d.mu.Unlock()

	changed, err := d.commit(snaps)
	if err != nil {
		d.log.Error("store snapshot revisions", "err", err)
		d.mu.Lock()
		for _, node := range todo {
			d.dirty[node] = true
		}
		d.mu.Unlock()
		return
	}

	d.mu.Lock()
	toPublish := map[string]*wire.Snapshot{}
	for node, snap := range changed {
		toPublish[node] = snap
	}
	again := func(node string) {
		if _, ok := toPublish[node]; ok {
			return
		}
		// Publish the recorded revision only with the content it was
		// recorded for; if the pods changed since, the next pass numbers it.
		b := d.buildLocked(node)
		if rec := d.records[node]; rec == nil || rec.Hash != b.hash {
			d.dirty[node] = true
			d.poke()
			return
		}
		toPublish[node] = b.snap
	}
	for node := range d.unpublished {
		again(node)
	}
	if republish {
		for node := range d.records {
			again(node)
		}
	}
	d.unpublished = map[string]bool{}
	d.mu.Unlock()
	d.publish(ctx, toPublish)
}

// built is a node's snapshot and the hash of its content.
type built struct {
	snap *wire.Snapshot
	hash string
}

// buildLocked assembles node's snapshot from the cache, numbered with its
// recorded revision, and hashes its content. The caller holds d.mu.
func (d *Dispatcher) buildLocked(node string) built {
	snap := &wire.Snapshot{Node: node, Pods: []wire.SnapshotPod{}}
	secrets, configMaps := map[store.Key]bool{}, map[store.Key]bool{}
	pods := make([]*cachedPod, 0, len(d.nodes[node]))
	for key := range d.nodes[node] {
		p := d.pods[key]
		pods = append(pods, p)
		for _, name := range p.secrets {
			k := store.Key{Kind: api.KindSecret, Namespace: p.pod.Namespace, Name: name}
			if s := d.secrets[k]; s != nil && !secrets[k] {
				secrets[k] = true
				snap.Secrets = append(snap.Secrets, *s)
			}
		}
		for _, name := range p.configMaps {
			k := store.Key{Kind: api.KindConfigMap, Namespace: p.pod.Namespace, Name: name}
			if c := d.configMaps[k]; c != nil && !configMaps[k] {
				configMaps[k] = true
				snap.ConfigMaps = append(snap.ConfigMaps, *c)
			}
		}
	}
	// Only what the node's pods use, in a stable order.
	sort.Slice(snap.Secrets, func(i, j int) bool {
		a, b := &snap.Secrets[i], &snap.Secrets[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	sort.Slice(snap.ConfigMaps, func(i, j int) bool {
		a, b := &snap.ConfigMaps[i], &snap.ConfigMaps[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	sort.Slice(pods, func(i, j int) bool {
		a, b := &pods[i].pod, &pods[j].pod
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	for _, p := range pods {
		snap.Pods = append(snap.Pods, p.pod)
	}
	if rec := d.records[node]; rec != nil {
		snap.Revision = rec.Revision
	}
	return built{snap: snap, hash: d.contentHash(pods, snap)}
}

// commit gives every snapshot whose content changed the next revision and
// stores the records, in batches. It returns the changed snapshots.
func (d *Dispatcher) commit(snaps map[string]built) (map[string]*wire.Snapshot, error) {
	changed := map[string]*wire.Snapshot{}
	var batch []*desired.Record
	d.mu.Lock()
	for node, b := range snaps {
		snap, hash := b.snap, b.hash
		rec := d.records[node]
		obs := d.observed[node]
		if rec != nil && rec.Hash == hash && rec.Revision >= obs {
			continue
		}
		if rec == nil && len(snap.Pods) == 0 && obs == 0 {
			continue // a node that never ran anything needs no empty snapshot
		}
		revision := obs + 1
		if rec != nil && rec.Revision+1 > revision {
			revision = rec.Revision + 1
		}
		next := desired.New(node, revision, hash, api.Now())
		snap.Revision = next.Revision
		batch = append(batch, next)
		changed[node] = snap
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
			d.records[rec.Name] = rec
		}
		d.mu.Unlock()
	}
	return changed, nil
}

// publish sends snapshots with bounded parallelism. A failed publish is
// retried on the next pass.
func (d *Dispatcher) publish(ctx context.Context, snaps map[string]*wire.Snapshot) {
	if len(snaps) == 0 {
		return
	}
	sem := make(chan struct{}, d.opts.Parallel)
	var wg sync.WaitGroup
	for node, snap := range snaps {
		if snap.Revision == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := d.publishOne(ctx, snap)
			d.mu.Lock()
			defer d.mu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("publish snapshot; will retry", "node", node, "revision", snap.Revision, "err", err)
				}
				d.unpublished[node] = true
				return
			}
			if d.published[node] != snap.Revision {
				delete(d.resends, node)
			}
			d.published[node] = snap.Revision
			d.sentAt[node] = d.opts.Now()
		}()
	}
	wg.Wait()
	d.mu.Lock()
	retry := len(d.unpublished) > 0
	d.mu.Unlock()
	if retry && ctx.Err() == nil {
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
				d.poke()
			}
		}()
	}
}

func (d *Dispatcher) publishOne(ctx context.Context, snap *wire.Snapshot) error {
	var b []byte
	var err error
	if d.opts.Signer != nil {
		b, err = d.opts.Signer.EncodeSnapshot(snap, snap.Revision, time.Now())
	} else {
		b, err = wire.Encode(wire.TypeSnapshot, snap.Node, snap.Revision, time.Now(), snap)
	}
	if err != nil {
		return err
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
	return d.published[node]
}

// snapshotPod is a pod as its node receives it. The controllers' hints
// on the pod (api.AnnotationPrePull, api.AnnotationProgressDeadline)
// become instructions for the agent: images to stage ahead of a rollout,
// and the deadline after which the agent may revert the pod to its last
// good spec on its own.
func snapshotPod(p *api.Pod) wire.SnapshotPod {
	sp := wire.SnapshotPod{
		UID: p.UID, Name: p.Name, Namespace: p.Namespace,
		Labels: p.Labels, SpecHash: api.HashPodSpec(&p.Spec), Spec: p.Spec,
		PrePull: api.PrePullImages(p),
	}
	if d, ok := api.ProgressDeadline(p); ok {
		sp.ProgressDeadlineSeconds = int32(d / time.Second)
	}
	return sp
}

// contentHash identifies a snapshot's content, ignoring its revision:
// its pods, Secrets and ConfigMaps, keyed with Options.HashKey if set. It
// hashes the JSON of
//
//	struct{ Pods; Secrets, ConfigMaps `json:",omitempty"` }
//
// written from each pod's JSON as the cache keeps it, so hashing a node
// costs no marshalling of its pods. pods is snap.Pods' cache entries, in
// order.
func (d *Dispatcher) contentHash(pods []*cachedPod, s *wire.Snapshot) string {
	var h hash.Hash
	if len(d.opts.HashKey) > 0 {
		h = hmac.New(sha256.New, d.opts.HashKey)
	} else {
		h = sha256.New()
	}
	h.Write([]byte(`{"Pods":[`))
	for i, p := range pods {
		if i > 0 {
			h.Write([]byte{','})
		}
		h.Write(p.raw)
	}
	h.Write([]byte{']'})
	if len(s.Secrets) > 0 {
		h.Write([]byte(`,"Secrets":`))
		h.Write(mustJSON(s.Secrets))
	}
	if len(s.ConfigMaps) > 0 {
		h.Write([]byte(`,"ConfigMaps":`))
		h.Write(mustJSON(s.ConfigMaps))
	}
	h.Write([]byte{'}'})
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("dispatch: snapshot does not encode: " + err.Error()) // plain data always encodes
	}
	return b
}

func equalLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
