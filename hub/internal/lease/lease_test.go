package lease

import (
	"maps"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func node(name string, ready bool, seen time.Time) *api.Node {
	n := &api.Node{ObjectMeta: api.ObjectMeta{Name: name}}
	st := api.ConditionTrue
	if !ready {
		st = api.ConditionUnknown
	}
	n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: st}}
	n.Status.LastSeen = api.NewTime(seen)
	return n
}

func leaseAt(name string, t time.Time) *Lease {
	l := New(name)
	l.RenewTime = api.NewTime(t)
	return l
}

func TestUnheard(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := t0.Add(time.Minute)
	nodes := []*api.Node{
		node("d", true, t0),                     // heard by its lease since the start
		node("a", true, t0),                     // not heard since
		node("c", true, start.Add(time.Second)), // heard: the node's own record is newer
		node("b", false, t0),                    // NotReady: nothing to wait for
		node("e", true, t0),                     // no lease at all
	}
	leases := []*Lease{leaseAt("e", t0), leaseAt("a", t0.Add(30*time.Second)), leaseAt("d", start), leaseAt("zz", start)}
	got := Unheard(nodes, leases, start)
	if want := map[string]bool{"a": true, "e": true}; !maps.Equal(got, want) {
		t.Fatalf("Unheard = %v, want %v", got, want)
	}
	if got := Unheard(nodes, leases, t0); got != nil {
		t.Fatalf("every node heard since t0, got %v", got)
	}
}

func TestLastSeenAndJoin(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := node("n", true, t0)
	if got := LastSeen(n, nil); !got.Equal(t0) {
		t.Fatalf("LastSeen without a lease = %v", got)
	}
	l := leaseAt("n", t0.Add(time.Minute))
	l.Outbox = api.NodeOutbox{Queued: 3, Dropped: 1}
	if got := LastSeen(n, l); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("LastSeen = %v, want the lease's renewal", got)
	}
	Join(n, l)
	if !n.Status.LastSeen.Equal(t0.Add(time.Minute)) || n.Status.Outbox.Queued != 3 || n.Status.Outbox.Dropped != 1 {
		t.Fatalf("joined status = %+v", n.Status)
	}
	// An older lease does not move lastSeen back.
	Join(n, leaseAt("n", t0))
	if !n.Status.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("lastSeen went back to %v", n.Status.LastSeen)
	}
}
