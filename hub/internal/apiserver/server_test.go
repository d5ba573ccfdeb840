package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

const dsJSON = `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"hello","labels":{"app":"hello"}},
 "spec":{"selector":{"matchLabels":{"app":"hello"}},"template":{"metadata":{"labels":{"app":"hello"}},
 "spec":{"containers":[{"name":"c","image":"reg/hello:IMAGE"}]}}}}`

func ds(image string) string { return strings.ReplaceAll(dsJSON, "IMAGE", image) }

func newServer(t *testing.T) (*httptest.Server, store.Store) {
	t.Helper()
	st := store.NewMemory()
	if err := st.Update(func(tx store.Tx) error {
		return tx.Put(&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace}, ObjectMeta: api.ObjectMeta{Name: "default"}})
	}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(st, nil).Handler())
	t.Cleanup(srv.Close)
	return srv, st
}

func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func applyBody(items ...string) string {
	return `{"apiVersion":"v1","kind":"List","items":[` + strings.Join(items, ",") + `]}`
}

func applyActions(t *testing.T, srv *httptest.Server, items ...string) []string {
	t.Helper()
	code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(items...))
	if code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	var resp api.ApplyResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range resp.Results {
		out = append(out, r.Kind+"/"+r.Name+" "+r.Action)
	}
	return out
}

func TestApplyCreatesUpdatesAndReportsUnchanged(t *testing.T) {
	srv, _ := newServer(t)
	if got := applyActions(t, srv, ds("v1")); got[0] != "DaemonSet/hello created" {
		t.Fatalf("got %v", got)
	}
	if got := applyActions(t, srv, ds("v1")); got[0] != "DaemonSet/hello unchanged" {
		t.Fatalf("got %v", got)
	}
	if got := applyActions(t, srv, ds("v2")); got[0] != "DaemonSet/hello configured" {
		t.Fatalf("got %v", got)
	}
	code, body := call(t, srv, "GET", "/apis/apps/v1/namespaces/default/daemonsets/hello", "")
	var got api.DaemonSet
	if code != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("get: %d %s", code, body)
	}
	if got.Generation != 2 || got.UID == "" || got.ResourceVersion == "" || got.CreationTimestamp.IsZero() ||
		got.Spec.Template.Spec.Containers[0].Image != "reg/hello:v2" ||
		got.Spec.Template.Spec.RestartPolicy != api.RestartAlways {
		t.Fatalf("stored object = %+v", got)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	srv, st := newServer(t)
	before := st.Version()
	bad := strings.Replace(ds("v1"), `"name":"c"`, `"name":"C_bad"`, 1)
	code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(
		`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fresh"}}`, bad))
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("code = %d, body %s", code, body)
	}
	var status api.Status
	if err := json.Unmarshal(body, &status); err != nil || status.Reason != api.ReasonInvalid ||
		!strings.Contains(status.Message, "items[1].spec.template.spec.containers[0].name") {
		t.Fatalf("status = %+v", status)
	}
	if st.Version() != before {
		t.Fatalf("an invalid apply wrote something")
	}
}

func TestApplyRefusals(t *testing.T) {
	srv, st := newServer(t)
	before := st.Version()
	for _, tc := range []struct {
		name, item, want string
		code             int
	}{
		{"pods are not writable", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`, "cannot be applied", 422},
		{"missing namespace", strings.Replace(ds("v1"), `"name":"hello",`, `"name":"hello","namespace":"nowhere",`, 1), `namespaces \"nowhere\" not found`, 404},
		{"unknown field", strings.Replace(ds("v1"), `"image"`, `"imagee"`, 1), "unknown field", 422},
	} {
		code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(tc.item))
		if code != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want %d and %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	if st.Version() != before {
		t.Fatalf("a refused apply wrote something")
	}
	applyActions(t, srv, ds("v1"))
	changed := strings.Replace(ds("v1"), `"matchLabels":{"app":"hello"}`, `"matchLabels":{"app":"hello","x":"y"}`, 1)
	changed = strings.Replace(changed, `"template":{"metadata":{"labels":{"app":"hello"}`, `"template":{"metadata":{"labels":{"app":"hello","x":"y"}`, 1)
	code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(changed))
	if code != 422 || !strings.Contains(string(body), "spec.selector: field is immutable") {
		t.Fatalf("selector change: %d %s", code, body)
	}
}

