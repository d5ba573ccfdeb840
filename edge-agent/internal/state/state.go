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
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func snapshotKey() []byte         { return []byte("s/snapshot") }
func restartKey(id string) []byte { return []byte("r/" + id) }
func seqKey() []byte              { return []byte("m/seq") }

// seqBlock is how many sequence numbers are reserved per write, so that
// reports cost no disk write each while numbers still never go backwards
// across restarts.
const seqBlock = 1024

// Store is the agent's local state.
type Store struct {
	db *badger.DB

	mu       sync.Mutex
	snapshot wire.Snapshot
	seq      uint64 // last sequence number handed out
	seqLimit uint64 // highest sequence number reserved on disk
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
	opts := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{logger}).
		WithSyncWrites(true).
		WithNumVersionsToKeep(1).
		WithMemTableSize(1 << 20).
		WithNumMemtables(2).
		WithBaseTableSize(2 << 20).
		WithCompression(options.None).
		WithValueLogFileSize(16 << 20).
		WithValueThreshold(4 << 10).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithNumCompactors(2)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open agent state in %s: %w", dir, err)
	}
	s := &Store{db: db}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) load() error {
	return s.db.View(func(txn *badger.Txn) error {
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

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

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
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(snapshotKey(), b) }); err != nil {
		return false, fmt.Errorf("save snapshot %d: %w", snap.Revision, err)
	}
	s.snapshot = snap
	return true, nil
}

// NextSeq returns the next report sequence number. Numbers increase across
// agent restarts.
func (s *Store) NextSeq() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seq >= s.seqLimit {
		limit := s.seqLimit + seqBlock
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], limit)
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(seqKey(), buf[:]) }); err != nil {
			return 0, fmt.Errorf("reserve sequence numbers: %w", err)
		}
		s.seqLimit = limit
	}
	s.seq++
	return s.seq, nil
}

// Restarts returns a container's restart record (zero if none).
func (s *Store) Restarts(id string) (reconcile.RestartRecord, error) {
	var rec reconcile.RestartRecord
	err := s.db.View(func(txn *badger.Txn) error { return getJSON(txn, restartKey(id), &rec) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return reconcile.RestartRecord{}, nil
	}
	if err != nil {
		return rec, fmt.Errorf("read restarts of %s: %w", id, err)
	}
	return rec, nil
}

// SaveRestarts stores a container's restart record.
func (s *Store) SaveRestarts(id string, rec reconcile.RestartRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode restarts of %s: %w", id, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(restartKey(id), b) }); err != nil {
		return fmt.Errorf("save restarts of %s: %w", id, err)
	}
	return nil
}

// DeleteRestarts forgets a container's restart record.
func (s *Store) DeleteRestarts(id string) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(restartKey(id)) }); err != nil {
		return fmt.Errorf("delete restarts of %s: %w", id, err)
	}
	return nil
}

// RunGC runs Badger's value-log garbage collection every interval until ctx
// ends, so the store does not grow without bound.
func (s *Store) RunGC(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for s.db.RunValueLogGC(0.5) == nil {
				if ctx.Err() != nil {
					return
				}
			}
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
