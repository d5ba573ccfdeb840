// Package state is the agent's local memory on the board: the last desired
// snapshot it accepted, the restart history of its containers and the
// sequence numbers of its reports, kept in Badger so that the agent can
// reconcile and heal from its first second, with or without the hub.
package state

// Badger key layout:
//
//	s/snapshot          → JSON wire.Snapshot, the newest accepted desired snapshot
//	r/{container id}    → JSON reconcile.RestartRecord
//	m/seq               → uint64 big-endian, the highest report sequence number reserved
//	gc/flush            → empty, written and dropped at once by each GC round
//
// Keys are built only by the helpers below.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/badgerdir"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func snapshotKey() []byte         { return []byte("s/snapshot") }
func restartKey(id string) []byte { return []byte("r/" + id) }
func seqKey() []byte              { return []byte("m/seq") }
func flushKey() []byte            { return []byte("gc/flush") }

// seqBlock is how many sequence numbers are reserved per write, so that
// reports cost no disk write each while numbers still never go backwards
// across restarts.
const seqBlock = 1024

// Store is the agent's local state. A disk guard (pkg/diskguard) admits
// every write: Badger writes through memory maps, and a full card under
// one was a SIGBUS that killed the agent at every start. On a full disk
// the store refuses writes with an error wrapping ErrDiskFull, except
// where that would stop the node (see NextSeq and SaveRestarts); it opens
// read-only on a disk too full to open for writing, and Run reopens it
// once there is room.
type Store struct {
	// dbMu guards db against the one swap from read-only to read-write.
	dbMu     sync.RWMutex
	db       *badger.DB
	opts     badger.Options
	guard    *diskguard.Guard
	readOnly bool // guarded by dbMu
	log      *slog.Logger

	mu       sync.Mutex
	snapshot wire.Snapshot
	seq      uint64 // last sequence number handed out
	seqLimit uint64 // highest sequence number reserved on disk

	// unsaved holds restart records a full disk refused (nil: a refused
	// delete), until Run writes them.
	unsavedMu sync.Mutex
	unsaved   map[string]*reconcile.RestartRecord
}

// Open opens (or creates) the store in dir with options sized for small
// boards.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	// Sized for 32-bit boards with 512 MiB of RAM; test/arm's
	// TestBadgerSoak32 runs a week of it under qemu-arm-static. Badger
	// maps each value-log file at twice ValueLogFileSize, so that stays
	// small. Compaction keeps the tables it builds, raw and compressed, in
	// the Go heap: without compression, filling the 64 MiB outbox left
	// about 80 MiB of heap live, against about 250 MiB with Snappy. Tables
	// are then read straight from their mapping, so the block cache would
	// only copy them (Badger's advice: no cache without compression or
	// encryption), and so are their indexes: the index cache serves only
	// encrypted tables, none. Do not shrink BaseTableSize below 2 MiB
	// without that soak: with 512 KiB tables a 32-bit build lost a key
	// across a reopen.
	//
	// The memtable is an arena in the Go heap of MemTableSize plus 30 %,
	// allocated whole (the collector counts all of it, as live heap, from
	// the start) and filled by every write, deletions included, along with
	// its write-ahead log (mapped at twice MemTableSize); both become
	// resident as they fill, until the memtable is flushed to a table. At
	// 1 MiB that is at most about 2.3 MiB of the agent's RSS
	// (docs/benchmarks.md); at 4 MiB it was 5.3 MiB of heap the collector
	// had to count and up to 9 MiB resident. A transaction is bounded to
	// 15 % of the memtable (157 KB, about 1,600 writes): values of
	// ValueThreshold and more go to the value log and count as a pointer,
	// so a snapshot as large as wire.MaxPayload fits (TestLargestSnapshot),
	// and the outbox drops many entries in steps.
	//
	// Value-log files are 5 MiB, just over the largest value (a snapshot
	// of wire.MaxPayload; Badger refuses a value larger than a file):
	// garbage collection never rewrites the newest file, so up to one
	// file of the delivered outbox stays on disk (see Run for when space
	// comes back). Each file is mapped at twice its size when created,
	// sparse.
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{logger}).
		WithSyncWrites(true).
		WithNumVersionsToKeep(1).
		WithMemTableSize(1 << 20).
		WithNumMemtables(2).
		WithBaseTableSize(2 << 20).
		WithCompression(options.None).
		WithValueLogFileSize(5 << 20).
		WithValueThreshold(4 << 10).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithNumCompactors(2)
	if logger == nil {
		logger = slog.Default()
	}
	if removed, err := badgerdir.RemoveUnborn(dir); err != nil {
		return nil, fmt.Errorf("open agent state in %s: %w", dir, err)
	} else if len(removed) > 0 {
		logger.Warn("agent state: removed empty log files a crash left", "dir", dir, "files", removed)
	}
	guard := diskguard.New(0, dir)
	readOnly, err := diskguard.StartReadOnly(guard, dir)
	if err != nil {
		return nil, fmt.Errorf("open agent state in %s: %w", dir, err)
	}
	if readOnly {
		free, reserve := guard.State()
		logger.Warn("agent state: disk full; opening read-only until there is room", "dir", dir, "free", free, "reserve", reserve)
	}
	db, err := badger.Open(opts.WithReadOnly(readOnly))
	if err != nil {
		return nil, fmt.Errorf("open agent state in %s: %w", dir, err)
	}
	s := &Store{db: db, opts: opts, guard: guard, readOnly: readOnly, log: logger, unsaved: map[string]*reconcile.RestartRecord{}}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Tally returns an empty tally of writes to this store, for Update.
