package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

const nsDoc = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n"

func ns(name string) string { return strings.Replace(nsDoc, "%s", name, 1) }

// minimalDS is a small valid DaemonSet; tests edit it with strings.Replace.
const minimalDS = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: main
        image: registry.local/agent:1.0
        ports:
        - containerPort: 8080
        env:
        - name: MODE
          value: edge
`

// errorsOf returns the errors in err, failing the test if err is not an
// ErrorList.
func errorsOf(t *testing.T, err error) ErrorList {
	t.Helper()
	if err == nil {
		return nil
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not an ErrorList: %v", err, err)
	}
	return list
}

func TestDecodeNumbersDocumentsAsUsersCountThem(t *testing.T) {
	input := "---\n# leading comment\n" + ns("one") + "---\n---\n# only a comment\n---\n" + ns("two") + "--- # separator with a comment\n" + ns("three") + "...\n"
	docs, err := Decode("all.yaml", []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 3 {
		t.Fatalf("got %d documents, want 3", len(docs))
	}
	for i, want := range []string{"one", "two", "three"} {
		d := docs[i]
		if d.Index != i+1 || d.Source != "all.yaml" || d.Object.GetObjectMeta().Name != want {
			t.Errorf("document %d: got index %d source %q name %q", i+1, d.Index, d.Source, d.Object.GetObjectMeta().Name)
		}
	}

	// The third real document is broken: its error says "document 3",
	// however many empty documents and separators come before it.
	bad := "---\n" + ns("one") + "---\n\n---\n" + ns("two") + "---\n# nothing\n---\n" + strings.Replace(ns("three"), "name:", "nmae:", 1)
	_, err = Decode("all.yaml", []byte(bad))
	list := errorsOf(t, err)
	if len(list) != 1 || list[0].Error() != "all.yaml: document 3: metadata.nmae: unknown field" {
		t.Fatalf("got %q", err)
	}
}

func TestDecodeErrorsAreCollectedAcrossDocuments(t *testing.T) {
	input := strings.Replace(ns("one"), "name:", "nam:", 1) + "---\n" + ns("ok") + "---\n" + strings.Replace(ns("three"), "kind: Namespace", "kind: Namespac", 1)
	docs, err := Decode("x.yaml", []byte(input))
	if docs != nil {
		t.Errorf("got documents with an error: %v", docs)
	}
	want := "x.yaml: document 1: metadata.nam: unknown field\n" +
		`x.yaml: document 3: kind: unknown kind "Namespac" (kinds that apply accepts: Namespace, Node, DaemonSet, Deployment, Secret, ConfigMap, Service, Ingress, IngressClass, HorizontalPodAutoscaler)`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestDecodeFieldErrors(t *testing.T) {
	tests := []struct {
		name    string
		old     string // replaced in minimalDS
		new     string
		field   string
		msg     string
		comment string
	}{
		{"unknown field", "image: registry", "imagee: registry", "spec.template.spec.containers[0].imagee", "unknown field", ""},
		{"unknown top-level field", "kind: DaemonSet", "kind: DaemonSet\nspecs: {}", "specs", "unknown field", ""},
		{"field names are case-sensitive", "image: registry", "Image: registry", "spec.template.spec.containers[0].Image", "unknown field", ""},
		{"affinity", "      containers:", "      affinity: {}\n      containers:", "spec.template.spec.affinity", "not supported by Flotilla", ""},
		{"pod seLinuxOptions", "      containers:", "      securityContext: {seLinuxOptions: {}}\n      containers:", "spec.template.spec.securityContext.seLinuxOptions", "not supported by Flotilla", ""},
		{"pod sysctls", "      containers:", "      securityContext: {sysctls: []}\n      containers:", "spec.template.spec.securityContext.sysctls", "not supported by Flotilla", ""},
		{"runAsUser type", "      containers:", "      securityContext: {runAsUser: root}\n      containers:", "spec.template.spec.securityContext.runAsUser", "must be an integer", ""},
		{"unknown seccomp field", "      containers:", "      securityContext: {seccompProfile: {type: Localhost, localhost: a.json}}\n      containers:", "spec.template.spec.securityContext.seccompProfile.localhost", "unknown field", ""},
		{"initContainers", "      containers:", "      initContainers: []\n      containers:", "spec.template.spec.initContainers", "not supported by Flotilla", ""},
		{"serviceAccountName", "      containers:", "      serviceAccountName: x\n      containers:", "spec.template.spec.serviceAccountName", "not supported by Flotilla", ""},
		{"hostAliases", "      containers:", "      hostAliases: []\n      containers:", "spec.template.spec.hostAliases", "not supported by Flotilla", ""},
		{"dnsConfig nameservers", "      containers:", "      dnsConfig: {nameservers: 10.0.0.1}\n      containers:", "spec.template.spec.dnsConfig.nameservers", "must be a list", ""},
		{"imagePullSecrets", "      containers:", "      imagePullSecrets: []\n      containers:", "spec.template.spec.imagePullSecrets", "not supported by Flotilla", ""},
		{"grpc probe", "        ports:", "        livenessProbe:\n          grpc: {port: 9090}\n        ports:", "spec.template.spec.containers[0].livenessProbe.grpc", "not supported by Flotilla", ""},
		{"probe grace period", "        ports:", "        startupProbe:\n          exec: {command: [x]}\n          terminationGracePeriodSeconds: 5\n        ports:", "spec.template.spec.containers[0].startupProbe.terminationGracePeriodSeconds", "not supported by Flotilla", ""},
		{"unknown probe field", "        ports:", "        readinessProbe:\n          httpGet: {prot: 80}\n        ports:", "spec.template.spec.containers[0].readinessProbe.httpGet.prot", "unknown field", ""},
		{"probe timing type", "        ports:", "        readinessProbe:\n          tcpSocket: {port: 80}\n          periodSeconds: 1s\n        ports:", "spec.template.spec.containers[0].readinessProbe.periodSeconds", "must be an integer", ""},
		{"probe port bool", "        ports:", "        livenessProbe:\n          tcpSocket: {port: yes}\n        ports:", "spec.template.spec.containers[0].livenessProbe.tcpSocket.port", `must be an integer or a string (such as 8080, "http" or "25%")`, ""},
		{"probe port list", "        ports:", "        livenessProbe:\n          httpGet: {port: [80]}\n        ports:", "spec.template.spec.containers[0].livenessProbe.httpGet.port", "must be an integer or a string", ""},
		{"probe port fraction", "        ports:", "        livenessProbe:\n          httpGet: {port: 80.5}\n        ports:", "spec.template.spec.containers[0].livenessProbe.httpGet.port", "must be an integer between -2147483648 and 2147483647, or a string", ""},
		{"probe port out of range", "        ports:", "        livenessProbe:\n          httpGet: {port: 4294967296}\n        ports:", "spec.template.spec.containers[0].livenessProbe.httpGet.port", "must be an integer between -2147483648 and 2147483647, or a string", ""},
		{"header value type", "        ports:", "        livenessProbe:\n          httpGet: {port: 80, httpHeaders: [{name: X, value: 1}]}\n        ports:", "spec.template.spec.containers[0].livenessProbe.httpGet.httpHeaders[0].value", "must be a string", ""},
		{"unknown toleration field", "      containers:", "      tolerations:\n      - {key: a, operator: Exists, efect: NoSchedule}\n      containers:", "spec.template.spec.tolerations[0].efect", "unknown field", ""},
		{"tolerationSeconds type", "      containers:", "      tolerations:\n      - {key: a, effect: NoExecute, tolerationSeconds: \"60\"}\n      containers:", "spec.template.spec.tolerations[0].tolerationSeconds", "must be an integer", ""},
		{"lifecycle", "        ports:", "        lifecycle: {}\n        ports:", "spec.template.spec.containers[0].lifecycle", "not supported by Flotilla", ""},
		{"container appArmorProfile", "        ports:", "        securityContext: {appArmorProfile: {type: RuntimeDefault}}\n        ports:", "spec.template.spec.containers[0].securityContext.appArmorProfile", "not supported by Flotilla", ""},
		{"capabilities not a list", "        ports:", "        securityContext: {capabilities: {add: NET_ADMIN}}\n        ports:", "spec.template.spec.containers[0].securityContext.capabilities.add", "must be a list", ""},
		{"privileged type", "        ports:", "        securityContext: {privileged: \"yes\"}\n        ports:", "spec.template.spec.containers[0].securityContext.privileged", "must be a boolean", ""},
		{"env valueFrom fieldRef", "          value: edge", "          valueFrom: {fieldRef: {fieldPath: metadata.name}}", "spec.template.spec.containers[0].env[0].valueFrom.fieldRef", "not supported by Flotilla", ""},
		{"env valueFrom resourceFieldRef", "          value: edge", "          valueFrom: {resourceFieldRef: {resource: limits.cpu}}", "spec.template.spec.containers[0].env[0].valueFrom.resourceFieldRef", "not supported by Flotilla", ""},
		{"unknown secretKeyRef field", "          value: edge", "          valueFrom: {secretKeyRef: {name: s, kye: k}}", "spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.kye", "unknown field", ""},
		{"envFrom not a list", "        ports:", "        envFrom: {}\n        ports:", "spec.template.spec.containers[0].envFrom", "must be a list", ""},
		{"envFrom optional type", "        ports:", "        envFrom: [{secretRef: {name: s, optional: \"yes\"}}]\n        ports:", "spec.template.spec.containers[0].envFrom[0].secretRef.optional", "must be a boolean", ""},
		{"resources.claims", "        ports:", "        resources:\n          claims: []\n        ports:", "spec.template.spec.containers[0].resources.claims", "not supported by Flotilla", ""},
		{"unknown updateStrategy field", "  template:", "  updateStrategy: {rollingUpdate: {maxUnavaliable: 1}}\n  template:", "spec.updateStrategy.rollingUpdate.maxUnavaliable", "unknown field", ""},
		{"maxUnavailable object", "  template:", "  updateStrategy: {rollingUpdate: {maxUnavailable: {}}}\n  template:", "spec.updateStrategy.rollingUpdate.maxUnavailable", "must be an integer or a string", ""},
		{"maxSurge bool", "  template:", "  updateStrategy: {rollingUpdate: {maxSurge: true}}\n  template:", "spec.updateStrategy.rollingUpdate.maxSurge", "must be an integer or a string", ""},
		{"minReadySeconds type", "  template:", "  minReadySeconds: soon\n  template:", "spec.minReadySeconds", "must be an integer", ""},
		{"unknown rollout field", "  template:", "  rollout: {canary: {count: 1, nodeSelectr: {}}}\n  template:", "spec.rollout.canary.nodeSelectr", "unknown field", ""},
		{"canary count type", "  template:", "  rollout: {canary: {count: [1]}}\n  template:", "spec.rollout.canary.count", "must be an integer or a string", ""},
		{"maxFailures type", "  template:", "  rollout: {maxFailures: 0.5}\n  template:", "spec.rollout.maxFailures", "must be an integer between", ""},
		{"prePull type", "  template:", "  rollout: {prePull: \"true\"}\n  template:", "spec.rollout.prePull", "must be a boolean", ""},
		{"DaemonSet status conditions", "kind: DaemonSet", "kind: DaemonSet\nstatus: {conditions: []}", "status.conditions", "not supported by Flotilla", ""},
		{"DaemonSet collisionCount type", "kind: DaemonSet", "kind: DaemonSet\nstatus: {collisionCount: x}", "status.collisionCount", "must be an integer", ""},
		{"persistentVolumeClaim volume", "      containers:", "      volumes:\n      - name: cfg\n        persistentVolumeClaim: {claimName: x}\n      containers:", "spec.template.spec.volumes[0].persistentVolumeClaim", "not supported by Flotilla", ""},
		{"unknown secret volume field", "      containers:", "      volumes:\n      - name: s\n        secret: {name: s}\n      containers:", "spec.template.spec.volumes[0].secret.name", "unknown field", ""},
		{"secret volume mode type", "      containers:", "      volumes:\n      - name: s\n        secret: {secretName: s, defaultMode: \"0400\"}\n      containers:", "spec.template.spec.volumes[0].secret.defaultMode", "must be an integer", ""},
		{"finalizers", "  name: agent", "  name: agent\n  finalizers: []", "metadata.finalizers", "not supported by Flotilla", ""},
		{"string for an integer", "containerPort: 8080", `containerPort: "8080"`, "spec.template.spec.containers[0].ports[0].containerPort", "must be an integer", ""},
		{"fraction for an integer", "containerPort: 8080", `containerPort: 80.5`, "spec.template.spec.containers[0].ports[0].containerPort", "must be an integer", ""},
		{"integer out of range", "containerPort: 8080", `containerPort: 4294967296`, "spec.template.spec.containers[0].ports[0].containerPort", "must be an integer between -2147483648 and 2147483647", ""},
		{"number for a string", "value: edge", "value: 8080", "spec.template.spec.containers[0].env[0].value", "must be a string", ""},
		{"bool for a string", "value: edge", "value: yes", "spec.template.spec.containers[0].env[0].value", "must be a string", "YAML 1.1 reads yes as true"},
		{"string for a bool", "      containers:", "      hostNetwork: \"true\"\n      containers:", "spec.template.spec.hostNetwork", "must be a boolean", ""},
		{"object for a list", "      containers:\n", "      containers: {}\n      x:\n", "spec.template.spec.containers", "must be a list", ""},
		{"list for an object", "  selector:\n", "  selector: []\n  x:\n", "spec.selector", "must be an object", ""},
		{"label value not a string", "app: agent\n  template:", "app: 1\n  template:", "spec.selector.matchLabels.app", "must be a string", ""},
		{"bad quantity type", "        ports:", "        resources:\n          limits:\n            cpu: [1]\n        ports:", "spec.template.spec.containers[0].resources.limits.cpu", "must be a quantity", ""},
		{"bad time", "  name: agent", "  name: agent\n  creationTimestamp: yesterday", "metadata.creationTimestamp", "must be an RFC 3339 time", ""},
		{"duplicate key", "  name: agent", "  name: agent\n  name: other", "", `key "name" already set in map`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := strings.Replace(minimalDS, tt.old, tt.new, 1)
			if input == minimalDS {
				t.Fatalf("replacement of %q did not apply", tt.old)
			}
			_, err := Decode("ds.yaml", []byte(input))
			list := errorsOf(t, err)
			if len(list) == 0 {
				t.Fatal("no error")
			}
			for _, e := range list {
				if e.Field == tt.field && strings.Contains(e.Msg, tt.msg) {
					if e.Source != "ds.yaml" || e.Document != 1 {
						t.Errorf("error not located: %+v", e)
					}
					return
				}
			}
			t.Fatalf("want %s: %s, got:\n%v", tt.field, tt.msg, err)
		})
	}
	// The control: the unedited manifest decodes.
	if _, err := Decode("ds.yaml", []byte(minimalDS)); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeErrorMessagesExactly(t *testing.T) {
	tests := []struct{ input, want string }{
		{strings.Replace(minimalDS, "image: registry", "imagee: registry", 1),
			"ds.yaml: document 1: spec.template.spec.containers[0].imagee: unknown field"},
		{strings.Replace(minimalDS, "      containers:", "      affinity: {}\n      containers:", 1),
			"ds.yaml: document 1: spec.template.spec.affinity: not supported by Flotilla"},
		{strings.Replace(minimalDS, "containerPort: 8080", `containerPort: "8080"`, 1),
			"ds.yaml: document 1: spec.template.spec.containers[0].ports[0].containerPort: must be an integer"},
		{strings.Replace(minimalDS, "apps/v1", "extensions/v1beta1", 1),
			`ds.yaml: document 1: apiVersion: must be "apps/v1" for kind DaemonSet, not "extensions/v1beta1"`},
		{strings.Replace(minimalDS, "kind: DaemonSet", "kind: StatefulSet", 1),
			"ds.yaml: document 1: kind: StatefulSet is not supported by Flotilla (kinds that apply accepts: Namespace, Node, DaemonSet, Deployment, Secret, ConfigMap, Service, Ingress, IngressClass, HorizontalPodAutoscaler)"},
		{strings.Replace(minimalDS, "kind: DaemonSet", "kind: Deployment", 1) + "  rollout: {}\n",
			"ds.yaml: document 1: spec.rollout: unknown field"},
		{strings.Replace(minimalDS, "        ports:", "        livenessProbe:\n          httpGet: {port: {name: http}}\n        ports:", 1),
			`ds.yaml: document 1: spec.template.spec.containers[0].livenessProbe.httpGet.port: must be an integer or a string (such as 8080, "http" or "25%")`},
		{strings.Replace(minimalDS, "kind: DaemonSet\n", "", 1),
			"ds.yaml: document 1: kind: required"},
		{strings.Replace(minimalDS, "apiVersion: apps/v1\n", "", 1),
			"ds.yaml: document 1: apiVersion: required"},
		{strings.Replace(minimalDS, "kind: DaemonSet", "kind: 7", 1),
			"ds.yaml: document 1: kind: must be a string"},
		{"- a\n- b\n", "ds.yaml: document 1: a document must be an object with apiVersion and kind, not a list"},
		{"hello\n", "ds.yaml: document 1: a document must be an object with apiVersion and kind, not a string"},
		{strings.Replace(minimalDS, "    matchLabels:", "    matchLabels:\n      app.kubernetes.io/name: 3", 1),
			"ds.yaml: document 1: spec.selector.matchLabels[app.kubernetes.io/name]: must be a string (quote the value: YAML reads it as a number)"},
		{strings.Replace(minimalDS, "  name: agent", "  name: n", 1),
			"ds.yaml: document 1: metadata.name: must be a string (quote the value: YAML reads unquoted true, false, yes, no, on, off, y and n as booleans)"},
		{strings.Replace(minimalDS, "  name: agent", "  name: agent\n  \"we\\\"ird]\": 1", 1),
			`ds.yaml: document 1: metadata["we\"ird]"]: unknown field`},
	}
	for _, tt := range tests {
		_, err := Decode("ds.yaml", []byte(tt.input))
		if err == nil || err.Error() != tt.want {
			t.Errorf("got  %v\nwant %s", err, tt.want)
		}
	}
}

func TestDecodeYAMLSyntaxErrorsNameSourceDocumentAndLine(t *testing.T) {
	// Line 10 of the file is line 5 of the second document.
	input := ns("one") + "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: two\n   bad: indent\n"
	_, err := Decode("ns.yaml", []byte(input))
	list := errorsOf(t, err)
	if len(list) != 1 {
		t.Fatalf("got %v", err)
	}
	e := list[0]
	if e.Source != "ns.yaml" || e.Document != 2 || e.Line != 10 || !strings.HasPrefix(e.Msg, "invalid YAML: ") {
		t.Errorf("got %+v", e)
	}
	if !strings.HasPrefix(e.Error(), "ns.yaml: document 2: line 10: invalid YAML: ") {
		t.Errorf("rendered as %q", e.Error())
	}

	// Duplicate keys are reported with their line.
	_, err = Decode("ns.yaml", []byte("apiVersion: v1\nkind: Namespace\nkind: Namespace\n"))
	list = errorsOf(t, err)
	if len(list) != 1 || list[0].Line != 3 || !strings.Contains(list[0].Msg, `key "kind" already set`) {
		t.Errorf("got %v", err)
	}

	// A marker line with content starts a document; the line is that of the
	// marker.
	_, err = Decode("ns.yaml", []byte(ns("one")+"--- {apiVersion: v1, kind: Namespace\n"))
	list = errorsOf(t, err)
	if len(list) != 1 || list[0].Document != 2 || list[0].Line < 4 {
		t.Errorf("got %+v", list)
	}
}

func TestDecodeDocumentsOnMarkerLinesAndDirectives(t *testing.T) {
	input := "%YAML 1.1\n---\n" + ns("one") +
		"--- {apiVersion: v1, kind: Namespace, metadata: {name: two}}\n" +
		"--- {apiVersion: v1, kind: Namespace, metadata: {name: three}}\n"
	docs, err := Decode("", []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range docs {
		names = append(names, d.Object.GetObjectMeta().Name)
	}
	if strings.Join(names, ",") != "one,two,three" {
		t.Fatalf("got %v", names)
	}
}

func TestDecodeJSON(t *testing.T) {
	input := `{
	"apiVersion": "v1",
	"kind": "Namespace",
	"metadata": {"name": "from-json", "labels": {"emoji": "x\ud83d\ude00"}}
}`
	docs, err := Decode("ns.json", []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Index != 1 || docs[0].Object.GetObjectMeta().Name != "from-json" {
		t.Fatalf("got %+v", docs)
	}
	if got := docs[0].Object.GetObjectMeta().Labels["emoji"]; got != "x😀" {
		t.Errorf("label = %q", got)
	}

	// A stream of JSON objects is several documents.
	docs, err = Decode("ns.json", []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}
{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}`))
	if err != nil || len(docs) != 2 || docs[1].Index != 2 {
		t.Fatalf("got %v, %v", docs, err)
	}

	// Errors in JSON carry paths too.
	_, err = Decode("ds.json", []byte(`{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"x"},
		"spec":{"template":{"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":"80"}]}]}}}}`))
	if err == nil || err.Error() != "ds.json: document 1: spec.template.spec.containers[0].ports[0].containerPort: must be an integer" {
		t.Errorf("got %v", err)
	}

	// Duplicate fields in JSON are errors.
	_, err = Decode("ns.json", []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a","name":"b"}}`))
	if err == nil || err.Error() != "ns.json: document 1: metadata.name: duplicate field" {
		t.Errorf("got %v", err)
	}

	// A JSON syntax error names the line.
	_, err = Decode("ns.json", []byte("{\n\"apiVersion\": \"v1\",\n\"kind\": \"Namespace\",,\n}"))
	list := errorsOf(t, err)
	if len(list) != 1 || list[0].Line != 3 || list[0].Document != 1 || !strings.HasPrefix(list[0].Msg, "invalid JSON") {
		t.Errorf("got %+v", list)
	}

	// YAML that starts with '{' is still YAML.
	docs, err = Decode("ns.yaml", []byte("{apiVersion: v1, kind: Namespace, metadata: {name: flow}}\n---\n"+ns("block")))
	if err != nil || len(docs) != 2 {
		t.Fatalf("got %v, %v", docs, err)
	}
}

