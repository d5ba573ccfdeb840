package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func int64p(v int64) *int64 { return &v }

func intstr(v int32) *api.IntOrString { i := api.FromInt(v); return &i }

func pct(s string) *api.IntOrString { v := api.FromString(s); return &v }

// validDaemonSet returns a DaemonSet that uses every supported field and
// passes Validate, before and after Default; each case below breaks one
// rule of it.
func validDaemonSet() *api.DaemonSet {
	size := api.Quantity("64Mi")
	return &api.DaemonSet{
		TypeMeta: api.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: api.ObjectMeta{
			Name: "log-shipper.v2", Namespace: "edge",
			Labels:      map[string]string{"app.kubernetes.io/name": "log-shipper", "tier": ""},
			Annotations: map[string]string{"flotilla.dev/note": "anything at all: \n ✓"},
		},
		Spec: api.DaemonSetSpec{
			Selector: &api.LabelSelector{
				MatchLabels: map[string]string{"app": "shipper"},
				MatchExpressions: []api.LabelSelectorRequirement{
					{Key: "track", Operator: api.OpIn, Values: []string{"stable", "canary"}},
					{Key: "legacy", Operator: api.OpDoesNotExist},
				},
			},
			Template: api.PodTemplateSpec{
				ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "shipper", "track": "stable"}},
				Spec: api.PodSpec{
					Containers: []api.Container{{
						Name: "shipper", Image: "registry.local:5000/shipper:1.4", ImagePullPolicy: api.PullIfNotPresent,
						Env:   []api.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "my.var-1"}},
						Ports: []api.ContainerPort{{Name: "metrics", ContainerPort: 9100, HostPort: 9100, Protocol: "TCP"}, {ContainerPort: 514, Protocol: "UDP"}},
						Resources: api.ResourceRequirements{
							Limits:   api.ResourceList{"cpu": "500m", "memory": "128Mi"},
							Requests: api.ResourceList{"cpu": "0.25", "memory": "128Mi"},
						},
						VolumeMounts: []api.VolumeMount{{Name: "varlog", MountPath: "/var/log", ReadOnly: true}, {Name: "buffer", MountPath: "/buffer"}},
						LivenessProbe: &api.Probe{
							ProbeHandler: api.ProbeHandler{HTTPGet: &api.HTTPGetAction{
								Path: "/healthz", Port: api.FromString("metrics"), Host: "127.0.0.1", Scheme: "HTTPS",
								HTTPHeaders: []api.HTTPHeader{{Name: "X-Custom-Header", Value: "Awesome"}, {Name: "!#$%&'*+-.^_`|~0aZ", Value: "a\tb"}},
							}},
							InitialDelaySeconds: 3, TimeoutSeconds: 2, PeriodSeconds: 5, SuccessThreshold: 1, FailureThreshold: 4,
						},
						ReadinessProbe: &api.Probe{
							ProbeHandler:     api.ProbeHandler{TCPSocket: &api.TCPSocketAction{Port: api.FromInt(9100)}},
							SuccessThreshold: 2,
						},
						StartupProbe: &api.Probe{
							ProbeHandler:     api.ProbeHandler{Exec: &api.ExecAction{Command: []string{"/bin/check", "--startup"}}},
							FailureThreshold: 30,
						},
					}, {
						Name: "sidecar", Image: "busybox@sha256:abc",
						ReadinessProbe: &api.Probe{ProbeHandler: api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Port: api.FromInt(65535)}}},
					}},
					Volumes: []api.Volume{
						{Name: "varlog", HostPath: &api.HostPathVolumeSource{Path: "/var/log", Type: "Directory"}},
						{Name: "buffer", EmptyDir: &api.EmptyDirVolumeSource{Medium: "Memory", SizeLimit: &size}},
					},
					RestartPolicy:                 api.RestartAlways,
					TerminationGracePeriodSeconds: int64p(10),
					NodeSelector:                  map[string]string{"kubernetes.io/arch": "arm64"},
					Tolerations: []api.Toleration{
						{Key: api.TaintNodeUnreachable, Operator: api.TolerationOpExists, Effect: api.TaintEffectNoExecute, TolerationSeconds: int64p(300)},
						{Key: "dedicated", Value: "logging", Effect: api.TaintEffectNoSchedule},
						{Key: "example.com/flaky", Operator: api.TolerationOpEqual, Value: "", Effect: api.TaintEffectPreferNoSchedule},
						{Operator: api.TolerationOpExists},
					},
				},
			},
			UpdateStrategy: api.DaemonSetUpdateStrategy{
				Type:          api.RollingUpdateStrategy,
				RollingUpdate: &api.RollingUpdateDaemonSet{MaxUnavailable: pct("20%"), MaxSurge: intstr(0)},
			},
			MinReadySeconds:      10,
			RevisionHistoryLimit: int32p(0),
			Rollout: &api.RolloutSpec{
				Canary:                  &api.CanarySpec{NodeSelector: map[string]string{"ring": "canary"}, PauseSeconds: int32p(0)},
				MaxFailures:             pct("10%"),
				OnFailure:               api.OnFailureRollback,
				OfflineNodes:            api.OfflineWait,
				PrePull:                 true,
				ProgressDeadlineSeconds: int32p(11),
			},
		},
	}
}

// validDeployment returns a Deployment that uses every supported field and
// passes Validate, before and after Default.
func validDeployment() *api.Deployment {
	return &api.Deployment{
		TypeMeta:   api.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: api.ObjectMeta{Name: "web", Namespace: "edge", Labels: map[string]string{"app": "web"}},
		Spec: api.DeploymentSpec{
			Replicas: int32p(3),
			Selector: &api.LabelSelector{
				MatchLabels:      map[string]string{"app": "web"},
				MatchExpressions: []api.LabelSelectorRequirement{{Key: "track", Operator: api.OpNotIn, Values: []string{"canary"}}},
			},
			Template: api.PodTemplateSpec{
				ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "web", "track": "stable"}},
				Spec: api.PodSpec{
					Containers: []api.Container{{
						Name: "web", Image: "registry.local/web:2",
						Ports: []api.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &api.Probe{
							ProbeHandler: api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Path: "/ready", Port: api.FromString("http")}},
						},
					}},
					Tolerations: []api.Toleration{
						{Key: api.TaintNodeNotReady, Operator: api.TolerationOpExists, Effect: api.TaintEffectNoExecute, TolerationSeconds: int64p(30)},
					},
				},
			},
			Strategy: api.DeploymentStrategy{
				Type:          api.RollingUpdateStrategy,
				RollingUpdate: &api.RollingUpdateDeployment{MaxUnavailable: intstr(0), MaxSurge: pct("150%")},
			},
			MinReadySeconds:         5,
			RevisionHistoryLimit:    int32p(2),
			Paused:                  true,
			ProgressDeadlineSeconds: int32p(6),
		},
	}
}

// checkCase validates obj, defaulted first as callers do, and fails unless
// one error has the field and a message containing msg.
func checkCase(t *testing.T, obj api.Object, field, msg string) {
	t.Helper()
	Default(obj, "")
	list := errorsOf(t, Validate(obj))
	for _, e := range list {
		if e.Field == field && strings.Contains(e.Msg, msg) {
			return
		}
	}
	t.Errorf("want %s: …%s…, got:\n%v", field, msg, list)
}

