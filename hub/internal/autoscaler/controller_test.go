package autoscaler

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// fakeSamples is the metrics fleet of a unit test.
type fakeSamples struct {
	mu sync.Mutex
	m  map[string]wire.MetricSample
}

func (f *fakeSamples) Latest(node string) (wire.MetricSample, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.m[node]
	return s, ok
}

// storeWorld puts a world in a memory store and returns a controller on
// it whose clock is the world's.
func storeWorld(t *testing.T, w *world) (store.Store, *Controller, *fakeSamples) {
	t.Helper()
	st := store.NewMemory()
	t.Cleanup(func() { st.Close() })
	w.hpa.Status = api.HorizontalPodAutoscalerStatus{}
	if err := st.Update(func(tx store.Tx) error {
		objs := []api.Object{&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace}, ObjectMeta: api.ObjectMeta{Name: "default"}}, w.dep, w.hpa}
		for _, n := range w.nodes {
			n.TypeMeta = api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}
			objs = append(objs, n)
		}
		for _, p := range w.pods {
			p.TypeMeta = api.TypeMeta{APIVersion: "v1", Kind: api.KindPod}
			objs = append(objs, p)
		}
		for _, o := range objs {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	samples := &fakeSamples{m: w.samples}
	c := New(Options{Store: st, Samples: samples, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return w.now }})
	return st, c, samples
}

func stored(t *testing.T, st store.Store) (*api.Deployment, *api.HorizontalPodAutoscaler, []*api.Event) {
	t.Helper()
	var d *api.Deployment
	var h *api.HorizontalPodAutoscaler
	var evs []*api.Event
	if err := st.View(func(tx store.Tx) error {
		var err error
		if d, err = store.Get[api.Deployment](tx, "default", "web"); err != nil {
			return err
		}
		if h, err = store.Get[api.HorizontalPodAutoscaler](tx, "default", "web"); err != nil {
			return err
		}
		evs, err = store.List[api.Event](tx, "default")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return d, h, evs
}

// TestControllerWritesScaleStatusAndEvents: a pass writes the target's
// replicas (its generation moves, as a write of its scale does), the
// autoscaler's status and a SuccessfulRescale event, and the next pass
// starts from what it wrote.
func TestControllerWritesScaleStatusAndEvents(t *testing.T) {
	w := newWorld(2)
	w.addPods(1, 610, t0.Add(-time.Hour))
	st, c, _ := storeWorld(t, w)
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	d, h, evs := stored(t, st)
	if *d.Spec.Replicas != 5 || d.Generation != 1 {
		t.Errorf("deployment replicas %d generation %d", *d.Spec.Replicas, d.Generation)
	}
	if h.Status.DesiredReplicas != 5 || h.Status.CurrentReplicas != 1 || h.Status.ObservedGeneration == nil || *h.Status.ObservedGeneration != 1 {
		t.Errorf("status %+v", h.Status)
	}
	if len(evs) != 1 || evs[0].Reason != ReasonSuccessfulRescale || evs[0].Message != "New size: 5; reason: cpu resource utilization (percentage of request) above target" ||
		evs[0].Source.Component != Component || evs[0].InvolvedObject.Kind != api.KindHorizontalPodAutoscaler {
		t.Errorf("events %+v", evs)
	}
	// The next pass, within the scale-up period: the change is
	// remembered, the policy holds the count at 5 (a new world pass would
	// allow 4 more).
	w.now = t0.Add(5 * time.Second)
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	if d, h, _ := stored(t, st); *d.Spec.Replicas != 5 || cond(&h.Status, api.ScalingLimited) != "True ScaleUpLimit" {
		t.Errorf("within the period: replicas %d, %s", *d.Spec.Replicas, cond(&h.Status, api.ScalingLimited))
	}
}

// TestControllerLeavesATargetThatChanged: a rescale planned on replicas
// the target no longer has is dropped, with the status; the next pass
// plans again.
func TestControllerLeavesATargetThatChanged(t *testing.T) {
	w := newWorld(1)
	w.addPods(1, 610, t0.Add(-time.Hour))
	st, c, _ := storeWorld(t, w)
	res := Plan(Input{Now: w.now, HPAs: []*api.HorizontalPodAutoscaler{w.hpa}, Deployments: map[string]*api.Deployment{"default/web": w.dep},
		Pods: w.pods, Nodes: w.nodes, Samples: w.samples, History: map[string]History{}})
	if err := st.Update(func(tx store.Tx) error {
		d, err := store.Get[api.Deployment](tx, "default", "web")
		if err != nil {
			return err
		}
		three := int32(3)
		d.Spec.Replicas = &three // an operator's hub scale, meanwhile
		return tx.Put(d)
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.write(res); err != nil {
		t.Fatal(err)
	}
	d, h, evs := stored(t, st)
	if *d.Spec.Replicas != 3 || h.Status.DesiredReplicas != 0 || len(evs) != 0 {
		t.Errorf("replicas %d, status %+v, events %d", *d.Spec.Replicas, h.Status, len(evs))
	}
}

// TestControllerWakesOnNewSpecsOnly: between periodic passes (an hour
// apart here) a changed spec is planned at once, and the controller's own
// status writes, which wake the loop too, plan nothing. The autoscaler's
// pods have no samples, so every pass that plans it counts one more
// FailedGetResourceMetric: the count says how many did.
func TestControllerWakesOnNewSpecsOnly(t *testing.T) {
	w := newWorld(1)
	w.addPods(2, 200, t0.Add(-time.Hour))
	clear(w.samples)
	st, _, samples := storeWorld(t, w)
	c := New(Options{Store: st, Samples: samples, Logger: slog.New(slog.DiscardHandler), Period: time.Hour,
		Now: func() time.Time { return w.now }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	planned := func() int32 {
		_, _, evs := stored(t, st)
		for _, e := range evs {
			if e.Reason == ReasonFailedGetResourceMetric {
				return e.Count
			}
		}
		return 0
	}
	settle := func(what string, want int32, generation int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, h, _ := stored(t, st)
			if planned() == want && h.Status.ObservedGeneration != nil && *h.Status.ObservedGeneration == generation {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: planned %d times, status %+v", what, planned(), h.Status)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// The status write woke the loop: give that pass time to run.
		time.Sleep(300 * time.Millisecond)
		if n := planned(); n != want {
			t.Fatalf("%s: planned %d times, want %d: a status write of its own made the controller plan again", what, n, want)
		}
	}
	settle("the first pass", 1, 1)
	if err := st.Update(func(tx store.Tx) error {
		h, err := store.Get[api.HorizontalPodAutoscaler](tx, "default", "web")
		if err != nil {
			return err
		}
		h.Spec.MaxReplicas, h.Generation = 3, h.Generation+1
		return tx.Put(h)
	}); err != nil {
		t.Fatal(err)
	}
	settle("the new spec", 2, 2)
}
