package autoscaler

import (
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// running returns n Ready pods started long ago, each requesting
// request millicores of cpu (and 100 MiB of memory) and using usage
// millicores, sampled just now.
func running(n int, request, usage int64) []Pod {
	pods := make([]Pod, n)
	for i := range pods {
		pods[i] = Pod{
			Name: "web-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), Phase: api.PodRunning,
			Ready: api.ConditionTrue, StartTime: t0.Add(-time.Hour), ReadySince: t0.Add(-time.Hour),
			Request:    [numResources]int64{request, 100 << 20 * 1000},
			Usage:      [numResources]int64{usage, 50 << 20 * 1000},
			HasUsage:   [numResources]bool{true, true},
			SampleTime: t0.Add(-5 * time.Second), Window: 10 * time.Second,
		}
	}
	return pods
}

func missing(pods []Pod) []Pod {
	for i := range pods {
		pods[i].HasUsage = [numResources]bool{}
		pods[i].Missing = "node edge-9 is not Ready"
	}
	return pods
}

// starting returns n pods started a minute ago and not Ready yet, using
// usage millicores: unready for cpu in their initialization period.
func starting(n int, request, usage int64) []Pod {
	pods := running(n, request, usage)
	for i := range pods {
		pods[i].Name = "new-" + pods[i].Name
		pods[i].Ready, pods[i].StartTime, pods[i].ReadySince = api.ConditionFalse, t0.Add(-time.Minute), t0.Add(-time.Minute)
	}
	return pods
}

func join(groups ...[]Pod) []Pod {
	var out []Pod
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// TestUtilizationReplicas checks the calculation against the examples of
// Kubernetes' documentation (the algorithm details of Horizontal Pod
// Autoscaling, the php-apache walkthrough, the configurable tolerance
// post) and its rules for missing and not-ready pods.
func TestUtilizationReplicas(t *testing.T) {
	cases := []struct {
		name    string
		current int32
		target  int32
		pods    []Pod
		want    int32
		util    int32
	}{
		// Walkthrough: one php-apache pod (request 200m) at 305 % of its
		// request against a 50 % target: 7 replicas.
		{"walkthrough under load", 1, 50, running(1, 200, 610), 7, 305},
		// Walkthrough: the load stops, usage drops to 0: the count goes
		// to 0 (minReplicas and the stabilization window hold it, below).
		{"walkthrough load stopped", 7, 50, running(7, 200, 0), 0, 0},
		// Tolerance post: 50 replicas at 90 % against 75 %: 60.
		{"tolerance post", 50, 75, running(50, 100, 90), 60, 90},
		// Algorithm details: twice the target doubles, half halves.
		{"double", 3, 50, running(3, 100, 100), 6, 100},
		{"halve", 4, 50, running(4, 100, 25), 2, 25},
		// Within the 10 % tolerance: no change.
		{"within tolerance", 4, 50, running(4, 100, 54), 4, 54},
		{"just past tolerance", 4, 50, running(4, 100, 56), 5, 56},
		// Missing metrics count as 100 % of the request on the way down:
		// two idle pods and two without samples would halve, but with the
		// missing at 100 % the ratio turns to 1.1 (scale up): no change.
		{"missing on scale-down reverse it", 4, 50, join(running(2, 100, 10), missing(running(2, 100, 0))), 4, 10},
		// ...and only dampen a scale-down the measured pods make clear:
		// 8 idle, 2 missing: (0+200)/1000 = 20 %, ratio 0.4: 4.
		{"missing on scale-down dampen it", 10, 50, join(running(8, 100, 0), missing(running(2, 100, 0))), 4, 0},
		// Missing metrics count as 0 on the way up: two at 100 % and two
		// missing make 50 %, the target: no change.
		{"missing on scale-up", 4, 50, join(running(2, 100, 100), missing(running(2, 100, 0))), 4, 100},
		// Three at 100 %, one missing: 75 %, ratio 1.5: 6.
		{"missing on scale-up, some", 4, 50, join(running(3, 100, 100), missing(running(1, 100, 0))), 6, 100},
		// Pods not Ready in their first 5 minutes count as 0 on the way
		// up, whatever they burn: 3 × 100 % + 0 over 4 requests: 6.
		{"unready on scale-up", 4, 50, join(running(3, 100, 100), starting(1, 100, 500)), 6, 100},
		// On the way down they are left out: 2 at 10 % → 0.2 × 2.
		{"unready on scale-down", 4, 50, join(running(2, 100, 10), starting(2, 100, 500)), 1, 10},
		// Pending and failed pods are left out.
		{"pending ignored", 3, 50, join(running(2, 100, 100), func() []Pod {
			p := running(1, 100, 0)
			p[0].Phase = api.PodPending
			return p
		}()), 4, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			est, err := DefaultCalculator(t0).UtilizationReplicas(tc.current, tc.target, CPU, tc.pods)
			if err != nil {
				t.Fatal(err)
			}
			if est.Replicas != tc.want || est.Utilization != tc.util {
				t.Errorf("replicas %d utilization %d%%, want %d and %d%% (%+v)", est.Replicas, est.Utilization, tc.want, tc.util, est)
			}
		})
	}
}

// TestUnreadyRules follows Kubernetes' groupPods for cpu: within the
// initialization period a Ready pod counts once it has been sampled for
// a whole window since it became Ready; after it, a not-Ready pod counts
// unless it was never Ready.
func TestUnreadyRules(t *testing.T) {
	c := DefaultCalculator(t0)
	p := running(1, 100, 100)[0]
	p.StartTime, p.ReadySince = t0.Add(-2*time.Minute), t0.Add(-8*time.Second)
	p.SampleTime, p.Window = t0.Add(-time.Second), 10*time.Second
	if !c.unready(&p) {
		t.Error("a sample that began before the pod was Ready counted")
	}
	p.ReadySince = t0.Add(-20 * time.Second)
	if c.unready(&p) {
		t.Error("a Ready pod sampled a whole window since was set aside")
	}
	p.StartTime, p.Ready, p.ReadySince = t0.Add(-time.Hour), api.ConditionFalse, t0.Add(-30*time.Minute)
	if c.unready(&p) {
		t.Error("a pod that was Ready once and is not now was set aside after its initialization")
	}
	p.ReadySince = t0.Add(-time.Hour + 10*time.Second)
	if !c.unready(&p) {
		t.Error("a pod never Ready counted")
	}
	p.Ready = ""
	if !c.unready(&p) {
		t.Error("a pod without a Ready condition counted")
	}
	// Memory is not subject to it.
	est, err := c.UtilizationReplicas(2, 50, Memory, join(running(1, 100, 0), starting(1, 100, 0)))
	if err != nil || est.Ready != 2 {
		t.Errorf("memory: %+v, %v", est, err)
	}
}

func TestAverageValueReplicas(t *testing.T) {
	c := DefaultCalculator(t0)
	cases := []struct {
		name    string
		current int32
		target  int64
		pods    []Pod
		want    int32
	}{
		// Algorithm details: 200m against 100m doubles, 50m halves.
		{"double", 3, 100, running(3, 0, 200), 6},
		{"halve", 4, 100, running(4, 0, 50), 2},
		{"within tolerance", 4, 100, running(4, 0, 95), 4},
		// Missing at the target on the way down: 2 × 20m + 2 × 100m over
		// 4 is 60m, ratio 0.6: 3 (not 1).
		{"missing on scale-down", 4, 100, join(running(2, 0, 20), missing(running(2, 0, 0))), 3},
		{"missing on scale-up", 4, 100, join(running(2, 0, 300), missing(running(2, 0, 0))), 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			est, err := c.AverageValueReplicas(tc.current, tc.target, CPU, tc.pods)
			if err != nil || est.Replicas != tc.want {
				t.Errorf("replicas %d (%v), want %d", est.Replicas, err, tc.want)
			}
		})
	}
}

func TestReplicaErrors(t *testing.T) {
	c := DefaultCalculator(t0)
	noReq := running(2, 100, 50)
	noReq[1].NoRequest[CPU] = "sidecar"
	if _, err := c.UtilizationReplicas(2, 50, CPU, noReq); err == nil || err.Error() != "missing request for cpu in container sidecar of Pod web-b" {
		t.Errorf("no request: %v", err)
	}
	if _, err := c.UtilizationReplicas(2, 50, CPU, nil); err != ErrNoPods {
		t.Errorf("no pods: %v", err)
	}
	// Every pod offline: no count at all, and the reason says why; it is
	// not a scale-down to nothing.
	_, err := c.UtilizationReplicas(3, 50, CPU, missing(running(3, 100, 0)))
	if err == nil || !strings.Contains(err.Error(), "3 without a current sample (node edge-9 is not Ready") ||
		!strings.Contains(err.Error(), "missing metrics are not zero load") {
		t.Errorf("all missing: %v", err)
	}
	if _, err := c.AverageValueReplicas(3, 100, Memory, missing(running(3, 100, 0))); err == nil {
		t.Error("average value with every pod missing: no error")
	}
}
