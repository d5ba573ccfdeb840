package deployment

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/rollout"
	"github.com/flotilla-edge/flotilla/hub/internal/scheduler"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// The steps of planner.plan, each on its own. The simulations in
// controller_test.go test them together.

var now = api.NewTime(t0)

// testPlanner returns the planner of d over nodes and its pods, at t0,
// naming new pods s0001, s0002...
func testPlanner(d *api.Deployment, nodes []*api.Node, pods ...*api.Pod) *planner {
	n := 0
	suffix := func() string { n++; return fmt.Sprintf("s%04d", n) }
	return newPlanner(d, nodes, scheduler.NodesFrom(nodes, pods, nil), pods, nil, map[string]bool{}, nil, now, suffix)
}

// podOf returns a pod of d's current template on node ("": unbound).
func podOf(d *api.Deployment, name, node string) *api.Pod {
	pl := testPlanner(d, nil)
	p := pl.newPod(&d.Spec.Template, pl.short)
	p.Name = name
	p.Spec.NodeName = node
	return p
}

// readyOf is podOf, Ready on its spec.
func readyOf(d *api.Deployment, name, node string) *api.Pod {
	p := podOf(d, name, node)
	p.Status = api.PodStatus{Phase: api.PodRunning, SpecHash: api.HashPodSpec(&p.Spec),
		Conditions: []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}}
	return p
}

func names(pods []*podView) []string {
	var out []string
	for _, v := range pods {
		out = append(out, v.pod.Name)
	}
	return out
}

func TestStepSortOut(t *testing.T) {
	d := deploy("web", 3)
	lost := mkNode("lost")
	lost.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionUnknown,
		LastTransitionTime: api.NewTime(t0.Add(-(DefaultTolerationSeconds + 1) * time.Second))}}
	late := mkNode("late")
	late.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionFalse,
		LastTransitionTime: api.NewTime(t0.Add(-time.Minute))}}
	nodes := []*api.Node{mkNode("a"), late, lost}
	done := readyOf(d, "p-done", "a")
	done.Status.Phase = api.PodSucceeded
	failed := readyOf(d, "p-failed", "a")
	failed.Status.Phase = api.PodFailed
	pl := testPlanner(d, nodes, readyOf(d, "p-ok", "a"), done, failed, readyOf(d, "p-gone", "gone"),
		readyOf(d, "p-lost", "lost"), readyOf(d, "p-late", "late"), podOf(d, "p-pending", ""))
	active := pl.sortOut()
	if got, want := names(active), []string{"p-late", "p-ok", "p-pending"}; !slices.Equal(got, want) {
		t.Fatalf("active %v, want %v", got, want)
	}
	var deleted []string
	for _, k := range pl.set.Delete {
		deleted = append(deleted, k.Name)
	}
	if want := []string{"p-done", "p-failed", "p-gone", "p-lost"}; !slices.Equal(deleted, want) {
		t.Fatalf("deleted %v, want %v", deleted, want)
	}
	if !slices.Equal(pl.set.Evicted, []string{"p-lost from lost"}) {
		t.Fatalf("evicted %v", pl.set.Evicted)
	}
	// p-late's node has been NotReady for a minute: it goes when its
	// toleration ends, and the planner wakes then.
	if want := t0.Add(-time.Minute + DefaultTolerationSeconds*time.Second); !pl.wake.Equal(want) {
		t.Fatalf("wake %s, want %s", pl.wake, want)
	}
}

