package autoscaler

import (
	"fmt"
	"log/slog"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// benchFleet is hpas autoscaled Deployments of podsEach pods each, one
// pod per node, every node Ready and sampled: with 1,000 and 10, the
// 10,000-node fleet of issue 18.
type benchFleet struct {
	hpas  []*api.HorizontalPodAutoscaler
	deps  []*api.Deployment
	pods  []*api.Pod
	nodes []*api.Node
	// samples are the nodes' newest samples; cores are the pods' cpu
	// usage in them, to move between passes.
	samples map[string]wire.MetricSample
	cores   []*float64
}

func newBenchFleet(hpas, podsEach int) *benchFleet {
	f := &benchFleet{samples: make(map[string]wire.MetricSample, hpas*podsEach)}
	ctrl := true
	for i := range hpas {
		name := fmt.Sprintf("app-%04d", i)
		replicas := int32(podsEach)
		d := &api.Deployment{
			TypeMeta:   api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindDeployment},
			ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default", UID: "dep-" + name, Generation: 1},
			Spec: api.DeploymentSpec{Replicas: &replicas, Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: api.PodTemplateSpec{ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: api.PodSpec{Containers: []api.Container{{
					Name: "main", Image: "reg/app:1", Resources: api.ResourceRequirements{Requests: api.ResourceList{"cpu": "100m", "memory": "64Mi"}},
				}}}}},
		}
		f.deps = append(f.deps, d)
		minR := int32(1)
		f.hpas = append(f.hpas, &api.HorizontalPodAutoscaler{
			TypeMeta:   api.TypeMeta{APIVersion: "autoscaling/v2", Kind: api.KindHorizontalPodAutoscaler},
			ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default", UID: "hpa-" + name, Generation: 1},
			Spec: api.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: api.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: api.KindDeployment, Name: name},
				MinReplicas:    &minR, MaxReplicas: int32(podsEach * 3),
				Metrics: []api.MetricSpec{{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricSource{
					Name: "cpu", Target: api.MetricTarget{Type: api.UtilizationMetricType, AverageUtilization: i32(50)}}}},
			},
		})
		for j := range podsEach {
			node := fmt.Sprintf("edge-%05d", i*podsEach+j)
			f.nodes = append(f.nodes, &api.Node{
				TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
				ObjectMeta: api.ObjectMeta{Name: node, UID: "node-" + node},
				Status: api.NodeStatus{Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}},
					Allocatable: api.ResourceList{"cpu": "4", "memory": "4Gi", "pods": "110"}},
			})
			p := &api.Pod{
				TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
				ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, j), Namespace: "default", UID: fmt.Sprintf("pod-%s-%d", name, j),
					Labels:          map[string]string{"app": name},
					OwnerReferences: []api.OwnerReference{{APIVersion: "apps/v1", Kind: api.KindDeployment, Name: name, UID: d.UID, Controller: &ctrl}}},
				Spec: d.Spec.Template.Spec,
				Status: api.PodStatus{Phase: api.PodRunning, StartTime: api.NewTime(t0.Add(-time.Hour)),
					Conditions: []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}},
			}
			p.Spec.NodeName = node
			f.pods = append(f.pods, p)
			cores := 0.05
			f.cores = append(f.cores, &cores)
			f.samples[node] = wire.MetricSample{Time: t0, WindowSeconds: 10, Pods: []wire.PodSample{{Namespace: "default", Name: p.Name, UID: p.UID,
				Containers: []wire.ContainerSample{{Name: "main", CPUUsageCores: &cores, MemoryWorkingSetBytes: 40 << 20}}}}}
		}
	}
	return f
}

// wobble moves every pod's usage around the target, within the
// tolerance (48 % or 52 %, by pass): every status changes, no count does.
func (f *benchFleet) wobble(pass int) {
	v := 0.048
	if pass%2 == 1 {
		v = 0.052
	}
	for _, c := range f.cores {
		*c = v
	}
}

