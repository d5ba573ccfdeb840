package printer

import (
	"bytes"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// testHPAs: the walkthrough's php-apache under load (measured), one just
// created (nothing measured yet) with three metrics and a behavior.
func testHPAs() []*api.HorizontalPodAutoscaler {
	util, memUtil := int32(305), int32(40)
	cur, mem := api.Quantity("610m"), api.Quantity("52Mi")
	php := &api.HorizontalPodAutoscaler{
		ObjectMeta: meta("default", "php-apache", 3*time.Minute, nil),
		Spec: api.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: api.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "php-apache"},
			MinReplicas:    int32p(1), MaxReplicas: 10,
			Metrics: []api.MetricSpec{{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricSource{
				Name: "cpu", Target: api.MetricTarget{Type: api.UtilizationMetricType, AverageUtilization: int32p(50)}}}},
		},
		Status: api.HorizontalPodAutoscalerStatus{
			CurrentReplicas: 1, DesiredReplicas: 5,
			CurrentMetrics: []api.MetricStatus{{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricStatus{
				Name: "cpu", Current: api.MetricValueStatus{AverageUtilization: &util, AverageValue: &cur}}}},
			Conditions: []api.HorizontalPodAutoscalerCondition{
				{Type: api.AbleToScale, Status: api.ConditionTrue, Reason: "SucceededRescale", Message: "the HPA controller was able to update the target scale to 5"},
				{Type: api.ScalingActive, Status: api.ConditionTrue, Reason: "ValidMetricFound", Message: "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"},
				{Type: api.ScalingLimited, Status: api.ConditionTrue, Reason: "ScaleUpLimit", Message: "the desired replica count is increasing faster than the maximum scale rate"},
			},
		},
	}
	sel, win := api.MaxChangePolicySelect, int32(10)
	limit := api.Quantity("100Mi")
	fresh := &api.HorizontalPodAutoscaler{
		ObjectMeta: meta("default", "web", 5*time.Second, nil),
		Spec: api.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: api.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
			MaxReplicas:    4,
			Metrics: []api.MetricSpec{
				{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricSource{Name: "cpu", Target: api.MetricTarget{Type: api.UtilizationMetricType, AverageUtilization: int32p(60)}}},
				{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricSource{Name: "memory", Target: api.MetricTarget{Type: api.AverageValueMetricType, AverageValue: &limit}}},
				{Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricSource{Name: "memory", Target: api.MetricTarget{Type: api.UtilizationMetricType, AverageUtilization: int32p(80)}}},
			},
			Behavior: &api.HorizontalPodAutoscalerBehavior{ScaleDown: &api.HPAScalingRules{StabilizationWindowSeconds: &win, SelectPolicy: &sel,
				Policies: []api.HPAScalingPolicy{{Type: api.PodsScalingPolicy, Value: 1, PeriodSeconds: 60}, {Type: api.PercentScalingPolicy, Value: 10, PeriodSeconds: 60}}}},
		},
		Status: api.HorizontalPodAutoscalerStatus{CurrentMetrics: []api.MetricStatus{{}, {Type: api.ResourceMetricSourceType, Resource: &api.ResourceMetricStatus{
			Name: "memory", Current: api.MetricValueStatus{AverageValue: &mem, AverageUtilization: &memUtil}}}}},
	}
	return []*api.HorizontalPodAutoscaler{php, fresh}
}

func TestHPATable(t *testing.T) {
	var objs []api.Object
	for _, h := range testHPAs() {
		objs = append(objs, h)
	}
	var buf bytes.Buffer
	if err := PrintTable(&buf, api.KindHorizontalPodAutoscaler, objs, Options{Now: testNow}); err != nil {
		t.Fatal(err)
	}
	want := `NAME         REFERENCE               TARGETS                                              MINPODS   MAXPODS   REPLICAS   AGE
php-apache   Deployment/php-apache   cpu: 305%/50%                                        1         10        1          3m
web          Deployment/web          cpu: <unknown>/60%, memory: 52Mi/100Mi + 1 more...   <unset>   4         0          5s
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestDescribeHPA(t *testing.T) {
	hs := testHPAs()
	var buf bytes.Buffer
	rel := Related{ShowEvents: true, Events: []*api.Event{{
		Type: api.EventNormal, Reason: "SuccessfulRescale", Message: "New size: 5; reason: cpu resource utilization (percentage of request) above target",
		Source: api.EventSource{Component: "horizontal-pod-autoscaler"}, FirstTimestamp: ago(time.Minute), LastTimestamp: ago(time.Minute), Count: 1,
	}}}
	if err := Describe(&buf, hs[0], rel, testNow); err != nil {
		t.Fatal(err)
	}
	want := `Name:                                                  php-apache
Namespace:                                             default
Labels:                                                <none>
Annotations:                                           <none>
CreationTimestamp:                                     Wed, 01 May 2024 11:57:00 +0000
Reference:                                             Deployment/php-apache
Metrics:                                               ( current / target )
  resource cpu on pods  (as a percentage of request):  305% (610m) / 50%
Min replicas:                                          1
Max replicas:                                          10
Deployment pods:                                       1 current / 5 desired
Conditions:
  Type            Status  Reason            Message
  ----            ------  ------            -------
  AbleToScale     True    SucceededRescale  the HPA controller was able to update the target scale to 5
  ScalingActive   True    ValidMetricFound  the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)
  ScalingLimited  True    ScaleUpLimit      the desired replica count is increasing faster than the maximum scale rate
Events:
  Type    Reason             Age   From                       Message
  ----    ------             ----  ----                       -------
  Normal  SuccessfulRescale  60s   horizontal-pod-autoscaler  New size: 5; reason: cpu resource utilization (percentage of request) above target
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	buf.Reset()
	if err := Describe(&buf, hs[1], Related{}, testNow); err != nil {
		t.Fatal(err)
	}
	// As in kubectl, the policies' lines and the pods line after them
	// align as a block of their own.
	want = `Name:                                                     web
Namespace:                                                default
Labels:                                                   <none>
Annotations:                                              <none>
CreationTimestamp:                                        Wed, 01 May 2024 11:59:55 +0000
Reference:                                                Deployment/web
Metrics:                                                  ( current / target )
  resource cpu on pods  (as a percentage of request):     <unknown> / 60%
  resource memory on pods:                                52Mi / 100Mi
  resource memory on pods  (as a percentage of request):  <unknown> / 80%
Min replicas:                                             <unset>
Max replicas:                                             4
Behavior:
  Scale Down:
    Stabilization Window: 10 seconds
    Select Policy: Max
    Policies:
      - Type: Pods     Value: 1   Period: 60 seconds
      - Type: Percent  Value: 10  Period: 60 seconds
Deployment pods:       0 current / 0 desired
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
