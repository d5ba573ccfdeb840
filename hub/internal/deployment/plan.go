package deployment

import (
	"crypto/rand"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/rollout"
	"github.com/flotilla-edge/flotilla/hub/internal/scheduler"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// LabelPodTemplateHash is the label carrying the first ten characters of
// the template hash on a Deployment's pods, as in Kubernetes.
const LabelPodTemplateHash = "pod-template-hash"

// DefaultTolerationSeconds is how long a pod stays bound to a node that is
// not Ready before it is replaced elsewhere, when the pod has no toleration
// that says otherwise (Kubernetes' default for unreachable and not-ready).
const DefaultTolerationSeconds = 300

// Pod condition and reasons the controller sets on pods it cannot place.
const (
	PodScheduled        = "PodScheduled"
	ReasonUnschedulable = "Unschedulable"
)

// Deployment condition types and reasons, as Kubernetes names them.
const (
	ConditionAvailable   = "Available"
	ConditionProgressing = "Progressing"

	ReasonMinimumReplicasAvailable   = "MinimumReplicasAvailable"
	ReasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
	ReasonNewReplicaSetCreated       = "NewReplicaSetCreated"
	ReasonReplicaSetUpdated          = "ReplicaSetUpdated"
	ReasonNewReplicaSetAvailable     = "NewReplicaSetAvailable"
	ReasonProgressDeadlineExceeded   = "ProgressDeadlineExceeded"
	ReasonDeploymentPaused           = "DeploymentPaused"
	ReasonDeploymentResumed          = "DeploymentResumed"
)

// Input is the state one pass plans from.
type Input struct {
	Deployments []*api.Deployment
	Nodes       []*api.Node
	Pods        []*api.Pod
	Revisions   []*api.ControllerRevision
	// Unheard names the nodes the hub has not heard from since it
	// started (see lease.Unheard): their pods count as unavailable until
	// their agents report.
	Unheard map[string]bool
	Now     api.Time
	// Suffix returns the random part of a new pod's name; nil uses five
	// random characters, as Kubernetes does.
	Suffix func() string
}

// Result is what one pass decided.
type Result struct {
	Sets []*SetResult
	// Orphans are pods and revisions whose Deployment is gone.
	Orphans []store.Key
	// Wake is when a pass should run again even if nothing changes.
	Wake time.Time
}

// SetResult is what to write for one Deployment; the writes apply only
// while it still has the template they were planned for.
type SetResult struct {
	Deployment *api.Deployment
	Hash       string
	Create     []*api.Pod
	// Update holds pods bound to a node now, or with new annotations or
	// status (an unschedulable pod's reason).
	Update          []*api.Pod
	Delete          []store.Key
	CreateRevisions []*api.ControllerRevision
	UpdateRevisions []*api.ControllerRevision
	DeleteRevisions []store.Key
	// Status is the new status, nil when unchanged.
	Status *api.DeploymentStatus
	// Evicted names the pods deleted because their node stayed NotReady
	// past their toleration, with the node.
	Evicted []string
}

// Empty reports whether the set has nothing to write.
func (s *SetResult) Empty() bool {
	return len(s.Create)+len(s.Update)+len(s.Delete)+len(s.CreateRevisions)+len(s.UpdateRevisions)+len(s.DeleteRevisions) == 0 && s.Status == nil
}

// Empty reports whether the pass has nothing to write.
func (r *Result) Empty() bool {
	for _, s := range r.Sets {
		if !s.Empty() {
			return false
		}
	}
	return len(r.Orphans) == 0
}

// Plan computes, from the whole state, what to write for every
// Deployment. It is a pure function, given a deterministic Suffix.
func Plan(in Input) *Result {
	res := &Result{}
	suffix := in.Suffix
	if suffix == nil {
		suffix = randomSuffix
	}
	owned, orphans := controller.Owned(api.KindDeployment, in.Deployments, in.Pods)
	revs, revOrphans := controller.Owned(api.KindDeployment, in.Deployments, in.Revisions)
	res.Orphans = append(orphans, revOrphans...) // what deleted Deployments left
	if len(in.Deployments) == 0 {
		// Nothing to place: a fleet of DaemonSets costs this controller
		// one look at who owns each pod.
		return res
	}
	taken := make(map[string]bool, len(in.Pods))
	for _, p := range in.Pods {
		taken[p.Namespace+"/"+p.Name] = true
	}
	nodes := append([]*api.Node(nil), in.Nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	// The scheduler's view, shared by every Deployment of the pass, so that
	// one Deployment's placements count for the next.
	sched := scheduler.NodesFrom(nodes, in.Pods, nil)
	deps := append([]*api.Deployment(nil), in.Deployments...)
	sort.Slice(deps, func(i, j int) bool {
		return deps[i].Namespace+"/"+deps[i].Name < deps[j].Namespace+"/"+deps[j].Name
	})
	if len(in.Unheard) > 0 {
		res.Wake = in.Now.Add(controller.UnheardRecheck) // their leases wake no controller
	}
	for _, d := range deps {
		set, wake := newPlanner(d, nodes, sched, owned[d.UID], revs[d.UID], taken, in.Unheard, in.Now, suffix).plan()
		res.Sets = append(res.Sets, set)
		res.Wake = controller.Sooner(res.Wake, wake)
	}
	return res
}

// planner plans one Deployment. Its methods are the steps of plan, in
// the order plan takes them. They share the scheduler's view of the
// nodes (sched, common to every Deployment of the pass, so that one
// Deployment's placements count for the next), the set of writes being
// made, and the wake time.
type planner struct {
	d       *api.Deployment
	nodes   []*api.Node
	sched   []scheduler.Node
	pods    []*api.Pod
	revs    []*api.ControllerRevision
	taken   map[string]bool
	unheard map[string]bool
	now     api.Time
	suffix  func() string

	hash, short string // of d's template; short is its first ten characters
	minReady    time.Duration
	replicas    int
	nodeByName  map[string]*api.Node
	schedIdx    map[string]int // sched's index of each node
	set         *SetResult
	wake        time.Time
}

// newPlanner returns the planner of d. nodes are in name order; taken
// holds the namespace/name of every pod, and a pod created takes its name
// there.
func newPlanner(d *api.Deployment, nodes []*api.Node, sched []scheduler.Node, pods []*api.Pod, revs []*api.ControllerRevision,
	taken, unheard map[string]bool, now api.Time, suffix func() string) *planner {
	pl := &planner{d: d, nodes: nodes, sched: sched, pods: pods, revs: revs, taken: taken, unheard: unheard, now: now, suffix: suffix}
	pl.hash = api.HashTemplate(&d.Spec.Template)
	pl.short = pl.hash[:10]
	pl.set = &SetResult{Deployment: d, Hash: pl.hash}
	pl.minReady = time.Duration(d.Spec.MinReadySeconds) * time.Second
	pl.replicas = 1
	if d.Spec.Replicas != nil {
		pl.replicas = max(int(*d.Spec.Replicas), 0)
	}
	pl.nodeByName = make(map[string]*api.Node, len(nodes))
	for _, n := range nodes {
		pl.nodeByName[n.Name] = n
	}
	pl.schedIdx = make(map[string]int, len(sched))
	for i := range sched {
		pl.schedIdx[sched[i].Name] = i
	}
	return pl
}

// podView is what the planner reads off one pod.
type podView struct {
	pod        *api.Pod
	current    bool // runs the current template
	bound      bool
	ready      bool
	available  bool
	readySince time.Time
	// stale: the pod's node has not been heard from since the hub
	// started, so its readiness is from before; the rollout budget does
	// not count on it (status still shows it as stored).
	stale bool
}

// usable says whether the rollout budget may count on the pod being
// available.
func (v *podView) usable() bool { return v.available && !v.stale }

func (pl *planner) wakeAt(t time.Time) {
	if t.After(pl.now.Time) && (pl.wake.IsZero() || t.Before(pl.wake)) {
		pl.wake = t
	}
}

// plan plans the Deployment's writes: the pods that must go, the
// revision history, the pods to create and delete (the strategy's
// budget), where the pending and new pods go, the ready-at records, and
// the status. It returns when to plan again even if nothing changes
// (zero: not until something does).
func (pl *planner) plan() (*SetResult, time.Time) {
	active := pl.sortOut()
	hist, templates := pl.history(active)
	sc := pl.scale(active, templates)
	deleted := map[string]bool{}
	for _, v := range sc.deletes {
		deleted[v.pod.Name] = true
		pl.remove(v.pod)
	}
	pl.place(active, deleted, sc)
	pl.readyAtRecords(active, deleted)
	pl.status(sc.maxUnavailable, active, deleted, hist, sc.budgetErr)
	return pl.set, pl.wake
}

// remove deletes p, and takes what it asked for off its node in the
// scheduler's view (a finished pod held nothing there).
func (pl *planner) remove(p *api.Pod) {
	pl.set.Delete = append(pl.set.Delete, store.KeyOf(p))
	if p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed {
		return
	}
	if i, ok := pl.schedIdx[p.Spec.NodeName]; ok {
		r := scheduler.Requests(&p.Spec)
		pl.sched[i].Requested.MilliCPU -= r.MilliCPU
		pl.sched[i].Requested.Memory -= r.Memory
		pl.sched[i].Requested.Pods--
		pl.sched[i].Requested.Devices = scheduler.AddDevices(pl.sched[i].Requested.Devices, r.Devices, -1)
	}
}

// sortOut removes the pods that must go: finished, on a node that is
// gone, or on one NotReady past the pod's toleration (evicted). It
// returns the views of the others, by name.
func (pl *planner) sortOut() []*podView {
	var active []*podView
	sort.Slice(pl.pods, func(i, j int) bool { return pl.pods[i].Name < pl.pods[j].Name })
	for _, p := range pl.pods {
		if p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed {
			pl.remove(p)
			continue
		}
		if p.Spec.NodeName != "" {
			node := pl.nodeByName[p.Spec.NodeName]
			if node == nil {
				pl.remove(p)
				continue
			}
			if until, evict := pl.evictAt(p, node); evict {
				if !until.After(pl.now.Time) {
					pl.remove(p)
					pl.set.Evicted = append(pl.set.Evicted, p.Name+" from "+node.Name)
					continue
				}
				pl.wakeAt(until)
			}
		}
		active = append(active, pl.view(p, pl.nodeByName[p.Spec.NodeName]))
	}
	return active
}

// history keeps the numbered revision history (rollout.SyncHistory): the
// revisions active pods run and the last good one stay. It returns the
// history, and the template of each revision by short hash (the current
// template's included), for a paused Deployment's new pods.
func (pl *planner) history(active []*podView) (rollout.History, map[string]*api.PodTemplateSpec) {
	d := pl.d
	live := map[string]bool{}
	for _, v := range active {
		for _, cr := range pl.revs {
			if h := rollout.HashOf(cr); len(h) >= 10 && h[:10] == v.pod.Labels[LabelPodTemplateHash] {
				live[h] = true
			}
		}
	}
	var keep int64
	if prev := d.Status.Rollout; prev != nil {
		keep = prev.LastGoodRevision
	}
	limit := 10
	if l := d.Spec.RevisionHistoryLimit; l != nil {
		limit = int(*l)
	}
	hist := rollout.SyncHistory(rollout.HistoryInput{
		Owner: rollout.Owner{APIVersion: "apps/v1", Kind: api.KindDeployment, Namespace: d.Namespace, Name: d.Name, UID: d.UID,
			Annotations: d.Annotations},
		Template: &d.Spec.Template, Hash: pl.hash, Revisions: pl.revs, Live: live, Keep: keep, Limit: limit, Now: pl.now,
	})
	pl.set.CreateRevisions, pl.set.UpdateRevisions = hist.Create, hist.Update
	for _, cr := range hist.Delete {
		pl.set.DeleteRevisions = append(pl.set.DeleteRevisions, store.KeyOf(cr))
	}
	templates := map[string]*api.PodTemplateSpec{pl.short: &d.Spec.Template}
	for _, cr := range pl.revs {
		if h := rollout.HashOf(cr); len(h) >= 10 && templates[h[:10]] == nil {
			templates[h[:10]] = &cr.Data
		}
	}
	return hist, templates
}

// scaling is what the strategy decided: the pods to delete, how many to
// create and from which template, and the budget it kept to.
type scaling struct {
	deletes        []*podView
	scaleUp        int
	template       *api.PodTemplateSpec
	short          string // the template's short hash
	maxUnavailable int
	budgetErr      error // a budget that did not parse (the defaults hold)
}

// scale decides the pods to create and delete, by the strategy: a paused
// Deployment keeps its count on the template most of its pods run;
// Recreate deletes every old pod before it creates a new one;
// RollingUpdate (the default) keeps to maxSurge and maxUnavailable.
func (pl *planner) scale(active []*podView, templates map[string]*api.PodTemplateSpec) scaling {
	d := pl.d
	var cur, old []*podView
	for _, v := range active {
		if v.current {
			cur = append(cur, v)
		} else {
			old = append(old, v)
		}
	}
	sc := scaling{template: &d.Spec.Template, short: pl.short}
	maxSurge := 0
	recreate := d.Spec.Strategy.Type == api.RecreateStrategy
	if !recreate {
		var mu, ms *api.IntOrString
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
			mu, ms = ru.MaxUnavailable, ru.MaxSurge
		}
		sc.maxUnavailable, maxSurge, sc.budgetErr = rollout.Budget(mu, ms, pl.replicas, api.FromString("25%"), api.FromString("25%"))
		sc.maxUnavailable = min(sc.maxUnavailable, pl.replicas)
	}
	switch {
	case d.Spec.Paused:
		// A paused Deployment rolls nothing out; it keeps its pod count,
		// with the template most of its pods run.
		sc.short = majority(active, pl.short)
		if t := templates[sc.short]; t != nil {
			sc.template = t
		} else {
			sc.short = pl.short
		}
		sc.scaleUp, sc.deletes = toCount(pl.replicas, active)
	case recreate:
		if len(old) > 0 {
			sc.deletes = old // all old pods go before any new one starts
			break
		}
		sc.scaleUp, sc.deletes = toCount(pl.replicas, cur)
	default:
		sc.scaleUp, sc.deletes = rollingScale(pl.replicas, sc.maxUnavailable, maxSurge, active, cur, old)
	}
	return sc
}

// toCount brings pods to replicas: how many to create, or which to
// delete.
func toCount(replicas int, pods []*podView) (scaleUp int, deletes []*podView) {
	if n := replicas - len(pods); n > 0 {
		return n, nil
	} else if n < 0 {
		return 0, pickDeletes(pods, -n)
	}
	return 0, nil
}

// rollingScale is one step of Kubernetes' RollingUpdate: new pods (cur)
// scale up within maxSurge over replicas, old ones scale down within
// maxUnavailable, the unavailable ones first. active is every pod, cur
// and old its two parts.
func rollingScale(replicas, maxUnavailable, maxSurge int, active, cur, old []*podView) (scaleUp int, deletes []*podView) {
	if len(cur) > replicas {
		deletes = pickDeletes(cur, len(cur)-replicas)
	}
	newCount := min(len(cur), replicas)
	// Scale the new pods up within maxSurge.
	if newCount < replicas {
		total := len(active) - len(deletes)
		scaleUp = min(replicas+maxSurge-total, replicas-newCount)
		scaleUp = max(scaleUp, 0)
	}
	// Scale the old pods down within maxUnavailable: unavailable ones
	// first, then available ones while enough pods stay available.
	if len(old) == 0 {
		return scaleUp, deletes
	}
	minAvailable := replicas - maxUnavailable
	newUnavailable := 0
	for _, v := range cur {
		if !v.usable() {
			newUnavailable++
		}
	}
	maxScaledDown := len(active) - len(deletes) - minAvailable - newUnavailable
	available := 0
	for _, v := range active {
		if v.usable() {
			available++
		}
	}
	if maxScaledDown > 0 {
		var unhealthy, healthy []*podView
		for _, v := range old {
			switch {
			case v.usable():
				healthy = append(healthy, v)
			case !v.available:
				unhealthy = append(unhealthy, v)
			}
			// A stale pod is neither: it may be fine.
		}
		cleanup := pickDeletes(unhealthy, min(maxScaledDown, len(unhealthy)))
		deletes = append(deletes, cleanup...)
		if extra := available - minAvailable; extra > 0 {
			deletes = append(deletes, pickDeletes(healthy, min(extra, maxScaledDown-len(cleanup), len(healthy)))...)
		}
	}
	return scaleUp, deletes
}

// place puts the pending pods on nodes (or says why it cannot), then the
// new ones the scaling asked for, through the scheduler.
func (pl *planner) place(active []*podView, deleted map[string]bool, sc scaling) {
	// The Deployment's own pods per node, for spreading.
	for i := range pl.sched {
		pl.sched[i].Group = 0
	}
	for _, v := range active {
		if v.bound && !deleted[v.pod.Name] {
			if i, ok := pl.schedIdx[v.pod.Spec.NodeName]; ok {
				pl.sched[i].Group++
			}
		}
	}
	stamp := pl.now.UTC().Format(time.RFC3339)
	for _, v := range active {
		if v.bound || deleted[v.pod.Name] {
			continue
		}
		req := scheduler.Pod{Requests: scheduler.Requests(&v.pod.Spec), NodeSelector: v.pod.Spec.NodeSelector}
		placed, why := scheduler.Place(req, pl.sched, 1)
		p := *v.pod
		if placed[0] == "" {
			if pendingMessage(&p) != why {
				setUnschedulable(&p, why, pl.now)
				pl.set.Update = append(pl.set.Update, &p)
			}
			continue
		}
		pl.bind(&p, placed[0], stamp)
		pl.set.Update = append(pl.set.Update, &p)
	}
	if sc.scaleUp > 0 {
		podReq := scheduler.Pod{Requests: scheduler.Requests(&sc.template.Spec), NodeSelector: sc.template.Spec.NodeSelector}
		placed, why := scheduler.Place(podReq, pl.sched, sc.scaleUp)
		for _, node := range placed {
			p := pl.newPod(sc.template, sc.short)
			if node == "" {
				setUnschedulable(p, why, pl.now)
			} else {
				pl.bind(p, node, stamp)
			}
			pl.set.Create = append(pl.set.Create, p)
		}
	}
}

// readyAtRecords keeps, with minReadySeconds, the record of when each
// bound pod was first seen Ready: set when it is Ready and has none,
// removed when it is not Ready.
func (pl *planner) readyAtRecords(active []*podView, deleted map[string]bool) {
	if pl.minReady <= 0 {
		return
	}
	stamp := pl.now.UTC().Format(time.RFC3339)
	for _, v := range active {
		if deleted[v.pod.Name] || !v.bound {
			continue
		}
		ann := v.pod.Annotations
		want := ann
		switch {
		case v.ready && ann[rollout.AnnotationReadyAt] == "":
			want = controller.WithAnnotation(ann, rollout.AnnotationReadyAt, stamp)
		case !v.ready:
			want = controller.WithoutAnnotation(ann, rollout.AnnotationReadyAt)
		}
		if !maps.Equal(want, ann) {
			p := *v.pod
			p.Annotations = want
			pl.set.Update = append(pl.set.Update, &p)
		}
	}
}

// evictAt says whether p must leave node because the node is not Ready,
// and from when.
func (pl *planner) evictAt(p *api.Pod, node *api.Node) (time.Time, bool) {
	c := node.Status.Condition(api.NodeReady)
	if c != nil && c.Status == api.ConditionTrue {
		return time.Time{}, false
	}
	since := node.CreationTimestamp.Time
	key := api.TaintNodeNotReady
	if c != nil {
		since = c.LastTransitionTime.Time
		if c.Status == api.ConditionUnknown {
			key = api.TaintNodeUnreachable
		}
	}
	secs, forever := tolerationSeconds(p.Spec.Tolerations, key)
	if forever {
		return time.Time{}, false
	}
	return since.Add(time.Duration(secs) * time.Second), true
}

// tolerationSeconds is how long a pod tolerates the NoExecute taint key:
// from its matching toleration, or DefaultTolerationSeconds.
func tolerationSeconds(tols []api.Toleration, key string) (secs int64, forever bool) {
	for _, t := range tols {
		if t.Effect != "" && t.Effect != api.TaintEffectNoExecute {
			continue
		}
		if t.Key != key && !(t.Key == "" && t.Operator == api.TolerationOpExists) {
			continue
		}
		if t.TolerationSeconds == nil {
			return 0, true
		}
		return max(*t.TolerationSeconds, 0), false
	}
	return DefaultTolerationSeconds, false
}

func (pl *planner) view(p *api.Pod, node *api.Node) *podView {
	v := &podView{pod: p, current: p.Labels[LabelPodTemplateHash] == pl.short, bound: p.Spec.NodeName != ""}
	v.ready = v.bound && node != nil && node.IsReady() && p.IsReady() && p.Status.SpecHash == api.HashPodSpec(&p.Spec)
	v.stale = v.bound && pl.unheard[p.Spec.NodeName]
	v.available = v.ready
	if v.ready && pl.minReady > 0 {
		if t, err := time.Parse(time.RFC3339, p.Annotations[rollout.AnnotationReadyAt]); err == nil {
			v.readySince = t
		} else {
			v.readySince = pl.now.Time // first seen Ready in this pass
		}
		if until := v.readySince.Add(pl.minReady); until.After(pl.now.Time) {
			v.available = false
			pl.wakeAt(until)
		}
	}
	return v
}

func (pl *planner) newPod(t *api.PodTemplateSpec, short string) *api.Pod {
	d := pl.d
	name := ""
	for {
		base := d.Name + "-" + short + "-"
		if len(base) > 253-5 {
			base = base[:253-5]
		}
		name = base + pl.suffix()
		if !pl.taken[d.Namespace+"/"+name] {
			break
		}
	}
	pl.taken[d.Namespace+"/"+name] = true
	isController := true
	p := &api.Pod{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{
			Name: name, Namespace: d.Namespace, UID: api.NewUID(), CreationTimestamp: pl.now,
			Labels: maps.Clone(t.Labels),
			OwnerReferences: []api.OwnerReference{{
				APIVersion: "apps/v1", Kind: api.KindDeployment, Name: d.Name, UID: d.UID, Controller: &isController,
			}},
		},
		Spec:   t.Spec,
		Status: api.PodStatus{Phase: api.PodPending},
	}
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[LabelPodTemplateHash] = short
	if len(t.Annotations) > 0 {
		p.Annotations = maps.Clone(t.Annotations)
	}
	return p
}

// bind puts p on node and counts it there for the next placements.
func (pl *planner) bind(p *api.Pod, node string, stamp string) {
	p.Spec.NodeName = node
	p.Annotations = controller.WithAnnotation(p.Annotations, rollout.AnnotationUpdatedAt, stamp)
	p.Status = api.PodStatus{Phase: api.PodPending}
	if i, ok := pl.schedIdx[node]; ok {
		r := scheduler.Requests(&p.Spec)
		pl.sched[i].Requested.MilliCPU += r.MilliCPU
		pl.sched[i].Requested.Memory += r.Memory
		pl.sched[i].Requested.Pods++
		pl.sched[i].Requested.Devices = scheduler.AddDevices(pl.sched[i].Requested.Devices, r.Devices, 1)
		pl.sched[i].Group++
	}
}

func setUnschedulable(p *api.Pod, why string, now api.Time) {
	p.Status = api.PodStatus{Phase: api.PodPending, Conditions: []api.PodCondition{{
		Type: PodScheduled, Status: api.ConditionFalse, Reason: ReasonUnschedulable, Message: why, LastTransitionTime: now,
	}}}
}

func pendingMessage(p *api.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == PodScheduled {
			return c.Message
		}
	}
	return ""
}

