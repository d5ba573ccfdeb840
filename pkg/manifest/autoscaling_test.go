package manifest

import (
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// hpaYAML is the autoscaler of Kubernetes' walkthrough (php-apache), in
// autoscaling/v2.
const hpaYAML = `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: php-apache
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: php-apache
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 50
`

func TestHPADecodesAndDefaults(t *testing.T) {
	docs, err := Load("hpa.yaml", []byte(hpaYAML), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	h, ok := docs[0].Object.(*api.HorizontalPodAutoscaler)
	if !ok {
		t.Fatalf("decoded a %T", docs[0].Object)
	}
	if h.Namespace != api.DefaultNamespace || h.Spec.ScaleTargetRef.Name != "php-apache" || h.Spec.MaxReplicas != 10 ||
		*h.Spec.Metrics[0].Resource.Target.AverageUtilization != 50 || h.Spec.Behavior != nil {
		t.Errorf("decoded %+v", h.Spec)
	}

	// Without minReplicas and metrics: 1, and cpu at 80 %, as Kubernetes.
	bare := "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: a}\nspec: {scaleTargetRef: {kind: Deployment, name: web}, maxReplicas: 3}\n"
	docs, err = Load("bare.yaml", []byte(bare), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	h = docs[0].Object.(*api.HorizontalPodAutoscaler)
	if *h.Spec.MinReplicas != 1 || len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource.Name != "cpu" ||
		*h.Spec.Metrics[0].Resource.Target.AverageUtilization != 80 {
		t.Errorf("defaults: %+v", h.Spec)
	}

	// A behavior with only a scale-down window: the rest from Kubernetes'
	// defaults, the window kept.
	withBehavior := hpaYAML + "  behavior:\n    scaleDown:\n      stabilizationWindowSeconds: 10\n"
	docs, err = Load("b.yaml", []byte(withBehavior), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	b := docs[0].Object.(*api.HorizontalPodAutoscaler).Spec.Behavior
	up, down := b.ScaleUp, b.ScaleDown
	if *down.StabilizationWindowSeconds != 10 || *down.SelectPolicy != api.MaxChangePolicySelect ||
		len(down.Policies) != 1 || down.Policies[0] != (api.HPAScalingPolicy{Type: api.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}) {
		t.Errorf("scaleDown %+v", down)
	}
	if *up.StabilizationWindowSeconds != 0 || *up.SelectPolicy != api.MaxChangePolicySelect || len(up.Policies) != 2 {
		t.Errorf("scaleUp %+v", up)
	}
	// Default is idempotent: the defaulted object validates and defaults
	// to itself.
	h = docs[0].Object.(*api.HorizontalPodAutoscaler)
	before := *h.Spec.Behavior.ScaleUp
	Default(h, "")
	if err := Validate(h); err != nil || len(h.Spec.Behavior.ScaleUp.Policies) != len(before.Policies) {
		t.Errorf("again: %v, %+v", err, h.Spec.Behavior.ScaleUp)
	}
}

func TestHPAProblemsNameTheirFields(t *testing.T) {
	cases := []struct {
		name string
		edit func(string) string
		want []string
	}{
		{"min above max", func(s string) string { return strings.Replace(s, "minReplicas: 1", "minReplicas: 12", 1) },
			[]string{"spec.maxReplicas: must be greater than or equal to spec.minReplicas (12)"}},
		{"min zero", func(s string) string { return strings.Replace(s, "minReplicas: 1", "minReplicas: 0", 1) },
			[]string{"spec.minReplicas: must be greater than or equal to 1"}},
		{"max zero", func(s string) string { return strings.Replace(s, "maxReplicas: 10", "maxReplicas: 0", 1) },
			[]string{"spec.maxReplicas: must be greater than 0"}},
		{"a DaemonSet", func(s string) string { return strings.Replace(s, "kind: Deployment", "kind: DaemonSet", 1) },
			[]string{"spec.scaleTargetRef.kind: a DaemonSet cannot be scaled: it runs one pod on every matching node; must be one of Deployment"}},
		{"a ReplicaSet", func(s string) string { return strings.Replace(s, "kind: Deployment", "kind: ReplicaSet", 1) },
			[]string{"spec.scaleTargetRef.kind: ReplicaSet is not supported by Flotilla; must be one of Deployment"}},
		{"a Service", func(s string) string { return strings.Replace(s, "kind: Deployment", "kind: Service", 1) },
			[]string{"spec.scaleTargetRef.kind: a Service cannot be scaled: it has no replicas; must be one of Deployment"}},
		{"a typo", func(s string) string { return strings.Replace(s, "kind: Deployment", "kind: Deploymnt", 1) },
			[]string{`spec.scaleTargetRef.kind: unknown kind "Deploymnt"; must be one of Deployment`}},
		{"wrong apiVersion", func(s string) string {
			return strings.Replace(s, "apiVersion: apps/v1", "apiVersion: extensions/v1beta1", 1)
		},
			[]string{`spec.scaleTargetRef.apiVersion: must be "apps/v1" for kind Deployment, not "extensions/v1beta1"`}},
		{"no name", func(s string) string { return strings.Replace(s, "    name: php-apache\n", "", 1) },
			[]string{"spec.scaleTargetRef.name: required"}},
		{"a Pods metric", func(s string) string {
			return strings.Replace(s, "  - type: Resource\n", "  - type: Pods\n    pods: {metric: {name: qps}, target: {type: AverageValue, averageValue: 1k}}\n  - type: Resource\n", 1)
		}, []string{"spec.metrics[0].pods: not supported by Flotilla",
			"spec.metrics[0].type: Pods metrics are not supported by Flotilla: it scales on the cpu and memory its agents measure (type Resource)"}},
		{"a GPU", func(s string) string { return strings.Replace(s, "name: cpu", "name: nvidia.com/gpu", 1) },
			[]string{`spec.metrics[0].resource.name: unsupported resource "nvidia.com/gpu": Flotilla scales on cpu and memory`}},
		{"utilization with a value", func(s string) string {
			return strings.Replace(s, "averageUtilization: 50", "averageUtilization: 50\n        averageValue: 100m", 1)
		}, []string{"spec.metrics[0].resource.target.averageValue: may not be set when type is Utilization"}},
		{"utilization zero", func(s string) string { return strings.Replace(s, "averageUtilization: 50", "averageUtilization: 0", 1) },
			[]string{"spec.metrics[0].resource.target.averageUtilization: must be greater than 0"}},
		{"average value missing", func(s string) string {
			return strings.Replace(s, "type: Utilization\n        averageUtilization: 50", "type: AverageValue", 1)
		}, []string{"spec.metrics[0].resource.target.averageValue: required when type is AverageValue"}},
		{"a Value target", func(s string) string {
			return strings.Replace(s, "type: Utilization\n        averageUtilization: 50", "type: Value\n        value: 1", 1)
		}, []string{"spec.metrics[0].resource.target.value: not supported by Flotilla",
			`spec.metrics[0].resource.target.type: "Value" is not one of Utilization, AverageValue for a Resource metric`}},
		{"behavior out of bounds", func(s string) string {
			return s + "  behavior:\n    scaleUp:\n      stabilizationWindowSeconds: 4000\n      selectPolicy: Most\n      policies: [{type: Pods, value: 0, periodSeconds: 2000}, {type: Nodes, value: 1, periodSeconds: 15}]\n    scaleDown:\n      policies: []\n"
		}, []string{
			"spec.behavior.scaleUp.stabilizationWindowSeconds: must be between 0 and 3600",
			`spec.behavior.scaleUp.selectPolicy: "Most" is not one of Max, Min, Disabled`,
			"spec.behavior.scaleUp.policies[0].value: must be greater than 0",
			"spec.behavior.scaleUp.policies[0].periodSeconds: must be between 1 and 1800",
			`spec.behavior.scaleUp.policies[1].type: "Nodes" is not one of Pods, Percent`,
			"spec.behavior.scaleDown.policies: must specify at least one policy",
		}},
		{"a tolerance", func(s string) string { return s + "  behavior:\n    scaleUp:\n      tolerance: 0.05\n" },
			[]string{"spec.behavior.scaleUp.tolerance: not supported by Flotilla"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("hpa.yaml", []byte(tc.edit(hpaYAML)), LoadOptions{Apply: true})
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			for _, line := range strings.Split(err.Error(), "\n") {
				got = append(got, strings.TrimPrefix(line, "hpa.yaml: document 1: "))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestValidateScaleTargetWantsRequestsForUtilization(t *testing.T) {
	docs, err := Load("hpa.yaml", []byte(hpaYAML+"  - type: Resource\n    resource: {name: memory, target: {type: Utilization, averageUtilization: 70}}\n"+
		"  - type: Resource\n    resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}\n"), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	h := docs[0].Object.(*api.HorizontalPodAutoscaler)
	tmpl := &api.PodTemplateSpec{Spec: api.PodSpec{Containers: []api.Container{
		{Name: "php", Resources: api.ResourceRequirements{Requests: api.ResourceList{"cpu": "200m"}}},
		{Name: "sidecar", Resources: api.ResourceRequirements{Limits: api.ResourceList{"cpu": "100m", "memory": "64Mi"}}},
	}}}
	err = ValidateScaleTarget(h, api.KindDeployment, tmpl)
	// cpu: requested by one, limited (so requested) by the other; memory:
	// the first container has none. The AverageValue metric needs none.
	want := `spec.metrics[1].resource.target.averageUtilization: Deployment php-apache has no memory request in container "php" ` +
		`(spec.template.spec.containers[0].resources.requests.memory): a Utilization target is a percentage of the pods' requests; set one, or use an AverageValue target`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	tmpl.Spec.Containers[0].Resources.Requests["memory"] = "128Mi"
	if err := ValidateScaleTarget(h, api.KindDeployment, tmpl); err != nil {
		t.Errorf("with requests: %v", err)
	}
	tmpl.Spec.Containers[1].Resources.Limits["cpu"] = "0"
	if err := ValidateScaleTarget(h, api.KindDeployment, tmpl); err == nil || !strings.Contains(err.Error(), `no cpu request in container "sidecar"`) {
		t.Errorf("a zero request: %v", err)
	}
}