func TestValidateDaemonSet(t *testing.T) {
	if err := Validate(validDaemonSet()); err != nil {
		t.Fatalf("the valid DaemonSet fails: %v", err)
	}
	ds := validDaemonSet()
	Default(ds, "")
	if err := Validate(ds); err != nil {
		t.Fatalf("the valid DaemonSet fails after Default: %v", err)
	}
	const c0 = "spec.template.spec.containers[0]"
	tests := []struct {
		name   string
		mutate func(ds *api.DaemonSet)
		field  string
		msg    string
	}{
		// Metadata.
		{"name required", func(ds *api.DaemonSet) { ds.Name = "" }, "metadata.name", "required"},
		{"name not a subdomain", func(ds *api.DaemonSet) { ds.Name = "Log_Shipper" }, "metadata.name", "not a valid name"},
		{"name too long", func(ds *api.DaemonSet) { ds.Name = strings.Repeat("a", 254) }, "metadata.name", "longer than 253"},
		{"namespace not a label", func(ds *api.DaemonSet) { ds.Namespace = "a.b" }, "metadata.namespace", "not a valid name"},
		{"label key", func(ds *api.DaemonSet) { ds.Labels["-bad"] = "x" }, "metadata.labels", `label key "-bad"`},
		{"label key prefix", func(ds *api.DaemonSet) { ds.Labels["Bad_Prefix/x"] = "x" }, "metadata.labels", "prefix"},
		{"label value", func(ds *api.DaemonSet) { ds.Labels["tier"] = "has space" }, "metadata.labels.tier", "label value"},
		{"annotation key", func(ds *api.DaemonSet) { ds.Annotations["not valid!"] = "" }, "metadata.annotations", `annotation key "not valid!"`},
		{"annotations too big", func(ds *api.DaemonSet) { ds.Annotations["big"] = strings.Repeat("x", 256<<10) }, "metadata.annotations", "at most 262144 bytes"},
		{"wrong kind", func(ds *api.DaemonSet) { ds.Kind = "Pod" }, "kind", `must be "DaemonSet"`},
		{"wrong apiVersion", func(ds *api.DaemonSet) { ds.APIVersion = "v1" }, "apiVersion", `must be "apps/v1"`},

		// Selector.
		{"selector required", func(ds *api.DaemonSet) { ds.Spec.Selector = nil }, "spec.selector", "required"},
		{"selector empty", func(ds *api.DaemonSet) { ds.Spec.Selector = &api.LabelSelector{} }, "spec.selector", "empty selector is invalid"},
		{"selector label key", func(ds *api.DaemonSet) { ds.Spec.Selector.MatchLabels["a b"] = "x" }, "spec.selector.matchLabels", `label key "a b"`},
		{"selector label value", func(ds *api.DaemonSet) { ds.Spec.Selector.MatchLabels["app"] = "-x" }, "spec.selector.matchLabels.app", "label value"},
		{"expression key", func(ds *api.DaemonSet) { ds.Spec.Selector.MatchExpressions[0].Key = "" }, "spec.selector.matchExpressions[0].key", "empty"},
		{"expression operator", func(ds *api.DaemonSet) { ds.Spec.Selector.MatchExpressions[0].Operator = "Equals" }, "spec.selector.matchExpressions[0].operator", "not one of In, NotIn, Exists, DoesNotExist"},
		{"expression operator required", func(ds *api.DaemonSet) { ds.Spec.Selector.MatchExpressions[0].Operator = "" }, "spec.selector.matchExpressions[0].operator", "required"},
		{"In needs values", func(ds *api.DaemonSet) { ds.Spec.Selector.MatchExpressions[0].Values = nil }, "spec.selector.matchExpressions[0].values", "must be non-empty"},
		{"DoesNotExist takes no values", func(ds *api.DaemonSet) { ds.Spec.Selector.MatchExpressions[1].Values = []string{"x"} }, "spec.selector.matchExpressions[1].values", "must be empty"},
		{"expression value", func(ds *api.DaemonSet) { ds.Spec.Selector.MatchExpressions[0].Values[1] = "not ok" }, "spec.selector.matchExpressions[0].values[1]", "label value"},
		{"selector does not match labels", func(ds *api.DaemonSet) { ds.Spec.Template.Labels["app"] = "other" }, "spec.template.metadata.labels", "selector does not match template labels"},
		{"expression does not match labels", func(ds *api.DaemonSet) { ds.Spec.Template.Labels["legacy"] = "yes" }, "spec.template.metadata.labels", "selector does not match template labels"},
		{"template label", func(ds *api.DaemonSet) { ds.Spec.Template.Labels["x"] = strings.Repeat("v", 64) }, "spec.template.metadata.labels.x", "label value"},
		{"template annotation", func(ds *api.DaemonSet) { ds.Spec.Template.Annotations = map[string]string{"": "x"} }, "spec.template.metadata.annotations", "empty"},

		// DaemonSet-specific pod rules.
		{"restartPolicy not Always", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.RestartPolicy = api.RestartOnFailure }, "spec.template.spec.restartPolicy", "must be Always for a DaemonSet"},
		{"nodeName set", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.NodeName = "board-1" }, "spec.template.spec.nodeName", "must not be set"},

		// Pod spec.
		{"no containers", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers = nil }, "spec.template.spec.containers", "at least one container"},
		{"container name", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Name = "Shipper" }, c0 + ".name", "not a valid name"},
		{"container name required", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Name = "" }, c0 + ".name", "required"},
		{"container names unique", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[1].Name = "shipper" }, "spec.template.spec.containers[1].name", `duplicate container name "shipper"`},
		{"image required", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "" }, c0 + ".image", "required"},
		{"image whitespace", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = " nginx" }, c0 + ".image", "whitespace"},
		{"imagePullPolicy", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].ImagePullPolicy = "Sometimes" }, c0 + ".imagePullPolicy", "not one of Always, IfNotPresent, Never"},
		{"restartPolicy", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.RestartPolicy = "Sometimes" }, "spec.template.spec.restartPolicy", "not one of Always, OnFailure, Never"},
		{"grace period negative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.TerminationGracePeriodSeconds = int64p(-1) }, "spec.template.spec.terminationGracePeriodSeconds", "greater than or equal to 0"},
		{"env name", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Env[1].Name = "1BAD" }, c0 + ".env[1].name", "not a valid environment variable name"},
		{"env name required", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Env[0].Name = "" }, c0 + ".env[0].name", "required"},
		{"port zero", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[1].ContainerPort = 0 }, c0 + ".ports[1].containerPort", "between 1 and 65535"},
		{"port too big", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[1].ContainerPort = 65536 }, c0 + ".ports[1].containerPort", "between 1 and 65535"},
		{"host port range", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[0].HostPort = -1 }, c0 + ".ports[0].hostPort", "between 1 and 65535"},
		{"protocol", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[0].Protocol = "tcp" }, c0 + ".ports[0].protocol", "not one of TCP, UDP, SCTP"},
		{"port name chars", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[0].Name = "Metrics" }, c0 + ".ports[0].name", "lower-case"},
		{"port name length", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[0].Name = "a-very-long-port-name" }, c0 + ".ports[0].name", "longer than 15"},
		{"port name letter", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[0].Name = "9100" }, c0 + ".ports[0].name", "at least one letter"},
		{"port name dashes", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[0].Name = "a--b" }, c0 + ".ports[0].name", `"--"`},
		{"port name edge dash", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[0].Name = "metrics-" }, c0 + ".ports[0].name", "begin or end"},
		{"port names unique", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Ports[1].Name = "metrics" }, c0 + ".ports[1].name", `duplicate port name "metrics"`},
		{"host ports unique in the pod", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[1].Ports = []api.ContainerPort{{ContainerPort: 9100, HostPort: 9100}}
		}, "spec.template.spec.containers[1].ports[0].hostPort", "duplicate host port 9100/TCP"},
		{"resource name", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = "1" }, c0 + ".resources.limits[nvidia.com/gpu]", "only cpu, memory and devices.flotilla.io/CLASS"},
		{"resource ephemeral-storage", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].Resources.Requests["ephemeral-storage"] = "1Gi"
		}, c0 + ".resources.requests.ephemeral-storage", "only cpu, memory and devices.flotilla.io/CLASS"},
		{"bad quantity", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Resources.Limits["cpu"] = "lots" }, c0 + ".resources.limits.cpu", "must start with a number"},
		{"bad suffix", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Resources.Limits["memory"] = "128MB" }, c0 + ".resources.limits.memory", "unknown suffix"},
		{"negative quantity", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Resources.Requests["memory"] = "-1Mi" }, c0 + ".resources.requests.memory", "must not be negative"},
		{"cpu request over limit", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Resources.Requests["cpu"] = "1" }, c0 + ".resources.requests.cpu", `less than or equal to the cpu limit "500m"`},
		{"memory request over limit", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Resources.Requests["memory"] = "129Mi" }, c0 + ".resources.requests.memory", `less than or equal to the memory limit "128Mi"`},
		{"volume name", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Volumes[0].Name = "Var_Log" }, "spec.template.spec.volumes[0].name", "not a valid name"},
		{"volume names unique", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Volumes[1].Name = "varlog" }, "spec.template.spec.volumes[1].name", `duplicate volume name "varlog"`},
		{"volume without source", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Volumes[0].HostPath = nil }, "spec.template.spec.volumes[0]", "exactly one volume source"},
		{"volume with two sources", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Volumes[0].EmptyDir = &api.EmptyDirVolumeSource{} }, "spec.template.spec.volumes[0]", "more than one volume source"},
		{"hostPath path required", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Volumes[0].HostPath.Path = "" }, "spec.template.spec.volumes[0].hostPath.path", "required"},
		{"hostPath relative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Volumes[0].HostPath.Path = "var/log" }, "spec.template.spec.volumes[0].hostPath.path", "absolute"},
		{"hostPath type", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Volumes[0].HostPath.Type = "Dir" }, "spec.template.spec.volumes[0].hostPath.type", "not one of"},
		{"emptyDir medium", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Volumes[1].EmptyDir.Medium = "HugePages" }, "spec.template.spec.volumes[1].emptyDir.medium", `"HugePages" is not one of`},
		{"emptyDir sizeLimit", func(ds *api.DaemonSet) {
			bad := api.Quantity("1 Gi")
			ds.Spec.Template.Spec.Volumes[1].EmptyDir.SizeLimit = &bad
		}, "spec.template.spec.volumes[1].emptyDir.sizeLimit", "unknown suffix"},
		{"mount of undeclared volume", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].VolumeMounts[0].Name = "varlib" }, c0 + ".volumeMounts[0].name", `volume "varlib" is not declared`},
		{"mount name required", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].VolumeMounts[0].Name = "" }, c0 + ".volumeMounts[0].name", "required"},
		{"mountPath required", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].VolumeMounts[0].MountPath = "" }, c0 + ".volumeMounts[0].mountPath", "required"},
		{"mountPath relative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].VolumeMounts[0].MountPath = "logs" }, c0 + ".volumeMounts[0].mountPath", "absolute"},
		{"mountPath duplicate", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].VolumeMounts[1].MountPath = "/var/log" }, c0 + ".volumeMounts[1].mountPath", `duplicate mount path "/var/log"`},
		{"nodeSelector key", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.NodeSelector["kubernetes.io/"] = "x" }, "spec.template.spec.nodeSelector", "label key"},
		{"nodeSelector value", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.NodeSelector["kubernetes.io/arch"] = "arm64!" }, "spec.template.spec.nodeSelector[kubernetes.io/arch]", "label value"},

		// Probes.
		{"probe without handler", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet = nil }, c0 + ".livenessProbe", "must set exactly one handler: exec, httpGet or tcpSocket"},
		{"probe with two handlers", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].ReadinessProbe.Exec = &api.ExecAction{Command: []string{"true"}}
		}, c0 + ".readinessProbe", "may not set more than one handler: exec and tcpSocket are set"},
		{"probe with three handlers", func(ds *api.DaemonSet) {
			p := ds.Spec.Template.Spec.Containers[0].StartupProbe
			p.HTTPGet = &api.HTTPGetAction{Port: api.FromInt(80)}
			p.TCPSocket = &api.TCPSocketAction{Port: api.FromInt(80)}
		}, c0 + ".startupProbe", "exec and httpGet and tcpSocket are set"},
		{"exec command required", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].StartupProbe.Exec.Command = nil }, c0 + ".startupProbe.exec.command", "required"},
		{"httpGet port zero", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[1].ReadinessProbe.HTTPGet.Port = api.FromInt(0)
		}, "spec.template.spec.containers[1].readinessProbe.httpGet.port", "must be between 1 and 65535"},
		{"httpGet port too big", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[1].ReadinessProbe.HTTPGet.Port = api.FromInt(65536)
		}, "spec.template.spec.containers[1].readinessProbe.httpGet.port", "must be between 1 and 65535"},
		{"httpGet port negative", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[1].ReadinessProbe.HTTPGet.Port = api.FromInt(-80)
		}, "spec.template.spec.containers[1].readinessProbe.httpGet.port", "must be between 1 and 65535"},
		{"httpGet port empty name", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = api.FromString("")
		}, c0 + ".livenessProbe.httpGet.port", "required"},
		{"httpGet port not a port name", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = api.FromString("9100")
		}, c0 + ".livenessProbe.httpGet.port", "at least one letter"},
		{"httpGet port name too long", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = api.FromString("metrics-endpoint")
		}, c0 + ".livenessProbe.httpGet.port", "longer than 15"},
		{"httpGet port names no port", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = api.FromString("http")
		}, c0 + ".livenessProbe.httpGet.port", `"http" is not the name of one of the container's ports`},
		{"httpGet port names another container's port", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[1].ReadinessProbe.HTTPGet.Port = api.FromString("metrics")
		}, "spec.template.spec.containers[1].readinessProbe.httpGet.port", `"metrics" is not the name of one of the container's ports`},
		{"httpGet scheme", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Scheme = "https" }, c0 + ".livenessProbe.httpGet.scheme", `"https" is not one of HTTP, HTTPS`},
		{"httpGet path relative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Path = "healthz" }, c0 + ".livenessProbe.httpGet.path", `must start with "/"`},
		{"header name required", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.HTTPHeaders[0].Name = ""
		}, c0 + ".livenessProbe.httpGet.httpHeaders[0].name", "required"},
		{"header name not a token", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.HTTPHeaders[1].Name = "X Header:"
		}, c0 + ".livenessProbe.httpGet.httpHeaders[1].name", "not a valid HTTP header name"},
		{"header value control character", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.HTTPHeaders[0].Value = "a\r\nInjected: yes"
		}, c0 + ".livenessProbe.httpGet.httpHeaders[0].value", "control characters"},
		{"tcpSocket port", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].ReadinessProbe.TCPSocket.Port = api.FromInt(0)
		}, c0 + ".readinessProbe.tcpSocket.port", "must be between 1 and 65535"},
		{"tcpSocket port name", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].ReadinessProbe.TCPSocket.Port = api.FromString("syslog")
		}, c0 + ".readinessProbe.tcpSocket.port", `"syslog" is not the name`},
		{"initialDelaySeconds negative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].LivenessProbe.InitialDelaySeconds = -1 }, c0 + ".livenessProbe.initialDelaySeconds", "greater than or equal to 0"},
		{"timeoutSeconds negative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].LivenessProbe.TimeoutSeconds = -1 }, c0 + ".livenessProbe.timeoutSeconds", "greater than or equal to 1"},
		{"periodSeconds negative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].ReadinessProbe.PeriodSeconds = -5 }, c0 + ".readinessProbe.periodSeconds", "greater than or equal to 1"},
		{"successThreshold negative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].ReadinessProbe.SuccessThreshold = -1 }, c0 + ".readinessProbe.successThreshold", "greater than or equal to 1"},
		{"failureThreshold negative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].StartupProbe.FailureThreshold = -1 }, c0 + ".startupProbe.failureThreshold", "greater than or equal to 1"},
		{"liveness successThreshold", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].LivenessProbe.SuccessThreshold = 2 }, c0 + ".livenessProbe.successThreshold", "must be 1 for a liveness probe"},
		{"startup successThreshold", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].StartupProbe.SuccessThreshold = 3 }, c0 + ".startupProbe.successThreshold", "must be 1 for a startup probe"},

		// Tolerations.
		{"toleration operator", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[0].Operator = "Matches" }, "spec.template.spec.tolerations[0].operator", `"Matches" is not one of Equal, Exists`},
		{"toleration Exists with value", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[0].Value = "x" }, "spec.template.spec.tolerations[0].value", "must be empty when operator is Exists"},
		{"toleration Equal value", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[1].Value = "not valid" }, "spec.template.spec.tolerations[1].value", "label value"},
		{"toleration empty key needs Exists", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[1].Key = "" }, "spec.template.spec.tolerations[1].operator", "must be Exists when key is empty"},
		{"toleration empty key with Equal", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[3].Operator = api.TolerationOpEqual }, "spec.template.spec.tolerations[3].operator", "must be Exists when key is empty"},
		{"toleration key", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[1].Key = "bad key" }, "spec.template.spec.tolerations[1].key", `label key "bad key"`},
		{"toleration effect", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[1].Effect = "NoExec" }, "spec.template.spec.tolerations[1].effect", `"NoExec" is not one of NoSchedule, PreferNoSchedule, NoExecute`},
		{"tolerationSeconds without NoExecute", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[1].TolerationSeconds = int64p(60) }, "spec.template.spec.tolerations[1].tolerationSeconds", "may only be set when effect is NoExecute"},
		{"tolerationSeconds without effect", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[3].TolerationSeconds = int64p(60) }, "spec.template.spec.tolerations[3].tolerationSeconds", "may only be set when effect is NoExecute"},
		{"tolerationSeconds negative", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Tolerations[0].TolerationSeconds = int64p(-1) }, "spec.template.spec.tolerations[0].tolerationSeconds", "greater than or equal to 0"},

		// Update strategy.
		{"updateStrategy type", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.Type = "Recreate" }, "spec.updateStrategy.type", `"Recreate" is not one of RollingUpdate, OnDelete`},
		{"rollingUpdate with OnDelete", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.Type = api.OnDeleteStrategy }, "spec.updateStrategy.rollingUpdate", "may not be set when type is OnDelete"},
		{"maxUnavailable negative", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = intstr(-1) }, "spec.updateStrategy.rollingUpdate.maxUnavailable", "greater than or equal to 0"},
		{"maxUnavailable over 100%", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = pct("101%") }, "spec.updateStrategy.rollingUpdate.maxUnavailable", `"101%" must be a percentage from 0% to 100%`},
		{"maxUnavailable huge percentage", func(ds *api.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = pct("99999999999999999999%")
		}, "spec.updateStrategy.rollingUpdate.maxUnavailable", "from 0% to 100%"},
		{"maxUnavailable not a percentage", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = pct("1") }, "spec.updateStrategy.rollingUpdate.maxUnavailable", `"1" must be an integer or a percentage`},
		{"maxUnavailable signed percentage", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = pct("+5%") }, "spec.updateStrategy.rollingUpdate.maxUnavailable", "must be an integer or a percentage"},
		{"maxUnavailable fraction percentage", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = pct("2.5%") }, "spec.updateStrategy.rollingUpdate.maxUnavailable", "must be an integer or a percentage"},
		{"maxSurge negative", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = intstr(-2) }, "spec.updateStrategy.rollingUpdate.maxSurge", "greater than or equal to 0"},
		{"maxSurge over 100%", func(ds *api.DaemonSet) {
			ru := ds.Spec.UpdateStrategy.RollingUpdate
			ru.MaxUnavailable, ru.MaxSurge = intstr(0), pct("200%")
		}, "spec.updateStrategy.rollingUpdate.maxSurge", "from 0% to 100%"},
		{"both zero", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = pct("0%") }, "spec.updateStrategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0"},
		{"both zero by default", func(ds *api.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate = &api.RollingUpdateDaemonSet{MaxUnavailable: intstr(0)}
		}, "spec.updateStrategy.rollingUpdate.maxUnavailable", "may not be 0 when maxSurge is 0"},
		{"both non-zero", func(ds *api.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = intstr(1) }, "spec.updateStrategy.rollingUpdate.maxSurge", "may not be set when maxUnavailable is non-zero"},
		{"surge with default maxUnavailable", func(ds *api.DaemonSet) {
			ds.Spec.UpdateStrategy = api.DaemonSetUpdateStrategy{RollingUpdate: &api.RollingUpdateDaemonSet{MaxSurge: pct("10%")}}
		}, "spec.updateStrategy.rollingUpdate.maxSurge", "maxUnavailable defaults to 1; set it to 0 to surge"},
		{"minReadySeconds negative", func(ds *api.DaemonSet) { ds.Spec.MinReadySeconds = -1 }, "spec.minReadySeconds", "greater than or equal to 0"},
		{"revisionHistoryLimit negative", func(ds *api.DaemonSet) { ds.Spec.RevisionHistoryLimit = int32p(-1) }, "spec.revisionHistoryLimit", "greater than or equal to 0"},

		// Fleet rollout.
		{"rollout onFailure", func(ds *api.DaemonSet) { ds.Spec.Rollout.OnFailure = "Retry" }, "spec.rollout.onFailure", `"Retry" is not one of Pause, Rollback`},
		{"rollout offlineNodes", func(ds *api.DaemonSet) { ds.Spec.Rollout.OfflineNodes = "Ignore" }, "spec.rollout.offlineNodes", `"Ignore" is not one of Skip, Wait`},
		{"maxFailures negative", func(ds *api.DaemonSet) { ds.Spec.Rollout.MaxFailures = intstr(-1) }, "spec.rollout.maxFailures", "greater than or equal to 0"},
		{"maxFailures over 100%", func(ds *api.DaemonSet) { ds.Spec.Rollout.MaxFailures = pct("150%") }, "spec.rollout.maxFailures", "from 0% to 100%"},
		{"maxFailures not a percentage", func(ds *api.DaemonSet) { ds.Spec.Rollout.MaxFailures = pct("few") }, "spec.rollout.maxFailures", "must be an integer or a percentage"},
		{"rollout progressDeadlineSeconds zero", func(ds *api.DaemonSet) { ds.Spec.Rollout.ProgressDeadlineSeconds = int32p(0) }, "spec.rollout.progressDeadlineSeconds", "must be greater than 0"},
		{"rollout progressDeadlineSeconds not over minReadySeconds", func(ds *api.DaemonSet) { ds.Spec.Rollout.ProgressDeadlineSeconds = int32p(10) }, "spec.rollout.progressDeadlineSeconds", "must be greater than minReadySeconds (10)"},
		{"rollout default progressDeadlineSeconds not over minReadySeconds", func(ds *api.DaemonSet) {
			ds.Spec.Rollout.ProgressDeadlineSeconds = nil
			ds.Spec.MinReadySeconds = 600
		}, "spec.rollout.progressDeadlineSeconds", "must be greater than minReadySeconds (600)"},
		{"canary with neither", func(ds *api.DaemonSet) { ds.Spec.Rollout.Canary.NodeSelector = nil }, "spec.rollout.canary", "must set exactly one of nodeSelector (non-empty) or count"},
		{"canary with empty nodeSelector", func(ds *api.DaemonSet) { ds.Spec.Rollout.Canary.NodeSelector = map[string]string{} }, "spec.rollout.canary", "must set exactly one of nodeSelector"},
		{"canary with both", func(ds *api.DaemonSet) { ds.Spec.Rollout.Canary.Count = intstr(1) }, "spec.rollout.canary", "may not set both nodeSelector and count"},
		{"canary nodeSelector key", func(ds *api.DaemonSet) { ds.Spec.Rollout.Canary.NodeSelector["-ring"] = "x" }, "spec.rollout.canary.nodeSelector", `label key "-ring"`},
		{"canary nodeSelector value", func(ds *api.DaemonSet) { ds.Spec.Rollout.Canary.NodeSelector["ring"] = "can ary" }, "spec.rollout.canary.nodeSelector.ring", "label value"},
		{"canary count zero", func(ds *api.DaemonSet) {
			ds.Spec.Rollout.Canary = &api.CanarySpec{Count: intstr(0)}
		}, "spec.rollout.canary.count", "greater than or equal to 1"},
		{"canary count 0%", func(ds *api.DaemonSet) {
			ds.Spec.Rollout.Canary = &api.CanarySpec{Count: pct("0%")}
		}, "spec.rollout.canary.count", `"0%" must be a percentage from 1% to 100%`},
		{"canary count over 100%", func(ds *api.DaemonSet) {
			ds.Spec.Rollout.Canary = &api.CanarySpec{Count: pct("101%")}
		}, "spec.rollout.canary.count", "from 1% to 100%"},
		{"canary count not a percentage", func(ds *api.DaemonSet) {
			ds.Spec.Rollout.Canary = &api.CanarySpec{Count: pct("two")}
		}, "spec.rollout.canary.count", "must be an integer or a percentage"},
		{"canary pauseSeconds", func(ds *api.DaemonSet) { ds.Spec.Rollout.Canary.PauseSeconds = int32p(-1) }, "spec.rollout.canary.pauseSeconds", "greater than or equal to 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := validDaemonSet()
			tt.mutate(ds)
			checkCase(t, ds, tt.field, tt.msg)
		})
	}
}

