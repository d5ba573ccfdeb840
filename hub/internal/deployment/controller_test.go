package deployment

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func deploy(name string, replicas int32) *api.Deployment {
	return &api.Deployment{
		TypeMeta:   api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindDeployment},
		ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default", UID: "uid-" + name, Generation: 1},
		Spec: api.DeploymentSpec{
			Replicas: &replicas,
			Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: api.PodTemplateSpec{
				ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: api.PodSpec{RestartPolicy: api.RestartAlways, Containers: []api.Container{{
					Name: "c", Image: "reg/" + name + ":v1",
					Resources: api.ResourceRequirements{Requests: api.ResourceList{"cpu": "100m", "memory": "64Mi"}},
				}}},
			},
		},
	}
}

func mkNode(name string) *api.Node {
	n := &api.Node{TypeMeta: api.TypeMeta{Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name, CreationTimestamp: api.NewTime(t0)}}
	n.Status.Allocatable = api.ResourceList{"cpu": "1", "memory": "1Gi"}
	n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	return n
}

type sim struct {
	t     *testing.T
	st    store.Store
	clock time.Time
	c     *Controller
	n     int
}

func newSim(t *testing.T, nodes int, ds ...*api.Deployment) *sim {
	s := &sim{t: t, st: store.NewMemory(), clock: t0}
	s.update(func(tx store.Tx) error {
		for _, d := range ds {
			if err := tx.Put(d); err != nil {
				return err
			}
		}
		for i := 0; i < nodes; i++ {
			if err := tx.Put(mkNode(fmt.Sprintf("n%d", i))); err != nil {
				return err
			}
		}
		return nil
	})
	s.restart()
	return s
}

func (s *sim) restart() {
	s.c = New(Options{Store: s.st, Now: func() time.Time { return s.clock }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Suffix: func() string { s.n++; return fmt.Sprintf("s%04d", s.n) }})
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
}

func (s *sim) pods() []*api.Pod {
	var pods []*api.Pod
	_ = s.st.View(func(tx store.Tx) error {
		pods, _ = store.List[api.Pod](tx, "")
		return nil
	})
	return pods
}

func (s *sim) deploy(name string) *api.Deployment {
	var d *api.Deployment
	_ = s.st.View(func(tx store.Tx) error {
		d, _ = store.Get[api.Deployment](tx, "default", name)
		return nil
	})
	return d
}

func (s *sim) edit(name string, f func(d *api.Deployment)) {
	s.update(func(tx store.Tx) error {
		d, err := store.Get[api.Deployment](tx, "default", name)
		if err != nil {
			return err
		}
		f(d)
		d.Generation++
		return tx.Put(d)
	})
}

func (s *sim) editNode(name string, f func(n *api.Node)) {
	s.update(func(tx store.Tx) error {
		n, err := store.Get[api.Node](tx, "", name)
		if err != nil {
			return err
		}
		f(n)
		return tx.Put(n)
	})
}

// agents make every bound pod on a Ready node Ready, unless bad says no.
func (s *sim) agents(bad func(p *api.Pod) bool) {
	s.update(func(tx store.Tx) error {
		pods, _ := store.List[api.Pod](tx, "")
		for _, p := range pods {
			if p.Spec.NodeName == "" {
				continue
			}
			n, err := store.Get[api.Node](tx, "", p.Spec.NodeName)
			if err != nil || !n.IsReady() || (p.IsReady() && p.Status.SpecHash == api.HashPodSpec(&p.Spec)) {
				continue
			}
			if bad != nil && bad(p) {
				continue
			}
			p.Status = api.PodStatus{Phase: api.PodRunning, SpecHash: api.HashPodSpec(&p.Spec),
				Conditions: []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}}
			if err := tx.Put(p); err != nil {
				return err
			}
		}
		return nil
	})
}

func perNode(pods []*api.Pod) map[string]int {
	m := map[string]int{}
	for _, p := range pods {
		m[p.Spec.NodeName]++
	}
	return m
}

