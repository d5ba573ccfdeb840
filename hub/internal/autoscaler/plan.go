package autoscaler

import (
	"fmt"
	"strconv"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/controller"
	"github.com/flotilla-edge/flotilla/hub/internal/deployment"
	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/scheduler"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Event and condition reasons, as Kubernetes' controller words them, and
// Flotilla's InsufficientCapacity.
const (
	ReasonSuccessfulRescale            = "SuccessfulRescale"
	ReasonFailedRescale                = "FailedRescale"
	ReasonFailedGetScale               = "FailedGetScale"
	ReasonSucceededGetScale            = "SucceededGetScale"
	ReasonSucceededRescale             = "SucceededRescale"
	ReasonFailedUpdateScale            = "FailedUpdateScale"
	ReasonFailedGetResourceMetric      = "FailedGetResourceMetric"
	ReasonFailedComputeMetricsReplicas = "FailedComputeMetricsReplicas"
	ReasonValidMetricFound             = "ValidMetricFound"
	ReasonScalingDisabled              = "ScalingDisabled"
	// ReasonInsufficientCapacity: the scheduler cannot place the pods
	// asked for (Flotilla's; Kubernetes leaves them Pending).
	ReasonInsufficientCapacity = "InsufficientCapacity"
)

// Component is the source of the autoscaler's events, Kubernetes' name
// for it.
const Component = "horizontal-pod-autoscaler"

// Staleness of samples: a node's newest sample stands for its pods' usage
// while its node is Ready and it is younger than StaleWindows of its own
// window (the agent's sampling interval), and never less than MinStale.
const (
	StaleWindows = 3
	MinStale     = 10 * time.Second
)

// Input is what a pass plans from.
type Input struct {
	Now  time.Time
	HPAs []*api.HorizontalPodAutoscaler
	// Deployments are the targets, by namespace/name.
	Deployments map[string]*api.Deployment
	// Pods are every pod, and Nodes every node: the targets' pods and the
	// scheduler's view of the fleet.
	Pods  []*api.Pod
	Nodes []*api.Node
	// Samples are the newest sample of each node with a target's pods.
	Samples map[string]wire.MetricSample
	// History is what each autoscaler (by uid) remembers.
	History map[string]History
	// Only, if set, limits the pass to these autoscalers (by uid): new
	// ones and changed specs, between the periodic passes.
	Only map[string]bool
	// CPUInitializationPeriod is the calculator's (default 5 min).
	CPUInitializationPeriod time.Duration
}

// Result is what a pass decided.
type Result struct {
	// Now is the pass's time.
	Now       time.Time
	Decisions []*Decision
	// Planned are the autoscalers planned, by uid, with the generation
	// they were planned at.
	Planned map[string]int64
	// History replaces the autoscalers' histories; with Full, the ones it
	// does not hold are gone.
	History map[string]History
	Full    bool
}

// Decision is what to write for one autoscaler.
type Decision struct {
	HPA *api.HorizontalPodAutoscaler
	// Scale, if set, changes the target's replicas.
	Scale *ScaleChange
	// Status is the new status, nil when unchanged.
	Status *api.HorizontalPodAutoscalerStatus
	Events []events.Record
	// Rules are the behavior the history is kept for.
	Rules Rules
}

// ScaleChange is a write of a target's spec.replicas, made only while it
// still has From.
type ScaleChange struct {
	Target   store.Key
	UID      string
	From, To int32
	Reason   string
}

func key(ns, name string) string { return ns + "/" + name }

// pass is one pass's shared state.
type pass struct {
	in    Input
	calc  Calculator
	pods  map[string][]*api.Pod // by controller uid
	nodes map[string]*api.Node
	// sched is the scheduler's view of the fleet, built when the first
	// scale-up needs it; the room this pass's scale-ups take counts in it.
	sched []scheduler.Node
	// amounts caches parsed requests, in thousandths by resource: the
	// pods of a Deployment repeat the same few.
	amounts [numResources]map[api.Quantity]int64
}

// amount is a request of resource r in thousandths (millicores,
// millibytes).
func (p *pass) amount(r Resource, q api.Quantity) int64 {
	if v, ok := p.amounts[r][q]; ok {
		return v
	}
	var v int64
	if r == CPU {
		v = q.MilliValue()
	} else {
		v = q.Value() * 1000
	}
	if p.amounts[r] == nil {
		p.amounts[r] = map[api.Quantity]int64{}
	}
	p.amounts[r][q] = v
	return v
}

// Plan decides, for every autoscaler (or those of in.Only), the target's
// replicas and the autoscaler's status, as Kubernetes' controller does
// (reconcileAutoscaler), with the edge's rules: a pod without a current
// sample is missing, not idle; a scale-up is held to what the scheduler
// can place. It is a pure function of in.
func Plan(in Input) *Result {
	calc := DefaultCalculator(in.Now)
	if in.CPUInitializationPeriod > 0 {
		calc.CPUInitializationPeriod = in.CPUInitializationPeriod
	}
	p := &pass{in: in, calc: calc,
		pods: make(map[string][]*api.Pod), nodes: make(map[string]*api.Node, len(in.Nodes))}
	for _, n := range in.Nodes {
		p.nodes[n.Name] = n
	}
	for _, pod := range in.Pods {
		if ref := pod.ControllerRef(); ref != nil {
			p.pods[ref.UID] = append(p.pods[ref.UID], pod)
		}
	}
	res := &Result{Now: in.Now, History: make(map[string]History, len(in.HPAs)), Full: in.Only == nil,
		Planned: make(map[string]int64, len(in.HPAs))}
	for _, h := range in.HPAs {
		if in.Only != nil && !in.Only[h.UID] {
			continue
		}
		res.Planned[h.UID] = h.Generation
		d, hist, keep := p.one(h)
		if keep {
			res.History[h.UID] = hist
		}
		if d.Scale != nil || d.Status != nil || len(d.Events) > 0 {
			res.Decisions = append(res.Decisions, d)
		}
	}
	return res
}

// decider is one autoscaler's plan in the making.
type decider struct {
	p      *pass
	h      *api.HorizontalPodAutoscaler
	st     api.HorizontalPodAutoscalerStatus
	d      *Decision
	hist   History
	now    api.Time
	events []events.Record
}

func (dc *decider) event(typ api.EventType, reason, msg string) {
	dc.events = append(dc.events, events.Record{
		Object: api.ObjectReference{Kind: api.KindHorizontalPodAutoscaler, Namespace: dc.h.Namespace, Name: dc.h.Name, UID: dc.h.UID},
		Type:   typ, Reason: reason, Message: msg, Time: dc.p.in.Now, Source: api.EventSource{Component: Component},
	})
}

// condition sets a condition, moving its transition time only when its
// status changes, and keeps the three in Kubernetes' order.
func (dc *decider) condition(typ string, status api.ConditionStatus, reason, format string, args ...any) {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	c := api.HorizontalPodAutoscalerCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: dc.now}
	for i := range dc.st.Conditions {
		if dc.st.Conditions[i].Type == typ {
			if dc.st.Conditions[i].Status == status {
				c.LastTransitionTime = dc.st.Conditions[i].LastTransitionTime
			}
			dc.st.Conditions[i] = c
			return
		}
	}
	dc.st.Conditions = append(dc.st.Conditions, c)
	order := map[string]int{api.AbleToScale: 0, api.ScalingActive: 1, api.ScalingLimited: 2}
	for i := len(dc.st.Conditions) - 1; i > 0 && order[dc.st.Conditions[i].Type] < order[dc.st.Conditions[i-1].Type]; i-- {
		dc.st.Conditions[i], dc.st.Conditions[i-1] = dc.st.Conditions[i-1], dc.st.Conditions[i]
	}
}

