package autoscaler

import (
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func rulesOf(b *api.HorizontalPodAutoscalerBehavior) Rules {
	return RulesOf(&api.HorizontalPodAutoscaler{Spec: api.HorizontalPodAutoscalerSpec{Behavior: b}})
}

func sel(s api.ScalingPolicySelect) *api.ScalingPolicySelect { return &s }

func i32(v int32) *int32 { return &v }

func TestStabilize(t *testing.T) {
	def := rulesOf(nil)
	ago := func(s int) time.Time { return t0.Add(-time.Duration(s) * time.Second) }
	cases := []struct {
		name            string
		rules           Rules
		recs            []Recommendation
		current, desire int32
		want            int32
		reason          string
	}{
		// The default 300 s scale-down window: the highest recommendation
		// of the last five minutes holds.
		{"down held by the window", def, []Recommendation{{ago(100), 5}, {ago(50), 3}}, 5, 2, 5, ReasonScaleDownStabilized},
		{"down to the highest in the window", def, []Recommendation{{ago(400), 5}, {ago(50), 3}}, 5, 2, 3, ReasonScaleDownStabilized},
		{"down once the window passed", def, []Recommendation{{ago(400), 5}, {ago(350), 3}}, 5, 2, 2, ReasonReadyForNewScale},
		// No scale-up window by default: up at once.
		{"up at once", def, []Recommendation{{ago(10), 1}}, 2, 6, 6, ReasonReadyForNewScale},
		// A scale-up window: the lowest recommendation of it holds.
		{"up held by its window", rulesOf(&api.HorizontalPodAutoscalerBehavior{ScaleUp: &api.HPAScalingRules{StabilizationWindowSeconds: i32(60)}}),
			[]Recommendation{{ago(30), 3}}, 2, 6, 3, ReasonScaleUpStabilized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, keep, reason, _ := Stabilize(tc.rules, History{Recommendations: tc.recs}, tc.current, tc.desire, t0)
			if got != tc.want || reason != tc.reason {
				t.Errorf("got %d (%s), want %d (%s)", got, reason, tc.want, tc.reason)
			}
			if last := keep[len(keep)-1]; last.Replicas != tc.desire || !last.Time.Equal(t0) {
				t.Errorf("the new recommendation is not kept: %+v", keep)
			}
			for _, r := range keep {
				if r.Time.Before(t0.Add(-300 * time.Second)) {
					t.Errorf("kept one older than both windows: %+v", keep)
				}
			}
		})
	}
}

func TestLimit(t *testing.T) {
	def := rulesOf(nil)
	// Kubernetes' example of two scale-down policies: at most 4 pods or
	// 10 % a minute, whichever removes more.
	docs := rulesOf(&api.HorizontalPodAutoscalerBehavior{ScaleDown: &api.HPAScalingRules{Policies: []api.HPAScalingPolicy{
		{Type: api.PodsScalingPolicy, Value: 4, PeriodSeconds: 60},
		{Type: api.PercentScalingPolicy, Value: 10, PeriodSeconds: 60},
	}}})
	minUp := rulesOf(&api.HorizontalPodAutoscalerBehavior{ScaleUp: &api.HPAScalingRules{SelectPolicy: sel(api.MinChangePolicySelect)}})
	noDown := rulesOf(&api.HorizontalPodAutoscalerBehavior{ScaleDown: &api.HPAScalingRules{SelectPolicy: sel(api.DisabledPolicySelect)}})
	recently := func(pods int32) []Change { return []Change{{Time: t0.Add(-10 * time.Second), Pods: pods}} }
	cases := []struct {
		name                       string
		rules                      Rules
		h                          History
		current, desired, min, max int32
		want                       int32
		reason                     string
	}{
		// Default scale-up: 4 pods or double per 15 s, the larger.
		{"up from 1: 4 pods", def, History{}, 1, 7, 1, 10, 5, ReasonScaleUpLimit},
		{"up from 6: double", def, History{}, 6, 20, 1, 30, 12, ReasonScaleUpLimit},
		{"up, then no more within the period", def, History{Up: recently(4)}, 5, 7, 1, 10, 5, ReasonScaleUpLimit},
		{"up within the policies", def, History{}, 4, 7, 1, 10, 7, ReasonDesiredWithinRange},
		{"up to maxReplicas", def, History{}, 8, 12, 1, 10, 10, ReasonTooManyReplicas},
		{"up, Min of the policies", minUp, History{}, 6, 20, 1, 30, 10, ReasonScaleUpLimit},
		// Default scale-down: everything at once, to minReplicas.
		{"down to minReplicas", def, History{}, 7, 0, 1, 10, 1, ReasonTooFewReplicas},
		{"down within", def, History{}, 7, 3, 1, 10, 3, ReasonDesiredWithinRange},
		// Kubernetes' walk through its example: 80 → 72 (10 % > 4 pods),
		// 72 → 64 (7.2 rounds to 8 removed), below 40 by 4 pods.
		{"docs 80", docs, History{}, 80, 10, 1, 100, 72, ReasonScaleDownLimit},
		{"docs 72", docs, History{}, 72, 10, 1, 100, 64, ReasonScaleDownLimit},
		{"docs 30", docs, History{}, 30, 10, 1, 100, 26, ReasonScaleDownLimit},
		{"docs, within a minute of the last", docs, History{Down: recently(8)}, 72, 10, 1, 100, 72, ReasonScaleDownLimit},
		{"down disabled", noDown, History{}, 5, 1, 1, 10, 5, ReasonScaleDownLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, reason, _ := Limit(tc.rules, tc.h, tc.current, tc.desired, tc.min, tc.max, t0)
			if got != tc.want || reason != tc.reason {
				t.Errorf("got %d (%s), want %d (%s)", got, reason, tc.want, tc.reason)
			}
		})
	}
}

func TestHistoryRecordKeepsWhatPoliciesLookAt(t *testing.T) {
	def := rulesOf(nil)
	h := History{Up: []Change{{t0.Add(-time.Minute), 3}, {t0.Add(-5 * time.Second), 2}}}
	h = h.Record(def, 5, 9, t0)
	if len(h.Up) != 2 || h.Up[1].Pods != 4 || len(h.Down) != 0 {
		t.Errorf("up: %+v", h)
	}
	h = h.Record(def, 9, 6, t0.Add(time.Second))
	if len(h.Down) != 1 || h.Down[0].Pods != 3 {
		t.Errorf("down: %+v", h)
	}
	// A new autoscaler starts with the current count as a recommendation,
	// so that a hub just started does not scale down at once.
	if got := InitHistory(def, 4, t0); len(got.Recommendations) != 1 || got.Recommendations[0].Replicas != 4 {
		t.Errorf("init: %+v", got)
	}
	zero := rulesOf(&api.HorizontalPodAutoscalerBehavior{ScaleDown: &api.HPAScalingRules{StabilizationWindowSeconds: i32(0)}})
	if got := InitHistory(zero, 4, t0); len(got.Recommendations) != 0 {
		t.Errorf("init without a window: %+v", got)
	}
}
