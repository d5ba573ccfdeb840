package apiserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

func scaledDeployment(replicas int, requests string) string {
	return `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
 "spec":{"replicas":` + jsonInt(replicas) + `,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
 "spec":{"containers":[{"name":"c","image":"reg/web:1","resources":{"requests":` + requests + `}}]}}}}`
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

const webHPA = `{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":"web"},
 "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"minReplicas":1,"maxReplicas":5,
 "metrics":[{"type":"Resource","resource":{"name":"cpu","target":{"type":"Utilization","averageUtilization":50}}}]}}`

func TestScaleSubresource(t *testing.T) {
	srv, st := newServer(t)
	applyActions(t, srv, scaledDeployment(2, `{"cpu":"100m"}`))
	const path = "/apis/apps/v1/namespaces/default/deployments/web/scale"

	code, body := call(t, srv, "GET", path, "")
	var sc api.Scale
	if code != 200 || json.Unmarshal(body, &sc) != nil {
		t.Fatalf("get: %d %s", code, body)
	}
	if sc.Kind != "Scale" || sc.APIVersion != "autoscaling/v1" || sc.Name != "web" || sc.Spec.Replicas != 2 || sc.Status.Selector != "app=web" || sc.ResourceVersion == "" {
		t.Fatalf("scale = %+v", sc)
	}

	// PUT onto an older version: 409, nothing written.
	stale := `{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web","resourceVersion":"1"},"spec":{"replicas":4}}`
	if code, body := call(t, srv, "PUT", path, stale); code != http.StatusConflict {
		t.Fatalf("stale put: %d %s", code, body)
	}
	put := strings.Replace(stale, `"1"`, `"`+sc.ResourceVersion+`"`, 1)
	if code, body := call(t, srv, "PUT", path, put); code != 200 || !strings.Contains(string(body), `"replicas":4`) {
		t.Fatalf("put: %d %s", code, body)
	}
	// kubectl scale's merge patch.
	if code, body := call(t, srv, "PATCH", path, `{"spec":{"replicas":3}}`); code != 200 || !strings.Contains(string(body), `"replicas":3`) {
		t.Fatalf("patch: %d %s", code, body)
	}
	_ = st.View(func(tx store.Tx) error {
		d, err := store.Get[api.Deployment](tx, "default", "web")
		if err != nil || *d.Spec.Replicas != 3 || d.Generation != 3 {
			t.Errorf("stored deployment: replicas %v generation %d (%v)", d.Spec.Replicas, d.Generation, err)
		}
		return nil
	})

	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PATCH", path, `{"spec":{"replicas":-1}}`, 422, "spec.replicas: must be greater than or equal to 0"},
		{"PUT", path, `{"kind":"Deployment","spec":{"replicas":1}}`, 422, `kind: must be Scale, not \"Deployment\"`},
		{"PUT", path, `{"metadata":{"name":"other"},"spec":{"replicas":1}}`, 422, `metadata.name: must be \"web\"`},
		{"PUT", path, `{"spec":{"replicas":1,"paused":true}}`, 400, `unknown field \"paused\"`},
		{"GET", "/apis/apps/v1/namespaces/default/deployments/nope/scale", "", 404, `deployments.apps \"nope\" not found`},
		{"GET", "/apis/apps/v1/namespaces/default/daemonsets/web/scale", "", 404, "not found"},
		{"DELETE", path, "", 405, "not supported"},
	} {
		code, body := call(t, srv, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d and %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
}

// TestApplyChecksAutoscalerTargets: a Utilization target needs requests
// on the target, stored or applied with it; a target not there yet is
// left for the autoscaler to report.
func TestApplyChecksAutoscalerTargets(t *testing.T) {
	srv, st := newServer(t)
	// No target yet: accepted.
	if got := applyActions(t, srv, webHPA); got[0] != "HorizontalPodAutoscaler/web created" {
		t.Fatalf("got %v", got)
	}
	before := st.Version()
	// The target applied with it, without requests: both refused.
	code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(scaledDeployment(1, `{"memory":"64Mi"}`), webHPA))
	want := `items[1].spec.metrics[0].resource.target.averageUtilization: Deployment web has no cpu request in container \"c\"`
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), want) {
		t.Fatalf("apply: %d %s", code, body)
	}
	if st.Version() != before {
		t.Fatal("a refused apply wrote something")
	}
	// A stored target without requests: refused too.
	applyActions(t, srv, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}`)
	noReq := strings.Replace(scaledDeployment(1, `{}`), `"name":"web"}`, `"name":"web","namespace":"b"}`, 1)
	applyActions(t, srv, noReq)
	hpaB := strings.Replace(webHPA, `"name":"web"},`, `"name":"web","namespace":"b"},`, 1)
	code, body = call(t, srv, "POST", "/api/v1/apply", applyBody(hpaB))
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), "has no cpu request") {
		t.Fatalf("apply against a stored target: %d %s", code, body)
	}
}

// TestAutoscalerOwnsReplicas: re-applying a Deployment an autoscaler
// scales keeps the replicas the autoscaler set; the autoscaler's status
// survives its own re-apply, whose spec change moves its generation.
func TestAutoscalerOwnsReplicas(t *testing.T) {
	srv, st := newServer(t)
	applyActions(t, srv, scaledDeployment(1, `{"cpu":"100m"}`), webHPA)
	if code, body := call(t, srv, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", `{"spec":{"replicas":4}}`); code != 200 {
		t.Fatalf("scale: %d %s", code, body)
	}
	if err := st.Update(func(tx store.Tx) error {
		h, err := store.Get[api.HorizontalPodAutoscaler](tx, "default", "web")
		if err != nil {
			return err
		}
		h.Status.DesiredReplicas, h.Status.CurrentReplicas = 4, 4
		return tx.Put(h)
	}); err != nil {
		t.Fatal(err)
	}
	// A new image, the manifest still saying 1 replica.
	applyActions(t, srv, strings.Replace(scaledDeployment(1, `{"cpu":"100m"}`), "web:1", "web:2", 1),
		strings.Replace(webHPA, `"maxReplicas":5`, `"maxReplicas":6`, 1))
	_ = st.View(func(tx store.Tx) error {
		d, _ := store.Get[api.Deployment](tx, "default", "web")
		if *d.Spec.Replicas != 4 || d.Spec.Template.Spec.Containers[0].Image != "reg/web:2" {
			t.Errorf("deployment: replicas %d image %s", *d.Spec.Replicas, d.Spec.Template.Spec.Containers[0].Image)
		}
		h, _ := store.Get[api.HorizontalPodAutoscaler](tx, "default", "web")
		if h.Status.DesiredReplicas != 4 || h.Generation != 2 || h.Spec.MaxReplicas != 6 {
			t.Errorf("autoscaler: status %+v generation %d", h.Status, h.Generation)
		}
		return nil
	})
}

// FuzzScaleBody sends arbitrary bodies to the scale subresource: no panic,
// a 2xx only for a body that names no other object and asks for 0 or more
// replicas, and the Deployment stays one that validates.
func FuzzScaleBody(f *testing.F) {
	f.Add("PATCH", `{"spec":{"replicas":3}}`)
	f.Add("PUT", `{"apiVersion":"autoscaling/v1","kind":"Scale","metadata":{"name":"web"},"spec":{"replicas":0}}`)
	f.Add("PATCH", `{"spec":{"replicas":-1}}`)
	f.Add("PATCH", `{"metadata":{"resourceVersion":"x"},"spec":null}`)
	f.Add("PUT", `[1,2]`)
	st := store.NewMemory()
	defer st.Close()
	if err := st.Update(func(tx store.Tx) error {
		return tx.Put(&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace}, ObjectMeta: api.ObjectMeta{Name: "default"}})
	}); err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewServer(New(st, nil).Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/v1/apply", "application/json", strings.NewReader(applyBody(scaledDeployment(2, `{"cpu":"100m"}`))))
	if err != nil || resp.StatusCode != 200 {
		f.Fatalf("apply: %v %v", resp, err)
	}
	resp.Body.Close()
	f.Fuzz(func(t *testing.T, method, body string) {
		if method != "PUT" {
			method = "PATCH"
		}
		code, resp := call(t, srv, method, "/apis/apps/v1/namespaces/default/deployments/web/scale", body)
		if code >= 500 {
			t.Fatalf("%s %q: %d %s", method, body, code, resp)
		}
		_ = st.View(func(tx store.Tx) error {
			d, err := store.Get[api.Deployment](tx, "default", "web")
			if err != nil || d.Spec.Replicas == nil || *d.Spec.Replicas < 0 {
				t.Fatalf("after %s %q (%d): %+v, %v", method, body, code, d, err)
			}
			return nil
		})
	})
}
