package apiserver

import (
	"encoding/json"
	"fmt"

	"github.com/flotilla-edge/flotilla/hub/internal/podsecurity"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Pod Security admission at write time. A Pod, DaemonSet or Deployment
// whose pods break the Pod Security Standard their namespace enforces
// (its pod-security.kubernetes.io/enforce label) is refused, with one
// problem per violation at its field path, in the transaction that would
// have written it: nothing is stored. An update that leaves the pod spec
// as it was is let through, as Kubernetes lets through the updates of a
// pod that do not touch its spec, so that labelling a namespace does not
// lock its existing workloads. A Namespace whose pod-security labels have
// values Kubernetes refuses is refused too.

// admitPodSecurity checks obj, about to be written over existing (nil
// when it is new), and returns fieldErrors, or a store error.
func admitPodSecurity(tx store.Tx, existing, obj api.Object) error {
	if ns, ok := obj.(*api.Namespace); ok {
		var fe fieldErrors
		for _, p := range podsecurity.ValidateLabels(ns.Labels) {
			fe = append(fe, fieldError{field: "metadata.labels[" + p.Label + "]", msg: p.Msg})
		}
		if len(fe) > 0 {
			return fe
		}
		return nil
	}
	spec := podsecurity.PodSpecOf(obj)
	if spec == nil {
		return nil
	}
	if existing != nil {
		if old := podsecurity.PodSpecOf(existing); old != nil && api.HashPodSpec(old) == api.HashPodSpec(spec) {
			return nil
		}
	}
	name := obj.GetObjectMeta().Namespace
	rec, err := tx.Get(store.Key{Kind: api.KindNamespace, Name: name})
	if store.IsNotFound(err) {
		return nil // the caller refuses a write to a namespace that is not there
	}
	if err != nil {
		return err
	}
	var ns api.Namespace
	if err := json.Unmarshal(rec.Value, &ns); err != nil {
		return fmt.Errorf("decode namespace %s: %w", name, err)
	}
	level := podsecurity.Enforced(ns.Labels)
	var fe fieldErrors
	for _, v := range podsecurity.CheckObject(level, obj) {
		fe = append(fe, fieldError{field: v.Field, msg: v.Message(level)})
	}
	if len(fe) > 0 {
		return fe
	}
	return nil
}
