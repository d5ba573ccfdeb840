package autoscaler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/deployment"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// world is a fleet for Plan: one Deployment "web" (cpu request 200m per
// pod) with an autoscaler at 50 % of it, its pods spread over nodes that
// each sampled their pods two seconds ago.
type world struct {
	now     time.Time
	hpa     *api.HorizontalPodAutoscaler
	dep     *api.Deployment
	nodes   []*api.Node
	pods    []*api.Pod
	samples map[string]wire.MetricSample
	history map[string]History
}

func newWorld(nodes int) *world {
	w := &world{now: t0, samples: map[string]wire.MetricSample{}, history: map[string]History{}}
	replicas := int32(0)
	w.dep = &api.Deployment{
		TypeMeta:   api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindDeployment},
		ObjectMeta: api.ObjectMeta{Name: "web", Namespace: "default", UID: "dep-uid"},
		Spec: api.DeploymentSpec{Replicas: &replicas, Template: api.PodTemplateSpec{Spec: api.PodSpec{Containers: []api.Container{{
			Name: "main", Resources: api.ResourceRequirements{Requests: api.ResourceList{"cpu": "200m"}},
		}}}}},
	}
	minR := int32(1)
	w.hpa = &api.HorizontalPodAutoscaler{
		TypeMeta:   api.TypeMeta{APIVersion: "autoscaling/v2", Kind: api.KindHorizontalPodAutoscaler},
		ObjectMeta: api.ObjectMeta{Name: "web", Namespace: "default", UID: "hpa-uid", Generation: 1},
		Spec: api.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: api.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: api.KindDeployment, Name: "web"},
			MinReplicas:    &minR, MaxReplicas: 10,
			Metrics: []api.MetricSpec{{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricSource{
				Name: "cpu", Target: api.MetricTarget{Type: api.UtilizationMetricType, AverageUtilization: i32(50)}}}},
		},
	}
	for i := range nodes {
		w.nodes = append(w.nodes, &api.Node{
			ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("edge-%d", i+1)},
			Status: api.NodeStatus{
				Conditions:  []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}},
				Allocatable: api.ResourceList{"cpu": "4", "memory": "8Gi", "pods": "110"},
			},
		})
	}
	return w
}

// addPods adds n running pods of web, using milli millicores each,
// placed round-robin, started at started (Ready since then), and puts
// them in their nodes' samples.
func (w *world) addPods(n int, milli float64, started time.Time) {
	ctrl := true
	for range n {
		i := len(w.pods)
		node := w.nodes[i%len(w.nodes)].Name
		p := &api.Pod{
			ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("web-%d", i), Namespace: "default", UID: fmt.Sprintf("pod-%d", i),
				OwnerReferences: []api.OwnerReference{{Kind: api.KindDeployment, Name: "web", UID: w.dep.UID, Controller: &ctrl}}},
			Spec: w.dep.Spec.Template.Spec,
			Status: api.PodStatus{Phase: api.PodRunning, StartTime: api.NewTime(started),
				Conditions: []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue, LastTransitionTime: api.NewTime(started)}}},
		}
		p.Spec.NodeName = node
		w.pods = append(w.pods, p)
		cores := milli / 1000
		s := w.samples[node]
		s.Time, s.WindowSeconds = w.now.Add(-2*time.Second), 10
		s.Pods = append(s.Pods, wire.PodSample{Namespace: "default", Name: p.Name, UID: p.UID,
			Containers: []wire.ContainerSample{{Name: "main", CPUUsageCores: &cores, MemoryWorkingSetBytes: 50 << 20}}})
		w.samples[node] = s
	}
	*w.dep.Spec.Replicas = int32(len(w.pods))
}

// load sets every pod's usage to milli millicores, sampled just now.
func (w *world) load(milli float64) {
	for node, s := range w.samples {
		s.Time = w.now.Add(-2 * time.Second)
		for i := range s.Pods {
			cores := milli / 1000
			s.Pods[i].Containers[0].CPUUsageCores = &cores
		}
		w.samples[node] = s
	}
}

func (w *world) plan() *Decision {
	res := Plan(Input{Now: w.now, HPAs: []*api.HorizontalPodAutoscaler{w.hpa},
		Deployments: map[string]*api.Deployment{"default/web": w.dep},
		Pods:        w.pods, Nodes: w.nodes, Samples: w.samples, History: w.history})
	for uid, h := range res.History {
		w.history[uid] = h
	}
	if len(res.Decisions) == 0 {
		return &Decision{}
	}
	return res.Decisions[0]
}