// TestApplyReportsEveryProblemOfEveryDocument: the apply endpoint answers
// one 422 that names every problem of every document of a YAML body, in
// document order, and writes nothing.
func TestApplyReportsEveryProblemOfEveryDocument(t *testing.T) {
	srv, st := newServer(t)
	before := st.Version()
	body := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n" +
		"  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      affinity: {}\n      containers:\n      - name: main\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata: {name: fine}\n" +
		"---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: web}}\n" +
		"  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, imagee: nginx}\n" +
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n"
	code, out := call(t, srv, "POST", "/api/v1/apply", body)
	var status api.Status
	if err := json.Unmarshal(out, &status); err != nil || code != http.StatusUnprocessableEntity || status.Reason != api.ReasonInvalid || status.Details == nil {
		t.Fatalf("apply: %d %s", code, out)
	}
	want := []api.StatusCause{
		{Field: "spec.template.spec.affinity", Message: "document 1: spec.template.spec.affinity: not supported by Flotilla"},
		{Field: "spec.template.spec.containers[0].image", Message: "document 1: spec.template.spec.containers[0].image: required"},
		{Field: "spec.template.spec.containers[0].imagee", Message: "document 3: spec.template.spec.containers[0].imagee: unknown field"},
		{Field: "spec.template.spec.containers[0].image", Message: "document 3: spec.template.spec.containers[0].image: required"},
		{Field: "spec.replicas", Message: "document 3: spec.replicas: must be greater than or equal to 0"},
		{Field: "kind", Message: "document 4: kind: Pod cannot be applied: the hub makes pods for DaemonSets and Deployments; apply one of those"},
	}
	if got := status.Details.Causes; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("causes\n%v\nwant\n%v", got, want)
	}
	if st.Version() != before {
		t.Fatalf("an invalid apply wrote something")
	}
}

// TestApplyRefusesAliasBombs: a 1 MiB YAML body whose one 1 MiB scalar is
// aliased 400 times is refused with 422 before anything expands it. The
// hub used to expand it (gigabytes, for seconds) before it could refuse.
func TestApplyRefusesAliasBombs(t *testing.T) {
	srv, st := newServer(t)
	before := st.Version()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  k0: &a \"")
	b.WriteString(strings.Repeat("x", 1<<20))
	b.WriteString("\"\n")
	for i := 1; i <= 400; i++ {
		fmt.Fprintf(&b, "  k%d: *a\n", i)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	code, out := call(t, srv, "POST", "/api/v1/apply", b.String())
	runtime.ReadMemStats(&m1)
	var status api.Status
	if err := json.Unmarshal(out, &status); err != nil || code != http.StatusUnprocessableEntity || status.Reason != api.ReasonInvalid ||
		status.Message != "document 1: line 13: alias *a: aliases would expand the input by more than the limit of 8388608 bytes" {
		t.Fatalf("apply: %d %s", code, out)
	}
	if n := m1.TotalAlloc - m0.TotalAlloc; n > 64<<20 {
		t.Errorf("the hub allocated %d MiB for a 1 MiB body", n>>20)
	}
	if st.Version() != before {
		t.Fatalf("a refused apply wrote something")
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	srv, st := newServer(t)
	before := st.Version()
	code, body := call(t, srv, "POST", "/api/v1/apply?dryRun=true", applyBody(ds("v1")))
	if code != 200 || !strings.Contains(string(body), "created") {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if st.Version() != before {
		t.Fatalf("dry run wrote")
	}
}

func putNode(t *testing.T, st store.Store, name string, labels map[string]string) {
	t.Helper()
	n := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: name, Labels: labels, UID: "u-" + name}}
	n.Status.Online = true
	if err := st.Update(func(tx store.Tx) error { return tx.Put(n) }); err != nil {
		t.Fatal(err)
	}
}

