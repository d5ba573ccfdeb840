package daemonset

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/rollout"
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

// node returns a Ready node.
func node(name string, labels map[string]string) *api.Node {
	n := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name, Labels: labels}}
	setNodeReady(n, true)
	return n
}

func setNodeReady(n *api.Node, ready bool) {
	status := api.ConditionFalse
	if ready {
		status = api.ConditionTrue
	}
	n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: status}}
}

func podNodes(pods []*api.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Spec.NodeName)
	}
	sort.Strings(out)
	return out
}

func plan1(dss []*api.DaemonSet, nodes []*api.Node, pods []*api.Pod) *Result {
	return Plan(Input{DaemonSets: dss, Nodes: nodes, Pods: pods, Now: now})
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
			res := plan1([]*api.DaemonSet{ds("x", tc.selector)}, nodes, nil)
			set := res.Sets[0]
			if got := podNodes(set.Create); !slices.Equal(got, tc.want) {
				t.Fatalf("pods on %v, want %v", got, tc.want)
			}
			if set.Status == nil || int(set.Status.DesiredNumberScheduled) != len(tc.want) {
				t.Fatalf("status = %+v", set.Status)
			}
			if len(set.CreateRevisions) != 1 || set.CreateRevisions[0].Revision != 1 {
				t.Fatalf("revisions = %+v", set.CreateRevisions)
			}
			for _, p := range set.Create {
				if !p.IsControlledBy("uid-x") || p.Labels[LabelTemplateHash] == "" || p.Labels["app"] != "x" || p.UID == "" {
					t.Fatalf("pod %s lacks owner, labels or uid: %+v", p.Name, p.ObjectMeta)
				}
				if p.Name != PodName("x", p.Spec.NodeName) {
					t.Fatalf("pod name %s", p.Name)
				}
				if p.Annotations[rollout.AnnotationUpdatedAt] != "2026-01-01T00:00:00Z" {
					t.Fatalf("pod annotations %v", p.Annotations)
				}
			}
		})
	}
}

// applyPlan simulates the store applying a plan, for multi-pass tests.
func applyPlan(pods []*api.Pod, res *Result) []*api.Pod {
	del := map[store.Key]bool{}
	for _, k := range res.Orphans {
		del[k] = true
	}
	var put []*api.Pod
	for _, s := range res.Sets {
		for _, k := range s.Delete {
			del[k] = true
		}
		put = append(put, s.Create...)
		put = append(put, s.Update...)
	}
	byKey := map[store.Key]*api.Pod{}
	for _, p := range pods {
		if !del[store.KeyOf(p)] {
			byKey[store.KeyOf(p)] = p
		}
	}
	for _, p := range put {
		byKey[store.KeyOf(p)] = p
	}
	var out []*api.Pod
	for _, p := range byKey {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func TestPlanConverges(t *testing.T) {
	d := ds("x", map[string]string{"site": "lab"})
	nodes := []*api.Node{node("a", map[string]string{"site": "lab"}), node("b", map[string]string{"site": "lab"})}
	res := plan1([]*api.DaemonSet{d}, nodes, nil)
	pods := applyPlan(nil, res)
	if len(pods) != 2 {
		t.Fatalf("pods = %d", len(pods))
	}
	revs := res.Sets[0].CreateRevisions
	// A second pass with the same state does nothing (status aside).
	d.Status = *Plan(Input{DaemonSets: []*api.DaemonSet{d}, Nodes: nodes, Pods: pods, Revisions: revs, Now: now}).Sets[0].Status
	if res := Plan(Input{DaemonSets: []*api.DaemonSet{d}, Nodes: nodes, Pods: pods, Revisions: revs, Now: now}); !res.Empty() {
		t.Fatalf("second pass not empty: %+v", res.Sets[0])
	}

	// Node b leaves the selector: its pod goes.
	nodes[1].Labels = map[string]string{"site": "field"}
	res = plan1([]*api.DaemonSet{d}, nodes, pods)
	if s := res.Sets[0]; len(s.Delete) != 1 || s.Delete[0].Name != PodName("x", "b") || len(s.Create) != 0 {
		t.Fatalf("plan = %+v", s)
	}
	pods = applyPlan(pods, res)

	// The template changes: the remaining pod is moved in place.
	uid := pods[0].UID
	d.Spec.Template.Spec.Containers[0].Image = "reg/x:v2"
	res = plan1([]*api.DaemonSet{d}, nodes, pods)
	s := res.Sets[0]
	if len(s.Update) != 1 || s.Update[0].UID != uid || s.Update[0].Spec.Containers[0].Image != "reg/x:v2" || s.Update[0].Spec.NodeName != "a" {
		t.Fatalf("plan = %+v", s)
	}
	if s.Update[0].Annotations[api.AnnotationProgressDeadline] != "600" || s.Update[0].Annotations[rollout.AnnotationUpdatedAt] == "" {
		t.Fatalf("moved pod annotations = %v", s.Update[0].Annotations)
	}

	// A deleted node takes its pod with it.
	res = plan1([]*api.DaemonSet{d}, nil, pods)
	if len(res.Sets[0].Delete) != 1 {
		t.Fatalf("pod of a vanished node kept: %+v", res.Sets[0])
	}
}

func TestPlanCollectsOrphans(t *testing.T) {
	d := ds("x", nil)
	first := plan1([]*api.DaemonSet{d}, []*api.Node{node("a", nil)}, nil)
	pods, revs := first.Sets[0].Create, first.Sets[0].CreateRevisions
	res := Plan(Input{Nodes: []*api.Node{node("a", nil)}, Pods: pods, Revisions: revs, Now: now})
	if len(res.Orphans) != 2 {
		t.Fatalf("orphan pod and revision kept: %+v", res)
	}
	// A pod owned by a DaemonSet recreated with the same name is an orphan too.
	d2 := ds("x", nil)
	d2.UID = "uid-new"
	res = plan1([]*api.DaemonSet{d2}, []*api.Node{node("a", nil)}, pods)
	if len(res.Orphans) != 1 || len(res.Sets[0].Create) != 1 {
		t.Fatalf("plan = %+v", res)
	}
}

func ready(p *api.Pod) {
	p.Status.Phase = api.PodRunning
	p.Status.SpecHash = api.HashPodSpec(&p.Spec)
	p.Status.Conditions = []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}
}

func TestStatusCounts(t *testing.T) {
	d := ds("x", nil)
	nodes := []*api.Node{node("a", nil), node("b", nil), node("c", nil)}
	pods := applyPlan(nil, plan1([]*api.DaemonSet{d}, nodes, nil))
	for _, p := range pods {
		if p.Spec.NodeName != "c" {
			ready(p)
		}
	}
	st := *plan1([]*api.DaemonSet{d}, nodes, pods).Sets[0].Status
	ro := st.Rollout
	st.Rollout = nil
	want := api.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 3, CurrentNumberScheduled: 3,
		NumberReady: 2, UpdatedNumberScheduled: 3, NumberAvailable: 2, NumberUnavailable: 1}
	if !controller.Equal(st, want) {
		t.Fatalf("status = %+v, want %+v", st, want)
	}
	if ro == nil || ro.Revision != 1 || ro.Updated != 3 || ro.Ready != 2 || ro.Unavailable != 1 || ro.Total != 3 || ro.Phase != api.RolloutProgressing {
		t.Fatalf("rollout = %+v", ro)
	}
	// A pod Ready on a spec the agent no longer runs is not ready.
	for _, p := range pods {
		if p.Spec.NodeName == "a" {
			p.Status.SpecHash = "old"
		}
	}
	if st := plan1([]*api.DaemonSet{d}, nodes, pods).Sets[0].Status; st.NumberReady != 1 {
		t.Fatalf("stale ready counted: %+v", st)
	}
}