func (s *Store) Tally() diskguard.Tally {
	return diskguard.Tally{Threshold: int(s.opts.ValueThreshold)}
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*badger.Txn) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return errReopenFailed
	}
	return s.db.View(fn)
}

// errReopenFailed is returned by every call after a reopen for writing
// failed and the store could not open read-only again either.
var errReopenFailed = errors.New("agent state: the store could not be reopened")

// Update runs fn in a transaction and commits it, synced, if the disk
// has room for what t counts and for what the store must keep free; else
// it writes nothing and returns an error wrapping ErrDiskFull. A critical
// write (small bookkeeping, such as deleting delivered entries, which is
// how space comes back) may use part of the store's slack.
func (s *Store) Update(t diskguard.Tally, critical bool, fn func(*badger.Txn) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.db == nil {
		return errReopenFailed
	}
	if s.readOnly {
		free, reserve := s.guard.State()
		return &diskguard.FullError{Free: free, Reserve: reserve, Need: max(t.Cost(), reserve-free)}
	}
	admit := s.guard.Admit
	if critical {
		admit = s.guard.AdmitCritical
	}
	if err := admit(t.Cost()); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// Room is how many bytes of cost (diskguard.Cost) the store would still
// take; zero or less when it refuses writes.
func (s *Store) Room() int64 {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	if s.readOnly {
		return 0
	}
	return s.guard.Room()
}

// Full reports whether the store refuses writes for a full disk (or
// would, but for the smallest).
func (s *Store) Full() bool {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.readOnly || s.guard.Full()
}

// set writes one key (see Update).
func (s *Store) set(key, value []byte, critical bool) error {
	t := s.Tally()
	t.Entry(len(key), len(value))
	return s.Update(t, critical, func(txn *badger.Txn) error { return txn.Set(key, value) })
}

func (s *Store) load() error {
	return s.View(func(txn *badger.Txn) error {
		if err := getJSON(txn, snapshotKey(), &s.snapshot); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("read snapshot: %w", err)
		}
		item, err := txn.Get(seqKey())
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read sequence: %w", err)
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("read sequence: %d bytes, want 8", len(v))
			}
			s.seqLimit = binary.BigEndian.Uint64(v)
			s.seq = s.seqLimit
			return nil
		})
	})
}

// Close writes the restart records a full disk refused, if it now has
// room, and closes the store.
func (s *Store) Close() error {
	s.saveUnsaved()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// Snapshot returns the newest accepted desired snapshot (zero if none).
func (s *Store) Snapshot() (wire.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshot, nil
}

// AcceptSnapshot persists snap if its revision is newer than the one held,
// and reports whether it did. It returns only after the write is durable,
// so the agent never acts on a snapshot it could forget.
func (s *Store) AcceptSnapshot(snap wire.Snapshot) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if snap.Revision <= s.snapshot.Revision {
		return false, nil
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return false, fmt.Errorf("encode snapshot %d: %w", snap.Revision, err)
	}
	if err := s.set(snapshotKey(), b, false); err != nil {
		return false, fmt.Errorf("save snapshot %d: %w", snap.Revision, err)
	}
	s.snapshot = snap
	return true, nil
}