// one is Kubernetes' reconcileAutoscaler for one autoscaler, in its
// steps: read the target's scale, clamp to the bounds or compute from
// the metrics, stabilize and limit, hold to the capacity, rescale.
func (p *pass) one(h *api.HorizontalPodAutoscaler) (*Decision, History, bool) {
	rules := RulesOf(h)
	dc := &decider{p: p, h: h, now: api.NewTime(p.in.Now.UTC().Truncate(time.Second)), d: &Decision{HPA: h, Rules: rules}}
	dc.st = h.Status
	dc.st.Conditions = append([]api.HorizontalPodAutoscalerCondition(nil), h.Status.Conditions...)
	gen := h.Generation
	dc.st.ObservedGeneration = &gen

	tgt, current, err := p.target(h)
	hist, seen := p.in.History[h.UID]
	if err != nil {
		dc.condition(api.AbleToScale, api.ConditionFalse, ReasonFailedGetScale, "the HPA controller was unable to get the target's current scale: %v", err)
		dc.event(api.EventWarning, ReasonFailedGetScale, err.Error())
		return dc.finish(), hist, seen
	}
	if !seen {
		hist = InitHistory(rules, current, p.in.Now)
	}
	dc.hist = hist
	dc.condition(api.AbleToScale, api.ConditionTrue, ReasonSucceededGetScale, "the HPA controller was able to get the target's current scale")
	minReplicas := int32(1)
	if h.Spec.MinReplicas != nil {
		minReplicas = *h.Spec.MinReplicas
	}
	desired, reason := int32(0), ""
	switch {
	case current == 0 && minReplicas != 0:
		dc.condition(api.ScalingActive, api.ConditionFalse, ReasonScalingDisabled, "scaling is disabled since the replica count of the target is zero")
		dc.st.CurrentReplicas, dc.st.DesiredReplicas = 0, 0
		return dc.finish(), dc.hist, true
	case current > h.Spec.MaxReplicas:
		desired, reason = h.Spec.MaxReplicas, "Current number of replicas above Spec.MaxReplicas"
	case current < minReplicas:
		desired, reason = minReplicas, "Current number of replicas below Spec.MinReplicas"
	default:
		pods := p.podsOf(tgt)
		n, metric, statuses, ok := dc.metrics(pods, current)
		dc.st.CurrentMetrics = statuses
		if !ok {
			// No count to follow: nothing moves, nothing is recorded.
			dc.st.CurrentReplicas = current
			return dc.finish(), dc.hist, true
		}
		desired = n
		switch {
		case desired > current:
			reason = metric + " above target"
		case desired < current:
			reason = "All metrics below target"
		}
		stable, recs, why, msg := Stabilize(rules, dc.hist, current, desired, p.in.Now)
		dc.hist.Recommendations = recs
		if stable != desired {
			dc.condition(api.AbleToScale, api.ConditionTrue, why, "%s", msg)
		} else {
			dc.condition(api.AbleToScale, api.ConditionTrue, ReasonReadyForNewScale, "recommended size matches current size")
		}
		limited, why, msg := Limit(rules, dc.hist, current, stable, minReplicas, h.Spec.MaxReplicas, p.in.Now)
		if limited == stable {
			dc.condition(api.ScalingLimited, api.ConditionFalse, why, "%s", msg)
		} else {
			dc.condition(api.ScalingLimited, api.ConditionTrue, why, "%s", msg)
		}
		desired = p.capacity(dc, tgt, current, limited)
	}
	dc.st.CurrentReplicas = current
	if desired != current {
		dc.d.Scale = &ScaleChange{Target: tgt.Key, UID: tgt.UID, From: current, To: desired, Reason: reason}
		dc.condition(api.AbleToScale, api.ConditionTrue, ReasonSucceededRescale, "the HPA controller was able to update the target scale to %d", desired)
		dc.event(api.EventNormal, ReasonSuccessfulRescale, fmt.Sprintf("New size: %d; reason: %s", desired, reason))
		dc.st.LastScaleTime = &dc.now
	}
	dc.st.DesiredReplicas = desired
	return dc.finish(), dc.hist, true
}

