package daemonset

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/rollout"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// The steps of setPlanner.plan, each on its own. TestPlan* and the
// simulations in controller_test.go test them together.

func testPlanner(d *api.DaemonSet) *setPlanner {
	taken := map[string]bool{}
	return newSetPlanner(d, now, func(p *api.Pod) string { return api.HashPodSpec(&p.Spec) }, nil, func() map[string]bool { return taken })
}

// podOf returns d's pod on node, on d's current template.
func podOf(d *api.DaemonSet, node string) *api.Pod {
	return newPod(d, node, api.HashTemplate(&d.Spec.Template), now)
}

// readyPod is podOf, Ready on its spec.
func readyPod(d *api.DaemonSet, node string) *api.Pod {
	p := podOf(d, node)
	ready(p)
	return p
}

// withImage returns a copy of d with another image: another template.
func withImage(d *api.DaemonSet, image string) *api.DaemonSet {
	cp := *d
	cp.Spec.Template.Spec.Containers = []api.Container{{Name: "c", Image: image}}
	return &cp
}

// viewTargets returns targets for nodes, each with its pod (nil: none).
func viewTargets(pods map[string]*api.Pod, nodes ...string) []target {
	var out []target
	for _, n := range nodes {
		t := target{node: node(n, nil)}
		if p := pods[n]; p != nil {
			t.pod = viewPod(p, func(p *api.Pod) string { return api.HashPodSpec(&p.Spec) })
		}
		out = append(out, t)
	}
	return out
}

func keyNames(keys []store.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Name)
	}
	return out
}

func TestStepTargets(t *testing.T) {
	lab := map[string]string{"site": "lab"}
	home := map[string]string{"site": "home"}
	d := ds("x", lab)
	second := podOf(d, "a")
	second.Name = "x-zz-second"
	for _, tc := range []struct {
		name  string
		nodes []*api.Node
		pods  []*api.Pod
		// want: target node names, "+" after one with a pod.
		want                          []string
		wantDelete                    []string
		desired, current, misschedule int32
	}{
		{name: "every matching node, with its pod if it has one",
			nodes: []*api.Node{node("a", lab), node("b", lab)}, pods: []*api.Pod{podOf(d, "a")},
			want: []string{"a+", "b"}, desired: 2, current: 1},
		{name: "a node the selector no longer matches loses its pod",
			nodes: []*api.Node{node("a", lab), node("b", home)}, pods: []*api.Pod{podOf(d, "a"), podOf(d, "b")},
			want: []string{"a+"}, wantDelete: []string{PodName("x", "b")}, desired: 1, current: 1, misschedule: 1},
		{name: "one pod per node: the first by name stays",
			nodes: []*api.Node{node("a", lab)}, pods: []*api.Pod{second, podOf(d, "a")},
			want: []string{"a+"}, wantDelete: []string{"x-zz-second"}, desired: 1, current: 1},
		{name: "pods on nodes that are gone go, by name",
			nodes: []*api.Node{node("a", lab)}, pods: []*api.Pod{podOf(d, "gone-2"), podOf(d, "gone-1")},
			want: []string{"a"}, wantDelete: slices.Sorted(slices.Values([]string{PodName("x", "gone-1"), PodName("x", "gone-2")})), desired: 1},
		{name: "no nodes", want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mine := map[string][]*api.Pod{}
			for _, p := range tc.pods {
				mine[p.Spec.NodeName] = append(mine[p.Spec.NodeName], p)
			}
			targets, del, status := testPlanner(d).targets(tc.nodes, mine)
			var got []string
			for _, tg := range targets {
				s := tg.node.Name
				if tg.pod != nil {
					s += "+"
					if tg.pod.pod.Spec.NodeName != tg.node.Name {
						t.Fatalf("target %s has the pod of %s", tg.node.Name, tg.pod.pod.Spec.NodeName)
					}
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tc.want) || !slices.Equal(keyNames(del), tc.wantDelete) {
				t.Fatalf("targets %v, delete %v; want %v, %v", got, keyNames(del), tc.want, tc.wantDelete)
			}
			if status.DesiredNumberScheduled != tc.desired || status.CurrentNumberScheduled != tc.current ||
				status.NumberMisscheduled != tc.misschedule || status.ObservedGeneration != d.Generation {
				t.Fatalf("status %+v", status)
			}
		})
	}
}

