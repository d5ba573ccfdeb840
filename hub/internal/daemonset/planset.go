package daemonset

import (
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/rollout"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// setPlanner plans one DaemonSet. Its methods are the steps of plan, in
// the order plan takes them; each returns what it decided.
type setPlanner struct {
	ds       *api.DaemonSet
	now      api.Time
	specHash func(*api.Pod) string
	// unheard names the nodes not heard from since the hub started.
	unheard map[string]bool
	// names returns the namespace/name of every pod (a pod created takes
	// its name there).
	names func() map[string]bool

	hash     string // of ds's template
	minReady time.Duration
	// fit holds the devices free on each node (devices.go); nil when no
	// DaemonSet asks for devices; unplaced, the nodes targets left out
	// for want of them.
	fit      *deviceFit
	unplaced []api.NodeReason
}

func newSetPlanner(ds *api.DaemonSet, now api.Time, specHash func(*api.Pod) string, unheard map[string]bool, names func() map[string]bool) *setPlanner {
	return &setPlanner{ds: ds, now: now, specHash: specHash, unheard: unheard, names: names,
		hash: api.HashTemplate(&ds.Spec.Template), minReady: time.Duration(ds.Spec.MinReadySeconds) * time.Second}
}

// plan plans the DaemonSet's writes, as Kubernetes' syncDaemonSet does:
// which nodes should run its pod, the revision history, where the
// rollout stands, the rollout planner's decision, the status, and the
// pods to create, move or annotate. It returns when to plan again even
// if nothing changes (zero: not until something does).
func (sp *setPlanner) plan(nodes []*api.Node, mine map[string][]*api.Pod, revs []*api.ControllerRevision) (*SetResult, time.Time) {
	ds := sp.ds
	set := &SetResult{DaemonSet: ds, Hash: sp.hash}

	targets, misplaced, status := sp.targets(nodes, mine)
	set.Delete = misplaced
	set.Unplaced = sp.unplaced
	hist, byNumber := sp.history(targets, revs)
	set.CreateRevisions, set.UpdateRevisions = hist.Create, hist.Update
	for _, cr := range hist.Delete {
		set.DeleteRevisions = append(set.DeleteRevisions, store.KeyOf(cr))
	}

	st, newRollout := sp.rolloutStatus(targets, hist)
	rollingBack := !newRollout && ds.Status.Rollout.Phase == api.RolloutRolledBack
	rnodes, readyAt := sp.rolloutNodes(targets)
	params, deadline := sp.rolloutParams(rollingBack)
	good := byNumber[st.LastGoodRevision]
	params.CanRollback = good != nil && rollout.HashOf(good) != sp.hash
	plan := rollout.Plan(rollout.Input{
		Target: sp.hash, Nodes: rnodes, Params: params, Now: sp.now.Time, StartedAt: st.StartedAt.Time,
		State: rollout.State{CanaryDone: st.CanaryDone, PausedAt: st.PausedAt.Time},
	})

	countPods(&status, targets, sp.hash)
	recordProgress(&st, plan, params.PrePull, rollingBack, newRollout, sp.now)
	if plan.Rollback {
		set.Rollback, set.Status = sp.rollback(st, plan, good, status)
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
	if !controller.Equal(status, ds.Status) || set.Pause {
		set.Status = &status
	}
	set.Create, set.Update, set.Moved = sp.podActions(targets, plan, readyAt, deadline)
	return set, plan.Wake
}

// targets finds the nodes that should run the pod (those the template's
// node selector matches), in nodes' order, and the pod each has. It
// returns the pods to delete (on nodes that do not match or no longer
// exist, and any second pod on a node), by name, and the status with
// Kubernetes' placement counts.
func (sp *setPlanner) targets(nodes []*api.Node, mine map[string][]*api.Pod) ([]target, []store.Key, api.DaemonSetStatus) {
	ds := sp.ds
	status := api.DaemonSetStatus{ObservedGeneration: ds.Generation, CollisionCount: ds.Status.CollisionCount}
	nodeSel := api.SelectorFromMap(ds.Spec.Template.Spec.NodeSelector)
	var targets []target
	var del []store.Key
	onNodes := 0 // nodes holding pods of this DaemonSet
	for _, node := range nodes {
		have := mine[node.Name]
		if len(have) > 0 {
			onNodes++
		}
		if !nodeSel.Matches(node.Labels) {
			for _, p := range have {
				del = append(del, store.KeyOf(p))
			}
			if len(have) > 0 {
				status.NumberMisscheduled++
			}
			continue
		}
		if len(have) == 0 && !sp.placeable(node) {
			continue
		}
		status.DesiredNumberScheduled++
		t := target{node: node}
		if len(have) > 0 {
			// Keep one pod per node; extra ones (never made by this
			// controller, but possible after a restore) go.
			sort.Slice(have, func(i, j int) bool { return have[i].Name < have[j].Name })
			for _, extra := range have[1:] {
				del = append(del, store.KeyOf(extra))
			}
			t.pod = viewPod(have[0], sp.specHash)
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
					del = append(del, store.KeyOf(p))
				}
			}
		}
	}
	sort.Slice(del, func(i, j int) bool { return del[i].Name < del[j].Name })
	return targets, del, status
}