func TestValidateDeployment(t *testing.T) {
	if err := Validate(validDeployment()); err != nil {
		t.Fatalf("the valid Deployment fails: %v", err)
	}
	d := validDeployment()
	Default(d, "")
	if err := Validate(d); err != nil {
		t.Fatalf("the valid Deployment fails after Default: %v", err)
	}
	const ru = "spec.strategy.rollingUpdate"
	tests := []struct {
		name   string
		mutate func(d *api.Deployment)
		field  string
		msg    string
	}{
		{"name", func(d *api.Deployment) { d.Name = "Web" }, "metadata.name", "not a valid name"},
		{"wrong apiVersion", func(d *api.Deployment) { d.APIVersion = "extensions/v1beta1" }, "apiVersion", `must be "apps/v1"`},
		{"selector required", func(d *api.Deployment) { d.Spec.Selector = nil }, "spec.selector", "required"},
		{"selector empty", func(d *api.Deployment) { d.Spec.Selector = &api.LabelSelector{} }, "spec.selector", "empty selector is invalid for a Deployment"},
		{"selector does not match labels", func(d *api.Deployment) { d.Spec.Template.Labels["track"] = "canary" }, "spec.template.metadata.labels", "selector does not match template labels"},
		{"selector expression", func(d *api.Deployment) { d.Spec.Selector.MatchExpressions[0].Operator = "Has" }, "spec.selector.matchExpressions[0].operator", "not one of"},
		{"restartPolicy", func(d *api.Deployment) { d.Spec.Template.Spec.RestartPolicy = api.RestartNever }, "spec.template.spec.restartPolicy", "must be Always for a Deployment"},
		{"nodeName", func(d *api.Deployment) { d.Spec.Template.Spec.NodeName = "board-1" }, "spec.template.spec.nodeName", "must not be set for a Deployment"},
		{"pod spec", func(d *api.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" }, "spec.template.spec.containers[0].image", "required"},
		{"probe in template", func(d *api.Deployment) {
			d.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = api.FromString("https")
		}, "spec.template.spec.containers[0].readinessProbe.httpGet.port", `"https" is not the name`},
		{"toleration in template", func(d *api.Deployment) { d.Spec.Template.Spec.Tolerations[0].Effect = "" }, "spec.template.spec.tolerations[0].tolerationSeconds", "may only be set when effect is NoExecute"},
		{"replicas negative", func(d *api.Deployment) { d.Spec.Replicas = int32p(-1) }, "spec.replicas", "greater than or equal to 0"},
		{"strategy type", func(d *api.Deployment) { d.Spec.Strategy.Type = api.OnDeleteStrategy }, "spec.strategy.type", `"OnDelete" is not one of RollingUpdate, Recreate`},
		{"rollingUpdate with Recreate", func(d *api.Deployment) { d.Spec.Strategy.Type = api.RecreateStrategy }, ru, "may not be set when type is Recreate"},
		{"maxUnavailable negative", func(d *api.Deployment) { d.Spec.Strategy.RollingUpdate.MaxUnavailable = intstr(-1) }, ru + ".maxUnavailable", "greater than or equal to 0"},
		{"maxUnavailable over 100%", func(d *api.Deployment) { d.Spec.Strategy.RollingUpdate.MaxUnavailable = pct("110%") }, ru + ".maxUnavailable", "from 0% to 100%"},
		{"maxUnavailable not a percentage", func(d *api.Deployment) { d.Spec.Strategy.RollingUpdate.MaxUnavailable = pct("25") }, ru + ".maxUnavailable", "must be an integer or a percentage"},
		{"maxSurge negative", func(d *api.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = intstr(-1) }, ru + ".maxSurge", "greater than or equal to 0"},
		{"maxSurge not a percentage", func(d *api.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = pct("%") }, ru + ".maxSurge", "must be an integer or a percentage"},
		{"both zero", func(d *api.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = pct("0%") }, ru + ".maxUnavailable", "may not be 0 when maxSurge is 0"},
		{"both zero with a default", func(d *api.Deployment) {
			d.Spec.Strategy.RollingUpdate = &api.RollingUpdateDeployment{MaxUnavailable: intstr(0), MaxSurge: intstr(0)}
		}, ru + ".maxUnavailable", "may not be 0 when maxSurge is 0"},
		{"minReadySeconds negative", func(d *api.Deployment) { d.Spec.MinReadySeconds = -1 }, "spec.minReadySeconds", "greater than or equal to 0"},
		{"revisionHistoryLimit negative", func(d *api.Deployment) { d.Spec.RevisionHistoryLimit = int32p(-1) }, "spec.revisionHistoryLimit", "greater than or equal to 0"},
		{"progressDeadlineSeconds zero", func(d *api.Deployment) { d.Spec.ProgressDeadlineSeconds = int32p(0) }, "spec.progressDeadlineSeconds", "must be greater than 0"},
		{"progressDeadlineSeconds not over minReadySeconds", func(d *api.Deployment) { d.Spec.ProgressDeadlineSeconds = int32p(5) }, "spec.progressDeadlineSeconds", "must be greater than minReadySeconds (5)"},
		{"default progressDeadlineSeconds not over minReadySeconds", func(d *api.Deployment) {
			d.Spec.ProgressDeadlineSeconds = nil
			d.Spec.MinReadySeconds = 900
		}, "spec.progressDeadlineSeconds", "must be greater than minReadySeconds (900)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDeployment()
			tt.mutate(d)
			checkCase(t, d, tt.field, tt.msg)
		})
	}

	// Kubernetes lets a Deployment surge past 100%, and a rolling update
	// with only one bound set takes 25% for the other.
	for _, ru := range []*api.RollingUpdateDeployment{
		{MaxSurge: pct("300%"), MaxUnavailable: intstr(0)},
		{MaxUnavailable: intstr(0)},
		{MaxSurge: intstr(0)},
		{MaxSurge: intstr(0), MaxUnavailable: pct("100%")},
	} {
		d := validDeployment()
		d.Spec.Strategy.RollingUpdate = ru
		Default(d, "")
		if err := Validate(d); err != nil {
			t.Errorf("%+v: %v", ru, err)
		}
	}
}

func TestValidateWithoutDefaults(t *testing.T) {
	// The hub validates stored objects after a patch without defaulting
	// them, so Validate must accept what Default would fill in and still
	// catch what Default cannot.
	ds := validDaemonSet()
	ds.Namespace = ""
	list := errorsOf(t, Validate(ds))
	if len(list) != 1 || list[0].Field != "metadata.namespace" || list[0].Msg != "required" {
		t.Errorf("got %v", list)
	}

	ds = validDaemonSet()
	ds.Spec.UpdateStrategy = api.DaemonSetUpdateStrategy{RollingUpdate: &api.RollingUpdateDaemonSet{}}
	ds.Spec.RevisionHistoryLimit = nil
	ds.Spec.Rollout = &api.RolloutSpec{Canary: &api.CanarySpec{Count: pct("5%")}}
	p := ds.Spec.Template.Spec.Containers[0].LivenessProbe
	p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold = 0, 0, 0, 0
	p.HTTPGet.Scheme, p.HTTPGet.Path = "", ""
	ds.Spec.Template.Spec.Tolerations[1].Operator = ""
	if err := Validate(ds); err != nil {
		t.Errorf("undefaulted DaemonSet: %v", err)
	}
	d := validDeployment()
	d.Spec = api.DeploymentSpec{Selector: d.Spec.Selector, Template: d.Spec.Template, Strategy: api.DeploymentStrategy{RollingUpdate: &api.RollingUpdateDeployment{}}}
	if err := Validate(d); err != nil {
		t.Errorf("undefaulted Deployment: %v", err)
	}
}

func TestValidateCollectsAllErrors(t *testing.T) {
	ds := validDaemonSet()
	ds.Name = ""
	ds.Spec.Template.Spec.Containers[0].Image = ""
	ds.Spec.Template.Spec.Containers[1].Image = ""
	ds.Spec.Template.Spec.Volumes[0].HostPath.Path = "relative"
	ds.Spec.Template.Spec.Containers[0].LivenessProbe.SuccessThreshold = 2
	ds.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = api.FromString("web")
	ds.Spec.Template.Spec.Tolerations[0].Operator = "Exist"
	ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = nil
	ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = intstr(1)
	ds.Spec.Rollout.OnFailure = "Stop"
	Default(ds, "")
	err := Validate(ds)
	want := "metadata.name: required\n" +
		"spec.template.spec.volumes[0].hostPath.path: \"relative\" must be an absolute path\n" +
		"spec.template.spec.containers[0].image: required\n" +
		"spec.template.spec.containers[0].livenessProbe.httpGet.port: \"web\" is not the name of one of the container's ports\n" +
		"spec.template.spec.containers[0].livenessProbe.successThreshold: must be 1 for a liveness probe\n" +
		"spec.template.spec.containers[1].image: required\n" +
		"spec.template.spec.tolerations[0].operator: \"Exist\" is not one of Equal, Exists\n" +
		"spec.updateStrategy.rollingUpdate.maxSurge: may not be set when maxUnavailable is non-zero (maxUnavailable defaults to 1; set it to 0 to surge)\n" +
		"spec.rollout.onFailure: \"Stop\" is not one of Pause, Rollback"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestValidateDefaultsAreOptional(t *testing.T) {
	// A DaemonSet or Deployment with only what a user must write validates
	// once its namespace is known; restart policy, pull policy, grace
	// period, protocols, probe timings, update strategies and history
	// limits may be left empty. Defaulting keeps it valid.
	template := func() api.PodTemplateSpec {
		return api.PodTemplateSpec{
			ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "x"}},
			Spec: api.PodSpec{Containers: []api.Container{{
				Name: "x", Image: "x", Ports: []api.ContainerPort{{ContainerPort: 80}},
				ReadinessProbe: &api.Probe{ProbeHandler: api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Port: api.FromInt(80)}}},
			}}},
		}
	}
	ds := &api.DaemonSet{
		ObjectMeta: api.ObjectMeta{Name: "x", Namespace: "default"},
		Spec:       api.DaemonSetSpec{Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: template()},
	}
	d := &api.Deployment{
		ObjectMeta: api.ObjectMeta{Name: "x", Namespace: "default"},
		Spec:       api.DeploymentSpec{Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: template()},
	}
	for _, obj := range []api.Object{ds, d} {
		if err := Validate(obj); err != nil {
			t.Fatalf("%T: %v", obj, err)
		}
		Default(obj, "")
		if err := Validate(obj); err != nil {
			t.Fatalf("%T after Default: %v", obj, err)
		}
	}
}

