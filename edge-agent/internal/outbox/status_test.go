package outbox

import (
	"bytes"
	"testing"
)

// TestStatusSlotOutlivesAFullQueue: the status slot holds the newest pod
// status report whatever the queue's bounds do: a queue full of events
// neither drops it nor is displaced by it, a newer report replaces it, an
// older one does not, and acknowledging a report that was replaced
// meanwhile keeps the newer one.
func TestStatusSlotOutlivesAFullQueue(t *testing.T) {
	both(t, Limits{MaxEntries: 5, MaxBytes: 1 << 20}, func(t *testing.T, o *Outbox) {
		for i := uint64(1); i <= 5; i++ {
			if err := o.Append(entry(i, Event)); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := o.Status(); ok {
			t.Fatal("an empty slot holds a report")
		}
		if err := o.SetStatus(entry(6, Status)); err != nil {
			t.Fatal(err)
		}
		for i := uint64(7); i <= 9; i++ { // events keep coming, past the bound
			if err := o.Append(entry(i, Event)); err != nil {
				t.Fatal(err)
			}
		}
		if e, ok := o.Status(); !ok || e.Seq != 6 || !bytes.Equal(e.Payload, entry(6, Status).Payload) {
			t.Fatalf("slot = %+v, %v", e, ok)
		}
		if n, _ := o.Len(); n != 5 {
			t.Fatalf("queue holds %d, want its bound of 5: the slot is not in it", n)
		}
		if by := o.DroppedByClass(); by["status"] != 0 || by["event"] != 3 {
			t.Fatalf("dropped %v", by)
		}
		if err := o.SetStatus(entry(11, Status)); err != nil {
			t.Fatal(err)
		}
		if err := o.SetStatus(entry(10, Status)); err != nil { // older: ignored
			t.Fatal(err)
		}
		if err := o.AckStatus(6); err != nil { // delivered, but replaced since
			t.Fatal(err)
		}
		if e, ok := o.Status(); !ok || e.Seq != 11 {
			t.Fatalf("slot = %+v, %v; want seq 11", e, ok)
		}
		if err := o.AckStatus(11); err != nil {
			t.Fatal(err)
		}
		if _, ok := o.Status(); ok {
			t.Fatal("an acknowledged report stays in the slot")
		}
	})
}

// TestStatusSlotSurvivesARestart: the slot is on disk with the queue.
func TestStatusSlotSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	reopen := func(use func(o *Outbox)) {
		t.Helper()
		db := openDB(t, dir)
		defer db.Close()
		o, err := Open(Unguarded(db), DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		use(o)
	}
	reopen(func(o *Outbox) {
		if err := o.SetStatus(entry(3, Status)); err != nil {
			t.Fatal(err)
		}
	})
	reopen(func(o *Outbox) {
		if e, ok := o.Status(); !ok || e.Seq != 3 || e.Topic != "status" {
			t.Fatalf("after a restart the slot holds %+v, %v", e, ok)
		}
		if err := o.AckStatus(3); err != nil {
			t.Fatal(err)
		}
	})
	reopen(func(o *Outbox) {
		if _, ok := o.Status(); ok {
			t.Fatal("an acknowledged report came back after a restart")
		}
	})
}
