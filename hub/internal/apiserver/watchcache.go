package apiserver

// The watch cache: one subscription to the store's watch for every API
// kind, the recent changes kept in order, and the watchers of the HTTP
// API served from it. A watch may start at a past resourceVersion as
// long as the cache still holds every change after it; an older one is
// answered 410 Gone (Expired), as Kubernetes answers it, and the client
// lists again.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// DefaultWatchCacheSize is how many changes the watch cache keeps: a
// watch may resume from any version those changes cover.
const DefaultWatchCacheSize = 8192

// watchBuffer is how many changes one watcher may fall behind before it
// is ended (it watches again from the last version it got).
const watchBuffer = 1024

// change is one committed change to an API object, as the cache keeps
// it. Its fields never change once it is in the cache; the decoded
// objects are made on first use and shared by every watcher.
type change struct {
	typ     store.EventType
	key     store.Key
	version uint64
	kind    api.KindInfo
	// value is the object as committed (nil for a delete); old is what
	// it was before, when known (always for a delete).
	value, old []byte

	decodeOnce sync.Once
	obj        api.Object // decoded value, or old for a delete
	prev       api.Object // decoded old of a put, nil when unknown
	decodeErr  error
}

// objects returns the change's object (for a delete, the deleted one)
// and, for a put, the object before it when known. Both are shared:
// never modify them.
func (c *change) objects() (obj, prev api.Object, err error) {
	c.decodeOnce.Do(func() {
		decode := func(b []byte) (api.Object, error) {
			o := c.kind.NewObject()
			if err := json.Unmarshal(b, o); err != nil {
				return nil, fmt.Errorf("decode %s at version %d: %w", c.key, c.version, err)
			}
			return o, nil
		}
		switch {
		case c.typ == store.Deleted:
			c.obj, c.decodeErr = decode(c.old)
		default:
			if c.obj, c.decodeErr = decode(c.value); c.decodeErr == nil && c.old != nil {
				c.prev, c.decodeErr = decode(c.old)
			}
		}
	})
	return c.obj, c.prev, c.decodeErr
}

// watchItem is what a watcher's channel carries: a change, or a bookmark
// at a version (change nil).
type watchItem struct {
	change   *change
	bookmark uint64
}

// subscriber is one watch: the changes after since of one kind (in one
// namespace, or all), and its channel.
type subscriber struct {
	kind      string
	namespace string
	since     uint64
	ch        chan watchItem
	// ended says why the cache closed ch (nil: the watch's own end).
	ended error
}

// errWatchBehind ends a watcher that fell behind: it watches again from
// the last version it got.
var errWatchBehind = fmt.Errorf("the watcher fell more than %d changes behind", watchBuffer)

// watchCache keeps the recent changes and fans them out.
type watchCache struct {
	st       store.Store
	log      *slog.Logger
	capacity int
	kinds    map[string]api.KindInfo

	ready chan struct{} // closed once Run watches the store

	mu sync.Mutex
	// ring holds the newest changes, oldest first from head; every
	// change after since is in it.
	ring  []*change
	head  int
	count int
	since uint64
	// last is the version of the newest change seen (since, when none).
	last   uint64
	subs   map[*subscriber]struct{}
	closed bool
}

func newWatchCache(st store.Store, log *slog.Logger, capacity int) *watchCache {
	c := &watchCache{st: st, log: log, capacity: capacity, kinds: map[string]api.KindInfo{},
		ready: make(chan struct{}), subs: map[*subscriber]struct{}{}}
	for _, k := range api.Kinds() {
		c.kinds[k.Kind] = k
	}
	return c
}

// Run watches the store until ctx ends, then ends every watcher.
func (c *watchCache) Run(ctx context.Context) error {
	kinds := make([]string, 0, len(c.kinds))
	for k := range c.kinds {
		kinds = append(kinds, k)
	}
	events := c.st.Watch(ctx, kinds...)
	c.reset(c.st.Version(), nil)
	close(c.ready)
	defer c.close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil // the store closed
			}
			if ev.Type == store.Overflow {
				// Changes were lost: the cache starts over at the current
				// version, and every watcher watches again (from a version
				// now too old: it lists again).
				v := c.st.Version()
				c.log.Warn("watch cache: the store's watch overflowed; watchers start over", "version", v)
				c.reset(v, fmt.Errorf("the hub's watch cache fell behind the store"))
				continue
			}
			c.add(ev)
		}
	}
}

// reset empties the cache at version v, ending every watcher with why.
func (c *watchCache) reset(v uint64, why error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ring = make([]*change, c.capacity)
	c.head, c.count, c.since, c.last = 0, 0, v, v
	for sub := range c.subs {
		c.endLocked(sub, why)
	}
}