func TestStepHistory(t *testing.T) {
	d := deploy("web", 2)
	v0 := deploy("web", 2)
	v0.Spec.Template.Spec.Containers[0].Image = "reg/web:v0"
	old := testPlanner(v0, nil)
	oldHist, _ := old.history(nil)
	rev0 := oldHist.Current
	limit := int32(0)
	d.Spec.RevisionHistoryLimit = &limit

	pl := testPlanner(d, nil)
	pl.revs = []*api.ControllerRevision{rev0}
	hist, templates := pl.history([]*podView{{pod: podOf(v0, "p-old", "a")}})
	if len(hist.Create) != 1 || hist.Current.Revision != 2 || len(hist.Delete) != 0 {
		t.Fatalf("history %+v: want revision 2 made, revision 1 kept while a pod runs it", hist)
	}
	if len(pl.set.CreateRevisions) != 1 {
		t.Fatalf("revisions to create: %v", pl.set.CreateRevisions)
	}
	if templates[pl.short] != &d.Spec.Template || templates[old.short] == nil || templates[old.short].Spec.Containers[0].Image != "reg/web:v0" {
		t.Fatalf("templates %v", templates)
	}
	// No pod runs it: past the limit, it goes.
	pl = testPlanner(d, nil)
	pl.revs = []*api.ControllerRevision{rev0}
	if hist, _ := pl.history(nil); len(hist.Delete) != 1 || len(pl.set.DeleteRevisions) != 1 {
		t.Fatalf("history %+v: want revision 1 deleted", hist)
	}
}

func TestToCount(t *testing.T) {
	pods := []*podView{{pod: &api.Pod{ObjectMeta: api.ObjectMeta{Name: "a"}}}, {pod: &api.Pod{ObjectMeta: api.ObjectMeta{Name: "b"}}}}
	for _, tc := range []struct {
		replicas, up int
		deletes      int
	}{{2, 0, 0}, {5, 3, 0}, {1, 0, 1}, {0, 0, 2}} {
		up, del := toCount(tc.replicas, pods)
		if up != tc.up || len(del) != tc.deletes {
			t.Errorf("toCount(%d) = %d up, %d deletes; want %d, %d", tc.replicas, up, len(del), tc.up, tc.deletes)
		}
	}
}

// view makes pod views for the scaling tests: "n" new, "o" old, then
// "+" available, "~" stale (available, from before the hub started), or
// "-" not available; the name is the spec with its index.
func view(specs ...string) (active, cur, old []*podView) {
	for i, s := range specs {
		v := &podView{pod: &api.Pod{ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("%s%d", s, i),
			CreationTimestamp: api.NewTime(t0.Add(time.Duration(i) * time.Second))}, Spec: api.PodSpec{NodeName: "n"}},
			current: s[0] == 'n', bound: true}
		switch s[1] {
		case '+':
			v.ready, v.available = true, true
		case '=':
			v.ready = true // not for minReadySeconds yet
		case '~':
			v.ready, v.available, v.stale = true, true, true
		}
		active = append(active, v)
		if v.current {
			cur = append(cur, v)
		} else {
			old = append(old, v)
		}
	}
	return active, cur, old
}

func TestRollingScale(t *testing.T) {
	for _, tc := range []struct {
		name                               string
		replicas, maxUnavailable, maxSurge int
		pods                               []string
		wantUp                             int
		wantDeletes                        []string
	}{
		{name: "from nothing", replicas: 3, maxSurge: 1, wantUp: 3},
		{name: "the first surge pod", replicas: 3, maxSurge: 1, pods: []string{"o+", "o+", "o+"}, wantUp: 1},
		{name: "the surge pod not available yet: wait", replicas: 3, maxSurge: 1, pods: []string{"o+", "o+", "o+", "n-"}},
		{name: "the surge pod available: an old one goes", replicas: 3, maxSurge: 1, pods: []string{"o+", "o+", "o+", "n+"},
			wantDeletes: []string{"o+2"}},
		{name: "within maxUnavailable, unavailable old pods first", replicas: 3, maxUnavailable: 1, pods: []string{"o+", "o-", "o+"},
			wantDeletes: []string{"o-1"}},
		{name: "Ready but not available counts as unavailable", replicas: 3, maxUnavailable: 1, pods: []string{"o+", "o=", "o+"},
			wantDeletes: []string{"o=1"}},
		{name: "maxUnavailable lets an available old pod go", replicas: 3, maxUnavailable: 1, pods: []string{"o+", "o+", "o+"},
			wantDeletes: []string{"o+2"}},
		{name: "stale old pods are neither healthy nor not", replicas: 3, maxUnavailable: 1, pods: []string{"o~", "o~", "o~"}},
		{name: "new pods over replicas go", replicas: 2, pods: []string{"n+", "n-", "n+"}, wantDeletes: []string{"n-1"}},
		{name: "replacements for a scaled-down count", replicas: 3, maxUnavailable: 1, maxSurge: 1, pods: []string{"n+", "n+"}, wantUp: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			active, cur, old := view(tc.pods...)
			up, del := rollingScale(tc.replicas, tc.maxUnavailable, tc.maxSurge, active, cur, old)
			if up != tc.wantUp || !slices.Equal(names(del), tc.wantDeletes) {
				t.Fatalf("scale up %d, delete %v; want %d, %v", up, names(del), tc.wantUp, tc.wantDeletes)
			}
		})
	}
}