func TestValidateOtherKinds(t *testing.T) {
	tests := []struct {
		name  string
		obj   api.Object
		field string
		msg   string
	}{
		{"namespace name is a label", &api.Namespace{ObjectMeta: api.ObjectMeta{Name: "a.b"}}, "metadata.name", "not a valid name"},
		{"namespace has no namespace", &api.Namespace{ObjectMeta: api.ObjectMeta{Name: "a", Namespace: "default"}}, "metadata.namespace", "must be empty"},
		{"node has no namespace", &api.Node{ObjectMeta: api.ObjectMeta{Name: "board-1", Namespace: "default"}}, "metadata.namespace", "must be empty"},
		{"node name", &api.Node{ObjectMeta: api.ObjectMeta{Name: "Board 1"}}, "metadata.name", "not a valid name"},
		{"node labels", &api.Node{ObjectMeta: api.ObjectMeta{Name: "b", Labels: map[string]string{"site": "north pole"}}}, "metadata.labels.site", "label value"},
		{"pod spec", &api.Pod{ObjectMeta: api.ObjectMeta{Name: "p", Namespace: "default"}}, "spec.containers", "at least one container"},
		{"pod nodeName", &api.Pod{ObjectMeta: api.ObjectMeta{Name: "p", Namespace: "default"},
			Spec: api.PodSpec{NodeName: "Bad Node", Containers: []api.Container{{Name: "c", Image: "i"}}}}, "spec.nodeName", "not a valid name"},
		{"pod probe", &api.Pod{ObjectMeta: api.ObjectMeta{Name: "p"},
			Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "i", StartupProbe: &api.Probe{}}}}}, "spec.containers[0].startupProbe", "exactly one handler"},
		{"pod toleration", &api.Pod{ObjectMeta: api.ObjectMeta{Name: "p"},
			Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "i"}}, Tolerations: []api.Toleration{{Key: "k", Operator: "In"}}}}, "spec.tolerations[0].operator", "not one of Equal, Exists"},
		{"controllerrevision name", &api.ControllerRevision{ObjectMeta: api.ObjectMeta{Name: "Agent_1"}}, "metadata.name", "not a valid name"},
		{"controllerrevision labels", &api.ControllerRevision{ObjectMeta: api.ObjectMeta{Name: "agent-1", Labels: map[string]string{"x": "a b"}}}, "metadata.labels.x", "label value"},
		{"controllerrevision kind", &api.ControllerRevision{TypeMeta: api.TypeMeta{Kind: "Revision"}, ObjectMeta: api.ObjectMeta{Name: "agent-1"}}, "kind", `must be "ControllerRevision"`},
		{"event name", &api.Event{ObjectMeta: api.ObjectMeta{Name: ""}}, "metadata.name", "required"},
		{"event namespace", &api.Event{ObjectMeta: api.ObjectMeta{Name: "e", Namespace: "Team A"}}, "metadata.namespace", "not a valid name"},
		{"event apiVersion", &api.Event{TypeMeta: api.TypeMeta{APIVersion: "events.k8s.io/v1"}, ObjectMeta: api.ObjectMeta{Name: "e"}}, "apiVersion", `must be "v1" for kind Event`},
		{"nil", nil, "", "no object"},
		{"typed nil", (*api.DaemonSet)(nil), "", "no object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCase(t, tt.obj, tt.field, tt.msg)
		})
	}

	valid := []api.Object{
		&api.Namespace{ObjectMeta: api.ObjectMeta{Name: "team-a"}},
		&api.Node{ObjectMeta: api.ObjectMeta{Name: "board-1.site-a", Labels: map[string]string{api.LabelArch: "arm64"}}},
		&api.Pod{ObjectMeta: api.ObjectMeta{Name: "p", Namespace: "default"},
			Spec: api.PodSpec{RestartPolicy: api.RestartNever, NodeName: "board-1", Containers: []api.Container{{Name: "c", Image: "i"}}}},
		// Only metadata is checked: the hub writes the rest.
		&api.ControllerRevision{ObjectMeta: api.ObjectMeta{Name: "agent-5d8f9c"}, Revision: 1},
		&api.Event{ObjectMeta: api.ObjectMeta{Name: "agent-x.17c3a"}, Type: api.EventWarning,
			InvolvedObject: api.ObjectReference{Kind: api.KindPod, Name: "agent-x"}},
	}
	for _, obj := range valid {
		Default(obj, "")
		if err := Validate(obj); err != nil {
			t.Errorf("%T: %v", obj, err)
		}
	}
}