// finish sets the decision's status, if it changed, and events.
func (dc *decider) finish() *Decision {
	if !controller.Equal(dc.st, dc.h.Status) {
		st := dc.st
		dc.d.Status = &st
	}
	dc.d.Events = dc.events
	return dc.d
}

// target is what the autoscaler needs of the object it scales, of any
// kind with a scale subresource: its key and uid (its pods' controller),
// its spec.replicas and its pod template.
type target struct {
	Key      store.Key
	UID      string
	Replicas int32
	Template *api.PodTemplateSpec
}

// target finds the autoscaler's target: the one place, with rescale's
// write, that knows the scalable kinds (api.CanScale).
func (p *pass) target(h *api.HorizontalPodAutoscaler) (*target, int32, error) {
	ref := h.Spec.ScaleTargetRef
	switch ref.Kind {
	case api.KindDeployment:
		d := p.in.Deployments[key(h.Namespace, ref.Name)]
		if d == nil {
			return nil, 0, fmt.Errorf("deployments.apps %q not found", ref.Name)
		}
		t := &target{Key: store.KeyOf(d), UID: d.UID, Replicas: 1, Template: &d.Spec.Template}
		if d.Spec.Replicas != nil {
			t.Replicas = *d.Spec.Replicas
		}
		return t, t.Replicas, nil
	}
	return nil, 0, fmt.Errorf("%s %q cannot be scaled", ref.Kind, ref.Name)
}

