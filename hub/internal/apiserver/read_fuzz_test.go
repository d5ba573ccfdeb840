package apiserver

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// FuzzListQuery: whatever a client sends as a list's query and Accept
// header, the API neither panics nor fails but with a 400 or a 406.
func FuzzListQuery(f *testing.F) {
	for _, seed := range []struct{ query, accept string }{
		{"labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn1&limit=10", "application/json"},
		{"continue=eyJydiI6MTAsIm5zIjoiZGVmYXVsdCIsIm5hbWUiOiJ3ZWIifQ&limit=1", "application/json;as=Table;v=v1;g=meta.k8s.io"},
		{"watch=1&resourceVersion=5&allowWatchBookmarks=true&timeoutSeconds=3", "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"},
		{"fieldSelector=status.phase!%3DRunning,metadata.name%3D%3Da&resourceVersionMatch=Exact&resourceVersion=3", "*/*"},
		{"includeObject=Object&limit=-1", "application/json;q=0.5,application/yaml"},
	} {
		f.Add(seed.query, seed.accept)
	}
	pod, _ := api.LookupKind(api.KindPod)
	f.Fuzz(func(t *testing.T, query, accept string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		if _, err := parseListQuery(q, pod); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != http.StatusBadRequest {
				t.Fatalf("%q: %v", query, err)
			}
		}
		r := httptest.NewRequest(http.MethodGet, "/api/v1/pods?"+q.Encode(), nil)
		r.Header.Set("Accept", accept)
		if _, err := negotiate(r); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || (ae.code != http.StatusNotAcceptable && ae.code != http.StatusBadRequest) {
				t.Fatalf("Accept %q: %v", accept, err)
			}
		}
		if _, err := negotiateDiscovery(accept); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code != http.StatusNotAcceptable {
				t.Fatalf("discovery Accept %q: %v", accept, err)
			}
		}
	})
}
