package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/logs"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

type fakeMetrics struct {
	samples map[string][]wire.MetricSample
}

func (f fakeMetrics) Latest(node string) (wire.MetricSample, bool) {
	s := f.samples[node]
	if len(s) == 0 {
		return wire.MetricSample{}, false
	}
	return s[len(s)-1], true
}

func (f fakeMetrics) Current() map[string]wire.MetricSample {
	out := map[string]wire.MetricSample{}
	for n := range f.samples {
		out[n], _ = f.Latest(n)
	}
	return out
}

func (f fakeMetrics) Range(node string, from time.Time) ([]wire.MetricSample, error) {
	var out []wire.MetricSample
	for _, s := range f.samples[node] {
		if !s.Time.Before(from) {
			out = append(out, s)
		}
	}
	return out, nil
}

type fakeLogs struct {
	got  logs.Query
	node string
	err  error
}

func (f *fakeLogs) Stream(_ context.Context, node string, q logs.Query, w io.Writer, flush func()) error {
	f.got, f.node = q, node
	if f.err != nil {
		return f.err
	}
	_, _ = io.WriteString(w, "hello from "+q.Container+"\n")
	flush()
	return nil
}

func telemetryServer(t *testing.T) (*httptest.Server, *fakeLogs) {
	t.Helper()
	st := store.NewMemory()
	cpu := 0.5
	now := time.Now().UTC()
	sample := func(at time.Time, used uint64) wire.MetricSample {
		return wire.MetricSample{Time: at, WindowSeconds: 10,
			Node: wire.NodeSample{CPU: wire.CPUSample{Cores: 2, UsageCores: 1}, Memory: wire.MemorySample{TotalBytes: 4 << 30, AvailableBytes: 4<<30 - used}},
			Pods: []wire.PodSample{{Namespace: "default", Name: "web-1", UID: "u1", Containers: []wire.ContainerSample{{Name: "main", CPUUsageCores: &cpu, MemoryWorkingSetBytes: 64 << 20}}}},
		}
	}
	fm := fakeMetrics{samples: map[string][]wire.MetricSample{
		"n1": {sample(now.Add(-20*time.Second), 1<<30), sample(now.Add(-10*time.Second), 2<<30)},
	}}
	err := st.Update(func(tx store.Tx) error {
		for _, o := range []api.Object{
			&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace}, ObjectMeta: api.ObjectMeta{Name: "default"}},
			&api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: "n1"}},
			&api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod}, ObjectMeta: api.ObjectMeta{Name: "web-1", Namespace: "default", UID: "u1"},
				Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "main"}}}},
			&api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod}, ObjectMeta: api.ObjectMeta{Name: "two", Namespace: "default", UID: "u2"},
				Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "a"}, {Name: "b"}}}},
		} {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLogs{}
	srv := httptest.NewServer(New(st, nil).WithTelemetry(Telemetry{Metrics: fm, Logs: fl,
		Prometheus: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "# metrics\n") })}).Handler())
	t.Cleanup(srv.Close)
	return srv, fl
}

