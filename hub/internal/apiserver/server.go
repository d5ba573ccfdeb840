//go:generate go run ./internal/apidocgen -src ../../../pkg/api -out zz_generated_apidoc.go

// Package apiserver is the hub's HTTP API: JSON, resource-shaped paths in
// Kubernetes' style (/api/v1/namespaces/{ns}/pods/{name},
// /apis/apps/v1/namespaces/{ns}/daemonsets), an atomic multi-object apply,
// merge-patch and delete. It validates every write with the same code the
// CLI uses, and talks only to the store. docs/api.md describes it.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/desired"
	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = manifest.MaxSize + 1<<20

// Server serves the API.
type Server struct {
	store store.Store
	log   *slog.Logger
	now   func() time.Time
	tel   Telemetry
	// network is the address plan Services and nodes get addresses from
	// (network.go); rand picks where allocations start looking.
	network ipam.Config
	rand    ipam.Rand
	// discovery is what /api and /apis list (discovery.go).
	discovery *discovery
	// views are the read-only resources derived from stored ones
	// (views.go).
	views []view
	// watches serves ?watch=1 (watchcache.go, watch.go); Run runs it.
	watches *watchCache
	// bookmarkInterval is how often a watcher that asked for bookmarks
	// gets one.
	bookmarkInterval time.Duration
}

// New returns a Server.
func New(s store.Store, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	log := logger.With("component", "apiserver")
	views := newViews()
	extra := make([]servedResource, len(views))
	for i, v := range views {
		extra[i] = v.servedResource
	}
	return &Server{store: s, log: log, now: time.Now,
		network: ipam.DefaultConfig(), rand: ipam.DefaultRand, discovery: newDiscovery(extra...), views: views,
		watches: newWatchCache(s, log, DefaultWatchCacheSize), bookmarkInterval: time.Minute}
}

// Run keeps the watch cache that ?watch=1 is served from until ctx
// ends; watches wait for it to start, and end when it does.
func (s *Server) Run(ctx context.Context) error { return s.watches.Run(ctx) }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /api/v1/apply", s.apply)
	mux.HandleFunc("/api/v1/", s.resource)
	mux.HandleFunc("/apis/", s.resource)
	s.registerTelemetry(mux)
	s.registerDiscovery(mux)
	s.registerOpenAPI(mux)
	s.registerViews(mux)
	return mux
}

// ReasonInsufficientStorage is the reason of a 507: the hub's disk has no
// room for the write.
const ReasonInsufficientStorage = "InsufficientStorage"

// apiError is an error with its HTTP status and Kubernetes reason.
type apiError struct {
	code   int
	reason string
	msg    string
	causes []api.StatusCause
}

func (e *apiError) Error() string { return e.msg }

