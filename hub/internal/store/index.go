package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/google/btree"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// DefaultIndexedKinds are the kinds the Badger store keeps in memory by
// default: the ones the controllers, dispatch and node lifecycle read in
// full on every pass (Services also on every apply that allocates their
// addresses). Secrets stay out, so that they are only ever in the
// clear in memory while a reader holds one.
var DefaultIndexedKinds = []string{
	api.KindNamespace, api.KindNode, api.KindPod, api.KindDaemonSet, api.KindDeployment,
	api.KindControllerRevision, api.KindConfigMap, api.KindService, api.KindEndpoints,
	api.KindIngress, api.KindIngressClass,
}

// index is the committed state of the kinds the Badger store keeps in
// memory. Badger stays the durable copy, written in the same commit, and
// is read only at open; every Get and List of an indexed kind is answered
// from here, so a controller's pass over 10,000 nodes costs no Badger
// iteration and, once each version has been decoded, no JSON.
//
// Each state is immutable once published: a commit clones the B-trees of
// the kinds it touches (a copy-on-write clone, O(1), that then copies only
// the nodes it changes) and publishes the new state atomically, so a View
// reads one consistent state without a lock and never holds up a writer.
type index struct {
	kinds map[string]bool
	state atomic.Pointer[indexState]
}

// indexState is one committed state: kind → its records, ordered by
// namespace, then name (List's order).
type indexState struct {
	kinds map[string]*btree.BTreeG[*entry]
}

// entry is one record held in memory. Its fields never change; obj is
// the record's JSON decoded on first use, shared by every reader of this
// version and never handed out to a caller that may modify it.
type entry struct {
	key     Key
	version uint64
	value   []byte
	obj     atomic.Pointer[decoded]
}

type decoded struct{ v any }

const btreeDegree = 32

func lessEntry(a, b *entry) bool {
	if a.key.Namespace != b.key.Namespace {
		return a.key.Namespace < b.key.Namespace
	}
	return a.key.Name < b.key.Name
}

func newIndex(kinds []string) *index {
	ix := &index{kinds: map[string]bool{}}
	for _, k := range kinds {
		ix.kinds[k] = true
	}
	ix.state.Store(&indexState{kinds: map[string]*btree.BTreeG[*entry]{}})
	return ix
}

// holds reports whether kind is kept in memory.
func (ix *index) holds(kind string) bool { return ix.kinds[kind] }

// load adds one record read from Badger at open (the only writer then).
func (ix *index) load(e *entry) {
	s := ix.state.Load()
	t := s.kinds[e.key.Kind]
	if t == nil {
		t = btree.NewG(btreeDegree, lessEntry)
		s.kinds[e.key.Kind] = t
	}
	t.ReplaceOrInsert(e)
}

// commit publishes base with changes applied (a nil entry deletes its
// key). Commits are serialized by the store's write lock.
func (ix *index) commit(base *indexState, changes map[Key]*entry) {
	if len(changes) == 0 {
		return
	}
	next := &indexState{kinds: maps.Clone(base.kinds)}
	cloned := map[string]bool{}
	for key, e := range changes {
		t := next.kinds[key.Kind]
		if !cloned[key.Kind] {
			cloned[key.Kind] = true
			if t == nil {
				t = btree.NewG(btreeDegree, lessEntry)
			} else {
				t = t.Clone()
			}
			next.kinds[key.Kind] = t
		}
		if e == nil {
			t.Delete(&entry{key: key})
		} else {
			t.ReplaceOrInsert(e)
		}
	}
	ix.state.Store(next)
}

// get returns key's entry in s, if any.
func (s *indexState) get(key Key) (*entry, bool) {
	t := s.kinds[key.Kind]
	if t == nil {
		return nil, false
	}
	return t.Get(&entry{key: key})
}

// list returns kind's entries in namespace ("" for all), in order.
func (s *indexState) list(kind, namespace string) []*entry {
	t := s.kinds[kind]
	if t == nil {
		return nil
	}
	if namespace == "" {
		out := make([]*entry, 0, t.Len())
		t.Ascend(func(e *entry) bool { out = append(out, e); return true })
		return out
	}
	var out []*entry
	t.AscendGreaterOrEqual(&entry{key: Key{Namespace: namespace}}, func(e *entry) bool {
		if e.key.Namespace != namespace {
			return false
		}
		out = append(out, e)
		return true
	})
	return out
}

