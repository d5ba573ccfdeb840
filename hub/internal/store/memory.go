package store

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Memory is a Store that keeps everything in memory, for unit tests. It
// passes the same contract test as Badger.
//
// Committed state is an immutable snapshot that each commit replaces, so a
// View reads one consistent snapshot without holding any lock. A commit
// copies the tables of the kinds it touches (and purges their expired
// records), which is cheap at unit-test sizes and not meant for more.
type Memory struct {
	gate     gate
	writeMu  sync.Mutex // serializes Update
	state    atomic.Pointer[memState]
	version  atomic.Uint64
	watchers watchers
}

// memState is one committed snapshot: kind → namespace/name → record. It
// is never modified once published.
type memState struct {
	kinds map[string]map[memName]memRecord
}

type memName struct{ namespace, name string }

type memRecord struct {
	version uint64
	value   []byte
	expires time.Time // zero: never
	// e holds the record's decoded object, shared by readers as the
	// Badger store's in-memory records are (nil for records with a TTL).
	e *entry
}

// record is r as a Record of key.
func (r memRecord) record(key Key) Record {
	if r.e != nil {
		return r.e.record()
	}
	return Record{Key: key, Version: r.version, Value: bytes.Clone(r.value)}
}

func (r memRecord) expired(now time.Time) bool {
	return !r.expires.IsZero() && !now.Before(r.expires)
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	m := &Memory{}
	m.state.Store(&memState{kinds: map[string]map[memName]memRecord{}})
	return m
}

// View runs fn in a read-only transaction over the latest committed state.
func (m *Memory) View(fn func(Tx) error) error {
	if !m.gate.enter() {
		return fmt.Errorf("view: %w", ErrClosed)
	}
	defer m.gate.leave()
	return fn(&memTx{base: m.state.Load()})
}

// Update runs fn in a read-write transaction and commits it when fn
// returns nil and every write in it succeeded (a write that failed fails
// the Update even if fn ignored its error; a Delete of a missing key is not
// a failed write). Each Put and each Delete takes the next version.
// Writers are serialized: fn must not call Update.
func (m *Memory) Update(fn func(Tx) error) error {
	if !m.gate.enter() {
		return fmt.Errorf("update: %w", ErrClosed)
	}
	defer m.gate.leave()
	m.writeMu.Lock()
	defer m.writeMu.Unlock()

	tx := &memTx{
		base:   m.state.Load(),
		writes: map[Key]*memRecord{},
		log:    &writeLog{version: m.version.Load()},
	}
	if err := fn(tx); err != nil {
		tx.log.rollback()
		return err
	}
	if tx.log.err != nil {
		tx.log.rollback()
		return fmt.Errorf("update: a write failed: %w", tx.log.err)
	}
	if len(tx.writes) == 0 {
		return nil
	}
	m.state.Store(tx.base.apply(tx.writes, time.Now()))
	m.version.Store(tx.log.version)
	m.watchers.publish(tx.log.events())
	return nil
}

// Watch delivers committed changes to kinds (all kinds when none are
// given) until ctx ends or the store closes.
func (m *Memory) Watch(ctx context.Context, kinds ...string) <-chan Event {
	return m.watchers.add(ctx, kinds)
}

// Version returns the latest committed resource version.
func (m *Memory) Version() uint64 { return m.version.Load() }

// Close waits for the calls in flight, then closes every watcher. Later
// calls return ErrClosed.
func (m *Memory) Close() error {
	if !m.gate.close() {
		return fmt.Errorf("close: %w", ErrClosed)
	}
	m.watchers.close()
	return nil
}

// apply returns a new snapshot: s with writes applied (nil deletes) and
// the expired records of the touched kinds purged.
func (s *memState) apply(writes map[Key]*memRecord, now time.Time) *memState {
	next := &memState{kinds: maps.Clone(s.kinds)}
	copied := map[string]bool{}
	for key, rec := range writes {
		if !copied[key.Kind] {
			copied[key.Kind] = true
			table := make(map[memName]memRecord, len(s.kinds[key.Kind])+1)
			for name, r := range s.kinds[key.Kind] {
				if !r.expired(now) {
					table[name] = r
				}
			}
			next.kinds[key.Kind] = table
		}
		name := memName{key.Namespace, key.Name}
		if rec == nil {
			delete(next.kinds[key.Kind], name)
		} else {
			next.kinds[key.Kind][name] = *rec
		}
	}
	for kind, table := range next.kinds {
		if len(table) == 0 {
			delete(next.kinds, kind)
		}
	}
	return next
}

