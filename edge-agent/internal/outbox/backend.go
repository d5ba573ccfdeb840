package outbox

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"
	"sync"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/flotilla-edge/flotilla/pkg/diskguard"
)

// backend stores the queue. The Outbox keeps the bookkeeping (bounds,
// classes, counters) and calls it only to persist.
type backend interface {
	// load reports every stored entry, oldest first, and the counters.
	load(each func(seq uint64, class Class, size int64), dropped, appended *[numClasses]uint64) error
	// commit stores put (if any), deletes victims and writes the counters,
	// atomically.
	commit(put *stored, victims []uint64, dropped, appended [numClasses]uint64) error
	// scan reports up to n stored values from seq from on, oldest first.
	scan(from uint64, n int, each func(seq uint64, value []byte) error) error
	// remove deletes entries.
	remove(seqs []uint64) error
	// room is how many bytes of cost (diskguard.Cost) the disk would
	// still take.
	room() int64
	// The status slot (status.go).
	slotStore
}

// DB is the agent's store as the outbox uses it (state.Store): reads, and
// writes that its disk guard admits or refuses with diskguard.ErrFull.
type DB interface {
	View(fn func(*badger.Txn) error) error
	Update(t diskguard.Tally, critical bool, fn func(*badger.Txn) error) error
	Tally() diskguard.Tally
	Room() int64
}

// stored is one entry as the backend keeps it.
type stored struct {
	seq   uint64
	value []byte
}

// badgerBackend keeps the queue in the agent's Badger (key layout at the
// top of outbox.go).
type badgerBackend struct{ db DB }

func (b badgerBackend) room() int64 { return b.db.Room() }

func (b badgerBackend) load(each func(uint64, Class, int64), dropped, appended *[numClasses]uint64) error {
	return b.db.View(func(txn *badger.Txn) error {
		for c := Class(0); c < numClasses; c++ {
			for key, dst := range map[string]*uint64{string(droppedKey(c)): &dropped[c], string(appendedKey(c)): &appended[c]} {
				item, err := txn.Get([]byte(key))
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if err := item.Value(func(v []byte) error {
					if len(v) == 8 {
						*dst = binary.BigEndian.Uint64(v)
					}
					return nil
				}); err != nil {
					return err
				}
			}
		}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = queuePrefix
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var class Class
			if err := item.Value(func(v []byte) error {
				if len(v) > 0 {
					class = Class(v[0])
				}
				return nil
			}); err != nil {
				return err
			}
			each(seqOf(item.Key()), class, item.ValueSize())
		}
		return nil
	})
}

func (b badgerBackend) commit(put *stored, victims []uint64, dropped, appended [numClasses]uint64) error {
	t := b.db.Tally()
	for range victims {
		t.Entry(len(entryKey(0)), 0)
	}
	for c := Class(0); c < numClasses; c++ {
		t.Entry(len(droppedKey(c)), 8)
		t.Entry(len(appendedKey(c)), 8)
	}
	if put != nil {
		t.Entry(len(entryKey(put.seq)), len(put.value))
	}
	// Counting drops without queueing anything is bookkeeping that must go
	// on while the disk is full.
	return b.db.Update(t, put == nil && len(victims) == 0, func(txn *badger.Txn) error {
		for _, seq := range victims {
			if err := txn.Delete(entryKey(seq)); err != nil {
				return err
			}
		}
		for c := Class(0); c < numClasses; c++ {
			if err := txn.Set(droppedKey(c), u64(dropped[c])); err != nil {
				return err
			}
			if err := txn.Set(appendedKey(c), u64(appended[c])); err != nil {
				return err
			}
		}
		if put == nil {
			return nil
		}
		return txn.Set(entryKey(put.seq), put.value)
	})
}

func (b badgerBackend) scan(from uint64, n int, each func(uint64, []byte) error) error {
	return b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = queuePrefix
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		// Seek past the entries already delivered: their deletions stay in
		// the LSM tree until compaction, and walking them from the start
		// would slow every drain as a long outage's queue empties.
		for it.Seek(entryKey(from)); it.Valid() && n > 0; it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error { return each(seqOf(item.Key()), v) }); err != nil {
				return err
			}
			n--
		}
		return nil
	})
}

// remove deletes delivered entries: a critical write, since deleting is
// how the space comes back.
func (b badgerBackend) remove(seqs []uint64) error {
	t := b.db.Tally()
	for _, seq := range seqs {
		t.Entry(len(entryKey(seq)), 0)
	}
	return b.db.Update(t, true, func(txn *badger.Txn) error {
		for _, seq := range seqs {
			if err := txn.Delete(entryKey(seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

// memBackend keeps the queue in memory: entries in seq order (seqs only
// grow, so appends keep the slice sorted).
type memBackend struct {
	mu      sync.Mutex
	seqs    []uint64
	values  map[uint64][]byte
	counter [2][numClasses]uint64
	slot    []byte
}

func newMemBackend() *memBackend { return &memBackend{values: map[uint64][]byte{}} }

func (m *memBackend) room() int64 { return math.MaxInt64 }

func (m *memBackend) load(func(uint64, Class, int64), *[numClasses]uint64, *[numClasses]uint64) error {
	return nil
}

func (m *memBackend) commit(put *stored, victims []uint64, dropped, appended [numClasses]uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, seq := range victims {
		delete(m.values, seq)
	}
	if put != nil {
		m.values[put.seq] = put.value
		if n := len(m.seqs); n > 0 && m.seqs[n-1] > put.seq {
			i := sort.Search(n, func(i int) bool { return m.seqs[i] > put.seq })
			m.seqs = append(m.seqs[:i], append([]uint64{put.seq}, m.seqs[i:]...)...)
		} else {
			m.seqs = append(m.seqs, put.seq)
		}
	}
	m.counter = [2][numClasses]uint64{dropped, appended}
	m.compact()
	return nil
}

// compact drops removed seqs from the front of the order.
func (m *memBackend) compact() {
	i := 0
	for i < len(m.seqs) {
		if _, ok := m.values[m.seqs[i]]; ok {
			break
		}
		i++
	}
	m.seqs = m.seqs[i:]
}

func (m *memBackend) scan(from uint64, n int, each func(uint64, []byte) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	start := sort.Search(len(m.seqs), func(i int) bool { return m.seqs[i] >= from })
	for _, seq := range m.seqs[start:] {
		if n <= 0 {
			return nil
		}
		v, ok := m.values[seq]
		if !ok {
			continue
		}
		if err := each(seq, v); err != nil {
			return err
		}
		n--
	}
	return nil
}

func (m *memBackend) remove(seqs []uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, seq := range seqs {
		delete(m.values, seq)
	}
	m.compact()
	return nil
}

// Unguarded is a DB over a plain Badger whose writes are never refused,
// for tests and tools whose disk is not at stake. The agent uses its
// state.Store, whose writes a disk guard admits.
func Unguarded(db *badger.DB) DB { return unguarded{db} }

type unguarded struct{ db *badger.DB }

func (u unguarded) View(fn func(*badger.Txn) error) error { return u.db.View(fn) }
func (u unguarded) Update(_ diskguard.Tally, _ bool, fn func(*badger.Txn) error) error {
	return u.db.Update(fn)
}
func (u unguarded) Tally() diskguard.Tally { return diskguard.Tally{} }
func (u unguarded) Room() int64            { return math.MaxInt64 }
