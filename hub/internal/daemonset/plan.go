package daemonset

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"sort"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
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
	// Unplaced are the nodes the node selector matches that get no pod
	// for want of devices, and why (devices.go).
	Unplaced []api.NodeReason
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
	// owned[ds uid][node] → pods of that DaemonSet on that node.
	owned := map[string]map[string][]*api.Pod{}
	owners := controller.NewOwners(api.KindDaemonSet, in.DaemonSets)
	for _, p := range in.Pods {
		switch uid, mine := owners.Of(&p.ObjectMeta); {
		case !mine:
		case uid == "":
			res.Orphans = append(res.Orphans, store.KeyOf(p)) // its DaemonSet is gone
		default:
			if owned[uid] == nil {
				owned[uid] = map[string][]*api.Pod{}
			}
			owned[uid][p.Spec.NodeName] = append(owned[uid][p.Spec.NodeName], p)
		}
	}
	revs, revOrphans := controller.Owned(api.KindDaemonSet, in.DaemonSets, in.Revisions)
	res.Orphans = append(res.Orphans, revOrphans...)

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
		res.Wake = in.Now.Add(controller.UnheardRecheck)
	}
	fit := newDeviceFit(in.DaemonSets, nodes, in.Pods)
	for _, ds := range in.DaemonSets {
		sp := newSetPlanner(ds, in.Now, specHash, in.Unheard, names)
		sp.fit = fit
		set, wake := sp.plan(nodes, owned[ds.UID], revs[ds.UID])
		res.Sets = append(res.Sets, set)
		res.Wake = controller.Sooner(res.Wake, wake)
	}
	return res
}

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
	p.Labels = maps.Clone(t.Labels)
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[LabelTemplateHash] = hash
	if len(t.Annotations) > 0 {
		p.Annotations = maps.Clone(t.Annotations)
	}
	// The slices of the spec are never mutated after decoding, so sharing
	// them is safe.
	p.Spec = t.Spec
	p.Spec.NodeName = node
}
