package manifest

import (
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// everyProblem is a manifest file with problems of every sort in several
// documents: what the decoder finds (unknown, unsupported and mistyped
// fields, syntax) and what validation finds (missing and invalid values).
const everyProblem = `# 1: an unsupported field, and no image
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      affinity: {}
      containers:
      - name: main
---
# 2: fine
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
# 3: mistyped values (reported once, with no "required" after them), an
# unknown field, invalid values and a missing name
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: -1
  minReadySeconds: soon
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: 5
        imagePullPolicy: Sometimes
        portz: []
      - image: nginx:1.27
---
# 4: a kind Flotilla does not have
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web}
---
# 5: a kind only the hub writes
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: [{name: c, image: i}]}
---
# 6: not YAML
data: [unclosed
---
# 7: a List whose second item has an unknown field and a bad name
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: fine}}
- {apiVersion: v1, kind: Secret, metadata: {name: Bad_Name}, strngData: {a: b}}
`

// TestLoadReportsEveryProblemOfEveryDocument: one call names every problem
// of every document, in document order, each once, in the README's format.
func TestLoadReportsEveryProblemOfEveryDocument(t *testing.T) {
	docs, err := Load("app.yaml", []byte(everyProblem), LoadOptions{Apply: true})
	if docs != nil {
		t.Errorf("got documents with errors: %v", docs)
	}
	want := []string{
		"app.yaml: document 1: spec.template.spec.affinity: not supported by Flotilla",
		"app.yaml: document 1: spec.template.spec.containers[0].image: required",
		"app.yaml: document 3: spec.minReadySeconds: must be an integer",
		"app.yaml: document 3: spec.template.spec.containers[0].image: must be a string (quote the value: YAML reads it as a number)",
		"app.yaml: document 3: spec.template.spec.containers[0].portz: unknown field",
		"app.yaml: document 3: spec.template.spec.containers[0].imagePullPolicy: \"Sometimes\" is not one of Always, IfNotPresent, Never",
		"app.yaml: document 3: spec.template.spec.containers[1].name: required",
		"app.yaml: document 3: spec.replicas: must be greater than or equal to 0",
		"app.yaml: document 4: kind: NetworkPolicy is not supported by Flotilla (kinds that apply accepts: Namespace, Node, DaemonSet, Deployment, Secret, ConfigMap, Service, Ingress, IngressClass, HorizontalPodAutoscaler)",
		"app.yaml: document 5: kind: Pod cannot be applied: the hub makes pods for DaemonSets and Deployments; apply one of those",
		"app.yaml: document 6: line 53: invalid YAML: did not find expected ',' or ']'",
		"app.yaml: document 7: items[1].strngData: unknown field",
		"app.yaml: document 7: items[1].metadata.name: \"Bad_Name\" is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
	}
	if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Decode alone reports what the decoder finds, also across documents.
	_, err = Decode("app.yaml", []byte(everyProblem))
	for _, w := range []string{want[0], want[2], want[4], want[10], want[11]} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Decode's errors lack %q:\n%v", w, err)
		}
	}
}

// TestLoadDefaultsAndNamespaces: Load returns defaulted objects, puts them
// in the namespace asked for, and refuses one that names another.
func TestLoadDefaultsAndNamespaces(t *testing.T) {
	docs, err := Load("ds.yaml", []byte(minimalDS), LoadOptions{Namespace: "team", Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	ds := docs[0].Object.(*api.DaemonSet)
	if ds.Namespace != "team" || ds.Spec.Template.Spec.RestartPolicy != api.RestartAlways {
		t.Errorf("not defaulted into team: namespace %q, restartPolicy %q", ds.Namespace, ds.Spec.Template.Spec.RestartPolicy)
	}
	docs, err = Load("ds.yaml", []byte(minimalDS), LoadOptions{})
	if err != nil || docs[0].Object.GetObjectMeta().Namespace != api.DefaultNamespace {
		t.Fatalf("without a namespace: %v, %v", docs, err)
	}

	other := strings.Replace(minimalDS, "  name: agent\n", "  name: agent\n  namespace: other\n", 1)
	other = strings.Replace(other, "image: registry.local/agent:1.0", "image: \"\"", 1)
	_, err = Load("ds.yaml", []byte(other), LoadOptions{Namespace: "team", Apply: true})
	want := "ds.yaml: document 1: metadata.namespace: the namespace from the provided object \"other\" does not match the namespace \"team\": remove it from the manifest or from -n\n" +
		"ds.yaml: document 1: spec.template.spec.containers[0].image: required"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

// TestKindsNamedInErrorsAreTheOnesApplyAccepts: the kinds an error lists
// are exactly the kinds Load accepts, with no Pod among them; the kinds
// only the hub writes decode for Decode but are refused by Load.
func TestKindsNamedInErrorsAreTheOnesApplyAccepts(t *testing.T) {
	_, err := Decode("ing.yaml", []byte("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: s}\n"))
	if err == nil {
		t.Fatal("a NetworkPolicy decoded")
	}
	msg := err.Error()
	_, listed, ok := strings.Cut(msg, "(kinds that apply accepts: ")
	if !ok {
		t.Fatalf("no list of kinds in %q", msg)
	}
	listed = strings.TrimSuffix(listed, ")")
	for _, kind := range strings.Split(listed, ", ") {
		info, ok := api.LookupKind(kind)
		if !ok {
			t.Errorf("listed kind %q does not exist", kind)
			continue
		}
		doc := `{"apiVersion": "` + info.APIVersion + `", "kind": "` + kind + `", "metadata": {"name": "x"}}`
		_, err := Load("x.json", []byte(doc), LoadOptions{Apply: true})
		if err != nil && strings.Contains(err.Error(), "document 1: kind:") {
			t.Errorf("listed kind %s is refused by apply: %v", kind, err)
		}
	}
	for _, k := range api.Kinds() {
		if !k.Writable && strings.Contains(", "+listed+",", ", "+k.Kind+",") {
			t.Errorf("%s is listed, but only the hub writes it", k.Kind)
		}
		if k.Writable {
			continue
		}
		doc := `{"apiVersion": "` + k.APIVersion + `", "kind": "` + k.Kind + `", "metadata": {"name": "x"}}`
		if _, err := Decode("x.json", []byte(doc)); err != nil {
			t.Errorf("Decode of a %s: %v", k.Kind, err)
		}
		_, err := Load("x.json", []byte(doc), LoadOptions{Apply: true})
		if want := "x.json: document 1: kind: " + k.Kind + " cannot be applied: "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Load of a %s: got %v, want %q...", k.Kind, err, want)
		}
	}
}
