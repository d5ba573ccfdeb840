package apiserver

// Discovery: what a Kubernetes client asks first. /version, /api,
// /api/v1, /apis, /apis/{group} and /apis/{group}/{version} say which
// resources the hub serves, with their kind, scope, verbs, short names,
// categories and subresources, in the plain form (APIVersions,
// APIGroupList, APIResourceList) and in the aggregated one
// (apidiscovery.k8s.io v2 and v2beta1) that kubectl and client-go ask for
// first. Everything is derived from the kinds table (api.Kinds) and the
// few tables below, so that a kind added there is discovered without
// more.

import (
	"cmp"
	"encoding/json"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"

	"github.com/munnerz/goautoneg"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// KubernetesMinor is the Kubernetes release whose API the hub serves and
// whose kubectl and client-go it is tested with (1.32): /version says so,
// so that kubectl's version-skew check is about the API, not the hub's
// own version (`hub version`).
const KubernetesMinor = "32"

// servedResource is one resource as discovery lists it.
type servedResource struct {
	group, version string
	resource       string
	singular       string
	kind           string
	namespaced     bool
	verbs          []string
	shortNames     []string
	categories     []string
	subresources   []servedSubresource
	// typ is the Go type of the resource's objects (openapi.go).
	typ reflect.Type
}

// servedSubresource is a subresource of a resource.
type servedSubresource struct {
	name  string
	kind  string // in the resource's group and version
	verbs []string
}

// subresources are the subresources the API serves besides a resource's
// own paths, by resource. A test asks each of them: what is listed here
// answers.
var subresources = map[string][]servedSubresource{
	// GET .../pods/{name}/log (metrics.go).
	"pods": {{name: "log", kind: api.KindPod, verbs: []string{"get"}}},
	// GET /api/v1/nodes/{name}/metrics: a node's kept samples (Flotilla's).
	"nodes": {{name: "metrics", kind: "NodeMetricsSeries", verbs: []string{"get"}}},
}

// categoryAll is Kubernetes' "all" category (kubectl get all): the
// workload and Service resources, by resource name, served or not yet.
var categoryAll = map[string]bool{
	"pods": true, "services": true, "daemonsets": true, "deployments": true, "replicasets": true,
	"statefulsets": true, "jobs": true, "cronjobs": true, "replicationcontrollers": true,
}

// metricsResources are the metrics API's (metrics.go), which are not
// stored kinds.
var metricsResources = []servedResource{
	{resource: "nodes", kind: api.KindNodeMetrics, verbs: []string{"get", "list"}, typ: reflect.TypeFor[api.NodeMetrics]()},
	{resource: "pods", kind: api.KindPodMetrics, namespaced: true, verbs: []string{"get", "list"}, typ: reflect.TypeFor[api.PodMetrics]()},
}

// verbsOf are the verbs the API serves for a kind: every kind is read and
// watched, and deleted by name; writable ones are patched too.
func verbsOf(k api.KindInfo) []string {
	verbs := []string{"delete", "get", "list", "watch"}
	if k.Writable {
		verbs = append(verbs, "patch")
	}
	slices.Sort(verbs)
	return verbs
}

// splitAPIVersion splits "apps/v1" into "apps" and "v1", "v1" into ""
// and "v1".
func splitAPIVersion(apiVersion string) (group, version string) {
	if g, v, ok := strings.Cut(apiVersion, "/"); ok {
		return g, v
	}
	return "", apiVersion
}

// groupVersion is a group's version and the resources it serves.
type groupVersion struct {
	group, version string
	resources      []servedResource
}

func (gv groupVersion) String() string {
	if gv.group == "" {
		return gv.version
	}
	return gv.group + "/" + gv.version
}

// discovery is what the discovery endpoints serve, built once.
type discovery struct {
	// versions are the group versions, core first, in the order of the
	// kinds table.
	versions []groupVersion
}

// newDiscovery lists the kinds of the table, the metrics API and extra
// (the views).
func newDiscovery(extra ...servedResource) *discovery {
	d := &discovery{}
	add := func(r servedResource) {
		for i := range d.versions {
			if d.versions[i].group == r.group && d.versions[i].version == r.version {
				d.versions[i].resources = append(d.versions[i].resources, r)
				return
			}
		}
		d.versions = append(d.versions, groupVersion{group: r.group, version: r.version, resources: []servedResource{r}})
	}
	for _, k := range api.Kinds() {
		group, ver := splitAPIVersion(k.APIVersion)
		add(servedResource{
			group: group, version: ver, resource: k.Resource, singular: k.Singular, kind: k.Kind,
			namespaced: k.Namespaced, verbs: verbsOf(k), shortNames: k.ShortNames,
			categories: categoriesOf(k.Resource), subresources: subresources[k.Resource],
			typ: reflect.TypeOf(k.New()).Elem(),
		})
	}
	group, ver := splitAPIVersion(api.MetricsAPIVersion)
	for _, r := range metricsResources {
		r.group, r.version = group, ver
		add(r)
	}
	for _, r := range extra {
		add(r)
	}
	// The core group first, as /api is apart from /apis; the others in
	// the order the table first names them.
	slices.SortStableFunc(d.versions, func(a, b groupVersion) int {
		return cmp.Compare(min(len(a.group), 1), min(len(b.group), 1))
	})
	return d
}

func categoriesOf(resource string) []string {
	if categoryAll[resource] {
		return []string{"all"}
	}
	return nil
}

// find returns the group version served at group/version.
func (d *discovery) find(group, version string) (groupVersion, bool) {
	for _, gv := range d.versions {
		if gv.group == group && gv.version == version {
			return gv, true
		}
	}
	return groupVersion{}, false
}

// groups returns the named groups with their versions, in order.
func (d *discovery) groups() []metav1.APIGroup {
	var out []metav1.APIGroup
	for _, gv := range d.versions {
		if gv.group == "" {
			continue
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.version}
		if i := slices.IndexFunc(out, func(g metav1.APIGroup) bool { return g.Name == gv.group }); i >= 0 {
			out[i].Versions = append(out[i].Versions, v)
			continue
		}
		out = append(out, metav1.APIGroup{Name: gv.group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v})
	}
	return out
}

// resourceList is the APIResourceList of one group version: each
// resource, then each subresource as "resource/subresource".
func (gv groupVersion) resourceList() *metav1.APIResourceList {
	list := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv.String(),
		APIResources: []metav1.APIResource{},
	}
	for _, r := range gv.resources {
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.resource, SingularName: r.singular, Namespaced: r.namespaced, Kind: r.kind,
			Verbs: r.verbs, ShortNames: r.shortNames, Categories: r.categories,
		})
		for _, sub := range r.subresources {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.resource + "/" + sub.name, Namespaced: r.namespaced, Kind: sub.kind, Verbs: sub.verbs,
			})
		}
	}
	return list
}