// metrics is Kubernetes' computeReplicasForMetrics: the largest count the
// metrics ask for, the name of the metric that asked for it, each
// metric's status, and whether there is a count to follow. With some
// metrics failing, a count that would scale up is followed (the failing
// ones might want more still), one that would scale down is not.
func (dc *decider) metrics(pods []Pod, current int32) (int32, string, []api.MetricStatus, bool) {
	specs := dc.h.Spec.Metrics
	statuses := make([]api.MetricStatus, len(specs))
	var replicas int32
	var name, firstErr, firstMsg string
	invalid := 0
	for i, m := range specs {
		statuses[i] = api.MetricStatus{Type: m.Type}
		n, metric, status, err := dc.resourceMetric(m, pods, current)
		if err != nil {
			invalid++
			dc.event(api.EventWarning, ReasonFailedGetResourceMetric, err.Error())
			if firstErr == "" {
				firstErr, firstMsg = err.Error(), "the HPA was unable to compute the replica count: "+err.Error()
			}
			continue
		}
		statuses[i] = status
		if n > replicas || name == "" {
			replicas, name = max(n, replicas), metric
		}
	}
	if invalid >= len(specs) || (invalid > 0 && replicas < current) {
		dc.condition(api.ScalingActive, api.ConditionFalse, ReasonFailedGetResourceMetric, "%s", firstMsg)
		dc.event(api.EventWarning, ReasonFailedComputeMetricsReplicas,
			fmt.Sprintf("invalid metrics (%d invalid out of %d), first error is: %s", invalid, len(specs), firstErr))
		return 0, "", statuses, false
	}
	dc.condition(api.ScalingActive, api.ConditionTrue, ReasonValidMetricFound, "the HPA was able to successfully calculate a replica count from %s", name)
	return replicas, name, statuses, true
}

// resourceMetric computes one Resource metric.
func (dc *decider) resourceMetric(m api.MetricSpec, pods []Pod, current int32) (int32, string, api.MetricStatus, error) {
	status := api.MetricStatus{Type: m.Type}
	if m.Type != api.ResourceMetricSourceType || m.Resource == nil {
		return 0, "", status, fmt.Errorf("metric type %q is not supported", m.Type)
	}
	r, ok := resourceOf(m.Resource.Name)
	if !ok {
		return 0, "", status, fmt.Errorf("resource %q is not supported", m.Resource.Name)
	}
	t := m.Resource.Target
	calc := dc.p.calc
	switch t.Type {
	case api.UtilizationMetricType:
		target := int32(api.DefaultHPAUtilization)
		if t.AverageUtilization != nil {
			target = *t.AverageUtilization
		}
		est, err := calc.UtilizationReplicas(current, target, r, pods)
		if err != nil {
			return 0, "", status, fmt.Errorf("failed to get %s utilization: %w", r, err)
		}
		util := est.Utilization
		status.Resource = &api.ResourceMetricStatus{Name: m.Resource.Name, Current: api.MetricValueStatus{AverageUtilization: &util, AverageValue: quantity(r, est.Average)}}
		return est.Replicas, fmt.Sprintf("%s resource utilization (percentage of request)", r), status, nil
	case api.AverageValueMetricType:
		if t.AverageValue == nil {
			return 0, "", status, fmt.Errorf("no averageValue for %s", r)
		}
		est, err := calc.AverageValueReplicas(current, t.AverageValue.MilliValue(), r, pods)
		if err != nil {
			return 0, "", status, fmt.Errorf("failed to get %s usage: %w", r, err)
		}
		status.Resource = &api.ResourceMetricStatus{Name: m.Resource.Name, Current: api.MetricValueStatus{AverageValue: quantity(r, est.Average)}}
		return est.Replicas, fmt.Sprintf("%s resource", r), status, nil
	}
	return 0, "", status, fmt.Errorf("target type %q is not supported", t.Type)
}

// quantity renders an amount in thousandths: cpu in millicores ("45m"),
// memory in KiB ("10240Ki"), as the metrics API shows them.
func quantity(r Resource, milli int64) *api.Quantity {
	var q api.Quantity
	if r == CPU {
		q = api.Quantity(strconv.FormatInt(milli, 10) + "m")
	} else {
		q = api.Quantity(strconv.FormatInt(milli/1000/1024, 10) + "Ki")
	}
	return &q
}

// podsOf gathers what the calculation needs of the target's pods: their
// requests, readiness and usage from their node's newest sample, if it is
// current (see staleAfter).
func (p *pass) podsOf(t *target) []Pod {
	owned := p.pods[t.UID]
	out := make([]Pod, 0, len(owned))
	for _, pod := range owned {
		v := Pod{Name: pod.Name, Phase: pod.Status.Phase, StartTime: pod.Status.StartTime.Time}
		for _, c := range pod.Status.Conditions {
			if c.Type == api.PodReady {
				v.Ready, v.ReadySince = c.Status, c.LastTransitionTime.Time
			}
		}
		for _, ct := range pod.Spec.Containers {
			for r := range numResources {
				q, ok := manifest.RequestOf(ct, r.String())
				amount := int64(0)
				if ok {
					amount = p.amount(r, q)
				}
				if amount <= 0 {
					if v.NoRequest[r] == "" {
						v.NoRequest[r] = ct.Name
					}
					continue
				}
				v.Request[r] += amount
			}
		}
		p.usage(pod, &v)
		out = append(out, v)
	}
	return out
}

