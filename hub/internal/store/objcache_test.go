package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func testNode(name string) *api.Node {
	return &api.Node{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
		ObjectMeta: api.ObjectMeta{Name: name, UID: "u-" + name, Labels: map[string]string{"site": "a"}, CreationTimestamp: api.Now()},
		Status: api.NodeStatus{
			Capacity:   api.ResourceList{"cpu": "2"},
			Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue, LastTransitionTime: api.Now()}},
			LastSeen:   api.NewTime(time.Now().UTC().Truncate(time.Second)),
			Metrics:    &api.NodeUsage{},
		},
	}
}

func TestCloneIsDeepAndEqual(t *testing.T) {
	n := testNode("n1")
	c := clone(n)
	if !reflect.DeepEqual(n, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", n, c)
	}
	c.Labels["site"] = "b"
	c.Status.Conditions[0].Status = api.ConditionFalse
	c.Status.Capacity["cpu"] = "4"
	c.Status.Metrics = nil
	if n.Labels["site"] != "a" || n.Status.Conditions[0].Status != api.ConditionTrue || n.Status.Capacity["cpu"] != "2" || n.Status.Metrics == nil {
		t.Fatalf("changing the clone changed the original: %+v", n)
	}
	var empty api.Node
	if got := clone(&empty); !reflect.DeepEqual(&empty, got) {
		t.Fatalf("clone of zero: %+v", got)
	}
}

// TestObjectCache: decoded objects are cached, callers get their own
// copies, and an update or delete is never hidden by the cache.
func TestObjectCache(t *testing.T) {
	s := openBadger(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Update(func(tx Tx) error { return tx.Put(testNode("n1")) }); err != nil {
		t.Fatal(err)
	}
	list := func() []*api.Node {
		t.Helper()
		var out []*api.Node
		if err := s.View(func(tx Tx) error {
			var err error
			out, err = List[api.Node](tx, api.KindNode, "")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a := list()
	a[0].Labels["site"] = "mutated"
	b := list()
	if b[0].Labels["site"] != "a" {
		t.Fatalf("a caller's change reached the cache: %v", b[0].Labels)
	}
	if slot := s.objects.slot(KeyOf(b[0])); slot.p.Load() == nil {
		t.Fatal("nothing cached")
	}
	// An update inside a transaction that fails is not seen afterwards.
	_ = s.Update(func(tx Tx) error {
		n, err := Get[api.Node](tx, api.KindNode, "", "n1")
		if err != nil {
			return err
		}
		n.Labels["site"] = "rolled-back"
		if err := tx.Put(n); err != nil {
			return err
		}
		if n2, _ := Get[api.Node](tx, api.KindNode, "", "n1"); n2.Labels["site"] != "rolled-back" {
			t.Errorf("tx does not read its write: %v", n2.Labels)
		}
		return ErrNotFound // roll back
	})
	if got := list()[0].Labels["site"]; got != "a" {
		t.Fatalf("after a rolled-back update: %q", got)
	}
	// A committed update is seen, with the same version the rolled-back
	// one had.
	if err := s.Update(func(tx Tx) error {
		n, err := Get[api.Node](tx, api.KindNode, "", "n1")
		if err != nil {
			return err
		}
		n.Labels["site"] = "b"
		return tx.Put(n)
	}); err != nil {
		t.Fatal(err)
	}
	c := list()
	if c[0].Labels["site"] != "b" {
		t.Fatalf("after an update: %v", c[0].Labels)
	}
	// It decodes exactly as the JSON does.
	var want api.Node
	if err := s.View(func(tx Tx) error {
		rec, err := tx.Get(Key{Kind: api.KindNode, Name: "n1"})
		if err != nil {
			return err
		}
		return json.Unmarshal(rec.Value, &want)
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&want, c[0]) {
		t.Fatalf("cached decode differs:\n%+v\n%+v", &want, c[0])
	}
	if err := s.Update(func(tx Tx) error { return tx.Delete(Key{Kind: api.KindNode, Name: "n1"}) }); err != nil {
		t.Fatal(err)
	}
	if n := len(list()); n != 0 {
		t.Fatalf("%d nodes after delete", n)
	}
	s.objects.mu.Lock()
	slots := len(s.objects.slots)
	s.objects.mu.Unlock()
	if slots != 0 {
		t.Fatalf("%d cache slots after delete", slots)
	}
}

func BenchmarkDecodeNode(b *testing.B) {
	data, _ := json.Marshal(testNode("n1"))
	rec := Record{Key: Key{Kind: api.KindNode, Name: "n1"}, Version: 1, Value: data}
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode[api.Node](rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := newObjectCache([]string{api.KindNode})
		r := rec
		r.cache = c.slot(r.Key)
		for b.Loop() {
			if _, err := Decode[api.Node](r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestDecodeIntoUsesTheCache(t *testing.T) {
	data, _ := json.Marshal(testNode("n1"))
	c := newObjectCache([]string{api.KindNode})
	rec := Record{Key: Key{Kind: api.KindNode, Name: "n1"}, Version: 3, Value: data, cache: c.slot(Key{Kind: api.KindNode, Name: "n1"})}
	var want api.Node
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // miss, then hits
		got := new(api.Node)
		if err := DecodeInto(rec, got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&want, got) {
			t.Fatalf("round %d: %+v", i, got)
		}
		got.Labels["site"] = "mutated"
	}
	if rec.cache.p.Load() == nil {
		t.Fatal("nothing cached")
	}
}

func TestListSharedReturnsTheCachedObjects(t *testing.T) {
	s := openBadger(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Update(func(tx Tx) error { return tx.Put(testNode("n1")) }); err != nil {
		t.Fatal(err)
	}
	var a, b []*api.Node
	if err := s.View(func(tx Tx) error {
		var err error
		if a, err = ListShared[api.Node](tx, api.KindNode, ""); err != nil { // decodes and caches
			return err
		}
		b, err = ListShared[api.Node](tx, api.KindNode, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(a) != 1 || len(b) != 1 || a[0].Name != "n1" {
		t.Fatalf("got %v %v", a, b)
	}
	if got := s.objects.slot(KeyOf(a[0])).p.Load(); got == nil || got.obj != any(b[0]) {
		t.Fatal("the second read did not return the cached object")
	}
}
