package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
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

// TestObjectCache: decoded objects are kept in memory, callers get their own
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
			out, err = List[api.Node](tx, "")
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
	if e, ok := s.index.state.Load().get(KeyOf(b[0])); !ok || e.obj.Load() == nil {
		t.Fatal("nothing kept decoded")
	}
	// An update inside a transaction that fails is not seen afterwards.
	_ = s.Update(func(tx Tx) error {
		n, err := Get[api.Node](tx, "", "n1")
		if err != nil {
			return err
		}
		n.Labels["site"] = "rolled-back"
		if err := tx.Put(n); err != nil {
			return err
		}
		if n2, _ := Get[api.Node](tx, "", "n1"); n2.Labels["site"] != "rolled-back" {
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
		n, err := Get[api.Node](tx, "", "n1")
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
	if _, ok := s.index.state.Load().get(Key{Kind: api.KindNode, Name: "n1"}); ok {
		t.Fatal("a deleted record is still held in memory")
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
		r := (&entry{key: rec.Key, version: rec.Version, value: rec.Value}).record()
		for b.Loop() {
			if _, err := Decode[api.Node](r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestDecodeIntoUsesTheCache(t *testing.T) {
	data, _ := json.Marshal(testNode("n1"))
	rec := (&entry{key: Key{Kind: api.KindNode, Name: "n1"}, version: 3, value: data}).record()
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
	if rec.entry.obj.Load() == nil {
		t.Fatal("nothing kept decoded")
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
		if a, err = ListShared[api.Node](tx, ""); err != nil { // decodes and caches
			return err
		}
		b, err = ListShared[api.Node](tx, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(a) != 1 || len(b) != 1 || a[0].Name != "n1" {
		t.Fatalf("got %v %v", a, b)
	}
	if e, _ := s.index.state.Load().get(KeyOf(a[0])); e == nil || e.obj.Load() == nil || e.obj.Load().v != any(b[0]) || a[0] != b[0] {
		t.Fatal("the second read did not return the object kept in memory")
	}
}

// An indexed kind comes back from disk when the store is opened again,
// with its versions, and the store's version goes on from where it was.
func TestIndexReloads(t *testing.T) {
	dir := t.TempDir()
	s := openBadger(t, dir)
	put(t, s, testNode("n1"), testNode("n2"))
	if err := s.Update(func(tx Tx) error { return tx.Delete(Key{Kind: api.KindNode, Name: "n1"}) }); err != nil {
		t.Fatal(err)
	}
	before := list(t, s, api.KindNode, "")
	version := s.Version()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBadger(t, dir)
	t.Cleanup(func() { _ = s.Close() })
	after := list(t, s, api.KindNode, "")
	if len(after) != 1 || len(before) != 1 || after[0].Key != before[0].Key || after[0].Version != before[0].Version || string(after[0].Value) != string(before[0].Value) {
		t.Fatalf("before %v, after reopening %v", names(before), names(after))
	}
	if s.Version() != version {
		t.Fatalf("version %d after reopening, was %d", s.Version(), version)
	}
	if after[0].entry == nil {
		t.Fatal("a reloaded node is not read from memory")
	}
}

// Records of a kind held in memory cannot expire; the write says so and
// the transaction writes nothing.
func TestIndexedKindRefusesTTL(t *testing.T) {
	s := openBadger(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	err := s.Update(func(tx Tx) error {
		if err := tx.Put(testNode("n1")); err != nil {
			return err
		}
		return tx.PutTTL(testNode("n2"), time.Hour)
	})
	if !errors.Is(err, ErrIndexedTTL) {
		t.Fatalf("PutTTL of a Node: %v, want ErrIndexedTTL", err)
	}
	if got := list(t, s, api.KindNode, ""); len(got) != 0 {
		t.Fatalf("a failed transaction wrote %v", names(got))
	}
}

// A View reads the state committed when it began, whatever commits while
// it runs; readers and writers run concurrently (run with -race).
func TestIndexViewIsASnapshot(t *testing.T) {
	s := openBadger(t, t.TempDir())
	t.Cleanup(func() { _ = s.Close() })
	put(t, s, testNode("n1"))
	started, committed := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- s.View(func(tx Tx) error {
			close(started)
			<-committed
			nodes, err := ListShared[api.Node](tx, "")
			if err != nil {
				return err
			}
			if len(nodes) != 1 || nodes[0].Labels["site"] != "a" {
				return fmt.Errorf("the view saw a later commit: %d nodes, %v", len(nodes), nodes[0].Labels)
			}
			return nil
		})
	}()
	<-started
	n := testNode("n1")
	n.Labels["site"] = "b"
	put(t, s, n, testNode("n2"))
	close(committed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Many readers while a writer commits.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = s.View(func(tx Tx) error {
					nodes, err := ListShared[api.Node](tx, "")
					if err != nil {
						t.Error(err)
						return err
					}
					for i := 1; i < len(nodes); i++ {
						if nodes[i-1].Name >= nodes[i].Name {
							t.Errorf("list out of order: %s, %s", nodes[i-1].Name, nodes[i].Name)
						}
					}
					return nil
				})
			}
		})
	}
	for i := range 200 {
		n := testNode(fmt.Sprintf("w%03d", i%50))
		n.Labels["round"] = strconv.Itoa(i)
		put(t, s, n)
	}
	cancel()
	wg.Wait()
	if got := len(list(t, s, api.KindNode, "")); got != 52 {
		t.Fatalf("%d nodes, want 52", got)
	}
}

// VerifyShared finds a reader's change to a shared object, in both stores.
func TestVerifySharedFindsAModifiedObject(t *testing.T) {
	for name, s := range map[string]Store{"badger": openBadger(t, t.TempDir()), "memory": NewMemory()} {
		t.Run(name, func(t *testing.T) {
			defer s.Close()
			put(t, s, testNode("n1"))
			var n *api.Node
			if err := s.View(func(tx Tx) error {
				var err error
				n, err = GetShared[api.Node](tx, "", "n1")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if err := VerifyShared(s); err != nil {
				t.Fatalf("before any change: %v", err)
			}
			n.Labels["site"] = "changed by a reader"
			if err := VerifyShared(s); err == nil || !strings.Contains(err.Error(), "Node/n1") {
				t.Fatalf("VerifyShared after a reader's change: %v", err)
			}
		})
	}
}