// majority is the template hash most pods run (fallback when none).
func majority(pods []*podView, fallback string) string {
	count := map[string]int{}
	best := fallback
	for _, v := range pods {
		h := v.pod.Labels[LabelPodTemplateHash]
		count[h]++
		if count[h] > count[best] || (count[h] == count[best] && h < best) {
			best = h
		}
	}
	return best
}

// pickDeletes chooses n pods to delete, the way Kubernetes ranks them:
// unscheduled before scheduled, not ready before ready, not available
// before available, pods on crowded nodes first, newer before older.
func pickDeletes(pods []*podView, n int) []*podView {
	if n <= 0 {
		return nil
	}
	perNode := map[string]int{}
	for _, v := range pods {
		perNode[v.pod.Spec.NodeName]++
	}
	sorted := append([]*podView(nil), pods...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		switch {
		case a.bound != b.bound:
			return !a.bound
		case a.ready != b.ready:
			return !a.ready
		case a.available != b.available:
			return !a.available
		case perNode[a.pod.Spec.NodeName] != perNode[b.pod.Spec.NodeName]:
			return perNode[a.pod.Spec.NodeName] > perNode[b.pod.Spec.NodeName]
		case !a.pod.CreationTimestamp.Equal(b.pod.CreationTimestamp.Time):
			return a.pod.CreationTimestamp.After(b.pod.CreationTimestamp.Time)
		}
		return a.pod.Name < b.pod.Name
	})
	return sorted[:min(n, len(sorted))]
}