func errorf(code int, reason, format string, args ...any) *apiError {
	return &apiError{code: code, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func notFound(k api.KindInfo, name string) *apiError {
	return errorf(http.StatusNotFound, api.ReasonNotFound, "%s %q not found", qualifiedResource(k), name)
}

// qualifiedResource is the resource name kubectl prints: "daemonsets.apps".
func qualifiedResource(k api.KindInfo) string {
	if group, _, ok := strings.Cut(k.APIVersion, "/"); ok {
		return k.Resource + "." + group
	}
	return k.Resource
}

// invalid turns a manifest error list into a 422 with one cause per problem.
func invalid(err error) *apiError {
	e := &apiError{code: http.StatusUnprocessableEntity, reason: api.ReasonInvalid, msg: err.Error()}
	var list manifest.ErrorList
	if errors.As(err, &list) {
		for _, m := range list {
			e.causes = append(e.causes, api.StatusCause{Field: m.Field, Message: m.Error()})
		}
	}
	return e
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	var full *diskguard.FullError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &full):
		// The hub keeps serving reads; this write waits for room.
		ae = errorf(http.StatusInsufficientStorage, ReasonInsufficientStorage, "hub store: %v", full)
	default:
		s.log.Error("request failed", "err", err)
		ae = errorf(http.StatusInternalServerError, api.ReasonInternalError, "%v", err)
	}
	st := api.Status{
		TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   api.StatusFailure, Message: ae.msg, Reason: ae.reason, Code: ae.code,
	}
	if len(ae.causes) > 0 {
		st.Details = &api.StatusDetails{Causes: ae.causes}
	}
	writeJSON(w, ae.code, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// target is what a resource path addresses.
type target struct {
	kind      api.KindInfo
	namespace string // "" with a namespaced kind: all namespaces
	name      string
}

// parsePath understands /api/v1/{resource}[/{name}],
// /api/v1/namespaces/{ns}/{resource}[/{name}] and the same under
// /apis/{group}/{version}/.
func parsePath(path string) (target, error) {
	var rest, version string
	switch {
	case strings.HasPrefix(path, "/api/v1/"):
		rest, version = strings.TrimPrefix(path, "/api/v1/"), "v1"
	case strings.HasPrefix(path, "/apis/"):
		parts := strings.SplitN(strings.TrimPrefix(path, "/apis/"), "/", 3)
		if len(parts) < 3 {
			return target{}, errorf(http.StatusNotFound, api.ReasonNotFound, "path %s not found", path)
		}
		version, rest = parts[0]+"/"+parts[1], parts[2]
	default:
		return target{}, errorf(http.StatusNotFound, api.ReasonNotFound, "path %s not found", path)
	}
	seg := strings.Split(strings.Trim(rest, "/"), "/")
	var t target
	var resource string
	switch {
	case len(seg) >= 3 && seg[0] == "namespaces":
		t.namespace, resource = seg[1], seg[2]
		if len(seg) == 4 {
			t.name = seg[3]
		} else if len(seg) > 4 {
			return target{}, errorf(http.StatusNotFound, api.ReasonNotFound, "path %s not found", path)
		}
	case len(seg) == 1 || len(seg) == 2:
		resource = seg[0]
		if len(seg) == 2 {
			t.name = seg[1]
		}
	default:
		return target{}, errorf(http.StatusNotFound, api.ReasonNotFound, "path %s not found", path)
	}
	k, err := api.LookupResource(resource)
	if err != nil || k.Resource != resource {
		return target{}, errorf(http.StatusNotFound, api.ReasonNotFound, "the server could not find the requested resource %q", resource)
	}
	if k.APIVersion != version {
		return target{}, errorf(http.StatusNotFound, api.ReasonNotFound, "%s are served under %s, not %s", k.Resource, k.APIVersion, version)
	}
	if !k.Namespaced && t.namespace != "" {
		return target{}, errorf(http.StatusNotFound, api.ReasonNotFound, "%s are not namespaced", k.Resource)
	}
	if k.Namespaced && t.name != "" && t.namespace == "" {
		return target{}, errorf(http.StatusNotFound, api.ReasonNotFound, "%s are namespaced: use /namespaces/{namespace}/%s/%s", k.Resource, k.Resource, t.name)
	}
	t.kind = k
	return t, nil
}

func (s *Server) resource(w http.ResponseWriter, r *http.Request) {
	t, err := parsePath(r.URL.Path)
	if err != nil {
		if st, ok := scalePath(r.URL.Path); ok {
			s.scale(w, r, st)
			return
		}
		s.writeError(w, err)
		return
	}
	switch {
	case r.Method == http.MethodGet && t.name == "":
		err = s.list(w, r, t)
	case r.Method == http.MethodGet:
		err = s.get(w, r, t)
	case r.Method == http.MethodDelete && t.name != "":
		err = s.delete(w, t)
	case r.Method == http.MethodPatch && t.name != "":
		err = s.patch(w, r, t)
	default:
		err = errorf(http.StatusMethodNotAllowed, api.ReasonMethodNotAllowed, "%s is not supported on %s", r.Method, r.URL.Path)
	}
	if err != nil {
		s.writeError(w, err)
	}
}

// nodeJoin is what the hub keeps about nodes apart from the Node objects,
// and serves with them: dispatch's record of the revision it published to
// each, and each node's lease (when it was last heard from, its outbox).
type nodeJoin struct {
	snaps  map[string]*desired.Record
	leases map[string]*lease.Lease
}

func readNodeJoin(tx store.Tx) (nodeJoin, error) {
	snaps, err := store.ListShared[desired.Record](tx, "")
	if err != nil {
		return nodeJoin{}, err
	}
	leases, err := store.ListShared[lease.Lease](tx, "")
	if err != nil {
		return nodeJoin{}, err
	}
	nj := nodeJoin{snaps: make(map[string]*desired.Record, len(snaps)), leases: make(map[string]*lease.Lease, len(leases))}
	for _, r := range snaps {
		nj.snaps[r.Name] = r
	}
	for _, l := range leases {
		nj.leases[l.Name] = l
	}
	return nj, nil
}

// join fills in a node's desiredRevision, lastSeen and outbox.
func (nj nodeJoin) join(obj api.Object) {
	n, ok := obj.(*api.Node)
	if !ok {
		return
	}
	desired.Join(n, nj.snaps[n.Name])
	lease.Join(n, nj.leases[n.Name])
}

// delete removes one object. Deleting a namespace deletes what is in it;
// the DaemonSet controller collects the pods of a deleted DaemonSet.
func (s *Server) delete(w http.ResponseWriter, t target) error {
	if t.kind.Kind == api.KindNamespace && t.name == api.DefaultNamespace {
		return errorf(http.StatusForbidden, api.ReasonForbidden, "namespace %q cannot be deleted", t.name)
	}
	var deleted json.RawMessage
	err := s.store.Update(func(tx store.Tx) error {
		key := store.Key{Kind: t.kind.Kind, Namespace: t.namespace, Name: t.name}
		rec, err := tx.Get(key)
		if store.IsNotFound(err) {
			return notFound(t.kind, t.name)
		}
		if err != nil {
			return err
		}
		deleted = rec.Value
		if t.kind.Kind == api.KindNode {
			// Its lease goes with it; a node that speaks again starts anew.
			if err := tx.Delete(store.Key{Kind: lease.Kind, Name: t.name}); err != nil && !store.IsNotFound(err) {
				return err
			}
		}
		if t.kind.Kind == api.KindNamespace {
			for _, k := range api.Kinds() {
				if !k.Namespaced {
					continue
				}
				recs, err := tx.List(k.Kind, t.name)
				if err != nil {
					return err
				}
				for _, r := range recs {
					if err := tx.Delete(r.Key); err != nil {
						return err
					}
				}
			}
		}
		return tx.Delete(key)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deleted)
	return nil
}

// patch applies a JSON merge patch (RFC 7386) to one object.
func (s *Server) patch(w http.ResponseWriter, r *http.Request, t target) error {
	if !t.kind.Writable {
		return errorf(http.StatusMethodNotAllowed, api.ReasonMethodNotAllowed, "%s are managed by the hub and cannot be changed", t.kind.Resource)
	}
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	var patch any
	if err := json.Unmarshal(body, &patch); err != nil {
		return errorf(http.StatusBadRequest, api.ReasonBadRequest, "patch is not JSON: %v", err)
	}
	var result api.Object
	err = s.store.Update(func(tx store.Tx) error {
		rec, err := tx.Get(store.Key{Kind: t.kind.Kind, Namespace: t.namespace, Name: t.name})
		if store.IsNotFound(err) {
			return notFound(t.kind, t.name)
		}
		if err != nil {
			return err
		}
		var doc any
		if err := json.Unmarshal(rec.Value, &doc); err != nil {
			return err
		}
		patched, err := json.Marshal(MergePatch(doc, patch))
		if err != nil {
			return err
		}
		docs, err := manifest.Decode("patch", patched)
		if err != nil {
			return invalid(err)
		}
		if len(docs) != 1 {
			return errorf(http.StatusUnprocessableEntity, api.ReasonInvalid, "patch must leave exactly one object")
		}
		obj := docs[0].Object
		m := obj.GetObjectMeta()
		if obj.GetTypeMeta().Kind != t.kind.Kind || m.Name != t.name || m.Namespace != t.namespace {
			return errorf(http.StatusUnprocessableEntity, api.ReasonInvalid, "a patch cannot change kind, name or namespace")
		}
		if networkKind(obj) {
			manifest.Default(obj, m.Namespace)
		}
		if err := manifest.Validate(obj); err != nil {
			return invalid(err)
		}
		existing := t.kind.NewObject()
		if err := json.Unmarshal(rec.Value, existing); err != nil {
			return err
		}
		if err := admitPodSecurity(tx, existing, obj); err != nil {
			return writeProblems(err, docs[0], nil)
		}
		if err := s.addresses(tx).prepare(existing, obj); err != nil {
			return writeProblems(err, docs[0], nil)
		}
		if problems, err := checkTargetPorts(tx, docs); err != nil || len(problems) > 0 {
			return writeProblems(err, docs[0], problems)
		}
		merged, _, err := mergeForWrite(existing, obj)
		if err != nil {
			return err
		}
		result = merged
		return tx.Put(merged)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, result)
	return nil
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(http.StatusRequestEntityTooLarge, api.ReasonTooLarge, "request body is over %d bytes", MaxBodyBytes)
		}
		return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "read body: %v", err)
	}
	return body, nil
}

// errDryRun rolls back a dry-run apply.
var errDryRun = errors.New("dry run")

// apply creates or updates every object of a List, atomically: if any
// object is invalid, nothing is written. ?dryRun=true validates and reports
// what would happen.
func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	if err := s.applyErr(w, r); err != nil {
		s.writeError(w, err)
	}
}