// aggregated is the apidiscovery.k8s.io form of the group versions that
// keep (the core group for /api, the others for /apis).
func (d *discovery) aggregated(apiVersion string, keep func(groupVersion) bool) *apidiscoveryv2.APIGroupDiscoveryList {
	list := &apidiscoveryv2.APIGroupDiscoveryList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: apiVersion},
		Items:    []apidiscoveryv2.APIGroupDiscovery{},
	}
	for _, gv := range d.versions {
		if !keep(gv) {
			continue
		}
		version := apidiscoveryv2.APIVersionDiscovery{Version: gv.version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, r := range gv.resources {
			scope := apidiscoveryv2.ScopeCluster
			if r.namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			rd := apidiscoveryv2.APIResourceDiscovery{
				Resource:         r.resource,
				ResponseKind:     &metav1.GroupVersionKind{Group: gv.group, Version: gv.version, Kind: r.kind},
				Scope:            scope,
				SingularResource: r.singular,
				Verbs:            r.verbs,
				ShortNames:       r.shortNames,
				Categories:       r.categories,
			}
			for _, sub := range r.subresources {
				rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
					Subresource:  sub.name,
					ResponseKind: &metav1.GroupVersionKind{Group: gv.group, Version: gv.version, Kind: sub.kind},
					Verbs:        sub.verbs,
				})
			}
			version.Resources = append(version.Resources, rd)
		}
		if i := slices.IndexFunc(list.Items, func(g apidiscoveryv2.APIGroupDiscovery) bool { return g.Name == gv.group }); i >= 0 {
			list.Items[i].Versions = append(list.Items[i].Versions, version)
			continue
		}
		list.Items = append(list.Items, apidiscoveryv2.APIGroupDiscovery{
			ObjectMeta: metav1.ObjectMeta{Name: gv.group},
			Versions:   []apidiscoveryv2.APIVersionDiscovery{version},
		})
	}
	return list
}

