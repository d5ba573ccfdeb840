package state

import (
	"sync"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Memory is the agent's local state kept in memory only, for the fleet
// simulator, which runs thousands of agents in one process. It behaves
// like Store, minus durability; a board always uses Store.
type Memory struct {
	mu        sync.Mutex
	snapshot  wire.Snapshot
	seq       uint64
	restarts  map[string]reconcile.RestartRecord
	good      map[string]wire.SnapshotPod
	rejection map[string]reconcile.Rejection
}

// NewMemory returns an empty in-memory state.
func NewMemory() *Memory {
	return &Memory{
		restarts:  map[string]reconcile.RestartRecord{},
		good:      map[string]wire.SnapshotPod{},
		rejection: map[string]reconcile.Rejection{},
	}
}

// Snapshot returns the newest accepted snapshot.
func (m *Memory) Snapshot() (wire.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshot, nil
}

// AcceptSnapshot keeps snap if it is newer than the one held.
func (m *Memory) AcceptSnapshot(snap wire.Snapshot) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if snap.Revision <= m.snapshot.Revision {
		return false, nil
	}
	m.snapshot = snap
	return true, nil
}

// NextSeq returns the next report sequence number.
func (m *Memory) NextSeq() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	return m.seq, nil
}

// Restarts returns a container's restart record.
func (m *Memory) Restarts(id string) (reconcile.RestartRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restarts[id], nil
}

// SaveRestarts stores a container's restart record.
func (m *Memory) SaveRestarts(id string, rec reconcile.RestartRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.restarts[id] = rec
	return nil
}

// DeleteRestarts forgets a container's restart record.
func (m *Memory) DeleteRestarts(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.restarts, id)
	return nil
}

// LastGood returns the pod's last spec that ran Ready.
func (m *Memory) LastGood(uid string) (wire.SnapshotPod, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.good[uid]
	return p, ok, nil
}

// SaveGood records the pod's spec as the last that ran Ready.
func (m *Memory) SaveGood(pod wire.SnapshotPod) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.good[pod.UID] = pod
	return nil
}

// Rejection returns the spec the agent gave up on for a pod.
func (m *Memory) Rejection(uid string) (reconcile.Rejection, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rejection[uid]
	return r, ok, nil
}

// SaveRejection records a rejected spec.
func (m *Memory) SaveRejection(uid string, r reconcile.Rejection) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rejection[uid] = r
	return nil
}

// Forget drops what is remembered for a pod.
func (m *Memory) Forget(uid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.good, uid)
	delete(m.rejection, uid)
	return nil
}

var (
	_ reconcile.History   = (*Memory)(nil)
	_ reconcile.Rollbacks = (*Memory)(nil)
)