func TestReplicasSpread(t *testing.T) {
	s := newSim(t, 3, deploy("web", 5))
	s.sync()
	pods := s.pods()
	if len(pods) != 5 {
		t.Fatalf("%d pods", len(pods))
	}
	counts := perNode(pods)
	if counts["n0"] != 2 || counts["n1"] != 2 || counts["n2"] != 1 {
		t.Fatalf("spread = %v", counts)
	}
	for _, p := range pods {
		h := api.HashTemplate(&s.deploy("web").Spec.Template)[:10]
		if !strings.HasPrefix(p.Name, "web-"+h+"-") || p.Labels[LabelPodTemplateHash] != h || !p.IsControlledBy("uid-web") {
			t.Fatalf("pod %s labels %v", p.Name, p.Labels)
		}
	}
	s.agents(nil)
	s.sync()
	d := s.deploy("web")
	if st := d.Status; st.Replicas != 5 || st.ReadyReplicas != 5 || st.AvailableReplicas != 5 || st.UpdatedReplicas != 5 || st.UnavailableReplicas != 0 {
		t.Fatalf("status = %+v", st)
	}
	if c := condition(d.Status.Conditions, ConditionProgressing); c == nil || c.Reason != ReasonNewReplicaSetAvailable {
		t.Fatalf("conditions = %+v", d.Status.Conditions)
	}
	if d.Status.Rollout.Phase != api.RolloutComplete || d.Status.Rollout.Revision != 1 {
		t.Fatalf("rollout = %+v", d.Status.Rollout)
	}
	// Idle passes write nothing; a restarted controller does not add pods.
	s.sync()
	v := s.st.Version()
	s.restart()
	s.sync()
	if s.st.Version() != v || len(s.pods()) != 5 {
		t.Fatalf("idle pass wrote")
	}
	// Scale down takes pods from the crowded nodes.
	s.edit("web", func(d *api.Deployment) { r := int32(3); d.Spec.Replicas = &r })
	s.sync()
	if counts := perNode(s.pods()); counts["n0"] != 1 || counts["n1"] != 1 || counts["n2"] != 1 {
		t.Fatalf("after scale down = %v", counts)
	}
}

func TestSchedulingConstraints(t *testing.T) {
	d := deploy("web", 4)
	d.Spec.Template.Spec.Containers[0].Resources.Requests["cpu"] = "400m"
	s := newSim(t, 3, d)
	s.editNode("n0", func(n *api.Node) { n.Spec.Unschedulable = true })
	s.editNode("n1", func(n *api.Node) {
		n.Status.Conditions = append(n.Status.Conditions, api.NodeCondition{Type: "MemoryPressure", Status: api.ConditionTrue})
	})
	s.sync()
	var bound, pending []*api.Pod
	for _, p := range s.pods() {
		if p.Spec.NodeName == "" {
			pending = append(pending, p)
		} else {
			bound = append(bound, p)
		}
	}
	// n2 has room for two 400m pods out of 1 cpu.
	if len(bound) != 2 || bound[0].Spec.NodeName != "n2" || len(pending) != 2 {
		t.Fatalf("bound %d, pending %d", len(bound), len(pending))
	}
	msg := pendingMessage(pending[0])
	if pending[0].Status.Phase != api.PodPending || !strings.Contains(msg, "0/3 nodes are available") ||
		!strings.Contains(msg, "1 Insufficient cpu") || !strings.Contains(msg, "1 node(s) were unschedulable") {
		t.Fatalf("pending pod status = %+v", pending[0].Status)
	}
	// Uncordoned, n0 takes the pending pods.
	s.editNode("n0", func(n *api.Node) { n.Spec.Unschedulable = false })
	s.sync()
	if counts := perNode(s.pods()); counts["n0"] != 2 || counts["n2"] != 2 || counts[""] != 0 {
		t.Fatalf("placements = %v", counts)
	}
}

// rollOut drives passes and agents until the Deployment's rollout is no
// longer Progressing, checking Kubernetes' bounds at every step.
func (s *sim) rollOut(name string, replicas, maxSurge, maxUnavailable int, bad func(*api.Pod) bool) *api.Deployment {
	s.t.Helper()
	for pass := 0; pass < 100; pass++ {
		s.sync()
		var pods []*api.Pod
		for _, p := range s.pods() {
			if p.Labels["app"] == name {
				pods = append(pods, p)
			}
		}
		if len(pods) > replicas+maxSurge {
			s.t.Fatalf("pass %d: %d pods, more than %d+%d", pass, len(pods), replicas, maxSurge)
		}
		ready := 0
		for _, p := range pods {
			if p.IsReady() && p.Status.SpecHash == api.HashPodSpec(&p.Spec) {
				ready++
			}
		}
		if ready < replicas-maxUnavailable {
			s.t.Fatalf("pass %d: %d ready, fewer than %d-%d", pass, ready, replicas, maxUnavailable)
		}
		d := s.deploy(name)
		if ro := d.Status.Rollout; ro != nil && ro.TemplateHash == api.HashTemplate(&d.Spec.Template) && ro.Phase != api.RolloutProgressing {
			return d
		}
		s.agents(bad)
		s.clock = s.clock.Add(time.Second)
	}
	s.t.Fatalf("rollout did not finish: %+v", s.deploy(name).Status.Rollout)
	return nil
}