// NextSeq returns the next report sequence number. Numbers increase across
// agent restarts: they are reserved on disk in blocks. When a full disk
// refuses a reservation the numbers go on from the clock (nanoseconds
// since 1970, far above any reserved block) without one, so heartbeats
// still go out and still increase across a restart, unless the clock goes
// back; the next reservation the disk takes continues from there.
func (s *Store) NextSeq() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seq >= s.seqLimit {
		limit := max(s.seqLimit, s.seq) + seqBlock
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], limit)
		err := s.set(seqKey(), buf[:], true)
		switch {
		case errors.Is(err, ErrDiskFull):
			s.seq = max(s.seq+1, uint64(time.Now().UnixNano()))
			return s.seq, nil
		case err != nil:
			return 0, fmt.Errorf("reserve sequence numbers: %w", err)
		}
		s.seqLimit = limit
	}
	s.seq++
	return s.seq, nil
}

// Restarts returns a container's restart record (zero if none).
func (s *Store) Restarts(id string) (reconcile.RestartRecord, error) {
	s.unsavedMu.Lock()
	pending, ok := s.unsaved[id]
	s.unsavedMu.Unlock()
	if ok {
		if pending == nil {
			return reconcile.RestartRecord{}, nil
		}
		return *pending, nil
	}
	var rec reconcile.RestartRecord
	err := s.View(func(txn *badger.Txn) error { return getJSON(txn, restartKey(id), &rec) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return reconcile.RestartRecord{}, nil
	}
	if err != nil {
		return rec, fmt.Errorf("read restarts of %s: %w", id, err)
	}
	return rec, nil
}

// SaveRestarts stores a container's restart record. A record a full disk
// refuses is kept in memory, where Restarts finds it, and written by Run
// once there is room; it returns nil then, so that the container restarts
// with its count and back-off as if written. The cost: an agent that
// restarts before the disk has room forgets the restarts since it filled.
func (s *Store) SaveRestarts(id string, rec reconcile.RestartRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode restarts of %s: %w", id, err)
	}
	err = s.set(restartKey(id), b, false)
	switch {
	case errors.Is(err, ErrDiskFull):
		s.keepUnsaved(id, &rec)
		return nil
	case err != nil:
		return fmt.Errorf("save restarts of %s: %w", id, err)
	}
	s.unsavedMu.Lock()
	delete(s.unsaved, id)
	s.unsavedMu.Unlock()
	return nil
}

// DeleteRestarts forgets a container's restart record (in memory until
// the disk has room, like SaveRestarts).
func (s *Store) DeleteRestarts(id string) error {
	t := s.Tally()
	t.Entry(len(restartKey(id)), 0)
	err := s.Update(t, false, func(txn *badger.Txn) error { return txn.Delete(restartKey(id)) })
	switch {
	case errors.Is(err, ErrDiskFull):
		s.keepUnsaved(id, nil)
		return nil
	case err != nil:
		return fmt.Errorf("delete restarts of %s: %w", id, err)
	}
	s.unsavedMu.Lock()
	delete(s.unsaved, id)
	s.unsavedMu.Unlock()
	return nil
}

func (s *Store) keepUnsaved(id string, rec *reconcile.RestartRecord) {
	s.unsavedMu.Lock()
	defer s.unsavedMu.Unlock()
	if len(s.unsaved) == 0 {
		s.log.Warn("agent state: disk full; restart history is kept in memory until there is room", "container", id)
	}
	s.unsaved[id] = rec
}

// saveUnsaved writes the restart records a full disk refused, as far as
// it now has room.
func (s *Store) saveUnsaved() {
	s.unsavedMu.Lock()
	pending := make(map[string]*reconcile.RestartRecord, len(s.unsaved))
	for id, rec := range s.unsaved {
		pending[id] = rec
	}
	s.unsavedMu.Unlock()
	for id, rec := range pending {
		var err error
		if rec == nil {
			err = s.DeleteRestarts(id)
		} else {
			err = s.SaveRestarts(id, *rec)
		}
		if err != nil {
			s.log.Error("agent state: write kept restart history", "container", id, "err", err)
		}
	}
}

// Run looks after the store until ctx ends: every check interval it
// reopens a store opened read-only once the disk has room, and writes the
// restart records a full disk refused; every gc interval it collects
// value-log garbage. Space comes back so: an entry's delivery deletes it
// at once (the outbox and its bound forget it); Badger drops deleted
// small entries from its tables at compaction, which writes to the store
// set off; entries of 4 KiB and more sit in value-log files until garbage
// collection rewrites a file at least half garbage, at the next gc
// interval after the compaction that counted it, and never in the newest
// file (5 MiB). Each round first compacts the tables (flatten) so that the
// garbage is counted, when the disk has room for it.
func (s *Store) Run(ctx context.Context, check, gc time.Duration) {
	ct := time.NewTicker(check)
	defer ct.Stop()
	gt := time.NewTicker(gc)
	defer gt.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ct.C:
			s.checkSpace()
		case <-gt.C:
			s.collect(ctx)
		}
	}
}

