package printer

import (
	"fmt"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// hpaRow is kubectl get hpa's row: NAME, REFERENCE (Kind/name), TARGETS
// ("cpu: 45%/50%"), MINPODS, MAXPODS, REPLICAS (the target's current
// count), AGE.
func hpaRow(h *api.HorizontalPodAutoscaler, now time.Time) ([]string, []string) {
	headers := []string{"NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"}
	minPods := "<unset>"
	if h.Spec.MinReplicas != nil {
		minPods = itoa(*h.Spec.MinReplicas)
	}
	ref := h.Spec.ScaleTargetRef
	return headers, []string{h.Name, ref.Kind + "/" + ref.Name, hpaTargets(h), minPods,
		itoa(h.Spec.MaxReplicas), itoa(h.Status.CurrentReplicas), age(now, h.CreationTimestamp)}
}

// hpaTargets is kubectl's TARGETS: each metric as "name: current/target",
// the current value <unknown> until the autoscaler measured it, at most
// two and then "+ N more...".
func hpaTargets(h *api.HorizontalPodAutoscaler) string {
	specs := h.Spec.Metrics
	if len(specs) == 0 {
		return none
	}
	const most = 2
	var list []string
	for i := range specs[:min(len(specs), most)] {
		current, target := metricValues(h, i)
		name := "<unknown>"
		if r := specs[i].Resource; r != nil {
			name = r.Name
		}
		list = append(list, fmt.Sprintf("%s: %s/%s", name, current, target))
	}
	out := strings.Join(list, ", ")
	if len(specs) > most {
		out += fmt.Sprintf(" + %d more...", len(specs)-most)
	}
	return out
}

// metricValues are metric i's current value (from the status) and its
// target, as kubectl shows them: percentages for a Utilization target,
// quantities for an AverageValue one.
func metricValues(h *api.HorizontalPodAutoscaler, i int) (current, target string) {
	current, target = unknown, unknown
	r := h.Spec.Metrics[i].Resource
	if r == nil {
		return current, target
	}
	var cur *api.MetricValueStatus
	if st := h.Status.CurrentMetrics; len(st) > i && st[i].Resource != nil {
		cur = &st[i].Resource.Current
	}
	if v := r.Target.AverageValue; v != nil && r.Target.Type != api.UtilizationMetricType {
		if cur != nil && cur.AverageValue != nil {
			current = cur.AverageValue.String()
		}
		return current, v.String()
	}
	target = "<auto>"
	if u := r.Target.AverageUtilization; u != nil {
		target = fmt.Sprintf("%d%%", *u)
	}
	if cur != nil && cur.AverageUtilization != nil {
		current = fmt.Sprintf("%d%%", *cur.AverageUtilization)
	}
	return current, target
}

// describeHPA is kubectl describe hpa: reference, each metric as
// "current / target", the bounds, the behavior when the spec has one,
// the target's pods, and the conditions with their messages.
func describeHPA(d *describer, h *api.HorizontalPodAutoscaler) {
	d.line(0, "Name:\t%s", h.Name)
	d.line(0, "Namespace:\t%s", h.Namespace)
	d.labels(0, "Labels", h.Labels)
	d.annotations(0, "Annotations", h.Annotations)
	d.line(0, "CreationTimestamp:\t%s", timestamp(h.CreationTimestamp))
	ref := h.Spec.ScaleTargetRef
	d.line(0, "Reference:\t%s/%s", ref.Kind, ref.Name)
	d.line(0, "Metrics:\t( current / target )")
	for i, m := range h.Spec.Metrics {
		if m.Resource == nil {
			continue
		}
		current, target := metricValues(h, i)
		if m.Resource.Target.Type == api.UtilizationMetricType {
			if st := h.Status.CurrentMetrics; len(st) > i && st[i].Resource != nil && st[i].Resource.Current.AverageValue != nil {
				current += " (" + st[i].Resource.Current.AverageValue.String() + ")"
			}
			d.line(1, "resource %s on pods  (as a percentage of request):\t%s / %s", m.Resource.Name, current, target)
			continue
		}
		d.line(1, "resource %s on pods:\t%s / %s", m.Resource.Name, current, target)
	}
	minReplicas := "<unset>"
	if h.Spec.MinReplicas != nil {
		minReplicas = itoa(*h.Spec.MinReplicas)
	}
	d.line(0, "Min replicas:\t%s", minReplicas)
	d.line(0, "Max replicas:\t%d", h.Spec.MaxReplicas)
	if b := h.Spec.Behavior; b != nil {
		d.line(0, "Behavior:")
		describeScalingRules(d, "Scale Up", b.ScaleUp)
		describeScalingRules(d, "Scale Down", b.ScaleDown)
	}
	d.line(0, "%s pods:\t%d current / %d desired", ref.Kind, h.Status.CurrentReplicas, h.Status.DesiredReplicas)
	if len(h.Status.Conditions) == 0 {
		return
	}
	d.line(0, "Conditions:")
	d.line(1, "Type\tStatus\tReason\tMessage")
	d.line(1, "----\t------\t------\t-------")
	for _, c := range h.Status.Conditions {
		d.line(1, "%s\t%s\t%s\t%s", c.Type, c.Status, c.Reason, c.Message)
	}
}

func describeScalingRules(d *describer, title string, r *api.HPAScalingRules) {
	if r == nil {
		return
	}
	d.line(1, "%s:", title)
	if w := r.StabilizationWindowSeconds; w != nil {
		d.line(2, "Stabilization Window: %d seconds", *w)
	}
	if len(r.Policies) == 0 {
		return
	}
	sel := "<unset>"
	if r.SelectPolicy != nil {
		sel = string(*r.SelectPolicy)
	}
	d.line(2, "Select Policy: %s", sel)
	d.line(2, "Policies:")
	for _, p := range r.Policies {
		d.line(3, "- Type: %s\tValue: %d\tPeriod: %d seconds", p.Type, p.Value, p.PeriodSeconds)
	}
}
