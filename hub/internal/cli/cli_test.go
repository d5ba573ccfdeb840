package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
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
	_, err := readManifests([]string{dir}, false, "team", nil)
	if err == nil || !strings.Contains(err.Error(), "b.yml: document 1: metadata.namespace: the namespace from the provided object \"other\" does not match") {
		t.Fatalf("err = %v", err)
	}
	docs, err := readManifests([]string{dir}, false, "", nil)
	if err != nil || len(docs) != 2 {
		t.Fatalf("docs = %d, err = %v", len(docs), err)
	}
	if ds := docs[1].Object.(*api.DaemonSet); ds.Spec.Template.Spec.RestartPolicy != api.RestartAlways {
		t.Fatalf("defaults not applied: %+v", ds.Spec.Template.Spec)
	}
	docs, err = readManifests([]string{"-"}, false, "", bytes.NewBufferString(good))
	if err != nil || len(docs) != 1 || docs[0].Source != "<stdin>" {
		t.Fatalf("stdin: %v %v", docs, err)
	}
	if _, err := readManifests([]string{filepath.Join(dir, "missing.yaml")}, false, "", nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing file: %v", err)
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
