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
	_, err = readManifests([]string{file}, false, "", nil)
	runtime.ReadMemStats(&after)
	want := file + ": document 1: line 13: alias *a: aliases would expand the input by more than the limit of 8388608 bytes"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 32<<20 {
		t.Errorf("reading a 1 MiB file allocated %d MiB", n>>20)
	}
}
