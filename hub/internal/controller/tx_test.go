package controller

import (
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

func pod(name, uid, node string) *api.Pod {
	return &api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: name, UID: uid}, Spec: api.PodSpec{NodeName: node}}
}

func put(t *testing.T, st store.Store, objs ...api.Object) {
	t.Helper()
	if err := st.Update(func(tx store.Tx) error {
		for _, o := range objs {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func getPod(t *testing.T, st store.Store, name string) *api.Pod {
	t.Helper()
	var p *api.Pod
	err := st.View(func(tx store.Tx) error {
		var err error
		p, err = store.Get[api.Pod](tx, "default", name)
		return err
	})
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func update(t *testing.T, st store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := st.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestPutIfAbsentAndDeleteIfPresent(t *testing.T) {
	st := store.NewMemory()
	first := pod("a", "uid-1", "n1")
	update(t, st, func(tx store.Tx) error { return PutIfAbsent(tx, first) })
	update(t, st, func(tx store.Tx) error { return PutIfAbsent(tx, pod("a", "uid-2", "n2")) })
	if p := getPod(t, st, "a"); p == nil || p.UID != "uid-1" {
		t.Fatalf("stored %v, want the first pod kept", p)
	}
	update(t, st, func(tx store.Tx) error { return DeleteIfPresent(tx, store.KeyOf(first)) })
	update(t, st, func(tx store.Tx) error { return DeleteIfPresent(tx, store.KeyOf(first)) }) // gone already
	if p := getPod(t, st, "a"); p != nil {
		t.Fatalf("pod still stored: %v", p)
	}
}

func TestUpdatePod(t *testing.T) {
	running := api.PodStatus{Phase: api.PodRunning}
	unschedulable := api.PodStatus{Phase: api.PodPending, Reason: "Unschedulable"}
	for _, tc := range []struct {
		name       string
		stored     *api.Pod // nil: none
		write      *api.Pod
		wantNode   string
		wantStatus api.PodPhase
		wantLabel  string
	}{
		{"a bound pod keeps the status its agent reported",
			withStatus(pod("a", "u", "n1"), running), withLabel(withStatus(pod("a", "u", "n1"), unschedulable), "v2"),
			"n1", api.PodRunning, "v2"},
		{"binding a pod sets its status",
			withStatus(pod("a", "u", ""), unschedulable), withStatus(pod("a", "u", "n2"), api.PodStatus{Phase: api.PodPending}),
			"n2", api.PodPending, ""},
		{"a pod replaced by another of its name is left alone",
			withStatus(pod("a", "other", "n1"), running), withLabel(pod("a", "u", "n2"), "v2"),
			"n1", api.PodRunning, ""},
		{"a pod gone stays gone", nil, pod("a", "u", "n1"), "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := store.NewMemory()
			if tc.stored != nil {
				put(t, st, tc.stored)
			}
			update(t, st, func(tx store.Tx) error { return UpdatePod(tx, tc.write) })
			got := getPod(t, st, "a")
			if tc.stored == nil {
				if got != nil {
					t.Fatalf("a pod gone was written: %v", got)
				}
				return
			}
			if got.Spec.NodeName != tc.wantNode || got.Status.Phase != tc.wantStatus || got.Labels["v"] != tc.wantLabel {
				t.Fatalf("stored node %q phase %q label %q; want %q %q %q",
					got.Spec.NodeName, got.Status.Phase, got.Labels["v"], tc.wantNode, tc.wantStatus, tc.wantLabel)
			}
		})
	}
}

func withStatus(p *api.Pod, s api.PodStatus) *api.Pod { p.Status = s; return p }
func withLabel(p *api.Pod, v string) *api.Pod         { p.Labels = map[string]string{"v": v}; return p }

func TestUpdateRevision(t *testing.T) {
	st := store.NewMemory()
	cr := &api.ControllerRevision{TypeMeta: api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindControllerRevision},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web-abc"}, Revision: 1,
		Data: api.PodTemplateSpec{ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "web"}}}}
	put(t, st, cr)
	renumbered := *cr
	renumbered.Revision, renumbered.Annotations = 3, map[string]string{"cause": "x"}
	renumbered.Data = api.PodTemplateSpec{}
	update(t, st, func(tx store.Tx) error { return UpdateRevision(tx, &renumbered) })
	gone := renumbered
	gone.Name = "web-gone"
	update(t, st, func(tx store.Tx) error { return UpdateRevision(tx, &gone) })
	_ = st.View(func(tx store.Tx) error {
		got, err := store.Get[api.ControllerRevision](tx, "default", "web-abc")
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision != 3 || got.Annotations["cause"] != "x" || got.Data.Labels["app"] != "web" {
			t.Fatalf("stored %+v: want the number and annotations moved, the template kept", got)
		}
		if _, err := store.Get[api.ControllerRevision](tx, "default", "web-gone"); !store.IsNotFound(err) {
			t.Fatalf("a revision gone was written (%v)", err)
		}
		return nil
	})
}

// countingStore counts the transactions that commit.
type countingStore struct {
	store.Store
	updates int
}

func (s *countingStore) Update(fn func(store.Tx) error) error {
	err := s.Store.Update(fn)
	if err == nil {
		s.updates++
	}
	return err
}

func TestGuarded(t *testing.T) {
	owner := pod("owner", "u", "n")
	mkOps := func(n int) []Op[*api.Pod] {
		var ops []Op[*api.Pod]
		for i := range n {
			ops = append(ops, func(tx store.Tx, cur *api.Pod) error {
				if cur.Name != "owner" {
					return fmt.Errorf("guard gave %s", cur.Name)
				}
				return tx.Put(pod(fmt.Sprintf("p%03d", i), "x", "n"))
			})
		}
		return ops
	}
	count := func(st store.Store) int {
		var n int
		_ = st.View(func(tx store.Tx) error {
			pods, err := store.ListShared[api.Pod](tx, "")
			n = len(pods) - 1 // not the owner
			return err
		})
		return n
	}
	guard := func(stale func() bool) func(tx store.Tx) (*api.Pod, error) {
		return func(tx store.Tx) (*api.Pod, error) {
			if stale() {
				return nil, ErrStale
			}
			return store.Get[api.Pod](tx, "default", "owner")
		}
	}
	never := func() bool { return false }

	t.Run("in batches", func(t *testing.T) {
		st := &countingStore{Store: store.NewMemory()}
		put(t, st.Store, owner)
		if err := Guarded(st, 4, guard(never), mkOps(10)); err != nil {
			t.Fatal(err)
		}
		if st.updates != 3 || count(st) != 10 {
			t.Fatalf("%d transactions wrote %d pods, want 3 and 10", st.updates, count(st))
		}
	})
	t.Run("all in one", func(t *testing.T) {
		st := &countingStore{Store: store.NewMemory()}
		put(t, st.Store, owner)
		if err := Guarded(st, 0, guard(never), mkOps(10)); err != nil {
			t.Fatal(err)
		}
		if st.updates != 1 || count(st) != 10 {
			t.Fatalf("%d transactions wrote %d pods, want 1 and 10", st.updates, count(st))
		}
	})
	t.Run("stale midway", func(t *testing.T) {
		st := &countingStore{Store: store.NewMemory()}
		put(t, st.Store, owner)
		calls := 0
		if err := Guarded(st, 4, guard(func() bool { calls++; return calls > 1 }), mkOps(10)); err != nil {
			t.Fatalf("a stale plan is no error: %v", err)
		}
		if count(st) != 4 {
			t.Fatalf("wrote %d pods, want the first batch's 4 only", count(st))
		}
	})
	t.Run("a failed op", func(t *testing.T) {
		st := store.NewMemory()
		put(t, st, owner)
		broken := errors.New("broken")
		ops := append(mkOps(2), func(store.Tx, *api.Pod) error { return broken })
		if err := Guarded(st, 0, guard(never), ops); !errors.Is(err, broken) {
			t.Fatalf("Guarded = %v, want the op's error", err)
		}
		if count(st) != 0 {
			t.Fatalf("wrote %d pods of a failed transaction", count(st))
		}
	})
}

func TestDeleteAll(t *testing.T) {
	st := &countingStore{Store: store.NewMemory()}
	var keys []store.Key
	var pods []api.Object
	for i := range Batch + 10 {
		p := pod(fmt.Sprintf("p%04d", i), "u", "n")
		pods = append(pods, p)
		keys = append(keys, store.KeyOf(p))
	}
	put(t, st.Store, pods[1:]...) // the first is gone already
	if err := DeleteAll(st, keys); err != nil {
		t.Fatal(err)
	}
	if st.updates != 2 {
		t.Fatalf("%d transactions, want 2", st.updates)
	}
	_ = st.View(func(tx store.Tx) error {
		left, err := store.ListShared[api.Pod](tx, "")
		if len(left) != 0 {
			t.Fatalf("%d pods left", len(left))
		}
		return err
	})
}

func TestUnheard(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ready := func(name string) *api.Node {
		n := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name}}
		n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
		return n
	}
	heard := func(name string, at time.Time) *lease.Lease {
		l := lease.New(name)
		l.RenewTime = api.NewTime(at)
		return l
	}
	st := store.NewMemory()
	nodes := []*api.Node{ready("a"), ready("b")}
	put(t, st, nodes[0], nodes[1], heard("a", t0.Add(-time.Minute)), heard("b", t0.Add(-time.Minute)))
	read := func(u *Unheard) map[string]bool {
		var got map[string]bool
		if err := st.View(func(tx store.Tx) error {
			var err error
			got, err = u.Read(tx, nodes)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}

	var u Unheard
	if got := read(&u); got != nil {
		t.Fatalf("not started: %v, want none", got)
	}
	u.Start(t0)
	if !u.Looking() {
		t.Fatal("started, and not looking")
	}
	if got := read(&u); !maps.Equal(got, map[string]bool{"a": true, "b": true}) {
		t.Fatalf("at the start: %v, want both", got)
	}
	put(t, st, heard("a", t0.Add(time.Second)))
	if got := read(&u); !maps.Equal(got, map[string]bool{"b": true}) {
		t.Fatalf("after a reported: %v, want b", got)
	}
	put(t, st, heard("b", t0.Add(time.Second)))
	if got := read(&u); got != nil {
		t.Fatalf("after both reported: %v, want none", got)
	}
	// Heard from every node: it stops looking, even at a lease from
	// before (a node that went quiet since is node lifecycle's business).
	put(t, st, heard("b", t0.Add(-time.Hour)))
	if got := read(&u); got != nil || u.Looking() {
		t.Fatalf("looked again: %v", got)
	}
}
