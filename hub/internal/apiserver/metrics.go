package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/fields"

	"github.com/flotilla-edge/flotilla/hub/internal/logs"
	"github.com/flotilla-edge/flotilla/hub/internal/metrics"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// MetricsSource is where the API reads usage: every node's latest sample
// and the series kept.
type MetricsSource interface {
	// Latest is a node's newest sample, however old.
	Latest(node string) (wire.MetricSample, bool)
	// Current is every node's latest sample that is recent enough to
	// stand for its usage now.
	Current() map[string]wire.MetricSample
	// Range is a node's kept samples since from, oldest first.
	Range(node string, from time.Time) ([]wire.MetricSample, error)
}

// LogSource fetches a container's output from its node.
type LogSource interface {
	Stream(ctx context.Context, node string, q logs.Query, w io.Writer, flush func()) error
}

// Telemetry is what the API serves besides the store: usage, logs and
// the hub's Prometheus metrics. Any part may be nil.
type Telemetry struct {
	Metrics    MetricsSource
	Logs       LogSource
	Prometheus http.Handler
}

// WithTelemetry adds usage, logs and /metrics to the API.
func (s *Server) WithTelemetry(t Telemetry) *Server {
	s.tel = t
	return s
}

// registerTelemetry adds the routes of usage, series, logs and /metrics.
// They are more specific than the resource routes, so the mux prefers
// them.
func (s *Server) registerTelemetry(mux *http.ServeMux) {
	if s.tel.Prometheus != nil {
		mux.Handle("GET /metrics", s.tel.Prometheus)
	}
	const m = "/apis/" + api.MetricsAPIVersion
	mux.HandleFunc("GET "+m+"/nodes", s.handle(s.nodeMetricsList))
	mux.HandleFunc("GET "+m+"/nodes/{name}", s.handle(s.nodeMetrics))
	mux.HandleFunc("GET "+m+"/pods", s.handle(s.podMetricsList))
	mux.HandleFunc("GET "+m+"/namespaces/{namespace}/pods", s.handle(s.podMetricsList))
	mux.HandleFunc("GET "+m+"/namespaces/{namespace}/pods/{name}", s.handle(s.podMetrics))
	mux.HandleFunc("GET /api/v1/nodes/{name}/metrics", s.handle(s.nodeSeries))
	mux.HandleFunc("GET /api/v1/namespaces/{namespace}/pods/{name}/log", s.handle(s.podLog))
}

func (s *Server) handle(f func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			s.writeError(w, err)
		}
	}
}

// joinMetrics puts a node's latest sample in its status.metrics.
func (s *Server) joinMetrics(obj api.Object) {
	n, ok := obj.(*api.Node)
	if !ok || s.tel.Metrics == nil {
		return
	}
	if sample, ok := s.tel.Metrics.Latest(n.Name); ok {
		n.Status.Metrics = metrics.Usage(sample)
	}
}

func (s *Server) metricsSource() (MetricsSource, error) {
	if s.tel.Metrics == nil {
		return nil, errorf(http.StatusServiceUnavailable, "ServiceUnavailable", "metrics are not enabled on this hub")
	}
	return s.tel.Metrics, nil
}