func TestStepHistory(t *testing.T) {
	v1 := ds("x", nil)
	v2 := withImage(v1, "reg/x:v2")
	v3 := withImage(v1, "reg/x:v3")
	// revision returns the revision d's history makes of its template.
	revision := func(d *api.DaemonSet, n int64) *api.ControllerRevision {
		h := testPlanner(d)
		hist, _ := h.history(nil, nil)
		cr := hist.Current
		cr.Revision = n
		return cr
	}
	limit0 := int32(0)
	for _, tc := range []struct {
		name       string
		d          *api.DaemonSet
		revs       []*api.ControllerRevision
		live       map[string]*api.Pod // node → pod, for live hashes
		lastGood   int64
		wantCreate []int64
		wantUpdate []int64
		wantDelete []int64
		// wantNumbers: byNumber, as number → image.
		wantNumbers map[int64]string
	}{
		{name: "the first template is revision 1", d: v1,
			wantCreate: []int64{1}, wantNumbers: map[int64]string{1: "reg/x:v1"}},
		{name: "a new template takes the next number", d: v2, revs: []*api.ControllerRevision{revision(v1, 1)},
			wantCreate: []int64{2}, wantNumbers: map[int64]string{1: "reg/x:v1", 2: "reg/x:v2"}},
		{name: "a template that comes back is renumbered", d: v1, revs: []*api.ControllerRevision{revision(v1, 1), revision(v2, 2)},
			wantUpdate: []int64{3}, wantNumbers: map[int64]string{2: "reg/x:v2", 3: "reg/x:v1"}},
		{name: "past the limit, old revisions go", d: withLimit(v3, &limit0), revs: []*api.ControllerRevision{revision(v1, 1), revision(v2, 2)},
			wantCreate: []int64{3}, wantDelete: []int64{1, 2}, wantNumbers: map[int64]string{1: "reg/x:v1", 2: "reg/x:v2", 3: "reg/x:v3"}},
		{name: "a revision a pod runs stays", d: withLimit(v3, &limit0), revs: []*api.ControllerRevision{revision(v1, 1), revision(v2, 2)},
			live: map[string]*api.Pod{"a": podOf(v2, "a")}, wantCreate: []int64{3}, wantDelete: []int64{1},
			wantNumbers: map[int64]string{1: "reg/x:v1", 2: "reg/x:v2", 3: "reg/x:v3"}},
		{name: "the last good revision stays", d: withLimit(withRollout(v3, 1), &limit0), revs: []*api.ControllerRevision{revision(v1, 1), revision(v2, 2)},
			lastGood: 1, wantCreate: []int64{3}, wantDelete: []int64{2},
			wantNumbers: map[int64]string{1: "reg/x:v1", 2: "reg/x:v2", 3: "reg/x:v3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.d
			if tc.lastGood > 0 {
				d.Status.Rollout = &api.RolloutStatus{LastGoodRevision: tc.lastGood}
			}
			var nodes []string
			for n := range tc.live {
				nodes = append(nodes, n)
			}
			hist, byNumber := testPlanner(d).history(viewTargets(tc.live, nodes...), tc.revs)
			numbers := func(crs []*api.ControllerRevision) []int64 {
				var out []int64
				for _, cr := range crs {
					out = append(out, cr.Revision)
				}
				return out
			}
			if !slices.Equal(numbers(hist.Create), tc.wantCreate) || !slices.Equal(numbers(hist.Update), tc.wantUpdate) ||
				!slices.Equal(numbers(hist.Delete), tc.wantDelete) {
				t.Fatalf("create %v update %v delete %v; want %v %v %v", numbers(hist.Create), numbers(hist.Update),
					numbers(hist.Delete), tc.wantCreate, tc.wantUpdate, tc.wantDelete)
			}
			got := map[int64]string{}
			for n, cr := range byNumber {
				got[n] = cr.Data.Spec.Containers[0].Image
			}
			if !maps.Equal(got, tc.wantNumbers) {
				t.Fatalf("by number %v, want %v", got, tc.wantNumbers)
			}
		})
	}
}

func withLimit(d *api.DaemonSet, l *int32) *api.DaemonSet {
	cp := *d
	cp.Spec.RevisionHistoryLimit = l
	return &cp
}

