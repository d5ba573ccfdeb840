package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
)

// The scale subresource and what apply checks of autoscalers.
//
// GET, PUT and PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}/scale
// read and write a scalable object's spec.replicas through an
// autoscaling/v1 Scale, as Kubernetes' scale subresource does: what
// `kubectl scale` and the autoscaler's clients use.

// scalePath parses a scale subresource's path: a namespaced object's path
// with "/scale" after it, of a kind with a scale subresource.
func scalePath(path string) (target, bool) {
	base, ok := strings.CutSuffix(path, "/scale")
	if !ok {
		return target{}, false
	}
	t, err := parsePath(base)
	if err != nil || t.name == "" || t.namespace == "" || !api.CanScale(t.kind.Kind) {
		return target{}, false
	}
	return t, true
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request, t target) {
	var err error
	switch r.Method {
	case http.MethodGet:
		err = s.getScale(w, t)
	case http.MethodPut, http.MethodPatch:
		err = s.writeScale(w, r, t)
	default:
		err = errorf(http.StatusMethodNotAllowed, api.ReasonMethodNotAllowed, "%s is not supported on %s", r.Method, r.URL.Path)
	}
	if err != nil {
		s.writeError(w, err)
	}
}

// scaleOf is the Scale of a Deployment.
func scaleOf(d *api.Deployment) api.Scale {
	sc := api.Scale{
		TypeMeta: api.TypeMeta{APIVersion: api.ScaleAPIVersion, Kind: api.KindScale},
		ObjectMeta: api.ObjectMeta{Name: d.Name, Namespace: d.Namespace, UID: d.UID,
			ResourceVersion: d.ResourceVersion, CreationTimestamp: d.CreationTimestamp},
		Status: api.ScaleStatus{Replicas: d.Status.Replicas},
	}
	if d.Spec.Replicas != nil {
		sc.Spec.Replicas = *d.Spec.Replicas
	}
	if d.Spec.Selector != nil {
		if sel, err := d.Spec.Selector.AsSelector(); err == nil {
			sc.Status.Selector = sel.String()
		}
	}
	return sc
}

func (s *Server) readScaled(tx store.Tx, t target) (*api.Deployment, error) {
	d, err := store.Get[api.Deployment](tx, t.namespace, t.name)
	if store.IsNotFound(err) {
		return nil, notFound(t.kind, t.name)
	}
	return d, err
}

