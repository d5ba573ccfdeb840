package outbox

// The status slot. A pod status report is state, not history: only the
// newest one means anything, so it does not queue. It waits in a slot of
// its own beside the queue, which a newer report replaces, which the
// queue's bounds never touch, and which the agent sends before the queue.
// So the node's current pod status reaches the hub first after every
// reconnect, whatever a full queue of events dropped.
//
// Badger key (beside the queue's, see outbox.go):
//
//	qs/status → the report's seq, 8 bytes big-endian, then the entry as
//	            the queue stores it (encodeEntry)

import (
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

var statusKey = []byte("qs/status")

// slotStore keeps the status slot; both backends implement it.
type slotStore interface {
	// getSlot returns the stored slot, or nil.
	getSlot() ([]byte, error)
	// putSlot replaces the slot.
	putSlot(v []byte) error
	// deleteSlot empties the slot.
	deleteSlot() error
}

// loadStatus reads the slot into memory; open calls it.
func (o *Outbox) loadStatus() error {
	v, err := o.st.getSlot()
	if err != nil || v == nil {
		return err
	}
	if len(v) < 8 {
		return fmt.Errorf("status slot is %d bytes", len(v))
	}
	e, err := decodeEntry(binary.BigEndian.Uint64(v), v[8:])
	if err != nil {
		return fmt.Errorf("status slot: %w", err)
	}
	o.status = &e
	return nil
}

// SetStatus puts e, the node's newest pod status report, in the status
// slot, durably, replacing the report waiting there; a report older than
// the one waiting (a lower seq) changes nothing. Nothing is counted as
// appended or dropped: a replaced report is superseded, not lost.
func (o *Outbox) SetStatus(e Entry) error {
	value := make([]byte, 8, 8+2+len(e.Topic)+len(e.Payload))
	binary.BigEndian.PutUint64(value, e.Seq)
	value = append(value, encodeEntry(e)...)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status != nil && o.status.Seq > e.Seq {
		return nil
	}
	if err := o.st.putSlot(value); err != nil {
		return fmt.Errorf("set status seq %d: %w", e.Seq, err)
	}
	kept := e
	kept.Payload = append([]byte(nil), e.Payload...)
	o.status = &kept
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return nil
}

// Status returns the report waiting in the status slot, if any.
func (o *Outbox) Status() (Entry, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status == nil {
		return Entry{}, false
	}
	return *o.status, true
}

// AckStatus empties the status slot once the report with seq was
// delivered, unless a newer one replaced it meanwhile.
func (o *Outbox) AckStatus(seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.status == nil || o.status.Seq != seq {
		return nil
	}
	if err := o.st.deleteSlot(); err != nil {
		return fmt.Errorf("ack status seq %d: %w", seq, err)
	}
	o.status = nil
	return nil
}

func (b badgerBackend) getSlot() ([]byte, error) {
	var v []byte
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(statusKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	return v, err
}

func (b badgerBackend) putSlot(v []byte) error {
	t := b.db.Tally()
	t.Entry(len(statusKey), len(v))
	return b.db.Update(t, false, func(txn *badger.Txn) error { return txn.Set(statusKey, v) })
}

// deleteSlot is bookkeeping that must go on on a full disk: it frees
// space.
func (b badgerBackend) deleteSlot() error {
	t := b.db.Tally()
	t.Entry(len(statusKey), 0)
	return b.db.Update(t, true, func(txn *badger.Txn) error { return txn.Delete(statusKey) })
}

func (m *memBackend) getSlot() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.slot, nil
}

func (m *memBackend) putSlot(v []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slot = append([]byte(nil), v...)
	return nil
}

func (m *memBackend) deleteSlot() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.slot = nil
	return nil
}