func (f *benchFleet) input(now time.Time, history map[string]History) Input {
	deps := make(map[string]*api.Deployment, len(f.deps))
	for _, d := range f.deps {
		deps[key(d.Namespace, d.Name)] = d
	}
	return Input{Now: now, HPAs: f.hpas, Deployments: deps, Pods: f.pods, Nodes: f.nodes, Samples: f.samples, History: history}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPlan1000HPAs10000Pods is the plan of a pass over 1,000
// autoscalers of 10 pods each on 10,000 nodes, the usage moving within
// the tolerance: every status changes, no count.
func BenchmarkPlan1000HPAs10000Pods(b *testing.B) {
	f := newBenchFleet(1000, 10)
	history := map[string]History{}
	b.ReportAllocs()
	pass := 0
	cpu0 := cpuTime(b)
	for b.Loop() {
		f.wobble(pass)
		now := t0.Add(time.Duration(pass) * 15 * time.Second)
		for node, s := range f.samples {
			s.Time = now
			f.samples[node] = s
		}
		res := Plan(f.input(now, history))
		if len(res.Decisions) != 1000 || slices.ContainsFunc(res.Decisions, func(d *Decision) bool {
			return d.Scale != nil || d.Status.Condition(api.ScalingActive).Status != api.ConditionTrue
		}) {
			b.Fatalf("%d decisions: %+v", len(res.Decisions), res.Decisions[0].Status)
		}
		for uid, h := range res.History {
			history[uid] = h
		}
		for _, d := range res.Decisions {
			d.HPA.Status = *d.Status
		}
		pass++
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N)/1e6, "cpu-ms/pass")
}

// BenchmarkPass1000HPAs10000Pods is a whole pass of the controller on the
// hub's Badger store: read the autoscalers, Deployments, 10,000 pods and
// nodes and the samples, plan, and write 1,000 statuses.
func BenchmarkPass1000HPAs10000Pods(b *testing.B) { benchPass(b, false) }

// BenchmarkPass1000HPAs10000PodsAllScaleUp is the same pass when every
// Deployment's load doubles between passes: 1,000 scale-ups to place and
// write (the scale-down back is left out: each pass starts from the
// fleet as built).
func BenchmarkPass1000HPAs10000PodsAllScaleUp(b *testing.B) { benchPass(b, true) }

func benchPass(b *testing.B, scaleUp bool) {
	f := newBenchFleet(1000, 10)
	// Indexed as the hub keeps them (serve).
	st, err := store.OpenBadger(b.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)),
		store.WithIndexedKinds(append(slices.Clone(store.DefaultIndexedKinds), api.KindHorizontalPodAutoscaler)...))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var objs []api.Object
	objs = append(objs, &api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace}, ObjectMeta: api.ObjectMeta{Name: "default"}})
	for _, o := range f.deps {
		objs = append(objs, o)
	}
	for _, o := range f.hpas {
		objs = append(objs, o)
	}
	for _, o := range f.nodes {
		objs = append(objs, o)
	}
	for _, o := range f.pods {
		objs = append(objs, o)
	}
	for start := 0; start < len(objs); start += 500 {
		part := objs[start:min(start+500, len(objs))]
		if err := st.Update(func(tx store.Tx) error {
			for _, o := range part {
				if err := tx.Put(o); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	now := t0
	c := New(Options{Store: st, Samples: &fakeSamples{m: f.samples}, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	pass := 0
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	var cpu time.Duration
	for b.Loop() {
		if scaleUp {
			// Back to 10 replicas at 100 % of the request, outside the timing.
			b.StopTimer()
			if err := st.Update(func(tx store.Tx) error {
				for _, d := range f.deps {
					cur, err := store.Get[api.Deployment](tx, d.Namespace, d.Name)
					if err != nil {
						return err
					}
					ten := int32(10)
					cur.Spec.Replicas = &ten
					if err := tx.Put(cur); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			for _, c := range f.cores {
				*c = 0.1
			}
			b.StartTimer()
		} else {
			f.wobble(pass)
		}
		now = t0.Add(time.Duration(pass) * 15 * time.Second)
		for node, s := range f.samples {
			s.Time = now
			f.samples[node] = s
		}
		began := cpuTime(b)
		if err := c.Sync(); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime(b) - began
		pass++
	}
	_ = cpu0
	b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/pass")
	if scaleUp {
		var d *api.Deployment
		_ = st.View(func(tx store.Tx) error {
			d, err = store.Get[api.Deployment](tx, "default", "app-0999")
			return err
		})
		if d == nil || *d.Spec.Replicas != 20 {
			b.Fatalf("the last Deployment did not scale up: %+v", d)
		}
		return
	}
	var h *api.HorizontalPodAutoscaler
	_ = st.View(func(tx store.Tx) error {
		h, err = store.Get[api.HorizontalPodAutoscaler](tx, "default", "app-0999")
		return err
	})
	if h == nil || h.Status.CurrentReplicas != 10 || len(h.Status.CurrentMetrics) != 1 {
		b.Fatalf("status of the last autoscaler: %+v", h)
	}
}