func TestDecodeList(t *testing.T) {
	input := `apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: one
- apiVersion: apps/v1
  kind: DaemonSet
  metadata:
    name: agent
    namespace: one
  spec:
    selector:
      matchLabels: {app: agent}
    template:
      metadata:
        labels: {app: agent}
      spec:
        containers:
        - name: main
          image: agent:1
`
	docs, err := Decode("list.yaml", []byte(ns("first")+"---\n"+input))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 3 {
		t.Fatalf("got %d documents", len(docs))
	}
	if docs[1].Index != 2 || docs[1].Path != "items[0]" || docs[2].Index != 2 || docs[2].Path != "items[1]" {
		t.Errorf("got %+v %+v", docs[1], docs[2])
	}
	if _, ok := docs[2].Object.(*api.DaemonSet); !ok {
		t.Errorf("item 1 is %T", docs[2].Object)
	}

	// Errors inside items carry the item path.
	bad := strings.Replace(input, "image: agent:1", "image: agent:1\n          tty: true", 1)
	_, err = Decode("list.yaml", []byte(bad))
	if err == nil || err.Error() != "list.yaml: document 1: items[1].spec.template.spec.containers[0].tty: not supported by Flotilla" {
		t.Errorf("got %v", err)
	}
	bad = strings.Replace(input, "  kind: Namespace", "  kind: Namespace\n  spec: {}", 1)
	_, err = Decode("list.yaml", []byte(bad))
	if err == nil || err.Error() != "list.yaml: document 1: items[0].spec: not supported by Flotilla" {
		t.Errorf("got %v", err)
	}
	bad = strings.Replace(input, "  kind: DaemonSet", "  kind: List", 1)
	_, err = Decode("list.yaml", []byte(bad))
	if err == nil || err.Error() != "list.yaml: document 1: items[1].kind: a List may not contain another List" {
		t.Errorf("got %v", err)
	}
	bad = strings.Replace(input, "items:", "itemz: []\nitems:", 1)
	_, err = Decode("list.yaml", []byte(bad))
	if err == nil || err.Error() != "list.yaml: document 1: itemz: unknown field" {
		t.Errorf("got %v", err)
	}

	// Validation of an item is located in the item.
	docs, err = Decode("list.yaml", []byte(strings.Replace(input, "image: agent:1", "image: \"\"", 1)))
	if err != nil {
		t.Fatal(err)
	}
	Default(docs[1].Object, "")
	err = docs[1].Validate()
	if err == nil || err.Error() != "list.yaml: document 1: items[1].spec.template.spec.containers[0].image: required" {
		t.Errorf("got %v", err)
	}
}