// close ends every watcher; later watches are refused.
func (c *watchCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for sub := range c.subs {
		c.endLocked(sub, errHubStopping)
	}
}

var errHubStopping = fmt.Errorf("the hub is stopping")

func (c *watchCache) endLocked(sub *subscriber, why error) {
	delete(c.subs, sub)
	sub.ended = why
	close(sub.ch)
}

// add keeps one store event and hands it to the watchers that want it.
func (c *watchCache) add(ev store.Event) {
	k, ok := c.kinds[ev.Key.Kind]
	if !ok {
		return
	}
	ch := &change{typ: ev.Type, key: ev.Key, version: ev.Version, kind: k, value: ev.Value, old: ev.Old}
	if k.Kind == api.KindSecret {
		// Secrets are not kept in the clear: a watcher reads the Secret
		// from the store when it sends the change (watch.go).
		ch.value, ch.old = nil, secretSkeleton(ev.Old)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Version <= c.since {
		return // covered by the version the cache started at
	}
	if c.count == c.capacity {
		// The oldest change goes: the cache now covers what follows it.
		c.since = c.ring[c.head].version
		c.ring[c.head] = nil
		c.head = (c.head + 1) % c.capacity
		c.count--
	}
	c.ring[(c.head+c.count)%c.capacity] = ch
	c.count++
	c.last = ev.Version
	for sub := range c.subs {
		c.offerLocked(sub, watchItem{change: ch})
	}
}

// offerLocked queues item for sub without blocking. A change that does
// not fit ends sub; a bookmark that does not fit is left out (the changes
// before it will move the watcher's version).
func (c *watchCache) offerLocked(sub *subscriber, item watchItem) {
	if item.change != nil && (item.change.version <= sub.since || !sub.wants(item.change)) {
		return
	}
	select {
	case sub.ch <- item:
	default:
		if item.change != nil {
			c.endLocked(sub, errWatchBehind)
		}
	}
}

func (sub *subscriber) wants(ch *change) bool {
	return ch.key.Kind == sub.kind && (sub.namespace == "" || ch.key.Namespace == sub.namespace)
}

// errTooOld is a watch from a version the cache no longer covers.
type errTooOld struct{ asked, oldest uint64 }

func (e errTooOld) Error() string {
	return fmt.Sprintf("too old resource version: %d (%d)", e.asked, e.oldest)
}

// subscribe starts a watch of kind in namespace ("" for all) after
// version since: the changes the cache holds after it are queued at
// once, the later ones as they come.
func (c *watchCache) subscribe(ctx context.Context, kind, namespace string, since uint64) (*subscriber, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		return nil, errorf(http.StatusServiceUnavailable, "ServiceUnavailable", "the hub's watch is not running")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errorf(http.StatusServiceUnavailable, "ServiceUnavailable", "%v", errHubStopping)
	}
	if since < c.since {
		return nil, errTooOld{asked: since, oldest: c.since}
	}
	sub := &subscriber{kind: kind, namespace: namespace, since: since, ch: make(chan watchItem, watchBuffer)}
	for i := range c.count {
		ch := c.ring[(c.head+i)%c.capacity]
		if ch.version > since && sub.wants(ch) {
			if len(sub.ch) == cap(sub.ch) {
				return nil, errorf(http.StatusGone, ReasonExpired, "too many changes (more than %d) since resource version %d: list again", watchBuffer, since)
			}
			sub.ch <- watchItem{change: ch}
		}
	}
	c.subs[sub] = struct{}{}
	return sub, nil
}

// unsubscribe ends a watch its handler is done with.
func (c *watchCache) unsubscribe(sub *subscriber) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.subs[sub]; ok {
		c.endLocked(sub, nil)
	}
}

// bookmark queues a bookmark at the newest version the cache has seen:
// in order after every change before it, so that the watcher sends it
// only once it has sent them.
func (c *watchCache) bookmark(sub *subscriber) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.subs[sub]; ok {
		c.offerLocked(sub, watchItem{bookmark: c.last})
	}
}

// oldest is the oldest version a watch may start from, and whether the
// cache runs (a list's continue token older than it has expired).
func (c *watchCache) oldest() (uint64, bool) {
	select {
	case <-c.ready:
	default:
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.since, !c.closed
}

// secretSkeleton is a Secret's JSON without its data: what a watcher
// sends for a deleted Secret, and filters on.
func secretSkeleton(b []byte) []byte {
	if b == nil {
		return nil
	}
	var s api.Secret
	if err := json.Unmarshal(b, &s); err != nil {
		return nil
	}
	s.Data, s.StringData = nil, nil
	out, err := json.Marshal(&s)
	if err != nil {
		return nil
	}
	return out
}