// withRollout returns a copy of d whose status says a rollout of its
// template is underway (revision n).
func withRollout(d *api.DaemonSet, n int64) *api.DaemonSet {
	cp := *d
	cp.Status.Rollout = &api.RolloutStatus{Revision: n, TemplateHash: api.HashTemplate(&d.Spec.Template), Phase: api.RolloutProgressing}
	return &cp
}

func TestStepRolloutStatus(t *testing.T) {
	v1 := ds("x", nil)
	v2 := withImage(v1, "reg/x:v2")
	h1 := api.HashTemplate(&v1.Spec.Template)
	h2 := api.HashTemplate(&v2.Spec.Template)
	earlier := api.NewTime(now.Add(-time.Hour))
	onV1 := map[string]*api.Pod{"a": readyPod(v1, "a"), "b": readyPod(v1, "b")}
	notReady := map[string]*api.Pod{"a": readyPod(v1, "a"), "b": podOf(v1, "b")}
	for _, tc := range []struct {
		name     string
		d        *api.DaemonSet
		prev     *api.RolloutStatus
		pods     map[string]*api.Pod
		hist     rollout.History
		want     api.RolloutStatus
		wantNew  bool
		wantFail int64 // Failure.RolledBackTo
	}{
		{name: "the first rollout", d: v1, hist: history(1),
			want: api.RolloutStatus{TemplateHash: h1, Revision: 1, StartedAt: now, LastProgressTime: now}, wantNew: true},
		{name: "the same template: as stored", d: v2,
			prev: &api.RolloutStatus{TemplateHash: h2, Revision: 2, Phase: api.RolloutProgressing, StartedAt: earlier, LastGoodRevision: 1},
			hist: history(2),
			want: api.RolloutStatus{TemplateHash: h2, Revision: 2, Phase: api.RolloutProgressing, StartedAt: earlier, LastGoodRevision: 1}},
		{name: "after a complete one, it is the last good", d: v2,
			prev: &api.RolloutStatus{TemplateHash: h1, Revision: 1, Phase: api.RolloutComplete},
			hist: history(2),
			want: api.RolloutStatus{TemplateHash: h2, Revision: 2, StartedAt: now, LastProgressTime: now, LastGoodRevision: 1}, wantNew: true},
		{name: "after one every node finished, though its status never said", d: v2, pods: onV1,
			prev: &api.RolloutStatus{TemplateHash: h1, Revision: 1, Phase: api.RolloutProgressing},
			hist: history(2),
			want: api.RolloutStatus{TemplateHash: h2, Revision: 2, StartedAt: now, LastProgressTime: now, LastGoodRevision: 1}, wantNew: true},
		{name: "after one unfinished, the last good stays", d: v2, pods: notReady,
			prev: &api.RolloutStatus{TemplateHash: h1, Revision: 1, Phase: api.RolloutProgressing, LastGoodRevision: 0},
			hist: history(2),
			want: api.RolloutStatus{TemplateHash: h2, Revision: 2, StartedAt: now, LastProgressTime: now}, wantNew: true},
		{name: "renumbered revisions", d: v2,
			prev: &api.RolloutStatus{TemplateHash: h2, Revision: 1, LastGoodRevision: 1, Failure: &api.RolloutFailure{Revision: 2, RolledBackTo: 1}},
			hist: rollout.History{Current: &api.ControllerRevision{Revision: 3}, Renumbered: map[int64]int64{1: 3}},
			want: api.RolloutStatus{TemplateHash: h2, Revision: 3, LastGoodRevision: 3}, wantFail: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := *tc.d
			d.Status.Rollout = tc.prev
			var failure *api.RolloutFailure
			if tc.prev != nil {
				failure = tc.prev.Failure
			}
			st, isNew := testPlanner(&d).rolloutStatus(viewTargets(tc.pods, "a", "b"), tc.hist)
			if isNew != tc.wantNew {
				t.Fatalf("new rollout %v, want %v", isNew, tc.wantNew)
			}
			if tc.wantFail != 0 {
				if st.Failure == nil || st.Failure.RolledBackTo != tc.wantFail {
					t.Fatalf("failure %+v, want rolled back to %d", st.Failure, tc.wantFail)
				}
				if failure.RolledBackTo == tc.wantFail {
					t.Fatal("the stored status changed")
				}
				st.Failure = nil
			}
			if !controller.Equal(st, tc.want) {
				t.Fatalf("status\n%+v\nwant\n%+v", st, tc.want)
			}
		})
	}
}

