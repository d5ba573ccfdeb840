package daemonset

import (
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

var now = api.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

func ds(name string, nodeSelector map[string]string) *api.DaemonSet {
	return &api.DaemonSet{
		TypeMeta:   api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindDaemonSet},
		ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name, Generation: 1},
		Spec: api.DaemonSetSpec{
			Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: api.PodTemplateSpec{
				ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: api.PodSpec{
					NodeSelector:  nodeSelector,
					RestartPolicy: api.RestartAlways,
					Containers:    []api.Container{{Name: "c", Image: "reg/" + name + ":v1"}},
				},
			},
		},
	}
}

func node(name string, labels map[string]string) *api.Node {
	return &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name, Labels: labels}}
}

func podNodes(pods []*api.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Spec.NodeName)
	}
	sort.Strings(out)
	return out
}

func TestPlanSelectsMatchingNodes(t *testing.T) {
	nodes := []*api.Node{
		node("a", map[string]string{"site": "lab", "kubernetes.io/arch": "arm64"}),
		node("b", map[string]string{"site": "lab", "kubernetes.io/arch": "amd64"}),
		node("c", map[string]string{"site": "field"}),
		node("d", nil),
	}
	for _, tc := range []struct {
		name     string
		selector map[string]string
		want     []string
	}{
		{"no selector runs everywhere", nil, []string{"a", "b", "c", "d"}},
		{"one label", map[string]string{"site": "lab"}, []string{"a", "b"}},
		{"two labels", map[string]string{"site": "lab", "kubernetes.io/arch": "arm64"}, []string{"a"}},
		{"no match", map[string]string{"site": "mars"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Plan([]*api.DaemonSet{ds("x", tc.selector)}, nodes, nil, now)
			if got := podNodes(res.Create); !slices.Equal(got, tc.want) {
				t.Fatalf("pods on %v, want %v", got, tc.want)
			}
			if len(res.Status) != 1 || int(res.Status[0].Status.DesiredNumberScheduled) != len(tc.want) {
				t.Fatalf("status = %+v", res.Status)
			}
			for _, p := range res.Create {
				if !p.IsControlledBy("uid-x") || p.Labels[LabelTemplateHash] == "" || p.Labels["app"] != "x" || p.UID == "" {
					t.Fatalf("pod %s lacks owner, labels or uid: %+v", p.Name, p.ObjectMeta)
				}
				if p.Name != PodName("x", p.Spec.NodeName) {
					t.Fatalf("pod name %s", p.Name)
				}
			}
		})
	}
}

// apply simulates the store applying a plan, for multi-pass tests.
func applyPlan(pods []*api.Pod, res *Result) []*api.Pod {
	del := map[store.Key]bool{}
	for _, k := range res.Delete {
		del[k] = true
	}
	byKey := map[store.Key]*api.Pod{}
	for _, p := range pods {
		if !del[store.KeyOf(p)] {
			byKey[store.KeyOf(p)] = p
		}
	}
	for _, p := range append(res.Create, res.Update...) {
		byKey[store.KeyOf(p)] = p
	}
	var out []*api.Pod
	for _, p := range byKey {
		out = append(out, p)
	}
	return out
}

func TestPlanConverges(t *testing.T) {
	d := ds("x", map[string]string{"site": "lab"})
	nodes := []*api.Node{node("a", map[string]string{"site": "lab"}), node("b", map[string]string{"site": "lab"})}
	pods := applyPlan(nil, Plan([]*api.DaemonSet{d}, nodes, nil, now))
	if len(pods) != 2 {
		t.Fatalf("pods = %d", len(pods))
	}
	// A second pass with the same state does nothing (status aside).
	d.Status = Plan([]*api.DaemonSet{d}, nodes, pods, now).Status[0].Status
	if res := Plan([]*api.DaemonSet{d}, nodes, pods, now); !res.Empty() {
		t.Fatalf("second pass not empty: %+v", res)
	}

	// Node b leaves the selector: its pod goes.
	nodes[1].Labels = map[string]string{"site": "field"}
	res := Plan([]*api.DaemonSet{d}, nodes, pods, now)
	if len(res.Delete) != 1 || res.Delete[0].Name != PodName("x", "b") || len(res.Create) != 0 {
		t.Fatalf("plan = %+v", res)
	}
	pods = applyPlan(pods, res)

	// The template changes: the remaining pod is updated in place.
	uid := pods[0].UID
	d.Spec.Template.Spec.Containers[0].Image = "reg/x:v2"
	res = Plan([]*api.DaemonSet{d}, nodes, pods, now)
	if len(res.Update) != 1 || res.Update[0].UID != uid || res.Update[0].Spec.Containers[0].Image != "reg/x:v2" || res.Update[0].Spec.NodeName != "a" {
		t.Fatalf("plan = %+v", res)
	}

	// A deleted node takes its pod with it.
	res = Plan([]*api.DaemonSet{d}, nil, pods, now)
	if len(res.Delete) != 1 {
		t.Fatalf("pod of a vanished node kept: %+v", res)
	}
}

func TestPlanCollectsOrphans(t *testing.T) {
	d := ds("x", nil)
	pods := Plan([]*api.DaemonSet{d}, []*api.Node{node("a", nil)}, nil, now).Create
	res := Plan(nil, []*api.Node{node("a", nil)}, pods, now)
	if len(res.Delete) != 1 {
		t.Fatalf("orphan pod kept: %+v", res)
	}
	// A pod owned by a DaemonSet recreated with the same name is an orphan too.
	d2 := ds("x", nil)
	d2.UID = "uid-new"
	res = Plan([]*api.DaemonSet{d2}, []*api.Node{node("a", nil)}, pods, now)
	if len(res.Delete) != 1 || len(res.Create) != 1 {
		t.Fatalf("plan = %+v", res)
	}
}

func TestStatusCounts(t *testing.T) {
	d := ds("x", nil)
	nodes := []*api.Node{node("a", nil), node("b", nil), node("c", nil)}
	pods := applyPlan(nil, Plan([]*api.DaemonSet{d}, nodes, nil, now))
	for _, p := range pods {
		if p.Spec.NodeName != "c" {
			p.Status.Conditions = []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}
		}
	}
	st := Plan([]*api.DaemonSet{d}, nodes, pods, now).Status[0].Status
	want := api.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3,
		NumberReady: 2, UpdatedNumberScheduled: 3, NumberAvailable: 2, NumberUnavailable: 1}
	if st != want {
		t.Fatalf("status = %+v, want %+v", st, want)
	}
}

func TestControllerWritesThroughStore(t *testing.T) {
	st := store.NewMemory()
	d := ds("x", nil)
	if err := st.Update(func(tx store.Tx) error {
		if err := tx.Put(d); err != nil {
			return err
		}
		return tx.Put(node("a", nil))
	}); err != nil {
		t.Fatal(err)
	}
	c := New(Options{Store: st, Now: func() time.Time { return now.Time }})
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	var pods []*api.Pod
	var got *api.DaemonSet
	_ = st.View(func(tx store.Tx) error {
		pods, _ = store.List[api.Pod](tx, api.KindPod, "default")
		got, _ = store.Get[api.DaemonSet](tx, api.KindDaemonSet, "default", "x")
		return nil
	})
	if len(pods) != 1 || got.Status.DesiredNumberScheduled != 1 {
		t.Fatalf("pods = %d, status = %+v", len(pods), got.Status)
	}
	// The next pass counts the new pod; after that the state is stable.
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	v := st.Version()
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	if st.Version() != v {
		t.Fatalf("an idle sync wrote to the store")
	}
}