func TestDefault(t *testing.T) {
	ds := &api.DaemonSet{
		Spec: api.DaemonSetSpec{Template: api.PodTemplateSpec{
			ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "x"}},
			Spec: api.PodSpec{Containers: []api.Container{
				{Name: "a", Image: "nginx", Ports: []api.ContainerPort{{ContainerPort: 80}, {ContainerPort: 53, Protocol: "UDP"}}},
				{Name: "b", Image: "nginx:latest"},
				{Name: "c", Image: "nginx:1.25"},
				{Name: "d", Image: "registry:5000/nginx"},
				{Name: "e", Image: "registry:5000/nginx:1.25"},
				{Name: "f", Image: "nginx@sha256:0123"},
				{Name: "g", Image: "nginx:latest@sha256:0123"},
				{Name: "h", Image: "nginx", ImagePullPolicy: api.PullNever},
			}},
		}},
	}
	Default(ds, "")
	if ds.Namespace != "default" || ds.Kind != "DaemonSet" || ds.APIVersion != "apps/v1" {
		t.Errorf("meta: %+v %+v", ds.TypeMeta, ds.ObjectMeta)
	}
	spec := ds.Spec.Template.Spec
	if spec.RestartPolicy != api.RestartAlways || spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("pod spec: %+v", spec)
	}
	want := []api.PullPolicy{"Always", "Always", "IfNotPresent", "Always", "IfNotPresent", "IfNotPresent", "Always", "Never"}
	for i, c := range spec.Containers {
		if c.ImagePullPolicy != want[i] {
			t.Errorf("%s (%s): pull policy %s, want %s", c.Name, c.Image, c.ImagePullPolicy, want[i])
		}
	}
	if p := spec.Containers[0].Ports; p[0].Protocol != "TCP" || p[1].Protocol != "UDP" {
		t.Errorf("ports: %+v", p)
	}
	if len(ds.Spec.Template.Labels) != 1 || ds.Spec.Selector != nil {
		t.Errorf("template labels or selector touched: %+v", ds.Spec)
	}

	// Set values stay; the given namespace is used; cluster-scoped kinds get
	// none.
	pod := &api.Pod{Spec: api.PodSpec{RestartPolicy: api.RestartNever, TerminationGracePeriodSeconds: int64p(0)}}
	Default(pod, "team-a")
	if pod.Namespace != "team-a" || pod.Spec.RestartPolicy != api.RestartNever || *pod.Spec.TerminationGracePeriodSeconds != 0 {
		t.Errorf("pod: %+v", pod)
	}
	pod = &api.Pod{ObjectMeta: api.ObjectMeta{Namespace: "mine"}}
	Default(pod, "team-a")
	if pod.Namespace != "mine" {
		t.Errorf("namespace overwritten: %q", pod.Namespace)
	}
	node := &api.Node{}
	Default(node, "team-a")
	if node.Namespace != "" || node.Kind != "Node" {
		t.Errorf("node: %+v", node)
	}
	Default(nil, "x")
	Default((*api.Pod)(nil), "x")
}

