package metrics

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// MemorySeries is the series store in memory, for tests. It honours
// retention like the Badger store.
type MemorySeries struct {
	retention time.Duration
	now       func() time.Time

	mu     sync.Mutex
	closed bool
	nodes  map[string]map[int64][]byte // node → unix nanos → JSON
}

var _ Series = (*MemorySeries)(nil)

// NewMemory returns an empty in-memory series store.
func NewMemory(retention time.Duration, now func() time.Time) *MemorySeries {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if now == nil {
		now = time.Now
	}
	return &MemorySeries{retention: retention, now: now, nodes: map[string]map[int64][]byte{}}
}

// Append stores entries, dropping what has expired meanwhile.
func (m *MemorySeries) Append(entries []Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	now := m.now()
	for _, e := range entries {
		if expiry(e.Sample.Time, m.retention, now) <= 0 || e.Node == "" || strings.Contains(e.Node, "/") {
			continue
		}
		v, err := json.Marshal(e.Sample)
		if err != nil {
			return err
		}
		byTime := m.nodes[e.Node]
		if byTime == nil {
			byTime = map[int64][]byte{}
			m.nodes[e.Node] = byTime
		}
		byTime[e.Sample.Time.UnixNano()] = v
	}
	m.prune(now)
	return nil
}

// prune forgets expired samples. The caller holds m.mu.
func (m *MemorySeries) prune(now time.Time) {
	oldest := now.Add(-m.retention).UnixNano()
	for node, byTime := range m.nodes {
		for t := range byTime {
			if t <= oldest {
				delete(byTime, t)
			}
		}
		if len(byTime) == 0 {
			delete(m.nodes, node)
		}
	}
}

func (m *MemorySeries) sorted(node string, from, to int64) ([]wire.MetricSample, error) {
	oldest := m.now().Add(-m.retention).UnixNano()
	var keys []int64
	for t := range m.nodes[node] {
		if t >= from && t <= to && t > oldest {
			keys = append(keys, t)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	out := make([]wire.MetricSample, 0, len(keys))
	for _, t := range keys {
		var s wire.MetricSample
		if err := json.Unmarshal(m.nodes[node][t], &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Range returns node's samples in [from, to].
func (m *MemorySeries) Range(node string, from, to time.Time) ([]wire.MetricSample, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	return m.sorted(node, from.UnixNano(), to.UnixNano())
}

// Latest returns each node's newest unexpired sample.
func (m *MemorySeries) Latest() (map[string]wire.MetricSample, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := map[string]wire.MetricSample{}
	for node := range m.nodes {
		all, err := m.sorted(node, 0, 1<<63-1)
		if err != nil {
			return nil, err
		}
		if len(all) > 0 {
			out[node] = all[len(all)-1]
		}
	}
	return out, nil
}

// Size is the bytes of the samples held.
func (m *MemorySeries) Size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for node, byTime := range m.nodes {
		for _, v := range byTime {
			n += int64(len(node) + 11 + len(v))
		}
	}
	return n
}

// Close makes later calls fail with ErrClosed.
func (m *MemorySeries) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
