package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// hpaPeriod is the autoscaler's period in these tests (Kubernetes' 15 s
// shortened), with agents sampling every metricsInterval (1 s).
const hpaPeriod = 2 * time.Second

// burnerDeployment is a Deployment whose pods burn a core while the file
// "on" exists in loadDir, shared with them as a hostPath volume, and
// sleep otherwise. They request 20m of cpu: a burner is far above 50 % of
// it even on a machine so busy that it gets a tenth of a core, and a
// sleeper far below.
func burnerDeployment(name, loadDir string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  replicas: %d
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: burn
          image: %s
          command: ["sh", "-c", "while :; do if [ -f /load/on ]; then :; else sleep 1; fi; done"]
          resources:
            requests: {cpu: 20m}
          volumeMounts: [{name: load, mountPath: /load}]
      volumes:
        - name: load
          hostPath: {path: %s}
`, name, replicas, name, name, env.image, loadDir)
}

// cpuHPA autoscales name between min and max replicas at 50 % of the cpu
// requests, with the scale-down stabilization window cut to window
// seconds.
func cpuHPA(name string, minReplicas, maxReplicas, window int) string {
	return fmt.Sprintf(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: %s
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  minReplicas: %d
  maxReplicas: %d
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: %d
`, name, name, minReplicas, maxReplicas, window)
}

func (h *hubProc) deployment(name string) *api.Deployment {
	h.t.Helper()
	var d api.Deployment
	h.getJSON(&d, "get", "deploy", name, "-o", "json")
	return &d
}

func (h *hubProc) hpa(name string) *api.HorizontalPodAutoscaler {
	h.t.Helper()
	var a api.HorizontalPodAutoscaler
	h.getJSON(&a, "get", "hpa", name, "-o", "json")
	return &a
}

