package store

// Badger key layout. Every key is built by the helpers below
// (objectKey, kindPrefix, namespacePrefix, versionKey) and by nothing else.
//
//	o/{kind}/{namespace}/{name} → 8-byte big-endian resource version, then
//	                              the object's JSON (whose
//	                              metadata.resourceVersion is that version)
//	m/version                   → last resource version handed out,
//	                              8-byte big-endian
//
// namespace is empty for cluster-scoped kinds, so a Node is o/Node//n1.
// Kind, namespace and name never contain '/' (keys that do are refused), so
// the prefix o/{kind}/{namespace}/ of one namespace never matches another
// ("dev" and "dev2"), nor o/{kind}/ another kind ("Pod" and "PodX").
// With WithCodec, the JSON of the kinds the codec seals (Secrets) is
// replaced by its sealed form (see hub/internal/secrets), bound to the
// record's key; the version stays in clear.
// Records written with PutTTL carry Badger's expiry, in whole seconds and
// rounded up so that none goes before its ttl; Badger hides them once
// expired and drops them from disk at compaction.
//
// The records of the indexed kinds (WithIndexedKinds) are also held in
// memory (index.go): Badger is read for them only at open, and written in
// every commit. Records of other kinds are read from Badger.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/flotilla-edge/flotilla/hub/internal/badgerlog"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/badgerdir"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
)

// ErrIndexedTTL is wrapped by the error of a PutTTL of a kind the store
// keeps in memory: records that expire belong to kinds that stay on disk.
var ErrIndexedTTL = errors.New("the store keeps this kind in memory, where records do not expire")

// ErrTooBig is wrapped by Update's error when a transaction holds more than
// Badger can commit at once. Nothing was written; split the work into
// several transactions.
var ErrTooBig = errors.New("transaction too big: split it into smaller batches")

// ErrDiskFull is wrapped by Update's error when the disk has no room for
// the write and for what the store must keep free (see OpenBadger); the
// error is also a *diskguard.FullError, which says how many bytes were
// free. Nothing was written; reads go on working, and writes are taken
// again once there is room.
var ErrDiskFull = diskguard.ErrFull

// Key parts, see the layout above.
const (
	objectSpace = "o/"
	metaVersion = "m/version"
	versionSize = 8
)

// objectKey is the Badger key of one object. It refuses malformed keys.
func objectKey(k Key) ([]byte, error) {
	if err := k.validate(); err != nil {
		return nil, err
	}
	return []byte(objectSpace + k.Kind + "/" + k.Namespace + "/" + k.Name), nil
}

// kindPrefix is the prefix of every object of kind, in all namespaces.
func kindPrefix(kind string) []byte {
	return []byte(objectSpace + kind + "/")
}

// namespacePrefix is the prefix of every object of kind in namespace.
func namespacePrefix(kind, namespace string) []byte {
	return []byte(objectSpace + kind + "/" + namespace + "/")
}

// versionKey holds the last resource version handed out.
func versionKey() []byte { return []byte(metaVersion) }

// parseObjectKey is the inverse of objectKey.
func parseObjectKey(b []byte) (Key, error) {
	rest, ok := strings.CutPrefix(string(b), objectSpace)
	kind, rest, ok2 := strings.Cut(rest, "/")
	namespace, name, ok3 := strings.Cut(rest, "/")
	if !ok || !ok2 || !ok3 || strings.Contains(name, "/") {
		return Key{}, fmt.Errorf("%w: malformed object key %q", errInvalidKey, b)
	}
	return Key{Kind: kind, Namespace: namespace, Name: name}, nil
}

// encodeValue and decodeValue frame an object's JSON with its version.
func encodeValue(version uint64, data []byte) []byte {
	v := make([]byte, versionSize, versionSize+len(data))
	binary.BigEndian.PutUint64(v, version)
	return append(v, data...)
}

func decodeValue(key Key, v []byte) (Record, error) {
	if len(v) < versionSize {
		return Record{}, fmt.Errorf("decode %s: value of %d bytes is too short", key, len(v))
	}
	return Record{Key: key, Version: binary.BigEndian.Uint64(v), Value: v[versionSize:]}, nil
}