// staleAfter is how old a sample may be and still stand for its node's
// pods now.
func staleAfter(s *wire.MetricSample) time.Duration {
	return max(StaleWindows*s.Window(), MinStale)
}

// usage fills in a pod's usage from its node's newest sample, or says why
// it has none: its node is not Ready (offline, or unheard), it sent no
// sample, the sample is stale, or it does not list the pod.
func (p *pass) usage(pod *api.Pod, v *Pod) {
	node := pod.Spec.NodeName
	if node == "" {
		return // not placed: pending, and left out
	}
	n := p.nodes[node]
	if n == nil || !n.IsReady() {
		v.Missing = "node " + node + " is not Ready"
		return
	}
	s, ok := p.in.Samples[node]
	if !ok {
		v.Missing = "node " + node + " has sent no sample"
		return
	}
	if age := p.in.Now.Sub(s.Time); age > staleAfter(&s) {
		v.Missing = fmt.Sprintf("node %s's newest sample is %s old", node, age.Round(time.Second))
		return
	}
	for i := range s.Pods {
		ps := &s.Pods[i]
		if ps.UID != "" && ps.UID != pod.UID || ps.UID == "" && (ps.Name != pod.Name || ps.Namespace != pod.Namespace) {
			continue
		}
		v.SampleTime, v.Window = s.Time, s.Window()
		var cpu float64
		cpuKnown := len(ps.Containers) > 0
		var mem int64
		for _, c := range ps.Containers {
			if c.CPUUsageCores == nil {
				cpuKnown = false
			} else {
				cpu += *c.CPUUsageCores
			}
			mem += int64(c.MemoryWorkingSetBytes)
		}
		if cpuKnown {
			v.Usage[CPU], v.HasUsage[CPU] = int64(cpu*1000+0.5), true
		}
		if len(ps.Containers) > 0 {
			v.Usage[Memory], v.HasUsage[Memory] = mem*1000, true
		}
		return
	}
	v.Missing = "pod " + pod.Name + " is not in node " + node + "'s newest sample"
}

// capacity holds a scale-up to what the scheduler can place: not at all
// while pods of the target wait for a node, and to as many more pods as
// fit on the nodes now (Ready ones, with room for the pod's requests).
// A held count sets ScalingLimited and records an event.
func (p *pass) capacity(dc *decider, t *target, current, desired int32) int32 {
	if desired <= current {
		return desired
	}
	pending, why := 0, ""
	for _, pod := range p.pods[t.UID] {
		if pod.Spec.NodeName == "" && pod.Status.Phase == api.PodPending {
			for _, c := range pod.Status.Conditions {
				if c.Type == deployment.PodScheduled && c.Status == api.ConditionFalse {
					pending++
					if why == "" {
						why = c.Message
					}
				}
			}
		}
	}
	if pending > 0 {
		msg := fmt.Sprintf("%d of the target's pods cannot be placed (%s); not scaling up from %d to %d until they are", pending, why, current, desired)
		dc.condition(api.ScalingLimited, api.ConditionTrue, ReasonInsufficientCapacity, "%s", msg)
		dc.event(api.EventWarning, ReasonInsufficientCapacity, msg)
		return current
	}
	more := int(desired - current)
	fits, reason := p.place(&t.Template.Spec, more)
	if fits == more {
		return desired
	}
	held := current + int32(fits)
	msg := fmt.Sprintf("the nodes have room for %d of the %d more pods wanted (%s); scaling to %d, not %d", fits, more, reason, held, desired)
	dc.condition(api.ScalingLimited, api.ConditionTrue, ReasonInsufficientCapacity, "%s", msg)
	dc.event(api.EventWarning, ReasonInsufficientCapacity, msg)
	return held
}

// place asks the scheduler for room for n more pods of spec, and keeps
// the room it finds taken in the pass's view, so that the next scale-up
// of the pass does not count it again.
func (p *pass) place(spec *api.PodSpec, n int) (int, string) {
	if p.sched == nil {
		p.sched = scheduler.NodesFrom(p.in.Nodes, p.in.Pods, nil)
	}
	pod := scheduler.Pod{Requests: scheduler.Requests(spec), NodeSelector: spec.NodeSelector}
	return scheduler.Reserve(pod, p.sched, n)
}