// registerDiscovery adds the discovery routes.
func (s *Server) registerDiscovery(mux *http.ServeMux) {
	d := s.discovery
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, version.Info{
			Major: "1", Minor: KubernetesMinor, GitVersion: "v1." + KubernetesMinor + ".0+flotilla",
			GoVersion: runtime.Version(), Compiler: runtime.Compiler, Platform: runtime.GOOS + "/" + runtime.GOARCH,
		})
	})
	mux.HandleFunc("GET /api", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return d.serveRoot(w, r, func(gv groupVersion) bool { return gv.group == "" }, func() any {
			versions := &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}}
			for _, gv := range d.versions {
				if gv.group == "" {
					versions.Versions = append(versions.Versions, gv.version)
				}
			}
			versions.ServerAddressByClientCIDRs = []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}
			return versions
		})
	}))
	mux.HandleFunc("GET /apis", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return d.serveRoot(w, r, func(gv groupVersion) bool { return gv.group != "" }, func() any {
			return &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: d.groups()}
		})
	}))
	mux.HandleFunc("GET /apis/{group}", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		for _, g := range d.groups() {
			if g.Name == r.PathValue("group") {
				g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
				writeJSON(w, http.StatusOK, g)
				return nil
			}
		}
		return errorf(http.StatusNotFound, api.ReasonNotFound, "the server could not find the requested resource (API group %q)", r.PathValue("group"))
	}))
	mux.HandleFunc("GET /api/v1", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return d.serveResources(w, "", "v1")
	}))
	mux.HandleFunc("GET /apis/{group}/{version}", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return d.serveResources(w, r.PathValue("group"), r.PathValue("version"))
	}))
}

func (d *discovery) serveResources(w http.ResponseWriter, group, version string) error {
	gv, ok := d.find(group, version)
	if !ok {
		return errorf(http.StatusNotFound, api.ReasonNotFound, "the server could not find the requested resource (API version %s)", groupVersion{group: group, version: version})
	}
	writeJSON(w, http.StatusOK, gv.resourceList())
	return nil
}

// Aggregated discovery's media types, as clients ask for them and as the
// answer names them.
const (
	discoveryGroup      = "apidiscovery.k8s.io"
	discoveryListKind   = "APIGroupDiscoveryList"
	mediaTypeDiscoveryV = "application/json;g=" + discoveryGroup + ";v=%s;as=" + discoveryListKind
)

// serveRoot answers /api or /apis: in the aggregated form when the
// client accepts it (v2, or v2beta1, whose JSON is the same), else in the
// plain form plain returns, as the Kubernetes API server does.
func (d *discovery) serveRoot(w http.ResponseWriter, r *http.Request, keep func(groupVersion) bool, plain func() any) error {
	switch v, err := negotiateDiscovery(r.Header.Get("Accept")); {
	case err != nil:
		return err
	case v != "":
		w.Header().Set("Vary", "Accept")
		w.Header().Set("Content-Type", strings.Replace(mediaTypeDiscoveryV, "%s", v, 1))
		writeJSONBody(w, http.StatusOK, d.aggregated(discoveryGroup+"/"+v, keep))
	default:
		w.Header().Set("Vary", "Accept")
		writeJSON(w, http.StatusOK, plain())
	}
	return nil
}

// negotiateDiscovery picks the answer to Accept: "v2" or "v2beta1" for
// aggregated discovery, "" for the plain form, or a 406 when nothing
// offered is JSON.
func negotiateDiscovery(accept string) (string, error) {
	if accept == "" {
		return "", nil
	}
	for _, c := range goautoneg.ParseAccept(accept) {
		if as := c.Params["as"]; as != "" {
			if c.Type == "application" && c.SubType == "json" && as == discoveryListKind && c.Params["g"] == discoveryGroup &&
				(c.Params["v"] == "v2" || c.Params["v"] == "v2beta1") {
				return c.Params["v"], nil
			}
			continue
		}
		if acceptsJSON(c) {
			return "", nil
		}
	}
	return "", notAcceptable(accept)
}

// acceptsJSON reports whether an Accept clause without conversion
// parameters takes plain JSON.
func acceptsJSON(c goautoneg.Accept) bool {
	return (c.Type == "application" || c.Type == "*") && (c.SubType == "json" || c.SubType == "*")
}

func notAcceptable(accept string) *apiError {
	return errorf(http.StatusNotAcceptable, "NotAcceptable", "only the following media types are accepted: application/json (asked for %q)", accept)
}

// writeJSONBody writes v as JSON with the Content-Type already set.
func writeJSONBody(w http.ResponseWriter, code int, v any) {
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
