// Package metrics is the hub's side of node and pod metrics: it keeps
// every node's samples for a retention period in a series store of their
// own (Badger on disk, memory in tests, one contract), holds each node's
// latest sample in memory for `top`, `get node` and the Prometheus
// gauges, and sets the MemoryPressure and DiskPressure conditions of nodes
// from their latest samples. It also holds the hub's own Prometheus
// metrics (messages, latencies, store size, rollout progress).
package metrics

import (
	"errors"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Series keeps node samples by time. Samples expire Retention after their
// own time: they are then gone from Range and Latest, and from disk at the
// store's next compaction.
type Series interface {
	// Append stores samples; one at a time already stored for the same
	// node replaces it, so redelivered samples are not kept twice.
	// Samples already past retention are skipped.
	Append(entries []Entry) error
	// Range returns node's samples with from <= time <= to, oldest first.
	Range(node string, from, to time.Time) ([]wire.MetricSample, error)
	// Latest returns the newest sample of every node that has one.
	Latest() (map[string]wire.MetricSample, error)
	// Size is the store's size in bytes (an estimate for memory).
	Size() int64
	Close() error
}

// Entry is one node's sample.
type Entry struct {
	Node   string
	Sample wire.MetricSample
}

// ErrClosed is returned by a closed Series.
var ErrClosed = errors.New("series store is closed")

// DefaultRetention is how long samples are kept.
const DefaultRetention = 24 * time.Hour

// expiry returns how long a sample taken at t still has to live, or a
// non-positive duration when it is already past retention.
func expiry(t time.Time, retention time.Duration, now time.Time) time.Duration {
	return t.Add(retention).Sub(now)
}