// status computes the Deployment's status after this pass's writes: the
// replica counts, Kubernetes' conditions, and Flotilla's rollout view of
// the same. It is set on the plan only when it changed.
func (pl *planner) status(maxUnavailable int, active []*podView, deleted map[string]bool, hist rollout.History, budgetErr error) {
	d := pl.d
	pr := pl.measure(active, deleted)
	pr.st.Conditions = pl.conditions(pr, maxUnavailable, hist.Current.Revision)
	ro := pl.rolloutView(pr, hist, active, deleted, budgetErr)
	pr.st.Rollout = &ro
	if !controller.Equal(pr.st, d.Status) {
		pl.set.Status = &pr.st
	}
}

// progress is where the replicas stand after this pass's writes, against
// the stored status: what the conditions and the rollout view are made
// from.
type progress struct {
	// st holds the replica counts (and the observed generation).
	st api.DeploymentStatus
	// updating names the current pods not available yet, by name.
	updating []string
	// newRollout: the template changed since the stored status; complete:
	// every replica is updated and available; progressed: a count moved
	// the right way since the stored status.
	newRollout, complete, progressed bool
	deadline                         time.Duration // the progress deadline
}

// measure counts the replicas: the active pods not deleted and the pods
// created.
func (pl *planner) measure(active []*podView, deleted map[string]bool) progress {
	d := pl.d
	pr := progress{st: api.DeploymentStatus{ObservedGeneration: d.Generation, CollisionCount: d.Status.CollisionCount}}
	st := &pr.st
	for _, v := range active {
		if deleted[v.pod.Name] {
			continue
		}
		st.Replicas++
		if v.current {
			st.UpdatedReplicas++
			if !v.available {
				pr.updating = append(pr.updating, v.pod.Name)
			}
		}
		if v.ready {
			st.ReadyReplicas++
		}
		if v.available {
			st.AvailableReplicas++
		}
	}
	for _, p := range pl.set.Create {
		st.Replicas++
		if p.Labels[LabelPodTemplateHash] == pl.short {
			st.UpdatedReplicas++
			pr.updating = append(pr.updating, p.Name)
		}
	}
	st.UnavailableReplicas = max(st.Replicas-st.AvailableReplicas, 0)
	sort.Strings(pr.updating)

	prev := d.Status
	pr.newRollout = prev.Rollout == nil || prev.Rollout.TemplateHash != pl.hash
	replicas := pl.replicas
	pr.complete = int(st.UpdatedReplicas) == replicas && int(st.Replicas) == replicas && int(st.AvailableReplicas) == replicas
	pr.progressed = st.UpdatedReplicas > prev.UpdatedReplicas || st.ReadyReplicas > prev.ReadyReplicas ||
		st.AvailableReplicas > prev.AvailableReplicas ||
		st.Replicas-st.UpdatedReplicas < prev.Replicas-prev.UpdatedReplicas
	pr.deadline = rollout.DefaultProgressDeadline
	if s := d.Spec.ProgressDeadlineSeconds; s != nil && *s > 0 {
		pr.deadline = time.Duration(*s) * time.Second
	}
	return pr
}