func TestDefaultProbesAndTolerations(t *testing.T) {
	pod := &api.Pod{ObjectMeta: api.ObjectMeta{Name: "p"}, Spec: api.PodSpec{
		Containers: []api.Container{{
			Name: "c", Image: "i:1",
			LivenessProbe:  &api.Probe{ProbeHandler: api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Port: api.FromInt(80)}}},
			ReadinessProbe: &api.Probe{ProbeHandler: api.ProbeHandler{TCPSocket: &api.TCPSocketAction{Port: api.FromInt(80)}}, PeriodSeconds: 3, FailureThreshold: 1},
			StartupProbe: &api.Probe{
				ProbeHandler:   api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Port: api.FromInt(80), Path: "/up", Scheme: "HTTPS"}},
				TimeoutSeconds: 5, SuccessThreshold: 1, InitialDelaySeconds: 7,
			},
		}},
		Tolerations: []api.Toleration{{Key: "a", Value: "b"}, {Operator: api.TolerationOpExists}},
	}}
	Default(pod, "")
	c := pod.Spec.Containers[0]
	want := api.Probe{
		ProbeHandler:   api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Port: api.FromInt(80), Path: "/", Scheme: "HTTP"}},
		TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
	}
	if !reflect.DeepEqual(*c.LivenessProbe, want) {
		t.Errorf("liveness: %+v %+v", c.LivenessProbe, c.LivenessProbe.HTTPGet)
	}
	want = api.Probe{
		ProbeHandler:   api.ProbeHandler{TCPSocket: &api.TCPSocketAction{Port: api.FromInt(80)}},
		TimeoutSeconds: 1, PeriodSeconds: 3, SuccessThreshold: 1, FailureThreshold: 1,
	}
	if !reflect.DeepEqual(*c.ReadinessProbe, want) {
		t.Errorf("readiness: %+v", c.ReadinessProbe)
	}
	want = api.Probe{
		ProbeHandler:        api.ProbeHandler{HTTPGet: &api.HTTPGetAction{Port: api.FromInt(80), Path: "/up", Scheme: "HTTPS"}},
		InitialDelaySeconds: 7, TimeoutSeconds: 5, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
	}
	if !reflect.DeepEqual(*c.StartupProbe, want) {
		t.Errorf("startup: %+v %+v", c.StartupProbe, c.StartupProbe.HTTPGet)
	}
	if tol := pod.Spec.Tolerations; tol[0].Operator != api.TolerationOpEqual || tol[1].Operator != api.TolerationOpExists {
		t.Errorf("tolerations: %+v", tol)
	}
	if err := Validate(pod); err != nil {
		t.Error(err)
	}
}

