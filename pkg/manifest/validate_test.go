package manifest

import (
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func int64p(v int64) *int64 { return &v }

// validDaemonSet returns a DaemonSet that uses every supported field and
// passes Validate; each case below breaks one rule of it.
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
					}, {
						Name: "sidecar", Image: "busybox@sha256:abc",
					}},
					Volumes: []api.Volume{
						{Name: "varlog", HostPath: &api.HostPathVolumeSource{Path: "/var/log", Type: "Directory"}},
						{Name: "buffer", EmptyDir: &api.EmptyDirVolumeSource{Medium: "Memory", SizeLimit: &size}},
					},
					RestartPolicy:                 api.RestartAlways,
					TerminationGracePeriodSeconds: int64p(10),
					NodeSelector:                  map[string]string{"kubernetes.io/arch": "arm64"},
				},
			},
		},
	}
}

func TestValidateDaemonSet(t *testing.T) {
	if err := Validate(validDaemonSet()); err != nil {
		t.Fatalf("the valid DaemonSet fails: %v", err)
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
		{"namespace required", func(ds *api.DaemonSet) { ds.Namespace = "" }, "metadata.namespace", "required"},
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
		{"resource name", func(ds *api.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = "1" }, c0 + ".resources.limits[nvidia.com/gpu]", "only cpu and memory"},
		{"resource ephemeral-storage", func(ds *api.DaemonSet) {
			ds.Spec.Template.Spec.Containers[0].Resources.Requests["ephemeral-storage"] = "1Gi"
		}, c0 + ".resources.requests.ephemeral-storage", "only cpu and memory"},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := validDaemonSet()
			tt.mutate(ds)
			list := errorsOf(t, Validate(ds))
			for _, e := range list {
				if e.Field == tt.field && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("want %s: …%s…, got:\n%v", tt.field, tt.msg, list)
		})
	}
}

func TestValidateCollectsAllErrors(t *testing.T) {
	ds := validDaemonSet()
	ds.Name = ""
	ds.Spec.Template.Spec.Containers[0].Image = ""
	ds.Spec.Template.Spec.Containers[1].Image = ""
	ds.Spec.Template.Spec.Volumes[0].HostPath.Path = "relative"
	err := Validate(ds)
	want := "metadata.name: required\n" +
		"spec.template.spec.volumes[0].hostPath.path: \"relative\" must be an absolute path\n" +
		"spec.template.spec.containers[0].image: required\n" +
		"spec.template.spec.containers[1].image: required"
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestValidateDefaultsAreOptional(t *testing.T) {
	// A DaemonSet with only what a user must write validates once its
	// namespace is known; restart policy, pull policy, grace period and
	// protocols may be left empty.
	ds := &api.DaemonSet{
		ObjectMeta: api.ObjectMeta{Name: "x", Namespace: "default"},
		Spec: api.DaemonSetSpec{
			Selector: &api.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: api.PodTemplateSpec{
				ObjectMeta: api.ObjectMeta{Labels: map[string]string{"app": "x"}},
				Spec:       api.PodSpec{Containers: []api.Container{{Name: "x", Image: "x", Ports: []api.ContainerPort{{ContainerPort: 80}}}}},
			},
		},
	}
	if err := Validate(ds); err != nil {
		t.Fatal(err)
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
		{"nil", nil, "", "no object"},
		{"typed nil", (*api.DaemonSet)(nil), "", "no object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := errorsOf(t, Validate(tt.obj))
			for _, e := range list {
				if e.Field == tt.field && strings.Contains(e.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("want %s: …%s…, got:\n%v", tt.field, tt.msg, list)
		})
	}

	valid := []api.Object{
		&api.Namespace{ObjectMeta: api.ObjectMeta{Name: "team-a"}},
		&api.Node{ObjectMeta: api.ObjectMeta{Name: "board-1.site-a", Labels: map[string]string{api.LabelArch: "arm64"}}},
		&api.Pod{ObjectMeta: api.ObjectMeta{Name: "p", Namespace: "default"},
			Spec: api.PodSpec{RestartPolicy: api.RestartNever, NodeName: "board-1", Containers: []api.Container{{Name: "c", Image: "i"}}}},
	}
	for _, obj := range valid {
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
	want := []string{"Always", "Always", "IfNotPresent", "Always", "IfNotPresent", "IfNotPresent", "Always", "Never"}
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
