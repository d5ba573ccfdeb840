// Package outbox is the agent's store-and-forward queue: every report the
// agent must deliver (events, metric samples) is appended to a bounded
// queue in the agent's Badger before anything is sent, and drained in
// order when the broker is reachable, each entry removed only after the
// broker acknowledged it. When the queue is full the oldest entries of the
// lowest class go first, and every drop is counted, never silent. The
// node's pod status, which is state rather than history, waits in a slot
// of its own that a newer report replaces and no bound drops (status.go).
// A crash at any moment loses nothing already appended.
package outbox

// Badger key layout (in the agent's store, beside package state's keys):
//
//	q/{seq, 8-byte big-endian}  → entry: 1 byte class, the topic kind, a 0
//	                              byte, then the payload (a complete wire
//	                              envelope)
//	qm/dropped/{class byte}     → uint64 big-endian, entries of that class
//	                              dropped so far
//	qm/appended/{class byte}    → uint64 big-endian, entries of that class
//	                              appended so far (so appended = delivered +
//	                              dropped + queued can be checked end to end)
//
// The queue's order is the order of seq, which is the envelope's sequence
// number, so draining in key order preserves what the agent reported, in
// the order it happened.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/flotilla-edge/flotilla/pkg/diskguard"
)

// Class ranks entries for dropping when the queue is full: the lowest
// class goes first, oldest first within a class.
type Class byte

// Classes, lowest value first.
const (
	// Telemetry can be lost without harm (metric samples).
	Telemetry Class = iota
	// Status is a full status report: a later one supersedes it. The
	// agent keeps its reports in the status slot now; the class remains
	// for those an older agent queued.
	Status
	// Event is a record of something that happened; dropped last.
	Event
	numClasses
)

func (c Class) String() string {
	switch c {
	case Telemetry:
		return "telemetry"
	case Status:
		return "status"
	case Event:
		return "event"
	}
	return fmt.Sprintf("Class(%d)", c)
}

// Entry is one queued report.
type Entry struct {
	Seq     uint64
	Class   Class
	Topic   string // the topic kind (status, events, metrics)
	Payload []byte
}

// Limits bound the queue.
type Limits struct {
	MaxEntries int
	MaxBytes   int64
}

// DefaultLimits keep about a day of reports of a typical board in under
// 64 MiB.
var DefaultLimits = Limits{MaxEntries: 100_000, MaxBytes: 64 << 20}

func entryKey(seq uint64) []byte {
	k := make([]byte, 2+8)
	copy(k, "q/")
	binary.BigEndian.PutUint64(k[2:], seq)
	return k
}

func seqOf(key []byte) uint64 { return binary.BigEndian.Uint64(key[2:]) }

var queuePrefix = []byte("q/")

func droppedKey(c Class) []byte  { return append([]byte("qm/dropped/"), byte(c)) }
func appendedKey(c Class) []byte { return append([]byte("qm/appended/"), byte(c)) }

// victimsPerCommit bounds the entries one write drops, well inside
// Badger's transaction bound for the agent's store (see Append).
const victimsPerCommit = 500

// ErrDropped is wrapped by Append's error when the new entry itself was
// dropped (and counted), because everything queued outranks it or the
// disk refused it (then the error wraps diskguard.ErrFull too): the entry
// is not queued, which a caller that must get it through (the pods'
// status, the heartbeat a metric batch carries) needs to know.
var ErrDropped = errors.New("dropped: the outbox is full")

// ErrTooLarge is returned for a single entry larger than the byte bound.
var ErrTooLarge = errors.New("entry larger than the outbox's byte bound")

// Outbox is the queue. It is safe for concurrent use.
type Outbox struct {
	st     backend
	limits Limits

	mu       sync.Mutex
	count    int
	bytes    int64
	dropped  [numClasses]uint64
	appended [numClasses]uint64
	// perClass indexes queued seqs by class, oldest first, so dropping is
	// cheap; rebuilt from disk on Open. Entries removed out of order stay
	// in these lists until they reach the front; sizes says what is live.
	perClass [numClasses][]uint64
	sizes    map[uint64]int64
	classes  map[uint64]Class
	notify   chan struct{}
	// status is the report waiting in the status slot (status.go).
	status *Entry
}

// Open loads the queue's bookkeeping from db.
func Open(db DB, limits Limits) (*Outbox, error) {
	return open(badgerBackend{db}, limits)
}

// NewMemory returns a queue kept in memory only, with the same bounds and
// drop policy: for the fleet simulator, which runs thousands of agents in
// one process. A board always uses Open.
func NewMemory(limits Limits) *Outbox {
	o, _ := open(newMemBackend(), limits) // an empty memory backend cannot fail
	return o
}

