package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// thing is a test object whose kind the tests choose freely.
// kindedThing is a thing whose type names its kind, Thing, for the
// typed helpers.
type kindedThing struct{ thing }

func (*kindedThing) StoreKind() string { return "Thing" }

type thing struct {
	api.TypeMeta   `json:",inline"`
	api.ObjectMeta `json:"metadata"`
	Spec           thingSpec `json:"spec"`
}

type thingSpec struct {
	Count int    `json:"count,omitempty"`
	Data  string `json:"data,omitempty"`
}

func newThing(kind, namespace, name string) *thing {
	return &thing{
		TypeMeta:   api.TypeMeta{APIVersion: "test/v1", Kind: kind},
		ObjectMeta: api.ObjectMeta{Namespace: namespace, Name: name},
	}
}

var errBoom = errors.New("boom")

// put stores objs in one transaction and fails the test on error.
func put(t testing.TB, s Store, objs ...api.Object) {
	t.Helper()
	err := s.Update(func(tx Tx) error {
		for _, o := range objs {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
}

// get reads one record in a View.
func get(s Store, key Key) (Record, error) {
	var rec Record
	err := s.View(func(tx Tx) error {
		var err error
		rec, err = tx.Get(key)
		return err
	})
	return rec, err
}

func list(t testing.TB, s Store, kind, namespace string) []Record {
	t.Helper()
	var recs []Record
	err := s.View(func(tx Tx) error {
		var err error
		recs, err = tx.List(kind, namespace)
		return err
	})
	if err != nil {
		t.Fatalf("list %s in %q: %v", kind, namespace, err)
	}
	return recs
}

func names(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Key.Namespace + "/" + r.Key.Name
	}
	return out
}

func rv(o api.Object) uint64 {
	v, err := strconv.ParseUint(o.GetObjectMeta().ResourceVersion, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("resourceVersion %q: %v", o.GetObjectMeta().ResourceVersion, err))
	}
	return v
}

// change is what an event says happened, without the objects.
type change struct {
	Type    EventType
	Key     Key
	Version uint64
}

func (ev Event) change() change { return change{ev.Type, ev.Key, ev.Version} }

// recv waits for one event.
func recv(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return Event{}
}

// expectNoEvent checks that nothing is pending. Delivery happens inside
// Update, so anything committed is already in the channel.
func expectNoEvent(t *testing.T, ch <-chan Event) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		t.Fatalf("unexpected event %+v (open %v)", ev, ok)
	default:
	}
}

func waitClosed(t *testing.T, ch <-chan Event) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed within 5s")
		}
	}
}