// checkSpace is Run's check.
func (s *Store) checkSpace() {
	if err := s.guard.Check(); err != nil {
		s.log.Warn("agent state: cannot check the free space", "err", err)
		return
	}
	s.dbMu.RLock()
	readOnly := s.readOnly
	s.dbMu.RUnlock()
	if readOnly && s.guard.Room() >= 0 {
		if err := s.reopen(); err != nil {
			s.log.Error("agent state: reopen for writing", "err", err)
		}
	}
	s.unsavedMu.Lock()
	n := len(s.unsaved)
	s.unsavedMu.Unlock()
	if n > 0 && !s.Full() {
		s.saveUnsaved()
	}
}

// reopen swaps the read-only database for one open for writing.
func (s *Store) reopen() error {
	if !s.dbMu.TryLock() {
		return nil // busy: the next check tries again
	}
	defer s.dbMu.Unlock()
	if !s.readOnly {
		return nil
	}
	if s.db != nil {
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("close the read-only store: %w", err)
		}
		s.db = nil
	}
	db, err := badger.Open(s.opts.WithReadOnly(false))
	if err != nil {
		ro, rerr := badger.Open(s.opts.WithReadOnly(true))
		if rerr != nil {
			// Nothing to read from: calls fail, and the snapshot and
			// sequence numbers go on from memory.
			s.db = nil
			return fmt.Errorf("open for writing: %w; and read-only again: %w", err, rerr)
		}
		s.db = ro
		return fmt.Errorf("open for writing: %w", err)
	}
	s.db, s.readOnly = db, false
	s.log.Info("agent state: reopened for writing", "dir", s.opts.Dir)
	return nil
}

// flushMemtables writes Badger's memtables to tables. Badger flushes a
// memtable only once it is full (1 MiB) or at close, and only tables are
// compacted, which is what counts deleted entries as value-log garbage:
// the last deliveries of a drained outbox would otherwise wait for a
// megabyte of new writes. Badger has no call for it but DropPrefix, which
// flushes every memtable first and works only for a prefix that holds
// something: so a marker is written and dropped.
func (s *Store) flushMemtables() error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(flushKey(), nil) }); err != nil {
		return err
	}
	return s.db.DropPrefix(flushKey())
}

// collect is one round of garbage collection: flush the memtables and
// compact the tables, so that deleted entries are counted against their
// value-log files, then rewrite every file at least half garbage. All
// three write, so each waits for room: the compaction may rewrite every
// table, a rewrite a file's live half. The store's own writes wait
// during the flush and compaction (Badger would refuse them meanwhile).
func (s *Store) collect(ctx context.Context) {
	s.dbMu.Lock()
	if s.readOnly || s.db == nil {
		s.dbMu.Unlock()
		return
	}
	if u, err := diskguard.Measure(s.opts.Dir); err == nil && s.guard.Admit(u.Tables+2*u.Logs) == nil {
		if err := s.flushMemtables(); err != nil {
			s.log.Warn("agent state: flush", "err", err)
		}
		if err := s.db.Flatten(1); err != nil {
			s.log.Warn("agent state: compact", "err", err)
		}
	}
	s.dbMu.Unlock()

	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	// A rewrite moves at most the live half of a file, and its pointers.
	for ctx.Err() == nil && s.guard.Admit(s.opts.ValueLogFileSize/2*11/10) == nil {
		if err := s.db.RunValueLogGC(0.5); err != nil {
			return
		}
	}
}

func getJSON(txn *badger.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
}

// badgerLogger sends Badger's warnings and errors to slog.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) {
	l.logger().Error("badger: " + fmt.Sprintf(f, a...))
}
func (l badgerLogger) Warningf(f string, a ...any) {
	l.logger().Warn("badger: " + fmt.Sprintf(f, a...))
}
func (l badgerLogger) Infof(string, ...any)  {}
func (l badgerLogger) Debugf(string, ...any) {}

func (l badgerLogger) logger() *slog.Logger {
	if l.log == nil {
		return slog.Default()
	}
	return l.log
}

// Check that Store serves as the reconciler's history.
var _ reconcile.History = (*Store)(nil)