func setImage(img string) func(d *api.Deployment) {
	return func(d *api.Deployment) { d.Spec.Template.Spec.Containers[0].Image = img }
}

func TestRollingUpdate(t *testing.T) {
	for _, tc := range []struct {
		name             string
		surge, unav      api.IntOrString
		replicas         int32
		wantSurge, wantU int
	}{
		{"defaults 25% of 4", api.FromString("25%"), api.FromString("25%"), 4, 1, 1},
		{"surge only", api.FromInt(2), api.FromInt(0), 5, 2, 0},
		{"unavailable only", api.FromInt(0), api.FromInt(2), 5, 0, 2},
		{"percent rounding of 10", api.FromString("15%"), api.FromString("15%"), 10, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deploy("web", tc.replicas)
			surge, unav := tc.surge, tc.unav
			d.Spec.Strategy = api.DeploymentStrategy{Type: api.RollingUpdateStrategy, RollingUpdate: &api.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unav}}
			s := newSim(t, 3, d)
			s.rollOut("web", int(tc.replicas), 0, int(tc.replicas), nil)
			s.edit("web", setImage("reg/web:v2"))
			got := s.rollOut("web", int(tc.replicas), tc.wantSurge, tc.wantU, nil)
			if got.Status.Rollout.Phase != api.RolloutComplete || got.Status.UpdatedReplicas != tc.replicas || got.Status.Replicas != tc.replicas {
				t.Fatalf("status = %+v", got.Status)
			}
			for _, p := range s.pods() {
				if p.Spec.Containers[0].Image != "reg/web:v2" {
					t.Fatalf("old pod left: %s", p.Name)
				}
			}
			if got.Status.Rollout.Revision != 2 || got.Status.Rollout.LastGoodRevision != 2 {
				t.Fatalf("rollout = %+v", got.Status.Rollout)
			}
		})
	}
}

func TestRecreate(t *testing.T) {
	d := deploy("web", 3)
	d.Spec.Strategy.Type = api.RecreateStrategy
	s := newSim(t, 3, d)
	s.rollOut("web", 3, 0, 3, nil)
	s.edit("web", setImage("reg/web:v2"))
	s.sync()
	if pods := s.pods(); len(pods) != 0 {
		t.Fatalf("old pods kept while new ones start: %d", len(pods))
	}
	s.sync()
	for _, p := range s.pods() {
		if p.Spec.Containers[0].Image != "reg/web:v2" {
			t.Fatalf("pod %s", p.Name)
		}
	}
	s.rollOut("web", 3, 0, 3, nil)
}

func TestProgressDeadline(t *testing.T) {
	d := deploy("web", 2)
	secs := int32(30)
	d.Spec.ProgressDeadlineSeconds = &secs
	s := newSim(t, 2, d)
	s.rollOut("web", 2, 0, 2, nil)
	s.edit("web", setImage("reg/web:bad"))
	bad := func(p *api.Pod) bool { return p.Spec.Containers[0].Image == "reg/web:bad" }
	for i := 0; i < 3; i++ {
		s.sync()
		s.agents(bad)
	}
	s.clock = s.clock.Add(31 * time.Second)
	s.sync()
	got := s.deploy("web")
	c := condition(got.Status.Conditions, ConditionProgressing)
	if c == nil || c.Status != api.ConditionFalse || c.Reason != ReasonProgressDeadlineExceeded {
		t.Fatalf("conditions = %+v", got.Status.Conditions)
	}
	if got.Status.Rollout.Phase != api.RolloutFailed || got.Status.AvailableReplicas < 1 {
		t.Fatalf("status = %+v", got.Status)
	}
	// Undo (the template goes back): the Deployment recovers.
	s.edit("web", setImage("reg/web:v1"))
	got = s.rollOut("web", 2, 1, 1, bad)
	if got.Status.Rollout.Phase != api.RolloutComplete || got.Status.Rollout.Revision != 3 {
		t.Fatalf("rollout = %+v", got.Status.Rollout)
	}
	if c := condition(got.Status.Conditions, ConditionProgressing); c.Status != api.ConditionTrue {
		t.Fatalf("conditions = %+v", got.Status.Conditions)
	}
}

