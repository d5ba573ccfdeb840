package api

// Autoscaling: Kubernetes' autoscaling/v2 HorizontalPodAutoscaler, for
// the subset Flotilla implements (Resource metrics, cpu and memory, from
// the usage the agents report), and the autoscaling/v1 Scale object that
// a scalable kind's scale subresource serves.

// KindHorizontalPodAutoscaler is the kind of a HorizontalPodAutoscaler.
const KindHorizontalPodAutoscaler = "HorizontalPodAutoscaler"

// KindScale is the kind of the object a scale subresource serves; it is
// no kind of its own in the store.
const KindScale = "Scale"

// ScaleAPIVersion is the group version of Scale.
const ScaleAPIVersion = "autoscaling/v1"

// scaleTargetKinds are the kinds that have spec.replicas and a scale
// subresource, so that a HorizontalPodAutoscaler may scale them. A kind
// joins by being listed here and in the autoscaler's table of how to
// read and write its replicas (a ReplicaSet, once Flotilla has one).
var scaleTargetKinds = []string{KindDeployment}

// ScaleTargetKinds returns the kinds a HorizontalPodAutoscaler may scale.
func ScaleTargetKinds() []string { return append([]string(nil), scaleTargetKinds...) }

// CanScale reports whether kind has a scale subresource.
func CanScale(kind string) bool {
	for _, k := range scaleTargetKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// HorizontalPodAutoscaler keeps a scalable object's replicas where its
// pods' usage meets the targets of its metrics, between minReplicas and
// maxReplicas, as Kubernetes' autoscaling/v2 does.
type HorizontalPodAutoscaler struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       HorizontalPodAutoscalerSpec   `json:"spec"`
	Status     HorizontalPodAutoscalerStatus `json:"status,omitempty"`
}

// HorizontalPodAutoscalerSpec is the supported subset of Kubernetes'.
type HorizontalPodAutoscalerSpec struct {
	// ScaleTargetRef names the object to scale, in the autoscaler's
	// namespace.
	ScaleTargetRef CrossVersionObjectReference `json:"scaleTargetRef"`
	// MinReplicas is the fewest replicas (default 1); MaxReplicas the
	// most.
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	MaxReplicas int32  `json:"maxReplicas"`
	// Metrics are what the replica count follows; the largest count any
	// of them asks for wins. Default: cpu at 80 % of the requests.
	Metrics []MetricSpec `json:"metrics,omitempty"`
	// Behavior bounds how fast the count moves; unset, Kubernetes'
	// defaults (DefaultScaleUpRules, DefaultScaleDownRules).
	Behavior *HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
}

// CrossVersionObjectReference names the object an autoscaler scales.
type CrossVersionObjectReference struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// MetricSourceType is the kind of a metric; Flotilla has Resource.
type MetricSourceType string

// Metric source types.
const ResourceMetricSourceType MetricSourceType = "Resource"

// MetricSpec is one metric an autoscaler follows.
type MetricSpec struct {
	Type     MetricSourceType      `json:"type"`
	Resource *ResourceMetricSource `json:"resource,omitempty"`
}

// ResourceMetricSource is the usage of a resource (cpu, memory) averaged
// over the target's pods.
type ResourceMetricSource struct {
	Name   string       `json:"name"`
	Target MetricTarget `json:"target"`
}

// MetricTargetType says what a target is measured in.
type MetricTargetType string

// Metric target types: a percentage of the pods' requests, or an amount
// per pod.
const (
	UtilizationMetricType  MetricTargetType = "Utilization"
	AverageValueMetricType MetricTargetType = "AverageValue"
)

// MetricTarget is the value a metric should have: AverageUtilization
// (percent of the requests) for Utilization, AverageValue (an amount per
// pod) for AverageValue.
type MetricTarget struct {
	Type               MetricTargetType `json:"type"`
	AverageValue       *Quantity        `json:"averageValue,omitempty"`
	AverageUtilization *int32           `json:"averageUtilization,omitempty"`
}

// HorizontalPodAutoscalerBehavior bounds scaling up and down.
type HorizontalPodAutoscalerBehavior struct {
	ScaleUp   *HPAScalingRules `json:"scaleUp,omitempty"`
	ScaleDown *HPAScalingRules `json:"scaleDown,omitempty"`
}

// ScalingPolicySelect picks among a direction's policies.
type ScalingPolicySelect string

// Policy selections: the policy that allows the largest change, the
// smallest, or no change in that direction at all.
const (
	MaxChangePolicySelect ScalingPolicySelect = "Max"
	MinChangePolicySelect ScalingPolicySelect = "Min"
	DisabledPolicySelect  ScalingPolicySelect = "Disabled"
)

// HPAScalingRules bound one direction: a window of past recommendations
// to follow (the highest in it for scaling down, the lowest for scaling
// up) and policies on how many pods may change per period.
type HPAScalingRules struct {
	StabilizationWindowSeconds *int32               `json:"stabilizationWindowSeconds,omitempty"`
	SelectPolicy               *ScalingPolicySelect `json:"selectPolicy,omitempty"`
	Policies                   []HPAScalingPolicy   `json:"policies,omitempty"`
}