// memTx reads base overlaid with its own writes. log and writes are nil in
// a read-only transaction. It is not safe for concurrent use.
type memTx struct {
	base   *memState
	writes map[Key]*memRecord // nil record: deleted in this transaction
	log    *writeLog
}

func (tx *memTx) lookup(key Key, now time.Time) (memRecord, bool) {
	if rec, ok := tx.writes[key]; ok {
		if rec == nil || rec.expired(now) {
			return memRecord{}, false
		}
		return *rec, true
	}
	rec, ok := tx.base.kinds[key.Kind][memName{key.Namespace, key.Name}]
	if !ok || rec.expired(now) {
		return memRecord{}, false
	}
	return rec, true
}

func (tx *memTx) Get(key Key) (Record, error) {
	if err := key.validate(); err != nil {
		return Record{}, fmt.Errorf("get: %w", err)
	}
	rec, ok := tx.lookup(key, time.Now())
	if !ok {
		return Record{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	return rec.record(key), nil
}

func (tx *memTx) List(kind, namespace string) ([]Record, error) {
	if err := validateScope(kind, namespace); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	now := time.Now()
	var out []Record
	add := func(key Key, rec memRecord) {
		if !rec.expired(now) {
			out = append(out, rec.record(key))
		}
	}
	for name, rec := range tx.base.kinds[kind] {
		if namespace != "" && name.namespace != namespace {
			continue
		}
		key := Key{Kind: kind, Namespace: name.namespace, Name: name.name}
		if _, overlaid := tx.writes[key]; !overlaid {
			add(key, rec)
		}
	}
	for key, rec := range tx.writes {
		if rec != nil && key.Kind == kind && (namespace == "" || key.Namespace == namespace) {
			add(key, *rec)
		}
	}
	slices.SortFunc(out, compareRecords)
	return out, nil
}

func (tx *memTx) Put(obj api.Object) error { return tx.put(obj, 0) }

func (tx *memTx) PutTTL(obj api.Object, ttl time.Duration) error {
	if tx.log == nil {
		return fmt.Errorf("put %s: %w", KeyOf(obj), ErrReadOnly)
	}
	if err := checkTTL(KeyOf(obj), ttl); err != nil {
		return tx.log.fail(err)
	}
	return tx.put(obj, ttl)
}

func (tx *memTx) put(obj api.Object, ttl time.Duration) error {
	if tx.log == nil {
		return fmt.Errorf("put %s: %w", KeyOf(obj), ErrReadOnly)
	}
	key, version, data, err := tx.log.encode(obj)
	if err != nil {
		return tx.log.fail(err)
	}
	var old []byte
	if prev, ok := tx.lookup(key, time.Now()); ok {
		old = prev.value
	}
	rec := &memRecord{version: version, value: data}
	if ttl > 0 {
		rec.expires = time.Now().Add(ttl)
	} else {
		rec.e = &entry{key: key, version: version, value: data}
	}
	tx.writes[key] = rec
	tx.log.put(key, version, data, old)
	return nil
}

func (tx *memTx) Delete(key Key) error {
	if tx.log == nil {
		return fmt.Errorf("delete %s: %w", key, ErrReadOnly)
	}
	if err := key.validate(); err != nil {
		return tx.log.fail(fmt.Errorf("delete: %w", err))
	}
	prev, ok := tx.lookup(key, time.Now())
	if !ok {
		return fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	tx.writes[key] = nil
	tx.log.remove(key, prev.value)
	return nil
}

// sharedEntries returns the records readers may share decoded objects of.
func (m *Memory) sharedEntries() []*entry {
	var out []*entry
	for _, table := range m.state.Load().kinds {
		for _, r := range table {
			if r.e != nil {
				out = append(out, r.e)
			}
		}
	}
	return out
}
