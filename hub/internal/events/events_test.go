package events

import (
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func pull(seq uint64, at time.Time, msg string) Record {
	return Record{
		Object: api.ObjectReference{Kind: api.KindPod, Namespace: "default", Name: "web-1", UID: "u1", FieldPath: "spec.containers{web}"},
		Type:   api.EventWarning, Reason: "Failed", Message: msg, Time: at,
		Source: api.EventSource{Component: "edge-agent", Host: "n1"}, Seq: seq,
	}
}

func put(t *testing.T, st store.Store, rs ...Record) {
	t.Helper()
	if err := st.Update(func(tx store.Tx) error {
		for _, r := range rs {
			if err := Put(tx, r, time.Hour); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func list(t *testing.T, st store.Store) []*api.Event {
	t.Helper()
	var evs []*api.Event
	if err := st.View(func(tx store.Tx) error {
		var err error
		evs, err = store.List[api.Event](tx, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestRepeatsAreCounted: an image that cannot be pulled fails again and
// again; the store keeps one Event with a count, first and last time, as
// kubectl shows it, not one Event per attempt.
func TestRepeatsAreCounted(t *testing.T) {
	st := store.NewMemory()
	const msg = `Failed to pull image "reg/x:nope": not found`
	for i := range 1000 {
		put(t, st, pull(uint64(10+i), t0.Add(time.Duration(i)*time.Second), msg))
	}
	evs := list(t, st)
	if len(evs) != 1 {
		t.Fatalf("%d events for 1000 repeats of one", len(evs))
	}
	e := evs[0]
	if e.Count != 1000 || !e.FirstTimestamp.Equal(t0) || !e.LastTimestamp.Equal(t0.Add(999*time.Second)) {
		t.Fatalf("event = count %d, first %v, last %v", e.Count, e.FirstTimestamp, e.LastTimestamp)
	}
	// Another message, reason, object or node is another event.
	other := pull(2000, t0, "another error")
	onOther := pull(2001, t0, msg)
	onOther.Source.Host = "n2"
	hub := pull(0, t0, msg)
	hub.Source = api.EventSource{Component: "hub"}
	put(t, st, other, onOther, hub, hub)
	if evs := list(t, st); len(evs) != 4 {
		t.Fatalf("%d events, want 4", len(evs))
	}
}

// TestRedeliveryIsNotCounted: an agent resends what the broker did not
// acknowledge; a report numbered no higher than the last counted is the
// same report.
func TestRedeliveryIsNotCounted(t *testing.T) {
	st := store.NewMemory()
	put(t, st, pull(7, t0, "x"), pull(8, t0.Add(time.Second), "x"))
	put(t, st, pull(7, t0, "x"), pull(8, t0.Add(time.Second), "x")) // the same two again
	put(t, st, pull(9, t0.Add(2*time.Second), "x"))
	evs := list(t, st)
	if len(evs) != 1 || evs[0].Count != 3 {
		t.Fatalf("events = %+v, want one counted 3 times", evs)
	}
}