func TestStepScale(t *testing.T) {
	d := deploy("web", 3)
	v0 := deploy("web", 3)
	v0.Spec.Template.Spec.Containers[0].Image = "reg/web:v0"
	oldShort := testPlanner(v0, nil).short
	oldPods := func() []*podView {
		return []*podView{{pod: readyOf(v0, "o1", "a"), ready: true, available: true, bound: true},
			{pod: readyOf(v0, "o2", "a"), ready: true, available: true, bound: true}}
	}
	bad := api.FromString("lots")
	for _, tc := range []struct {
		name        string
		edit        func(d *api.Deployment)
		wantUp      int
		wantDeletes int
		wantShort   func(pl *planner) string
		wantErr     bool
		wantMaxU    int
	}{
		{name: "rolling update, within the default budgets (25%: surge 1, unavailable 0)", edit: func(*api.Deployment) {},
			wantUp: 2, wantShort: func(pl *planner) string { return pl.short }, wantMaxU: 0},
		{name: "recreate: the old pods go first", edit: func(d *api.Deployment) { d.Spec.Strategy.Type = api.RecreateStrategy },
			wantDeletes: 2, wantShort: func(pl *planner) string { return pl.short }},
		{name: "paused: the count kept on the template most pods run", edit: func(d *api.Deployment) { d.Spec.Paused = true },
			wantUp: 1, wantShort: func(*planner) string { return oldShort }},
		{name: "a budget that does not parse is said", edit: func(d *api.Deployment) {
			d.Spec.Strategy.RollingUpdate = &api.RollingUpdateDeployment{MaxUnavailable: &bad}
		}, wantUp: 2, wantShort: func(pl *planner) string { return pl.short }, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dd := *d
			tc.edit(&dd)
			pl := testPlanner(&dd, nil)
			templates := map[string]*api.PodTemplateSpec{pl.short: &dd.Spec.Template, oldShort: &v0.Spec.Template}
			sc := pl.scale(oldPods(), templates)
			if sc.scaleUp != tc.wantUp || len(sc.deletes) != tc.wantDeletes || sc.short != tc.wantShort(pl) ||
				(sc.budgetErr != nil) != tc.wantErr || sc.maxUnavailable != tc.wantMaxU || templates[sc.short] != sc.template {
				t.Fatalf("scaling %+v", sc)
			}
		})
	}
}

