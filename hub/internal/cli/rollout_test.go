package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/apiserver"
	"github.com/flotilla-edge/flotilla/hub/internal/daemonset"
	"github.com/flotilla-edge/flotilla/hub/internal/deployment"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestParseWorkload(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ds/sensor"}, "daemonset.apps/sensor"},
		{[]string{"daemonset", "sensor"}, "daemonset.apps/sensor"},
		{[]string{"deploy/web"}, "deployment.apps/web"},
		{[]string{"deployments.apps", "web"}, "deployment.apps/web"},
		{[]string{"po/web"}, "error"},
		{[]string{"ds"}, "error"},
		{[]string{"ds/a", "ds/b"}, "error"},
	} {
		w, err := parseWorkload(tc.args, "default")
		got := "error"
		if err == nil {
			got = w.String()
		}
		if got != tc.want {
			t.Errorf("%v = %s (%v), want %s", tc.args, got, err, tc.want)
		}
	}
}

func TestImageArgs(t *testing.T) {
	obj, images, err := splitImageArgs([]string{"ds/x", "a=reg/a:2", "*=reg/all:3"})
	if err != nil || len(obj) != 1 || images["a"] != "reg/a:2" || images["*"] != "reg/all:3" {
		t.Fatalf("%v %v %v", obj, images, err)
	}
	for _, bad := range [][]string{{"ds/x"}, {"ds/x", "=img"}, {"ds/x", "a=i", "stray"}} {
		if _, _, err := splitImageArgs(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	cs := []api.Container{{Name: "a", Image: "1"}, {Name: "b", Image: "1"}}
	out, changed, err := setImages(cs, map[string]string{"b": "2"})
	if err != nil || !changed || out[1].Image != "2" || cs[1].Image != "1" {
		t.Fatalf("%v %v %v", out, changed, err)
	}
	if _, changed, _ := setImages(cs, map[string]string{"a": "1"}); changed {
		t.Fatal("no-op reported as a change")
	}
	if _, _, err := setImages(cs, map[string]string{"c": "1"}); err == nil || !strings.Contains(err.Error(), `unable to find container named "c"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestTemplatePatchReplacesExactly(t *testing.T) {
	cur := &api.PodTemplateSpec{
		ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "x"}, Annotations: map[string]string{annotationRestartedAt: "now"}},
		Spec: api.PodSpec{NodeSelector: map[string]string{"site": "a", "arch": "arm64"},
			Containers: []api.Container{{Name: "c", Image: "v2", Env: []api.EnvVar{{Name: "A", Value: "1"}}}}},
	}
	want := &api.PodTemplateSpec{
		ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       api.PodSpec{NodeSelector: map[string]string{"site": "a"}, Containers: []api.Container{{Name: "c", Image: "v1"}}},
	}
	patch, err := templatePatch(cur, want)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	raw, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": cur}})
	_ = json.Unmarshal(raw, &doc)
	var patchDoc any
	raw, _ = json.Marshal(patch)
	_ = json.Unmarshal(raw, &patchDoc)
	merged, _ := json.Marshal(apiserver.MergePatch(doc, patchDoc))
	var got struct {
		Spec struct{ Template api.PodTemplateSpec }
	}
	if err := json.Unmarshal(merged, &got); err != nil {
		t.Fatal(err)
	}
	if api.HashTemplate(&got.Spec.Template) != api.HashTemplate(want) {
		t.Fatalf("patched template = %s", merged)
	}
}

func TestUndoTarget(t *testing.T) {
	tpl := func(img string) api.PodTemplateSpec {
		return api.PodTemplateSpec{Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: img}}}}
	}
	var revs []*api.ControllerRevision
	for i, img := range []string{"v1", "v2", "v3"} {
		revs = append(revs, &api.ControllerRevision{Data: tpl(img), Revision: int64(i + 1)})
	}
	cur := tpl("v3")
	if got, err := undoTarget(&cur, revs, 0); err != nil || got.Revision != 2 {
		t.Fatalf("previous = %v, %v", got, err)
	}
	if got, err := undoTarget(&cur, revs, 1); err != nil || got.Revision != 1 {
		t.Fatalf("to 1 = %v, %v", got, err)
	}
	if got, err := undoTarget(&cur, revs, 3); err != nil || got != nil {
		t.Fatalf("to current = %v, %v", got, err)
	}
	if _, err := undoTarget(&cur, revs, 9); err == nil {
		t.Fatal("missing revision accepted")
	}
	if _, err := undoTarget(&cur, revs[2:], 0); err == nil {
		t.Fatal("undo without history accepted")
	}
}

func dsWith(ro *api.RolloutStatus, gen int64) *api.DaemonSet {
	d := &api.DaemonSet{ObjectMeta: api.ObjectMeta{Name: "sensor", Generation: gen},
		Spec: api.DaemonSetSpec{Template: api.PodTemplateSpec{Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "v2"}}}}}}
	d.Status.ObservedGeneration = 2
	if ro != nil {
		ro.TemplateHash = api.HashTemplate(&d.Spec.Template)
	}
	d.Status.Rollout = ro
	return d
}

func TestRolloutVerdict(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		obj  api.Object
		done bool
		msg  string
		err  string
	}{
		{"spec not observed", dsWith(&api.RolloutStatus{Phase: api.RolloutComplete}, 3), false, "", ""},
		{"progressing", dsWith(&api.RolloutStatus{Phase: api.RolloutProgressing, LastProgressTime: api.NewTime(now.Add(-time.Minute))}, 2), false, "", ""},
		{"complete", dsWith(&api.RolloutStatus{Phase: api.RolloutComplete, OfflinePending: 2, OfflinePendingNodes: []string{"n3", "n4"}}, 2), true,
			`daemon set "sensor" successfully rolled out (2 offline node(s) will update when they return: n3, n4)`, ""},
		{"degraded is not success", dsWith(&api.RolloutStatus{Phase: api.RolloutDegraded, Revision: 2, Failed: 1,
			FailedNodes: []api.NodeReason{{Node: "n1", Reason: "ErrImagePull: reg/x:nope: not found"}}}, 2), true, "",
			"rolled out, but 1 node(s) failed and do not run revision 2\n  n1: ErrImagePull: reg/x:nope: not found"},
		{"complete with failures from an older hub is not success", dsWith(&api.RolloutStatus{Phase: api.RolloutComplete, Failed: 1}, 2), true, "", "1 node(s) failed"},
		{"rolled back names the failure", dsWith(&api.RolloutStatus{Phase: api.RolloutRolledBack, Revision: 3, Updated: 2, Ready: 2, Total: 2,
			Message: "rolled back to the last good revision: 2 of 2 node(s) updated",
			Failure: &api.RolloutFailure{Revision: 2, RolledBackTo: 3, Message: "1 node(s) failed", Nodes: []api.NodeReason{{Node: "n1", Reason: "reverted: CrashLoopBackOff"}}}}, 2),
			true, "", "rollout of revision 2 failed and rolled back to revision 3: 1 node(s) failed\n  n1: reverted: CrashLoopBackOff"},
		{"failed", dsWith(&api.RolloutStatus{Phase: api.RolloutFailed, Message: "3 node(s) failed"}, 2), true, "", "rollout failed: 3 node(s) failed"},
		{"rolled back", dsWith(&api.RolloutStatus{Phase: api.RolloutRolledBack, Message: "x"}, 2), true, "", "failed and was rolled back"},
		{"paused", dsWith(&api.RolloutStatus{Phase: api.RolloutPaused, Message: "canary"}, 2), true, "", "rollout is paused: canary"},
		{"stalled", dsWith(&api.RolloutStatus{Phase: api.RolloutProgressing, LastProgressTime: api.NewTime(now.Add(-21 * time.Minute))}, 2), true, "", "stalled past its progress deadline"},
		{"deployment deadline", func() api.Object {
			d := &api.Deployment{ObjectMeta: api.ObjectMeta{Name: "web", Generation: 1}}
			d.Status = api.DeploymentStatus{ObservedGeneration: 1,
				Conditions: []api.DeploymentCondition{{Type: "Progressing", Status: "False", Reason: "ProgressDeadlineExceeded"}},
				Rollout:    &api.RolloutStatus{Phase: api.RolloutFailed, TemplateHash: api.HashTemplate(&d.Spec.Template)}}
			return d
		}(), true, "", `deployment "web" exceeded its progress deadline`},
	} {
		_, done, msg, err := rolloutVerdict(tc.obj, now)
		if done != tc.done || msg != tc.msg || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: done %v, msg %q, err %v", tc.name, done, msg, err)
		}
		if want := map[bool]int{true: ExitDegraded, false: 1}[strings.Contains(tc.name, "not success")]; err != nil && ExitCode(err) != want {
			t.Errorf("%s: exit code %d, want %d", tc.name, ExitCode(err), want)
		}
	}
}

func TestFollowRolloutPipedAndTerminal(t *testing.T) {
	states := []*api.RolloutStatus{
		{Phase: api.RolloutProgressing, Updated: 1, Total: 3, Updating: []string{"n0"}},
		{Phase: api.RolloutProgressing, Updated: 1, Total: 3, Updating: []string{"n0"}},
		{Phase: api.RolloutProgressing, Updated: 2, Ready: 1, Total: 3, Updating: []string{"n1"}},
		{Phase: api.RolloutComplete, Updated: 3, Ready: 3, Total: 3},
	}
	fetcher := func() func(context.Context) (api.Object, error) {
		i := 0
		return func(context.Context) (api.Object, error) {
			d := dsWith(states[min(i, len(states)-1)], 2)
			i++
			return d, nil
		}
	}
	var piped bytes.Buffer
	pw := &progressWriter{w: &piped, width: func() int { return 80 }}
	if err := followRollout(context.Background(), pw, fetcher(), true, time.Millisecond, time.Now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(piped.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "1/3 updated") || !strings.Contains(lines[1], "2/3 updated") ||
		lines[3] != `daemon set "sensor" successfully rolled out` || strings.Contains(piped.String(), "\x1b") {
		t.Fatalf("piped output:\n%s", piped.String())
	}

	var tty bytes.Buffer
	pw = &progressWriter{w: &tty, tty: true, width: func() int { return 80 }}
	if err := followRollout(context.Background(), pw, fetcher(), true, time.Millisecond, time.Now); err != nil {
		t.Fatal(err)
	}
	out := tty.String()
	// Three different states drawn, each redraw going back over the last.
	if n := strings.Count(out, "\x1b[J"); n != 3 || !strings.Contains(out, "\x1b[4F") || !strings.Contains(out, "█") {
		t.Fatalf("terminal output: %q", out)
	}

	// A failed rollout is an error; a timeout says so.
	fail := func(context.Context) (api.Object, error) {
		return dsWith(&api.RolloutStatus{Phase: api.RolloutFailed, Message: "boom"}, 2), nil
	}
	if err := followRollout(context.Background(), &progressWriter{w: io.Discard, width: func() int { return 80 }}, fail, true, time.Millisecond, time.Now); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	slow := func(context.Context) (api.Object, error) {
		return dsWith(&api.RolloutStatus{Phase: api.RolloutProgressing}, 2), nil
	}
	if err := followRollout(ctx, &progressWriter{w: io.Discard, width: func() int { return 80 }}, slow, true, time.Millisecond, time.Now); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
}

// hub is an in-process hub: the API over a memory store, and the
// controllers, synced by hand.
type hub struct {
	t   *testing.T
	st  store.Store
	url string
	ds  *daemonset.Controller
	dep *deployment.Controller
}

func newHub(t *testing.T, nodes ...string) *hub {
	t.Helper()
	st := store.NewMemory()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(apiserver.New(st, quiet).Handler())
	t.Cleanup(srv.Close)
	h := &hub{t: t, st: st, url: srv.URL,
		ds: daemonset.New(daemonset.Options{Store: st, Logger: quiet}), dep: deployment.New(deployment.Options{Store: st, Logger: quiet})}
	if err := st.Update(func(tx store.Tx) error {
		if err := tx.Put(&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace}, ObjectMeta: api.ObjectMeta{Name: "default"}}); err != nil {
			return err
		}
		for _, n := range nodes {
			node := &api.Node{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNode}, ObjectMeta: api.ObjectMeta{Name: n, UID: "uid-" + n}}
			node.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
			if err := tx.Put(node); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hub) cli(stdin string, args ...string) (string, string, error) {
	cmd := NewRootCommand(BuildInfo{})
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append(args, "--server", h.url))
	err := cmd.Execute()
	return out.String(), errb.String(), err
}

func (h *hub) must(args ...string) string {
	h.t.Helper()
	out, errOut, err := h.cli("", args...)
	if err != nil {
		h.t.Fatalf("hub %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// settle runs the controllers and healthy agents until nothing changes.
func (h *hub) settle() {
	h.t.Helper()
	for i := 0; i < 50; i++ {
		v := h.st.Version()
		if err := h.ds.Sync(); err != nil {
			h.t.Fatal(err)
		}
		if err := h.dep.Sync(); err != nil {
			h.t.Fatal(err)
		}
		if err := h.st.Update(func(tx store.Tx) error {
			pods, _ := store.List[api.Pod](tx, "")
			for _, p := range pods {
				if p.Spec.NodeName == "" || (p.IsReady() && p.Status.SpecHash == api.HashPodSpec(&p.Spec)) {
					continue
				}
				p.Status = api.PodStatus{Phase: api.PodRunning, SpecHash: api.HashPodSpec(&p.Spec),
					Conditions: []api.PodCondition{{Type: api.PodReady, Status: api.ConditionTrue}}}
				if err := tx.Put(p); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			h.t.Fatal(err)
		}
		if h.st.Version() == v {
			return
		}
	}
	h.t.Fatal("the hub did not settle")
}

func (h *hub) image(kind, name string) string {
	var img string
	_ = h.st.View(func(tx store.Tx) error {
		switch kind {
		case api.KindDaemonSet:
			d, err := store.Get[api.DaemonSet](tx, "default", name)
			if err == nil {
				img = d.Spec.Template.Spec.Containers[0].Image
			}
		case api.KindDeployment:
			d, err := store.Get[api.Deployment](tx, "default", name)
			if err == nil {
				img = d.Spec.Template.Spec.Containers[0].Image
			}
		}
		return nil
	})
	return img
}

const sensorYAML = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: sensor}
spec:
  selector: {matchLabels: {app: sensor}}
  template:
    metadata: {labels: {app: sensor}}
    spec:
      containers: [{name: sensor, image: reg/sensor:v1}]
`

func TestRolloutCommandsOnDaemonSet(t *testing.T) {
	h := newHub(t, "n0", "n1", "n2")
	if _, errOut, err := h.cli(sensorYAML, "apply", "-f", "-"); err != nil {
		t.Fatal(err, errOut)
	}
	h.settle()
	if out := h.must("rollout", "status", "ds/sensor"); !strings.Contains(out, `daemon set "sensor" successfully rolled out`) {
		t.Fatalf("status: %s", out)
	}
	if out := h.must("set", "image", "ds/sensor", "sensor=reg/sensor:v2"); out != "daemonset.apps/sensor image updated\n" {
		t.Fatalf("set image: %q", out)
	}
	if _, _, err := h.cli("", "set", "image", "ds/sensor", "nope=x"); err == nil {
		t.Fatal("unknown container accepted")
	}
	h.settle()
	if out := h.must("rollout", "history", "ds/sensor"); !strings.Contains(out, "REVISION  CHANGE-CAUSE\n1         <none>\n2         <none>") {
		t.Fatalf("history:\n%s", out)
	}
	if out := h.must("rollout", "history", "ds/sensor", "--revision=1"); !strings.Contains(out, "reg/sensor:v1") || !strings.Contains(out, "with revision #1") {
		t.Fatalf("history --revision:\n%s", out)
	}
	if out := h.must("get", "controllerrevisions"); !strings.Contains(out, "daemonset.apps/sensor") {
		t.Fatalf("get controllerrevisions:\n%s", out)
	}
	if out := h.must("rollout", "undo", "ds/sensor", "--to-revision=1"); out != "daemonset.apps/sensor rolled back\n" {
		t.Fatalf("undo: %q", out)
	}
	if img := h.image(api.KindDaemonSet, "sensor"); img != "reg/sensor:v1" {
		t.Fatalf("after undo: %s", img)
	}
	h.settle()
	if out := h.must("rollout", "undo", "ds/sensor"); !strings.Contains(out, "rolled back") || h.image(api.KindDaemonSet, "sensor") != "reg/sensor:v2" {
		t.Fatalf("undo to the previous: %q %s", out, h.image(api.KindDaemonSet, "sensor"))
	}
	h.settle()
	h.must("rollout", "pause", "ds/sensor")
	if _, _, err := h.cli("", "rollout", "pause", "ds/sensor"); err == nil || !strings.Contains(err.Error(), "already paused") {
		t.Fatalf("second pause: %v", err)
	}
	h.must("set", "image", "ds/sensor", "sensor=reg/sensor:v3")
	h.settle()
	if _, _, err := h.cli("", "rollout", "status", "ds/sensor"); err == nil || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("status while paused: %v", err)
	}
	h.must("rollout", "resume", "ds/sensor")
	if _, _, err := h.cli("", "rollout", "resume", "ds/sensor"); err == nil || !strings.Contains(err.Error(), "not paused") {
		t.Fatalf("second resume: %v", err)
	}
	h.settle()
	h.must("rollout", "status", "ds/sensor", "--timeout=5s")
	h.must("rollout", "restart", "ds/sensor")
	var d *api.DaemonSet
	_ = h.st.View(func(tx store.Tx) error {
		d, _ = store.Get[api.DaemonSet](tx, "default", "sensor")
		return nil
	})
	if d.Spec.Template.Annotations[annotationRestartedAt] == "" {
		t.Fatalf("restart did not annotate the template: %+v", d.Spec.Template.ObjectMeta)
	}
	if out := h.must("describe", "ds", "sensor"); !strings.Contains(out, "Rollout:") {
		t.Fatalf("describe:\n%s", out)
	}
}

const webYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: reg/web:v1}]
`

func TestDeploymentCommandsAndDrain(t *testing.T) {
	h := newHub(t, "n0", "n1", "n2")
	if _, errOut, err := h.cli(webYAML, "apply", "-f", "-"); err != nil {
		t.Fatal(err, errOut)
	}
	h.must("scale", "deploy/web", "--replicas=3")
	if _, _, err := h.cli("", "scale", "ds/web", "--replicas=3"); err == nil {
		t.Fatal("scaling a daemonset accepted")
	}
	h.settle()
	if out := h.must("get", "deploy"); !strings.Contains(out, "web    3/3     3            3") {
		t.Fatalf("get deploy:\n%s", out)
	}
	if out := h.must("rollout", "status", "deploy/web"); !strings.Contains(out, `deployment "web" successfully rolled out`) {
		t.Fatalf("status: %s", out)
	}
	if out := h.must("describe", "deploy", "web"); !strings.Contains(out, "3 desired | 3 updated | 3 total | 3 available | 0 unavailable") {
		t.Fatalf("describe:\n%s", out)
	}
	if out := h.must("cordon", "n0"); out != "node/n0 cordoned\n" {
		t.Fatalf("cordon: %q", out)
	}
	if out := h.must("cordon", "n0"); out != "node/n0 already cordoned\n" {
		t.Fatalf("cordon again: %q", out)
	}
	h.must("uncordon", "n0")

	// Drain n1 while the Deployment controller runs.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.dep.Run(ctx) }()
	out, errOut, err := h.cli("", "drain", "n1", "--timeout=10s")
	if err != nil {
		t.Fatalf("drain: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(out, "node/n1 cordoned") || !strings.Contains(out, "evicted") || !strings.Contains(out, "node/n1 drained") {
		t.Fatalf("drain output:\n%s", out)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	var pods []*api.Pod
	_ = h.st.View(func(tx store.Tx) error {
		pods, _ = store.List[api.Pod](tx, "")
		return nil
	})
	if len(pods) != 3 {
		t.Fatalf("%d pods after drain", len(pods))
	}
	for _, p := range pods {
		if p.Spec.NodeName == "n1" || p.Spec.NodeName == "" {
			t.Fatalf("pod %s on %q after drain", p.Name, p.Spec.NodeName)
		}
	}
	h.must("uncordon", "n1")

	// DaemonSet pods: left by default, refused with --ignore-daemonsets=false.
	if _, errOut, err := h.cli(sensorYAML, "apply", "-f", "-"); err != nil {
		t.Fatal(err, errOut)
	}
	h.settle()
	if _, _, err := h.cli("", "drain", "n2", "--ignore-daemonsets=false", "--timeout=1s"); err == nil || !strings.Contains(err.Error(), "DaemonSet-managed") {
		t.Fatalf("drain with daemonset pods: %v", err)
	}

	h.must("set", "image", "deploy/web", "web=reg/web:v2")
	h.settle()
	h.must("rollout", "undo", "deploy/web")
	if img := h.image(api.KindDeployment, "web"); img != "reg/web:v1" {
		t.Fatalf("after undo: %s", img)
	}
	h.must("rollout", "pause", "deploy/web")
	h.must("rollout", "resume", "deploy/web")
}

func TestDrainPlan(t *testing.T) {
	ctl := true
	pod := func(kind string) *api.Pod {
		p := &api.Pod{ObjectMeta: api.ObjectMeta{Name: kind, Namespace: "default"}}
		if kind != "" {
			p.OwnerReferences = []api.OwnerReference{{Kind: kind, Name: "x", Controller: &ctl}}
		}
		return p
	}
	evict, daemon, other := drainPlan([]*api.Pod{pod(api.KindDeployment), pod(api.KindDaemonSet), pod("")})
	if len(evict) != 1 || len(daemon) != 1 || len(other) != 1 {
		t.Fatalf("%d %d %d", len(evict), len(daemon), len(other))
	}
	bound := func(node string) *api.Pod { p := pod(api.KindDeployment); p.Spec.NodeName = node; return p }
	refused := bound("")
	refused.Name = "x-refused"
	refused.Status.Conditions = []api.PodCondition{{Type: podScheduled, Status: api.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available"}}
	// One placed elsewhere, one refused with the scheduler's reason: settled.
	if m, settled := placement([]*api.Pod{bound("a"), bound("b"), refused}, "b", map[string]int{"default/x": 2}); !settled || len(m) != 1 ||
		m[0].String() != "pod default/x-refused (deployment default/x): Unschedulable: 0/2 nodes are available" {
		t.Fatalf("placement = %v, %v", m, settled)
	}
	// One not created yet, one created but not decided on: not settled.
	if m, settled := placement([]*api.Pod{bound("a")}, "b", map[string]int{"default/x": 2}); settled || len(m) != 1 || !strings.Contains(m[0].String(), "1 of 2 replicas") {
		t.Fatalf("placement = %v, %v", m, settled)
	}
	if m, settled := placement([]*api.Pod{bound("a"), bound("")}, "b", map[string]int{"default/x": 2}); settled || len(m) != 1 {
		t.Fatalf("placement = %v, %v", m, settled)
	}
	if m, settled := placement([]*api.Pod{bound("a"), bound("c")}, "b", map[string]int{"default/x": 2}); !settled || len(m) != 0 {
		t.Fatalf("placement = %v, %v", m, settled)
	}
}
