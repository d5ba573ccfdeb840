package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// mergeForWrite builds the object to store when a user writes incoming over
// existing: the user owns labels, annotations and spec; the hub owns uid,
// creation time, owner references, generation and status. The generation
// moves when the spec changes. It reports whether anything changed.
func mergeForWrite(existing, incoming api.Object) (api.Object, bool, error) {
	em, im := existing.GetObjectMeta(), incoming.GetObjectMeta()
	im.UID = em.UID
	im.CreationTimestamp = em.CreationTimestamp
	im.OwnerReferences = em.OwnerReferences
	im.ResourceVersion = em.ResourceVersion
	im.Generation = em.Generation

	switch in := incoming.(type) {
	case *api.DaemonSet:
		ex := existing.(*api.DaemonSet)
		if !reflect.DeepEqual(ex.Spec.Selector, in.Spec.Selector) {
			return nil, false, &apiError{code: http.StatusUnprocessableEntity, reason: api.ReasonInvalid,
				msg:    fmt.Sprintf("daemonsets.apps %q: spec.selector: field is immutable", in.Name),
				causes: []api.StatusCause{{Field: "spec.selector", Message: "field is immutable"}}}
		}
		in.Status = ex.Status
		if !jsonEqual(ex.Spec, in.Spec) {
			im.Generation++
		}
	case *api.Deployment:
		ex := existing.(*api.Deployment)
		if !reflect.DeepEqual(ex.Spec.Selector, in.Spec.Selector) {
			return nil, false, &apiError{code: http.StatusUnprocessableEntity, reason: api.ReasonInvalid,
				msg:    fmt.Sprintf("deployments.apps %q: spec.selector: field is immutable", in.Name),
				causes: []api.StatusCause{{Field: "spec.selector", Message: "field is immutable"}}}
		}
		in.Status = ex.Status
		if !jsonEqual(ex.Spec, in.Spec) {
			im.Generation++
		}
	case *api.Node:
		ex := existing.(*api.Node)
		in.Status = ex.Status
		if !jsonEqual(ex.Spec, in.Spec) {
			im.Generation++
		}
	case *api.Namespace:
		in.Status = existing.(*api.Namespace).Status
	case *api.Service:
		ex := existing.(*api.Service)
		in.Status = ex.Status
		if !jsonEqual(ex.Spec, in.Spec) {
			im.Generation++
		}
	case *api.Ingress:
		ex := existing.(*api.Ingress)
		in.Status = ex.Status
		if !jsonEqual(ex.Spec, in.Spec) {
			im.Generation++
		}
	case *api.HorizontalPodAutoscaler:
		ex := existing.(*api.HorizontalPodAutoscaler)
		in.Status = ex.Status
		if !jsonEqual(ex.Spec, in.Spec) {
			im.Generation++
		}
	}
	return incoming, !jsonEqual(existing, incoming), nil
}

// keepAgentFacts keeps, on a node written by an apply, the labels and
// annotations the agent set that the manifest does not mention: applying a
// Node manifest adds to what the board announced rather than erasing it.
func keepAgentFacts(existing, incoming api.Object) {
	if incoming.GetTypeMeta().Kind != api.KindNode {
		return
	}
	em, im := existing.GetObjectMeta(), incoming.GetObjectMeta()
	im.Labels = overlay(em.Labels, im.Labels)
	im.Annotations = overlay(em.Annotations, im.Annotations)
}

func overlay(base, top map[string]string) map[string]string {
	if len(base) == 0 && len(top) == 0 {
		return top
	}
	out := make(map[string]string, len(base)+len(top))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range top {
		out[k] = v
	}
	return out
}

func jsonEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// MergePatch applies an RFC 7386 JSON merge patch to doc: objects merge
// recursively, null deletes a member, anything else replaces.
func MergePatch(doc, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	d, ok := doc.(map[string]any)
	if !ok {
		d = map[string]any{}
	}
	out := make(map[string]any, len(d))
	for k, v := range d {
		out[k] = v
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
			continue
		}
		out[k] = MergePatch(out[k], v)
	}
	return out
}