// apply writes a decision as the controller would: the status, the
// target's replicas and the change in the history.
func (w *world) apply(d *Decision) {
	if d.Status != nil {
		w.hpa.Status = *d.Status
	}
	if d.Scale != nil {
		*w.dep.Spec.Replicas = d.Scale.To
		w.history[w.hpa.UID] = w.history[w.hpa.UID].Record(d.Rules, d.Scale.From, d.Scale.To, w.now)
	}
}

func cond(st *api.HorizontalPodAutoscalerStatus, typ string) string {
	c := st.Condition(typ)
	if c == nil {
		return "<none>"
	}
	return string(c.Status) + " " + c.Reason
}

func eventsOf(d *Decision) []string {
	var out []string
	for _, e := range d.Events {
		out = append(out, string(e.Type)+" "+e.Reason+": "+e.Message)
	}
	return out
}

// TestPlanWalkthrough is Kubernetes' php-apache walkthrough on the hub:
// one pod at 305 % of its request scales to 5 (the default policy allows
// 4 more pods per 15 s), then to 7; after the load stops the count stays
// for the 300 s window and then falls to minReplicas.
func TestPlanWalkthrough(t *testing.T) {
	w := newWorld(3)
	w.addPods(1, 610, t0.Add(-time.Hour))
	d := w.plan()
	if d.Scale == nil || d.Scale.From != 1 || d.Scale.To != 5 {
		t.Fatalf("scale %+v", d.Scale)
	}
	st := d.Status
	if st.CurrentReplicas != 1 || st.DesiredReplicas != 5 || st.LastScaleTime == nil ||
		*st.CurrentMetrics[0].Resource.Current.AverageUtilization != 305 || *st.CurrentMetrics[0].Resource.Current.AverageValue != "610m" {
		t.Errorf("status %+v", st)
	}
	for typ, want := range map[string]string{api.AbleToScale: "True SucceededRescale", api.ScalingActive: "True ValidMetricFound", api.ScalingLimited: "True ScaleUpLimit"} {
		if got := cond(st, typ); got != want {
			t.Errorf("%s: %s, want %s", typ, got, want)
		}
	}
	if got := eventsOf(d); len(got) != 1 || got[0] != "Normal SuccessfulRescale: New size: 5; reason: cpu resource utilization (percentage of request) above target" {
		t.Errorf("events %q", got)
	}
	if m := st.Condition(api.ScalingActive).Message; m != "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)" {
		t.Errorf("ScalingActive message %q", m)
	}
	w.apply(d)

	// 15 s on: the 4 new pods started 14 s ago, Ready for 11 s but not
	// yet sampled for a whole window since: set aside, they count as 0
	// on the way up, which turns the scale-up around: no change.
	w.now = t0.Add(15 * time.Second)
	w.addPods(4, 122, w.now.Add(-14*time.Second))
	for _, p := range w.pods[1:] {
		p.Status.Conditions[0].LastTransitionTime = api.NewTime(w.now.Add(-11 * time.Second))
	}
	w.load(122)
	if d := w.plan(); d.Scale != nil {
		t.Fatalf("scaled on pods not sampled since Ready: %+v", d.Scale)
	}
	// A pass later they count, and the load spreads over all five
	// (122m each, 61 %): 7.
	w.now = t0.Add(20 * time.Second)
	w.load(122)
	d = w.plan()
	if d.Scale == nil || d.Scale.To != 7 {
		t.Fatalf("second step: scale %+v, status %+v", d.Scale, d.Status)
	}
	w.apply(d)
	w.addPods(2, 87, w.now)

	// The load stops: the count holds for the scale-down window...
	stopped := t0.Add(30 * time.Second)
	for s := time.Duration(0); s < 300*time.Second; s += 15 * time.Second {
		w.now = stopped.Add(s)
		w.load(0)
		d = w.plan()
		if d.Scale != nil {
			t.Fatalf("scaled %+v %s after the load stopped, within the window", d.Scale, s)
		}
		if d.Status != nil && cond(d.Status, api.AbleToScale) != "True ScaleDownStabilized" {
			t.Fatalf("AbleToScale %s", cond(d.Status, api.AbleToScale))
		}
		w.apply(d)
	}
	// ...then falls to minReplicas.
	w.now = stopped.Add(330 * time.Second)
	w.load(0)
	d = w.plan()
	if d.Scale == nil || d.Scale.To != 1 || d.Scale.Reason != "All metrics below target" {
		t.Fatalf("after the window: %+v", d.Scale)
	}
	if got := cond(d.Status, api.ScalingLimited); got != "True TooFewReplicas" {
		t.Errorf("ScalingLimited %s", got)
	}
}