func TestStepPlace(t *testing.T) {
	d := deploy("web", 3)
	nodes := []*api.Node{mkNode("a"), mkNode("b")}
	pending := podOf(d, "web-pending", "")
	stuck := podOf(d, "web-stuck", "")
	stuck.Spec.NodeSelector = map[string]string{"site": "moon"}
	pl := testPlanner(d, nodes, readyOf(d, "web-a", "a"), pending, stuck)
	active := pl.sortOut()
	pl.place(active, map[string]bool{}, scaling{scaleUp: 2, template: &d.Spec.Template, short: pl.short})

	updates := map[string]*api.Pod{}
	for _, p := range pl.set.Update {
		updates[p.Name] = p
	}
	if p := updates["web-pending"]; p == nil || p.Spec.NodeName != "b" || p.Annotations[rollout.AnnotationUpdatedAt] == "" {
		t.Fatalf("pending pod %+v: want it bound to b, the node without one", p)
	}
	if p := updates["web-stuck"]; p == nil || p.Spec.NodeName != "" || !strings.Contains(pendingMessage(p), "node(s) didn't match") {
		t.Fatalf("stuck pod %+v: want it unschedulable, with the reason", p)
	}
	var created []string
	for _, p := range pl.set.Create {
		created = append(created, p.Name+"@"+p.Spec.NodeName)
	}
	short := pl.short
	if want := []string{"web-" + short + "-s0001@a", "web-" + short + "-s0002@b"}; !slices.Equal(created, want) {
		t.Fatalf("created %v, want %v: spread over the nodes", created, want)
	}

	// An unschedulable pod already saying why is not written again.
	pl = testPlanner(d, nodes, updates["web-stuck"])
	pl.place(pl.sortOut(), map[string]bool{}, scaling{template: &d.Spec.Template, short: pl.short})
	if len(pl.set.Update) != 0 {
		t.Fatalf("wrote %v again", pl.set.Update)
	}
}

func TestStepReadyAtRecords(t *testing.T) {
	d := deploy("web", 3)
	stamp := t0.Format(time.RFC3339)
	recorded := func(p *api.Pod, at string) *api.Pod {
		p.Annotations = map[string]string{rollout.AnnotationReadyAt: at}
		return p
	}
	for _, tc := range []struct {
		name     string
		minReady int32
		v        podView
		deleted  bool
		want     map[string]string // the annotations written; nil: no write
	}{
		{name: "no minReadySeconds: no records", v: podView{pod: readyOf(d, "p", "a"), bound: true, ready: true}},
		{name: "Ready now: recorded", minReady: 10, v: podView{pod: readyOf(d, "p", "a"), bound: true, ready: true},
			want: map[string]string{rollout.AnnotationReadyAt: stamp}},
		{name: "Ready and recorded: kept", minReady: 10, v: podView{pod: recorded(readyOf(d, "p", "a"), "2025-01-01T00:00:00Z"), bound: true, ready: true}},
		{name: "no longer Ready: the record goes", minReady: 10, v: podView{pod: recorded(readyOf(d, "p", "a"), stamp), bound: true},
			want: map[string]string{}},
		{name: "unbound: nothing", minReady: 10, v: podView{pod: podOf(d, "p", ""), ready: true}},
		{name: "deleted: nothing", minReady: 10, v: podView{pod: readyOf(d, "p", "a"), bound: true, ready: true}, deleted: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dd := *d
			dd.Spec.MinReadySeconds = tc.minReady
			pl := testPlanner(&dd, nil)
			v := tc.v
			pl.readyAtRecords([]*podView{&v}, map[string]bool{"p": tc.deleted})
			if tc.want == nil {
				if len(pl.set.Update) != 0 {
					t.Fatalf("wrote %v", pl.set.Update[0].Annotations)
				}
				return
			}
			if len(pl.set.Update) != 1 || !maps.Equal(pl.set.Update[0].Annotations, tc.want) {
				t.Fatalf("wrote %v, want %v", pl.set.Update, tc.want)
			}
		})
	}
}

