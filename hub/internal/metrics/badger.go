package metrics

// Badger key layout of the series store, a Badger database of its own
// ({data-dir}/metrics) so that telemetry never competes with the object
// store's synced writes, resource versions or watchers. Keys are built
// only by sampleKey and nodePrefix.
//
//	s/{node}/{8-byte big-endian Unix nanoseconds of the sample's time} → the sample's JSON
//
// Node names never contain '/', so s/{node}/ of one node never prefixes
// another's. Every key carries Badger's expiry (the sample's time plus the
// retention), so Badger hides it once expired and drops it at compaction.
// Values are small and stay in the LSM tree, whose blocks are compressed
// with zstd: a node's consecutive samples share a block and compress
// well.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/flotilla-edge/flotilla/hub/internal/badgerlog"
	"github.com/flotilla-edge/flotilla/pkg/badgerdir"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

const seriesSpace = "s/"

func nodePrefix(node string) []byte { return []byte(seriesSpace + node + "/") }

func sampleKey(node string, t time.Time) []byte {
	k := nodePrefix(node)
	return binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
}

// parseSampleKey returns the node and time of a key.
func parseSampleKey(k []byte) (string, time.Time, bool) {
	rest, ok := strings.CutPrefix(string(k), seriesSpace)
	if !ok || len(rest) < 9 || rest[len(rest)-9] != '/' {
		return "", time.Time{}, false
	}
	node := rest[:len(rest)-9]
	ns := binary.BigEndian.Uint64([]byte(rest[len(rest)-8:]))
	return node, time.Unix(0, int64(ns)).UTC(), node != ""
}

// BadgerSeries is the series store on disk. A disk guard admits every
// write (see pkg/diskguard: Badger writes through memory maps, and a full
// disk under one is a SIGBUS); on a disk too full to open for writing it
// opens read-only and reopens for writing, at a space check, once there
// is room.
type BadgerSeries struct {
	db        *badger.DB
	opts      badger.Options
	guard     *diskguard.Guard
	readOnly  bool // guarded by mu: set at open, cleared by reopen
	log       *slog.Logger
	dir       string
	retention time.Duration
	now       func() time.Time

	mu     sync.RWMutex
	closed bool
}

var _ Series = (*BadgerSeries)(nil)

// Option configures OpenBadger.
type Option func(*BadgerSeries)

// WithGuard admits the store's writes through guard, which must guard dir
// (and may guard the object store beside it, so that each keeps room for
// the other). Without it the store guards its own directory alone.
func WithGuard(guard *diskguard.Guard) Option {
	return func(b *BadgerSeries) { b.guard = guard }
}

// OpenBadger opens (or creates) a series store in dir. Writes are not
// synced: a crash loses at most the last second of telemetry, which the
// agents' next samples make up for.
func OpenBadger(dir string, retention time.Duration, logger *slog.Logger, with ...Option) (*BadgerSeries, error) {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if logger == nil {
		logger = slog.Default()
	}
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithCompression(options.ZSTD).
		WithZSTDCompressionLevel(3).
		WithBlockSize(64 << 10).
		// A table is built in a buffer of twice its size, and each
		// compactor builds its own: 8 MiB memory tables and two
		// compactors keep that churn, the largest allocation a busy fleet
		// causes in the hub, to a few tens of MiB. Write batches split
		// themselves to fit.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumCompactors(2).
		WithBlockCacheSize(16 << 20).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithValueLogFileSize(64 << 20).
		WithLogger(badgerlog.New(logger.With("component", "metrics-badger", "dir", dir)))
	b := &BadgerSeries{opts: opts, log: logger, dir: dir, retention: retention, now: time.Now}
	for _, o := range with {
		o(b)
	}
	if b.guard == nil {
		b.guard = diskguard.New(0, dir)
	}
	if removed, err := badgerdir.RemoveUnborn(dir); err != nil {
		return nil, fmt.Errorf("open metrics store %s: %w", dir, err)
	} else if len(removed) > 0 {
		logger.Warn("metrics store: removed empty log files a crash left", "dir", dir, "files", removed)
	}
	readOnly, err := diskguard.StartReadOnly(b.guard, dir)
	if err != nil {
		return nil, fmt.Errorf("open metrics store %s: %w", dir, err)
	}
	if readOnly {
		free, reserve := b.guard.State()
		logger.Warn("metrics store: disk full; opening read-only until there is room", "dir", dir, "free", free, "reserve", reserve)
	}
	if b.db, err = badger.Open(opts.WithReadOnly(readOnly)); err != nil {
		return nil, fmt.Errorf("open metrics store %s: %w", dir, err)
	}
	b.readOnly = readOnly
	return b, nil
}

