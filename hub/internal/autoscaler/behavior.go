package autoscaler

import (
	"math"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// History is what an autoscaler remembers between passes, in memory as
// Kubernetes' controller keeps it: its recent recommendations (for the
// stabilization windows) and its recent changes of the target's replicas
// (for the policies' periods).
type History struct {
	Recommendations []Recommendation
	Up, Down        []Change
}

// Recommendation is the count the metrics asked for at a time.
type Recommendation struct {
	Time     time.Time
	Replicas int32
}

// Change is a change of the target's replicas made at a time, by Pods
// pods (always positive; Up or Down says which way).
type Change struct {
	Time time.Time
	Pods int32
}

// Rules are the behavior an autoscaler scales by: its spec's, with what
// it leaves out (or all of it) from Kubernetes' defaults.
type Rules struct {
	Up, Down api.HPAScalingRules
}

// RulesOf returns the behavior of h.
func RulesOf(h *api.HorizontalPodAutoscaler) Rules {
	r := Rules{Up: api.DefaultScaleUpRules(), Down: api.DefaultScaleDownRules()}
	if b := h.Spec.Behavior; b != nil {
		r.Up = merged(b.ScaleUp, r.Up)
		r.Down = merged(b.ScaleDown, r.Down)
	}
	return r
}

func merged(r *api.HPAScalingRules, def api.HPAScalingRules) api.HPAScalingRules {
	if r == nil {
		return def
	}
	out := def
	if r.StabilizationWindowSeconds != nil {
		out.StabilizationWindowSeconds = r.StabilizationWindowSeconds
	}
	if r.SelectPolicy != nil {
		out.SelectPolicy = r.SelectPolicy
	}
	if r.Policies != nil {
		out.Policies = r.Policies
	}
	return out
}

func window(r api.HPAScalingRules) time.Duration {
	if r.StabilizationWindowSeconds == nil {
		return 0
	}
	return time.Duration(*r.StabilizationWindowSeconds) * time.Second
}

func selectPolicy(r api.HPAScalingRules) api.ScalingPolicySelect {
	if r.SelectPolicy == nil {
		return api.MaxChangePolicySelect
	}
	return *r.SelectPolicy
}

// Conditions' reasons and messages, as Kubernetes words them.
const (
	ReasonReadyForNewScale    = "ReadyForNewScale"
	ReasonScaleUpStabilized   = "ScaleUpStabilized"
	ReasonScaleDownStabilized = "ScaleDownStabilized"
	ReasonDesiredWithinRange  = "DesiredWithinRange"
	ReasonScaleUpLimit        = "ScaleUpLimit"
	ReasonScaleDownLimit      = "ScaleDownLimit"
	ReasonTooManyReplicas     = "TooManyReplicas"
	ReasonTooFewReplicas      = "TooFewReplicas"
)

// InitHistory is the history of an autoscaler seen for the first time
// (the hub started, or it is new): with a scale-down window, one
// recommendation of the current count now, as Kubernetes' controller
// starts, so that a restarted hub does not scale down before it has
// watched a whole window.
func InitHistory(rules Rules, current int32, now time.Time) History {
	if window(rules.Down) > 0 {
		return History{Recommendations: []Recommendation{{Time: now, Replicas: current}}}
	}
	return History{}
}

// Stabilize is Kubernetes' stabilizeRecommendationWithBehaviors: the
// count is held between the lowest recommendation of the scale-up window
// and the highest of the scale-down window (desired among them). It
// returns the count, the recommendations to keep (desired added, those
// older than both windows dropped) and the AbleToScale reason and
// message.
func Stabilize(rules Rules, h History, current, desired int32, now time.Time) (int32, []Recommendation, string, string) {
	upCutoff, downCutoff := now.Add(-window(rules.Up)), now.Add(-window(rules.Down))
	up, down := desired, desired
	keep := make([]Recommendation, 0, len(h.Recommendations)+1)
	for _, rec := range h.Recommendations {
		if rec.Time.After(upCutoff) {
			up = min(up, rec.Replicas)
		}
		if rec.Time.After(downCutoff) {
			down = max(down, rec.Replicas)
		}
		if rec.Time.After(upCutoff) || rec.Time.After(downCutoff) {
			keep = append(keep, rec)
		}
	}
	keep = append(keep, Recommendation{Time: now, Replicas: desired})
	n := max(current, up)
	n = min(n, down)
	switch {
	case n == desired:
		return n, keep, ReasonReadyForNewScale, "recommended size matches current size"
	case n < desired:
		return n, keep, ReasonScaleUpStabilized, "recent recommendations were lower than current one, applying the lowest recent recommendation"
	}
	return n, keep, ReasonScaleDownStabilized, "recent recommendations were higher than current one, applying the highest recent recommendation"
}

// Limit is Kubernetes' convertDesiredReplicasWithBehaviorRate: desired
// held within minReplicas and maxReplicas and within what the policies
// allow given the changes of their periods. It returns the count and the
// ScalingLimited reason and message; the count differs from desired
// exactly when scaling is limited.
func Limit(rules Rules, h History, current, desired, minReplicas, maxReplicas int32, now time.Time) (int32, string, string) {
	switch {
	case desired > current:
		limit := max(scaleUpLimit(rules.Up, h.Up, current, now), current)
		allowed, reason, msg := maxReplicas, ReasonTooManyReplicas, "the desired replica count is more than the maximum replica count"
		if limit < allowed {
			allowed, reason, msg = limit, ReasonScaleUpLimit, "the desired replica count is increasing faster than the maximum scale rate"
		}
		if desired > allowed {
			return allowed, reason, msg
		}
	case desired < current:
		limit := min(scaleDownLimit(rules.Down, h.Down, current, now), current)
		allowed, reason, msg := minReplicas, ReasonTooFewReplicas, "the desired replica count is less than the minimum replica count"
		if limit > allowed {
			allowed, reason, msg = limit, ReasonScaleDownLimit, "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if desired < allowed {
			return allowed, reason, msg
		}
	}
	return desired, ReasonDesiredWithinRange, "the desired count is within the acceptable range"
}

// changedWithin sums the changes of the last period.
func changedWithin(changes []Change, period time.Duration, now time.Time) int32 {
	cutoff := now.Add(-period)
	var n int32
	for _, c := range changes {
		if c.Time.After(cutoff) {
			n += c.Pods
		}
	}
	return n
}

// scaleUpLimit is the most replicas the policies allow now: each policy
// from the replicas at the start of its period, the largest (Max) or
// smallest (Min) of them; Disabled allows none.
func scaleUpLimit(r api.HPAScalingRules, ups []Change, current int32, now time.Time) int32 {
	sel := selectPolicy(r)
	if sel == api.DisabledPolicySelect {
		return current
	}
	result := int32(math.MinInt32)
	if sel == api.MinChangePolicySelect {
		result = math.MaxInt32
	}
	for _, p := range r.Policies {
		start := current - changedWithin(ups, time.Duration(p.PeriodSeconds)*time.Second, now)
		var proposed int32
		switch p.Type {
		case api.PodsScalingPolicy:
			proposed = start + p.Value
		case api.PercentScalingPolicy:
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		default:
			continue
		}
		if sel == api.MinChangePolicySelect {
			result = min(result, proposed)
		} else {
			result = max(result, proposed)
		}
	}
	return result
}

// scaleDownLimit is the fewest replicas the policies allow now: Max
// picks the policy that allows the largest change (the fewest replicas),
// Min the smallest.
func scaleDownLimit(r api.HPAScalingRules, downs []Change, current int32, now time.Time) int32 {
	sel := selectPolicy(r)
	if sel == api.DisabledPolicySelect {
		return current
	}
	result := int32(math.MaxInt32)
	if sel == api.MinChangePolicySelect {
		result = math.MinInt32
	}
	for _, p := range r.Policies {
		start := current + changedWithin(downs, time.Duration(p.PeriodSeconds)*time.Second, now)
		var proposed int32
		switch p.Type {
		case api.PodsScalingPolicy:
			proposed = start - p.Value
		case api.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		default:
			continue
		}
		if sel == api.MinChangePolicySelect {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// longestPeriod is the longest period of a direction's policies: older
// changes count for none.
func longestPeriod(r api.HPAScalingRules) time.Duration {
	var d time.Duration
	for _, p := range r.Policies {
		d = max(d, time.Duration(p.PeriodSeconds)*time.Second)
	}
	return d
}

// recent keeps the changes of the last period.
func recent(changes []Change, period time.Duration, now time.Time) []Change {
	cutoff := now.Add(-period)
	out := make([]Change, 0, len(changes))
	for _, c := range changes {
		if c.Time.After(cutoff) {
			out = append(out, c)
		}
	}
	return out
}

// Record returns h with a change of the target from one count to
// another at now, and without the changes no policy looks at any more.
func (h History) Record(rules Rules, from, to int32, now time.Time) History {
	out := History{
		Recommendations: h.Recommendations,
		Up:              recent(h.Up, longestPeriod(rules.Up), now),
		Down:            recent(h.Down, longestPeriod(rules.Down), now),
	}
	switch {
	case to > from:
		out.Up = append(out.Up, Change{Time: now, Pods: to - from})
	case to < from:
		out.Down = append(out.Down, Change{Time: now, Pods: from - to})
	}
	return out
}
