// Package events records Events in the hub's store: the ones agents report
// (a container exited, an image failed to pull, the node went offline) and
// the ones the hub notices itself (a node became NotReady). Repeats of one
// event (the same object, type, reason, message and source) are kept as
// one Event with a count and a first and last time, as Kubernetes'
// event correlator keeps them. Events expire on their own a TTL after they
// last happened.
package events

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// DefaultTTL is how long an event is kept after it last happened.
const DefaultTTL = time.Hour

// AnnotationSeq holds, on an agent's event, the sequence number of the
// newest report counted in it: a redelivered report (numbered no higher)
// is not counted twice.
const AnnotationSeq = "flotilla.io/seq"

// Record is one event to store.
type Record struct {
	Object  api.ObjectReference
	Type    api.EventType
	Reason  string
	Message string
	Time    time.Time
	// Source names who saw it: component ("edge-agent", "hub") and node.
	Source api.EventSource
	// Seq is the agent's sequence number of the report (0 for the hub's
	// own events). An agent numbers its reports in order, so one numbered
	// no higher than the last counted is a redelivery.
	Seq uint64
}

// Namespace is where an event about obj lives: the object's namespace, or
// "default" for cluster-scoped objects such as nodes, as in Kubernetes.
func Namespace(obj api.ObjectReference) string {
	if obj.Namespace != "" {
		return obj.Namespace
	}
	return api.DefaultNamespace
}

// Name is the name of the Event that repeats of r are counted in.
func Name(r Record) string {
	h := sha256.New()
	for _, s := range []string{r.Object.Kind, r.Object.Namespace, r.Object.Name, r.Object.UID, r.Object.FieldPath,
		string(r.Type), r.Reason, r.Message, r.Source.Component, r.Source.Host} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return r.Object.Name + "." + hex.EncodeToString(h.Sum(nil))[:16]
}

// Put records r in tx, to expire ttl after it happened: as a new Event,
// or as one more occurrence of the Event it repeats.
func Put(tx store.Tx, r Record, ttl time.Duration) error {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	at := api.NewTime(r.Time.UTC())
	name, ns := Name(r), Namespace(r.Object)
	ev, err := store.Get[api.Event](tx, ns, name)
	switch {
	case store.IsNotFound(err):
		ev = &api.Event{
			TypeMeta:       api.TypeMeta{APIVersion: "v1", Kind: api.KindEvent},
			ObjectMeta:     api.ObjectMeta{Name: name, Namespace: ns, CreationTimestamp: at},
			InvolvedObject: r.Object,
			Reason:         r.Reason,
			Message:        r.Message,
			Source:         r.Source,
			FirstTimestamp: at,
			LastTimestamp:  at,
			Count:          1,
			Type:           r.Type,
		}
	case err != nil:
		return fmt.Errorf("read event %s/%s: %w", ns, name, err)
	default:
		if r.Seq > 0 {
			if last, err := strconv.ParseUint(ev.Annotations[AnnotationSeq], 10, 64); err == nil && r.Seq <= last {
				return nil // counted already: the report was delivered again
			}
		}
		ev.Count++
		if at.After(ev.LastTimestamp.Time) {
			ev.LastTimestamp = at
		}
		if at.Before(ev.FirstTimestamp.Time) {
			ev.FirstTimestamp = at
		}
	}
	if r.Seq > 0 {
		ev.Annotations = map[string]string{AnnotationSeq: strconv.FormatUint(r.Seq, 10)}
	}
	// Written again at each occurrence: the TTL counts from the last.
	return tx.PutTTL(ev, ttl)
}
