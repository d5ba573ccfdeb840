package controller

import (
	"errors"
	"fmt"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Batch bounds the writes of one transaction where a controller splits
// them: a large fleet's changes (every pod of a DaemonSet, every object a
// deleted owner left) do not fit in one Badger transaction.
const Batch = 500

// ErrStale, from a Guarded guard, abandons the rest of a write: what it
// was planned from has changed since the pass read it, and the next pass
// plans again.
var ErrStale = errors.New("changed since the pass read it")

// Op is one write of a plan, given what its guard returned: the object
// the plan was made for, as stored now.
type Op[T any] func(tx store.Tx, cur T) error

// Guarded stores ops in transactions of at most batch ops each (all in one
// when batch <= 0). Each transaction first runs guard, which returns the
// object the plan was made for, as stored now, or ErrStale when it has
// changed: the ops not stored yet are dropped then, and Guarded returns
// nil.
func Guarded[T any](st store.Store, batch int, guard func(tx store.Tx) (T, error), ops []Op[T]) error {
	if batch <= 0 {
		batch = max(len(ops), 1)
	}
	for start := 0; start < len(ops); start += batch {
		part := ops[start:min(start+batch, len(ops))]
		err := st.Update(func(tx store.Tx) error {
			cur, err := guard(tx)
			if err != nil {
				return err
			}
			for _, op := range part {
				if err := op(tx, cur); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, ErrStale) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// DeleteAll deletes keys, the ones already gone included, Batch at a
// time.
func DeleteAll(st store.Store, keys []store.Key) error {
	for start := 0; start < len(keys); start += Batch {
		part := keys[start:min(start+Batch, len(keys))]
		if err := st.Update(func(tx store.Tx) error {
			for _, k := range part {
				if err := DeleteIfPresent(tx, k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("delete %d objects from %s: %w", len(part), part[0], err)
		}
	}
	return nil
}

// PutIfAbsent creates obj unless its key is taken (an earlier pass made
// it).
func PutIfAbsent(tx store.Tx, obj api.Object) error {
	_, err := tx.Get(store.KeyOf(obj))
	if err == nil {
		return nil
	}
	if !store.IsNotFound(err) {
		return err
	}
	return tx.Put(obj)
}

// DeleteIfPresent deletes k; a key already gone is no error.
func DeleteIfPresent(tx store.Tx, k store.Key) error {
	if err := tx.Delete(k); err != nil && !store.IsNotFound(err) {
		return err
	}
	return nil
}

// UpdatePod writes p's labels, annotations and spec onto the stored pod
// of the same uid, keeping the status its agent reported meanwhile. A pod
// not bound to a node yet takes p's status too: binding it (or saying why
// it cannot be placed) sets its status, and no agent reports on it. A pod
// gone, or replaced by another of the same name, is left alone.
func UpdatePod(tx store.Tx, p *api.Pod) error {
	cur, err := store.Get[api.Pod](tx, p.Namespace, p.Name)
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if cur.UID != p.UID {
		return nil
	}
	if cur.Spec.NodeName == "" {
		cur.Status = p.Status
	}
	cur.Labels, cur.Annotations, cur.Spec = p.Labels, p.Annotations, p.Spec
	return tx.Put(cur)
}

// UpdateRevision writes cr's number and annotations onto the stored
// ControllerRevision of its name (the history renumbers revisions and
// moves their change causes); one gone is left alone.
func UpdateRevision(tx store.Tx, cr *api.ControllerRevision) error {
	cur, err := store.Get[api.ControllerRevision](tx, cr.Namespace, cr.Name)
	if store.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cur.Revision, cur.Annotations = cr.Revision, cr.Annotations
	return tx.Put(cur)
}