// HPAScalingPolicyType is what a policy's value counts.
type HPAScalingPolicyType string

// Policy types: a number of pods, or a percentage of the replicas at the
// start of the period.
const (
	PodsScalingPolicy    HPAScalingPolicyType = "Pods"
	PercentScalingPolicy HPAScalingPolicyType = "Percent"
)

// HPAScalingPolicy allows a change of at most Value (pods or percent) in
// any PeriodSeconds.
type HPAScalingPolicy struct {
	Type          HPAScalingPolicyType `json:"type"`
	Value         int32                `json:"value"`
	PeriodSeconds int32                `json:"periodSeconds"`
}

// Kubernetes' defaults for behavior.
const (
	// DefaultScaleDownStabilizationSeconds is how far back scaling down
	// looks for a higher recommendation.
	DefaultScaleDownStabilizationSeconds = 300
	// DefaultHPAUtilization is the cpu target of an autoscaler without
	// metrics.
	DefaultHPAUtilization = 80
)

// DefaultScaleUpRules are Kubernetes' scale-up rules: no stabilization,
// at most 4 pods or double the replicas (whichever is more) per 15 s.
func DefaultScaleUpRules() HPAScalingRules {
	sel := MaxChangePolicySelect
	return HPAScalingRules{
		StabilizationWindowSeconds: int32Ptr(0),
		SelectPolicy:               &sel,
		Policies: []HPAScalingPolicy{
			{Type: PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	}
}

// DefaultScaleDownRules are Kubernetes' scale-down rules: the highest
// recommendation of the last 300 s, and any number of pods per 15 s.
func DefaultScaleDownRules() HPAScalingRules {
	sel := MaxChangePolicySelect
	return HPAScalingRules{
		StabilizationWindowSeconds: int32Ptr(DefaultScaleDownStabilizationSeconds),
		SelectPolicy:               &sel,
		Policies:                   []HPAScalingPolicy{{Type: PercentScalingPolicy, Value: 100, PeriodSeconds: 15}},
	}
}

func int32Ptr(v int32) *int32 { return &v }

// HorizontalPodAutoscalerStatus is what the autoscaler last saw and did.
type HorizontalPodAutoscalerStatus struct {
	ObservedGeneration *int64 `json:"observedGeneration,omitempty"`
	// LastScaleTime is when it last changed the target's replicas.
	LastScaleTime *Time `json:"lastScaleTime,omitempty"`
	// CurrentReplicas is how many pods the target has; DesiredReplicas
	// how many the autoscaler last asked for.
	CurrentReplicas int32                              `json:"currentReplicas,omitempty"`
	DesiredReplicas int32                              `json:"desiredReplicas"`
	CurrentMetrics  []MetricStatus                     `json:"currentMetrics,omitempty"`
	Conditions      []HorizontalPodAutoscalerCondition `json:"conditions,omitempty"`
}

// MetricStatus is one metric's last value, in the order of spec.metrics.
type MetricStatus struct {
	Type     MetricSourceType      `json:"type"`
	Resource *ResourceMetricStatus `json:"resource,omitempty"`
}

// ResourceMetricStatus is a resource's usage averaged over the pods that
// had a current sample.
type ResourceMetricStatus struct {
	Name    string            `json:"name"`
	Current MetricValueStatus `json:"current"`
}

// MetricValueStatus is a metric's value: the average per pod and, for a
// Utilization target, the percentage of the requests.
type MetricValueStatus struct {
	AverageValue       *Quantity `json:"averageValue,omitempty"`
	AverageUtilization *int32    `json:"averageUtilization,omitempty"`
}

// HorizontalPodAutoscalerCondition is one aspect of an autoscaler's state.
type HorizontalPodAutoscalerCondition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	LastTransitionTime Time            `json:"lastTransitionTime,omitempty"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
}

// Autoscaler condition types, as Kubernetes names them.
const (
	// AbleToScale: the autoscaler can read and change the target's scale.
	AbleToScale = "AbleToScale"
	// ScalingActive: it can compute a replica count from its metrics.
	ScalingActive = "ScalingActive"
	// ScalingLimited: the count it wants is held back by minReplicas,
	// maxReplicas, a policy, or the capacity of the nodes.
	ScalingLimited = "ScalingLimited"
)

// Condition returns the status's condition of type t, or nil.
func (s *HorizontalPodAutoscalerStatus) Condition(t string) *HorizontalPodAutoscalerCondition {
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

// Scale is the autoscaling/v1 view of a scalable object that its scale
// subresource serves: the replicas it should have and has, and the
// selector of its pods.
type Scale struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata"`
	Spec       ScaleSpec   `json:"spec,omitempty"`
	Status     ScaleStatus `json:"status,omitempty"`
}

// ScaleSpec is the desired replica count.
type ScaleSpec struct {
	Replicas int32 `json:"replicas,omitempty"`
}

// ScaleStatus is the observed replica count and the pods' label selector
// in kubectl's syntax.
type ScaleStatus struct {
	Replicas int32  `json:"replicas"`
	Selector string `json:"selector,omitempty"`
}