// history is a rollout.History whose current revision is n.
func history(n int64) rollout.History {
	return rollout.History{Current: &api.ControllerRevision{Revision: n}, Renumbered: map[int64]int64{}}
}

func TestStepRolloutNodes(t *testing.T) {
	d := ds("x", nil)
	moved := func(p *api.Pod) *api.Pod {
		p.Annotations = map[string]string{rollout.AnnotationUpdatedAt: now.Add(-time.Minute).Format(time.RFC3339)}
		return p
	}
	readySince := func(p *api.Pod, at time.Time) *api.Pod {
		p.Annotations = map[string]string{rollout.AnnotationReadyAt: at.Format(time.RFC3339)}
		return p
	}
	pullFailure := func(p *api.Pod, pf api.ImagePullFailure) *api.Pod {
		p.Status.PullFailure = &pf
		return p
	}
	old := withImage(d, "reg/x:v0")
	for _, tc := range []struct {
		name     string
		minReady int32
		unheard  map[string]bool
		pod      *api.Pod // on node a
		// want is what the node says; wantAvailable the view's verdict.
		want          rollout.Node
		wantAvailable bool
		wantReadyAt   bool
	}{
		{name: "no pod", want: rollout.Node{Name: "a", Online: true}},
		{name: "a Ready pod", pod: readyPod(d, "a"),
			want: rollout.Node{Name: "a", Online: true, Hash: hashOf(d), Ready: true}, wantAvailable: true},
		{name: "an unheard node", unheard: map[string]bool{"a": true}, pod: readyPod(d, "a"),
			want: rollout.Node{Name: "a", Online: true, Hash: hashOf(d), Ready: true, Unheard: true}, wantAvailable: true},
		{name: "a pull failure of the spec", pod: pullFailure(podOf(d, "a"), api.ImagePullFailure{Image: "reg/x:v1", Message: "no"}),
			want: rollout.Node{Name: "a", Online: true, Hash: hashOf(d), PullFailure: &api.ImagePullFailure{Image: "reg/x:v1", Message: "no"}}},
		{name: "a pre-pull failure of an image the template does not stage", pod: pullFailure(podOf(old, "a"), api.ImagePullFailure{Image: "reg/other", PrePull: true}),
			want: rollout.Node{Name: "a", Online: true, Hash: hashOf(old)}},
		{name: "a pre-pull failure of the template's image", pod: pullFailure(podOf(old, "a"), api.ImagePullFailure{Image: "reg/x:v1", PrePull: true}),
			want: rollout.Node{Name: "a", Online: true, Hash: hashOf(old), PullFailure: &api.ImagePullFailure{Image: "reg/x:v1", PrePull: true}}},
		{name: "minReady: a moved pod first seen Ready now is recorded", minReady: 30, pod: moved(readyPod(d, "a")),
			want:        rollout.Node{Name: "a", Online: true, Hash: hashOf(d), Ready: true, ReadySince: now.Time, MovedAt: now.Add(-time.Minute)},
			wantReadyAt: true},
		{name: "minReady: Ready long enough", minReady: 30, pod: readySince(readyPod(d, "a"), now.Add(-time.Minute)),
			want: rollout.Node{Name: "a", Online: true, Hash: hashOf(d), Ready: true, ReadySince: now.Add(-time.Minute)}, wantAvailable: true},
		{name: "minReady: not yet", minReady: 30, pod: readySince(readyPod(d, "a"), now.Add(-10*time.Second)),
			want: rollout.Node{Name: "a", Online: true, Hash: hashOf(d), Ready: true, ReadySince: now.Add(-10 * time.Second)}},
		{name: "minReady: an old pod with no record counts as Ready long ago", minReady: 30, pod: readyPod(old, "a"),
			want: rollout.Node{Name: "a", Online: true, Hash: hashOf(old), Ready: true}, wantAvailable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dd := *d
			dd.Spec.MinReadySeconds = tc.minReady
			sp := testPlanner(&dd)
			sp.unheard = tc.unheard
			targets := viewTargets(map[string]*api.Pod{"a": tc.pod}, "a")
			rnodes, readyAt := sp.rolloutNodes(targets)
			if len(rnodes) != 1 {
				t.Fatalf("%d nodes", len(rnodes))
			}
			got := rnodes[0]
			got.Labels = nil
			if !controller.Equal(got, tc.want) {
				t.Fatalf("node\n%+v\nwant\n%+v", got, tc.want)
			}
			if tc.pod != nil && targets[0].pod.available != tc.wantAvailable {
				t.Fatalf("available %v, want %v", targets[0].pod.available, tc.wantAvailable)
			}
			if _, ok := readyAt["a"]; ok != tc.wantReadyAt {
				t.Fatalf("ready-at to record: %v, want %v", readyAt, tc.wantReadyAt)
			}
		})
	}
}