// Badger is the hub's Store on disk. Every commit is synced before Update
// returns. Badger's own background work (compaction, flushing) stops at
// Close; value-log garbage collection runs only in RunGC.
//
// A guard (pkg/diskguard) admits every commit: one that would leave less
// free space than Badger needs to flush and compact what the store holds
// fails with ErrDiskFull before Badger writes anything, since Badger
// writes through memory maps and a full disk under one is a SIGBUS. On a
// disk too full to open for writing the store opens read-only, and
// RunSpaceCheck reopens it for writing once there is room.
type Badger struct {
	// dbMu guards db against the one swap from read-only to read-write:
	// calls hold it for reading while they use db.
	dbMu     sync.RWMutex
	db       *badger.DB
	opts     badger.Options
	readOnly atomic.Bool
	guard    *diskguard.Guard
	log      *slog.Logger
	codec    ValueCodec
	gate     gate
	writeMu  sync.Mutex // serializes Update
	version  atomic.Uint64
	watchers watchers
	index    *index
}

var _ Store = (*Badger)(nil)

// BadgerOption configures OpenBadger.
type BadgerOption func(*badgerConfig)

type badgerConfig struct {
	logger  *slog.Logger
	tune    func(badger.Options) badger.Options
	codec   ValueCodec
	indexed []string
	guard   *diskguard.Guard
}

// WithGuard admits the store's writes through guard, which must guard the
// store's directory (and may guard others on the same filesystem, such as
// the hub's metric store, so that each keeps room for the other). Without
// it the store guards its own directory alone.
func WithGuard(guard *diskguard.Guard) BadgerOption {
	return func(c *badgerConfig) { c.guard = guard }
}

// ValueCodec transforms the JSON of records of some kinds on their way to
// and from Badger; secrets.RecordCodec, which seals Secrets, satisfies it.
// key is the record's Badger key.
type ValueCodec interface {
	Seal(kind string, key, value []byte) ([]byte, error)
	Open(kind string, key, stored []byte) ([]byte, error)
}

// WithCodec seals records with codec before they reach Badger and opens
// them after reading.
func WithCodec(codec ValueCodec) BadgerOption {
	return func(c *badgerConfig) { c.codec = codec }
}

// WithIndexedKinds sets the kinds the store keeps in memory (default
// DefaultIndexedKinds; none with no arguments): reads of them never touch
// Badger, and each version is decoded at most once. It costs their JSON
// and, once read, one decoded copy of each in memory. Records of an
// indexed kind cannot be written with a TTL.
func WithIndexedKinds(kinds ...string) BadgerOption {
	return func(c *badgerConfig) { c.indexed = kinds }
}

// WithLogger sends Badger's warnings and errors to logger (default:
// slog.Default()). Badger's info and debug messages are dropped.
func WithLogger(logger *slog.Logger) BadgerOption {
	return func(c *badgerConfig) {
		if logger != nil {
			c.logger = logger
		}
	}
}

// WithTuning lets the caller adjust Badger's options (memory table size,
// cache sizes for small boards). OpenBadger applies it first, then sets
// what the store relies on: SyncWrites on, conflict detection off (writers
// are serialized) and the slog logger.
func WithTuning(tune func(badger.Options) badger.Options) BadgerOption {
	return func(c *badgerConfig) { c.tune = tune }
}

// OpenBadger opens (or creates) the store in dir.
func OpenBadger(dir string, opts ...BadgerOption) (*Badger, error) {
	cfg := badgerConfig{logger: slog.Default(), indexed: DefaultIndexedKinds}
	for _, o := range opts {
		o(&cfg)
	}
	// Badger's defaults (five 64 MiB memory tables, a 256 MiB block cache)
	// are sized for a database server: they were a third of the hub's
	// memory at 10,000 nodes, whose objects take some tens of MiB. The
	// indexed kinds are read from memory, so the block cache serves only
	// the others (events, tokens, credentials) and stays small.
	// Values stay in the LSM tree (BenchmarkBadgerFleetRewrite has the
	// other layout, and why it is not this one), so the value log holds
	// next to nothing: a 64 MiB file, not Badger's sparse 1 GiB one.
	bopts := badger.DefaultOptions(dir).
		WithValueLogFileSize(64 << 20).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumCompactors(2).
		WithBlockCacheSize(8 << 20)
	if cfg.tune != nil {
		bopts = cfg.tune(bopts)
	}
	bopts = bopts.
		WithSyncWrites(true).
		// Update serializes writers, so Badger need not track conflicts.
		WithDetectConflicts(false).
		WithLogger(badgerlog.New(cfg.logger.With("component", "badger", "dir", dir)))
	if cfg.guard == nil {
		cfg.guard = diskguard.New(0, dir)
	}
	if removed, err := badgerdir.RemoveUnborn(dir); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	} else if len(removed) > 0 {
		cfg.logger.Warn("hub store: removed empty log files a crash left", "dir", dir, "files", removed)
	}
	readOnly, err := diskguard.StartReadOnly(cfg.guard, dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: hub store: %w", dir, err)
	}
	if readOnly {
		free, reserve := cfg.guard.State()
		cfg.logger.Warn("hub store: disk full; opening read-only until there is room",
			"dir", dir, "free", free, "reserve", reserve)
	}
	db, err := badger.Open(bopts.WithReadOnly(readOnly))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	b := &Badger{db: db, opts: bopts, guard: cfg.guard, log: cfg.logger,
		codec: cfg.codec, index: newIndex(cfg.indexed)}
	b.readOnly.Store(readOnly)
	var version uint64
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(versionKey())
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != versionSize {
				return fmt.Errorf("%s holds %d bytes, want %d", metaVersion, len(v), versionSize)
			}
			version = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open store %s: read version: %w", dir, err), db.Close())
	}
	b.version.Store(version)
	if err := b.loadIndex(); err != nil {
		return nil, errors.Join(fmt.Errorf("open store %s: %w", dir, err), db.Close())
	}
	return b, nil
}

