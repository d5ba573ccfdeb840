package printer

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// list is the shape of kubectl's List output.
type list struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Items      []json.RawMessage `json:"items"`
	Metadata   map[string]any    `json:"metadata"`
}

func printed(t *testing.T, write func(*bytes.Buffer) error) string {
	t.Helper()
	var b bytes.Buffer
	if err := write(&b); err != nil {
		t.Fatalf("print: %v", err)
	}
	return b.String()
}

func TestPrintObjectsSingle(t *testing.T) {
	pod := testPods()[0] // TypeMeta left empty: the printer fills it in
	pod.Status.ObservedRevision = 1<<60 + 1
	for _, format := range []string{FormatYAML, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			out := printed(t, func(b *bytes.Buffer) error {
				return PrintObjects(b, format, []api.Object{pod})
			})
			var got api.Pod
			if err := yaml.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, out)
			}
			if got.APIVersion != "v1" || got.Kind != "Pod" {
				t.Errorf("apiVersion, kind = %q, %q, want v1, Pod", got.APIVersion, got.Kind)
			}
			if got.Name != "web-edge-1" || got.Spec.NodeName != "edge-1" || got.Labels["app"] != "web" {
				t.Errorf("round trip lost fields: %+v", got.ObjectMeta)
			}
			if got.Status.ObservedRevision != 1<<60+1 {
				t.Errorf("observedRevision = %d, want %d", got.Status.ObservedRevision, uint64(1<<60+1))
			}
			if !got.CreationTimestamp.Equal(pod.CreationTimestamp.Time) {
				t.Errorf("creationTimestamp = %v, want %v", got.CreationTimestamp, pod.CreationTimestamp)
			}
			if pod.Kind != "" || pod.APIVersion != "" {
				t.Error("printing modified the object's TypeMeta")
			}
		})
	}
}

func TestPrintObjectsJSONLayout(t *testing.T) {
	ns := testNamespaces()[1]
	out := printed(t, func(b *bytes.Buffer) error {
		return PrintObjects(b, FormatJSON, []api.Object{ns})
	})
	// kubectl indents by four spaces and sorts keys.
	want := text(`
{
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {
        "creationTimestamp": "2024-05-01T11:57:00Z",
        "name": "sites-north"
    },
    "status": {
        "phase": "Active"
    }
}
`)
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	yamlOut := printed(t, func(b *bytes.Buffer) error {
		return PrintObjects(b, FormatYAML, []api.Object{ns})
	})
	wantYAML := text(`
apiVersion: v1
kind: Namespace
metadata:
  creationTimestamp: "2024-05-01T11:57:00Z"
  name: sites-north
status:
  phase: Active
`)
	if yamlOut != wantYAML {
		t.Errorf("got:\n%s\nwant:\n%s", yamlOut, wantYAML)
	}
}

func TestPrintObjectsList(t *testing.T) {
	objs := []api.Object{testDaemonSets()[0], testDaemonSets()[1], testPods()[1], testNodes()[0]}
	wantKinds := [][2]string{{"apps/v1", "DaemonSet"}, {"apps/v1", "DaemonSet"}, {"v1", "Pod"}, {"v1", "Node"}}
	for _, format := range []string{FormatYAML, FormatJSON} {
		t.Run(format, func(t *testing.T) {
			out := printed(t, func(b *bytes.Buffer) error { return PrintObjects(b, format, objs) })
			var l list
			var err error
			if format == FormatJSON {
				err = json.Unmarshal([]byte(out), &l)
			} else {
				err = yaml.Unmarshal([]byte(out), &l)
			}
			if err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, out)
			}
			if l.APIVersion != "v1" || l.Kind != "List" {
				t.Errorf("apiVersion, kind = %q, %q, want v1, List", l.APIVersion, l.Kind)
			}
			if rv, ok := l.Metadata["resourceVersion"]; !ok || rv != "" {
				t.Errorf("metadata = %v, want resourceVersion \"\"", l.Metadata)
			}
			if len(l.Items) != len(objs) {
				t.Fatalf("%d items, want %d", len(l.Items), len(objs))
			}
			for i, raw := range l.Items {
				var tm api.TypeMeta
				if err := json.Unmarshal(raw, &tm); err != nil {
					t.Fatal(err)
				}
				if got := [2]string{tm.APIVersion, tm.Kind}; got != wantKinds[i] {
					t.Errorf("item %d is %v, want %v", i, got, wantKinds[i])
				}
			}
			var ds api.DaemonSet
			if err := json.Unmarshal(l.Items[1], &ds); err != nil {
				t.Fatal(err)
			}
			if ds.Name != "log-forwarder" || ds.Spec.Selector.MatchExpressions[0].Values[1] != "canary" || ds.Status.DesiredNumberScheduled != 12 {
				t.Errorf("item 1 did not round-trip: %+v", ds)
			}
		})
	}
}

func TestPrintListWrapsOne(t *testing.T) {
	out := printed(t, func(b *bytes.Buffer) error {
		return PrintList(b, FormatYAML, []api.Object{testPods()[0]})
	})
	var l list
	if err := yaml.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	if l.Kind != "List" || len(l.Items) != 1 {
		t.Errorf("kind %q with %d items, want a List of 1", l.Kind, len(l.Items))
	}
}

func TestPrintObjectsEmpty(t *testing.T) {
	out := printed(t, func(b *bytes.Buffer) error { return PrintObjects(b, FormatYAML, nil) })
	want := "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if out := printed(t, func(b *bytes.Buffer) error { return PrintObjects(b, FormatName, nil) }); out != "" {
		t.Errorf("-o name of nothing = %q", out)
	}
}

func TestPrintObjectsName(t *testing.T) {
	objs := []api.Object{testDaemonSets()[0], testDaemonSets()[1], testPods()[0], testNodes()[0], testNamespaces()[0]}
	out := printed(t, func(b *bytes.Buffer) error { return PrintObjects(b, FormatName, objs) })
	want := "daemonset.apps/sensor\ndaemonset.apps/log-forwarder\npod/web-edge-1\nnode/edge-1\nnamespace/default\n"
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	one := printed(t, func(b *bytes.Buffer) error {
		return PrintObjects(b, FormatName, objs[3:4])
	})
	if one != "node/edge-1\n" {
		t.Errorf("one name = %q", one)
	}
}

func TestPrintObjectsUnknownFormat(t *testing.T) {
	var b bytes.Buffer
	err := PrintObjects(&b, "xml", objects(testPods()))
	if err == nil || !strings.Contains(err.Error(), "json,name,yaml") {
		t.Errorf("err = %v, want the allowed formats", err)
	}
}
