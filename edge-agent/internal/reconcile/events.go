package reconcile

import (
	"fmt"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// podEvent is an event about a pod (and one of its containers) that an
// action returns instead of reporting it, so that its caller decides the
// order of what it reports: a restart reports the exit it follows before
// its own events, and after its start, off the restart's path.
type podEvent struct {
	pod       *wire.SnapshotPod
	container string
	typ       api.EventType
	reason    string
	message   string
}

func newEvent(pod *wire.SnapshotPod, container string, typ api.EventType, reason, message string) *podEvent {
	return &podEvent{pod: pod, container: container, typ: typ, reason: reason, message: message}
}

// emitAll reports events in their order; nil ones are skipped.
func (r *Reconciler) emitAll(evs ...*podEvent) {
	for _, e := range evs {
		if e != nil {
			r.emit(e.pod, e.container, e.typ, e.reason, e.message)
		}
	}
}

// emit reports an event about a pod (and one of its containers).
func (r *Reconciler) emit(pod *wire.SnapshotPod, container string, typ api.EventType, reason, message string) {
	if r.cfg.Event == nil {
		return
	}
	ref := api.ObjectReference{Kind: api.KindPod, Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	if container != "" {
		ref.FieldPath = "spec.containers{" + container + "}"
	}
	r.cfg.Event(wire.Event{Object: ref, Type: typ, Reason: reason, Message: message, Time: r.now().UTC()})
}

// emitFor reports an event about a container known only from its labels
// (its pod may no longer be desired).
func (r *Reconciler) emitFor(c Container, typ api.EventType, reason, message string) {
	if c.Labels[LabelPodUID] == "" {
		return
	}
	pod := &wire.SnapshotPod{UID: c.Labels[LabelPodUID], Name: c.Labels[LabelPodName], Namespace: c.Labels[LabelPodNamespace]}
	r.emit(pod, c.Labels[LabelContainer], typ, reason, message)
}

// exitedEvent is the report of the exit of container c.
func exitedEvent(pod *wire.SnapshotPod, c Container) *podEvent {
	name := c.Labels[LabelContainer]
	typ := api.EventNormal
	if c.ExitCode != 0 {
		typ = api.EventWarning
	}
	return newEvent(pod, name, typ, "Exited", fmt.Sprintf("Container %s exited with code %d", name, c.ExitCode))
}
