package daemonset

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/rollout"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Labels the controller puts on its pods, as Kubernetes does.
const (
	LabelTemplateHash = rollout.LabelRevisionHash
)

// Input is the state one pass plans from.
type Input struct {
	DaemonSets []*api.DaemonSet
	Nodes      []*api.Node
	Pods       []*api.Pod
	Revisions  []*api.ControllerRevision
	// Unheard names the nodes the hub has not heard from since it
	// started (see lease.Unheard): what it knows of those is from before,
	// and a rollout neither moves them nor counts them available.
	Unheard map[string]bool
	Now     api.Time
	// SpecHash, if set, returns api.HashPodSpec of a pod's spec; the
	// controller remembers it per pod version instead of hashing every
	// pod's spec on every pass.
	SpecHash func(*api.Pod) string
}

// Result is what one pass decided.
type Result struct {
	// Sets holds, per DaemonSet, what to write.
	Sets []*SetResult
	// Orphans are pods and ControllerRevisions whose DaemonSet is gone.
	Orphans []store.Key
	// Wake is when a pass should run again even if nothing changes (a
	// progress deadline, minReadySeconds, a canary pause); zero: never.
	Wake time.Time
}

// SetResult is what to write for one DaemonSet. The writes only apply
// while the DaemonSet still has the template they were planned for.
type SetResult struct {
	// DaemonSet is the object as planned from; Hash its template hash.
	DaemonSet *api.DaemonSet
	Hash      string
	Create    []*api.Pod
	// Update holds pods with new labels, annotations or spec; their status
	// is left as stored.
	Update          []*api.Pod
	Delete          []store.Key
	CreateRevisions []*api.ControllerRevision
	UpdateRevisions []*api.ControllerRevision
	DeleteRevisions []store.Key
	// Status is the new status, nil when unchanged.
	Status *api.DaemonSetStatus
	// Rollback, when set, is the template to return to; Pause asks for
	// spec.rollout.paused. Both bump the generation.
	Rollback *api.PodTemplateSpec
	Pause    bool
	// Moved names the nodes moved to the template in this pass.
	Moved []string
}

// Empty reports whether the set has nothing to write.
func (s *SetResult) Empty() bool {
	return len(s.Create)+len(s.Update)+len(s.Delete)+len(s.CreateRevisions)+len(s.UpdateRevisions)+len(s.DeleteRevisions) == 0 &&
		s.Status == nil && s.Rollback == nil && !s.Pause
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

// Plan computes, from the whole state, what to write: pods to create,
// move to a new template, annotate or delete, the revision history, and
// every DaemonSet's status. Template changes roll out through
// rollout.Plan. It is a pure function.
func Plan(in Input) *Result {
	res := &Result{}
	byUID := make(map[string]*api.DaemonSet, len(in.DaemonSets))
	for _, ds := range in.DaemonSets {
		byUID[ds.UID] = ds
	}
	owns := func(m *api.ObjectMeta) (*api.DaemonSet, bool) {
		ref := m.ControllerRef()
		if ref == nil || ref.Kind != api.KindDaemonSet {
			return nil, false
		}
		ds, ok := byUID[ref.UID]
		if !ok || ds.Namespace != m.Namespace {
			return nil, true
		}
		return ds, true
	}
	// owned[ds uid][node] → pods of that DaemonSet on that node.
	owned := map[string]map[string][]*api.Pod{}
	for _, p := range in.Pods {
		ds, mine := owns(&p.ObjectMeta)
		if !mine {
			continue
		}
		if ds == nil {
			res.Orphans = append(res.Orphans, store.KeyOf(p)) // its DaemonSet is gone
			continue
		}
		if owned[ds.UID] == nil {
			owned[ds.UID] = map[string][]*api.Pod{}
		}
		owned[ds.UID][p.Spec.NodeName] = append(owned[ds.UID][p.Spec.NodeName], p)
	}
	revs := map[string][]*api.ControllerRevision{}
	for _, cr := range in.Revisions {
		ds, mine := owns(&cr.ObjectMeta)
		if !mine {
			continue
		}
		if ds == nil {
			res.Orphans = append(res.Orphans, store.KeyOf(cr))
			continue
		}
		revs[ds.UID] = append(revs[ds.UID], cr)
	}

	nodes := in.Nodes
	if !sort.SliceIsSorted(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name }) {
		nodes = append([]*api.Node(nil), in.Nodes...)
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	}
	specHash := in.SpecHash
	if specHash == nil {
		specHash = func(p *api.Pod) string { return api.HashPodSpec(&p.Spec) }
	}
	// taken holds namespace/name of every pod, made the first time a pass
	// creates a pod.
	var taken map[string]bool
	names := func() map[string]bool {
		if taken == nil {
			taken = make(map[string]bool, len(in.Pods))
			for _, p := range in.Pods {
				taken[p.Namespace+"/"+p.Name] = true
			}
		}
		return taken
	}
	if len(in.Unheard) > 0 {
		// Their reports wake the controller; their leases, renewed by
		// heartbeats alone, do not.
		res.Wake = in.Now.Add(unheardRecheck)
	}
	for _, ds := range in.DaemonSets {
		set, wake := planSet(ds, nodes, owned[ds.UID], revs[ds.UID], names, specHash, in.Unheard, in.Now)
		res.Sets = append(res.Sets, set)
		if !wake.IsZero() && (res.Wake.IsZero() || wake.Before(res.Wake)) {
			res.Wake = wake
		}
	}
	return res
}

