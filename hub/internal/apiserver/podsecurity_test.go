package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// restrictedNS is a namespace that enforces the restricted level.
const restrictedNS = `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"locked","labels":{"pod-security.kubernetes.io/enforce":"restricted"}}}`

// lockedDS is a DaemonSet in the locked namespace with the given container
// securityContext (JSON) and pod-level fields (JSON members, may be "").
func lockedDS(containerSC, podFields string) string {
	if podFields != "" {
		podFields += ","
	}
	return `{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"sensor","namespace":"locked"},
 "spec":{"selector":{"matchLabels":{"app":"sensor"}},"template":{"metadata":{"labels":{"app":"sensor"}},
 "spec":{` + podFields + `"containers":[{"name":"reader","image":"reg/sensor:1","securityContext":` + containerSC + `}]}}}}`
}

// confined is a container securityContext the restricted level admits.
const confined = `{"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}}`

func causes(t *testing.T, code int, body []byte) []api.StatusCause {
	t.Helper()
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil || code != http.StatusUnprocessableEntity || st.Reason != api.ReasonInvalid || st.Details == nil {
		t.Fatalf("want a 422 Invalid with causes, got %d %s", code, body)
	}
	return st.Details.Causes
}

// TestRestrictedNamespaceRefusesAPrivilegedDaemonSet: a namespace created
// in the same apply as the DaemonSet already enforces its level; the 422
// names each violation at its field path, and nothing is written, the
// namespace included.
func TestRestrictedNamespaceRefusesAPrivilegedDaemonSet(t *testing.T) {
	srv, st := newServer(t)
	before := st.Version()
	privileged := `{"privileged":true,"capabilities":{"add":["NET_ADMIN"]}}`
	code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(restrictedNS, lockedDS(privileged, `"hostNetwork":true`)))
	got := causes(t, code, body)
	const c0 = "spec.template.spec.containers[0]."
	want := []api.StatusCause{
		{Field: "items[1].spec.template.spec.hostNetwork", Message: `document 1: items[1].spec.template.spec.hostNetwork: violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)`},
		{Field: "items[1]." + c0 + "securityContext.privileged", Message: `document 1: items[1].` + c0 + `securityContext.privileged: violates PodSecurity "restricted:latest": privileged (container "reader" must not set securityContext.privileged=true)`},
		{Field: "items[1]." + c0 + "securityContext.allowPrivilegeEscalation", Message: `document 1: items[1].` + c0 + `securityContext.allowPrivilegeEscalation: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "reader" must set securityContext.allowPrivilegeEscalation=false)`},
		{Field: "items[1]." + c0 + "securityContext.runAsNonRoot", Message: `document 1: items[1].` + c0 + `securityContext.runAsNonRoot: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "reader" must set securityContext.runAsNonRoot=true)`},
		{Field: "items[1]." + c0 + "securityContext.seccompProfile", Message: `document 1: items[1].` + c0 + `securityContext.seccompProfile: violates PodSecurity "restricted:latest": seccompProfile (pod or container "reader" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`},
		{Field: "items[1]." + c0 + "securityContext.capabilities.drop", Message: `document 1: items[1].` + c0 + `securityContext.capabilities.drop: violates PodSecurity "restricted:latest": unrestricted capabilities (container "reader" must set securityContext.capabilities.drop=["ALL"])`},
		{Field: "items[1]." + c0 + "securityContext.capabilities.add[0]", Message: `document 1: items[1].` + c0 + `securityContext.capabilities.add[0]: violates PodSecurity "restricted:latest": unrestricted capabilities (container "reader" must not include "NET_ADMIN" in securityContext.capabilities.add)`},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("causes\n%s\nwant\n%s", strings.ReplaceAll(fmt.Sprint(got), "} {", "}\n{"), strings.ReplaceAll(fmt.Sprint(want), "} {", "}\n{"))
	}
	if st.Version() != before {
		t.Fatal("a refused apply wrote something")
	}
	// The confined DaemonSet goes in.
	if got := applyActions(t, srv, restrictedNS, lockedDS(confined, "")); fmt.Sprint(got) != "[Namespace/locked created DaemonSet/sensor created]" {
		t.Fatalf("got %v", got)
	}
}

