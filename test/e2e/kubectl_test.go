package e2e

// The installed kubectl (1.32, from the machine image) against a TLS hub
// with an enrolled agent running pods in containerd (issue 19): get with
// kubectl's own columns, selectors, output formats and -w; describe;
// explain; and the errors and exit codes kubectl shows. kubectl is not
// patched or wrapped: it runs with the kubeconfig `hub kubeconfig` writes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// kubectl runs the installed kubectl against one hub.
type kubectl struct {
	t    *testing.T
	bin  string
	env  []string
	args []string // before the command's own
}

func newKubectl(t *testing.T, h *hubProc) *kubectl {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is not installed (%v): these tests need the kubectl 1.32 the machine image ships (Debian's kubernetes-client, or the kubectl binary on PATH)", err)
	}
	home := t.TempDir()
	return &kubectl{t: t, bin: bin,
		env:  []string{"HOME=" + home, "KUBECONFIG=" + h.kubeconfig(), "PATH=/usr/bin:/bin:/usr/local/bin"},
		args: []string{"--cache-dir", filepath.Join(home, "cache"), "--request-timeout", "30s"}}
}

// run runs kubectl and returns stdout, stderr and the exit code.
func (k *kubectl) run(args ...string) (string, string, int) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, append(append([]string{}, k.args...), args...)...)
	cmd.Env = k.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		k.t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// ok runs kubectl, fails the test unless it exits 0, and returns stdout.
