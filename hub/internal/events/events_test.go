package events

import (
	"errors"
	"slices"
	"strings"
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

// TestWhereAnEventLives: an event about a namespaced object lives in the
// object's namespace, one about a cluster-scoped object (a node) in
// "default", as in Kubernetes; its name is the object's name and a hash
// of everything that makes it the same event.
func TestWhereAnEventLives(t *testing.T) {
	if ns := Namespace(api.ObjectReference{Kind: api.KindPod, Namespace: "prod", Name: "p"}); ns != "prod" {
		t.Errorf("pod event in %q, want prod", ns)
	}
	if ns := Namespace(api.ObjectReference{Kind: api.KindNode, Name: "n1"}); ns != api.DefaultNamespace {
		t.Errorf("node event in %q, want %s", ns, api.DefaultNamespace)
	}
	base := pull(1, t0, "x")
	name := Name(base)
	if !strings.HasPrefix(name, "web-1.") || len(name) != len("web-1.")+16 {
		t.Fatalf("name %q", name)
	}
	// Neither its time nor its sequence number makes another event.
	later := pull(2, t0.Add(time.Hour), "x")
	if Name(later) != name {
		t.Errorf("a repeat got another name: %q, %q", Name(later), name)
	}
	for field, change := range map[string]func(r *Record){
		"kind":      func(r *Record) { r.Object.Kind = api.KindNode },
		"namespace": func(r *Record) { r.Object.Namespace = "other" },
		"uid":       func(r *Record) { r.Object.UID = "u2" },
		"fieldPath": func(r *Record) { r.Object.FieldPath = "spec.containers{other}" },
		"type":      func(r *Record) { r.Type = api.EventNormal },
		"reason":    func(r *Record) { r.Reason = "BackOff" },
		"message":   func(r *Record) { r.Message = "y" },
		"component": func(r *Record) { r.Source.Component = "hub" },
		"host":      func(r *Record) { r.Source.Host = "n2" },
		// Fields that run together must not hash the same.
		"boundary": func(r *Record) { r.Reason, r.Message = "Failedx", "" },
	} {
		r := base
		change(&r)
		if Name(r) == name {
			t.Errorf("changing %s kept the name %q", field, name)
		}
	}
}

// recordingTx records the TTLs events are written with.
type recordingTx struct {
	store.Tx
	ttls []time.Duration
}

func (r *recordingTx) PutTTL(obj api.Object, ttl time.Duration) error {
	r.ttls = append(r.ttls, ttl)
	return r.Tx.PutTTL(obj, ttl)
}

// TestTTLCountsFromTheLastOccurrence: each occurrence writes the event
// again with its TTL, so that it expires a TTL after it last happened;
// no TTL is DefaultTTL.
func TestTTLCountsFromTheLastOccurrence(t *testing.T) {
	st := store.NewMemory()
	var ttls []time.Duration
	for i, ttl := range []time.Duration{0, 5 * time.Minute, -time.Second} {
		if err := st.Update(func(tx store.Tx) error {
			rt := &recordingTx{Tx: tx}
			err := Put(rt, pull(uint64(i+1), t0.Add(time.Duration(i)*time.Second), "x"), ttl)
			ttls = append(ttls, rt.ttls...)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if want := []time.Duration{DefaultTTL, 5 * time.Minute, DefaultTTL}; !slices.Equal(ttls, want) {
		t.Fatalf("written with TTLs %v, want %v", ttls, want)
	}
	if evs := list(t, st); len(evs) != 1 || evs[0].Count != 3 {
		t.Fatalf("events %+v", evs)
	}
}

// TestLateOccurrencesKeepTheSpan: an occurrence reported late (an agent
// draining its outbox) widens the first/last span instead of moving
// the last time back.
func TestLateOccurrencesKeepTheSpan(t *testing.T) {
	st := store.NewMemory()
	put(t, st, pull(5, t0.Add(time.Minute), "x"))
	put(t, st, pull(6, t0, "x"))                     // happened before the first one stored
	put(t, st, pull(7, t0.Add(30*time.Second), "x")) // in between
	e := list(t, st)[0]
	if e.Count != 3 || !e.FirstTimestamp.Equal(t0) || !e.LastTimestamp.Equal(t0.Add(time.Minute)) {
		t.Fatalf("count %d, first %v, last %v", e.Count, e.FirstTimestamp, e.LastTimestamp)
	}
}

// TestHubEventsAreCountedEachTime: the hub's own events carry no
// sequence number, so each one counts and none is taken for a
// redelivery; an agent's carries the newest number counted.
func TestHubEventsAreCountedEachTime(t *testing.T) {
	st := store.NewMemory()
	hub := Record{Object: api.ObjectReference{Kind: api.KindNode, Name: "n1"}, Type: api.EventWarning, Reason: "NodeNotReady",
		Message: "gone", Time: t0, Source: api.EventSource{Component: "hub"}}
	put(t, st, hub, hub, hub)
	put(t, st, pull(41, t0, "x"), pull(40, t0, "x"))
	for _, e := range list(t, st) {
		switch e.Source.Component {
		case "hub":
			if e.Count != 3 || e.Annotations[AnnotationSeq] != "" || e.Namespace != api.DefaultNamespace {
				t.Errorf("hub event: count %d, annotations %v, namespace %q", e.Count, e.Annotations, e.Namespace)
			}
		default:
			if e.Count != 1 || e.Annotations[AnnotationSeq] != "41" {
				t.Errorf("agent event: count %d, annotations %v", e.Count, e.Annotations)
			}
		}
	}
}

// failingTx is a store whose reads fail.
type failingTx struct{ store.Tx }

func (failingTx) Get(store.Key) (store.Record, error) {
	return store.Record{}, errors.New("disk on fire")
}

// TestReadErrorsAreReturnedWithTheEvent: a read that fails for another
// reason than a missing event is returned, naming the event, and nothing
// is written.
func TestReadErrorsAreReturnedWithTheEvent(t *testing.T) {
	st := store.NewMemory()
	r := pull(1, t0, "x")
	err := st.Update(func(tx store.Tx) error { return Put(failingTx{tx}, r, time.Hour) })
	if err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "default/"+Name(r)) {
		t.Fatalf("Put: %v", err)
	}
	if evs := list(t, st); len(evs) != 0 {
		t.Fatalf("%d events written", len(evs))
	}
}
