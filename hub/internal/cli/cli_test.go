package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
)

func TestParseTargets(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"ds"}, "DaemonSet:", true},
		{[]string{"po", "a", "b"}, "Pod:a,b", true},
		{[]string{"daemonset/x", "no/n1"}, "DaemonSet:x Node:n1", true},
		{[]string{"pods,nodes"}, "Pod: Node:", true},
		{[]string{"widgets"}, "", false},
		{[]string{"ds/"}, "", false},
		{nil, "", false},
	} {
		got, err := parseTargets(tc.args)
		if (err == nil) != tc.ok {
			t.Errorf("%v: err = %v", tc.args, err)
			continue
		}
		var parts []string
		for _, g := range got {
			parts = append(parts, g.kind.Kind+":"+strings.Join(g.names, ","))
		}
		if s := strings.Join(parts, " "); tc.ok && s != tc.want {
			t.Errorf("%v = %q, want %q", tc.args, s, tc.want)
		}
	}
}

func TestParseLabelArgs(t *testing.T) {
	set, remove, err := parseLabelArgs([]string{"site=north", "zone-", "tier="})
	if err != nil || set["site"] != "north" || set["tier"] != "" || len(remove) != 1 || remove[0] != "zone" {
		t.Fatalf("got %v %v %v", set, remove, err)
	}
	for _, bad := range []string{"no_operator", "bad key=x", "k=bad value"} {
		if _, _, err := parseLabelArgs([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadManifestsReportsEveryProblemAndNamespaceMismatch(t *testing.T) {
	dir := t.TempDir()
	good := "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n"
	bad := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x, namespace: other}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n"
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := readManifests([]string{dir}, false, manifest.LoadOptions{Namespace: "team", Apply: true}, nil)
	if err == nil || !strings.Contains(err.Error(), "b.yml: document 1: metadata.namespace: the namespace from the provided object \"other\" does not match") {
		t.Fatalf("err = %v", err)
	}
	docs, err := readManifests([]string{dir}, false, manifest.LoadOptions{Apply: true}, nil)
	if err != nil || len(docs) != 2 {
		t.Fatalf("docs = %d, err = %v", len(docs), err)
	}
	if ds := docs[1].Object.(*api.DaemonSet); ds.Spec.Template.Spec.RestartPolicy != api.RestartAlways {
		t.Fatalf("defaults not applied: %+v", ds.Spec.Template.Spec)
	}
	docs, err = readManifests([]string{"-"}, false, manifest.LoadOptions{Apply: true}, bytes.NewBufferString(good))
	if err != nil || len(docs) != 1 || docs[0].Source != "<stdin>" {
		t.Fatalf("stdin: %v %v", docs, err)
	}
	if _, err := readManifests([]string{filepath.Join(dir, "missing.yaml")}, false, manifest.LoadOptions{Apply: true}, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestReadManifestsReportsEveryProblemOfEveryDocument: `hub apply -f`
// names every problem of every document of every file at once, before it
// sends anything: unsupported and unknown fields next to missing and
// invalid values, and kinds that cannot be applied, in file and document
// order.
func TestReadManifestsReportsEveryProblemOfEveryDocument(t *testing.T) {
	dir := t.TempDir()
	ds := "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n" +
		"  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      affinity: {}\n      containers:\n      - name: main\n"
	deploy := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: web}}\n" +
		"  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: web, imagee: nginx}\n"
	pod := "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n"
	files := map[string]string{"a.yaml": ds + "---\n" + deploy, "b.yaml": pod}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	_, err := readManifests([]string{dir}, false, manifest.LoadOptions{Apply: true}, nil)
	want := a + ": document 1: spec.template.spec.affinity: not supported by Flotilla\n" +
		a + ": document 1: spec.template.spec.containers[0].image: required\n" +
		a + ": document 2: spec.template.spec.containers[0].imagee: unknown field\n" +
		a + ": document 2: spec.template.spec.containers[0].image: required\n" +
		a + ": document 2: spec.replicas: must be greater than or equal to 0\n" +
		b + ": document 1: kind: Pod cannot be applied: the hub makes pods for DaemonSets and Deployments; apply one of those"
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}

	// delete -f reads any kind the hub has, Pods too.
	docs, err := readManifests([]string{b}, false, manifest.LoadOptions{}, nil)
	if err != nil || len(docs) != 1 || docs[0].Object.GetTypeMeta().Kind != api.KindPod {
		t.Fatalf("delete -f of a Pod: %v, %v", docs, err)
	}
}

// TestReadManifestsRefusesAliasBombs: a file whose YAML aliases stand for
// hundreds of megabytes is refused, naming the file, document, line and
// alias, after reading no more than its text.
func TestReadManifestsRefusesAliasBombs(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  k0: &a \"")
	b.WriteString(strings.Repeat("x", 1<<20))
	b.WriteString("\"\n")
	for i := 1; i <= 400; i++ {
		fmt.Fprintf(&b, "  k%d: *a\n", i)
	}
	file := filepath.Join(t.TempDir(), "bomb.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = readManifests([]string{file}, false, manifest.LoadOptions{Apply: true}, nil)
	runtime.ReadMemStats(&after)
	want := file + ": document 1: line 13: alias *a: aliases would expand the input by more than the limit of 8388608 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
		t.Errorf("reading a 1 MiB file allocated %d MiB", n>>20)
	}
}

// A manifest usually holds a Namespace and what is in it; deleting it
// deletes everything, each said once, and succeeds (issue 13, item 7).
func TestDeleteManifestWithItsNamespace(t *testing.T) {
	h := newHub(t, "n0")
	manifest := filepath.Join(t.TempDir(), "team.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team}
data: {a: b}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: team}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: c, image: reg/agent:v1}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	h.must("apply", "-f", manifest)
	h.settle()
	out, errOut, err := h.cli("", "delete", "-f", manifest)
	if err != nil || errOut != "" {
		t.Fatalf("delete -f: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{`namespace "team" deleted`, `configmap "settings" deleted`, `daemonset.apps "agent" deleted`} {
		if strings.Count(out, want) != 1 {
			t.Errorf("output lacks %q once:\n%s", want, out)
		}
	}
	if left := h.must("get", "ds", "-A", "-o", "name"); strings.Contains(left, "agent") {
		t.Errorf("the DaemonSet is still there: %s", left)
	}
	// Deleting again: each object is missing, and says so.
	if _, errOut, err := h.cli("", "delete", "-f", manifest); err == nil || !strings.Contains(errOut, "NotFound") {
		t.Errorf("second delete: %v %s", err, errOut)
	}
}
