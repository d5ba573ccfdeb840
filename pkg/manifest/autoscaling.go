package manifest

import (
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Bounds Kubernetes puts on an autoscaler's behavior.
const (
	maxStabilizationWindowSeconds = 3600
	maxPolicyPeriodSeconds        = 1800
)

var (
	hpaResources     = []string{api.ResourceCPU, api.ResourceMemory}
	hpaTargetTypes   = []api.MetricTargetType{api.UtilizationMetricType, api.AverageValueMetricType}
	hpaPolicySelects = []api.ScalingPolicySelect{api.MaxChangePolicySelect, api.MinChangePolicySelect, api.DisabledPolicySelect}
	hpaPolicyTypes   = []api.HPAScalingPolicyType{api.PodsScalingPolicy, api.PercentScalingPolicy}
	// otherMetricTypes are Kubernetes' metric types Flotilla does not
	// have: it keeps the usage of pods, not custom or external metrics.
	otherMetricTypes = []api.MetricSourceType{"Pods", "Object", "External", "ContainerResource"}
)

// defaultHPASpec fills in Kubernetes' defaults: minReplicas 1, a cpu
// target of 80 % of the requests when no metric is given and, when
// behavior is given, what its rules leave out (DefaultScaleUpRules,
// DefaultScaleDownRules). Without behavior, the autoscaler uses those
// defaults itself, as Kubernetes' does.
func defaultHPASpec(spec *api.HorizontalPodAutoscalerSpec) {
	if spec.MinReplicas == nil {
		spec.MinReplicas = int32p(1)
	}
	if len(spec.Metrics) == 0 {
		spec.Metrics = []api.MetricSpec{{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricSource{
			Name:   api.ResourceCPU,
			Target: api.MetricTarget{Type: api.UtilizationMetricType, AverageUtilization: int32p(api.DefaultHPAUtilization)},
		}}}
	}
	if b := spec.Behavior; b != nil {
		b.ScaleUp = defaultRules(b.ScaleUp, api.DefaultScaleUpRules())
		b.ScaleDown = defaultRules(b.ScaleDown, api.DefaultScaleDownRules())
	}
}

// defaultRules fills what rules leave out from def; a rules block that
// lists policies keeps only its own.
func defaultRules(rules *api.HPAScalingRules, def api.HPAScalingRules) *api.HPAScalingRules {
	if rules == nil {
		return &def
	}
	if rules.StabilizationWindowSeconds == nil {
		rules.StabilizationWindowSeconds = def.StabilizationWindowSeconds
	}
	if rules.SelectPolicy == nil {
		rules.SelectPolicy = def.SelectPolicy
	}
	if rules.Policies == nil {
		rules.Policies = def.Policies
	}
	return rules
}

// validateHPASpec applies Kubernetes' rules to an autoscaler, for the
// metrics Flotilla has: Resource metrics of cpu and memory.
func validateHPASpec(c *collector, spec *api.HorizontalPodAutoscalerSpec) {
	validateScaleTargetRef(c, &spec.ScaleTargetRef, "spec.scaleTargetRef")
	min := int32(1)
	if spec.MinReplicas != nil {
		min = *spec.MinReplicas
		if min < 1 {
			c.add("spec.minReplicas", "must be greater than or equal to 1")
		}
	}
	switch {
	case spec.MaxReplicas < 1:
		c.add("spec.maxReplicas", "must be greater than 0")
	case spec.MaxReplicas < min:
		c.addf("spec.maxReplicas", "must be greater than or equal to spec.minReplicas (%d)", min)
	}
	for i := range spec.Metrics {
		validateMetricSpec(c, &spec.Metrics[i], index("spec.metrics", i))
	}
	if b := spec.Behavior; b != nil {
		validateScalingRules(c, b.ScaleUp, "spec.behavior.scaleUp")
		validateScalingRules(c, b.ScaleDown, "spec.behavior.scaleDown")
	}
}

// validateScaleTargetRef checks that the reference names an object of a
// kind with a scale subresource.
func validateScaleTargetRef(c *collector, ref *api.CrossVersionObjectReference, path string) {
	kinds := strings.Join(api.ScaleTargetKinds(), ", ")
	kindPath := field(path, "kind")
	info, known := api.LookupKind(ref.Kind)
	switch {
	case ref.Kind == "":
		c.addf(kindPath, "required (one of %s)", kinds)
	case api.CanScale(ref.Kind):
	case known && ref.Kind == api.KindDaemonSet:
		c.addf(kindPath, "a DaemonSet cannot be scaled: it runs one pod on every matching node; must be one of %s", kinds)
	case known:
		c.addf(kindPath, "a %s cannot be scaled: it has no replicas; must be one of %s", ref.Kind, kinds)
	case kubernetesKinds[ref.Kind]:
		c.addf(kindPath, "%s is not supported by Flotilla; must be one of %s", ref.Kind, kinds)
	default:
		c.addf(kindPath, "unknown kind %q; must be one of %s", clip(ref.Kind, 64), kinds)
	}
	if ref.Name == "" {
		c.add(field(path, "name"), "required")
	} else if err := api.ValidateDNSSubdomain(ref.Name); err != nil {
		c.add(field(path, "name"), errText(err))
	}
	if ref.APIVersion != "" && known && api.CanScale(ref.Kind) && ref.APIVersion != info.APIVersion {
		c.addf(field(path, "apiVersion"), "must be %q for kind %s, not %q", info.APIVersion, ref.Kind, clip(ref.APIVersion, 64))
	}
}

func validateMetricSpec(c *collector, m *api.MetricSpec, path string) {
	typePath := field(path, "type")
	switch {
	case m.Type == "":
		c.add(typePath, "required (Resource)")
		return
	case oneOf(m.Type, otherMetricTypes):
		c.addf(typePath, "%s metrics are not supported by Flotilla: it scales on the cpu and memory its agents measure (type Resource)", m.Type)
		return
	case m.Type != api.ResourceMetricSourceType:
		c.add(typePath, notOneOf(m.Type, []api.MetricSourceType{api.ResourceMetricSourceType}))
		return
	}
	r := m.Resource
	p := field(path, "resource")
	if r == nil {
		c.add(p, "required when type is Resource")
		return
	}
	switch {
	case r.Name == "":
		c.add(field(p, "name"), "required (cpu or memory)")
	case !oneOf(r.Name, hpaResources):
		c.addf(field(p, "name"), "unsupported resource %q: Flotilla scales on cpu and memory", clip(r.Name, 64))
	}
	t, tp := &r.Target, field(p, "target")
	utilPath, valuePath := field(tp, "averageUtilization"), field(tp, "averageValue")
	switch t.Type {
	case "":
		c.add(field(tp, "type"), "required (Utilization or AverageValue)")
	case api.UtilizationMetricType:
		if t.AverageUtilization == nil {
			c.add(utilPath, "required when type is Utilization")
		} else if *t.AverageUtilization <= 0 {
			c.add(utilPath, "must be greater than 0")
		}
		if t.AverageValue != nil {
			c.add(valuePath, "may not be set when type is Utilization")
		}
	case api.AverageValueMetricType:
		if t.AverageValue == nil {
			c.add(valuePath, "required when type is AverageValue")
		} else if err := t.AverageValue.Validate(); err != nil {
			c.add(valuePath, errText(err))
		} else if t.AverageValue.MilliValue() <= 0 {
			c.add(valuePath, "must be greater than 0")
		}
		if t.AverageUtilization != nil {
			c.add(utilPath, "may not be set when type is AverageValue")
		}
	default:
		c.addf(field(tp, "type"), "%s for a Resource metric", notOneOf(t.Type, hpaTargetTypes))
	}
}

func validateScalingRules(c *collector, r *api.HPAScalingRules, path string) {
	if r == nil {
		return
	}
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > maxStabilizationWindowSeconds) {
		c.addf(field(path, "stabilizationWindowSeconds"), "must be between 0 and %d", maxStabilizationWindowSeconds)
	}
	if s := r.SelectPolicy; s != nil && !oneOf(*s, hpaPolicySelects) {
		c.add(field(path, "selectPolicy"), notOneOf(*s, hpaPolicySelects))
	}
	pp := field(path, "policies")
	if len(r.Policies) == 0 {
		c.add(pp, "must specify at least one policy")
	}
	for i, p := range r.Policies {
		ip := index(pp, i)
		if !oneOf(p.Type, hpaPolicyTypes) {
			c.add(field(ip, "type"), notOneOf(p.Type, hpaPolicyTypes))
		}
		if p.Value <= 0 {
			c.add(field(ip, "value"), "must be greater than 0")
		}
		if p.PeriodSeconds <= 0 || p.PeriodSeconds > maxPolicyPeriodSeconds {
			c.addf(field(ip, "periodSeconds"), "must be between 1 and %d", maxPolicyPeriodSeconds)
		}
	}
}