// testStore is the contract every Store implementation passes. open returns
// a new, empty store that the test may close.
func testStore(t *testing.T, open func(t *testing.T) Store) {
	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		pod := &api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
			ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web", Labels: map[string]string{"app": "web"}}}
		put(t, s, pod)
		if got := rv(pod); got != s.Version() || got == 0 {
			t.Fatalf("resourceVersion %d, store version %d", got, s.Version())
		}
		rec, err := get(s, KeyOf(pod))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Key != KeyOf(pod) || rec.Version != rv(pod) {
			t.Fatalf("record %v@%d, want %v@%d", rec.Key, rec.Version, KeyOf(pod), rv(pod))
		}
		var back *api.Pod
		err = s.View(func(tx Tx) error {
			back, err = Get[api.Pod](tx, "default", "web")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if back.ResourceVersion != pod.ResourceVersion || back.Labels["app"] != "web" || back.Kind != api.KindPod {
			t.Fatalf("decoded %+v", back)
		}
		_, err = get(s, Key{Kind: api.KindPod, Namespace: "default", Name: "nope"})
		if !IsNotFound(err) {
			t.Fatalf("get missing: %v, want ErrNotFound", err)
		}
	})

	t.Run("VersionsIncrease", func(t *testing.T) {
		s := open(t)
		var last uint64
		obj := newThing("Thing", "ns", "same")
		for i := range 5 {
			other := newThing("Thing", "ns", "o"+strconv.Itoa(i))
			put(t, s, obj, other)
			if rv(obj) <= last || rv(other) <= rv(obj) {
				t.Fatalf("round %d: versions %d, %d after %d", i, rv(obj), rv(other), last)
			}
			last = rv(other)
			if s.Version() != last {
				t.Fatalf("Version() %d, want %d", s.Version(), last)
			}
			rec, err := get(s, KeyOf(obj))
			if err != nil || rec.Version != rv(obj) {
				t.Fatalf("get: %v@%d, want @%d", err, rec.Version, rv(obj))
			}
		}
	})

	t.Run("RollbackOnError", func(t *testing.T) {
		s := open(t)
		put(t, s, newThing("Thing", "ns", "before"))
		v := s.Version()
		a, b := newThing("Thing", "ns", "a"), newThing("Thing", "ns", "b")
		err := s.Update(func(tx Tx) error {
			if err := tx.Put(a); err != nil {
				return err
			}
			if err := tx.Put(b); err != nil {
				return err
			}
			if err := tx.Delete(Key{Kind: "Thing", Namespace: "ns", Name: "before"}); err != nil {
				return err
			}
			return fmt.Errorf("give up: %w", errBoom)
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("update: %v, want errBoom", err)
		}
		if s.Version() != v {
			t.Fatalf("version moved from %d to %d", v, s.Version())
		}
		if a.ResourceVersion != "" || b.ResourceVersion != "" {
			t.Fatalf("resourceVersions not restored: %q %q", a.ResourceVersion, b.ResourceVersion)
		}
		if got := names(list(t, s, "Thing", "")); !slices.Equal(got, []string{"ns/before"}) {
			t.Fatalf("after rollback: %v", got)
		}

		// A failed write fails the transaction even if fn ignores it.
		err = s.Update(func(tx Tx) error {
			_ = tx.Put(newThing("Thing", "ns", "kept?"))
			_ = tx.Put(newThing("Thing", "ns", "bad/name"))
			return nil
		})
		if !errors.Is(err, errInvalidKey) {
			t.Fatalf("update with an ignored failed write: %v, want errInvalidKey", err)
		}
		if got := names(list(t, s, "Thing", "")); !slices.Equal(got, []string{"ns/before"}) || s.Version() != v {
			t.Fatalf("after failed write: %v at %d", got, s.Version())
		}
	})

	t.Run("ReadYourWrites", func(t *testing.T) {
		s := open(t)
		put(t, s, newThing("Thing", "ns", "a"), newThing("Thing", "ns", "c"))
		err := s.Update(func(tx Tx) error {
			b := newThing("Thing", "ns", "b")
			if err := tx.Put(b); err != nil {
				return err
			}
			rec, err := tx.Get(KeyOf(b))
			if err != nil || rec.Version != rv(b) {
				return fmt.Errorf("get own put: %v@%d", err, rec.Version)
			}
			if err := tx.Delete(Key{Kind: "Thing", Namespace: "ns", Name: "a"}); err != nil {
				return err
			}
			if _, err := tx.Get(Key{Kind: "Thing", Namespace: "ns", Name: "a"}); !IsNotFound(err) {
				return fmt.Errorf("get own delete: %v", err)
			}
			recs, err := tx.List("Thing", "ns")
			if err != nil {
				return err
			}
			if got := names(recs); !slices.Equal(got, []string{"ns/b", "ns/c"}) {
				return fmt.Errorf("list in tx: %v", got)
			}
			// Others see committed state only.
			return s.View(func(view Tx) error {
				recs, err := view.List("Thing", "ns")
				if err != nil {
					return err
				}
				if got := names(recs); !slices.Equal(got, []string{"ns/a", "ns/c"}) {
					return fmt.Errorf("concurrent view: %v", got)
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(list(t, s, "Thing", "ns")); !slices.Equal(got, []string{"ns/b", "ns/c"}) {
			t.Fatalf("after commit: %v", got)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		obj := newThing("Thing", "ns", "x")
		put(t, s, obj)
		v := s.Version()
		if err := s.Update(func(tx Tx) error { return tx.Delete(KeyOf(obj)) }); err != nil {
			t.Fatal(err)
		}
		if s.Version() <= v {
			t.Fatalf("delete did not take a version: %d after %d", s.Version(), v)
		}
		if _, err := get(s, KeyOf(obj)); !IsNotFound(err) {
			t.Fatalf("get deleted: %v", err)
		}
		err := s.Update(func(tx Tx) error { return tx.Delete(KeyOf(obj)) })
		if !IsNotFound(err) {
			t.Fatalf("delete missing: %v, want ErrNotFound", err)
		}
		// A missing key is not a failed write: "delete if present" commits.
		other := newThing("Thing", "ns", "y")
		err = s.Update(func(tx Tx) error {
			if err := tx.Delete(KeyOf(obj)); !IsNotFound(err) {
				return fmt.Errorf("delete missing: %v", err)
			}
			return tx.Put(other)
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := get(s, KeyOf(other)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ListOrderAndNamespaces", func(t *testing.T) {
		s := open(t)
		// Inserted out of order; namespaces that share prefixes and hold
		// bytes that sort below '/'.
		put(t, s,
			newThing("Thing", "dev2", "a"),
			newThing("Thing", "dev", "z"),
			newThing("Thing", "dev-a", "m"),
			newThing("Thing", "dev", "b"),
			newThing("Thing", "dev", "a-1"),
			newThing("Thing", "a", "q"),
			newThing("Thing", "dev.x", "c"),
			newThing("ThingX", "dev", "other-kind"),
			newThing("Cluster", "", "n2"),
			newThing("Cluster", "", "n1"),
		)
		for _, c := range []struct {
			kind, ns string
			want     []string
		}{
			{"Thing", "dev", []string{"dev/a-1", "dev/b", "dev/z"}},
			{"Thing", "dev2", []string{"dev2/a"}},
			{"Thing", "de", nil},
			{"Thing", "", []string{"a/q", "dev/a-1", "dev/b", "dev/z", "dev-a/m", "dev.x/c", "dev2/a"}},
			{"ThingX", "", []string{"dev/other-kind"}},
			{"Thin", "", nil},
			{"Cluster", "", []string{"/n1", "/n2"}},
		} {
			got := names(list(t, s, c.kind, c.ns))
			if !slices.Equal(got, c.want) {
				t.Errorf("list %s in %q: %v, want %v", c.kind, c.ns, got, c.want)
			}
		}
		var got []*kindedThing
		err := s.View(func(tx Tx) error {
			var err error
			got, err = List[kindedThing](tx, "dev")
			return err
		})
		if err != nil || len(got) != 3 || got[0].Name != "a-1" || got[0].ResourceVersion == "" {
			t.Fatalf("List helper: %v, %v", got, err)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		s := open(t)
		for _, k := range []Key{
			{Kind: "Thing", Namespace: "a/b", Name: "x"},
			{Kind: "Thing", Namespace: "ns", Name: "x/y"},
			{Kind: "Th/ing", Namespace: "ns", Name: "x"},
			{Kind: "", Namespace: "ns", Name: "x"},
			{Kind: "Thing", Namespace: "ns", Name: ""},
		} {
			if _, err := get(s, k); !errors.Is(err, errInvalidKey) {
				t.Errorf("get %q: %v, want errInvalidKey", k, err)
			}
			err := s.Update(func(tx Tx) error { return tx.Put(newThing(k.Kind, k.Namespace, k.Name)) })
			if !errors.Is(err, errInvalidKey) {
				t.Errorf("put %q: %v, want errInvalidKey", k, err)
			}
			err = s.Update(func(tx Tx) error { return tx.Delete(k) })
			if !errors.Is(err, errInvalidKey) {
				t.Errorf("delete %q: %v, want errInvalidKey", k, err)
			}
		}
		for _, scope := range [][2]string{{"", ""}, {"Thing", "a/b"}, {"Th/ing", ""}} {
			err := s.View(func(tx Tx) error { _, err := tx.List(scope[0], scope[1]); return err })
			if !errors.Is(err, errInvalidKey) {
				t.Errorf("list %q: %v, want errInvalidKey", scope, err)
			}
		}
		if s.Version() != 0 {
			t.Fatalf("version %d after refused writes", s.Version())
		}
	})

	t.Run("TTL", func(t *testing.T) {
		s := open(t)
		const ttl = time.Second
		start := time.Now()
		short, keep := newThing("Event", "ns", "short"), newThing("Event", "ns", "keep")
		err := s.Update(func(tx Tx) error {
			if err := tx.PutTTL(short, ttl); err != nil {
				return err
			}
			return tx.Put(keep)
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := get(s, KeyOf(short)); err != nil && time.Since(start) < ttl {
			t.Fatalf("TTL record gone before its ttl: %v", err)
		}
		deadline := time.Now().Add(ttl + 5*time.Second)
		for {
			_, err := get(s, KeyOf(short))
			if IsNotFound(err) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("TTL record still there %v after writing it", time.Since(start))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if gone := time.Since(start); gone < ttl {
			t.Fatalf("TTL record expired after %v, before its ttl %v", gone, ttl)
		}
		if got := names(list(t, s, "Event", "ns")); !slices.Equal(got, []string{"ns/keep"}) {
			t.Fatalf("list after expiry: %v", got)
		}
		err = s.Update(func(tx Tx) error { return tx.Delete(KeyOf(short)) })
		if !IsNotFound(err) {
			t.Fatalf("delete expired: %v, want ErrNotFound", err)
		}
		// An expired record can be written again.
		put(t, s, short)
		if _, err := get(s, KeyOf(short)); err != nil {
			t.Fatal(err)
		}
		err = s.Update(func(tx Tx) error { return tx.PutTTL(newThing("Event", "ns", "zero"), 0) })
		if err == nil {
			t.Fatal("PutTTL with ttl 0 succeeded")
		}
	})

	t.Run("ViewIsReadOnly", func(t *testing.T) {
		s := open(t)
		put(t, s, newThing("Thing", "ns", "a"))
		v := s.Version()
		obj := newThing("Thing", "ns", "b")
		err := s.View(func(tx Tx) error {
			if err := tx.Put(obj); !errors.Is(err, ErrReadOnly) {
				return fmt.Errorf("put: %v", err)
			}
			if err := tx.PutTTL(obj, time.Minute); !errors.Is(err, ErrReadOnly) {
				return fmt.Errorf("put ttl: %v", err)
			}
			if err := tx.Delete(Key{Kind: "Thing", Namespace: "ns", Name: "a"}); !errors.Is(err, ErrReadOnly) {
				return fmt.Errorf("delete: %v", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(list(t, s, "Thing", "")); !slices.Equal(got, []string{"ns/a"}) || s.Version() != v || obj.ResourceVersion != "" {
			t.Fatalf("after View writes: %v at %d, rv %q", got, s.Version(), obj.ResourceVersion)
		}
	})

	t.Run("WatchOrderAndFilter", func(t *testing.T) {
		s := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		things, all := s.Watch(ctx, "Thing"), s.Watch(ctx)
		two := s.Watch(ctx, "Thing", "Other")
		none := s.Watch(ctx, "Nothing")

		a, x := newThing("Thing", "ns", "a"), newThing("Other", "", "x")
		put(t, s, a, x) // v1, v2
		if err := s.Update(func(tx Tx) error {
			_ = tx.Put(newThing("Thing", "ns", "ghost"))
			return errBoom
		}); !errors.Is(err, errBoom) {
			t.Fatal(err)
		}
		b := newThing("Thing", "ns", "b")
		put(t, s, b, b) // one event for b, at the second version
		if err := s.Update(func(tx Tx) error { return tx.Delete(KeyOf(a)) }); err != nil {
			t.Fatal(err)
		}
		del := s.Version()
		ka, kx, kb := KeyOf(a), KeyOf(x), KeyOf(b)
		wantThings := []change{{Put, ka, rv(a)}, {Put, kb, rv(b)}, {Deleted, ka, del}}
		wantAll := []change{{Put, ka, rv(a)}, {Put, kx, rv(x)}, {Put, kb, rv(b)}, {Deleted, ka, del}}
		for _, c := range []struct {
			name string
			ch   <-chan Event
			want []change
		}{{"Thing", things, wantThings}, {"all", all, wantAll}, {"Thing+Other", two, wantAll}, {"Nothing", none, nil}} {
			for i, want := range c.want {
				if got := recv(t, c.ch).change(); got != want {
					t.Errorf("watch %s: event %d = %+v, want %+v", c.name, i, got, want)
				}
			}
			expectNoEvent(t, c.ch)
		}
	})

	t.Run("WatchCarriesValues", func(t *testing.T) {
		// A watcher gets each change's object as committed, and what a
		// delete removed, however the key changed after.
		s := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := s.Watch(ctx, "Thing")
		a := newThing("Thing", "ns", "a")
		put(t, s, a)
		first, _ := get(s, KeyOf(a))
		a.Labels = map[string]string{"v": "2"}
		put(t, s, a)
		second, _ := get(s, KeyOf(a))
		if err := s.Update(func(tx Tx) error { return tx.Delete(KeyOf(a)) }); err != nil {
			t.Fatal(err)
		}
		ev := recv(t, w)
		if ev.Type != Put || string(ev.Value) != string(first.Value) || ev.Old != nil {
			t.Errorf("create: %s value %s old %s, want Put %s and no old", ev.Type, ev.Value, ev.Old, first.Value)
		}
		ev = recv(t, w)
		if ev.Type != Put || string(ev.Value) != string(second.Value) {
			t.Errorf("update: %s value %s, want Put %s", ev.Type, ev.Value, second.Value)
		}
		// Old is optional for a Put (a store reading the kind from disk
		// does not read it), but right when given.
		if ev.Old != nil && string(ev.Old) != string(first.Value) {
			t.Errorf("update: old %s, want %s", ev.Old, first.Value)
		}
		ev = recv(t, w)
		if ev.Type != Deleted || ev.Value != nil || string(ev.Old) != string(second.Value) {
			t.Errorf("delete: %s value %s old %s, want Deleted with old %s", ev.Type, ev.Value, ev.Old, second.Value)
		}
		// Two changes to one key in one transaction: one event, with the
		// last value and what the key held before the transaction.
		b := newThing("Thing", "ns", "b")
		put(t, s, b)
		before, _ := get(s, KeyOf(b))
		recv(t, w)
		err := s.Update(func(tx Tx) error {
			b.Labels = map[string]string{"n": "1"}
			if err := tx.Put(b); err != nil {
				return err
			}
			b.Labels = map[string]string{"n": "2"}
			return tx.Put(b)
		})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := get(s, KeyOf(b))
		ev = recv(t, w)
		if string(ev.Value) != string(after.Value) || (ev.Old != nil && string(ev.Old) != string(before.Value)) {
			t.Errorf("two puts: value %s old %s, want %s and %s", ev.Value, ev.Old, after.Value, before.Value)
		}
		expectNoEvent(t, w)
	})

	t.Run("ViewAfterVersionSeesIt", func(t *testing.T) {
		// A View begun after Version returned v sees the commit of v,
		// however busy the writer: a list read so misses nothing a watch
		// from v leaves out. The writer rewrites ten keys, each commit
		// one of them, so the newest record a View sees is the newest
		// commit it sees.
		s := open(t)
		done := make(chan error, 1)
		go func() {
			defer close(done)
			for i := range 1000 {
				if err := s.Update(func(tx Tx) error { return tx.Put(newThing("Thing", "ns", fmt.Sprintf("t%d", i%10))) }); err != nil {
					done <- err
					return
				}
			}
		}()
		for writing := true; writing; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				writing = false
			default:
			}
			v := s.Version()
			var newest uint64
			for _, r := range list(t, s, "Thing", "ns") {
				newest = max(newest, r.Version)
			}
			if newest < v {
				t.Fatalf("Version said %d, a View after it saw at most %d", v, newest)
			}
		}
	})

	t.Run("WatchOverflow", func(t *testing.T) {
		s := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		slow := s.Watch(ctx, "Thing")
		const n = 3000
		for batch := range 3 {
			err := s.Update(func(tx Tx) error {
				for i := range n / 3 {
					if err := tx.Put(newThing("Thing", "ns", fmt.Sprintf("t%d-%d", batch, i))); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		var got int
		var last uint64
		for {
			ev := recv(t, slow)
			if ev.Type == Overflow {
				break
			}
			if ev.Type != Put || ev.Version != last+1 {
				t.Fatalf("event %d: %+v after version %d", got, ev, last)
			}
			last = ev.Version
			got++
		}
		if got == 0 || got >= n {
			t.Fatalf("%d events before Overflow, want some but fewer than %d", got, n)
		}
		expectNoEvent(t, slow) // a single Overflow, nothing after it
		late := newThing("Thing", "ns", "late")
		put(t, s, late)
		if ev := recv(t, slow).change(); ev != (change{Put, KeyOf(late), rv(late)}) {
			t.Fatalf("after overflow: %+v", ev)
		}
	})

	t.Run("WatchNeverLosesSilently", func(t *testing.T) {
		// A watcher that reads, but slower than the writer, may lose
		// events, but never without an Overflow after them.
		s := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := s.Watch(ctx, "Thing")
		const batches, perBatch = 40, 100
		done := make(chan error, 1)
		go func() {
			for b := range batches {
				err := s.Update(func(tx Tx) error {
					for i := range perBatch {
						if err := tx.Put(newThing("Thing", "ns", fmt.Sprintf("t%d-%d", b, i))); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		var got []Event
		writing := true
		for writing {
			select {
			case ev := <-w:
				got = append(got, ev)
				if len(got)%10 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				writing = false
			}
		}
		for drained := false; !drained; {
			select {
			case ev := <-w:
				got = append(got, ev)
			default:
				drained = true
			}
		}
		var last uint64
		var overflows int
		overflowSinceLast := false
		for _, ev := range got {
			if ev.Type == Overflow {
				overflows++
				overflowSinceLast = true
				continue
			}
			if ev.Version <= last {
				t.Fatalf("version %d after %d", ev.Version, last)
			}
			if ev.Version != last+1 && !overflowSinceLast {
				t.Fatalf("versions %d to %d lost without an Overflow", last+1, ev.Version-1)
			}
			last, overflowSinceLast = ev.Version, false
		}
		if last != s.Version() && !overflowSinceLast {
			t.Fatalf("last event at %d, store at %d, and no Overflow after it", last, s.Version())
		}
		t.Logf("%d events, %d overflows", len(got), overflows)
	})

	t.Run("WatchClosesOnCancel", func(t *testing.T) {
		s := open(t)
		put(t, s, newThing("Thing", "ns", "warm-up"))
		before := runtime.NumGoroutine()
		ctx, cancel := context.WithCancel(context.Background())
		var chans []<-chan Event
		for i := range 50 {
			chans = append(chans, s.Watch(ctx, "Thing"))
			if i%2 == 0 {
				chans = append(chans, s.Watch(ctx))
			}
		}
		put(t, s, newThing("Thing", "ns", "a"))
		cancel()
		for _, ch := range chans {
			waitClosed(t, ch)
		}
		done, doneCancel := context.WithCancel(context.Background())
		doneCancel()
		waitClosed(t, s.Watch(done))            // already ended
		put(t, s, newThing("Thing", "ns", "b")) // no send on a closed channel
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines: %d before watching, %d after cancel\n%s",
					before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("ConcurrentWriters", func(t *testing.T) {
		s := open(t)
		const writers, updates = 8, 40
		pair := func(name string) Key { return Key{Kind: "Pair", Namespace: "ns", Name: name} }
		counter := func(tx Tx, name string) (int, error) {
			rec, err := tx.Get(pair(name))
			if IsNotFound(err) {
				return 0, nil
			}
			if err != nil {
				return 0, err
			}
			var th thing
			if err := json.Unmarshal(rec.Value, &th); err != nil {
				return 0, err
			}
			return th.Spec.Count, nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		var readers sync.WaitGroup
		readErrs := make(chan error, 2)
		for range 2 {
			readers.Go(func() {
				for ctx.Err() == nil {
					err := s.View(func(tx Tx) error {
						a, err := counter(tx, "a")
						if err != nil {
							return err
						}
						b, err := counter(tx, "b")
						if err != nil {
							return err
						}
						if a != b {
							return fmt.Errorf("view saw a half commit: a=%d b=%d", a, b)
						}
						_, err = tx.List("Thing", "")
						return err
					})
					if err != nil {
						readErrs <- err
						return
					}
				}
			})
		}
		var mu sync.Mutex
		var versions []uint64
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				for i := range updates {
					own := newThing("Thing", "ns", fmt.Sprintf("w%d-%d", w, i))
					a, b := newThing("Pair", "ns", "a"), newThing("Pair", "ns", "b")
					err := s.Update(func(tx Tx) error {
						n, err := counter(tx, "a")
						if err != nil {
							return err
						}
						a.Spec.Count, b.Spec.Count = n+1, n+1
						for _, o := range []api.Object{own, a, b} {
							if err := tx.Put(o); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					versions = append(versions, rv(own), rv(a), rv(b))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		cancel()
		readers.Wait()
		close(errs)
		close(readErrs)
		for err := range errs {
			t.Fatal(err)
		}
		for err := range readErrs {
			t.Fatal(err)
		}
		slices.Sort(versions)
		if len(slices.Compact(slices.Clone(versions))) != len(versions) {
			t.Fatal("duplicate versions")
		}
		if want := uint64(writers * updates * 3); versions[len(versions)-1] != want || s.Version() != want {
			t.Fatalf("last version %d, store %d, want %d", versions[len(versions)-1], s.Version(), want)
		}
		err := s.View(func(tx Tx) error {
			n, err := counter(tx, "a")
			if err == nil && n != writers*updates {
				err = fmt.Errorf("counter %d, want %d: lost updates", n, writers*updates)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(list(t, s, "Thing", "ns")); got != writers*updates {
			t.Fatalf("%d objects, want %d", got, writers*updates)
		}
	})

	t.Run("Close", func(t *testing.T) {
		s := open(t)
		put(t, s, newThing("Thing", "ns", "a"))
		v := s.Version()
		w := s.Watch(context.Background())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, w)
		waitClosed(t, s.Watch(context.Background()))
		if err := s.Update(func(Tx) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("update after close: %v", err)
		}
		if err := s.View(func(Tx) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("view after close: %v", err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second close: %v", err)
		}
		if s.Version() != v {
			t.Errorf("version after close %d, want %d", s.Version(), v)
		}
	})
}
