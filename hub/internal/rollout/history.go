package rollout

import (
	"sort"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Labels and annotations of the revision history, with Kubernetes' names.
const (
	// LabelRevisionHash carries the template hash, on ControllerRevisions
	// and on DaemonSet pods.
	LabelRevisionHash = "controller-revision-hash"
	// AnnotationChangeCause is what `hub rollout history` shows for a
	// revision; it is copied from the owner when the revision is made.
	AnnotationChangeCause = "kubernetes.io/change-cause"
)

// Owner is the object a revision history belongs to.
type Owner struct {
	APIVersion, Kind     string
	Namespace, Name, UID string
	Annotations          map[string]string
}

// HistoryInput is what SyncHistory reads.
type HistoryInput struct {
	Owner    Owner
	Template *api.PodTemplateSpec
	// Hash is api.HashTemplate(Template).
	Hash string
	// Revisions are the owner's revisions now.
	Revisions []*api.ControllerRevision
	// Live are the template hashes that pods still run; their revisions
	// are kept.
	Live map[string]bool
	// Keep is a revision number never to delete (the last good one).
	Keep int64
	// Limit is how many other old revisions to keep (revisionHistoryLimit).
	Limit int
	Now   api.Time
}

// History is what SyncHistory decided.
type History struct {
	Create []*api.ControllerRevision
	// Update holds revisions given a new number: a template that comes
	// back takes the next number, as in Kubernetes.
	Update []*api.ControllerRevision
	Delete []*api.ControllerRevision
	// Current is the revision of the template, as it will be stored.
	Current *api.ControllerRevision
	// Renumbered maps an old revision number to its new one.
	Renumbered map[int64]int64
}

// RevisionName is the name of owner's revision of a template hash.
func RevisionName(owner, hash string) string {
	h := hash
	if len(h) > 10 {
		h = h[:10]
	}
	if len(owner) > 253-11 {
		owner = owner[:253-11]
	}
	return owner + "-" + h
}

// HashOf returns the template hash of a revision: its label, or the hash
// of its data.
func HashOf(cr *api.ControllerRevision) string {
	if h := cr.Labels[LabelRevisionHash]; h != "" {
		return h
	}
	return api.HashTemplate(&cr.Data)
}

// SyncHistory makes sure the template has a revision with the highest
// number, and trims old revisions beyond the limit, never the current, a
// live or the kept one. It is a pure function.
func SyncHistory(in HistoryInput) History {
	h := History{Renumbered: map[int64]int64{}}
	var maxRev int64
	var current *api.ControllerRevision
	names := map[string]bool{}
	for _, cr := range in.Revisions {
		maxRev = max(maxRev, cr.Revision)
		names[cr.Name] = true
		if HashOf(cr) == in.Hash && (current == nil || cr.Revision > current.Revision) {
			current = cr
		}
	}
	switch {
	case current == nil:
		name := RevisionName(in.Owner.Name, in.Hash)
		if names[name] {
			name = RevisionName(in.Owner.Name, in.Hash) + in.Hash[min(10, len(in.Hash)):]
		}
		isController := true
		labels := map[string]string{}
		for k, v := range in.Template.Labels {
			labels[k] = v
		}
		labels[LabelRevisionHash] = in.Hash
		cr := &api.ControllerRevision{
			TypeMeta: api.TypeMeta{APIVersion: "apps/v1", Kind: api.KindControllerRevision},
			ObjectMeta: api.ObjectMeta{
				Name: name, Namespace: in.Owner.Namespace, UID: api.NewUID(), CreationTimestamp: in.Now,
				Labels: labels, Annotations: changeCause(in.Owner.Annotations),
				OwnerReferences: []api.OwnerReference{{
					APIVersion: in.Owner.APIVersion, Kind: in.Owner.Kind, Name: in.Owner.Name, UID: in.Owner.UID, Controller: &isController,
				}},
			},
			Data:     *in.Template,
			Revision: maxRev + 1,
		}
		h.Create = append(h.Create, cr)
		current = cr
	case current.Revision < maxRev:
		cp := *current
		h.Renumbered[cp.Revision] = maxRev + 1
		cp.Revision = maxRev + 1
		if cc := changeCause(in.Owner.Annotations); cc != nil {
			cp.Annotations = cc
		}
		h.Update = append(h.Update, &cp)
		current = &cp
	}
	h.Current = current

	var old []*api.ControllerRevision
	for _, cr := range in.Revisions {
		if cr.UID == current.UID || cr.Name == current.Name || in.Live[HashOf(cr)] || cr.Revision == in.Keep {
			continue
		}
		old = append(old, cr)
	}
	if extra := len(old) - max(in.Limit, 0); extra > 0 {
		sort.Slice(old, func(i, j int) bool { return old[i].Revision < old[j].Revision })
		h.Delete = append(h.Delete, old[:extra]...)
	}
	return h
}

func changeCause(ann map[string]string) map[string]string {
	if v, ok := ann[AnnotationChangeCause]; ok {
		return map[string]string{AnnotationChangeCause: v}
	}
	return nil
}

// Pod annotations the controllers set for themselves, to remember across
// hub restarts. (The ones they set for the agent, through dispatch, are
// api.AnnotationPrePull and api.AnnotationProgressDeadline.)
const (
	// AnnotationUpdatedAt is when the pod was moved to its current
	// template (RFC 3339), so the progress deadline survives a restart.
	AnnotationUpdatedAt = "flotilla.io/updated-at"
	// AnnotationReadyAt is when the hub first saw the pod Ready on its
	// current template (RFC 3339), for minReadySeconds; only set when
	// minReadySeconds is.
	AnnotationReadyAt = "flotilla.io/ready-at"
)