// reopen swaps a read-only database for one open for writing once there
// is room and no call is using it; it reports whether the store takes
// writes. It retries the lock rather than wait for it, so that it never
// holds up readers.
func (b *BadgerSeries) reopen() bool {
	if !b.mu.TryLock() {
		return false // busy: the next check tries again
	}
	defer b.mu.Unlock()
	if b.closed || !b.readOnly {
		return !b.closed
	}
	if err := b.guard.Check(); err != nil || b.guard.Room() < 0 {
		return false
	}
	if err := b.db.Close(); err != nil {
		b.log.Error("metrics store: close the read-only store", "err", err)
	}
	db, err := badger.Open(b.opts.WithReadOnly(false))
	if err != nil {
		b.log.Error("metrics store: reopen for writing", "err", err)
		if db, err = badger.Open(b.opts.WithReadOnly(true)); err != nil {
			b.log.Error("metrics store: reopen read-only", "err", err)
			b.closed = true // nothing left to read from; calls fail with ErrClosed
			return false
		}
		b.db = db
		return false
	}
	b.db, b.readOnly = db, false
	b.log.Info("metrics store: reopened for writing", "dir", b.dir)
	return true
}

func (b *BadgerSeries) enter() bool {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return false
	}
	return true
}

func (b *BadgerSeries) leave() { b.mu.RUnlock() }

// Append writes entries in one batch.
func (b *BadgerSeries) Append(entries []Entry) error {
	if !b.enter() {
		return ErrClosed
	}
	defer b.leave()
	now := b.now()
	var entriesToWrite []*badger.Entry
	tally := diskguard.Tally{Threshold: int(b.opts.ValueThreshold)}
	for _, e := range entries {
		ttl := expiry(e.Sample.Time, b.retention, now)
		if ttl <= 0 || e.Node == "" || strings.Contains(e.Node, "/") {
			continue
		}
		v, err := json.Marshal(e.Sample)
		if err != nil {
			return fmt.Errorf("encode sample of %s: %w", e.Node, err)
		}
		// Badger's expiry is in whole seconds; round up so that nothing
		// goes before its time.
		entry := badger.NewEntry(sampleKey(e.Node, e.Sample.Time), v).WithTTL(ttl.Truncate(time.Second) + time.Second)
		entriesToWrite = append(entriesToWrite, entry)
		tally.Entry(len(entry.Key), len(entry.Value))
	}
	if len(entriesToWrite) == 0 {
		return nil
	}
	if b.readOnly {
		free, reserve := b.guard.State()
		return fmt.Errorf("metrics store: %w", &diskguard.FullError{Free: free, Reserve: reserve, Need: max(tally.Cost(), reserve-free)})
	}
	if err := b.guard.Admit(tally.Cost()); err != nil {
		return fmt.Errorf("metrics store: %w", err)
	}
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	for _, entry := range entriesToWrite {
		if err := wb.SetEntry(entry); err != nil {
			return fmt.Errorf("write samples: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write samples: %w", err)
	}
	return nil
}

// Range reads node's samples in [from, to].
func (b *BadgerSeries) Range(node string, from, to time.Time) ([]wire.MetricSample, error) {
	if !b.enter() {
		return nil, ErrClosed
	}
	defer b.leave()
	// Alive means younger than the retention, as the TTL has it.
	if oldest := b.now().Add(-b.retention); !from.After(oldest) {
		from = oldest.Add(time.Nanosecond)
	}
	var out []wire.MetricSample
	err := b.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = nodePrefix(node)
		it := txn.NewIterator(opts)
		defer it.Close()
		end := sampleKey(node, to)
		for it.Seek(sampleKey(node, from)); it.Valid(); it.Next() {
			item := it.Item()
			if string(item.Key()) > string(end) {
				break
			}
			var s wire.MetricSample
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &s) }); err != nil {
				return fmt.Errorf("decode sample %x: %w", item.Key(), err)
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read samples of %s: %w", node, err)
	}
	return out, nil
}