// TestPlanOfflineNodeIsMissingNotIdle: pods whose node is not Ready, or
// whose samples stopped, are missing: the same pods idle with current
// samples scale down, silent they do not.
func TestPlanOfflineNodeIsMissingNotIdle(t *testing.T) {
	noWindow := &api.HorizontalPodAutoscalerBehavior{ScaleDown: &api.HPAScalingRules{StabilizationWindowSeconds: i32(0)}}
	idle := func() *world {
		w := newWorld(1)
		w.hpa.Spec.Behavior = noWindow
		w.addPods(3, 0, t0.Add(-time.Hour))
		return w
	}
	if d := idle().plan(); d.Scale == nil || d.Scale.To != 1 {
		t.Fatalf("idle pods with current samples: %+v", d.Scale)
	}

	for name, cut := range map[string]func(w *world){
		"node not Ready": func(w *world) { w.nodes[0].Status.Conditions[0].Status = api.ConditionUnknown },
		"samples stale": func(w *world) {
			s := w.samples["edge-1"]
			s.Time = w.now.Add(-31 * time.Second) // three 10 s windows
			w.samples["edge-1"] = s
		},
		"no sample": func(w *world) { delete(w.samples, "edge-1") },
	} {
		t.Run(name, func(t *testing.T) {
			w := idle()
			cut(w)
			d := w.plan()
			if d.Scale != nil {
				t.Fatalf("scaled %+v for silence", d.Scale)
			}
			if got := cond(d.Status, api.ScalingActive); got != "False FailedGetResourceMetric" {
				t.Errorf("ScalingActive %s", got)
			}
			msg := d.Status.Condition(api.ScalingActive).Message
			if !strings.Contains(msg, "3 without a current sample") || !strings.Contains(msg, "edge-1") || !strings.Contains(msg, "missing metrics are not zero load") {
				t.Errorf("message %q", msg)
			}
			if ev := eventsOf(d); len(ev) != 2 || !strings.HasPrefix(ev[0], "Warning FailedGetResourceMetric: failed to get cpu utilization: ") ||
				!strings.HasPrefix(ev[1], "Warning FailedComputeMetricsReplicas: invalid metrics (1 invalid out of 1)") {
				t.Errorf("events %q", ev)
			}
			if d.Status.CurrentReplicas != 3 || d.Status.DesiredReplicas != 0 {
				t.Errorf("replicas %+v", d.Status)
			}
		})
	}

	// Half the pods on a cut site, half idle at home: the missing ones
	// count as using all they request, and the count stays.
	w := newWorld(2)
	w.hpa.Spec.Behavior = noWindow
	w.addPods(4, 0, t0.Add(-time.Hour))
	w.nodes[1].Status.Conditions[0].Status = api.ConditionUnknown
	if d := w.plan(); d.Scale != nil || cond(d.Status, api.ScalingActive) != "True ValidMetricFound" {
		t.Errorf("half offline: scale %+v, %s", d.Scale, cond(d.Status, api.ScalingActive))
	}
}

// TestPlanCapacity: a scale-up goes no further than the nodes have room
// for, and not at all while pods of the target wait for a node.
func TestPlanCapacity(t *testing.T) {
	w := newWorld(2)
	for _, n := range w.nodes {
		n.Status.Allocatable["cpu"] = "1" // two pods of 400m each
	}
	w.dep.Spec.Template.Spec.Containers[0].Resources.Requests["cpu"] = "400m"
	w.addPods(2, 1200, t0.Add(-time.Hour)) // 300 %: 2 → 6 wanted
	for _, p := range w.pods {
		p.Spec.Containers[0].Resources.Requests["cpu"] = "400m"
	}
	d := w.plan()
	if d.Scale == nil || d.Scale.To != 4 {
		t.Fatalf("scale %+v", d.Scale)
	}
	c := d.Status.Condition(api.ScalingLimited)
	want := "the nodes have room for 2 of the 4 more pods wanted (0/2 nodes are available: 2 Insufficient cpu.); scaling to 4, not 6"
	if c.Status != api.ConditionTrue || c.Reason != ReasonInsufficientCapacity || c.Message != want {
		t.Errorf("ScalingLimited %+v", c)
	}
	if ev := eventsOf(d); len(ev) != 2 || ev[0] != "Warning InsufficientCapacity: "+want {
		t.Errorf("events %q", ev)
	}

	// Pods of the target already wait for a node: hold.
	w.apply(d)
	w.now = w.now.Add(15 * time.Second)
	ctrl := true
	w.pods = append(w.pods, &api.Pod{
		ObjectMeta: api.ObjectMeta{Name: "web-pending", Namespace: "default", UID: "p-pending",
			OwnerReferences: []api.OwnerReference{{Kind: api.KindDeployment, Name: "web", UID: w.dep.UID, Controller: &ctrl}}},
		Spec: w.dep.Spec.Template.Spec,
		Status: api.PodStatus{Phase: api.PodPending, Conditions: []api.PodCondition{{Type: deployment.PodScheduled, Status: api.ConditionFalse,
			Reason: deployment.ReasonUnschedulable, Message: "0/2 nodes are available: 2 Insufficient cpu."}}},
	})
	w.load(1200)
	d = w.plan()
	if d.Scale != nil {
		t.Fatalf("scaled %+v while a pod waits for a node", d.Scale)
	}
	if c := d.Status.Condition(api.ScalingLimited); c.Reason != ReasonInsufficientCapacity ||
		!strings.HasPrefix(c.Message, "1 of the target's pods cannot be placed (0/2 nodes are available: 2 Insufficient cpu.); not scaling up from 4") {
		t.Errorf("ScalingLimited %+v", c)
	}
}

