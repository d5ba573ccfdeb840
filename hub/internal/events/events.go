// Package events records Events in the hub's store: the ones agents report
// (a container exited, an image failed to pull, the node went offline) and
// the ones the hub notices itself (a node became NotReady). Events expire
// on their own after a TTL, like Kubernetes' events.
package events

import (
	"fmt"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// DefaultTTL is how long an event is kept.
const DefaultTTL = time.Hour

// Record is one event to store.
type Record struct {
	Object  api.ObjectReference
	Type    string
	Reason  string
	Message string
	Time    time.Time
	// Source names who saw it: component ("edge-agent", "hub") and node.
	Source api.EventSource
	// Key makes the event's name unique and stable, so a redelivered
	// report overwrites its own event instead of adding a copy (for agent
	// events, the report's sequence number).
	Key string
}

// Namespace is where an event about obj lives: the object's namespace, or
// "default" for cluster-scoped objects such as nodes, as in Kubernetes.
func Namespace(obj api.ObjectReference) string {
	if obj.Namespace != "" {
		return obj.Namespace
	}
	return api.DefaultNamespace
}

// Put writes r in tx, to expire after ttl.
func Put(tx store.Tx, r Record, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	at := api.NewTime(r.Time.UTC())
	ev := &api.Event{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEvent},
		ObjectMeta: api.ObjectMeta{
			Name:              fmt.Sprintf("%s.%s", r.Object.Name, r.Key),
			Namespace:         Namespace(r.Object),
			CreationTimestamp: at,
		},
		InvolvedObject: r.Object,
		Reason:         r.Reason,
		Message:        r.Message,
		Source:         r.Source,
		FirstTimestamp: at,
		LastTimestamp:  at,
		Count:          1,
		Type:           r.Type,
	}
	return tx.PutTTL(ev, ttl)
}

// HubKey returns a key for an event the hub itself records: the time in
// nanoseconds, which does not repeat within one hub.
func HubKey(at time.Time) string {
	return fmt.Sprintf("hub%x", at.UnixNano())
}