func (k *kubectl) ok(args ...string) string {
	k.t.Helper()
	out, errOut, code := k.run(args...)
	if code != 0 {
		k.t.Fatalf("kubectl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// fails runs kubectl and checks that it exits 1 with want in stderr.
func (k *kubectl) fails(want string, args ...string) {
	k.t.Helper()
	out, errOut, code := k.run(args...)
	if code != 1 || !strings.Contains(errOut, want) {
		k.t.Errorf("kubectl %s: exit %d, stderr %q (stdout %q); want exit 1 and %q", strings.Join(args, " "), code, errOut, out, want)
	}
}

var columnGap = regexp.MustCompile(`\s{2,}`)

// header is a table's first line with its columns joined by "|".
func header(out string) string {
	line, _, _ := strings.Cut(out, "\n")
	return columnGap.ReplaceAllString(strings.TrimSpace(line), "|")
}

// rows are a table's lines after the header, columns joined by "|".
func rows(out string) []string {
	var rs []string
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if i > 0 {
			rs = append(rs, columnGap.ReplaceAllString(strings.TrimSpace(line), "|"))
		}
	}
	return rs
}

func wantHeader(t *testing.T, what, out, want string) {
	t.Helper()
	if got := header(out); got != want {
		t.Errorf("%s: header %q, want %q\n%s", what, got, want, out)
	}
}

func TestKubectl(t *testing.T) {
	h := startHub(t, hubOptions{tls: true})
	a := startEnrolledAgent(t, h)
	k := newKubectl(t, h)

	h.applyYAML(daemonSet("kds", env.image, "", "sleep 3600"))
	h.applyYAML(`apiVersion: apps/v1
kind: Deployment
metadata: {name: kdep}
spec:
  replicas: 1
  selector: {matchLabels: {app: kdep}}
  template:
    metadata: {labels: {app: kdep}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - {name: main, image: ` + env.image + `, command: [sh, -c, "sleep 3600"]}
---
apiVersion: v1
kind: Service
metadata: {name: kds}
spec:
  selector: {app: kds}
  ports: [{port: 8080, targetPort: 8080}]
`)
	eventually(t, 60*time.Second, "the pods Running", func() error {
		out, _, _ := k.run("get", "pods", "--no-headers")
		if n := strings.Count(out, " Running "); n != 2 {
			return fmt.Errorf("%d pods Running:\n%s", n, out)
		}
		return nil
	})

	// get: kubectl's own columns, from the hub's Table.
	out := k.ok("get", "nodes")
	wantHeader(t, "get nodes", out, "NAME|STATUS|ROLES|AGE|VERSION")
	if rs := rows(out); len(rs) != 1 || !strings.HasPrefix(rs[0], a.node+"|Ready|<none>|") {
		t.Errorf("get nodes rows %q", rs)
	}
	wantHeader(t, "get nodes -o wide", k.ok("get", "nodes", "-o", "wide"),
		"NAME|STATUS|ROLES|AGE|VERSION|INTERNAL-IP|EXTERNAL-IP|OS-IMAGE|KERNEL-VERSION|CONTAINER-RUNTIME")
	out = k.ok("get", "pods")
	wantHeader(t, "get pods", out, "NAME|READY|STATUS|RESTARTS|AGE")
	for _, r := range rows(out) {
		if !strings.Contains(r, "|1/1|Running|0|") {
			t.Errorf("get pods row %q", r)
		}
	}
	out = k.ok("get", "pods", "-o", "wide")
	wantHeader(t, "get pods -o wide", out, "NAME|READY|STATUS|RESTARTS|AGE|IP|NODE|NOMINATED NODE|READINESS GATES")
	for _, r := range rows(out) {
		if !strings.HasSuffix(r, "|"+a.node+"|<none>|<none>") {
			t.Errorf("get pods -o wide row %q", r)
		}
	}
	wantHeader(t, "get pods -A", k.ok("get", "pods", "-A"), "NAMESPACE|NAME|READY|STATUS|RESTARTS|AGE")
	wantHeader(t, "get ds", k.ok("get", "ds"), "NAME|DESIRED|CURRENT|READY|UP-TO-DATE|AVAILABLE|NODE SELECTOR|AGE")
	out = k.ok("get", "deploy", "-o", "wide")
	wantHeader(t, "get deploy -o wide", out, "NAME|READY|UP-TO-DATE|AVAILABLE|AGE|CONTAINERS|IMAGES|SELECTOR")
	if rs := rows(out); len(rs) != 1 || !strings.HasPrefix(rs[0], "kdep|1/1|1|1|") || !strings.HasSuffix(rs[0], "|main|"+env.image+"|app=kdep") {
		t.Errorf("get deploy -o wide rows %q", rs)
	}
	out = k.ok("get", "svc")
	wantHeader(t, "get svc", out, "NAME|TYPE|CLUSTER-IP|EXTERNAL-IP|PORT(S)|AGE")
	if !regexp.MustCompile(`(?m)^kds\|ClusterIP\|10\.43\.\d+\.\d+\|<none>\|8080/TCP\|`).MatchString(strings.Join(rows(out), "\n")) {
		t.Errorf("get svc rows %q", rows(out))
	}
	wantHeader(t, "get ep", k.ok("get", "ep"), "NAME|ENDPOINTS|AGE")
	wantHeader(t, "get ev", k.ok("get", "ev", "-A"), "NAMESPACE|LAST SEEN|TYPE|REASON|OBJECT|MESSAGE")
	// Several kinds at once, as kubectl names them.
	out = k.ok("get", "ds,deploy,svc")
	for _, want := range []string{"daemonset.apps/kds", "deployment.apps/kdep", "service/kds"} {
		if !strings.Contains(out, want) {
			t.Errorf("get ds,deploy,svc: no %s in\n%s", want, out)
		}
	}
	out = k.ok("get", "all")
	for _, want := range []string{"pod/kds-", "service/kds", "daemonset.apps/kds", "deployment.apps/kdep"} {
		if !strings.Contains(out, want) {
			t.Errorf("get all: no %s in\n%s", want, out)
		}
	}

	// Selectors, output formats, sorting, paging.
	if rs := rows(k.ok("get", "pods", "-l", "app=kdep")); len(rs) != 1 || !strings.HasPrefix(rs[0], "kdep-") {
		t.Errorf("get pods -l app=kdep: %q", rs)
	}
	if rs := rows(k.ok("get", "pods", "--field-selector", "spec.nodeName="+a.node+",status.phase=Running")); len(rs) != 2 {
		t.Errorf("get pods --field-selector: %q", rs)
	}
	var list struct {
		Kind  string
		Items []struct {
			APIVersion, Kind string
			Metadata         struct{ Name string }
		}
	}
	if err := json.Unmarshal([]byte(k.ok("get", "pods", "-o", "json")), &list); err != nil || list.Kind != "List" || len(list.Items) != 2 ||
		list.Items[0].Kind != "Pod" || list.Items[0].APIVersion != "v1" {
		t.Errorf("get pods -o json: %v %+v", err, list)
	}
	if out := k.ok("get", "ds", "kds", "-o", "yaml"); !strings.Contains(out, "kind: DaemonSet") || !strings.Contains(out, "apiVersion: apps/v1") {
		t.Errorf("get ds kds -o yaml:\n%s", out)
	}
	if out := k.ok("get", "pods", "-o", "jsonpath={.items[*].spec.nodeName}"); out != a.node+" "+a.node {
		t.Errorf("jsonpath: %q", out)
	}
	out = k.ok("get", "pods", "--sort-by", "{.metadata.name}", "-o", "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName")
	if rs := rows(out); header(out) != "NAME|NODE" || len(rs) != 2 || rs[0] > rs[1] {
		t.Errorf("custom columns sorted: %q", out)
	}
	if rs := rows(k.ok("get", "pods", "--chunk-size", "1")); len(rs) != 2 {
		t.Errorf("get pods --chunk-size 1: %q", rs)
	}

	// describe makes its own reads: the object, its events, its pods.
	podName := strings.Fields(k.ok("get", "pods", "-l", "app=kds", "-o", "name"))[0]
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"describe", "node", a.node}, []string{"Name:               " + a.node, "HolderIdentity:  " + a.node, "Conditions:", "Non-terminated Pods:", "kds-"}},
		{[]string{"describe", podName}, []string{"Node:", a.node, "Containers:", "main:", "Events:"}},
		{[]string{"describe", "ds", "kds"}, []string{"Name:           kds", "Pods Status:", "1 Running"}},
		{[]string{"describe", "deploy", "kdep"}, []string{"Name:", "kdep", "Replicas:", "1 desired"}},
		{[]string{"describe", "svc", "kds"}, []string{"Name:", "kds", "Port:", "8080/TCP"}},
	} {
		out := k.ok(c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("kubectl %s: no %q in\n%s", strings.Join(c.args, " "), w, out)
			}
		}
	}

	// The Service's endpoints, which kubectl reads from EndpointSlices.
	if out := k.ok("describe", "svc", "kds"); !regexp.MustCompile(`Endpoints:\s+[0-9.]+:8080\n`).MatchString(out) {
		t.Errorf("describe svc kds: no endpoints:\n%s", out)
	}

	// rollout status reads (and watches) the workloads' status.
	if out := k.ok("rollout", "status", "deploy/kdep", "--timeout", "30s"); !strings.Contains(out, `deployment "kdep" successfully rolled out`) {
		t.Errorf("rollout status deploy/kdep: %q", out)
	}
	if out := k.ok("rollout", "status", "ds/kds", "--timeout", "30s"); !strings.Contains(out, `daemon set "kds" successfully rolled out`) {
		t.Errorf("rollout status ds/kds: %q", out)
	}

	// explain, from the hub's OpenAPI.
	out = k.ok("explain", "pods.spec.containers")
	for _, w := range []string{"KIND:       Pod", "FIELD: containers <[]Container>", "image\t<string> -required-"} {
		if !strings.Contains(out, w) {
			t.Errorf("explain pods.spec.containers: no %q in\n%s", w, out)
		}
	}
	if out := k.ok("explain", "daemonsets.spec.rollout"); !strings.Contains(out, "canary") {
		t.Errorf("explain daemonsets.spec.rollout (Flotilla's):\n%s", out)
	}

	// Errors, as kubectl shows the hub's answers.
	k.fails(`Error from server (NotFound): pods "nope" not found`, "get", "pods", "nope")
	k.fails(`the server doesn't have a resource type "widgets"`, "get", "widgets")
	k.fails(`Error from server (BadRequest)`, "get", "pods", "--field-selector", "spec.schedulerName=x")
	k.fails(`field "nope" does not exist`, "explain", "pods.spec.nope")
	// An unsupported or unknown field is refused by the hub at its path,
	// and kubectl shows it; writes it does not serve yet are refused, not
	// half done.
	_, errOut, code := k.run("patch", "ds", "kds", "--type", "merge", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"x","imagee":"y"}]}}}}`)
	if code != 1 || !strings.Contains(errOut, "spec.template.spec.containers[0].imagee: unknown field") {
		t.Errorf("patch with an unknown field: exit %d, %q", code, errOut)
	}
	k.fails(`POST is not supported on /api/v1/namespaces/default/configmaps`, "create", "configmap", "c1", "--from-literal", "a=1")
	noToken := &kubectl{t: t, bin: k.bin, env: k.env, args: append(append([]string{}, k.args...), "--token", "wrong")}
	noToken.fails("You must be logged in to the server", "get", "nodes")

	// get -w: the list, then each change as it happens.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.bin, append(append([]string{}, k.args...), "get", "pods", "-l", "app=kdep", "-w", "--output-watch-events")...)
	cmd.Env = k.env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var werr bytes.Buffer
	cmd.Stderr = &werr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("kubectl get -w ended: %s", werr.String())
			}
			return l
		case <-ctx.Done():
			t.Fatalf("kubectl get -w: no line within a minute: %s", werr.String())
		}
		return ""
	}
	if l := next(); columnGap.ReplaceAllString(l, "|") != "EVENT|NAME|READY|STATUS|RESTARTS|AGE" {
		t.Fatalf("get -w header %q", l)
	}
	first := next()
	if !strings.HasPrefix(first, "ADDED") || !strings.Contains(first, "Running") {
		t.Fatalf("get -w first row %q", first)
	}
	kdepPod := strings.Fields(first)[1]
	k.ok("delete", "pod", kdepPod)
	sawDeleted, sawNew := false, false
	for !sawDeleted || !sawNew {
		l := next()
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "DELETED" && f[1] == kdepPod:
			sawDeleted = true
		case len(f) > 1 && f[0] == "ADDED" && f[1] != kdepPod:
			sawNew = true
		}
	}
}
