package deployment

import (
	"crypto/rand"
	"fmt"
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
	byUID := make(map[string]*api.Deployment, len(in.Deployments))
	for _, d := range in.Deployments {
		byUID[d.UID] = d
	}
	owns := func(m *api.ObjectMeta) (*api.Deployment, bool) {
		ref := m.ControllerRef()
		if ref == nil || ref.Kind != api.KindDeployment {
			return nil, false
		}
		d, ok := byUID[ref.UID]
		if !ok || d.Namespace != m.Namespace {
			return nil, true
		}
		return d, true
	}
	owned := map[string][]*api.Pod{}
	for _, p := range in.Pods {
		d, mine := owns(&p.ObjectMeta)
		if !mine {
			continue
		}
		if d == nil {
			res.Orphans = append(res.Orphans, store.KeyOf(p))
			continue
		}
		owned[d.UID] = append(owned[d.UID], p)
	}
	revs := map[string][]*api.ControllerRevision{}
	for _, cr := range in.Revisions {
		d, mine := owns(&cr.ObjectMeta)
		if !mine {
			continue
		}
		if d == nil {
			res.Orphans = append(res.Orphans, store.KeyOf(cr))
			continue
		}
		revs[d.UID] = append(revs[d.UID], cr)
	}
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
		res.Wake = in.Now.Add(unheardRecheck) // their leases wake no controller
	}
	for _, d := range deps {
		p := &planner{d: d, nodes: nodes, sched: sched, pods: owned[d.UID], revs: revs[d.UID], taken: taken, unheard: in.Unheard, now: in.Now, suffix: suffix}
		set, wake := p.plan()
		res.Sets = append(res.Sets, set)
		if !wake.IsZero() && (res.Wake.IsZero() || wake.Before(res.Wake)) {
			res.Wake = wake
		}
	}
	return res
}

// unheardRecheck is how soon a pass runs again while nodes are unheard.
const unheardRecheck = 2 * time.Second

// planner plans one Deployment.
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

	hash, short string
	minReady    time.Duration
	set         *SetResult
	wake        time.Time
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