func replicasOf(d *api.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// runningPods counts the Deployment's pods the hub shows Running.
func (h *hubProc) runningPods(app string) int {
	n := 0
	for _, p := range h.pods() {
		if p.Labels["app"] == app && p.Status.Phase == api.PodRunning {
			n++
		}
	}
	return n
}

// hpaEvents are the messages of the autoscaler's events with reason.
func (h *hubProc) hpaEvents(name, reason string) []api.Event {
	h.t.Helper()
	var list struct{ Items []api.Event }
	h.getJSON(&list, "get", "events", "-o", "json")
	var out []api.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == api.KindHorizontalPodAutoscaler && e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// TestHPAScalesWithLoad: a Deployment of one cpu-burning pod with an
// autoscaler at 50 % of its request scales up once its pod burns, within
// the scale-up policy's period of the samples showing it, and back down
// to one after the load stops and the (shortened) stabilization window
// passes; `get hpa`, `describe hpa` and the events say so in kubectl's
// words. It prints the time from load to the scale-up written and to the
// new pods running.
func TestHPAScalesWithLoad(t *testing.T) {
	h := startHub(t, hubOptions{extra: []string{"--hpa-sync-period", hpaPeriod.String()}})
	startMetricsAgent(t, h)
	name, loadDir := uniq("burn"), t.TempDir()
	h.applyYAML(burnerDeployment(name, loadDir, 1) + "---\n" + cpuHPA(name, 1, 3, 5))

	eventually(t, 60*time.Second, "the idle pod measured", func() error {
		a := h.hpa(name)
		if m := a.Status.CurrentMetrics; len(m) != 1 || m[0].Resource == nil || m[0].Resource.Current.AverageUtilization == nil {
			return fmt.Errorf("status %+v", a.Status)
		}
		if c := a.Status.Condition(api.ScalingActive); c == nil || c.Status != api.ConditionTrue {
			return fmt.Errorf("ScalingActive %+v", c)
		}
		return nil
	})
	if n := replicasOf(h.deployment(name)); n != 1 {
		t.Fatalf("an idle Deployment at minReplicas scaled to %d", n)
	}

	load := time.Now()
	if err := os.WriteFile(filepath.Join(loadDir, "on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the scale-up written", func() error {
		if n := replicasOf(h.deployment(name)); n < 2 {
			return fmt.Errorf("replicas %d", n)
		}
		return nil
	})
	scaled := time.Since(load)
	eventually(t, 90*time.Second, "the new pods running", func() error {
		if n := h.runningPods(name); n < 2 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	running := time.Since(load)
	figure("HPA: load started → scale-up written %s, → new pods Running %s (agent samples every %s, autoscaler period %s)",
		scaled.Round(10*time.Millisecond), running.Round(10*time.Millisecond), metricsInterval, hpaPeriod)

	ups := h.hpaEvents(name, "SuccessfulRescale")
	if len(ups) == 0 || !strings.HasPrefix(ups[0].Message, "New size: ") || !strings.HasSuffix(ups[0].Message, "; reason: cpu resource utilization (percentage of request) above target") {
		t.Errorf("scale-up events %+v", ups)
	}
	eventually(t, 30*time.Second, "get hpa with the load", func() error {
		out := h.mustCLI("get", "hpa", name)
		if !strings.Contains(out, "NAME") || !strings.Contains(out, "Deployment/"+name) || !strings.Contains(out, "/50%") || strings.Contains(out, "<unknown>") {
			return fmt.Errorf("get hpa:\n%s", out)
		}
		return nil
	})
	desc := h.mustCLI("describe", "hpa", name)
	for _, want := range []string{"resource cpu on pods  (as a percentage of request):", "AbleToScale", "ScalingActive", "ValidMetricFound", "SuccessfulRescale"} {
		if !strings.Contains(desc, want) {
			t.Errorf("describe hpa lacks %q:\n%s", want, desc)
		}
	}

	stop := time.Now()
	if err := os.Remove(filepath.Join(loadDir, "on")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "back to one replica", func() error {
		if n := replicasOf(h.deployment(name)); n != 1 {
			return fmt.Errorf("replicas %d", n)
		}
		return nil
	})
	figure("HPA: load stopped → scale-down to 1 written %s (stabilization window 5s)", time.Since(stop).Round(10*time.Millisecond))
	var down bool
	for _, e := range h.hpaEvents(name, "SuccessfulRescale") {
		down = down || e.Message == "New size: 1; reason: All metrics below target"
	}
	if !down {
		t.Errorf("no scale-down event: %+v", h.hpaEvents(name, "SuccessfulRescale"))
	}
}

// TestHPAOfflineNodeIsNotScaledDown: a Deployment held at its maximum by
// load, on a node whose agent then freezes (SIGSTOP: its connection
// stays open and says nothing, as a link that dropped silently). Its
// pods' samples stop: they are missing, not idle, first because the
// newest sample grows stale while the node is still Ready (its grace
// period is 40 s, the hub's default), then because the node is not
// Ready. The pods are past
// the cpu initialization period (shortened to 10 s), so they are not set
// aside as starting up: with a scale-down window of 0, a controller that
// read the silence as zero load would scale down at its next pass. This
// one keeps the count, pass after pass, and says why (ScalingActive
// False, FailedGetResourceMetric); when the agent thaws, the pods are
// measured again.
func TestHPAOfflineNodeIsNotScaledDown(t *testing.T) {
	h := startHub(t, hubOptions{grace: 40 * time.Second, extra: []string{
		"--hpa-sync-period", hpaPeriod.String(), "--hpa-cpu-initialization-period", "10s"}})
	a := startMetricsAgent(t, h)
	name, loadDir := uniq("site"), t.TempDir()
	if err := os.WriteFile(filepath.Join(loadDir, "on"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.applyYAML(burnerDeployment(name, loadDir, 1) + "---\n" + cpuHPA(name, 1, 2, 0))
	eventually(t, 90*time.Second, "the burners scaled to the maximum and measured", func() error {
		d, hp := h.deployment(name), h.hpa(name)
		if replicasOf(d) != 2 || h.runningPods(name) != 2 {
			return fmt.Errorf("replicas %d, %d running", replicasOf(d), h.runningPods(name))
		}
		if c := hp.Status.Condition(api.ScalingActive); c == nil || c.Status != api.ConditionTrue {
			return fmt.Errorf("ScalingActive %+v", c)
		}
		return nil
	})
	// Past the initialization period, and past Kubernetes' 30 s readiness
	// delay, after which a pod that turns not Ready counts as having been
	// Ready: its samples would count, were there any.
	eventually(t, 90*time.Second, "the pods 35 s old", func() error {
		for _, p := range h.pods() {
			if p.Labels["app"] == name && (p.Status.StartTime.IsZero() || time.Since(p.Status.StartTime.Time) < 35*time.Second) {
				return fmt.Errorf("pod %s started %s", p.Name, p.Status.StartTime)
			}
		}
		return nil
	})

	// Scale-downs before the cut are none of this test's business.
	downs := func() int32 {
		var n int32
		for _, e := range h.hpaEvents(name, "SuccessfulRescale") {
			if strings.Contains(e.Message, "below target") {
				n += e.Count
			}
		}
		return n
	}
	downsBefore := downs()
	pgid := a.proc.Pid()
	if err := syscall.Kill(-pgid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thaw := func() { _ = syscall.Kill(-pgid, syscall.SIGCONT) }
	t.Cleanup(thaw)
	cut := time.Now()
	// count is how many passes warned that the pods have no current
	// sample (repeats of one warning are counted in one event).
	count := func() int32 {
		var n int32
		for _, e := range h.hpaEvents(name, "FailedGetResourceMetric") {
			n += e.Count
		}
		return n
	}
	// holds waits for passes to find the pods missing, the message saying
	// why, then for passes more, and checks that none scaled down.
	holds := func(what, why string, passes int32) {
		t.Helper()
		var msg string
		eventually(t, 60*time.Second, what, func() error {
			c := h.hpa(name).Status.Condition(api.ScalingActive)
			if c == nil || c.Status != api.ConditionFalse || c.Reason != "FailedGetResourceMetric" || !strings.Contains(c.Message, why) {
				return fmt.Errorf("ScalingActive %+v; replicas %d", c, replicasOf(h.deployment(name)))
			}
			msg = c.Message
			return nil
		})
		if !strings.Contains(msg, "missing metrics are not zero load") {
			t.Errorf("ScalingActive message %q", msg)
		}
		first := count()
		eventually(t, 60*time.Second, fmt.Sprintf("%d more passes", passes), func() error {
			if n := count(); n < first+passes {
				return fmt.Errorf("%d warnings, from %d", n, first)
			}
			return nil
		})
		if n := replicasOf(h.deployment(name)); n != 2 {
			t.Fatalf("%s: scaled to %d while the node was silent", what, n)
		}
	}
	holds("stale samples, the node still Ready", a.node+"'s newest sample is", 3)
	if !h.node(a.node).IsReady() {
		t.Fatalf("the node went NotReady %s after it froze, before three passes saw its samples stale", time.Since(cut).Round(time.Second))
	}
	eventually(t, 60*time.Second, "the node NotReady", func() error {
		if h.node(a.node).IsReady() {
			return fmt.Errorf("still Ready")
		}
		return nil
	})
	holds("the node NotReady", "node "+a.node+" is not Ready", 3)
	if n := downs(); n != downsBefore {
		t.Errorf("%d scale-downs for silence: %+v", n-downsBefore, h.hpaEvents(name, "SuccessfulRescale"))
	}
	figure("HPA: node silent %s, %d autoscaler passes with its pods missing, replicas kept at 2", time.Since(cut).Round(100*time.Millisecond), count())
	if out := h.mustCLI("describe", "hpa", name); !strings.Contains(out, "FailedGetResourceMetric") {
		t.Errorf("describe hpa:\n%s", out)
	}

	thaw()
	eventually(t, 90*time.Second, "the pods measured again", func() error {
		if c := h.hpa(name).Status.Condition(api.ScalingActive); c == nil || c.Status != api.ConditionTrue {
			return fmt.Errorf("ScalingActive %+v", c)
		}
		return nil
	})
}