func TestMetricsRoutes(t *testing.T) {
	srv, _ := telemetryServer(t)
	code, body := call(t, srv, "GET", "/apis/metrics.k8s.io/v1beta1/nodes", "")
	var nodes api.NodeMetricsList
	if code != 200 || json.Unmarshal(body, &nodes) != nil || len(nodes.Items) != 1 || nodes.Items[0].Usage[api.ResourceMemory] != "2097152Ki" {
		t.Fatalf("nodes: %d %s", code, body)
	}
	code, body = call(t, srv, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", "")
	var pods api.PodMetricsList
	if code != 200 || json.Unmarshal(body, &pods) != nil || len(pods.Items) != 1 || pods.Items[0].Containers[0].Usage[api.ResourceCPU] != "500m" {
		t.Fatalf("pods: %d %s", code, body)
	}
	if code, body = call(t, srv, "GET", "/apis/metrics.k8s.io/v1beta1/namespaces/other/pods", ""); code != 200 || strings.Contains(string(body), "web-1") {
		t.Errorf("other namespace: %d %s", code, body)
	}
	if code, body = call(t, srv, "GET", "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dn2", ""); code != 200 || strings.Contains(string(body), "web-1") {
		t.Errorf("node filter: %d %s", code, body)
	}
	if code, _ = call(t, srv, "GET", "/apis/metrics.k8s.io/v1beta1/nodes/nope", ""); code != 404 {
		t.Errorf("missing node metrics: %d", code)
	}
	// The node itself carries its latest sample, not stored with it.
	code, body = call(t, srv, "GET", "/api/v1/nodes/n1", "")
	var n api.Node
	if code != 200 || json.Unmarshal(body, &n) != nil || n.Status.Metrics == nil || n.Status.Metrics.MemoryPercent != 50 {
		t.Fatalf("node: %d %s", code, body)
	}
	// Series.
	code, body = call(t, srv, "GET", "/api/v1/nodes/n1/metrics?since=1h&metric=memory.percent", "")
	var ser api.NodeMetricsSeries
	if code != 200 || json.Unmarshal(body, &ser) != nil || len(ser.Points) != 2 || len(ser.Columns) != 1 || *ser.Points[1].Values[0] != 50 {
		t.Fatalf("series: %d %s", code, body)
	}
	// A metric no sample has is an error naming the ones there are, not an
	// empty table.
	code, body = call(t, srv, "GET", "/api/v1/nodes/n1/metrics?since=1h&metric=cpu&metric=nosuch", "")
	if code != 400 || !strings.Contains(string(body), `\"nosuch\"`) || !strings.Contains(string(body), "memory.percent") ||
		!strings.Contains(string(body), "pod.default/web-1.cpu_cores") {
		t.Errorf("unknown metric: %d %s", code, body)
	}
	// With no sample in the window a node's objects are unknown: a family
	// (fs, pod) passes, a name of none does not.
	if code, body = call(t, srv, "GET", "/api/v1/nodes/n1/metrics?since=1s&metric=fs&metric=pod.default/web-1", ""); code != 200 {
		t.Errorf("families without samples: %d %s", code, body)
	}
	if code, body = call(t, srv, "GET", "/api/v1/nodes/n1/metrics?since=1s&metric=nosuch", ""); code != 400 || !strings.Contains(string(body), "cpu.usage_cores") {
		t.Errorf("unknown metric without samples: %d %s", code, body)
	}
	if code, _ = call(t, srv, "GET", "/api/v1/nodes/n1/metrics?since=-1h", ""); code != 400 {
		t.Errorf("bad since: %d", code)
	}
	if code, _ = call(t, srv, "GET", "/api/v1/nodes/nope/metrics", ""); code != 404 {
		t.Errorf("series of a missing node: %d", code)
	}
	if code, body = call(t, srv, "GET", "/metrics", ""); code != 200 || string(body) != "# metrics\n" {
		t.Errorf("/metrics: %d %s", code, body)
	}
	// The resource routes still work beside these.
	if code, _ = call(t, srv, "GET", "/api/v1/namespaces/default/pods/web-1", ""); code != 200 {
		t.Errorf("pod: %d", code)
	}
}

func TestPodLogRoute(t *testing.T) {
	srv, fl := telemetryServer(t)
	code, body := call(t, srv, "GET", "/api/v1/namespaces/default/pods/web-1/log?tailLines=5&sinceSeconds=60&previous=true", "")
	if code != 200 || string(body) != "hello from main\n" {
		t.Fatalf("log: %d %s", code, body)
	}
	q := fl.got
	if fl.node != "n1" || q.UID != "u1" || q.Container != "main" || q.TailLines == nil || *q.TailLines != 5 || !q.Previous || q.SinceTime == nil || time.Since(*q.SinceTime) < time.Minute {
		t.Errorf("query %+v to %s", q, fl.node)
	}
	for path, want := range map[string]int{
		"/api/v1/namespaces/default/pods/two/log":                400, // several containers, none named
		"/api/v1/namespaces/default/pods/two/log?container=z":    400,
		"/api/v1/namespaces/default/pods/nope/log":               404,
		"/api/v1/namespaces/default/pods/web-1/log?follow=x":     400,
		"/api/v1/namespaces/default/pods/web-1/log?tailLines=-1": 400,
	} {
		if code, body := call(t, srv, "GET", path, ""); code != want {
			t.Errorf("%s: %d %s, want %d", path, code, body, want)
		}
	}
	if code, _ := call(t, srv, "GET", "/api/v1/namespaces/default/pods/two/log?container=b", ""); code != 200 || fl.got.Container != "b" {
		t.Errorf("named container: %d %+v", code, fl.got)
	}
	for err, want := range map[error]int{logs.ErrNotFound: 404, logs.ErrUnreachable: 503, logs.ErrBadRequest: 400} {
		fl.err = err
		code, body := call(t, srv, "GET", "/api/v1/namespaces/default/pods/web-1/log", "")
		var st api.Status
		if code != want || json.Unmarshal(body, &st) != nil || st.Code != want {
			t.Errorf("%v: %d %s, want %d", err, code, body, want)
		}
	}
}

// slowLogs streams one line every 100 ms until ctx ends or n lines.
type slowLogs struct{ n int }

func (f slowLogs) Stream(ctx context.Context, _ string, _ logs.Query, w io.Writer, flush func()) error {
	for i := range f.n {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		fmt.Fprintf(w, "line %d\n", i)
		flush()
	}
	return nil
}

// TestFollowOutlivesTheServerReadTimeout: the hub's HTTP server has a read
// timeout; a followed log must not be cut when it passes.
func TestFollowOutlivesTheServerReadTimeout(t *testing.T) {
	st := store.NewMemory()
	_ = st.Update(func(tx store.Tx) error {
		return tx.Put(&api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod}, ObjectMeta: api.ObjectMeta{Name: "p", Namespace: "default", UID: "u"},
			Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "main"}}}})
	})
	srv := httptest.NewUnstartedServer(New(st, nil).WithTelemetry(Telemetry{Logs: slowLogs{n: 12}}).Handler())
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	code, body := call(t, srv, "GET", "/api/v1/namespaces/default/pods/p/log?follow=true", "")
	if code != 200 || strings.Count(string(body), "\n") != 12 {
		t.Fatalf("follow across the read timeout: %d, %d lines: %q", code, strings.Count(string(body), "\n"), body)
	}
}