func TestDefaultDaemonSet(t *testing.T) {
	ds := &api.DaemonSet{Spec: api.DaemonSetSpec{Template: api.PodTemplateSpec{
		Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "i:1"}}},
	}}}
	Default(ds, "")
	us := ds.Spec.UpdateStrategy
	if us.Type != api.RollingUpdateStrategy || us.RollingUpdate == nil ||
		*us.RollingUpdate.MaxUnavailable != api.FromInt(1) || *us.RollingUpdate.MaxSurge != api.FromInt(0) ||
		*ds.Spec.RevisionHistoryLimit != 10 || ds.Spec.MinReadySeconds != 0 || ds.Spec.Rollout != nil {
		t.Errorf("spec: %+v", ds.Spec)
	}

	// Set values stay, each bound is defaulted alone, and OnDelete gets no
	// rollingUpdate.
	ds.Spec.UpdateStrategy = api.DaemonSetUpdateStrategy{RollingUpdate: &api.RollingUpdateDaemonSet{MaxSurge: pct("10%")}}
	ds.Spec.RevisionHistoryLimit = int32p(0)
	ds.Spec.Rollout = &api.RolloutSpec{}
	Default(ds, "")
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if *ru.MaxSurge != api.FromString("10%") || *ru.MaxUnavailable != api.FromInt(1) || *ds.Spec.RevisionHistoryLimit != 0 {
		t.Errorf("set values changed: %+v %+v", ru, ds.Spec)
	}
	if r := ds.Spec.Rollout; r.OnFailure != api.OnFailurePause || r.OfflineNodes != api.OfflineSkip || *r.ProgressDeadlineSeconds != 600 ||
		r.Canary != nil || r.MaxFailures != nil || r.PrePull || r.Paused {
		t.Errorf("rollout: %+v", r)
	}
	ds.Spec.UpdateStrategy = api.DaemonSetUpdateStrategy{Type: api.OnDeleteStrategy}
	Default(ds, "")
	if ds.Spec.UpdateStrategy.RollingUpdate != nil {
		t.Errorf("OnDelete got a rolling update: %+v", ds.Spec.UpdateStrategy)
	}
}