// sim is a fleet in a memory store, with a controller and simulated agents.
type sim struct {
	t     *testing.T
	st    store.Store
	clock time.Time
	c     *Controller
	// history[node] is every template hash the node's pod had, in order.
	history map[string][]string
}

func newSim(t *testing.T, d *api.DaemonSet, nodes int) *sim {
	t.Helper()
	s := &sim{t: t, st: store.NewMemory(), clock: now.Time, history: map[string][]string{}}
	s.update(func(tx store.Tx) error {
		if err := tx.Put(d); err != nil {
			return err
		}
		for i := 0; i < nodes; i++ {
			if err := tx.Put(node(fmt.Sprintf("n%02d", i), map[string]string{"ring": fmt.Sprint(i % 3)})); err != nil {
				return err
			}
		}
		return nil
	})
	s.restart()
	return s
}

// restart replaces the controller with a new one over the same store, as a
// restarted hub would have.
func (s *sim) restart() {
	s.c = New(Options{Store: s.st, Now: func() time.Time { return s.clock }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func (s *sim) update(f func(tx store.Tx) error) {
	s.t.Helper()
	if err := s.st.Update(f); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sim) sync() {
	s.t.Helper()
	if err := s.c.Sync(); err != nil {
		s.t.Fatal(err)
	}
	// The controller reads the store's shared objects: it must not have
	// changed any.
	if err := store.VerifyShared(s.st); err != nil {
		s.t.Fatal(err)
	}
	for _, p := range s.pods() {
		h := s.history[p.Spec.NodeName]
		if len(h) == 0 || h[len(h)-1] != p.Labels[LabelTemplateHash] {
			s.history[p.Spec.NodeName] = append(h, p.Labels[LabelTemplateHash])
		}
	}
}

func (s *sim) pods() []*api.Pod {
	var pods []*api.Pod
	_ = s.st.View(func(tx store.Tx) error {
		var err error
		pods, err = store.List[api.Pod](tx, "")
		return err
	})
	return pods
}

func (s *sim) ds(name string) *api.DaemonSet {
	var d *api.DaemonSet
	_ = s.st.View(func(tx store.Tx) error {
		var err error
		d, err = store.Get[api.DaemonSet](tx, "default", name)
		return err
	})
	return d
}

func (s *sim) revisions() []*api.ControllerRevision {
	var revs []*api.ControllerRevision
	_ = s.st.View(func(tx store.Tx) error {
		var err error
		revs, err = store.List[api.ControllerRevision](tx, "")
		return err
	})
	sort.Slice(revs, func(i, j int) bool { return revs[i].Revision < revs[j].Revision })
	return revs
}

func (s *sim) editDS(name string, f func(d *api.DaemonSet)) {
	s.update(func(tx store.Tx) error {
		d, err := store.Get[api.DaemonSet](tx, "default", name)
		if err != nil {
			return err
		}
		f(d)
		d.Generation++
		return tx.Put(d)
	})
}

func (s *sim) setNode(name string, online bool) {
	s.update(func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, "", name)
		if err != nil {
			return err
		}
		setNodeReady(n, online)
		return tx.Put(n)
	})
}

// agents lets the agent of every online node report on its pod: report
// returns the status to store, or nil to stay silent.
func (s *sim) agents(report func(p *api.Pod) *api.PodStatus) {
	s.update(func(tx store.Tx) error {
		pods, err := store.List[api.Pod](tx, "")
		if err != nil {
			return err
		}
		for _, p := range pods {
			n, err := store.Get[api.Node](tx, "", p.Spec.NodeName)
			if err != nil || !n.IsReady() {
				continue
			}
			if st := report(p); st != nil {
				p.Status = *st
				if err := tx.Put(p); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// healthy is an agent that runs whatever it is sent, Ready at once.
func healthy(p *api.Pod) *api.PodStatus {
	if p.Status.SpecHash == api.HashPodSpec(&p.Spec) && p.IsReady() {
		return nil
	}
	cp := *p
	ready(&cp)
	return &cp.Status
}

// unavailable counts online nodes whose pod is not Ready on its spec.
func (s *sim) unavailable() int {
	online := map[string]bool{}
	_ = s.st.View(func(tx store.Tx) error {
		nodes, _ := store.List[api.Node](tx, "")
		for _, n := range nodes {
			online[n.Name] = n.IsReady()
		}
		return nil
	})
	n := 0
	for _, p := range s.pods() {
		hash := api.HashPodSpec(&p.Spec)
		reverted := p.Status.Reverted != nil && p.Status.Reverted.FromSpecHash == hash
		if online[p.Spec.NodeName] && !(p.IsReady() && (p.Status.SpecHash == hash || reverted)) {
			n++
		}
	}
	return n
}

func (s *sim) tick(d time.Duration) { s.clock = s.clock.Add(d) }

// start brings the DaemonSet up on every node and makes its pods Ready.
func (s *sim) start() {
	s.t.Helper()
	s.sync()
	s.agents(healthy)
	s.sync()
	if ro := s.ds("x").Status.Rollout; ro == nil || ro.Phase != api.RolloutComplete {
		s.t.Fatalf("DaemonSet not up: %+v", ro)
	}
}

func setImage(image string) func(d *api.DaemonSet) {
	return func(d *api.DaemonSet) { d.Spec.Template.Spec.Containers[0].Image = image }
}

func ioPtr(v api.IntOrString) *api.IntOrString { return &v }

func TestControllerWritesThroughStore(t *testing.T) {
	s := newSim(t, ds("x", nil), 1)
	s.sync()
	if pods := s.pods(); len(pods) != 1 || s.ds("x").Status.DesiredNumberScheduled != 1 {
		t.Fatalf("pods = %d, status = %+v", len(pods), s.ds("x").Status)
	}
	// The next pass counts the new pod; after that the state is stable.
	s.sync()
	v := s.st.Version()
	s.sync()
	if s.st.Version() != v {
		t.Fatalf("an idle sync wrote to the store")
	}
}

// rollOut drives passes and agents until the rollout is Complete, checking
// at every step that no more than maxU online nodes are unavailable and
// that no node goes back to an older template.
func (s *sim) rollOut(maxU int, report func(p *api.Pod) *api.PodStatus, maxPasses int) *api.DaemonSet {
	s.t.Helper()
	for pass := 0; pass < maxPasses; pass++ {
		s.sync()
		if u := s.unavailable(); u > maxU {
			s.t.Fatalf("pass %d: %d nodes unavailable, budget %d", pass, u, maxU)
		}
		d := s.ds("x")
		ro := d.Status.Rollout
		if ro != nil && ro.TemplateHash == api.HashTemplate(&d.Spec.Template) {
			switch ro.Phase {
			case api.RolloutComplete, api.RolloutFailed, api.RolloutPaused:
				return d
			case api.RolloutRolledBack:
				if ro.Updated == ro.Total && ro.Ready == ro.Total {
					return d
				}
			}
		}
		s.agents(report)
		s.tick(time.Second)
	}
	s.t.Fatalf("rollout not finished after %d passes: %+v", maxPasses, s.ds("x").Status.Rollout)
	return nil
}

func TestRollingUpdateKeepsBudget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		unav  api.IntOrString
		nodes int
		maxU  int
	}{
		{"maxUnavailable 1", api.FromInt(1), 10, 1},
		{"maxUnavailable 3", api.FromInt(3), 10, 3},
		{"maxUnavailable 10% of 15", api.FromString("10%"), 15, 1},
		{"maxUnavailable 20% of 15", api.FromString("20%"), 15, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := ds("x", nil)
			d.Spec.UpdateStrategy = api.DaemonSetUpdateStrategy{Type: api.RollingUpdateStrategy,
				RollingUpdate: &api.RollingUpdateDaemonSet{MaxUnavailable: ioPtr(tc.unav)}}
			s := newSim(t, d, tc.nodes)
			s.start()
			s.editDS("x", setImage("reg/x:v2"))
			// Agents take two passes to make a moved pod Ready.
			slow := map[string]int{}
			agent := func(p *api.Pod) *api.PodStatus {
				if p.Status.SpecHash == api.HashPodSpec(&p.Spec) {
					return nil
				}
				if slow[p.Name]++; slow[p.Name] < 2 {
					return nil
				}
				return healthy(p)
			}
			d = s.rollOut(tc.maxU, agent, 200)
			if ro := d.Status.Rollout; ro.Phase != api.RolloutComplete || ro.Updated != int32(tc.nodes) || ro.Revision != 2 || ro.LastGoodRevision != 2 {
				t.Fatalf("rollout = %+v", ro)
			}
			if d.Status.UpdatedNumberScheduled != int32(tc.nodes) || d.Status.NumberAvailable != int32(tc.nodes) {
				t.Fatalf("status = %+v", d.Status)
			}
			for node, h := range s.history {
				if len(h) != 2 {
					t.Fatalf("node %s went through %v", node, h)
				}
			}
			// Pod identity survives the update.
			for _, p := range s.pods() {
				if p.Name != PodName("x", p.Spec.NodeName) {
					t.Fatalf("pod renamed: %s", p.Name)
				}
			}
		})
	}
}

func TestHubRestartMidRollout(t *testing.T) {
	d := ds("x", nil)
	s := newSim(t, d, 8)
	s.start()
	s.editDS("x", setImage("reg/x:v2"))
	for pass := 0; pass < 40; pass++ {
		if pass%3 == 0 {
			s.restart() // a new controller over the same store
		}
		s.sync()
		if u := s.unavailable(); u > 1 {
			t.Fatalf("pass %d: %d unavailable", pass, u)
		}
		if pass%2 == 1 {
			s.agents(healthy)
		}
		s.tick(time.Second)
	}
	if ro := s.ds("x").Status.Rollout; ro.Phase != api.RolloutComplete {
		t.Fatalf("rollout = %+v", ro)
	}
	for node, h := range s.history {
		if len(h) != 2 {
			t.Fatalf("node %s went through %v", node, h)
		}
	}
}

func TestRestartKeepsDeadline(t *testing.T) {
	d := ds("x", nil)
	d.Spec.Rollout = &api.RolloutSpec{ProgressDeadlineSeconds: int32p(30)}
	s := newSim(t, d, 3)
	s.start()
	s.editDS("x", setImage("reg/x:bad"))
	s.sync() // n00 moved; its agent never makes it Ready
	s.tick(20 * time.Second)
	s.restart()
	s.sync()
	if ro := s.ds("x").Status.Rollout; ro.Phase != api.RolloutProgressing || ro.Failed != 0 {
		t.Fatalf("rollout = %+v", ro)
	}
	s.tick(11 * time.Second)
	s.restart()
	s.sync()
	ro := s.ds("x").Status.Rollout
	if ro.Phase != api.RolloutFailed || ro.Failed != 1 || len(ro.FailedNodes) != 1 || ro.FailedNodes[0].Node != "n00" {
		t.Fatalf("rollout = %+v", ro)
	}
	// Failed with onFailure Pause: nothing else moves.
	s.sync()
	if ro := s.ds("x").Status.Rollout; ro.Updated != 1 {
		t.Fatalf("rollout went on after failing: %+v", ro)
	}
}

func int32p(v int32) *int32 { return &v }

func TestCanaryThenResume(t *testing.T) {
	d := ds("x", nil)
	one := api.FromInt(1)
	d.Spec.Rollout = &api.RolloutSpec{Canary: &api.CanarySpec{Count: &one}}
	s := newSim(t, d, 5)
	s.start()
	s.editDS("x", setImage("reg/x:v2"))
	for i := 0; i < 6; i++ {
		s.sync()
		s.agents(healthy)
		s.tick(time.Second)
	}
	got := s.ds("x")
	ro := got.Status.Rollout
	if got.Spec.Rollout == nil || !got.Spec.Rollout.Paused || !ro.CanaryDone || ro.Phase != api.RolloutPaused || ro.Updated != 1 {
		t.Fatalf("after the canary: spec %+v, status %+v", got.Spec.Rollout, ro)
	}
	if !strings.Contains(ro.Message, "hub rollout resume") {
		t.Fatalf("message = %q", ro.Message)
	}
	// Resume, as `hub rollout resume` does.
	s.editDS("x", func(d *api.DaemonSet) { d.Spec.Rollout.Paused = false })
	d = s.rollOut(1, healthy, 50)
	if ro := d.Status.Rollout; ro.Phase != api.RolloutComplete || ro.Updated != 5 {
		t.Fatalf("rollout = %+v", ro)
	}
}

func TestCanaryBySelectorWithTimedPause(t *testing.T) {
	d := ds("x", nil)
	d.Spec.Rollout = &api.RolloutSpec{Canary: &api.CanarySpec{NodeSelector: map[string]string{"ring": "0"}, PauseSeconds: int32p(60)}}
	d.Spec.UpdateStrategy.RollingUpdate = &api.RollingUpdateDaemonSet{MaxUnavailable: ioPtr(api.FromInt(5))}
	s := newSim(t, d, 6) // ring 0: n00, n03
	s.start()
	s.editDS("x", setImage("reg/x:v2"))
	s.sync()
	var moved []string
	for _, p := range s.pods() {
		if p.Spec.Containers[0].Image == "reg/x:v2" {
			moved = append(moved, p.Spec.NodeName)
		}
	}
	if !slices.Equal(podSort(moved), []string{"n00", "n03"}) {
		t.Fatalf("canaries = %v", moved)
	}
	s.agents(healthy)
	s.sync()
	if ro := s.ds("x").Status.Rollout; ro.Phase != api.RolloutPaused || !ro.CanaryDone {
		t.Fatalf("rollout = %+v", ro)
	}
	s.tick(30 * time.Second)
	s.sync()
	if ro := s.ds("x").Status.Rollout; ro.Phase != api.RolloutPaused || ro.Updated != 2 {
		t.Fatalf("rollout = %+v", ro)
	}
	s.tick(31 * time.Second)
	s.sync() // the other four move (maxUnavailable 5)
	s.sync()
	if ro := s.ds("x").Status.Rollout; ro.Phase != api.RolloutProgressing || ro.Updated != 6 {
		t.Fatalf("rollout = %+v", ro)
	}
}

func podSort(s []string) []string { sort.Strings(s); return s }

// reverting is an agent that refuses image reg/x:bad: it keeps running its
// last good spec and says so.
func reverting(lastGood map[string]string) func(p *api.Pod) *api.PodStatus {
	return func(p *api.Pod) *api.PodStatus {
		hash := api.HashPodSpec(&p.Spec)
		if p.Spec.Containers[0].Image != "reg/x:bad" {
			lastGood[p.Name] = hash
			return healthy(p)
		}
		if r := p.Status.Reverted; r != nil && r.FromSpecHash == hash {
			return nil
		}
		cp := *p
		ready(&cp)
		cp.Status.SpecHash = lastGood[p.Name]
		cp.Status.Reverted = &api.PodRevert{FromSpecHash: hash, ToSpecHash: lastGood[p.Name], Reason: "CrashLoopBackOff: exited 1 three times"}
		return &cp.Status
	}
}

func TestRollbackOnFailures(t *testing.T) {
	d := ds("x", nil)
	d.Spec.Rollout = &api.RolloutSpec{MaxFailures: ioPtr(api.FromInt(1)), OnFailure: api.OnFailureRollback}
	s := newSim(t, d, 6)
	lastGood := map[string]string{}
	agent := reverting(lastGood)
	s.sync()
	s.agents(agent)
	s.sync()
	v1 := api.HashTemplate(&s.ds("x").Spec.Template)
	s.editDS("x", setImage("reg/x:bad"))
	var rolledBack *api.DaemonSet
	for pass := 0; pass < 40 && rolledBack == nil; pass++ {
		s.sync()
		if u := s.unavailable(); u > 1 {
			t.Fatalf("%d unavailable", u)
		}
		if got := s.ds("x"); got.Status.Rollout.Phase == api.RolloutRolledBack {
			rolledBack = got
		}
		s.agents(agent)
		s.tick(time.Second)
	}
	if rolledBack == nil {
		t.Fatalf("no rollback: %+v", s.ds("x").Status.Rollout)
	}
	// Two nodes failed (more than maxFailures 1), then the template went
	// back to revision 1, renumbered 3 as Kubernetes does.
	if api.HashTemplate(&rolledBack.Spec.Template) != v1 || rolledBack.Spec.Template.Spec.Containers[0].Image != "reg/x:v1" {
		t.Fatalf("template = %+v", rolledBack.Spec.Template)
	}
	if len(rolledBack.Status.Rollout.FailedNodes) != 2 || !strings.Contains(rolledBack.Status.Rollout.Message, "CrashLoopBackOff") {
		t.Fatalf("rollout = %+v", rolledBack.Status.Rollout)
	}
	d = s.rollOut(1, agent, 40)
	ro := d.Status.Rollout
	if ro.Phase != api.RolloutRolledBack || ro.Updated != 6 || ro.Revision != 3 || !strings.Contains(ro.Message, "rolled back") {
		t.Fatalf("rollout = %+v", ro)
	}
	for _, p := range s.pods() {
		if p.Labels[LabelTemplateHash] != v1 {
			t.Fatalf("pod %s on %s", p.Name, p.Labels[LabelTemplateHash])
		}
	}
	revs := s.revisions()
	if len(revs) != 2 || revs[0].Revision != 2 || revs[1].Revision != 3 || revs[1].Labels[LabelTemplateHash] != v1 {
		t.Fatalf("revisions = %+v", revs)
	}
	// A new template starts a normal rollout again.
	s.editDS("x", setImage("reg/x:v3"))
	d = s.rollOut(1, agent, 60)
	if ro := d.Status.Rollout; ro.Phase != api.RolloutComplete || ro.Revision != 4 || ro.LastGoodRevision != 4 {
		t.Fatalf("rollout = %+v", ro)
	}
}

func TestUndoToRevision(t *testing.T) {
	s := newSim(t, ds("x", nil), 3)
	s.start()
	for _, img := range []string{"reg/x:v2", "reg/x:v3"} {
		s.editDS("x", setImage(img))
		s.rollOut(1, healthy, 30)
	}
	revs := s.revisions()
	if len(revs) != 3 || revs[2].Revision != 3 {
		t.Fatalf("revisions = %+v", revs)
	}
	// `hub rollout undo --to-revision=1` puts revision 1's template back.
	s.editDS("x", func(d *api.DaemonSet) { d.Spec.Template = revs[0].Data })
	d := s.rollOut(1, healthy, 30)
	if d.Spec.Template.Spec.Containers[0].Image != "reg/x:v1" || d.Status.Rollout.Revision != 4 {
		t.Fatalf("undo: %+v", d.Status.Rollout)
	}
	revs = s.revisions()
	if len(revs) != 3 || revs[2].Data.Spec.Containers[0].Image != "reg/x:v1" || revs[2].Revision != 4 {
		t.Fatalf("revisions = %+v", revs)
	}
	for _, p := range s.pods() {
		if p.Spec.Containers[0].Image != "reg/x:v1" {
			t.Fatalf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
}

func TestRevisionHistoryLimit(t *testing.T) {
	d := ds("x", nil)
	d.Spec.RevisionHistoryLimit = int32p(2)
	s := newSim(t, d, 2)
	s.start()
	for i := 2; i <= 6; i++ {
		s.editDS("x", setImage(fmt.Sprintf("reg/x:v%d", i)))
		s.rollOut(1, healthy, 30)
	}
	s.sync() // the revision that became the last good one lets the one before go
	var nums []int64
	for _, r := range s.revisions() {
		nums = append(nums, r.Revision)
	}
	if !slices.Equal(nums, []int64{4, 5, 6}) {
		t.Fatalf("revisions = %v", nums)
	}
}

func TestOfflineNodeUpdatesWhenItReturns(t *testing.T) {
	s := newSim(t, ds("x", nil), 4)
	s.start()
	s.setNode("n02", false)
	s.editDS("x", setImage("reg/x:v2"))
	d := s.rollOut(1, healthy, 30)
	ro := d.Status.Rollout
	if ro.Phase != api.RolloutComplete || ro.OfflinePending != 1 || ro.Updated != 3 {
		t.Fatalf("rollout = %+v", ro)
	}
	for _, p := range s.pods() {
		if p.Spec.NodeName == "n02" && p.Spec.Containers[0].Image != "reg/x:v1" {
			t.Fatalf("offline node moved")
		}
	}
	s.setNode("n02", true)
	d = s.rollOut(1, healthy, 30)
	if ro := d.Status.Rollout; ro.Phase != api.RolloutComplete || ro.OfflinePending != 0 || ro.Updated != 4 {
		t.Fatalf("rollout = %+v", ro)
	}
}

func TestOfflineWaitHoldsCompletion(t *testing.T) {
	d := ds("x", nil)
	d.Spec.Rollout = &api.RolloutSpec{OfflineNodes: api.OfflineWait}
	s := newSim(t, d, 3)
	s.start()
	s.setNode("n01", false)
	s.editDS("x", setImage("reg/x:v2"))
	for i := 0; i < 10; i++ {
		s.sync()
		s.agents(healthy)
	}
	if ro := s.ds("x").Status.Rollout; ro.Phase != api.RolloutProgressing || ro.Updated != 2 || !strings.Contains(ro.Message, "offline") {
		t.Fatalf("rollout = %+v", ro)
	}
}

func TestPrePull(t *testing.T) {
	d := ds("x", nil)
	d.Spec.Rollout = &api.RolloutSpec{PrePull: true}
	s := newSim(t, d, 3)
	s.start()
	s.editDS("x", setImage("reg/x:v2"))
	s.sync()
	for _, p := range s.pods() {
		if p.Annotations[api.AnnotationPrePull] != "reg/x:v2" || p.Spec.Containers[0].Image != "reg/x:v1" {
			t.Fatalf("pod %s: annotations %v, image %s", p.Name, p.Annotations, p.Spec.Containers[0].Image)
		}
	}
	if ro := s.ds("x").Status.Rollout; !strings.Contains(ro.Message, "pre-pulling images: 0 of 3") {
		t.Fatalf("rollout = %+v", ro)
	}
	// The agents stage the image.
	s.agents(func(p *api.Pod) *api.PodStatus {
		st := p.Status
		st.PrePulled = p.Annotations[api.AnnotationPrePull] != ""
		return &st
	})
	s.sync()
	var moved int
	for _, p := range s.pods() {
		if p.Spec.Containers[0].Image == "reg/x:v2" {
			moved++
			if p.Annotations[api.AnnotationPrePull] != "" {
				t.Fatalf("moved pod keeps its pre-pull annotation")
			}
		}
	}
	if moved != 1 || s.ds("x").Status.Rollout.PrePulled != 3 {
		t.Fatalf("moved %d, status %+v", moved, s.ds("x").Status.Rollout)
	}
}

func TestMinReadySeconds(t *testing.T) {
	d := ds("x", nil)
	d.Spec.MinReadySeconds = 10
	s := newSim(t, d, 2)
	s.sync()
	s.agents(healthy)
	s.sync()
	s.tick(time.Minute)
	s.editDS("x", setImage("reg/x:v2"))
	s.sync() // n00 moves
	s.agents(healthy)
	s.sync() // n00 Ready: the hub notes when
	var readyAt string
	for _, p := range s.pods() {
		if p.Spec.NodeName == "n00" {
			readyAt = p.Annotations[rollout.AnnotationReadyAt]
		}
	}
	if readyAt == "" {
		t.Fatalf("no ready-at annotation")
	}
	s.tick(5 * time.Second)
	s.sync()
	if ro := s.ds("x").Status.Rollout; ro.Updated != 1 || ro.Ready != 0 {
		t.Fatalf("available before minReadySeconds: %+v", ro)
	}
	s.tick(5 * time.Second)
	s.sync() // n00 is available: n01 moves
	if ro := s.ds("x").Status.Rollout; ro.Updated != 1 || ro.Ready != 1 || !slices.Equal(ro.Updating, []string{"n01"}) {
		t.Fatalf("rollout = %+v", ro)
	}
}

func TestOnDelete(t *testing.T) {
	d := ds("x", nil)
	d.Spec.UpdateStrategy.Type = api.OnDeleteStrategy
	s := newSim(t, d, 2)
	s.start()
	s.editDS("x", setImage("reg/x:v2"))
	s.sync()
	s.sync()
	for _, p := range s.pods() {
		if p.Spec.Containers[0].Image != "reg/x:v1" {
			t.Fatalf("OnDelete moved %s", p.Name)
		}
	}
	s.update(func(tx store.Tx) error {
		return tx.Delete(store.Key{Kind: api.KindPod, Namespace: "default", Name: PodName("x", "n01")})
	})
	s.sync()
	for _, p := range s.pods() {
		if want := map[string]string{"n00": "reg/x:v1", "n01": "reg/x:v2"}[p.Spec.NodeName]; p.Spec.Containers[0].Image != want {
			t.Fatalf("pod on %s runs %s", p.Spec.NodeName, p.Spec.Containers[0].Image)
		}
	}
}

// A status the agent reports between the controller's read and its write
// is not overwritten.
func TestWriteKeepsConcurrentStatus(t *testing.T) {
	s := newSim(t, ds("x", nil), 1)
	s.sync()
	var in Input
	_ = s.st.View(func(tx store.Tx) error {
		in.DaemonSets, _ = store.List[api.DaemonSet](tx, "")
		in.Nodes, _ = store.List[api.Node](tx, "")
		in.Pods, _ = store.List[api.Pod](tx, "")
		in.Revisions, _ = store.List[api.ControllerRevision](tx, "")
		return nil
	})
	in.DaemonSets[0].Spec.Template.Spec.Containers[0].Image = "reg/x:v2"
	s.editDS("x", setImage("reg/x:v2"))
	in.Now = now
	plan := Plan(in)
	s.agents(healthy) // reports after the read
	if err := s.c.write(plan.Sets[0]); err != nil {
		t.Fatal(err)
	}
	p := s.pods()[0]
	if p.Spec.Containers[0].Image != "reg/x:v2" || !p.IsReady() {
		t.Fatalf("pod = %+v", p)
	}
}

// A plan made for a template that changed meanwhile is not written.
func TestWriteSkipsStalePlan(t *testing.T) {
	s := newSim(t, ds("x", nil), 1)
	s.start()
	var in Input
	_ = s.st.View(func(tx store.Tx) error {
		in.DaemonSets, _ = store.List[api.DaemonSet](tx, "")
		in.Nodes, _ = store.List[api.Node](tx, "")
		in.Pods, _ = store.List[api.Pod](tx, "")
		return nil
	})
	in.DaemonSets[0].Spec.Template.Spec.Containers[0].Image = "reg/x:v2"
	in.Now = now
	plan := Plan(in)
	s.editDS("x", setImage("reg/x:v3"))
	if err := s.c.write(plan.Sets[0]); err != nil {
		t.Fatal(err)
	}
	if img := s.pods()[0].Spec.Containers[0].Image; img != "reg/x:v1" {
		t.Fatalf("stale plan written: %s", img)
	}
}

// Node names whose short hashes collide get distinct pods: a fleet of
// 10,000 nodes has dozens of such pairs.
func TestPodNamesDoNotCollide(t *testing.T) {
	d := ds("x", nil)
	var nodes []*api.Node
	for i := 0; i < 10000; i++ {
		nodes = append(nodes, node(fmt.Sprintf("node-%05d", i), nil))
	}
	res := Plan(Input{DaemonSets: []*api.DaemonSet{d}, Nodes: nodes, Now: now})
	names := map[string]bool{}
	long := 0
	for _, p := range res.Sets[0].Create {
		if names[p.Name] {
			t.Fatalf("two pods named %s", p.Name)
		}
		names[p.Name] = true
		if p.Name == LongPodName("x", p.Spec.NodeName) {
			long++
		}
	}
	if len(names) != 10000 || long == 0 {
		t.Fatalf("%d pods, %d long names", len(names), long)
	}
	// The next pass finds every pod by its node, whatever its name.
	pods := applyPlan(nil, res)
	d.Status = *res.Sets[0].Status
	res = Plan(Input{DaemonSets: []*api.DaemonSet{d}, Nodes: nodes, Pods: pods, Revisions: res.Sets[0].CreateRevisions, Now: now})
	if s := res.Sets[0]; len(s.Create)+len(s.Delete) != 0 {
		t.Fatalf("second pass creates %d, deletes %d", len(s.Create), len(s.Delete))
	}
}

// fleet10k is a 10,000-node fleet running d's pods, all ready, and the
// revisions that made them.
func fleet10k(d *api.DaemonSet) ([]*api.Node, []*api.Pod, []*api.ControllerRevision) {
	var nodes []*api.Node
	for i := 0; i < 10000; i++ {
		nodes = append(nodes, node(fmt.Sprintf("node-%05d", i), map[string]string{"site": fmt.Sprint(i % 50)}))
	}
	res := Plan(Input{DaemonSets: []*api.DaemonSet{d}, Nodes: nodes, Now: now})
	pods := applyPlan(nil, res)
	for _, p := range pods {
		ready(p)
	}
	d.Status = *res.Sets[0].Status
	return nodes, pods, res.Sets[0].CreateRevisions
}

// BenchmarkPlanDaemonSet10k measures one controller pass over a 10,000-node
// fleet at the start of a rollout (5 % of the nodes move).
func BenchmarkPlanDaemonSet10k(b *testing.B) {
	d := ds("x", nil)
	d.Spec.UpdateStrategy.RollingUpdate = &api.RollingUpdateDaemonSet{MaxUnavailable: ioPtr(api.FromString("5%"))}
	nodes, pods, revs := fleet10k(d)
	d.Spec.Template.Spec.Containers[0].Image = "reg/x:v2"
	b.ReportAllocs()
	for b.Loop() {
		res := Plan(Input{DaemonSets: []*api.DaemonSet{d}, Nodes: nodes, Pods: pods, Revisions: revs, Now: now})
		if len(res.Sets[0].Update) == 0 {
			b.Fatal("nothing moved")
		}
	}
}

// BenchmarkPlanDaemonSet10kSteady measures a pass with nothing to do over
// a 10,000-node fleet (every pod current and ready): what each pass costs
// while a rollout waits for agents.
func BenchmarkPlanDaemonSet10kSteady(b *testing.B) {
	d := ds("x", nil)
	nodes, pods, revs := fleet10k(d)
	res := Plan(Input{DaemonSets: []*api.DaemonSet{d}, Nodes: nodes, Pods: pods, Revisions: revs, Now: now})
	d.Status = *res.Sets[0].Status
	// As the controller does, remember each pod's spec hash.
	hashes := map[*api.Pod]string{}
	for _, p := range pods {
		hashes[p] = api.HashPodSpec(&p.Spec)
	}
	b.ReportAllocs()
	for b.Loop() {
		res := Plan(Input{DaemonSets: []*api.DaemonSet{d}, Nodes: nodes, Pods: pods, Revisions: revs, Now: now,
			SpecHash: func(p *api.Pod) string { return hashes[p] }})
		if !res.Empty() {
			b.Fatalf("a steady fleet has work: %+v", res.Sets[0])
		}
	}
}

// missingTagAgent is an agent whose registry has no reg/x:nope: it keeps
// its pod's old containers and reports why it cannot pull the new image.
func missingTagAgent(p *api.Pod) *api.PodStatus {
	if p.Spec.Containers[0].Image != "reg/x:nope" {
		return healthy(p)
	}
	hash := api.HashPodSpec(&p.Spec)
	if pf := p.Status.PullFailure; pf != nil && pf.SpecHash == hash {
		return nil
	}
	st := p.Status
	st.Conditions = []api.PodCondition{{Type: api.PodReady, Status: api.ConditionFalse}}
	st.SpecHash = hash
	st.ContainerStatuses = []api.ContainerStatus{{Name: "c", State: api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "manifest unknown"}}}}
	st.PullFailure = &api.ImagePullFailure{Image: "reg/x:nope", Message: "reg/x:nope: not found", Permanent: true, SpecHash: hash, Since: s0, Attempts: 1}
	return &st
}

var s0 = now

func TestMissingTagFailsTheRolloutAtOnce(t *testing.T) {
	d := ds("x", nil)
	d.Spec.Rollout = &api.RolloutSpec{OnFailure: api.OnFailureRollback}
	s := newSim(t, d, 3)
	s.start()
	s.editDS("x", setImage("reg/x:nope"))
	s.sync() // n00 moves
	s.agents(missingTagAgent)
	s.sync() // its agent said the tag does not exist: no waiting for the deadline
	got := s.ds("x")
	ro := got.Status.Rollout
	if ro.Phase != api.RolloutRolledBack || ro.Failure == nil || len(ro.Failure.Nodes) != 1 || ro.Failure.Nodes[0].Node != "n00" ||
		!strings.Contains(ro.Failure.Message, "reg/x:nope: not found") {
		t.Fatalf("rollout = %+v (failure %+v)", ro, ro.Failure)
	}
	if img := got.Spec.Template.Spec.Containers[0].Image; img != "reg/x:v1" {
		t.Fatalf("template image = %s, want the rollback to reg/x:v1", img)
	}
	// The rollback runs to the end and keeps the failure that started it.
	d = s.rollOut(1, missingTagAgent, 20)
	ro = d.Status.Rollout
	if ro.Phase != api.RolloutRolledBack || ro.Updated != 3 || ro.Failure == nil || ro.Failure.Nodes[0].Node != "n00" || ro.Failure.RolledBackTo != ro.Revision {
		t.Fatalf("after the rollback: %+v (failure %+v)", ro, ro.Failure)
	}
}

// TestOfflineCanaryHoldsTheRollout: a canary node that took the revision
// and then lost its link has not shown the revision works; the rollout
// must not go on to the next nodes when its pause ends.
func TestOfflineCanaryHoldsTheRollout(t *testing.T) {
	d := ds("x", nil)
	d.Spec.Rollout = &api.RolloutSpec{Canary: &api.CanarySpec{NodeSelector: map[string]string{"ring": "0"}, PauseSeconds: int32p(10)},
		ProgressDeadlineSeconds: int32p(120)}
	s := newSim(t, d, 4) // ring 0: n00, n03
	s.start()
	s.editDS("x", setImage("reg/x:v2"))
	s.sync() // the canaries move
	s.setNode("n00", false)
	s.setNode("n03", false)
	for range 5 {
		s.tick(11 * time.Second)
		s.sync()
	}
	for _, p := range s.pods() {
		if n := p.Spec.NodeName; n != "n00" && n != "n03" && p.Spec.Containers[0].Image == "reg/x:v2" {
			t.Fatalf("node %s moved while the canaries were offline: %+v", n, s.ds("x").Status.Rollout)
		}
	}
	if ro := s.ds("x").Status.Rollout; ro.CanaryDone || !strings.Contains(ro.Message, "waiting for offline canary n00, n03") {
		t.Fatalf("rollout = %+v", ro)
	}
	// Past the deadline the offline canary fails the rollout.
	s.tick(2 * time.Minute)
	s.sync()
	if ro := s.ds("x").Status.Rollout; ro.Phase != api.RolloutFailed || !strings.Contains(ro.Message, "canary offline") {
		t.Fatalf("rollout = %+v", ro)
	}
}

// TestRollbackIsNotHeldByTheCanaryPause: the canary passed and paused the
// rollout for a resume; then it failed. The rollback must run at once and
// leave the DaemonSet unpaused.
func TestRollbackIsNotHeldByTheCanaryPause(t *testing.T) {
	d := ds("x", nil)
	one := api.FromInt(1)
	d.Spec.Rollout = &api.RolloutSpec{Canary: &api.CanarySpec{Count: &one}, OnFailure: api.OnFailureRollback}
	s := newSim(t, d, 3)
	lastGood := map[string]string{}
	s.sync()
	s.agents(reverting(lastGood))
	s.sync()
	s.editDS("x", setImage("reg/x:v2"))
	for range 4 {
		s.sync()
		s.agents(reverting(lastGood))
	}
	if got := s.ds("x"); got.Spec.Rollout == nil || !got.Spec.Rollout.Paused || got.Status.Rollout.Phase != api.RolloutPaused {
		t.Fatalf("canary did not pause: %+v", got.Status.Rollout)
	}
	// The canary's revision turns out bad: its agent reverts it.
	s.update(func(tx store.Tx) error {
		pods, err := store.List[api.Pod](tx, "")
		if err != nil {
			return err
		}
		for _, p := range pods {
			if p.Spec.Containers[0].Image == "reg/x:v2" {
				hash := api.HashPodSpec(&p.Spec)
				p.Status.Reverted = &api.PodRevert{FromSpecHash: hash, ToSpecHash: lastGood[p.Name], Reason: "CrashLoopBackOff"}
				p.Status.SpecHash = lastGood[p.Name]
				if err := tx.Put(p); err != nil {
					return err
				}
			}
		}
		return nil
	})
	s.sync()
	got := s.ds("x")
	if got.Status.Rollout.Phase != api.RolloutRolledBack || got.Spec.Rollout.Paused {
		t.Fatalf("after the failure: paused %v, rollout %+v", got.Spec.Rollout.Paused, got.Status.Rollout)
	}
	d = s.rollOut(1, reverting(lastGood), 20)
	for _, p := range s.pods() {
		if img := p.Spec.Containers[0].Image; img != "reg/x:v1" {
			t.Fatalf("pod %s still on %s: %+v", p.Name, img, d.Status.Rollout)
		}
	}
}

// renewLeases records that the hub heard from the named nodes now.
func (s *sim) renewLeases(names ...string) {
	s.update(func(tx store.Tx) error {
		for _, name := range names {
			l := lease.New(name)
			l.RenewTime = api.NewTime(s.clock)
			if err := tx.Put(l); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestRestartedHubWaitsForFreshReports: the hub stopped while n00 was
// Ready on the new template; during the outage n00 turned unready, which
// the store cannot know. The restarted hub must not move the next node
// on what the store says until n00 has reported again.
func TestRestartedHubWaitsForFreshReports(t *testing.T) {
	d := ds("x", nil)
	s := newSim(t, d, 3)
	s.start()
	s.renewLeases("n00", "n01", "n02")
	s.editDS("x", setImage("reg/x:v2"))
	s.sync() // n00 moves
	s.agents(healthy)
	s.tick(time.Minute) // the hub is down; n00's pod fails meanwhile
	s.restart()
	s.c.unheard.Start(s.clock) // as Run does
	s.sync()
	moved := func() []string {
		var out []string
		for _, p := range s.pods() {
			if p.Spec.Containers[0].Image == "reg/x:v2" {
				out = append(out, p.Spec.NodeName)
			}
		}
		sort.Strings(out)
		return out
	}
	if m := moved(); !slices.Equal(m, []string{"n00"}) {
		t.Fatalf("moved %v before hearing from any node", m)
	}
	if ro := s.ds("x").Status.Rollout; !strings.Contains(ro.Message, "waiting to hear from 3 node(s)") {
		t.Fatalf("rollout = %+v", ro)
	}
	// n00 reports: its pod is not ready.
	s.tick(time.Second)
	s.renewLeases("n00", "n01", "n02")
	s.update(func(tx store.Tx) error {
		p, err := store.Get[api.Pod](tx, "default", PodName("x", "n00"))
		if err != nil {
			return err
		}
		p.Status.Conditions = []api.PodCondition{{Type: api.PodReady, Status: api.ConditionFalse}}
		return tx.Put(p)
	})
	s.sync()
	if m := moved(); !slices.Equal(m, []string{"n00"}) {
		t.Fatalf("moved %v while n00 is unavailable", m)
	}
	if s.c.unheard.Looking() {
		t.Fatalf("still waiting to hear from nodes after all reported")
	}
	d = s.rollOut(1, healthy, 20)
	if ro := d.Status.Rollout; ro.Phase != api.RolloutComplete {
		t.Fatalf("rollout = %+v", ro)
	}
}