// loadIndex reads the records of the indexed kinds into memory.
func (b *Badger) loadIndex() error {
	return b.db.View(func(txn *badger.Txn) error {
		tx := &badgerTx{txn: txn, codec: b.codec, index: b.index, state: b.index.state.Load()}
		for kind := range b.index.kinds {
			recs, err := tx.badgerList(kind, "")
			if err != nil {
				return fmt.Errorf("load %s: %w", kind, err)
			}
			for _, r := range recs {
				b.index.load(&entry{key: r.Key, version: r.Version, value: r.Value})
			}
		}
		return nil
	})
}

// View runs fn in a read-only transaction over committed state. Views run
// concurrently with each other and with Update.
func (b *Badger) View(fn func(Tx) error) error {
	if !b.gate.enter() {
		return fmt.Errorf("view: %w", ErrClosed)
	}
	defer b.gate.leave()
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.db == nil {
		return fmt.Errorf("view: %w", errReopenFailed)
	}
	state := b.index.state.Load()
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	return fn(&badgerTx{txn: txn, codec: b.codec, index: b.index, state: state})
}

// Update runs fn in a read-write transaction and commits it, synced to
// disk, when fn returns nil and every write in it succeeded (a write that
// failed fails the Update even if fn ignored its error; a Delete of a
// missing key is not a failed write). Each Put and each Delete takes the
// next version. Writers are serialized: fn must not call Update.
func (b *Badger) Update(fn func(Tx) error) error {
	if !b.gate.enter() {
		return fmt.Errorf("update: %w", ErrClosed)
	}
	defer b.gate.leave()
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	if b.db == nil {
		return fmt.Errorf("update: %w", errReopenFailed)
	}

	// A read-only Badger refuses write transactions; the writes are
	// refused at commit instead, with the free space.
	txn := b.db.NewTransaction(!b.readOnly.Load())
	defer txn.Discard()
	tx := &badgerTx{txn: txn, codec: b.codec, index: b.index, state: b.index.state.Load(),
		log: &writeLog{version: b.version.Load()}, changes: map[Key]*entry{},
		tally: diskguard.Tally{Threshold: int(b.opts.ValueThreshold)}}
	if b.readOnly.Load() {
		tx.refuse = b.readOnlyErr(0)
	}
	if err := fn(tx); err != nil {
		tx.log.rollback()
		return err
	}
	if err := b.commit(tx); err != nil {
		tx.log.rollback()
		return err
	}
	return nil
}

func (b *Badger) commit(tx *badgerTx) error {
	if tx.log.err != nil {
		return fmt.Errorf("update: a write failed: %w", tx.log.err)
	}
	if len(tx.log.changes) == 0 {
		return nil
	}
	if err := b.admit(tx); err != nil {
		return err
	}
	v := make([]byte, versionSize)
	binary.BigEndian.PutUint64(v, tx.log.version)
	if err := tx.txn.Set(versionKey(), v); err != nil {
		return wrapTxnErr("update: write version", err)
	}
	if err := tx.txn.Commit(); err != nil {
		return wrapTxnErr("update: commit", err)
	}
	// The index before the version, so that a View begun after Version
	// returned a version sees its commit (Store.Version).
	b.index.commit(tx.state, tx.changes)
	b.version.Store(tx.log.version)
	b.watchers.publish(tx.log.events())
	return nil
}