// conditions keeps Available and Progressing as Kubernetes does, and asks
// for a pass at the progress deadline. revision is the one rolling out.
func (pl *planner) conditions(pr progress, maxUnavailable int, revision int64) []api.DeploymentCondition {
	d, now := pl.d, pl.now
	conds := append([]api.DeploymentCondition(nil), d.Status.Conditions...)
	if int(pr.st.AvailableReplicas) >= pl.replicas-maxUnavailable {
		setCondition(&conds, ConditionAvailable, api.ConditionTrue, ReasonMinimumReplicasAvailable, "Deployment has minimum availability.", now, false)
	} else {
		setCondition(&conds, ConditionAvailable, api.ConditionFalse, ReasonMinimumReplicasUnavailable, "Deployment does not have minimum availability.", now, false)
	}
	prog := condition(d.Status.Conditions, ConditionProgressing)
	name := fmt.Sprintf("Deployment %q", d.Name)
	switch {
	case d.Spec.Paused:
		setCondition(&conds, ConditionProgressing, api.ConditionUnknown, ReasonDeploymentPaused, "Deployment is paused", now, false)
	case pr.complete:
		setCondition(&conds, ConditionProgressing, api.ConditionTrue, ReasonNewReplicaSetAvailable, name+" has successfully progressed.", now,
			pr.newRollout || prog == nil || prog.Reason != ReasonNewReplicaSetAvailable)
	case pr.newRollout:
		setCondition(&conds, ConditionProgressing, api.ConditionTrue, ReasonNewReplicaSetCreated,
			fmt.Sprintf("%s is rolling out revision %d.", name, revision), now, true)
	case prog != nil && prog.Reason == ReasonDeploymentPaused:
		setCondition(&conds, ConditionProgressing, api.ConditionUnknown, ReasonDeploymentResumed, "Deployment is resumed", now, true)
	case pr.progressed || prog == nil:
		setCondition(&conds, ConditionProgressing, api.ConditionTrue, ReasonReplicaSetUpdated, name+" is progressing.", now, true)
	case prog.Reason == ReasonProgressDeadlineExceeded:
	default:
		if due := prog.LastUpdateTime.Add(pr.deadline); !now.Before(due) {
			setCondition(&conds, ConditionProgressing, api.ConditionFalse, ReasonProgressDeadlineExceeded, name+" has timed out progressing.", now, false)
		} else {
			pl.wakeAt(due)
		}
	}
	if c := condition(conds, ConditionProgressing); c != nil && c.Status == api.ConditionTrue && c.Reason != ReasonNewReplicaSetAvailable {
		pl.wakeAt(c.LastUpdateTime.Add(pr.deadline))
	}
	sort.Slice(conds, func(i, j int) bool { return conds[i].Type < conds[j].Type })
	return conds
}