func (pl *planner) plan() (*SetResult, time.Time) {
	d := pl.d
	pl.hash = api.HashTemplate(&d.Spec.Template)
	pl.short = pl.hash[:10]
	pl.set = &SetResult{Deployment: d, Hash: pl.hash}
	pl.minReady = time.Duration(d.Spec.MinReadySeconds) * time.Second
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = max(int(*d.Spec.Replicas), 0)
	}
	nodeByName := make(map[string]*api.Node, len(pl.nodes))
	for _, n := range pl.nodes {
		nodeByName[n.Name] = n
	}
	schedIdx := make(map[string]int, len(pl.sched))
	for i := range pl.sched {
		schedIdx[pl.sched[i].Name] = i
	}

	// Pods that must go: on a node that is gone or NotReady past the pod's
	// toleration, or finished.
	var active []*podView
	remove := func(p *api.Pod) {
		pl.set.Delete = append(pl.set.Delete, store.KeyOf(p))
		if i, ok := schedIdx[p.Spec.NodeName]; ok {
			r := scheduler.Requests(&p.Spec)
			pl.sched[i].Requested.MilliCPU -= r.MilliCPU
			pl.sched[i].Requested.Memory -= r.Memory
			pl.sched[i].Requested.Pods--
		}
	}
	sort.Slice(pl.pods, func(i, j int) bool { return pl.pods[i].Name < pl.pods[j].Name })
	for _, p := range pl.pods {
		if p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed {
			remove(p)
			continue
		}
		if p.Spec.NodeName != "" {
			node := nodeByName[p.Spec.NodeName]
			if node == nil {
				remove(p)
				continue
			}
			if until, evict := pl.evictAt(p, node); evict {
				if !until.After(pl.now.Time) {
					remove(p)
					pl.set.Evicted = append(pl.set.Evicted, p.Name+" from "+node.Name)
					continue
				}
				pl.wakeAt(until)
			}
		}
		active = append(active, pl.view(p, nodeByName[p.Spec.NodeName]))
	}

	// Revision history.
	live := map[string]bool{}
	for _, v := range active {
		for _, cr := range pl.revs {
			if h := rollout.HashOf(cr); len(h) >= 10 && h[:10] == v.pod.Labels[LabelPodTemplateHash] {
				live[h] = true
			}
		}
	}
	prev := d.Status.Rollout
	var keep int64
	if prev != nil {
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

	var cur, old []*podView
	for _, v := range active {
		if v.current {
			cur = append(cur, v)
		} else {
			old = append(old, v)
		}
	}

	// Decide creates and deletes.
	maxUnavailable, maxSurge := 0, 0
	var budgetErr error
	recreate := d.Spec.Strategy.Type == api.RecreateStrategy
	if !recreate {
		var mu, ms *api.IntOrString
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
			mu, ms = ru.MaxUnavailable, ru.MaxSurge
		}
		maxUnavailable, maxSurge, budgetErr = rollout.Budget(mu, ms, replicas, api.FromString("25%"), api.FromString("25%"))
		maxUnavailable = min(maxUnavailable, replicas)
	}
	createTemplate := &d.Spec.Template
	createShort := pl.short
	var scaleUp int
	var deletes []*podView
	switch {
	case d.Spec.Paused:
		// A paused Deployment rolls nothing out; it keeps its pod count,
		// with the template most of its pods run.
		createShort = majority(active, pl.short)
		if t := templates[createShort]; t != nil {
			createTemplate = t
		} else {
			createShort = pl.short
		}
		scaleUp = replicas - len(active)
		if scaleUp < 0 {
			deletes = pickDeletes(active, -scaleUp)
			scaleUp = 0
		}
	case recreate:
		if len(old) > 0 {
			deletes = old // all old pods go before any new one starts
			break
		}
		scaleUp = replicas - len(cur)
		if scaleUp < 0 {
			deletes = pickDeletes(cur, -scaleUp)
			scaleUp = 0
		}
	default:
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
		if len(old) > 0 {
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
		}
	}
	deleted := map[string]bool{}
	for _, v := range deletes {
		deleted[v.pod.Name] = true
		remove(v.pod)
	}

	// Place pods: the pending ones first, then the new ones.
	podReq := scheduler.Pod{Requests: scheduler.Requests(&createTemplate.Spec), NodeSelector: createTemplate.Spec.NodeSelector}
	inGroup := func() {
		for i := range pl.sched {
			pl.sched[i].Group = 0
		}
		for _, v := range active {
			if v.bound && !deleted[v.pod.Name] {
				if i, ok := schedIdx[v.pod.Spec.NodeName]; ok {
					pl.sched[i].Group++
				}
			}
		}
	}
	inGroup()
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
		pl.bind(&p, placed[0], schedIdx, stamp)
		pl.set.Update = append(pl.set.Update, &p)
	}
	if scaleUp > 0 {
		placed, why := scheduler.Place(podReq, pl.sched, scaleUp)
		for _, node := range placed {
			p := pl.newPod(createTemplate, createShort)
			if node == "" {
				setUnschedulable(p, why, pl.now)
			} else {
				pl.bind(p, node, schedIdx, stamp)
			}
			pl.set.Create = append(pl.set.Create, p)
		}
	}

	// ready-at records for minReadySeconds.
	if pl.minReady > 0 {
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
			if len(want) != len(ann) || want[rollout.AnnotationReadyAt] != ann[rollout.AnnotationReadyAt] {
				p := *v.pod
				p.Annotations = want
				pl.set.Update = append(pl.set.Update, &p)
			}
		}
	}

	pl.status(replicas, maxUnavailable, active, deleted, hist, budgetErr)
	return pl.set, pl.wake
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
			Labels: map[string]string{},
			OwnerReferences: []api.OwnerReference{{
				APIVersion: "apps/v1", Kind: api.KindDeployment, Name: d.Name, UID: d.UID, Controller: &isController,
			}},
		},
		Spec:   t.Spec,
		Status: api.PodStatus{Phase: api.PodPending},
	}
	for k, v := range t.Labels {
		p.Labels[k] = v
	}
	p.Labels[LabelPodTemplateHash] = short
	for k, v := range t.Annotations {
		p.Annotations = controller.WithAnnotation(p.Annotations, k, v)
	}
	return p
}

