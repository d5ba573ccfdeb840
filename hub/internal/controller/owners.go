package controller

import (
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Owners finds which owner of one kind controls an object: the one its
// controller reference names by uid, in the object's own namespace.
type Owners struct {
	kind  string
	byUID map[string]*api.ObjectMeta
}

// NewOwners returns the Owners among owners, all of kind.
func NewOwners[O api.Object](kind string, owners []O) Owners {
	byUID := make(map[string]*api.ObjectMeta, len(owners))
	for _, o := range owners {
		m := o.GetObjectMeta()
		byUID[m.UID] = m
	}
	return Owners{kind: kind, byUID: byUID}
}

// Of returns the uid of the owner that controls the object of metadata
// m. mine is false when no object of the kind controls it; uid is ""
// when the one that does is gone: the object is an orphan, for the
// controller to delete.
func (o Owners) Of(m *api.ObjectMeta) (uid string, mine bool) {
	ref := m.ControllerRef()
	if ref == nil || ref.Kind != o.kind {
		return "", false
	}
	owner, ok := o.byUID[ref.UID]
	if !ok || owner.Namespace != m.Namespace {
		return "", true
	}
	return ref.UID, true
}

// Owned sorts objs by the owner among owners, all of kind, that controls
// them (Owners.Of). It returns them by owner uid, in objs' order, and the
// keys of the orphans. Objects no owner of kind controls are left out.
func Owned[O, T api.Object](kind string, owners []O, objs []T) (owned map[string][]T, orphans []store.Key) {
	of := NewOwners(kind, owners)
	owned = map[string][]T{}
	for _, obj := range objs {
		switch uid, mine := of.Of(obj.GetObjectMeta()); {
		case !mine:
		case uid == "":
			orphans = append(orphans, store.KeyOf(obj))
		default:
			owned[uid] = append(owned[uid], obj)
		}
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