// rolloutView is Flotilla's rollout status of the same (what `hub
// rollout status` shows): revision, counts, phase and a message that
// says what it waits for. pr.st.Conditions are the new conditions.
func (pl *planner) rolloutView(pr progress, hist rollout.History, active []*podView, deleted map[string]bool, budgetErr error) api.RolloutStatus {
	prev := pl.d.Status.Rollout
	var ro api.RolloutStatus
	if pr.newRollout {
		ro = api.RolloutStatus{TemplateHash: pl.hash, StartedAt: pl.now, LastProgressTime: pl.now}
		if prev != nil {
			ro.LastGoodRevision = prev.LastGoodRevision
		}
	} else {
		ro = *prev
	}
	if n, ok := hist.Renumbered[ro.LastGoodRevision]; ok {
		ro.LastGoodRevision = n
	}
	ro.Revision = hist.Current.Revision
	if pr.progressed && !pr.newRollout {
		ro.LastProgressTime = pl.now
	}
	ro.Updated, ro.Ready = pr.st.UpdatedReplicas, 0
	for _, v := range active {
		if v.current && v.available && !deleted[v.pod.Name] {
			ro.Ready++
		}
	}
	ro.Unavailable, ro.Total = pr.st.UnavailableReplicas, int32(pl.replicas)
	ro.Failed, ro.OfflinePending, ro.FailedNodes = 0, 0, nil
	ro.Updating = pr.updating[:min(len(pr.updating), 10)]
	summary := rolloutSummary(ro.Ready, pl.replicas, pr.st.Replicas-pr.st.UpdatedReplicas, waitingPods(active, deleted), budgetErr)
	prog := condition(pr.st.Conditions, ConditionProgressing)
	switch {
	case pl.d.Spec.Paused:
		ro.Phase, ro.Message = api.RolloutPaused, "paused: "+summary
	case pr.complete:
		ro.Phase, ro.Message = api.RolloutComplete, summary
		ro.LastGoodRevision = ro.Revision
	case prog != nil && prog.Reason == ReasonProgressDeadlineExceeded:
		ro.Phase, ro.Message = api.RolloutFailed, fmt.Sprintf("progress deadline exceeded (%s): %s", pr.deadline, summary)
	default:
		ro.Phase, ro.Message = api.RolloutProgressing, summary
	}
	return ro
}