// unheardRecheck is how soon a pass runs again while nodes are unheard.
const unheardRecheck = 2 * time.Second

// target is a node that should run the DaemonSet's pod, and its pod.
type target struct {
	node *api.Node
	pod  *podView
}

// podView is what the controller reads off one pod.
type podView struct {
	pod       *api.Pod
	hash      string
	ready     bool
	reverted  *api.PodRevert
	readyAt   time.Time // from AnnotationReadyAt
	movedAt   time.Time
	specHash  string
	available bool // ready for minReadySeconds (computed later)
	// pullFailure is the agent's report that an image of the pod's spec,
	// or one it stages, cannot be pulled; waiting why a container is not
	// running.
	pullFailure *api.ImagePullFailure
	waiting     string
}

func viewPod(p *api.Pod, specHash func(*api.Pod) string) *podView {
	v := &podView{pod: p, hash: p.Labels[LabelTemplateHash], specHash: specHash(p)}
	if r := p.Status.Reverted; r != nil && r.FromSpecHash == v.specHash {
		v.reverted = r
	}
	v.ready = p.IsReady() && (p.Status.SpecHash == v.specHash || v.reverted != nil)
	v.readyAt = parseTime(p.Annotations[rollout.AnnotationReadyAt])
	v.movedAt = parseTime(p.Annotations[rollout.AnnotationUpdatedAt])
	if pf := p.Status.PullFailure; pf != nil && (pf.PrePull || pf.SpecHash == "" || pf.SpecHash == v.specHash) {
		v.pullFailure = pf
	}
	if !v.ready {
		v.waiting = p.Status.WaitingReason()
	}
	return v
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func planSet(ds *api.DaemonSet, nodes []*api.Node, mine map[string][]*api.Pod, revs []*api.ControllerRevision,
	names func() map[string]bool, specHash func(*api.Pod) string, unheard map[string]bool, now api.Time) (*SetResult, time.Time) {
	hash := api.HashTemplate(&ds.Spec.Template)
	set := &SetResult{DaemonSet: ds, Hash: hash}
	nodeSel := api.SelectorFromMap(ds.Spec.Template.Spec.NodeSelector)
	minReady := time.Duration(ds.Spec.MinReadySeconds) * time.Second
	status := api.DaemonSetStatus{ObservedGeneration: ds.Generation, CollisionCount: ds.Status.CollisionCount}

	// Which nodes should run the pod, and the pod each has.
	var targets []target
	onNodes := 0 // nodes holding pods of this DaemonSet
	for _, node := range nodes {
		have := mine[node.Name]
		if len(have) > 0 {
			onNodes++
		}
		if !nodeSel.Matches(node.Labels) {
			for _, p := range have {
				set.Delete = append(set.Delete, store.KeyOf(p))
			}
			if len(have) > 0 {
				status.NumberMisscheduled++
			}
			continue
		}
		status.DesiredNumberScheduled++
		t := target{node: node}
		if len(have) > 0 {
			// Keep one pod per node; extra ones (never made by this
			// controller, but possible after a restore) go.
			sort.Slice(have, func(i, j int) bool { return have[i].Name < have[j].Name })
			for _, extra := range have[1:] {
				set.Delete = append(set.Delete, store.KeyOf(extra))
			}
			t.pod = viewPod(have[0], specHash)
			status.CurrentNumberScheduled++
		}
		targets = append(targets, t)
	}
	if onNodes < len(mine) {
		// Pods on nodes that no longer exist.
		exists := make(map[string]bool, len(nodes))
		for _, node := range nodes {
			exists[node.Name] = true
		}
		for nodeName, have := range mine {
			if !exists[nodeName] {
				for _, p := range have {
					set.Delete = append(set.Delete, store.KeyOf(p))
				}
			}
		}
	}
	sort.Slice(set.Delete, func(i, j int) bool { return set.Delete[i].Name < set.Delete[j].Name })

	// Revision history.
	prev := ds.Status.Rollout
	live := map[string]bool{}
	for _, t := range targets {
		if t.pod != nil {
			live[t.pod.hash] = true
		}
	}
	var keep int64
	if prev != nil {
		keep = prev.LastGoodRevision
	}
	limit := 10
	if l := ds.Spec.RevisionHistoryLimit; l != nil {
		limit = int(*l)
	}
	hist := rollout.SyncHistory(rollout.HistoryInput{
		Owner: rollout.Owner{APIVersion: "apps/v1", Kind: api.KindDaemonSet, Namespace: ds.Namespace, Name: ds.Name, UID: ds.UID,
			Annotations: ds.Annotations},
		Template: &ds.Spec.Template, Hash: hash, Revisions: revs, Live: live, Keep: keep, Limit: limit, Now: now,
	})
	set.CreateRevisions, set.UpdateRevisions = hist.Create, hist.Update
	for _, cr := range hist.Delete {
		set.DeleteRevisions = append(set.DeleteRevisions, store.KeyOf(cr))
	}
	byNumber := map[int64]*api.ControllerRevision{}
	for _, cr := range revs {
		byNumber[cr.Revision] = cr
	}
	for _, cr := range append(hist.Create, hist.Update...) {
		for n, old := range byNumber {
			if old.Name == cr.Name {
				delete(byNumber, n)
			}
		}
		byNumber[cr.Revision] = cr
	}

	// Where the rollout stands.
	var st api.RolloutStatus
	newRollout := prev == nil || prev.TemplateHash != hash
	if newRollout {
		st = api.RolloutStatus{TemplateHash: hash, StartedAt: now, LastProgressTime: now}
		if prev != nil {
			st.LastGoodRevision = prev.LastGoodRevision
			if prev.Phase == api.RolloutComplete || prevComplete(prev.TemplateHash, targets) {
				st.LastGoodRevision = prev.Revision
			}
		}
	} else {
		st = *prev
	}
	if n, ok := hist.Renumbered[st.LastGoodRevision]; ok {
		st.LastGoodRevision = n
	}
	if f := st.Failure; f != nil {
		if n, ok := hist.Renumbered[f.RolledBackTo]; ok {
			cp := *f
			cp.RolledBackTo = n
			st.Failure = &cp
		}
	}
	st.Revision = hist.Current.Revision
	rollingBack := !newRollout && prev.Phase == api.RolloutRolledBack

	// The planner's view of each node.
	rnodes := make([]rollout.Node, 0, len(targets))
	readyAt := map[string]time.Time{} // node → ready-at to record
	for _, t := range targets {
		n := rollout.Node{Name: t.node.Name, Labels: t.node.Labels, Online: t.node.IsReady(), Unheard: unheard[t.node.Name]}
		if pv := t.pod; pv != nil {
			n.Hash = pv.hash
			n.Ready = pv.ready
			n.MovedAt = pv.movedAt
			n.PrePulled = pv.pod.Status.PrePulled
			n.Waiting = pv.waiting
			if pf := pv.pullFailure; pf != nil && (!pf.PrePull || stagesImage(&ds.Spec.Template, pf.Image)) {
				n.PullFailure = pf
			}
			if pv.reverted != nil && pv.hash == hash {
				n.Reverted, n.RevertReason = true, pv.reverted.Reason
			}
			if pv.ready && minReady > 0 {
				// The hub's own clock says since when the pod is Ready on its
				// current template; a pod without the record was Ready before
				// anyone asked (an old pod), or just now (a moved one).
				n.ReadySince = pv.readyAt
				if pv.readyAt.IsZero() && pv.hash == hash && !pv.movedAt.IsZero() {
					n.ReadySince = now.Time
					readyAt[t.node.Name] = now.Time
				}
			}
			pv.available = pv.ready && (minReady == 0 || n.ReadySince.IsZero() || !n.ReadySince.Add(minReady).After(now.Time))
		}
		rnodes = append(rnodes, n)
	}

	params := rollout.Params{
		OnDelete:    ds.Spec.UpdateStrategy.Type == api.OnDeleteStrategy,
		MinReady:    minReady,
		RollingBack: rollingBack,
	}
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		params.MaxUnavailable, params.MaxSurge = ru.MaxUnavailable, ru.MaxSurge
	}
	deadline := rollout.DefaultProgressDeadline
	if r := ds.Spec.Rollout; r != nil {
		params.MaxFailures = r.MaxFailures
		params.OnFailure = r.OnFailure
		params.OfflineNodes = r.OfflineNodes
		params.Canary = r.Canary
		params.PrePull = r.PrePull
		params.Paused = r.Paused
		if r.ProgressDeadlineSeconds != nil && *r.ProgressDeadlineSeconds > 0 {
			deadline = time.Duration(*r.ProgressDeadlineSeconds) * time.Second
		}
	}
	params.ProgressDeadline = deadline
	good := byNumber[st.LastGoodRevision]
	params.CanRollback = good != nil && rollout.HashOf(good) != hash
	plan := rollout.Plan(rollout.Input{
		Target: hash, Nodes: rnodes, Params: params, Now: now.Time, StartedAt: st.StartedAt.Time,
		State: rollout.State{CanaryDone: st.CanaryDone, PausedAt: st.PausedAt.Time},
	})

	// Kubernetes' status counts.
	for _, t := range targets {
		pv := t.pod
		if pv == nil {
			continue
		}
		if pv.ready {
			status.NumberReady++
		}
		if pv.available {
			status.NumberAvailable++
		}
		if pv.hash == hash && (pv.reverted == nil) {
			status.UpdatedNumberScheduled++
		}
	}
	status.NumberUnavailable = status.DesiredNumberScheduled - status.NumberAvailable

	progressed := plan.Counts.Updated != int(st.Updated) || plan.Counts.Ready != int(st.Ready)
	st.Phase, st.Message = plan.Phase, plan.Message
	st.Updated, st.Ready = int32(plan.Counts.Updated), int32(plan.Counts.Ready)
	st.Unavailable, st.Failed = int32(plan.Counts.Unavailable), int32(plan.Counts.Failed)
	st.OfflinePending, st.Total = int32(plan.Counts.OfflinePending), int32(plan.Counts.Total)
	st.PrePulled = 0
	if params.PrePull {
		st.PrePulled = int32(plan.Counts.PrePulled)
	}
	st.Updating, st.FailedNodes = plan.Updating, plan.Failed
	st.OfflinePendingNodes = plan.OfflinePending[:min(len(plan.OfflinePending), api.MaxListedNodes)]
	if plan.Phase == api.RolloutFailed && !rollingBack {
		f := &api.RolloutFailure{Revision: st.Revision, Message: plan.Message, Nodes: plan.Failed, Time: now}
		if old := st.Failure; old != nil && old.Revision == f.Revision && old.RolledBackTo == 0 {
			f.Time = old.Time // the same failure, seen again
		}
		st.Failure = f
	}
	st.CanaryDone, st.PausedAt = plan.State.CanaryDone, api.NewTime(plan.State.PausedAt)
	if progressed && !newRollout {
		st.LastProgressTime = now
	}

	if plan.Rollback {
		// Back to the last good revision: the template goes back, as
		// `hub rollout undo` would, and the next passes move every node
		// there; the phase stays RolledBack until the next template.
		tpl := good.Data
		set.Rollback = &tpl
		failedRev := st.Revision
		why := strings.TrimSuffix(plan.Message, "; rolling back")
		st = api.RolloutStatus{
			Revision: good.Revision, TemplateHash: api.HashTemplate(&tpl),
			Phase:   api.RolloutRolledBack,
			Message: fmt.Sprintf("revision %d failed: %s; rolled back to revision %d", failedRev, why, good.Revision),
			Updated: st.Updated, Ready: st.Ready, Unavailable: st.Unavailable, Failed: st.Failed,
			OfflinePending: st.OfflinePending, Total: st.Total, FailedNodes: plan.Failed,
			OfflinePendingNodes: st.OfflinePendingNodes,
			CanaryDone:          true, StartedAt: now, LastProgressTime: now, LastGoodRevision: good.Revision,
			// The passes that roll back report their own progress: the
			// failure that started it stays here for `rollout status` and
			// `describe`.
			Failure: &api.RolloutFailure{Revision: failedRev, Message: why, Nodes: plan.Failed, RolledBackTo: good.Revision, Time: now},
		}
		status.ObservedGeneration = ds.Generation + 1
		status.Rollout = &st
		set.Status = &status
		return set, time.Time{}
	}
	if st.Phase == api.RolloutComplete || st.Phase == api.RolloutDegraded {
		st.LastGoodRevision = st.Revision
	}
	if plan.Pause {
		set.Pause = true
		status.ObservedGeneration = ds.Generation + 1
	}
	status.Rollout = &st
	if !jsonEqual(status, ds.Status) || set.Pause {
		set.Status = &status
	}

	// Pods: create, move, annotate.
	move := map[string]bool{}
	for _, n := range plan.Move {
		move[n] = true
	}
	prePull := map[string]bool{}
	for _, n := range plan.PrePull {
		prePull[n] = true
	}
	images := templateImages(&ds.Spec.Template)
	stamp := now.UTC().Format(time.RFC3339)
	for _, t := range targets {
		name := t.node.Name
		switch {
		case t.pod == nil && move[name]:
			p := newPod(ds, name, hash, now)
			taken := names()
			if taken[p.Namespace+"/"+p.Name] {
				// Two node names share the short hash (likely enough in a
				// fleet of thousands): this pod takes the long name.
				p.Name = LongPodName(ds.Name, name)
			}
			taken[p.Namespace+"/"+p.Name] = true
			p.Annotations = withAnnotation(p.Annotations, rollout.AnnotationUpdatedAt, stamp)
			set.Create = append(set.Create, p)
			set.Moved = append(set.Moved, name)
		case t.pod == nil:
		case move[name]:
			p := updatedPod(ds, t.pod.pod, hash)
			p.Annotations = withAnnotation(p.Annotations, rollout.AnnotationUpdatedAt, stamp)
			p.Annotations = withAnnotation(p.Annotations, api.AnnotationProgressDeadline, strconv.Itoa(int(deadline/time.Second)))
			set.Update = append(set.Update, p)
			set.Moved = append(set.Moved, name)
		default:
			ann := t.pod.pod.Annotations
			want := ann
			if prePull[name] {
				want = withAnnotation(want, api.AnnotationPrePull, images)
			} else {
				want = withoutAnnotation(want, api.AnnotationPrePull)
			}
			if at, ok := readyAt[name]; ok {
				want = withAnnotation(want, rollout.AnnotationReadyAt, at.UTC().Format(time.RFC3339))
			} else if !t.pod.ready {
				want = withoutAnnotation(want, rollout.AnnotationReadyAt)
			}
			if !mapsEqual(ann, want) {
				p := *t.pod.pod
				p.Annotations = want
				set.Update = append(set.Update, &p)
			}
		}
	}
	return set, plan.Wake
}