func hashOf(d *api.DaemonSet) string { return api.HashTemplate(&d.Spec.Template) }

func TestStepRolloutParams(t *testing.T) {
	d := ds("x", nil)
	secs := int32(90)
	two := api.FromInt(2)
	for _, tc := range []struct {
		name         string
		edit         func(d *api.DaemonSet)
		rollingBack  bool
		check        func(p rollout.Params) bool
		wantDeadline time.Duration
	}{
		{name: "defaults", edit: func(*api.DaemonSet) {},
			check:        func(p rollout.Params) bool { return !p.OnDelete && p.MaxUnavailable == nil && p.Canary == nil },
			wantDeadline: rollout.DefaultProgressDeadline},
		{name: "OnDelete", edit: func(d *api.DaemonSet) { d.Spec.UpdateStrategy.Type = api.OnDeleteStrategy },
			check: func(p rollout.Params) bool { return p.OnDelete }, wantDeadline: rollout.DefaultProgressDeadline},
		{name: "the rolling update's budget", edit: func(d *api.DaemonSet) {
			d.Spec.UpdateStrategy.RollingUpdate = &api.RollingUpdateDaemonSet{MaxUnavailable: &two}
		}, check: func(p rollout.Params) bool { return p.MaxUnavailable == &two }, wantDeadline: rollout.DefaultProgressDeadline},
		{name: "the rollout spec", edit: func(d *api.DaemonSet) {
			d.Spec.MinReadySeconds = 5
			d.Spec.Rollout = &api.RolloutSpec{MaxFailures: &two, OnFailure: api.OnFailureRollback, OfflineNodes: api.OfflineWait,
				PrePull: true, Paused: true, ProgressDeadlineSeconds: &secs}
		}, rollingBack: true, check: func(p rollout.Params) bool {
			return p.MaxFailures == &two && p.OnFailure == api.OnFailureRollback && p.OfflineNodes == api.OfflineWait &&
				p.PrePull && p.Paused && p.RollingBack && p.MinReady == 5*time.Second
		}, wantDeadline: 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dd := *d
			tc.edit(&dd)
			p, deadline := newSetPlanner(&dd, now, nil, nil, nil).rolloutParams(tc.rollingBack)
			if !tc.check(p) || deadline != tc.wantDeadline || p.ProgressDeadline != deadline {
				t.Fatalf("params %+v, deadline %s; want %s", p, deadline, tc.wantDeadline)
			}
		})
	}
}

func TestStepCountPods(t *testing.T) {
	d := ds("x", nil)
	old := withImage(d, "reg/x:v0")
	reverted := readyPod(d, "c")
	reverted.Status.Reverted = &api.PodRevert{FromSpecHash: api.HashPodSpec(&reverted.Spec), Reason: "CrashLoop"}
	targets := viewTargets(map[string]*api.Pod{"a": readyPod(d, "a"), "b": readyPod(old, "b"), "c": reverted, "d": podOf(d, "d")},
		"a", "b", "c", "d", "e")
	for _, tg := range targets {
		if tg.pod != nil {
			tg.pod.available = tg.pod.ready && tg.node.Name != "b" // b: Ready, not for minReadySeconds yet
		}
	}
	status := api.DaemonSetStatus{DesiredNumberScheduled: 5}
	countPods(&status, targets, hashOf(d))
	want := api.DaemonSetStatus{DesiredNumberScheduled: 5, NumberReady: 3, NumberAvailable: 2, UpdatedNumberScheduled: 2, NumberUnavailable: 3}
	if status != want {
		t.Fatalf("status %+v, want %+v", status, want)
	}
}