func open(st backend, limits Limits) (*Outbox, error) {
	if limits.MaxEntries <= 0 {
		limits.MaxEntries = DefaultLimits.MaxEntries
	}
	if limits.MaxBytes <= 0 {
		limits.MaxBytes = DefaultLimits.MaxBytes
	}
	o := &Outbox{st: st, limits: limits, sizes: map[uint64]int64{}, classes: map[uint64]Class{}, notify: make(chan struct{}, 1)}
	err := st.load(func(seq uint64, class Class, size int64) {
		if class >= numClasses {
			class = Telemetry
		}
		o.perClass[class] = append(o.perClass[class], seq)
		o.sizes[seq] = size
		o.classes[seq] = class
		o.count++
		o.bytes += size
	}, &o.dropped, &o.appended)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if err := o.loadStatus(); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	return o, nil
}

// Ready is signalled (without blocking) after every Append and SetStatus.
func (o *Outbox) Ready() <-chan struct{} { return o.notify }

// Append queues one entry durably. seq must increase with every call (the
// envelope's sequence number). If the queue would exceed its bounds, the
// oldest entries of the lowest class are dropped first and counted; when
// everything queued outranks the new entry, it is dropped itself, counted,
// and the error wraps ErrDropped. The byte bound is the smaller of
// Limits.MaxBytes and what the disk has room for (see maxBytes). An entry
// the disk refuses is dropped and counted, and the error wraps ErrDropped
// and diskguard.ErrFull: the outbox stops growing, the agent goes on.
func (o *Outbox) Append(e Entry) error {
	value := encodeEntry(e)
	size := int64(len(value))
	if size > o.limits.MaxBytes {
		return fmt.Errorf("append seq %d (%d bytes): %w", e.Seq, size, ErrTooLarge)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	maxBytes := o.maxBytes()
	var victims []uint64
	count, bytes := o.count+1, o.bytes+size
	cursor := [numClasses]int{}
	for count > o.limits.MaxEntries || bytes > maxBytes {
		seq, ok := o.oldestLowest(&cursor, e.Class)
		if !ok {
			break // only higher-class entries left: keep them, this one still fits the count
		}
		victims = append(victims, seq)
		count--
		bytes -= o.sizes[seq]
	}
	if count > o.limits.MaxEntries || bytes > maxBytes {
		// Everything queued outranks the new entry: drop the new one.
		dropped, appended := o.dropped, o.appended
		dropped[e.Class]++
		appended[e.Class]++
		if err := o.st.commit(nil, nil, dropped, appended); err != nil && !errors.Is(err, diskguard.ErrFull) {
			return fmt.Errorf("count dropped entries: %w", err)
		}
		// A full disk keeps the count in memory until the next write it
		// takes (every commit writes the counters).
		o.dropped, o.appended = dropped, appended
		return fmt.Errorf("append seq %d: %w", e.Seq, ErrDropped)
	}
	// A Badger transaction is bounded (its writes to 15 % of the store's
	// memtable, in bytes and in about 100-byte nodes): a large entry
	// evicting thousands of small ones drops them in steps first, each
	// step deleting and counting its share.
	for len(victims) > victimsPerCommit {
		step := victims[:victimsPerCommit]
		dropped := o.dropped
		for _, seq := range step {
			dropped[o.classes[seq]]++
		}
		if err := o.st.commit(nil, step, dropped, o.appended); err != nil {
			if errors.Is(err, diskguard.ErrFull) {
				return o.refused(e, err)
			}
			return fmt.Errorf("append seq %d: drop %d older entries: %w", e.Seq, len(step), err)
		}
		o.dropped = dropped
		for _, seq := range step {
			o.forget(seq)
		}
		victims = victims[victimsPerCommit:]
	}
	dropped, appended := o.dropped, o.appended
	for _, seq := range victims {
		dropped[o.classes[seq]]++
	}
	appended[e.Class]++
	if err := o.st.commit(&stored{seq: e.Seq, value: value}, victims, dropped, appended); err != nil {
		if errors.Is(err, diskguard.ErrFull) {
			return o.refused(e, err)
		}
		return fmt.Errorf("append seq %d: %w", e.Seq, err)
	}
	o.appended = appended
	for _, seq := range victims {
		o.forget(seq)
	}
	o.dropped = dropped
	o.perClass[e.Class] = append(o.perClass[e.Class], e.Seq)
	o.sizes[e.Seq] = size
	o.classes[e.Seq] = e.Class
	o.count++
	o.bytes += size
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return nil
}

// maxBytes is the byte bound in force: Limits.MaxBytes, or less when the
// disk has room for less. Entries under the store's value threshold cost
// diskguard.Cost(size, 0), 3.5 times their size, in what the disk must
// hold for them (their log, the table a flush makes of it, a compaction's
// copy); the bound takes that rate for all, so it errs on the small side
// for large entries. The caller holds o.mu.
func (o *Outbox) maxBytes() int64 {
	room := o.st.room()
	if room >= o.limits.MaxBytes*4 {
		return o.limits.MaxBytes
	}
	allow := max(room, 0) * 2 / 7
	return min(o.limits.MaxBytes, o.bytes+allow)
}

// refused counts an entry the disk refused as appended and dropped; the
// counters reach the disk with the next write it takes. The caller holds
// o.mu.
func (o *Outbox) refused(e Entry, err error) error {
	o.dropped[e.Class]++
	o.appended[e.Class]++
	return fmt.Errorf("append seq %d: %w: %w", e.Seq, ErrDropped, err)
}

// oldestLowest returns the oldest queued seq of the lowest class not above
// limit, skipping ones already chosen (cursor). The caller holds o.mu.
func (o *Outbox) oldestLowest(cursor *[numClasses]int, limit Class) (uint64, bool) {
	for c := Class(0); c <= limit && c < numClasses; c++ {
		list := o.perClass[c]
		for cursor[c] < len(list) {
			seq := list[cursor[c]]
			cursor[c]++
			if _, live := o.sizes[seq]; live {
				return seq, true
			}
		}
	}
	return 0, false
}

// forget removes seq from the bookkeeping. The caller holds o.mu.
func (o *Outbox) forget(seq uint64) {
	size, ok := o.sizes[seq]
	if !ok {
		return
	}
	delete(o.sizes, seq)
	delete(o.classes, seq)
	o.count--
	o.bytes -= size
	// Entries leave mostly from the front (acks in order, drops oldest
	// first): trim dead seqs off the fronts, copying only now and then.
	for c := range o.perClass {
		list := o.perClass[c]
		i := 0
		for i < len(list) {
			if _, live := o.sizes[list[i]]; live {
				break
			}
			i++
		}
		if i > 0 {
			list = list[i:]
			if cap(list) > 1024 && len(list) < cap(list)/4 {
				list = append([]uint64(nil), list...)
			}
			o.perClass[c] = list
		}
	}
}

// Peek returns up to n of the oldest entries, in order.
func (o *Outbox) Peek(n int) ([]Entry, error) {
	var out []Entry
	err := o.st.scan(o.oldest(), n, func(seq uint64, v []byte) error {
		e, err := decodeEntry(seq, v)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("peek outbox: %w", err)
	}
	return out, nil
}

// oldest returns the lowest queued seq (0 when empty).
func (o *Outbox) oldest() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var low uint64
	for c := range o.perClass {
		for _, seq := range o.perClass[c] {
			if _, live := o.sizes[seq]; live {
				if low == 0 || seq < low {
					low = seq
				}
				break
			}
		}
	}
	return low
}

// encodeEntry is an entry's stored value: its class, its topic kind, a 0
// byte, then the payload.
func encodeEntry(e Entry) []byte {
	value := make([]byte, 1+len(e.Topic)+1+len(e.Payload))
	value[0] = byte(e.Class)
	copy(value[1:], e.Topic)
	value[1+len(e.Topic)] = 0
	copy(value[2+len(e.Topic):], e.Payload)
	return value
}

func decodeEntry(seq uint64, v []byte) (Entry, error) {
	e := Entry{Seq: seq}
	if len(v) < 2 {
		return e, fmt.Errorf("outbox entry %d is %d bytes", seq, len(v))
	}
	e.Class = Class(v[0])
	rest := v[1:]
	for i, b := range rest {
		if b == 0 {
			e.Topic = string(rest[:i])
			e.Payload = append([]byte(nil), rest[i+1:]...)
			return e, nil
		}
	}
	return e, fmt.Errorf("outbox entry %d has no topic terminator", seq)
}

// Ack removes delivered entries.
func (o *Outbox) Ack(seqs ...uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.st.remove(seqs); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	for _, seq := range seqs {
		o.forget(seq)
	}
	return nil
}

// Len returns the number of queued entries and their bytes.
func (o *Outbox) Len() (int, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.count, o.bytes
}

// Dropped returns how many entries were dropped since the store was made.
func (o *Outbox) Dropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var n uint64
	for _, d := range o.dropped {
		n += d
	}
	return n
}

// AppendedByClass returns how many entries of each class were ever
// appended, by class name.
func (o *Outbox) AppendedByClass() map[string]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]uint64{}
	for c, n := range o.appended {
		if n > 0 {
			out[Class(c).String()] = n
		}
	}
	return out
}

// DroppedByClass returns the drops of each class, by class name.
func (o *Outbox) DroppedByClass() map[string]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]uint64{}
	for c, d := range o.dropped {
		if d > 0 {
			out[Class(c).String()] = d
		}
	}
	return out
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}