// admit asks the guard for room for the transaction's writes, the
// version key included.
func (b *Badger) admit(tx *badgerTx) error {
	tx.tally.Entry(len(metaVersion), versionSize)
	cost := tx.tally.Cost()
	if b.readOnly.Load() {
		return b.readOnlyErr(cost)
	}
	if err := b.guard.Admit(cost); err != nil {
		return fmt.Errorf("hub store: %w", err)
	}
	return nil
}

// readOnlyErr is the refusal of a write of cost while the store is open
// read-only.
func (b *Badger) readOnlyErr(cost int64) error {
	free, reserve := b.guard.State()
	return fmt.Errorf("hub store: %w", &diskguard.FullError{Free: free, Reserve: reserve, Need: max(cost, reserve-free)})
}

// wrapTxnErr adds ErrTooBig to Badger's "too big" error.
func wrapTxnErr(what string, err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("%s: %w: %w", what, ErrTooBig, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Watch delivers committed changes to kinds (all kinds when none are
// given) until ctx ends or the store closes.
func (b *Badger) Watch(ctx context.Context, kinds ...string) <-chan Event {
	return b.watchers.add(ctx, kinds)
}

// Version returns the latest committed resource version.
func (b *Badger) Version() uint64 { return b.version.Load() }

// Close waits for the calls in flight, closes every watcher and closes
// the database. Later calls return ErrClosed.
func (b *Badger) Close() error {
	if !b.gate.close() {
		return fmt.Errorf("close: %w", ErrClosed)
	}
	b.watchers.close()
	b.dbMu.Lock()
	defer b.dbMu.Unlock()
	if b.db == nil {
		return nil
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// RunSpaceCheck checks the free space every interval until ctx ends, when
// it returns nil (an error wrapping ErrClosed once the store is closed).
// It logs when the store starts and stops refusing writes for a full
// disk, and reopens a store that opened read-only for writing once there
// is room. Writes need no check to resume: the guard measures again by
// itself. The hub runs it in a goroutine it owns.
func (b *Badger) RunSpaceCheck(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	full := b.readOnly.Load()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !b.gate.enter() {
			return fmt.Errorf("space check: %w", ErrClosed)
		}
		full = b.checkSpace(full)
		b.gate.leave()
	}
}

// checkSpace is one round of RunSpaceCheck; full is whether the last one
// found the disk full, and it returns whether this one did.
func (b *Badger) checkSpace(full bool) bool {
	if err := b.guard.Check(); err != nil {
		b.log.Warn("hub store: cannot check the free space", "err", err)
		return full
	}
	if b.readOnly.Load() && b.guard.Room() >= 0 {
		if err := b.reopen(); err != nil {
			b.log.Error("hub store: reopen for writing", "err", err)
		}
	}
	free, reserve := b.guard.State()
	now := b.readOnly.Load() || b.guard.Full()
	switch {
	case now && !full:
		b.log.Warn("hub store: disk full; refusing writes until there is room", "free", free, "reserve", reserve)
	case !now && full:
		b.log.Info("hub store: disk has room again; taking writes", "free", free, "reserve", reserve)
	}
	return now
}

// errReopenFailed is wrapped by every call after a reopen for writing
// failed and the store could not open read-only again either.
var errReopenFailed = fmt.Errorf("the store could not be reopened: %w", ErrClosed)

// reopen swaps the read-only database for one open for writing, once no
// call is using it (it retries rather than wait, so that a View nested in
// another call cannot deadlock with it). If Badger cannot open for
// writing, the store reopens read-only.
func (b *Badger) reopen() error {
	deadline := time.Now().Add(2 * time.Second)
	for !b.dbMu.TryLock() {
		if time.Now().After(deadline) {
			return errors.New("the store stayed busy; trying again at the next check")
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer b.dbMu.Unlock()
	if b.db != nil {
		if err := b.db.Close(); err != nil {
			return fmt.Errorf("close the read-only store: %w", err)
		}
		b.db = nil
	}
	db, err := badger.Open(b.opts.WithReadOnly(false))
	if err != nil {
		ro, rerr := badger.Open(b.opts.WithReadOnly(true))
		if rerr != nil {
			// Nothing to serve reads from: calls fail with ErrClosed.
			b.db = nil
			return fmt.Errorf("open for writing: %w; and read-only again: %w", err, rerr)
		}
		b.db = ro
		return fmt.Errorf("open for writing: %w", err)
	}
	b.db = db
	b.readOnly.Store(false)
	b.log.Info("hub store: reopened for writing", "dir", b.opts.Dir)
	return nil
}

// gcDiscardRatio is the share of a value-log file that must be garbage
// before GC rewrites it.
const gcDiscardRatio = 0.5

// RunGC collects value-log garbage every interval until ctx ends, when it
// returns nil. It returns an error wrapping ErrClosed once the store is
// closed, and any unexpected GC error. The hub runs it in a goroutine it
// owns.
func (b *Badger) RunGC(ctx context.Context, interval time.Duration) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if err := b.gcRound(ctx); err != nil {
			return err
		}
	}
}

// gcRound rewrites value-log files while there are any worth rewriting.
func (b *Badger) gcRound(ctx context.Context) error {
	if !b.gate.enter() {
		return fmt.Errorf("value log gc: %w", ErrClosed)
	}
	defer b.gate.leave()
	b.dbMu.RLock()
	defer b.dbMu.RUnlock()
	for ctx.Err() == nil && b.db != nil {
		// A rewrite moves a file's live values (at most half of it) through
		// the write path; it waits until there is room for that.
		if b.readOnly.Load() || b.guard.Admit(b.opts.ValueLogFileSize) != nil {
			return nil
		}
		err := b.db.RunValueLogGC(gcDiscardRatio)
		switch {
		case err == nil:
			continue // a file was rewritten; there may be more
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return nil
		default:
			return fmt.Errorf("value log gc: %w", err)
		}
	}
	return nil
}

// badgerTx adapts a Badger transaction, and reads the indexed kinds from
// one committed in-memory state with the transaction's own changes over
// it. log and changes are nil in a read-only one. Like the Badger
// transaction under it, it is not safe for concurrent use.
type badgerTx struct {
	txn   *badger.Txn
	log   *writeLog
	codec ValueCodec
	index *index
	state *indexState
	// changes are this transaction's writes to indexed kinds (a nil entry
	// deletes its key), published to the index at commit.
	changes map[Key]*entry
	// tally adds up the bytes the writes take, for the disk guard.
	tally diskguard.Tally
	// refuse, if set, fails every write: the store is open read-only.
	refuse error
}

// open decodes a stored value: the version, then the JSON, opened by the
// codec if there is one.
func (tx *badgerTx) open(key Key, bkey, v []byte) (Record, error) {
	rec, err := decodeValue(key, v)
	if err != nil || tx.codec == nil {
		return rec, err
	}
	if rec.Value, err = tx.codec.Open(key.Kind, bkey, rec.Value); err != nil {
		return Record{}, fmt.Errorf("open %s: %w", key, err)
	}
	return rec, nil
}

func (tx *badgerTx) Get(key Key) (Record, error) {
	k, err := objectKey(key)
	if err != nil {
		return Record{}, fmt.Errorf("get: %w", err)
	}
	if tx.index.holds(key.Kind) {
		e, ok := tx.lookup(key)
		if !ok {
			return Record{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
		}
		return e.record(), nil
	}
	item, err := tx.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Record{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("get %s: %w", key, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return Record{}, fmt.Errorf("get %s: read value: %w", key, err)
	}
	return tx.open(key, k, v)
}

// lookup finds an indexed key: the transaction's own change, else the
// committed state it reads.
func (tx *badgerTx) lookup(key Key) (*entry, bool) {
	if e, changed := tx.changes[key]; changed {
		return e, e != nil
	}
	return tx.state.get(key)
}

func (tx *badgerTx) List(kind, namespace string) ([]Record, error) {
	if err := validateScope(kind, namespace); err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	if !tx.index.holds(kind) {
		return tx.badgerList(kind, namespace)
	}
	entries := overlay(tx.state.list(kind, namespace), tx.changes, kind, namespace)
	out := make([]Record, len(entries))
	for i, e := range entries {
		out[i] = e.record()
	}
	return out, nil
}

// badgerList reads the records of kind in namespace from Badger.
func (tx *badgerTx) badgerList(kind, namespace string) ([]Record, error) {
	prefix := kindPrefix(kind)
	if namespace != "" {
		prefix = namespacePrefix(kind, namespace)
	}
	iopts := badger.DefaultIteratorOptions
	iopts.Prefix = prefix
	// Prefetching starts a goroutine per value; values are small and mostly
	// in the LSM tree, so reading them inline is faster.
	iopts.PrefetchValues = false
	it := tx.txn.NewIterator(iopts)
	defer it.Close()
	var out []Record
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		key, err := parseObjectKey(item.Key())
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", kind, err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, fmt.Errorf("list %s: read %s: %w", kind, key, err)
		}
		rec, err := tx.open(key, item.Key(), v)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", kind, err)
		}
		out = append(out, rec)
	}
	// Within one namespace, key order is name order. Across namespaces it
	// is not namespace order when a namespace holds a byte below '/'
	// ("dev-a" sorts before "dev/"), so sort.
	if !slices.IsSortedFunc(out, compareRecords) {
		slices.SortFunc(out, compareRecords)
	}
	return out, nil
}

func (tx *badgerTx) Put(obj api.Object) error { return tx.put(obj, 0) }

func (tx *badgerTx) PutTTL(obj api.Object, ttl time.Duration) error {
	if tx.log == nil {
		return fmt.Errorf("put %s: %w", KeyOf(obj), ErrReadOnly)
	}
	if err := checkTTL(KeyOf(obj), ttl); err != nil {
		return tx.log.fail(err)
	}
	if key := KeyOf(obj); tx.index.holds(key.Kind) {
		return tx.log.fail(fmt.Errorf("put %s with a TTL: %w", key, ErrIndexedTTL))
	}
	return tx.put(obj, ttl)
}

func (tx *badgerTx) put(obj api.Object, ttl time.Duration) error {
	if tx.log == nil {
		return fmt.Errorf("put %s: %w", KeyOf(obj), ErrReadOnly)
	}
	key, version, data, err := tx.log.encode(obj)
	if err != nil {
		return tx.log.fail(err)
	}
	k, err := objectKey(key)
	if err != nil {
		return tx.log.fail(fmt.Errorf("put: %w", err))
	}
	if tx.refuse != nil {
		return tx.log.fail(tx.refuse)
	}
	stored := data
	if tx.codec != nil {
		if stored, err = tx.codec.Seal(key.Kind, k, data); err != nil {
			return tx.log.fail(fmt.Errorf("put %s: seal: %w", key, err))
		}
	}
	e := badger.NewEntry(k, encodeValue(version, stored))
	if ttl > 0 {
		e.ExpiresAt = expiresAt(time.Now(), ttl)
	}
	if err := tx.txn.SetEntry(e); err != nil {
		return tx.log.fail(wrapTxnErr("put "+key.String(), err))
	}
	tx.tally.Entry(len(e.Key), len(e.Value))
	var old []byte
	if tx.index.holds(key.Kind) {
		if prev, ok := tx.lookup(key); ok {
			old = prev.value
		}
		tx.changes[key] = &entry{key: key, version: version, value: data}
	}
	tx.log.put(key, version, data, old)
	return nil
}

// expiresAt is Badger's expiry (Unix seconds) for a record written at now
// with ttl, rounded up: Badger has second resolution, and a record must not
// vanish before its ttl (it may outlive it by less than a second).
func expiresAt(now time.Time, ttl time.Duration) uint64 {
	at := now.Add(ttl)
	secs := at.Unix()
	if at.Nanosecond() > 0 {
		secs++
	}
	return uint64(secs)
}

func (tx *badgerTx) Delete(key Key) error {
	if tx.log == nil {
		return fmt.Errorf("delete %s: %w", key, ErrReadOnly)
	}
	k, err := objectKey(key)
	if err != nil {
		return tx.log.fail(fmt.Errorf("delete: %w", err))
	}
	// What is deleted goes with the event, for watchers to serve.
	var old []byte
	if tx.index.holds(key.Kind) {
		prev, ok := tx.lookup(key)
		if !ok {
			return fmt.Errorf("delete %s: %w", key, ErrNotFound)
		}
		old = prev.value
	} else {
		rec, err := tx.Get(key)
		if IsNotFound(err) {
			return fmt.Errorf("delete %s: %w", key, ErrNotFound)
		} else if err != nil {
			return tx.log.fail(fmt.Errorf("delete %s: %w", key, err))
		}
		old = rec.Value
	}
	if tx.refuse != nil {
		return tx.log.fail(tx.refuse)
	}
	if err := tx.txn.Delete(k); err != nil {
		return tx.log.fail(wrapTxnErr("delete "+key.String(), err))
	}
	tx.tally.Entry(len(k), 0)
	if tx.index.holds(key.Kind) {
		tx.changes[key] = nil
	}
	tx.log.remove(key, old)
	return nil
}