func TestPaused(t *testing.T) {
	d := deploy("web", 2)
	s := newSim(t, 2, d)
	s.rollOut("web", 2, 0, 2, nil)
	s.edit("web", func(d *api.Deployment) { d.Spec.Paused = true; setImage("reg/web:v2")(d) })
	for i := 0; i < 3; i++ {
		s.sync()
		s.agents(nil)
	}
	for _, p := range s.pods() {
		if p.Spec.Containers[0].Image != "reg/web:v1" {
			t.Fatalf("paused Deployment rolled out")
		}
	}
	if ro := s.deploy("web").Status.Rollout; ro.Phase != api.RolloutPaused {
		t.Fatalf("rollout = %+v", ro)
	}
	// A paused Deployment still replaces a lost pod, with the old template.
	s.update(func(tx store.Tx) error { return tx.Delete(store.KeyOf(s.pods()[0])) })
	s.sync()
	for _, p := range s.pods() {
		if p.Spec.Containers[0].Image != "reg/web:v1" {
			t.Fatalf("replacement runs %s", p.Spec.Containers[0].Image)
		}
	}
	s.edit("web", func(d *api.Deployment) { d.Spec.Paused = false })
	if got := s.rollOut("web", 2, 1, 1, nil); got.Status.Rollout.Phase != api.RolloutComplete {
		t.Fatalf("rollout = %+v", got.Status.Rollout)
	}
}

func notReadySince(at time.Time, status api.ConditionStatus) func(n *api.Node) {
	return func(n *api.Node) {
		n.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: status, LastTransitionTime: api.NewTime(at)}}
	}
}

func TestPodsLeaveNodeNotReadyPastToleration(t *testing.T) {
	d := deploy("web", 4)
	short := int64(10)
	s := newSim(t, 2, d, func() *api.Deployment {
		d := deploy("tolerant", 2)
		d.Spec.Template.Spec.Tolerations = []api.Toleration{{Key: api.TaintNodeUnreachable, Operator: api.TolerationOpExists, Effect: api.TaintEffectNoExecute, TolerationSeconds: &short}}
		return d
	}())
	s.rollOut("web", 4, 0, 4, nil)
	s.rollOut("tolerant", 2, 0, 2, nil)
	var onN0 []string
	for _, p := range s.pods() {
		if p.Spec.NodeName == "n0" {
			onN0 = append(onN0, p.Name)
		}
	}
	if len(onN0) != 3 {
		t.Fatalf("pods on n0: %v", onN0)
	}
	s.editNode("n0", notReadySince(s.clock, api.ConditionUnknown))
	s.clock = s.clock.Add(11 * time.Second)
	s.sync()
	// The tolerant pod (10 s) moved; web's pods (default 300 s) stay.
	counts := map[string]map[string]int{}
	for _, p := range s.pods() {
		if counts[p.Labels["app"]] == nil {
			counts[p.Labels["app"]] = map[string]int{}
		}
		counts[p.Labels["app"]][p.Spec.NodeName]++
	}
	if counts["tolerant"]["n0"] != 0 || counts["tolerant"]["n1"] != 2 || counts["web"]["n0"] != 2 {
		t.Fatalf("after 11 s: %v", counts)
	}
	s.clock = s.clock.Add(290 * time.Second)
	s.sync()
	for _, p := range s.pods() {
		if p.Spec.NodeName == "n0" {
			t.Fatalf("pod %s still on the lost node", p.Name)
		}
	}
	if got := perNode(s.pods()); got["n1"] != 6 {
		t.Fatalf("replacements = %v", got)
	}
	// Back online, n0 runs nothing the hub assigned before: dispatch sends
	// it a snapshot without those pods.
	s.editNode("n0", notReadySince(s.clock, api.ConditionTrue))
	s.sync()
	for _, p := range s.pods() {
		for _, name := range onN0 {
			if p.Name == name {
				t.Fatalf("evicted pod %s came back", name)
			}
		}
	}
}