// bind puts p on node and counts it there for the next placements.
func (pl *planner) bind(p *api.Pod, node string, schedIdx map[string]int, stamp string) {
	p.Spec.NodeName = node
	p.Annotations = controller.WithAnnotation(p.Annotations, rollout.AnnotationUpdatedAt, stamp)
	p.Status = api.PodStatus{Phase: api.PodPending}
	if i, ok := schedIdx[node]; ok {
		r := scheduler.Requests(&p.Spec)
		pl.sched[i].Requested.MilliCPU += r.MilliCPU
		pl.sched[i].Requested.Memory += r.Memory
		pl.sched[i].Requested.Pods++
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

// status computes the Deployment's status after this pass's writes.
func (pl *planner) status(replicas, maxUnavailable int, active []*podView, deleted map[string]bool, hist rollout.History, budgetErr error) {
	d := pl.d
	now := pl.now
	st := api.DeploymentStatus{ObservedGeneration: d.Generation, CollisionCount: d.Status.CollisionCount}
	var updating []string
	for _, v := range active {
		if deleted[v.pod.Name] {
			continue
		}
		st.Replicas++
		if v.current {
			st.UpdatedReplicas++
			if !v.available {
				updating = append(updating, v.pod.Name)
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
			updating = append(updating, p.Name)
		}
	}
	st.UnavailableReplicas = max(st.Replicas-st.AvailableReplicas, 0)
	sort.Strings(updating)

	prevRollout := d.Status.Rollout
	newRollout := prevRollout == nil || prevRollout.TemplateHash != pl.hash
	complete := int(st.UpdatedReplicas) == replicas && int(st.Replicas) == replicas && int(st.AvailableReplicas) == replicas

	// Conditions, as Kubernetes keeps them.
	conds := append([]api.DeploymentCondition(nil), d.Status.Conditions...)
	if int(st.AvailableReplicas) >= replicas-maxUnavailable {
		setCondition(&conds, ConditionAvailable, api.ConditionTrue, ReasonMinimumReplicasAvailable, "Deployment has minimum availability.", now, false)
	} else {
		setCondition(&conds, ConditionAvailable, api.ConditionFalse, ReasonMinimumReplicasUnavailable, "Deployment does not have minimum availability.", now, false)
	}
	deadline := rollout.DefaultProgressDeadline
	if s := d.Spec.ProgressDeadlineSeconds; s != nil && *s > 0 {
		deadline = time.Duration(*s) * time.Second
	}
	prog := condition(d.Status.Conditions, ConditionProgressing)
	prevSt := d.Status
	progressed := st.UpdatedReplicas > prevSt.UpdatedReplicas || st.ReadyReplicas > prevSt.ReadyReplicas ||
		st.AvailableReplicas > prevSt.AvailableReplicas ||
		st.Replicas-st.UpdatedReplicas < prevSt.Replicas-prevSt.UpdatedReplicas
	name := fmt.Sprintf("Deployment %q", d.Name)
	switch {
	case d.Spec.Paused:
		setCondition(&conds, ConditionProgressing, api.ConditionUnknown, ReasonDeploymentPaused, "Deployment is paused", now, false)
	case complete:
		setCondition(&conds, ConditionProgressing, api.ConditionTrue, ReasonNewReplicaSetAvailable, name+" has successfully progressed.", now, newRollout || prog == nil || prog.Reason != ReasonNewReplicaSetAvailable)
	case newRollout:
		setCondition(&conds, ConditionProgressing, api.ConditionTrue, ReasonNewReplicaSetCreated,
			fmt.Sprintf("%s is rolling out revision %d.", name, hist.Current.Revision), now, true)
	case prog != nil && prog.Reason == ReasonDeploymentPaused:
		setCondition(&conds, ConditionProgressing, api.ConditionUnknown, ReasonDeploymentResumed, "Deployment is resumed", now, true)
	case progressed || prog == nil:
		setCondition(&conds, ConditionProgressing, api.ConditionTrue, ReasonReplicaSetUpdated, name+" is progressing.", now, true)
	case prog.Reason == ReasonProgressDeadlineExceeded:
	default:
		if due := prog.LastUpdateTime.Add(deadline); !now.Before(due) {
			setCondition(&conds, ConditionProgressing, api.ConditionFalse, ReasonProgressDeadlineExceeded, name+" has timed out progressing.", now, false)
		} else {
			pl.wakeAt(due)
		}
	}
	if c := condition(conds, ConditionProgressing); c != nil && c.Status == api.ConditionTrue && c.Reason != ReasonNewReplicaSetAvailable {
		pl.wakeAt(c.LastUpdateTime.Add(deadline))
	}
	sort.Slice(conds, func(i, j int) bool { return conds[i].Type < conds[j].Type })
	st.Conditions = conds

	// Flotilla's rollout view of the same.
	var ro api.RolloutStatus
	if newRollout {
		ro = api.RolloutStatus{TemplateHash: pl.hash, StartedAt: now, LastProgressTime: now}
		if prevRollout != nil {
			ro.LastGoodRevision = prevRollout.LastGoodRevision
		}
	} else {
		ro = *prevRollout
	}
	if n, ok := hist.Renumbered[ro.LastGoodRevision]; ok {
		ro.LastGoodRevision = n
	}
	ro.Revision = hist.Current.Revision
	if progressed && !newRollout {
		ro.LastProgressTime = now
	}
	ro.Updated, ro.Ready = st.UpdatedReplicas, 0
	for _, v := range active {
		if v.current && v.available && !deleted[v.pod.Name] {
			ro.Ready++
		}
	}
	ro.Unavailable, ro.Total = st.UnavailableReplicas, int32(replicas)
	ro.Failed, ro.OfflinePending, ro.FailedNodes = 0, 0, nil
	if len(updating) > 10 {
		updating = updating[:10]
	}
	ro.Updating = updating
	summary := fmt.Sprintf("%d of %d updated replicas are available", ro.Ready, replicas)
	if old := st.Replicas - st.UpdatedReplicas; old > 0 {
		summary += fmt.Sprintf(", %d old replica(s) pending termination", old)
	}
	if waiting := waitingPods(active, deleted); len(waiting) > 0 {
		// What `rollout status` shows while it waits: the agent's reason,
		// a registry's error above all, not only a count.
		summary += "; waiting for " + strings.Join(waiting, ", ")
	}
	if budgetErr != nil {
		summary += " (" + budgetErr.Error() + ")"
	}
	prog = condition(conds, ConditionProgressing)
	switch {
	case d.Spec.Paused:
		ro.Phase, ro.Message = api.RolloutPaused, "paused: "+summary
	case complete:
		ro.Phase, ro.Message = api.RolloutComplete, summary
		ro.LastGoodRevision = ro.Revision
	case prog != nil && prog.Reason == ReasonProgressDeadlineExceeded:
		ro.Phase, ro.Message = api.RolloutFailed, fmt.Sprintf("progress deadline exceeded (%s): %s", deadline, summary)
	default:
		ro.Phase, ro.Message = api.RolloutProgressing, summary
	}
	st.Rollout = &ro
	if !controller.Equal(st, d.Status) {
		pl.set.Status = &st
	}
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