func TestLevelsAtApply(t *testing.T) {
	hostPort := `{"name":"reader","image":"reg/sensor:1","ports":[{"containerPort":502,"hostPort":502}]}`
	for _, tc := range []struct {
		level string
		item  string
		field string // "" if admitted
	}{
		{"privileged", lockedDS(`{"privileged":true}`, `"hostNetwork":true`), ""},
		{"baseline", lockedDS(`{}`, ""), ""},
		{"baseline", lockedDS(`{"capabilities":{"add":["CHOWN","CAP_KILL"]}}`, ""), ""},
		{"baseline", lockedDS(`{"capabilities":{"add":["SYS_ADMIN"]}}`, ""), "spec.template.spec.containers[0].securityContext.capabilities.add[0]"},
		{"baseline", lockedDS(`{"seccompProfile":{"type":"Unconfined"}}`, ""), "spec.template.spec.containers[0].securityContext.seccompProfile.type"},
		{"baseline", strings.Replace(lockedDS(`{}`, ""), `{"name":"reader","image":"reg/sensor:1","securityContext":{}}`, hostPort, 1), "spec.template.spec.containers[0].ports[0].hostPort"},
		{"baseline", lockedDS(`{}`, `"volumes":[{"name":"dev","hostPath":{"path":"/dev"}}]`), "spec.template.spec.volumes[0].hostPath"},
		{"restricted", lockedDS(confined, ""), ""},
		{"restricted", lockedDS(`{"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE"]}}`,
			`"securityContext":{"runAsNonRoot":true,"runAsUser":1000,"seccompProfile":{"type":"Localhost","localhostProfile":"p.json"}}`), ""},
		{"restricted", lockedDS(strings.Replace(confined, `"runAsNonRoot":true`, `"runAsNonRoot":true,"runAsUser":0`, 1), ""), "spec.template.spec.containers[0].securityContext.runAsUser"},
	} {
		srv, _ := newServer(t)
		ns := strings.Replace(restrictedNS, `"restricted"`, fmt.Sprintf("%q", tc.level), 1)
		applyActions(t, srv, ns)
		code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(tc.item))
		switch {
		case tc.field == "" && code != 200:
			t.Errorf("%s: refused: %d %s", tc.level, code, body)
		case tc.field != "":
			got := causes(t, code, body)
			if len(got) != 1 || got[0].Field != "items[0]."+tc.field || !strings.Contains(got[0].Message, `violates PodSecurity "`+tc.level+`:latest"`) {
				t.Errorf("%s: want one violation at %s, got %v", tc.level, tc.field, got)
			}
		}
	}
}

// TestAdmissionOnUpdateAndPatch: a DaemonSet applied before its namespace
// was locked may be applied again unchanged, or with a change that leaves
// its pods alone; a change to its pods must meet the level, by apply or
// by patch.
func TestAdmissionOnUpdateAndPatch(t *testing.T) {
	srv, st := newServer(t)
	open := strings.Replace(restrictedNS, "restricted", "privileged", 1)
	applyActions(t, srv, open, lockedDS(`{}`, ""))
	applyActions(t, srv, restrictedNS)
	if got := applyActions(t, srv, lockedDS(`{}`, "")); got[0] != "DaemonSet/sensor unchanged" {
		t.Fatalf("got %v", got)
	}
	withLabel := strings.Replace(lockedDS(`{}`, ""), `"namespace":"locked"`, `"namespace":"locked","labels":{"team":"a"}`, 1)
	if got := applyActions(t, srv, withLabel); got[0] != "DaemonSet/sensor configured" {
		t.Fatalf("got %v", got)
	}
	before := st.Version()
	code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(lockedDS(`{"privileged":false}`, "")))
	if got := causes(t, code, body); len(got) != 4 {
		t.Errorf("apply of a changed pod spec: %v", got)
	}
	code, body = call(t, srv, "PATCH", "/apis/apps/v1/namespaces/locked/daemonsets/sensor",
		`{"spec":{"template":{"spec":{"hostNetwork":true}}}}`)
	got := causes(t, code, body)
	if got[0].Field != "spec.template.spec.hostNetwork" || !strings.Contains(got[0].Message, "host namespaces (hostNetwork=true)") {
		t.Errorf("patch: %v", got)
	}
	if st.Version() != before {
		t.Fatal("a refused write wrote something")
	}
}

func TestNamespaceLabelsAreChecked(t *testing.T) {
	srv, st := newServer(t)
	before := st.Version()
	bad := strings.Replace(restrictedNS, `"restricted"`, `"strict","pod-security.kubernetes.io/enforce-version":"latest"`, 1)
	code, body := call(t, srv, "POST", "/api/v1/apply", applyBody(bad))
	got := causes(t, code, body)
	want := `document 1: items[0].metadata.labels[pod-security.kubernetes.io/enforce]: "strict" must be one of privileged, baseline, restricted`
	if len(got) != 1 || got[0].Message != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	applyActions(t, srv, restrictedNS)
	code, body = call(t, srv, "PATCH", "/api/v1/namespaces/locked", `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"Baseline"}}}`)
	if got := causes(t, code, body); len(got) != 1 || got[0].Field != "metadata.labels[pod-security.kubernetes.io/enforce]" {
		t.Fatalf("patch: %v", got)
	}
	if st.Version() == before {
		t.Fatal("the valid namespace was not written")
	}
}
