package state

import (
	"encoding/json"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// More of the key layout (see state.go):
//
//	g/{pod uid}  → JSON wire.SnapshotPod, the pod's last spec that ran Ready
//	x/{pod uid}  → JSON reconcile.Rejection, a spec the agent gave up on

func goodKey(uid string) []byte      { return []byte("g/" + uid) }
func rejectionKey(uid string) []byte { return []byte("x/" + uid) }

// LastGood returns the pod's last spec that ran Ready.
func (s *Store) LastGood(uid string) (wire.SnapshotPod, bool, error) {
	var p wire.SnapshotPod
	ok, err := s.getJSON(goodKey(uid), &p)
	return p, ok, err
}

// SaveGood records pod's spec as the last that ran Ready.
func (s *Store) SaveGood(pod wire.SnapshotPod) error { return s.setJSON(goodKey(pod.UID), pod) }

// Rejection returns the spec the agent gave up on for a pod, if any.
func (s *Store) Rejection(uid string) (reconcile.Rejection, bool, error) {
	var r reconcile.Rejection
	ok, err := s.getJSON(rejectionKey(uid), &r)
	return r, ok, err
}

// SaveRejection records a rejected spec (an empty one clears it).
func (s *Store) SaveRejection(uid string, r reconcile.Rejection) error {
	return s.setJSON(rejectionKey(uid), r)
}

// Forget drops what is remembered for a pod that is gone.
func (s *Store) Forget(uid string) error {
	t := s.Tally()
	t.Entry(len(goodKey(uid)), 0)
	t.Entry(len(rejectionKey(uid)), 0)
	err := s.Update(t, false, func(txn *badger.Txn) error {
		if err := txn.Delete(goodKey(uid)); err != nil {
			return err
		}
		return txn.Delete(rejectionKey(uid))
	})
	if err != nil {
		return fmt.Errorf("forget pod %s: %w", uid, err)
	}
	return nil
}

func (s *Store) getJSON(key []byte, v any) (bool, error) {
	err := s.View(func(txn *badger.Txn) error { return getJSON(txn, key, v) })
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	return true, nil
}

func (s *Store) setJSON(key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if err := s.set(key, b, false); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

var _ reconcile.Rollbacks = (*Store)(nil)