func TestDecodeAcceptsServerSetFieldsAndStatus(t *testing.T) {
	input := strings.Replace(minimalDS, "  name: agent", `  name: agent
  namespace: default
  uid: 0b0f6a8e-4c1b-4f7e-9f57-1c4d2f7b2a11
  resourceVersion: "42"
  generation: 3
  creationTimestamp: "2024-05-01T12:00:00Z"
  ownerReferences:
  - apiVersion: v1
    kind: Namespace
    name: default
    uid: abc
    controller: true`, 1) + `status:
  observedGeneration: 3
  desiredNumberScheduled: 2
  currentNumberScheduled: 2
  numberMisscheduled: 0
  numberReady: 1
`
	docs, err := Decode("ds.yaml", []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	ds := docs[0].Object.(*api.DaemonSet)
	if ds.UID == "" || ds.ResourceVersion != "42" || ds.Generation != 3 || ds.CreationTimestamp.IsZero() || ds.Status.NumberReady != 1 {
		t.Errorf("server-set fields lost: %+v", ds)
	}
	// creationTimestamp: null, as kubectl prints for templates, decodes.
	input = strings.Replace(minimalDS, "    metadata:\n", "    metadata:\n      creationTimestamp: null\n", 1)
	if _, err := Decode("ds.yaml", []byte(input)); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRealDaemonSet(t *testing.T) {
	data, err := os.ReadFile("testdata/fluentd-elasticsearch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Decode("fluentd-elasticsearch.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("got %d documents", len(docs))
	}
	if err := Validate(docs[0].Object); err != nil {
		t.Fatalf("before defaults: %v", err)
	}
	Default(docs[0].Object, "")
	if err := docs[0].Validate(); err != nil {
		t.Fatal(err)
	}
	ds := docs[0].Object.(*api.DaemonSet)
	c := ds.Spec.Template.Spec.Containers[0]
	if ds.Namespace != "kube-system" || c.Image != "quay.io/fluentd_elasticsearch/fluentd:v2.5.2" ||
		c.Resources.Limits["memory"] != "200Mi" || c.Resources.Requests["cpu"] != "100m" ||
		c.VolumeMounts[0].MountPath != "/var/log" || ds.Spec.Template.Spec.Volumes[0].HostPath.Path != "/var/log" ||
		*ds.Spec.Template.Spec.TerminationGracePeriodSeconds != 30 || c.ImagePullPolicy != api.PullIfNotPresent {
		t.Errorf("decoded wrongly: %+v", ds)
	}

	// The upstream manifest, with its tolerations, applies unchanged.
	docs = decodeValid(t, "testdata/fluentd-elasticsearch-upstream.yaml")
	ds = docs[0].Object.(*api.DaemonSet)
	want := []api.Toleration{
		{Key: "node-role.kubernetes.io/control-plane", Operator: api.TolerationOpExists, Effect: api.TaintEffectNoSchedule},
		{Key: "node-role.kubernetes.io/master", Operator: api.TolerationOpExists, Effect: api.TaintEffectNoSchedule},
	}
	if got := ds.Spec.Template.Spec.Tolerations; !reflect.DeepEqual(got, want) {
		t.Errorf("tolerations: %+v", got)
	}
}

// decodeValid decodes the one object in a testdata file, defaults and
// validates it, as `hub apply` does, and fails the test on any error.
func decodeValid(t *testing.T, name string) []Document {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Decode(name, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("got %d documents", len(docs))
	}
	Default(docs[0].Object, "")
	if err := docs[0].Validate(); err != nil {
		t.Fatal(err)
	}
	return docs
}

func TestDecodeRealDeployment(t *testing.T) {
	docs := decodeValid(t, "testdata/nginx-deployment.yaml")
	d, ok := docs[0].Object.(*api.Deployment)
	if !ok {
		t.Fatalf("decoded a %T", docs[0].Object)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if d.Namespace != "default" || *d.Spec.Replicas != 3 || d.Spec.Selector.MatchLabels["app"] != "nginx" ||
		d.Spec.Template.Spec.Containers[0].Image != "nginx:1.14.2" || d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort != 80 ||
		d.Spec.Strategy.Type != api.RollingUpdateStrategy || ru == nil || *ru.MaxSurge != api.FromString("25%") ||
		*ru.MaxUnavailable != api.FromString("25%") || *d.Spec.RevisionHistoryLimit != 10 || *d.Spec.ProgressDeadlineSeconds != 600 {
		t.Errorf("decoded or defaulted wrongly: %+v", d.Spec)
	}
}

func TestDecodeDaemonSetWithProbes(t *testing.T) {
	docs := decodeValid(t, "testdata/probe-daemonset.yaml")
	ds := docs[0].Object.(*api.DaemonSet)
	us := ds.Spec.UpdateStrategy
	if us.Type != api.RollingUpdateStrategy || *us.RollingUpdate.MaxUnavailable != api.FromInt(1) || *us.RollingUpdate.MaxSurge != api.FromInt(0) ||
		ds.Spec.MinReadySeconds != 5 || *ds.Spec.RevisionHistoryLimit != 3 || ds.Spec.Rollout != nil {
		t.Errorf("spec: %+v", ds.Spec)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	wantLive := &api.Probe{
		ProbeHandler: api.ProbeHandler{HTTPGet: &api.HTTPGetAction{
			Path: "/", Port: api.FromString("metrics"), Scheme: "HTTP",
			HTTPHeaders: []api.HTTPHeader{{Name: "X-Probe", Value: "liveness"}},
		}},
		InitialDelaySeconds: 10, TimeoutSeconds: 1, PeriodSeconds: 20, SuccessThreshold: 1, FailureThreshold: 3,
	}
	wantReady := &api.Probe{
		ProbeHandler:   api.ProbeHandler{TCPSocket: &api.TCPSocketAction{Port: api.FromInt(9100)}},
		TimeoutSeconds: 2, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 5,
	}
	if !reflect.DeepEqual(c.LivenessProbe, wantLive) {
		t.Errorf("liveness probe: %+v", c.LivenessProbe)
	}
	if !reflect.DeepEqual(c.ReadinessProbe, wantReady) {
		t.Errorf("readiness probe: %+v", c.ReadinessProbe)
	}
	tol := ds.Spec.Template.Spec.Tolerations
	if len(tol) != 2 || tol[0].Key != "" || tol[0].Operator != api.TolerationOpExists || tol[1].TolerationSeconds == nil || *tol[1].TolerationSeconds != 300 {
		t.Errorf("tolerations: %+v", tol)
	}
}

func TestDecodeDaemonSetWithRollout(t *testing.T) {
	docs := decodeValid(t, "testdata/rollout-daemonset.yaml")
	ds := docs[0].Object.(*api.DaemonSet)
	r := ds.Spec.Rollout
	want := &api.RolloutSpec{
		Canary:                  &api.CanarySpec{NodeSelector: map[string]string{"ring": "canary"}, PauseSeconds: int32p(600)},
		MaxFailures:             ptr(api.FromString("5%")),
		OnFailure:               api.OnFailureRollback,
		OfflineNodes:            api.OfflineWait,
		PrePull:                 true,
		ProgressDeadlineSeconds: int32p(900),
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("rollout: %+v", r)
	}
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if *ru.MaxUnavailable != api.FromString("10%") || *ru.MaxSurge != api.FromInt(0) {
		t.Errorf("rolling update: %+v", ru)
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if c.StartupProbe.HTTPGet.Port != api.FromString("http") || c.StartupProbe.FailureThreshold != 30 ||
		c.LivenessProbe.Exec.Command[1] != "check" || c.ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Errorf("probes: %+v %+v %+v", c.StartupProbe, c.LivenessProbe, c.ReadinessProbe)
	}

	// Defaults fill in what the block leaves out, and only when it is there.
	input := strings.Replace(minimalDS, "  template:", "  rollout:\n    canary: {count: 1}\n  template:", 1)
	docs, err := Decode("ds.yaml", []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	Default(docs[0].Object, "")
	if err := docs[0].Validate(); err != nil {
		t.Fatal(err)
	}
	r = docs[0].Object.(*api.DaemonSet).Spec.Rollout
	if r.OnFailure != api.OnFailurePause || r.OfflineNodes != api.OfflineSkip || *r.ProgressDeadlineSeconds != 600 || *r.Canary.Count != api.FromInt(1) {
		t.Errorf("rollout defaults: %+v", r)
	}
}

func TestDecodeIntOrString(t *testing.T) {
	tests := []struct {
		value string
		want  api.IntOrString
	}{
		{"1", api.FromInt(1)},
		{"0", api.FromInt(0)},
		{"-3", api.FromInt(-3)}, // decodes; Validate refuses it
		{"25%", api.FromString("25%")},
		{`"2"`, api.FromString("2")}, // a quoted number stays a string, as in Kubernetes
		{`""`, api.FromString("")},
		{"2147483647", api.FromInt(2147483647)},
	}
	for _, tt := range tests {
		input := strings.Replace(minimalDS, "  template:", "  updateStrategy: {rollingUpdate: {maxUnavailable: "+tt.value+"}}\n  template:", 1)
		docs, err := Decode("ds.yaml", []byte(input))
		if err != nil {
			t.Errorf("%s: %v", tt.value, err)
			continue
		}
		got := docs[0].Object.(*api.DaemonSet).Spec.UpdateStrategy.RollingUpdate.MaxUnavailable
		if got == nil || *got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.value, got, tt.want)
		}
	}
	// JSON too, and a null is no value.
	docs, err := Decode("ds.json", []byte(`{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"x"},
		"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":"50%","maxSurge":null}},"template":{"spec":{"containers":[{"name":"c","image":"i"}]}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ru := docs[0].Object.(*api.DaemonSet).Spec.UpdateStrategy.RollingUpdate
	if *ru.MaxUnavailable != api.FromString("50%") || ru.MaxSurge != nil {
		t.Errorf("got %+v", ru)
	}
	_, err = Decode("ds.json", []byte(`{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"x"},
		"spec":{"updateStrategy":{"rollingUpdate":{"maxUnavailable":false}},"template":{"spec":{"containers":[{"name":"c","image":"i"}]}}}}`))
	if err == nil || err.Error() != `ds.json: document 1: spec.updateStrategy.rollingUpdate.maxUnavailable: must be an integer or a string (such as 8080, "http" or "25%")` {
		t.Errorf("got %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecodeRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/fluentd-elasticsearch.yaml")
	if err != nil {
		t.Fatal(err)
	}
	full := strings.Replace(minimalDS, "        env:", `        command: [/bin/agent]
        args: ["--verbose"]
        workingDir: /srv
        imagePullPolicy: Always
        resources:
          limits: {cpu: 500m, memory: 64Mi}
          requests: {cpu: 0.25, memory: 1e6}
        volumeMounts:
        - {name: scratch, mountPath: /scratch, readOnly: true}
        env:`, 1) + `      volumes:
      - name: scratch
        emptyDir: {medium: Memory, sizeLimit: 1Gi}
      nodeSelector: {kubernetes.io/arch: arm64}
      hostNetwork: true
      restartPolicy: Always
`
	inputs := map[string]string{
		"fluentd":   string(data),
		"full":      full,
		"namespace": ns("team-a"),
		"node": `apiVersion: v1
kind: Node
metadata: {name: board-7, labels: {site: north}}
spec: {unschedulable: true}
status:
  capacity: {cpu: "4", memory: 4Gi}
  conditions: [{type: Ready, status: "True", lastHeartbeatTime: "2024-05-01T12:00:00Z"}]
  nodeInfo: {architecture: arm64}
  desiredRevision: 18446744073709551615
  lastSeen: "2024-05-01T12:00:00.5Z"
`,
	}
	for _, file := range []string{"fluentd-elasticsearch-upstream", "nginx-deployment", "probe-daemonset", "rollout-daemonset"} {
		data, err := os.ReadFile("testdata/" + file + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		inputs[file] = string(data)
	}
	inputs["deployment-status"] = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, uid: u1, resourceVersion: "7", generation: 2}
spec:
  replicas: 0
  paused: true
  minReadySeconds: 10
  strategy: {type: Recreate}
  selector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:1", readinessProbe: {httpGet: {port: 80, scheme: HTTPS, host: 127.0.0.1}}}]
      tolerations: [{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 0}]
status:
  observedGeneration: 2
  replicas: 3
  updatedReplicas: 1
  readyReplicas: 2
  availableReplicas: 2
  unavailableReplicas: 1
  collisionCount: 1
  conditions: [{type: Progressing, status: "True", reason: NewReplicaSetAvailable, lastUpdateTime: "2024-05-01T12:00:00Z"}]
  rollout: {revision: 4, templateHash: abc, phase: Progressing, updated: 1, ready: 2, unavailable: 1, failed: 0, offlinePending: 0, total: 3}
`
	inputs["daemonset-status"] = minimalDS + `status:
  desiredNumberScheduled: 3
  currentNumberScheduled: 3
  numberMisscheduled: 0
  numberReady: 2
  collisionCount: 0
  rollout:
    revision: 2
    templateHash: 5d8f
    phase: Paused
    message: canary done
    updated: 1
    ready: 1
    unavailable: 0
    failed: 1
    offlinePending: 1
    total: 3
    prePulled: 3
    updating: [board-2]
    failedNodes: [{node: board-3, reason: CrashLoopBackOff}]
    canaryDone: true
    pausedAt: "2024-05-01T12:00:00Z"
    startedAt: "2024-05-01T11:00:00Z"
    lastProgressTime: "2024-05-01T12:00:00Z"
    lastGoodRevision: 1
`
	inputs["controllerrevision"] = `apiVersion: apps/v1
kind: ControllerRevision
metadata:
  name: agent-5d8f9c
  namespace: default
  labels: {app: agent, controller-revision-hash: 5d8f9c}
  ownerReferences: [{apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: u1, controller: true}]
revision: 3
data:
  metadata: {labels: {app: agent}}
  spec:
    containers:
    - name: main
      image: registry.local/agent:1.0
      livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3}
`
	inputs["event"] = `apiVersion: v1
kind: Event
metadata: {name: agent-x.17c3a, namespace: default, creationTimestamp: "2024-05-01T12:00:00Z"}
involvedObject: {kind: Pod, namespace: default, name: agent-x, uid: u2, fieldPath: "spec.containers{main}"}
reason: Unhealthy
message: "Liveness probe failed: HTTP probe failed with statuscode: 500"
source: {component: edge-agent, host: board-1}
firstTimestamp: "2024-05-01T12:00:00Z"
lastTimestamp: "2024-05-01T12:05:00Z"
count: 3
type: Warning
`
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			first, err := Decode(name, []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			Default(first[0].Object, "")
			if err := first[0].Validate(); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(first[0].Object)
			if err != nil {
				t.Fatal(err)
			}
			second, err := Decode(name, b)
			if err != nil {
				t.Fatalf("re-decoding %s: %v", b, err)
			}
			if !reflect.DeepEqual(first[0].Object, second[0].Object) {
				t.Errorf("round trip changed the object:\n%+v\n%+v", first[0].Object, second[0].Object)
			}
			// As `hub get -o yaml` prints it.
			y, err := yaml.Marshal(first[0].Object)
			if err != nil {
				t.Fatal(err)
			}
			third, err := Decode(name, y)
			if err != nil {
				t.Fatalf("re-decoding %s: %v", y, err)
			}
			if !reflect.DeepEqual(first[0].Object, third[0].Object) {
				t.Errorf("YAML round trip changed the object:\n%+v\n%+v", first[0].Object, third[0].Object)
			}
		})
	}
}

func TestDecodeBounds(t *testing.T) {
	big := make([]byte, MaxSize+1)
	_, err := Decode("big.yaml", big)
	if err == nil || !strings.Contains(err.Error(), "more than the limit") {
		t.Errorf("got %v", err)
	}

	deepYAML := "apiVersion: v1\nkind: Namespace\nmetadata:\n  annotations:\n    x: " + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "\n"
	_, err = Decode("deep.yaml", []byte(deepYAML))
	if err == nil || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Errorf("got %v", err)
	}
	deepJSON := `{"apiVersion":"v1","kind":"Namespace","metadata":{"annotations":{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "}}}"
	_, err = Decode("deep.json", []byte(deepJSON))
	if err == nil || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Errorf("got %v", err)
	}
	// 63 levels under the document are fine as far as nesting goes.
	ok := `{"apiVersion":"v1","kind":"Namespace","metadata":{"annotations":{"x":` + strings.Repeat("[", 61) + strings.Repeat("]", 61) + "}}}"
	_, err = Decode("ok.json", []byte(ok))
	if err == nil || strings.Contains(err.Error(), "nested") {
		t.Errorf("got %v", err)
	}

	// Very many errors are capped.
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n")
	for i := 0; i < 500; i++ {
		b.WriteString("f")
		b.WriteString(strings.Repeat("x", i%7+1))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(strings.Repeat("y", i/26))
		b.WriteString(": 1\n")
	}
	_, err = Decode("many.yaml", []byte(b.String()))
	list := errorsOf(t, err)
	if len(list) != maxErrors+1 || list[maxErrors].Msg != "400 more errors not shown" {
		t.Errorf("got %d errors, last %v", len(list), list[len(list)-1])
	}

	// Very many bad documents stop the decoder early.
	_, err = Decode("many.yaml", []byte(strings.Repeat("x\n---\n", 100000)))
	list = errorsOf(t, err)
	if len(list) != maxErrors+1 || list[maxErrors].Msg != "too many errors; stopped looking for more" {
		t.Errorf("got %d errors, last %v", len(list), list[len(list)-1])
	}

	// Truncated JSON says so.
	_, err = Decode("cut.json", []byte(`{"apiVersion": "v1", "kind": "Namespace", "metadata": {`))
	if err == nil || err.Error() != "cut.json: document 1: line 1: invalid JSON: unexpected end of JSON input" {
		t.Errorf("got %v", err)
	}
}

func TestDecodeEmptyInput(t *testing.T) {
	for _, in := range []string{"", "\n", "# just a comment\n", "---\n---\n", "\xef\xbb\xbf", "null", "~\n"} {
		docs, err := Decode("empty.yaml", []byte(in))
		if err != nil || len(docs) != 0 {
			t.Errorf("%q: got %v, %v", in, docs, err)
		}
	}
}

func TestErrorRendering(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{Source: "ds.yaml", Document: 2, Field: "spec.template.spec.containers[0].image", Msg: "required"}, "ds.yaml: document 2: spec.template.spec.containers[0].image: required"},
		{Error{Document: 2, Field: "spec", Msg: "required"}, "document 2: spec: required"},
		{Error{Source: "ds.yaml", Field: "spec", Msg: "required"}, "ds.yaml: spec: required"},
		{Error{Field: "spec", Msg: "required"}, "spec: required"},
		{Error{Source: "a.yaml", Document: 1, Line: 3, Msg: "invalid YAML: x"}, "a.yaml: document 1: line 3: invalid YAML: x"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	list := ErrorList{&tests[0].e, &tests[1].e}
	if got := list.Error(); got != tests[0].want+"\n"+tests[1].want {
		t.Errorf("list renders as %q", got)
	}
	var e *Error
	if !errors.As(error(list), &e) || e != &tests[0].e {
		t.Error("errors.As does not find the first Error")
	}
}