// rolloutSummary says how far a rollout is: ready of replicas updated
// replicas available, the old ones left, what the pods wait for (the
// agent's reason, a registry's error above all, not only a count), and a
// budget that did not parse.
func rolloutSummary(ready int32, replicas int, old int32, waiting []string, budgetErr error) string {
	summary := fmt.Sprintf("%d of %d updated replicas are available", ready, replicas)
	if old > 0 {
		summary += fmt.Sprintf(", %d old replica(s) pending termination", old)
	}
	if len(waiting) > 0 {
		summary += "; waiting for " + strings.Join(waiting, ", ")
	}
	if budgetErr != nil {
		summary += " (" + budgetErr.Error() + ")"
	}
	return summary
}

// waitingPods names (at most three of) the current pods that are not
// running for a reason the agent gave, with the reason.
func waitingPods(active []*podView, deleted map[string]bool) []string {
	var out []string
	for _, v := range active {
		if !v.current || v.ready || deleted[v.pod.Name] {
			continue
		}
		st := &v.pod.Status
		why := st.WaitingReason()
		if pf := st.PullFailure; pf != nil && !pf.PrePull && pf.SpecHash == api.HashPodSpec(&v.pod.Spec) {
			why = "ImagePullBackOff: " + pf.Message
		}
		if why == "" {
			continue
		}
		if len(out) == 3 {
			out = append(out, "...")
			break
		}
		out = append(out, fmt.Sprintf("%s (%s)", v.pod.Name, why))
	}
	return out
}

func condition(conds []api.DeploymentCondition, t string) *api.DeploymentCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// setCondition sets a condition, moving its transition time when the status
// changes and its update time when touch is set or anything changes.
func setCondition(conds *[]api.DeploymentCondition, t string, status api.ConditionStatus, reason, msg string, now api.Time, touch bool) {
	c := condition(*conds, t)
	if c == nil {
		*conds = append(*conds, api.DeploymentCondition{Type: t, Status: status, Reason: reason, Message: msg,
			LastUpdateTime: now, LastTransitionTime: now})
		return
	}
	if c.Status != status {
		c.LastTransitionTime = now
		touch = true
	}
	if c.Reason != reason || c.Message != msg {
		touch = true
	}
	c.Status, c.Reason, c.Message = status, reason, msg
	if touch {
		c.LastUpdateTime = now
	}
}

const suffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func randomSuffix() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("deployment: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = suffixAlphabet[int(b[i])%len(suffixAlphabet)]
	}
	return string(b[:])
}