// prevComplete reports whether every target node runs prevHash and is
// Ready: the previous rollout finished even if its status never said so
// (the hub stopped first).
func prevComplete(prevHash string, targets []target) bool {
	if len(targets) == 0 || prevHash == "" {
		return false
	}
	for _, t := range targets {
		pv := t.pod
		if pv == nil || pv.hash != prevHash || !pv.ready {
			return false
		}
	}
	return true
}

// stagesImage says whether image is one the template's pre-pull stages.
func stagesImage(t *api.PodTemplateSpec, image string) bool {
	for _, c := range t.Spec.Containers {
		if c.Image == image {
			return true
		}
	}
	return false
}

// templateImages lists the template's images, comma-separated.
func templateImages(t *api.PodTemplateSpec) string {
	var images []string
	for _, c := range t.Spec.Containers {
		images = append(images, c.Image)
	}
	return strings.Join(images, ",")
}

// withAnnotation returns m with k=v, copying m when that changes it.
func withAnnotation(m map[string]string, k, v string) map[string]string {
	if old, ok := m[k]; ok && old == v {
		return m
	}
	out := make(map[string]string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = v
	return out
}

// withoutAnnotation returns m without k, copying m when that changes it.
func withoutAnnotation(m map[string]string, k string) map[string]string {
	if _, ok := m[k]; !ok {
		return m
	}
	out := make(map[string]string, len(m))
	for key, val := range m {
		if key != k {
			out[key] = val
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func jsonEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// PodName is the name of ds's pod on node: stable, so that the pod keeps
// its name through template changes, and distinct per node but for the
// rare nodes whose names share the five-character hash; LongPodName names
// those.
func PodName(dsName, node string) string {
	return podName(dsName, node, 5)
}

// LongPodName is the name of ds's pod on node when PodName is taken by the
// pod of another node.
func LongPodName(dsName, node string) string {
	return podName(dsName, node, 16)
}

func podName(dsName, node string, n int) string {
	sum := sha256.Sum256([]byte(node))
	suffix := hex.EncodeToString(sum[:])[:n]
	base := dsName
	if len(base) > 253-n-1 {
		base = base[:253-n-1]
	}
	return base + "-" + suffix
}

func newPod(ds *api.DaemonSet, node, hash string, now api.Time) *api.Pod {
	isController := true
	p := &api.Pod{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{
			Name:              PodName(ds.Name, node),
			Namespace:         ds.Namespace,
			UID:               api.NewUID(),
			CreationTimestamp: now,
			OwnerReferences: []api.OwnerReference{{
				APIVersion: "apps/v1", Kind: api.KindDaemonSet, Name: ds.Name, UID: ds.UID, Controller: &isController,
			}},
		},
		Status: api.PodStatus{Phase: api.PodPending},
	}
	setTemplate(p, ds, node, hash)
	return p
}

// updatedPod moves an existing pod to the current template, keeping its
// identity and its status. The agent replaces its containers when it sees
// the new spec.
func updatedPod(ds *api.DaemonSet, old *api.Pod, hash string) *api.Pod {
	p := *old
	p.ObjectMeta.Labels = nil
	p.ObjectMeta.Annotations = nil
	setTemplate(&p, ds, old.Spec.NodeName, hash)
	return &p
}

func setTemplate(p *api.Pod, ds *api.DaemonSet, node, hash string) {
	t := &ds.Spec.Template
	p.Labels = map[string]string{}
	for k, v := range t.Labels {
		p.Labels[k] = v
	}
	p.Labels[LabelTemplateHash] = hash
	if len(t.Annotations) > 0 {
		p.Annotations = map[string]string{}
		for k, v := range t.Annotations {
			p.Annotations[k] = v
		}
	}
	// The slices of the spec are never mutated after decoding, so sharing
	// them is safe.
	p.Spec = t.Spec
	p.Spec.NodeName = node
}