func (s *Server) nodeMetricsList(w http.ResponseWriter, r *http.Request) error {
	src, err := s.metricsSource()
	if err != nil {
		return err
	}
	current := src.Current()
	list := api.NodeMetricsList{TypeMeta: api.TypeMeta{APIVersion: api.MetricsAPIVersion, Kind: "NodeMetricsList"}, Items: []api.NodeMetrics{}}
	for _, node := range sortedKeys(current) {
		list.Items = append(list.Items, metrics.NodeMetrics(node, current[node]))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) nodeMetrics(w http.ResponseWriter, r *http.Request) error {
	src, err := s.metricsSource()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	sample, ok := src.Current()[name]
	if !ok {
		return errorf(http.StatusNotFound, api.ReasonNotFound, "nodemetrics.metrics.k8s.io %q not found", name)
	}
	writeJSON(w, http.StatusOK, metrics.NodeMetrics(name, sample))
	return nil
}

// podMetricsAll lists the pods of every current sample, filtered by
// namespace ("" for all) and ?fieldSelector=spec.nodeName=.
func (s *Server) podMetricsAll(r *http.Request, namespace string) ([]api.PodMetrics, error) {
	src, err := s.metricsSource()
	if err != nil {
		return nil, err
	}
	sel, err := podMetricsFieldSelector(r.URL.Query().Get("fieldSelector"))
	if err != nil {
		return nil, err
	}
	current := src.Current()
	var out []api.PodMetrics
	for _, node := range sortedKeys(current) {
		for _, pm := range metrics.PodMetrics(node, current[node]) {
			if namespace != "" && pm.Namespace != namespace {
				continue
			}
			if !sel.Matches(fields.Set{"spec.nodeName": node, "metadata.name": pm.Name, "metadata.namespace": pm.Namespace}) {
				continue
			}
			out = append(out, pm)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func (s *Server) podMetricsList(w http.ResponseWriter, r *http.Request) error {
	items, err := s.podMetricsAll(r, r.PathValue("namespace"))
	if err != nil {
		return err
	}
	if items == nil {
		items = []api.PodMetrics{}
	}
	writeJSON(w, http.StatusOK, api.PodMetricsList{TypeMeta: api.TypeMeta{APIVersion: api.MetricsAPIVersion, Kind: "PodMetricsList"}, Items: items})
	return nil
}

func (s *Server) podMetrics(w http.ResponseWriter, r *http.Request) error {
	items, err := s.podMetricsAll(r, r.PathValue("namespace"))
	if err != nil {
		return err
	}
	for _, pm := range items {
		if pm.Name == r.PathValue("name") {
			writeJSON(w, http.StatusOK, pm)
			return nil
		}
	}
	return errorf(http.StatusNotFound, api.ReasonNotFound, "podmetrics.metrics.k8s.io %q not found", r.PathValue("name"))
}

// nodeSeries serves the samples kept for a node: ?since= (a duration,
// default 1h) or ?sinceTime= (RFC 3339), and ?metric= (comma-separated
// names or prefixes: cpu, memory.percent, fs./).
func (s *Server) nodeSeries(w http.ResponseWriter, r *http.Request) error {
	src, err := s.metricsSource()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	q := r.URL.Query()
	since := s.now().Add(-time.Hour)
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return errorf(http.StatusBadRequest, api.ReasonBadRequest, "since %q: want a positive duration like 1h or 30m", v)
		}
		since = s.now().Add(-d)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return errorf(http.StatusBadRequest, api.ReasonBadRequest, "sinceTime %q: want RFC 3339", v)
		}
		since = t
	}
	var filters []string
	for _, m := range q["metric"] {
		for _, f := range strings.Split(m, ",") {
			if f = strings.TrimSpace(f); f != "" {
				filters = append(filters, f)
			}
		}
	}
	err = s.store.View(func(tx store.Tx) error {
		_, err := tx.Get(store.Key{Kind: api.KindNode, Name: name})
		return err
	})
	if store.IsNotFound(err) {
		k, _ := api.LookupKind(api.KindNode)
		return notFound(k, name)
	}
	if err != nil {
		return err
	}
	samples, err := src.Range(name, since)
	if err != nil {
		return err
	}
	if len(filters) > 0 {
		// A filter that selects nothing is a mistake, not an empty table.
		all := metrics.SeriesOf(name, since, samples, nil).Columns
		if bad := metrics.UnknownFilters(all, filters, len(samples) > 0); len(bad) > 0 {
			var names []string
			for _, f := range bad {
				names = append(names, strconv.Quote(f))
			}
			known := "node " + name + " has no sample since " + since.UTC().Format(time.RFC3339) + "; metric names are " + strings.Join(metrics.MetricNames(), ", ")
			if len(samples) > 0 {
				known = "node " + name + " has " + strings.Join(all, ", ")
			}
			return errorf(http.StatusBadRequest, api.ReasonBadRequest, "metric %s: no such metric (give a name or a prefix such as cpu, fs or pod): %s",
				strings.Join(names, ", "), known)
		}
	}
	writeJSON(w, http.StatusOK, metrics.SeriesOf(name, since, samples, filters))
	return nil
}

// podLog serves a container's output, fetched from its node, with
// Kubernetes' parameters: container, tailLines, sinceSeconds, sinceTime,
// limitBytes, previous and follow.
func (s *Server) podLog(w http.ResponseWriter, r *http.Request) error {
	if s.tel.Logs == nil {
		return errorf(http.StatusServiceUnavailable, "ServiceUnavailable", "logs are not enabled on this hub")
	}
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	var pod *api.Pod
	err := s.store.View(func(tx store.Tx) error {
		var err error
		pod, err = store.Get[api.Pod](tx, ns, name)
		return err
	})
	if store.IsNotFound(err) {
		k, _ := api.LookupKind(api.KindPod)
		return notFound(k, name)
	}
	if err != nil {
		return err
	}
	query, err := s.logQuery(pod, r.URL.Query())
	if err != nil {
		return err
	}
	lw := &lazyWriter{w: w}
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	err = s.tel.Logs.Stream(r.Context(), pod.Spec.NodeName, query, lw, flush)
	if err == nil {
		if !lw.started {
			lw.start()
		}
		return nil
	}
	if lw.started {
		s.log.Warn("log stream ended early", "pod", ns+"/"+name, "err", err)
		return nil
	}
	switch {
	case errors.Is(err, logs.ErrNotFound):
		return errorf(http.StatusNotFound, api.ReasonNotFound, "%v", err)
	case errors.Is(err, logs.ErrBadRequest):
		return errorf(http.StatusBadRequest, api.ReasonBadRequest, "%v", err)
	case errors.Is(err, logs.ErrUnreachable):
		return errorf(http.StatusServiceUnavailable, "ServiceUnavailable", "%v", err)
	}
	return fmt.Errorf("logs of pod %s/%s: %w", ns, name, err)
}

// logQuery reads a pod log request's parameters, as Kubernetes names
// them, into the query for the pod's node.
func (s *Server) logQuery(pod *api.Pod, q url.Values) (logs.Query, error) {
	query := logs.Query{Namespace: pod.Namespace, Pod: pod.Name, UID: pod.UID, Container: q.Get("container")}
	if query.Container == "" {
		if len(pod.Spec.Containers) != 1 {
			var names []string
			for _, c := range pod.Spec.Containers {
				names = append(names, c.Name)
			}
			return query, errorf(http.StatusBadRequest, api.ReasonBadRequest, "a container name must be specified for pod %s, choose one of: [%s]", pod.Name, strings.Join(names, " "))
		}
		query.Container = pod.Spec.Containers[0].Name
	} else if !hasContainer(pod, query.Container) {
		return query, errorf(http.StatusBadRequest, api.ReasonBadRequest, "container %s is not valid for pod %s", query.Container, pod.Name)
	}
	if pod.Spec.NodeName == "" {
		return query, errorf(http.StatusBadRequest, api.ReasonBadRequest, "pod %s is not on a node yet", pod.Name)
	}
	var err error
	if query.Follow, err = boolParam(q, "follow"); err != nil {
		return query, err
	}
	if query.Previous, err = boolParam(q, "previous"); err != nil {
		return query, err
	}
	if query.TailLines, err = intParam(q, "tailLines"); err != nil {
		return query, err
	}
	limit, err := intParam(q, "limitBytes")
	if err != nil {
		return query, err
	}
	if limit != nil {
		query.LimitBytes = *limit
	}
	secs, err := intParam(q, "sinceSeconds")
	if err != nil {
		return query, err
	}
	if secs != nil {
		t := s.now().Add(-time.Duration(*secs) * time.Second)
		query.SinceTime = &t
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return query, errorf(http.StatusBadRequest, api.ReasonBadRequest, "sinceTime %q: want RFC 3339", v)
		}
		query.SinceTime = &t
	}
	return query, nil
}