func TestPlanTargetProblems(t *testing.T) {
	t.Run("no target", func(t *testing.T) {
		w := newWorld(1)
		w.hpa.Spec.ScaleTargetRef.Name = "gone"
		d := w.plan()
		if got := cond(d.Status, api.AbleToScale); got != "False FailedGetScale" || !strings.Contains(d.Status.Conditions[0].Message, `deployments.apps "gone" not found`) {
			t.Errorf("AbleToScale %s: %+v", got, d.Status.Conditions)
		}
	})
	t.Run("no requests", func(t *testing.T) {
		w := newWorld(1)
		w.addPods(2, 100, t0.Add(-time.Hour))
		w.pods[1].Spec.Containers = []api.Container{{Name: "main"}}
		d := w.plan()
		msg := d.Status.Condition(api.ScalingActive).Message
		if cond(d.Status, api.ScalingActive) != "False FailedGetResourceMetric" ||
			msg != "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu in container main of Pod web-1" {
			t.Errorf("ScalingActive %q", msg)
		}
	})
	t.Run("zero replicas", func(t *testing.T) {
		w := newWorld(1)
		d := w.plan()
		if d.Scale != nil || cond(d.Status, api.ScalingActive) != "False ScalingDisabled" {
			t.Errorf("scale %+v, %s", d.Scale, cond(d.Status, api.ScalingActive))
		}
	})
	t.Run("above max", func(t *testing.T) {
		w := newWorld(1)
		w.addPods(12, 100, t0.Add(-time.Hour))
		if d := w.plan(); d.Scale == nil || d.Scale.To != 10 || d.Scale.Reason != "Current number of replicas above Spec.MaxReplicas" {
			t.Errorf("scale %+v", d.Scale)
		}
	})
	t.Run("memory average value", func(t *testing.T) {
		w := newWorld(1)
		q := api.Quantity("25Mi")
		w.hpa.Spec.Metrics = []api.MetricSpec{{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricSource{
			Name: "memory", Target: api.MetricTarget{Type: api.AverageValueMetricType, AverageValue: &q}}}}
		w.addPods(2, 0, t0.Add(-time.Hour)) // 50 MiB each: 4
		d := w.plan()
		if d.Scale == nil || d.Scale.To != 4 || d.Scale.Reason != "memory resource above target" ||
			*d.Status.CurrentMetrics[0].Resource.Current.AverageValue != "51200Ki" {
			t.Errorf("scale %+v status %+v", d.Scale, d.Status)
		}
	})
}

// TestPlanStartsWithAWindow: an autoscaler the controller has not seen
// (the hub just started) does not scale down before a whole window went
// by, and a status that did not change is not written again.
func TestPlanStartsWithAWindow(t *testing.T) {
	w := newWorld(1)
	w.addPods(4, 0, t0.Add(-time.Hour))
	d := w.plan()
	if d.Scale != nil || cond(d.Status, api.AbleToScale) != "True ScaleDownStabilized" {
		t.Fatalf("scale %+v, %s", d.Scale, cond(d.Status, api.AbleToScale))
	}
	w.apply(d)
	if d := w.plan(); d.Status != nil || d.Scale != nil {
		t.Errorf("again, nothing changed: status %+v", d.Status)
	}
	w.now = t0.Add(301 * time.Second)
	w.load(0)
	if d := w.plan(); d.Scale == nil || d.Scale.To != 1 {
		t.Errorf("after the window: %+v", d.Scale)
	}
}
