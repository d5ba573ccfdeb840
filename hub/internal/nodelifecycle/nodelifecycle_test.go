package nodelifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestSilentNodeBecomesNotReadyAndItsPodsUnknown(t *testing.T) {
	st := store.NewMemory()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	node := func(name string, lastSeen time.Time) *api.Node {
		n := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name}}
		n.Status.LastSeen = api.NewTime(lastSeen)
		n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
		return n
	}
	pod := func(name, nodeName string) *api.Pod {
		return &api.Pod{TypeMeta: api.TypeMeta{Kind: api.KindPod}, ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default"},
			Spec: api.PodSpec{NodeName: nodeName},
			Status: api.PodStatus{Phase: api.PodRunning, Conditions: []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}},
				ContainerStatuses: []api.ContainerStatus{{Name: "c", Ready: true}},
				HostIP:            "192.168.7.10", PodIP: "10.42.0.5", PodIPs: []api.PodIP{{IP: "10.42.0.5"}}}}
	}
	if err := st.Update(func(tx store.Tx) error {
		for _, o := range []api.Object{node("quiet", t0.Add(-time.Minute)), node("chatty", t0.Add(-time.Second)), pod("p1", "quiet"), pod("p2", "chatty")} {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c := startedBefore(st, t0)
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	var quiet, chatty *api.Node
	var p1, p2 *api.Pod
	_ = st.View(func(tx store.Tx) error {
		quiet, _ = store.Get[api.Node](tx, "", "quiet")
		chatty, _ = store.Get[api.Node](tx, "", "chatty")
		p1, _ = store.Get[api.Pod](tx, "default", "p1")
		p2, _ = store.Get[api.Pod](tx, "default", "p2")
		return nil
	})
	if quiet.IsReady() || quiet.Status.Condition(api.NodeReady).Status != api.ConditionUnknown {
		t.Fatalf("silent node still ready: %+v", quiet.Status.Conditions)
	}
	if !chatty.IsReady() {
		t.Fatalf("live node marked not ready")
	}
	if p1.Status.Phase != api.PodUnknown || p1.Status.Reason != ReasonNodeLost || p1.Status.ContainerStatuses[0].Ready {
		t.Fatalf("pod on a lost node = %+v", p1.Status)
	}
	// Its addresses stay: the endpoints controller lists it, not ready,
	// and it serves again as it was when its node comes back.
	if p1.Status.PodIP != "10.42.0.5" || len(p1.Status.PodIPs) != 1 || p1.Status.PodIPs[0].IP != "10.42.0.5" || p1.Status.HostIP != "192.168.7.10" {
		t.Fatalf("marking a pod lost changed its addresses: %+v", p1.Status)
	}
	if p2.Status.Phase != api.PodRunning {
		t.Fatalf("pod on a live node changed: %+v", p2.Status)
	}
	// A second pass changes nothing more.
	v := st.Version()
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	if st.Version() != v {
		t.Fatalf("an idle pass wrote")
	}
}

// startedBefore returns a controller that started well before t0 and
// whose clock now reads t0.
func startedBefore(st store.Store, t0 time.Time) *Controller {
	now := t0.Add(-10 * time.Minute)
	c := New(Options{Store: st, Grace: 40 * time.Second, Now: func() time.Time { return now }})
	now = t0
	return c
}

// TestLeaseKeepsANodeReady: what counts is the later of the node's own
// lastSeen and its lease's renewal; and a hub that has just started gives
// every node a whole grace period from its start.
func TestLeaseKeepsANodeReady(t *testing.T) {
	st := store.NewMemory()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := func(name string) *api.Node {
		n := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name}}
		n.Status.LastSeen = api.NewTime(t0.Add(-time.Hour))
		n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
		return n
	}
	renewed := lease.New("renewed")
	renewed.RenewTime = api.NewTime(t0.Add(-5 * time.Second))
	if err := st.Update(func(tx store.Tx) error {
		for _, o := range []api.Object{old("renewed"), old("silent"), renewed} {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ready := func() map[string]bool { return readiness(st) }
	// Just started at t0: an hour-old lastSeen is not yet silent.
	now := t0
	c := New(Options{Store: st, Grace: 40 * time.Second, Now: func() time.Time { return now }})
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := ready(); !got["renewed"] || !got["silent"] {
		t.Fatalf("right after the hub started: %v", got)
	}
	// A grace period later, the node without a renewal is NotReady and
	// the one whose lease is renewed stays Ready.
	now = t0.Add(41 * time.Second)
	if err := st.Update(func(tx store.Tx) error {
		renewed.RenewTime = api.NewTime(now.Add(-5 * time.Second))
		return tx.Put(renewed)
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := ready(); !got["renewed"] || got["silent"] {
		t.Fatalf("a grace period after the start: %v", got)
	}
}

// TestManySilentNodesInBatches: a whole fleet silent at once (after a hub
// outage) is marked in several transactions, pods within two passes.
func TestManySilentNodesInBatches(t *testing.T) {
	st := store.NewMemory()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 2*writeBatch + 50
	if err := st.Update(func(tx store.Tx) error {
		for i := range n {
			name := fmt.Sprintf("n%03d", i)
			nd := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name}}
			nd.Status.LastSeen = api.NewTime(t0.Add(-time.Minute))
			nd.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
			p := &api.Pod{TypeMeta: api.TypeMeta{Kind: api.KindPod}, ObjectMeta: api.ObjectMeta{Name: "p-" + name, Namespace: "default"},
				Spec: api.PodSpec{NodeName: name}, Status: api.PodStatus{Phase: api.PodRunning}}
			if err := tx.Put(nd); err != nil {
				return err
			}
			if err := tx.Put(p); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c := startedBefore(st, t0)
	for range 2 {
		if err := c.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.View(func(tx store.Tx) error {
		nodes, err := store.List[api.Node](tx, "")
		if err != nil {
			return err
		}
		pods, err := store.List[api.Pod](tx, "")
		if err != nil {
			return err
		}
		for _, nd := range nodes {
			if nd.IsReady() {
				t.Errorf("node %s still Ready", nd.Name)
			}
		}
		for _, p := range pods {
			if p.Status.Reason != ReasonNodeLost {
				t.Errorf("pod %s: reason %q", p.Name, p.Status.Reason)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBrokerOutageIsNotTheNodes: while the hub's own connection to an
// external broker is down no node is marked for its silence, and once it
// is back every node has a whole grace period to be heard again; after
// that, a node still silent is NotReady.
func TestBrokerOutageIsNotTheNodes(t *testing.T) {
	st := store.NewMemory()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, name := range []string{"back", "gone"} {
		n := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name}}
		n.Status.LastSeen = api.NewTime(t0)
		n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
		if err := st.Update(func(tx store.Tx) error { return tx.Put(n) }); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(-10 * time.Minute)
	c := New(Options{Store: st, Grace: 40 * time.Second, Now: func() time.Time { return now }})
	ready := func() map[string]bool {
		if err := c.Sync(); err != nil {
			t.Fatal(err)
		}
		return readiness(st)
	}
	// The broker goes away 10 s after both nodes were heard, for a minute.
	now = t0.Add(10 * time.Second)
	c.BrokerLost()
	now = t0.Add(70 * time.Second)
	if got := ready(); !got["back"] || !got["gone"] {
		t.Fatalf("during the broker outage: %v", got)
	}
	c.BrokerConnected()
	now = t0.Add(100 * time.Second)
	if got := ready(); !got["back"] || !got["gone"] {
		t.Fatalf("30 s after the broker came back: %v", got)
	}
	if err := st.Update(func(tx store.Tx) error {
		l := lease.New("back")
		l.RenewTime = api.NewTime(now)
		return tx.Put(l)
	}); err != nil {
		t.Fatal(err)
	}
	now = t0.Add(111 * time.Second)
	if got := ready(); !got["back"] || got["gone"] {
		t.Fatalf("a grace period after the broker came back: %v, want only gone NotReady", got)
	}
}

// readiness returns whether each stored node is Ready, by name.
func readiness(st store.Store) map[string]bool {
	out := map[string]bool{}
	_ = st.View(func(tx store.Tx) error {
		nodes, _ := store.List[api.Node](tx, "")
		for _, n := range nodes {
			out[n.Name] = n.IsReady()
		}
		return nil
	})
	return out
}

// TestRunChecksEveryPeriod: Run checks on its own, every period, with no
// change in the store to wake it (silence is nothing changing), and
// returns when its context ends.
func TestRunChecksEveryPeriod(t *testing.T) {
	st := store.NewMemory()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "quiet"}}
	n.Status.LastSeen = api.NewTime(t0)
	n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	if err := st.Update(func(tx store.Tx) error { return tx.Put(n) }); err != nil {
		t.Fatal(err)
	}
	var now atomic.Pointer[time.Time]
	now.Store(&t0)
	c := New(Options{Store: st, Grace: 40 * time.Second, Period: 5 * time.Millisecond, Now: func() time.Time { return *now.Load() },
		Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := st.Watch(ctx, api.KindNode)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	later := t0.Add(time.Minute)
	now.Store(&later) // the node has been silent past its grace period
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("Run never marked the silent node")
	}
	if readiness(st)["quiet"] {
		t.Fatal("the silent node is still Ready")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