// podMetricsFieldSelector reads the field selector of a PodMetrics list:
// spec.nodeName, metadata.name and metadata.namespace.
func podMetricsFieldSelector(s string) (fields.Selector, error) {
	if s == "" {
		return fields.Everything(), nil
	}
	sel, err := fields.ParseSelector(s)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "fieldSelector %q: %v", s, err)
	}
	for _, r := range sel.Requirements() {
		switch r.Field {
		case "spec.nodeName", "metadata.name", "metadata.namespace":
		default:
			return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "field label not supported: %s (podmetrics offer spec.nodeName, metadata.name, metadata.namespace)", r.Field)
		}
	}
	return sel, nil
}

// boolParam reads a true/false query parameter; absent is false.
func boolParam(q url.Values, key string) (bool, error) {
	v := q.Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, api.ReasonBadRequest, "%s %q: want true or false", key, v)
	}
	return b, nil
}

// intParam reads a non-negative integer query parameter; absent is nil.
func intParam(q url.Values, key string) (*int64, error) {
	v := q.Get(key)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, errorf(http.StatusBadRequest, api.ReasonBadRequest, "%s %q: want a non-negative integer", key, v)
	}
	return &n, nil
}

func hasContainer(p *api.Pod, name string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// lazyWriter sends the 200 and its headers only with the first bytes, so
// that a fetch that fails before any output can still answer with an
// error.
type lazyWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *lazyWriter) start() {
	l.started = true
	l.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	l.w.Header().Set("X-Content-Type-Options", "nosniff")
	l.w.WriteHeader(http.StatusOK)
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.w.Write(p)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