func TestStepRecordProgress(t *testing.T) {
	earlier := api.NewTime(now.Add(-time.Hour))
	failed := []api.NodeReason{{Node: "a", Reason: "CrashLoopBackOff"}}
	var many []string
	for i := range api.MaxListedNodes + 5 {
		many = append(many, fmt.Sprintf("n%02d", i))
	}
	for _, tc := range []struct {
		name                    string
		st                      api.RolloutStatus
		plan                    rollout.Result
		prePull, back, isNew    bool
		wantProgress            api.Time
		wantFailure             *api.RolloutFailure
		wantPrePulled, wantOffl int
	}{
		{name: "progress moves the time", st: api.RolloutStatus{Updated: 1, LastProgressTime: earlier},
			plan: rollout.Result{Phase: api.RolloutProgressing, Counts: rollout.Counts{Updated: 2, PrePulled: 4}}, wantProgress: now},
		{name: "no progress keeps it", st: api.RolloutStatus{Updated: 2, LastProgressTime: earlier},
			plan: rollout.Result{Phase: api.RolloutProgressing, Counts: rollout.Counts{Updated: 2}}, wantProgress: earlier},
		{name: "a new rollout keeps its start", st: api.RolloutStatus{LastProgressTime: earlier}, isNew: true,
			plan: rollout.Result{Counts: rollout.Counts{Updated: 2}}, wantProgress: earlier},
		{name: "pre-pulled counts only with pre-pull", st: api.RolloutStatus{PrePulled: 3}, prePull: true,
			plan: rollout.Result{Counts: rollout.Counts{PrePulled: 4}}, wantPrePulled: 4},
		{name: "a failure is recorded", st: api.RolloutStatus{Revision: 2},
			plan:        rollout.Result{Phase: api.RolloutFailed, Message: "1 node failed", Failed: failed},
			wantFailure: &api.RolloutFailure{Revision: 2, Message: "1 node failed", Nodes: failed, Time: now}},
		{name: "the same failure keeps its time",
			st:          api.RolloutStatus{Revision: 2, Failure: &api.RolloutFailure{Revision: 2, Time: earlier}},
			plan:        rollout.Result{Phase: api.RolloutFailed, Message: "1 node failed", Failed: failed},
			wantFailure: &api.RolloutFailure{Revision: 2, Message: "1 node failed", Nodes: failed, Time: earlier}},
		{name: "a rollback's failure is not the rollout's", st: api.RolloutStatus{Revision: 1}, back: true,
			plan: rollout.Result{Phase: api.RolloutFailed, Failed: failed}},
		{name: "offline nodes listed up to the limit", plan: rollout.Result{OfflinePending: many}, wantOffl: api.MaxListedNodes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := tc.st
			recordProgress(&st, tc.plan, tc.prePull, tc.back, tc.isNew, now)
			if st.Phase != tc.plan.Phase || st.Message != tc.plan.Message || int(st.Updated) != tc.plan.Counts.Updated {
				t.Fatalf("status %+v does not say what the plan did", st)
			}
			if !st.LastProgressTime.Equal(tc.wantProgress.Time) {
				t.Fatalf("last progress %s, want %s", st.LastProgressTime, tc.wantProgress)
			}
			if int(st.PrePulled) != tc.wantPrePulled || len(st.OfflinePendingNodes) != tc.wantOffl {
				t.Fatalf("pre-pulled %d, offline listed %d", st.PrePulled, len(st.OfflinePendingNodes))
			}
			if !controller.Equal(st.Failure, tc.wantFailure) {
				t.Fatalf("failure %+v, want %+v", st.Failure, tc.wantFailure)
			}
		})
	}
}