// Latest finds each node's newest sample by skipping from node to node:
// one seek per node, not a scan of every sample.
func (b *BadgerSeries) Latest() (map[string]wire.MetricSample, error) {
	if !b.enter() {
		return nil, ErrClosed
	}
	defer b.leave()
	out := map[string]wire.MetricSample{}
	oldest := b.now().Add(-b.retention)
	err := b.db.View(func(txn *badger.Txn) error {
		fwdOpts := badger.DefaultIteratorOptions
		fwdOpts.PrefetchValues = false
		fwdOpts.Prefix = []byte(seriesSpace)
		fwd := txn.NewIterator(fwdOpts)
		defer fwd.Close()
		revOpts := badger.DefaultIteratorOptions
		revOpts.Reverse = true
		rev := txn.NewIterator(revOpts)
		defer rev.Close()
		for fwd.Seek([]byte(seriesSpace)); fwd.Valid(); {
			node, _, ok := parseSampleKey(fwd.Item().KeyCopy(nil))
			if !ok {
				fwd.Next()
				continue
			}
			prefix := nodePrefix(node)
			// The largest key of this node: seek just below the next one.
			rev.Seek(append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
			if rev.ValidForPrefix(prefix) {
				if _, at, ok := parseSampleKey(rev.Item().Key()); ok && at.After(oldest) {
					var s wire.MetricSample
					if err := rev.Item().Value(func(v []byte) error { return json.Unmarshal(v, &s) }); err != nil {
						return fmt.Errorf("decode latest sample of %s: %w", node, err)
					}
					out[node] = s
				}
			}
			// Skip past every key of this node: '0' follows '/'.
			fwd.Seek([]byte(seriesSpace + node + "0"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read latest samples: %w", err)
	}
	return out, nil
}

// Size is the disk space the store takes.
func (b *BadgerSeries) Size() int64 {
	if !b.enter() {
		return 0
	}
	defer b.leave()
	return dirSize(b.dir)
}

// RunSpaceCheck reopens a store that opened read-only for writing once
// the disk has room, checking every interval until ctx ends or that is
// done. Writes to a store open for writing need no check to resume: the
// guard measures again by itself.
func (b *BadgerSeries) RunSpaceCheck(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		b.mu.RLock()
		done := b.closed || !b.readOnly
		b.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		b.reopen()
	}
}

// RunGC collects value-log garbage every interval until ctx ends. Expired
// samples leave the LSM tree at compaction without it; this reclaims the
// value log's share when values ever spill there. A rewrite moves live
// values through the write path, so it waits for room for a whole file.
func (b *BadgerSeries) RunGC(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !b.enter() {
			return ErrClosed
		}
		for !b.readOnly && b.guard.Admit(b.opts.ValueLogFileSize) == nil {
			if err := b.db.RunValueLogGC(0.5); err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					b.leave()
					return fmt.Errorf("metrics value-log gc: %w", err)
				}
				break
			}
		}
		b.leave()
	}
}

// Flatten compacts the whole tree (used by measurements, so that the size
// on disk is the steady state rather than uncompacted memtables).
func (b *BadgerSeries) Flatten() error {
	if !b.enter() {
		return ErrClosed
	}
	defer b.leave()
	if b.readOnly {
		return fmt.Errorf("flatten: %w", diskguard.ErrFull)
	}
	return b.db.Flatten(2)
}

// Close closes the store; later calls return ErrClosed.
func (b *BadgerSeries) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close metrics store: %w", err)
	}
	return nil
}
