package controller

import (
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Owned sorts objs by the owner that controls them, among owners, all of
// kind: by the uid of their controller reference, in their own
// namespace. It returns them by owner uid, in objs' order, and the keys
// of the orphans: objects whose controller of kind is gone, for the
// controller to delete. Objects no owner of kind controls are left out.
func Owned[O, T api.Object](kind string, owners []O, objs []T) (owned map[string][]T, orphans []store.Key) {
	byUID := make(map[string]*api.ObjectMeta, len(owners))
	for _, o := range owners {
		m := o.GetObjectMeta()
		byUID[m.UID] = m
	}
	owned = map[string][]T{}
	for _, obj := range objs {
		m := obj.GetObjectMeta()
		ref := m.ControllerRef()
		if ref == nil || ref.Kind != kind {
			continue
		}
		owner, ok := byUID[ref.UID]
		if !ok || owner.Namespace != m.Namespace {
			orphans = append(orphans, store.KeyOf(obj))
			continue
		}
		owned[ref.UID] = append(owned[ref.UID], obj)
	}
	return owned, orphans
}

// Sooner returns the earlier of two wake times, zero meaning none.
func Sooner(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