func (s *Server) getScale(w http.ResponseWriter, t target) error {
	var sc api.Scale
	err := s.store.View(func(tx store.Tx) error {
		d, err := s.readScaled(tx, t)
		if err != nil {
			return err
		}
		sc = scaleOf(d)
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sc)
	return nil
}

// writeScale sets spec.replicas from a Scale (PUT) or a merge patch of
// one (PATCH). A Scale that names a resourceVersion is written only onto
// that version (409 otherwise), as in Kubernetes.
func (s *Server) writeScale(w http.ResponseWriter, r *http.Request, t target) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var result api.Scale
	err = s.store.Update(func(tx store.Tx) error {
		d, err := s.readScaled(tx, t)
		if err != nil {
			return err
		}
		cur := scaleOf(d)
		doc := body
		if r.Method == http.MethodPatch {
			var patch, base any
			if err := json.Unmarshal(body, &patch); err != nil {
				return errorf(http.StatusBadRequest, api.ReasonBadRequest, "patch is not JSON: %v", err)
			}
			raw, _ := json.Marshal(cur)
			if err := json.Unmarshal(raw, &base); err != nil {
				return err
			}
			// The patch's resourceVersion, if any, is a precondition;
			// the current one is not.
			if m, ok := base.(map[string]any)["metadata"].(map[string]any); ok {
				delete(m, "resourceVersion")
			}
			if doc, err = json.Marshal(MergePatch(base, patch)); err != nil {
				return err
			}
		}
		in, err := decodeScale(doc, t)
		if err != nil {
			return err
		}
		if rv := in.ResourceVersion; rv != "" && rv != d.ResourceVersion {
			return errorf(http.StatusConflict, api.ReasonConflict,
				"Operation cannot be fulfilled on %s %q: the object has been modified; please apply your changes to the latest version and try again", qualifiedResource(t.kind), t.name)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != in.Spec.Replicas {
			n := in.Spec.Replicas
			d.Spec.Replicas = &n
			d.Generation++
			if err := tx.Put(d); err != nil {
				return err
			}
		}
		result = scaleOf(d)
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, result)
	return nil
}

// decodeScale reads a Scale strictly: it must name the object of the
// path, and ask for no fewer than 0 replicas.
func decodeScale(doc []byte, t target) (api.Scale, error) {
	var in api.Scale
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, errorf(http.StatusBadRequest, api.ReasonBadRequest, "decode Scale: %v", err)
	}
	var causes []api.StatusCause
	if in.Kind != "" && in.Kind != api.KindScale {
		causes = append(causes, api.StatusCause{Field: "kind", Message: fmt.Sprintf("must be %s, not %q", api.KindScale, in.Kind)})
	}
	if in.APIVersion != "" && in.APIVersion != api.ScaleAPIVersion {
		causes = append(causes, api.StatusCause{Field: "apiVersion", Message: fmt.Sprintf("must be %s, not %q", api.ScaleAPIVersion, in.APIVersion)})
	}
	if in.Name != "" && in.Name != t.name {
		causes = append(causes, api.StatusCause{Field: "metadata.name", Message: fmt.Sprintf("must be %q, the name in the path", t.name)})
	}
	if in.Namespace != "" && in.Namespace != t.namespace {
		causes = append(causes, api.StatusCause{Field: "metadata.namespace", Message: fmt.Sprintf("must be %q, the namespace in the path", t.namespace)})
	}
	if in.Spec.Replicas < 0 {
		causes = append(causes, api.StatusCause{Field: "spec.replicas", Message: "must be greater than or equal to 0"})
	}
	if len(causes) > 0 {
		msgs := make([]string, len(causes))
		for i, c := range causes {
			msgs[i] = c.Field + ": " + c.Message
		}
		return in, &apiError{code: http.StatusUnprocessableEntity, reason: api.ReasonInvalid,
			msg:    fmt.Sprintf("Scale %q is invalid: %s", t.name, strings.Join(msgs, ", ")),
			causes: causes}
	}
	return in, nil
}

// checkScaleTargets checks each autoscaler the apply writes against its
// target, the one written by the same apply or else the stored one:
// every Utilization metric needs the target's containers to request its
// resource (manifest.ValidateScaleTarget). An autoscaler whose target
// does not exist yet is accepted; the autoscaler reports the problem as a
// condition once the target appears, as Kubernetes' does.
func checkScaleTargets(tx store.Tx, docs []manifest.Document) (manifest.ErrorList, error) {
	written := map[store.Key]*api.PodTemplateSpec{}
	for _, d := range docs {
		if dep, ok := d.Object.(*api.Deployment); ok {
			written[store.KeyOf(dep)] = &dep.Spec.Template
		}
	}
	var out manifest.ErrorList
	for _, d := range docs {
		h, ok := d.Object.(*api.HorizontalPodAutoscaler)
		if !ok || h.Spec.ScaleTargetRef.Kind != api.KindDeployment {
			continue
		}
		key := store.Key{Kind: api.KindDeployment, Namespace: h.Namespace, Name: h.Spec.ScaleTargetRef.Name}
		tmpl, ok := written[key]
		if !ok {
			dep, err := store.Get[api.Deployment](tx, key.Namespace, key.Name)
			if store.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read the target of autoscaler %s/%s: %w", h.Namespace, h.Name, err)
			}
			tmpl = &dep.Spec.Template
		}
		var problems manifest.ErrorList
		if errors.As(manifest.ValidateScaleTarget(h, api.KindDeployment, tmpl), &problems) {
			for _, p := range problems {
				out = append(out, fieldErrors{{p.Field, p.Msg}}.located(d)...)
			}
		}
	}
	return out, nil
}

// keepScaledReplicas keeps, on a Deployment an apply rewrites, the
// replicas of the stored one while an autoscaler scales it: the
// autoscaler owns spec.replicas then, and a manifest that leaves
// replicas out (defaulted to 1) or still carries the count it was first
// written with must not undo its work.
func keepScaledReplicas(tx store.Tx, existing, incoming api.Object) error {
	in, ok := incoming.(*api.Deployment)
	if !ok {
		return nil
	}
	ex := existing.(*api.Deployment)
	hpas, err := store.ListShared[api.HorizontalPodAutoscaler](tx, in.Namespace)
	if err != nil {
		return fmt.Errorf("read autoscalers: %w", err)
	}
	for _, h := range hpas {
		if ref := h.Spec.ScaleTargetRef; ref.Kind == api.KindDeployment && ref.Name == in.Name {
			in.Spec.Replicas = ex.Spec.Replicas
			return nil
		}
	}
	return nil
}