func (s *Server) applyErr(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	dryRun := r.URL.Query().Get("dryRun") == "true"
	// Load refuses what apply may not write and names every problem of
	// every document at once, a YAML document whose aliases would expand it
	// too far included (measured before expanding: 422 in milliseconds).
	docs, err := manifest.Load("", body, manifest.LoadOptions{Apply: true})
	if err != nil {
		return invalid(err)
	}
	// Namespaces first, so a file may create a namespace and its contents.
	sort.SliceStable(docs, func(i, j int) bool {
		return docs[i].Object.GetTypeMeta().Kind == api.KindNamespace && docs[j].Object.GetTypeMeta().Kind != api.KindNamespace
	})
	var results []api.ApplyResult
	err = s.store.Update(func(tx store.Tx) error {
		results = results[:0]
		addrs := s.addresses(tx)
		if err := addrs.reserve(docs); err != nil {
			return err
		}
		// Every document's problems at once; nothing is written if any.
		var problems manifest.ErrorList
		for _, d := range docs {
			res, err := s.applyOne(tx, d, addrs)
			var fe fieldErrors
			if errors.As(err, &fe) {
				problems = append(problems, fe.located(d)...)
				continue
			}
			if err != nil {
				return err
			}
			results = append(results, res)
		}
		more, err := checkTargetPorts(tx, docs)
		if err != nil {
			return err
		}
		problems = append(problems, more...)
		if more, err = checkScaleTargets(tx, docs); err != nil {
			return err
		}
		if problems = append(problems, more...); len(problems) > 0 {
			return invalid(problems)
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return err
	}
	writeJSON(w, http.StatusOK, api.ApplyResponse{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: "ApplyResponse"}, Results: results})
	return nil
}

func (s *Server) applyOne(tx store.Tx, d manifest.Document, addrs *addresses) (api.ApplyResult, error) {
	obj := d.Object
	k, _ := api.LookupKind(obj.GetTypeMeta().Kind)
	m := obj.GetObjectMeta()
	res := api.ApplyResult{Kind: k.Kind, Namespace: m.Namespace, Name: m.Name}
	if k.Namespaced {
		_, err := tx.Get(store.Key{Kind: api.KindNamespace, Name: m.Namespace})
		if store.IsNotFound(err) {
			nsKind, _ := api.LookupKind(api.KindNamespace)
			return res, notFound(nsKind, m.Namespace)
		}
		if err != nil {
			return res, err
		}
	}
	rec, err := tx.Get(store.KeyOf(obj))
	switch {
	case store.IsNotFound(err):
		m.UID = api.NewUID()
		m.CreationTimestamp = api.NewTime(s.now().UTC().Truncate(time.Second))
		m.Generation = 1
		m.ResourceVersion = ""
		m.OwnerReferences = nil
		clearStatus(obj)
		if ns, ok := obj.(*api.Namespace); ok {
			ns.Status.Phase = "Active"
		}
		if err := admitPodSecurity(tx, nil, obj); err != nil {
			return res, err
		}
		if err := addrs.prepare(nil, obj); err != nil {
			return res, err
		}
		res.Action = api.ActionCreated
		return res, tx.Put(obj)
	case err != nil:
		return res, err
	}
	existing := k.NewObject()
	if err := json.Unmarshal(rec.Value, existing); err != nil {
		return res, err
	}
	keepAgentFacts(existing, obj)
	if err := admitPodSecurity(tx, existing, obj); err != nil {
		return res, err
	}
	if err := keepScaledReplicas(tx, existing, obj); err != nil {
		return res, err
	}
	if err := addrs.prepare(existing, obj); err != nil {
		return res, err
	}
	merged, changed, err := mergeForWrite(existing, obj)
	if err != nil {
		return res, err
	}
	if !changed {
		res.Action = api.ActionUnchanged
		return res, nil
	}
	res.Action = api.ActionConfigured
	return res, tx.Put(merged)
}

// clearStatus drops a status sent with a new object: status belongs to the
// hub and the agents.
func clearStatus(obj api.Object) {
	switch o := obj.(type) {
	case *api.DaemonSet:
		o.Status = api.DaemonSetStatus{}
	case *api.Deployment:
		o.Status = api.DeploymentStatus{}
	case *api.Node:
		o.Status = api.NodeStatus{}
	case *api.Namespace:
		o.Status = api.NamespaceStatus{}
	case *api.Service:
		o.Status = api.ServiceStatus{}
	case *api.Ingress:
		o.Status = api.IngressStatus{}
	case *api.HorizontalPodAutoscaler:
		o.Status = api.HorizontalPodAutoscalerStatus{}
	}
}