func TestStepRollback(t *testing.T) {
	d := withImage(ds("x", nil), "reg/x:bad")
	good := &api.ControllerRevision{Revision: 1, Data: ds("x", nil).Spec.Template}
	st := api.RolloutStatus{Revision: 2, Updated: 1, Failed: 1, Total: 3}
	plan := rollout.Result{Message: "node a: CrashLoopBackOff; rolling back", Failed: []api.NodeReason{{Node: "a", Reason: "CrashLoopBackOff"}}}
	tpl, status := testPlanner(d).rollback(st, plan, good, api.DaemonSetStatus{NumberReady: 2})
	if tpl.Spec.Containers[0].Image != "reg/x:v1" {
		t.Fatalf("rolled back to %s", tpl.Spec.Containers[0].Image)
	}
	ro := status.Rollout
	if status.NumberReady != 2 || status.ObservedGeneration != d.Generation+1 {
		t.Fatalf("status %+v", status)
	}
	if ro.Phase != api.RolloutRolledBack || ro.Revision != 1 || ro.LastGoodRevision != 1 || ro.TemplateHash != api.HashTemplate(tpl) ||
		!ro.CanaryDone || ro.Updated != 1 || ro.Total != 3 ||
		ro.Message != "revision 2 failed: node a: CrashLoopBackOff; rolled back to revision 1" {
		t.Fatalf("rollout %+v", ro)
	}
	if f := ro.Failure; f == nil || f.Revision != 2 || f.RolledBackTo != 1 || f.Message != "node a: CrashLoopBackOff" || len(f.Nodes) != 1 {
		t.Fatalf("failure %+v", ro.Failure)
	}
}

func TestStepPodActions(t *testing.T) {
	d := ds("x", nil)
	old := withImage(d, "reg/x:v0")
	stamp := now.UTC().Format(time.RFC3339)
	staged := readyPod(old, "c")
	staged.Annotations = map[string]string{api.AnnotationPrePull: "reg/x:v1"}
	readyRecorded := podOf(d, "e") // no longer Ready
	readyRecorded.Annotations = map[string]string{rollout.AnnotationReadyAt: stamp}
	pods := map[string]*api.Pod{"b": readyPod(old, "b"), "c": staged, "d": readyPod(old, "d"), "e": readyRecorded, "f": readyPod(d, "f"), "g": readyPod(d, "g")}
	targets := viewTargets(pods, "a", "b", "c", "d", "e", "f", "g", "h")
	plan := rollout.Result{Move: []string{"a", "b"}, PrePull: []string{"d"}}
	readyAt := map[string]time.Time{"f": now.Time}
	create, update, moved := testPlanner(d).podActions(targets, plan, readyAt, 90*time.Second)

	if len(create) != 1 || create[0].Spec.NodeName != "a" || create[0].Name != PodName("x", "a") ||
		create[0].Annotations[rollout.AnnotationUpdatedAt] != stamp || create[0].Labels[LabelTemplateHash] != hashOf(d) {
		t.Fatalf("create %+v", create)
	}
	if !slices.Equal(moved, []string{"a", "b"}) {
		t.Fatalf("moved %v", moved)
	}
	got := map[string]map[string]string{}
	for _, p := range update {
		got[p.Spec.NodeName] = p.Annotations
	}
	want := map[string]map[string]string{
		"b": {rollout.AnnotationUpdatedAt: stamp, api.AnnotationProgressDeadline: "90"}, // moved
		"c": nil,                                                                        // pre-pull no longer asked
		"d": {api.AnnotationPrePull: "reg/x:v1"},                                        // pre-pull asked
		"e": nil,                                                                        // not Ready: its record goes
		"f": {rollout.AnnotationReadyAt: stamp},                                         // Ready now: recorded
	}
	if len(got) != len(want) {
		t.Fatalf("updated %v, want %v", got, want)
	}
	for n, ann := range want {
		if a, ok := got[n]; !ok || !maps.Equal(a, ann) {
			t.Fatalf("node %s annotations %v, want %v (updates %v)", n, a, ann, got)
		}
	}
	for _, p := range update {
		if p.Spec.NodeName == "b" && (p.Spec.Containers[0].Image != "reg/x:v1" || p.Labels[LabelTemplateHash] != hashOf(d) || !p.IsReady()) {
			t.Fatalf("moved pod %+v: want the template, its status kept", p)
		}
	}
	if pods["c"].Annotations[api.AnnotationPrePull] == "" {
		t.Fatal("the pod read was changed")
	}

	// A pod created where another node's pod has the short name takes the
	// long one.
	sp := testPlanner(d)
	sp.names()["default/"+PodName("x", "a")] = true
	create, _, _ = sp.podActions(viewTargets(nil, "a"), rollout.Result{Move: []string{"a"}}, nil, time.Minute)
	if len(create) != 1 || create[0].Name != LongPodName("x", "a") || !strings.HasPrefix(create[0].Name, "x-") {
		t.Fatalf("created %v", create)
	}
}