// ValidateScaleTarget checks an autoscaler against the pod template of
// the object it scales, of the given kind: each Utilization metric is a
// percentage of the pods' requests, so every container must request (or
// limit, which Kubernetes turns into a request) the metric's resource.
// It returns an ErrorList with a problem per metric that cannot be
// measured, at the metric's target, or nil.
func ValidateScaleTarget(hpa *api.HorizontalPodAutoscaler, kind string, template *api.PodTemplateSpec) error {
	c := &collector{}
	for i, m := range hpa.Spec.Metrics {
		if m.Type != api.ResourceMetricSourceType || m.Resource == nil || m.Resource.Target.Type != api.UtilizationMetricType {
			continue
		}
		name := m.Resource.Name
		for j, ct := range template.Spec.Containers {
			if q, ok := RequestOf(ct, name); ok && q.MilliValue() > 0 {
				continue
			}
			c.addf(field(index("spec.metrics", i), "resource.target.averageUtilization"),
				"%s %s has no %s request in container %q (spec.template.spec.containers[%d].resources.requests.%s): a Utilization target is a percentage of the pods' requests; set one, or use an AverageValue target",
				kind, hpa.Spec.ScaleTargetRef.Name, name, ct.Name, j, name)
			break
		}
	}
	return c.err()
}

// RequestOf is a container's request for a resource: its request, or
// its limit when it has none, as Kubernetes defaults it.
func RequestOf(ct api.Container, name string) (api.Quantity, bool) {
	if q, ok := ct.Resources.Requests[name]; ok {
		return q, true
	}
	q, ok := ct.Resources.Limits[name]
	return q, ok
}
