package store

import (
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// DefaultCachedKinds are the kinds whose decoded objects the Badger store
// keeps by default: those the controllers and node lifecycle read in full
// on every pass.
var DefaultCachedKinds = []string{api.KindNode, api.KindPod, api.KindDaemonSet, api.KindDeployment, api.KindControllerRevision}

// objectCache keeps, for each record of the cached kinds, the object its
// JSON last decoded to, so that Decode (and so Get and List) hands out a
// deep copy instead of decoding the same JSON again: a controller pass
// over 10,000 nodes then costs copies, not JSON decoding. An entry is used
// only for the same version, length and hash of the JSON, so a stale or
// uncommitted entry is never handed out; entries of deleted keys are
// dropped at commit, and records with a TTL are never cached.
type objectCache struct {
	kinds []string
	seed  maphash.Seed
	mu    sync.Mutex
	slots map[Key]*cacheSlot
}

// cacheSlot holds one key's decoded object; Records carry it to Decode.
type cacheSlot struct {
	c *objectCache
	p atomic.Pointer[cachedObject]
}

type cachedObject struct {
	version uint64
	size    int
	sum     uint64
	obj     any // never handed out: Decode returns copies
}

func newObjectCache(kinds []string) *objectCache {
	if len(kinds) == 0 {
		return nil
	}
	return &objectCache{kinds: slices.Clone(kinds), seed: maphash.MakeSeed(), slots: map[Key]*cacheSlot{}}
}

// slot returns key's slot, or nil when its kind is not cached.
func (c *objectCache) slot(key Key) *cacheSlot {
	if c == nil || !slices.Contains(c.kinds, key.Kind) {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slots[key]
	if s == nil {
		s = &cacheSlot{c: c}
		c.slots[key] = s
	}
	return s
}

// committed drops what a commit made stale.
func (c *objectCache) committed(events []Event) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range events {
		s := c.slots[ev.Key]
		if s == nil {
			continue
		}
		if ev.Type == Deleted {
			delete(c.slots, ev.Key)
		}
		s.p.Store(nil)
	}
}

// get returns the cached object for r, if it is r's.
func (s *cacheSlot) get(r Record) (any, bool) {
	co := s.p.Load()
	if co == nil || co.version != r.Version || co.size != len(r.Value) || co.sum != maphash.Bytes(s.c.seed, r.Value) {
		return nil, false
	}
	return co.obj, true
}

// set caches obj, which the caller no longer touches, as r's object.
func (s *cacheSlot) set(r Record, obj any) {
	s.p.Store(&cachedObject{version: r.Version, size: len(r.Value), sum: maphash.Bytes(s.c.seed, r.Value), obj: obj})
}