func TestStepMeasure(t *testing.T) {
	d := deploy("web", 3)
	v0 := deploy("web", 3)
	v0.Spec.Template.Spec.Containers[0].Image = "reg/web:v0"
	secs := int32(60)
	d.Spec.ProgressDeadlineSeconds = &secs
	pl := testPlanner(d, nil)
	d.Status = api.DeploymentStatus{Replicas: 3, UpdatedReplicas: 1, Rollout: &api.RolloutStatus{TemplateHash: pl.hash}}
	active := []*podView{
		{pod: readyOf(d, "n-avail", "a"), current: true, ready: true, available: true},
		{pod: readyOf(d, "n-ready", "a"), current: true, ready: true},
		{pod: readyOf(v0, "o-gone", "a"), ready: true, available: true},
		{pod: readyOf(v0, "o-avail", "a"), ready: true, available: true},
	}
	pl.set.Create = []*api.Pod{pl.newPod(&d.Spec.Template, pl.short)}
	pr := pl.measure(active, map[string]bool{"o-gone": true})
	want := api.DeploymentStatus{ObservedGeneration: 1, Replicas: 4, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 2, UnavailableReplicas: 2}
	if pr.st.Replicas != want.Replicas || pr.st.UpdatedReplicas != want.UpdatedReplicas || pr.st.ReadyReplicas != want.ReadyReplicas ||
		pr.st.AvailableReplicas != want.AvailableReplicas || pr.st.UnavailableReplicas != want.UnavailableReplicas || pr.st.ObservedGeneration != 1 {
		t.Fatalf("counts %+v, want %+v", pr.st, want)
	}
	if want := []string{"n-ready", pl.set.Create[0].Name}; !slices.Equal(pr.updating, slices.Sorted(slices.Values(want))) {
		t.Fatalf("updating %v", pr.updating)
	}
	if pr.newRollout || pr.complete || !pr.progressed || pr.deadline != time.Minute {
		t.Fatalf("new %v complete %v progressed %v deadline %s", pr.newRollout, pr.complete, pr.progressed, pr.deadline)
	}
}

func TestStepConditions(t *testing.T) {
	earlier := api.NewTime(t0.Add(-time.Hour))
	progressing := func(reason string, at api.Time) []api.DeploymentCondition {
		return []api.DeploymentCondition{{Type: ConditionProgressing, Status: api.ConditionTrue, Reason: reason, LastUpdateTime: at, LastTransitionTime: at}}
	}
	for _, tc := range []struct {
		name       string
		paused     bool
		stored     []api.DeploymentCondition
		pr         progress
		available  int32
		wantAvail  api.ConditionStatus
		wantReason string
		wantWake   time.Time
	}{
		{name: "paused", paused: true, pr: progress{deadline: time.Minute}, available: 3,
			wantAvail: api.ConditionTrue, wantReason: ReasonDeploymentPaused},
		{name: "complete", pr: progress{complete: true, deadline: time.Minute}, available: 3,
			wantAvail: api.ConditionTrue, wantReason: ReasonNewReplicaSetAvailable},
		{name: "a new rollout", pr: progress{newRollout: true, deadline: time.Minute}, available: 1,
			wantAvail: api.ConditionFalse, wantReason: ReasonNewReplicaSetCreated, wantWake: t0.Add(time.Minute)},
		{name: "resumed", stored: []api.DeploymentCondition{{Type: ConditionProgressing, Reason: ReasonDeploymentPaused}},
			pr: progress{deadline: time.Minute}, available: 2, wantAvail: api.ConditionTrue, wantReason: ReasonDeploymentResumed},
		{name: "progress", stored: progressing(ReasonReplicaSetUpdated, earlier), pr: progress{progressed: true, deadline: time.Minute},
			available: 2, wantAvail: api.ConditionTrue, wantReason: ReasonReplicaSetUpdated, wantWake: t0.Add(time.Minute)},
		{name: "no progress, within the deadline", stored: progressing(ReasonReplicaSetUpdated, api.NewTime(t0.Add(-30*time.Second))),
			pr: progress{deadline: time.Minute}, available: 2, wantAvail: api.ConditionTrue, wantReason: ReasonReplicaSetUpdated,
			wantWake: t0.Add(30 * time.Second)},
		{name: "resumed, no progress since", stored: []api.DeploymentCondition{{Type: ConditionProgressing, Status: api.ConditionUnknown,
			Reason: ReasonDeploymentResumed, LastUpdateTime: api.NewTime(t0.Add(-30 * time.Second))}},
			pr: progress{deadline: time.Minute}, available: 2, wantAvail: api.ConditionTrue, wantReason: ReasonDeploymentResumed,
			wantWake: t0.Add(30 * time.Second)},
		{name: "no progress past the deadline", stored: progressing(ReasonReplicaSetUpdated, earlier),
			pr: progress{deadline: time.Minute}, available: 2, wantAvail: api.ConditionTrue, wantReason: ReasonProgressDeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deploy("web", 3)
			d.Spec.Paused = tc.paused
			d.Status.Conditions = tc.stored
			pl := testPlanner(d, nil)
			tc.pr.st.AvailableReplicas = tc.available
			conds := pl.conditions(tc.pr, 1, 2)
			if len(conds) != 2 || conds[0].Type != ConditionAvailable || conds[1].Type != ConditionProgressing {
				t.Fatalf("conditions %+v", conds)
			}
			if conds[0].Status != tc.wantAvail || conds[1].Reason != tc.wantReason {
				t.Fatalf("Available %s, Progressing %s; want %s, %s", conds[0].Status, conds[1].Reason, tc.wantAvail, tc.wantReason)
			}
			if !pl.wake.Equal(tc.wantWake) {
				t.Fatalf("wake %s, want %s", pl.wake, tc.wantWake)
			}
			if tc.stored != nil && tc.stored[0].Reason != "" && d.Status.Conditions[0].Reason != tc.stored[0].Reason {
				t.Fatal("the stored conditions changed")
			}
		})
	}
}