func TestDefaultDeployment(t *testing.T) {
	d := &api.Deployment{ObjectMeta: api.ObjectMeta{Name: "d"}, Spec: api.DeploymentSpec{
		Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
		Template: api.PodTemplateSpec{
			ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "d"}},
			Spec:       api.PodSpec{Containers: []api.Container{{Name: "c", Image: "nginx"}}},
		},
	}}
	Default(d, "team-a")
	s := d.Spec
	if d.Namespace != "team-a" || d.Kind != "Deployment" || d.APIVersion != "apps/v1" {
		t.Errorf("meta: %+v %+v", d.TypeMeta, d.ObjectMeta)
	}
	if *s.Replicas != 1 || s.Strategy.Type != api.RollingUpdateStrategy || *s.Strategy.RollingUpdate.MaxSurge != api.FromString("25%") ||
		*s.Strategy.RollingUpdate.MaxUnavailable != api.FromString("25%") || *s.RevisionHistoryLimit != 10 || *s.ProgressDeadlineSeconds != 600 {
		t.Errorf("spec: %+v", s)
	}
	if ps := s.Template.Spec; ps.RestartPolicy != api.RestartAlways || ps.Containers[0].ImagePullPolicy != api.PullAlways || *ps.TerminationGracePeriodSeconds != 30 {
		t.Errorf("template: %+v", ps)
	}

	d.Spec.Replicas = int32p(0)
	d.Spec.Strategy = api.DeploymentStrategy{Type: api.RecreateStrategy}
	d.Spec.ProgressDeadlineSeconds = int32p(60)
	Default(d, "")
	if *d.Spec.Replicas != 0 || d.Spec.Strategy.RollingUpdate != nil || *d.Spec.ProgressDeadlineSeconds != 60 {
		t.Errorf("set values changed: %+v", d.Spec)
	}
	d.Spec.Strategy = api.DeploymentStrategy{RollingUpdate: &api.RollingUpdateDeployment{MaxUnavailable: intstr(0)}}
	Default(d, "")
	if ru := d.Spec.Strategy.RollingUpdate; *ru.MaxUnavailable != api.FromInt(0) || *ru.MaxSurge != api.FromString("25%") {
		t.Errorf("rolling update: %+v", ru)
	}
	if err := Validate(d); err != nil {
		t.Error(err)
	}

	// The hub's own kinds get type metadata and a namespace, nothing else.
	cr := &api.ControllerRevision{Data: api.PodTemplateSpec{Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "i"}}}}}
	Default(cr, "")
	if cr.Kind != "ControllerRevision" || cr.Namespace != "default" || cr.Data.Spec.RestartPolicy != "" || cr.Data.Spec.Containers[0].ImagePullPolicy != "" {
		t.Errorf("controller revision: %+v", cr)
	}
	ev := &api.Event{}
	Default(ev, "x")
	if ev.Kind != "Event" || ev.APIVersion != "v1" || ev.Namespace != "x" {
		t.Errorf("event: %+v", ev)
	}
}

func TestDefaultIsIdempotent(t *testing.T) {
	objects := []api.Object{
		validDaemonSet(), validDeployment(),
		&api.DaemonSet{Spec: api.DaemonSetSpec{Rollout: &api.RolloutSpec{}, Template: api.PodTemplateSpec{Spec: api.PodSpec{
			Containers:  []api.Container{{Name: "c", Image: "i", LivenessProbe: &api.Probe{ProbeHandler: api.ProbeHandler{HTTPGet: &api.HTTPGetAction{}}}}},
			Tolerations: []api.Toleration{{}},
		}}}},
		&api.Deployment{},
		&api.Pod{Spec: api.PodSpec{Containers: []api.Container{{Name: "c", Image: "i", StartupProbe: &api.Probe{}}}}},
		&api.ControllerRevision{}, &api.Event{}, &api.Namespace{}, &api.Node{},
	}
	for _, file := range []string{"fluentd-elasticsearch-upstream", "nginx-deployment", "probe-daemonset", "rollout-daemonset"} {
		data, err := os.ReadFile("testdata/" + file + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		docs, err := Decode(file, data)
		if err != nil {
			t.Fatal(err)
		}
		objects = append(objects, docs[0].Object)
	}
	for _, obj := range objects {
		Default(obj, "ns")
		once, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		Default(obj, "other")
		twice, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, twice) {
			t.Errorf("%T: Default twice differs from once:\n%s\n%s", obj, once, twice)
		}
	}
}