func TestListFiltersAndGetErrors(t *testing.T) {
	srv, st := newServer(t)
	putNode(t, st, "a", map[string]string{"site": "lab"})
	putNode(t, st, "b", map[string]string{"site": "field"})
	code, body := call(t, srv, "GET", "/api/v1/nodes?labelSelector=site%3Dlab", "")
	var list api.List
	if code != 200 || json.Unmarshal(body, &list) != nil || len(list.Items) != 1 || list.Kind != "NodeList" {
		t.Fatalf("list: %d %s", code, body)
	}
	code, body = call(t, srv, "GET", "/apis/apps/v1/namespaces/default/daemonsets/nope", "")
	if code != 404 || !strings.Contains(string(body), `daemonsets.apps \"nope\" not found`) {
		t.Fatalf("not found: %d %s", code, body)
	}
	for _, path := range []string{"/api/v1/widgets", "/apis/apps/v1/pods", "/api/v1/namespaces/default/nodes", "/api/v1/pods/x"} {
		if code, body := call(t, srv, "GET", path, ""); code != 404 {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	if code, _ := call(t, srv, "GET", "/api/v1/pods?labelSelector=a%20in%20(", ""); code != 400 {
		t.Errorf("bad selector: %d", code)
	}
}

func TestPatchLabelsKeepsStatus(t *testing.T) {
	srv, st := newServer(t)
	putNode(t, st, "a", map[string]string{"site": "lab", "zone": "1"})
	code, body := call(t, srv, "PATCH", "/api/v1/nodes/a", `{"metadata":{"labels":{"site":"field","zone":null}}}`)
	if code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	var n *api.Node
	_ = st.View(func(tx store.Tx) error {
		n, _ = store.Get[api.Node](tx, "", "a")
		return nil
	})
	if n.Labels["site"] != "field" || n.Labels["zone"] != "" || !n.Status.Online || n.UID != "u-a" {
		t.Fatalf("node after patch = %+v", n)
	}
	if code, body := call(t, srv, "PATCH", "/api/v1/nodes/a", `{"metadata":{"labels":{"bad key!":"x"}}}`); code != 422 {
		t.Fatalf("invalid label accepted: %d %s", code, body)
	}
	if code, _ := call(t, srv, "PATCH", "/api/v1/nodes/a", `{"metadata":{"name":"b"}}`); code != 422 {
		t.Fatalf("rename accepted")
	}
}

func TestDeleteNamespaceCascades(t *testing.T) {
	srv, st := newServer(t)
	applyActions(t, srv, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}`,
		strings.Replace(ds("v1"), `"name":"hello",`, `"name":"hello","namespace":"team",`, 1))
	if code, body := call(t, srv, "DELETE", "/api/v1/namespaces/team", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	var recs []store.Record
	_ = st.View(func(tx store.Tx) error {
		recs, _ = tx.List(api.KindDaemonSet, "team")
		return nil
	})
	if len(recs) != 0 {
		t.Fatalf("namespace contents left behind")
	}
	if code, _ := call(t, srv, "DELETE", "/api/v1/namespaces/default", ""); code != 403 {
		t.Fatalf("default namespace deletable")
	}
	if code, _ := call(t, srv, "DELETE", "/apis/apps/v1/namespaces/default/daemonsets/nope", ""); code != 404 {
		t.Fatalf("delete of a missing object: %d", code)
	}
}

func TestOversizedBodyIsRefused(t *testing.T) {
	srv, _ := newServer(t)
	big := bytes.Repeat([]byte(" "), MaxBodyBytes+1)
	resp, err := http.Post(srv.URL+"/api/v1/apply", "application/json", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("code = %d", resp.StatusCode)
	}
}

func TestMergePatch(t *testing.T) {
	doc := map[string]any{"a": "b", "c": map[string]any{"d": "e", "f": "g"}}
	patch := map[string]any{"a": "z", "c": map[string]any{"f": nil}, "h": []any{1}}
	got, _ := json.Marshal(MergePatch(doc, patch))
	if string(got) != `{"a":"z","c":{"d":"e"},"h":[1]}` {
		t.Fatalf("got %s", got)
	}
}

const deployJSON = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
 "spec":{"replicas":REPLICAS,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
 "spec":{"containers":[{"name":"c","image":"reg/web:v1"}]}}}}`

// Re-applying a Deployment keeps the status the controller wrote, moves
// the generation only when the spec changes, and refuses a new selector;
// a patch (hub scale, rollout pause) goes through the same rules.
func TestDeploymentApplyAndPatch(t *testing.T) {
	srv, st := newServer(t)
	d3 := strings.ReplaceAll(deployJSON, "REPLICAS", "3")
	if got := applyActions(t, srv, d3); got[0] != "Deployment/web created" {
		t.Fatalf("got %v", got)
	}
	if err := st.Update(func(tx store.Tx) error {
		d, err := store.Get[api.Deployment](tx, "default", "web")
		if err != nil {
			return err
		}
		d.Status.Replicas = 3
		return tx.Put(d)
	}); err != nil {
		t.Fatal(err)
	}
	if got := applyActions(t, srv, d3); got[0] != "Deployment/web unchanged" {
		t.Fatalf("got %v", got)
	}
	applyActions(t, srv, strings.ReplaceAll(deployJSON, "REPLICAS", "5"))
	code, body := call(t, srv, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", `{"spec":{"paused":true}}`)
	if code != 200 {
		t.Fatalf("patch: %d %s", code, body)
	}
	var d api.Deployment
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d.Status.Replicas != 3 || d.Generation != 3 || !d.Spec.Paused || *d.Spec.Replicas != 5 {
		t.Fatalf("deployment = %+v", d)
	}
	code, body = call(t, srv, "PATCH", "/apis/apps/v1/namespaces/default/deployments/web", `{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}`)
	if code != http.StatusUnprocessableEntity || !bytes.Contains(body, []byte("immutable")) {
		t.Fatalf("selector change: %d %s", code, body)
	}
}

// BenchmarkListNodes10k measures GET /api/v1/nodes over 10,000 nodes held
// in memory, as `hub get nodes` asks for them.
func BenchmarkListNodes10k(b *testing.B) {
	st, err := store.OpenBadger(b.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for start := 0; start < 10000; start += 500 {
		if err := st.Update(func(tx store.Tx) error {
			for i := start; i < start+500; i++ {
				n := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
					ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("node-%05d", i), UID: api.NewUID(), CreationTimestamp: api.Now(),
						Labels: map[string]string{"site": "lab", api.LabelArch: "arm64", api.LabelHostname: fmt.Sprintf("node-%05d", i)}},
					Status: api.NodeStatus{Capacity: api.ResourceList{"cpu": "4", "memory": "4Gi"}, Allocatable: api.ResourceList{"cpu": "4", "memory": "4Gi"},
						Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue, Reason: "AgentReady", Message: "agent is posting heartbeats"}},
						Addresses:  []api.NodeAddress{{Type: "InternalIP", Address: "10.0.0.1"}, {Type: "Hostname", Address: "node"}},
						NodeInfo:   api.NodeSystemInfo{Architecture: "arm64", OperatingSystem: "linux", OSImage: "Debian GNU/Linux 12 (bookworm)", KernelVersion: "6.1.0", AgentVersion: "v1"},
						Online:     true, ObservedRevision: 3}}
				if err := tx.Put(n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	h := New(st, nil).Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/nodes", nil))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