// overlay returns base's entries of kind in namespace with a
// transaction's own changes applied, in List's order.
func overlay(base []*entry, changes map[Key]*entry, kind, namespace string) []*entry {
	var mine []Key
	for key := range changes {
		if key.Kind == kind && (namespace == "" || key.Namespace == namespace) {
			mine = append(mine, key)
		}
	}
	if len(mine) == 0 {
		return base
	}
	out := make([]*entry, 0, len(base)+len(mine))
	for _, e := range base {
		if _, changed := changes[e.key]; !changed {
			out = append(out, e)
		}
	}
	for _, key := range mine {
		if e := changes[key]; e != nil {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *entry) int { return compareKeys(a.key, b.key) })
	return out
}

// record is e as a Record; its Value is shared and must not be modified.
func (e *entry) record() Record {
	return Record{Key: e.key, Version: e.version, Value: e.value, entry: e}
}

// sharedObject returns the object e's JSON decodes to, as a PT, decoding it
// on first use. The object is shared by every reader of this version: the
// caller must not modify it. An entry first decoded as another type (a
// caller's mistake, or DecodeInto's run-time type) decodes afresh.
func sharedObject[T any, PT interface {
	*T
	api.Object
}](e *entry) (PT, error) {
	if d := e.obj.Load(); d != nil {
		if obj, ok := d.v.(PT); ok {
			return obj, nil
		}
		obj := PT(new(T))
		if err := json.Unmarshal(e.value, obj); err != nil {
			return nil, fmt.Errorf("decode %s: %w", e.key, err)
		}
		return obj, nil
	}
	obj := PT(new(T))
	if err := json.Unmarshal(e.value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", e.key, err)
	}
	if !e.obj.CompareAndSwap(nil, &decoded{v: obj}) {
		// Another reader decoded it first: use theirs, so that every
		// reader of this version shares one object.
		if d := e.obj.Load(); d != nil {
			if theirs, ok := d.v.(PT); ok {
				return theirs, nil
			}
		}
	}
	return obj, nil
}

// decodeInto sets obj (a pointer to a zero object) to a deep copy of e's
// decoded object, decoding and keeping it on first use.
func (e *entry) decodeInto(obj api.Object) error {
	v := reflect.ValueOf(obj)
	if d := e.obj.Load(); d != nil && reflect.TypeOf(d.v) == v.Type() {
		dst := v.Elem()
		dst.SetZero()
		planFor(dst.Type()).copy(dst, reflect.ValueOf(d.v).Elem())
		return nil
	}
	if err := json.Unmarshal(e.value, obj); err != nil {
		return fmt.Errorf("decode %s: %w", e.key, err)
	}
	kept := reflect.New(v.Type().Elem())
	planFor(kept.Elem().Type()).copy(kept.Elem(), v.Elem())
	e.obj.CompareAndSwap(nil, &decoded{v: kept.Interface()})
	return nil
}

// sharedEntries returns the records readers may share decoded objects of.
func (b *Badger) sharedEntries() []*entry {
	var out []*entry
	for _, t := range b.index.state.Load().kinds {
		t.Ascend(func(e *entry) bool { out = append(out, e); return true })
	}
	return out
}

// VerifyShared checks that no reader modified an object the store shares
// (ListShared, GetShared): each decoded object must still equal what its
// JSON decodes to. Tests of the store's users call it after their code
// ran; it reads every record, so it is not for production.
func VerifyShared(s Store) error {
	sh, ok := s.(interface{ sharedEntries() []*entry })
	if !ok {
		return fmt.Errorf("store %T shares no objects", s)
	}
	for _, e := range sh.sharedEntries() {
		d := e.obj.Load()
		if d == nil {
			continue
		}
		fresh := reflect.New(reflect.TypeOf(d.v).Elem()).Interface()
		if err := json.Unmarshal(e.value, fresh); err != nil {
			return fmt.Errorf("decode %s: %w", e.key, err)
		}
		if !reflect.DeepEqual(fresh, d.v) {
			got, _ := json.Marshal(d.v)
			return fmt.Errorf("%s (version %d) was modified by a reader of the shared object:\nstored: %s\nshared: %s", e.key, e.version, e.value, got)
		}
	}
	return nil
}