// history keeps the numbered revision history (rollout.SyncHistory): the
// revisions the targets' pods run and the last good one stay. It returns
// the history's changes, and every revision by its number as they will
// be stored.
func (sp *setPlanner) history(targets []target, revs []*api.ControllerRevision) (rollout.History, map[int64]*api.ControllerRevision) {
	ds := sp.ds
	live := map[string]bool{}
	for _, t := range targets {
		if t.pod != nil {
			live[t.pod.hash] = true
		}
	}
	var keep int64
	if prev := ds.Status.Rollout; prev != nil {
		keep = prev.LastGoodRevision
	}
	limit := 10
	if l := ds.Spec.RevisionHistoryLimit; l != nil {
		limit = int(*l)
	}
	hist := rollout.SyncHistory(rollout.HistoryInput{
		Owner: rollout.Owner{APIVersion: "apps/v1", Kind: api.KindDaemonSet, Namespace: ds.Namespace, Name: ds.Name, UID: ds.UID,
			Annotations: ds.Annotations},
		Template: &ds.Spec.Template, Hash: sp.hash, Revisions: revs, Live: live, Keep: keep, Limit: limit, Now: sp.now,
	})
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
	return hist, byNumber
}

// rolloutStatus says where the rollout stands before this pass: the
// stored one, or a new one when the template changed (whose last good
// revision is the previous one if that finished, even if its status
// never said so), with the history's numbers. newRollout is set for a
// new one.
func (sp *setPlanner) rolloutStatus(targets []target, hist rollout.History) (st api.RolloutStatus, newRollout bool) {
	prev := sp.ds.Status.Rollout
	newRollout = prev == nil || prev.TemplateHash != sp.hash
	if newRollout {
		st = api.RolloutStatus{TemplateHash: sp.hash, StartedAt: sp.now, LastProgressTime: sp.now}
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
	return st, newRollout
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

// rolloutNodes is the rollout planner's view of each target node. It
// sets each pod view's available (Ready for minReadySeconds), and
// returns the ready-at records to write: the time a pod moved to the
// template was first seen Ready, by node.
func (sp *setPlanner) rolloutNodes(targets []target) ([]rollout.Node, map[string]time.Time) {
	rnodes := make([]rollout.Node, 0, len(targets))
	readyAt := map[string]time.Time{}
	for _, t := range targets {
		n := rollout.Node{Name: t.node.Name, Labels: t.node.Labels, Online: t.node.IsReady(), Unheard: sp.unheard[t.node.Name]}
		if pv := t.pod; pv != nil {
			n.Hash = pv.hash
			n.Ready = pv.ready
			n.MovedAt = pv.movedAt
			n.PrePulled = pv.pod.Status.PrePulled
			n.Waiting = pv.waiting
			if pf := pv.pullFailure; pf != nil && (!pf.PrePull || stagesImage(&sp.ds.Spec.Template, pf.Image)) {
				n.PullFailure = pf
			}
			if pv.reverted != nil && pv.hash == sp.hash {
				n.Reverted, n.RevertReason = true, pv.reverted.Reason
			}
			if pv.ready && sp.minReady > 0 {
				// The hub's own clock says since when the pod is Ready on its
				// current template; a pod without the record was Ready before
				// anyone asked (an old pod), or just now (a moved one).
				n.ReadySince = pv.readyAt
				if pv.readyAt.IsZero() && pv.hash == sp.hash && !pv.movedAt.IsZero() {
					n.ReadySince = sp.now.Time
					readyAt[t.node.Name] = sp.now.Time
				}
			}
			pv.available = pv.ready && (sp.minReady == 0 || n.ReadySince.IsZero() || !n.ReadySince.Add(sp.minReady).After(sp.now.Time))
		}
		rnodes = append(rnodes, n)
	}
	return rnodes, readyAt
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

// rolloutParams are the rollout planner's settings, from the DaemonSet's
// update strategy and rollout spec; deadline is the progress deadline.
// CanRollback is left to the caller, which knows the history.
func (sp *setPlanner) rolloutParams(rollingBack bool) (params rollout.Params, deadline time.Duration) {
	ds := sp.ds
	params = rollout.Params{
		OnDelete:    ds.Spec.UpdateStrategy.Type == api.OnDeleteStrategy,
		MinReady:    sp.minReady,
		RollingBack: rollingBack,
	}
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		params.MaxUnavailable, params.MaxSurge = ru.MaxUnavailable, ru.MaxSurge
	}
	deadline = rollout.DefaultProgressDeadline
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
	return params, deadline
}

// countPods adds Kubernetes' counts of the targets' pods to status: ready,
// available (rolloutNodes decided), updated (on hash, not reverted), and
// unavailable.
func countPods(status *api.DaemonSetStatus, targets []target, hash string) {
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
		if pv.hash == hash && pv.reverted == nil {
			status.UpdatedNumberScheduled++
		}
	}
	status.NumberUnavailable = status.DesiredNumberScheduled - status.NumberAvailable
}

// recordProgress writes the rollout planner's decision into st: phase,
// message, counts and node lists, the failure (the time of the first
// sighting kept), the canary state, and the time of the last progress.
func recordProgress(st *api.RolloutStatus, plan rollout.Result, prePull, rollingBack, newRollout bool, now api.Time) {
	progressed := plan.Counts.Updated != int(st.Updated) || plan.Counts.Ready != int(st.Ready)
	st.Phase, st.Message = plan.Phase, plan.Message
	st.Updated, st.Ready = int32(plan.Counts.Updated), int32(plan.Counts.Ready)
	st.Unavailable, st.Failed = int32(plan.Counts.Unavailable), int32(plan.Counts.Failed)
	st.OfflinePending, st.Total = int32(plan.Counts.OfflinePending), int32(plan.Counts.Total)
	st.PrePulled = 0
	if prePull {
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
}

// rollback returns to the last good revision, good: the template goes
// back, as `hub rollout undo` would, and the next passes move every node
// there; the phase stays RolledBack until the next template. It returns
// the template and the status to write; st is where the failed rollout
// stands, status the pod counts.
func (sp *setPlanner) rollback(st api.RolloutStatus, plan rollout.Result, good *api.ControllerRevision, status api.DaemonSetStatus) (*api.PodTemplateSpec, *api.DaemonSetStatus) {
	tpl := good.Data
	failedRev := st.Revision
	why := strings.TrimSuffix(plan.Message, "; rolling back")
	now := sp.now
	back := api.RolloutStatus{
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
	status.ObservedGeneration = sp.ds.Generation + 1
	status.Rollout = &back
	return &tpl, &status
}

// podActions turns the rollout planner's decision into pod writes: a
// pod created on a node without one that moves, a pod moved to the
// template (its spec replaced, with the time and the progress deadline
// the agent may revert by), and the annotations of the others (the images
// to pre-pull, the ready-at record). It returns the pods to create and
// update, and the names of the nodes moved.
func (sp *setPlanner) podActions(targets []target, plan rollout.Result, readyAt map[string]time.Time, deadline time.Duration) (create, update []*api.Pod, moved []string) {
	ds, hash := sp.ds, sp.hash
	move := map[string]bool{}
	for _, n := range plan.Move {
		move[n] = true
	}
	prePull := map[string]bool{}
	for _, n := range plan.PrePull {
		prePull[n] = true
	}
	images := templateImages(&ds.Spec.Template)
	stamp := sp.now.UTC().Format(time.RFC3339)
	for _, t := range targets {
		name := t.node.Name
		switch {
		case t.pod == nil && move[name]:
			p := newPod(ds, name, hash, sp.now)
			taken := sp.names()
			if taken[p.Namespace+"/"+p.Name] {
				// Two node names share the short hash (likely enough in a
				// fleet of thousands): this pod takes the long name.
				p.Name = LongPodName(ds.Name, name)
			}
			taken[p.Namespace+"/"+p.Name] = true
			p.Annotations = controller.WithAnnotation(p.Annotations, rollout.AnnotationUpdatedAt, stamp)
			create = append(create, p)
			moved = append(moved, name)
		case t.pod == nil:
		case move[name]:
			p := updatedPod(ds, t.pod.pod, hash)
			p.Annotations = controller.WithAnnotation(p.Annotations, rollout.AnnotationUpdatedAt, stamp)
			p.Annotations = controller.WithAnnotation(p.Annotations, api.AnnotationProgressDeadline, strconv.Itoa(int(deadline/time.Second)))
			update = append(update, p)
			moved = append(moved, name)
		default:
			ann := t.pod.pod.Annotations
			want := ann
			if prePull[name] {
				want = controller.WithAnnotation(want, api.AnnotationPrePull, images)
			} else {
				want = controller.WithoutAnnotation(want, api.AnnotationPrePull)
			}
			if at, ok := readyAt[name]; ok {
				want = controller.WithAnnotation(want, rollout.AnnotationReadyAt, at.UTC().Format(time.RFC3339))
			} else if !t.pod.ready {
				want = controller.WithoutAnnotation(want, rollout.AnnotationReadyAt)
			}
			if !maps.Equal(ann, want) {
				p := *t.pod.pod
				p.Annotations = want
				update = append(update, &p)
			}
		}
	}
	return create, update, moved
}

// templateImages lists the template's images, comma-separated.
func templateImages(t *api.PodTemplateSpec) string {
	var images []string
	for _, c := range t.Spec.Containers {
		images = append(images, c.Image)
	}
	return strings.Join(images, ",")
}
