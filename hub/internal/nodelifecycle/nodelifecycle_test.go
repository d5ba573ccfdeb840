package nodelifecycle

import (
	"testing"
	"time"

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
				ContainerStatuses: []api.ContainerStatus{{Name: "c", Ready: true}}}}
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
	c := New(Options{Store: st, Grace: 40 * time.Second, Now: func() time.Time { return t0 }})
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	var quiet, chatty *api.Node
	var p1, p2 *api.Pod
	_ = st.View(func(tx store.Tx) error {
		quiet, _ = store.Get[api.Node](tx, api.KindNode, "", "quiet")
		chatty, _ = store.Get[api.Node](tx, api.KindNode, "", "chatty")
		p1, _ = store.Get[api.Pod](tx, api.KindPod, "default", "p1")
		p2, _ = store.Get[api.Pod](tx, api.KindPod, "default", "p2")
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