func TestStepRolloutView(t *testing.T) {
	earlier := api.NewTime(t0.Add(-time.Hour))
	exceeded := []api.DeploymentCondition{{Type: ConditionProgressing, Status: api.ConditionFalse, Reason: ReasonProgressDeadlineExceeded}}
	var many []string
	for i := range 12 {
		many = append(many, fmt.Sprintf("p%02d", i))
	}
	for _, tc := range []struct {
		name          string
		paused        bool
		prev          *api.RolloutStatus
		pr            progress
		hist          rollout.History
		wantPhase     api.RolloutPhase
		wantMessage   string
		wantLastGood  int64
		wantStarted   api.Time
		wantProgress  api.Time
		wantUpdating  int
		sameTemplate  bool
		renumberedTo1 bool
	}{
		{name: "a new rollout", pr: progress{newRollout: true, updating: many}, prev: &api.RolloutStatus{LastGoodRevision: 1, TemplateHash: "old"},
			hist: history(2), wantPhase: api.RolloutProgressing, wantMessage: "0 of 3 updated replicas are available",
			wantLastGood: 1, wantStarted: now, wantProgress: now, wantUpdating: 10},
		{name: "progress moves the time", sameTemplate: true, pr: progress{progressed: true},
			prev: &api.RolloutStatus{StartedAt: earlier, LastProgressTime: earlier, LastGoodRevision: 1}, hist: history(2),
			wantPhase: api.RolloutProgressing, wantMessage: "0 of 3 updated replicas are available", wantLastGood: 1,
			wantStarted: earlier, wantProgress: now},
		{name: "complete: the last good", sameTemplate: true, pr: progress{complete: true},
			prev: &api.RolloutStatus{StartedAt: earlier, LastProgressTime: earlier, LastGoodRevision: 1}, hist: history(2),
			wantPhase: api.RolloutComplete, wantMessage: "0 of 3 updated replicas are available", wantLastGood: 2,
			wantStarted: earlier, wantProgress: earlier},
		{name: "past the deadline", sameTemplate: true, pr: progress{deadline: time.Minute, st: api.DeploymentStatus{Conditions: exceeded}},
			prev: &api.RolloutStatus{StartedAt: earlier, LastProgressTime: earlier}, hist: history(2), wantPhase: api.RolloutFailed,
			wantMessage: "progress deadline exceeded (1m0s): 0 of 3 updated replicas are available",
			wantStarted: earlier, wantProgress: earlier},
		{name: "paused", paused: true, sameTemplate: true, prev: &api.RolloutStatus{StartedAt: earlier, LastProgressTime: earlier},
			hist: history(2), wantPhase: api.RolloutPaused, wantMessage: "paused: 0 of 3 updated replicas are available",
			wantStarted: earlier, wantProgress: earlier},
		{name: "renumbered", sameTemplate: true, prev: &api.RolloutStatus{StartedAt: earlier, LastProgressTime: earlier, LastGoodRevision: 3},
			hist:      rollout.History{Current: &api.ControllerRevision{Revision: 4}, Renumbered: map[int64]int64{3: 5}},
			wantPhase: api.RolloutProgressing, wantMessage: "0 of 3 updated replicas are available", wantLastGood: 5,
			wantStarted: earlier, wantProgress: earlier},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deploy("web", 3)
			d.Spec.Paused = tc.paused
			pl := testPlanner(d, nil)
			if tc.prev != nil && tc.sameTemplate {
				tc.prev.TemplateHash = pl.hash
			}
			d.Status.Rollout = tc.prev
			ro := pl.rolloutView(tc.pr, tc.hist, nil, nil, nil)
			if ro.Phase != tc.wantPhase || ro.Message != tc.wantMessage || ro.LastGoodRevision != tc.wantLastGood ||
				ro.Revision != tc.hist.Current.Revision || ro.TemplateHash != pl.hash || ro.Total != 3 {
				t.Fatalf("rollout %+v", ro)
			}
			if !ro.StartedAt.Equal(tc.wantStarted.Time) || !ro.LastProgressTime.Equal(tc.wantProgress.Time) || len(ro.Updating) != tc.wantUpdating {
				t.Fatalf("started %s, progress %s, updating %d", ro.StartedAt, ro.LastProgressTime, len(ro.Updating))
			}
		})
	}
}