func TestTolerationSeconds(t *testing.T) {
	ten, zero := int64(10), int64(0)
	for _, tc := range []struct {
		tols    []api.Toleration
		key     string
		secs    int64
		forever bool
	}{
		{nil, api.TaintNodeUnreachable, DefaultTolerationSeconds, false},
		{[]api.Toleration{{Key: api.TaintNodeNotReady, Effect: api.TaintEffectNoExecute, TolerationSeconds: &ten}}, api.TaintNodeNotReady, 10, false},
		{[]api.Toleration{{Key: api.TaintNodeNotReady, Effect: api.TaintEffectNoExecute, TolerationSeconds: &ten}}, api.TaintNodeUnreachable, DefaultTolerationSeconds, false},
		{[]api.Toleration{{Key: api.TaintNodeUnreachable, Effect: api.TaintEffectNoSchedule, TolerationSeconds: &ten}}, api.TaintNodeUnreachable, DefaultTolerationSeconds, false},
		{[]api.Toleration{{Key: api.TaintNodeUnreachable, Operator: api.TolerationOpExists}}, api.TaintNodeUnreachable, 0, true},
		{[]api.Toleration{{Operator: api.TolerationOpExists, TolerationSeconds: &zero}}, api.TaintNodeUnreachable, 0, false},
	} {
		secs, forever := tolerationSeconds(tc.tols, tc.key)
		if secs != tc.secs || forever != tc.forever {
			t.Errorf("%+v %s = %d, %v", tc.tols, tc.key, secs, forever)
		}
	}
}