func history(n int64) rollout.History {
	return rollout.History{Current: &api.ControllerRevision{Revision: n}, Renumbered: map[int64]int64{}}
}

func TestRolloutSummary(t *testing.T) {
	for _, tc := range []struct {
		ready    int32
		replicas int
		old      int32
		waiting  []string
		err      error
		want     string
	}{
		{3, 3, 0, nil, nil, "3 of 3 updated replicas are available"},
		{1, 3, 2, nil, nil, "1 of 3 updated replicas are available, 2 old replica(s) pending termination"},
		{0, 2, 0, []string{"web-x (ErrImagePull)", "..."}, nil, "0 of 2 updated replicas are available; waiting for web-x (ErrImagePull), ..."},
		{0, 2, 0, nil, errors.New("bad maxSurge"), "0 of 2 updated replicas are available (bad maxSurge)"},
	} {
		if got := rolloutSummary(tc.ready, tc.replicas, tc.old, tc.waiting, tc.err); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// TestFinishedPodsHoldNoResources: a finished pod that goes does not free
// room on its node, since it held none (scheduler.NodesFrom): a node full
// of running pods stays full.
func TestFinishedPodsHoldNoResources(t *testing.T) {
	half := func(d *api.Deployment) *api.Deployment {
		d.Spec.Template.Spec.Containers[0].Resources.Requests = api.ResourceList{"cpu": "500m", "memory": "64Mi"}
		return d
	}
	web, other := half(deploy("web", 1)), half(deploy("other", 2))
	failed := readyOf(web, "web-failed", "a")
	failed.Status.Phase = api.PodFailed
	pods := []*api.Pod{readyOf(other, "other-1", "a"), readyOf(other, "other-2", "a"), failed}
	res := Plan(Input{Deployments: []*api.Deployment{web}, Nodes: []*api.Node{mkNode("a")}, Pods: pods, Now: now,
		Suffix: func() string { return "new" }})
	set := res.Sets[0]
	if len(set.Delete) != 1 || set.Delete[0].Name != "web-failed" {
		t.Fatalf("deleted %v, want the failed pod", set.Delete)
	}
	if len(set.Create) != 1 || set.Create[0].Spec.NodeName != "" || !strings.Contains(pendingMessage(set.Create[0]), "Insufficient cpu") {
		t.Fatalf("created %+v on %q: node a is full", set.Create[0].Status, set.Create[0].Spec.NodeName)
	}
}