// Drain as the CLI does it: cordon, then delete the node's pods.
func TestDrainReschedules(t *testing.T) {
	s := newSim(t, 3, deploy("web", 3))
	s.rollOut("web", 3, 0, 3, nil)
	s.editNode("n1", func(n *api.Node) { n.Spec.Unschedulable = true })
	s.update(func(tx store.Tx) error {
		pods, _ := store.List[api.Pod](tx, "")
		for _, p := range pods {
			if p.Spec.NodeName == "n1" {
				if err := tx.Delete(store.KeyOf(p)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	s.sync()
	got := perNode(s.pods())
	if got["n1"] != 0 || got["n0"]+got["n2"] != 3 {
		t.Fatalf("after drain: %v", got)
	}
}

func TestOrphansAndHistory(t *testing.T) {
	d := deploy("web", 1)
	limit := int32(1)
	d.Spec.RevisionHistoryLimit = &limit
	s := newSim(t, 1, d)
	s.rollOut("web", 1, 1, 1, nil)
	for _, img := range []string{"v2", "v3", "v4"} {
		s.edit("web", setImage("reg/web:"+img))
		s.rollOut("web", 1, 1, 0, nil)
	}
	s.sync()
	var revs []*api.ControllerRevision
	_ = s.st.View(func(tx store.Tx) error {
		revs, _ = store.List[api.ControllerRevision](tx, "")
		return nil
	})
	var nums []int
	for _, r := range revs {
		nums = append(nums, int(r.Revision))
	}
	sort.Ints(nums)
	if fmt.Sprint(nums) != "[3 4]" {
		t.Fatalf("revisions = %v", nums)
	}
	s.update(func(tx store.Tx) error { return tx.Delete(store.KeyOf(s.deploy("web"))) })
	s.sync()
	_ = s.st.View(func(tx store.Tx) error {
		revs, _ = store.List[api.ControllerRevision](tx, "")
		return nil
	})
	if len(s.pods()) != 0 || len(revs) != 0 {
		t.Fatalf("left %d pods, %d revisions", len(s.pods()), len(revs))
	}
}

// countingStore counts the Lists of pods its transactions make.
type countingStore struct {
	store.Store
	podLists atomic.Int64
}

type countingTx struct {
	store.Tx
	s *countingStore
}

func (s *countingStore) View(fn func(store.Tx) error) error {
	return s.Store.View(func(tx store.Tx) error { return fn(countingTx{tx, s}) })
}

func (tx countingTx) List(kind, namespace string) ([]store.Record, error) {
	if kind == api.KindPod {
		tx.s.podLists.Add(1)
	}
	return tx.Tx.List(kind, namespace)
}

// TestNoDeploymentsNoFleetReads: with no Deployments, pod and node changes
// (a DaemonSet rollout's) cost the controller no read of the fleet; a
// Deployment does.
func TestNoDeploymentsNoFleetReads(t *testing.T) {
	st := &countingStore{Store: store.NewMemory()}
	c := New(Options{Store: st, Debounce: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	putPod := func(name string) {
		p := &api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod}, ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default"}}
		if err := st.Update(func(tx store.Tx) error { return tx.Put(p) }); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for st.podLists.Load() == 0 { // the first pass reads everything
		if time.Now().After(deadline) {
			t.Fatal("no first pass")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	before := st.podLists.Load()
	for i := range 20 {
		putPod(fmt.Sprintf("p%d", i))
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if got := st.podLists.Load(); got != before {
		t.Fatalf("pod changes with no Deployments read the pods %d times", got-before)
	}
	if err := st.Update(func(tx store.Tx) error { return tx.Put(deploy("web", 1)) }); err != nil {
		t.Fatal(err)
	}
	for st.podLists.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("a Deployment did not make the controller read the pods")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRestartedHubWaitsForFreshReports: with 3 replicas and maxUnavailable
// 1, a hub restarted mid-rollout must not scale old pods down on the
// readiness it stored before it stopped, until their nodes report again.
func TestRestartedHubWaitsForFreshReports(t *testing.T) {
	d := deploy("web", 3)
	zero, one := api.FromInt(0), api.FromInt(1)
	d.Spec.Strategy = api.DeploymentStrategy{Type: api.RollingUpdateStrategy, RollingUpdate: &api.RollingUpdateDeployment{MaxSurge: &zero, MaxUnavailable: &one}}
	s := newSim(t, 3, d)
	s.rollOut("web", 3, 0, 3, nil)
	s.edit("web", setImage("reg/web:v2"))
	s.sync() // one old pod goes
	s.sync() // its replacement is created
	s.agents(nil)
	s.clock = s.clock.Add(time.Minute)
	s.restart()
	s.c.unheard.Start(s.clock) // as Run does; no node has reported since
	old := func() int {
		n := 0
		for _, p := range s.pods() {
			if p.Spec.Containers[0].Image == "reg/web:v1" {
				n++
			}
		}
		return n
	}
	before := old()
	s.sync()
	if got := old(); got != before {
		t.Fatalf("scaled %d old pod(s) down before any node reported", before-got)
	}
	if !s.c.unheard.Looking() {
		t.Fatalf("the controller stopped waiting for nodes it has not heard from")
	}
	// The nodes report (their leases are renewed): the rollout goes on.
	s.update(func(tx store.Tx) error {
		for i := range 3 {
			l := lease.New(fmt.Sprintf("n%d", i))
			l.RenewTime = api.NewTime(s.clock)
			if err := tx.Put(l); err != nil {
				return err
			}
		}
		return nil
	})
	if got := s.rollOut("web", 3, 0, 1, nil); got.Status.Rollout.Phase != api.RolloutComplete {
		t.Fatalf("rollout = %+v", got.Status.Rollout)
	}
}

// TestRolloutNamesWhyPodsWait: `rollout status` shows the agent's reason,
// not only a count.
func TestRolloutNamesWhyPodsWait(t *testing.T) {
	d := deploy("web", 1)
	s := newSim(t, 1, d)
	s.rollOut("web", 1, 0, 1, nil)
	s.edit("web", setImage("reg/web:nope"))
	for range 3 {
		s.sync()
	}
	s.update(func(tx store.Tx) error {
		pods, _ := store.List[api.Pod](tx, "")
		for _, p := range pods {
			if p.Spec.Containers[0].Image != "reg/web:nope" {
				continue
			}
			hash := api.HashPodSpec(&p.Spec)
			p.Status = api.PodStatus{Phase: api.PodPending, SpecHash: hash,
				ContainerStatuses: []api.ContainerStatus{{Name: "c", State: api.ContainerState{Waiting: &api.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}},
				PullFailure:       &api.ImagePullFailure{Image: "reg/web:nope", Message: "reg/web:nope: not found", Permanent: true, SpecHash: hash}}
			if err := tx.Put(p); err != nil {
				return err
			}
		}
		return nil
	})
	s.sync()
	if msg := s.deploy("web").Status.Rollout.Message; !strings.Contains(msg, "(ImagePullBackOff: reg/web:nope: not found)") {
		t.Fatalf("message = %q", msg)
	}
}
