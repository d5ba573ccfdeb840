package manifest

import (
	"reflect"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Defaults Default fills in, as Kubernetes does.
const (
	// DefaultTerminationGracePeriodSeconds is how long a pod's containers
	// get to stop before they are killed.
	DefaultTerminationGracePeriodSeconds = 30

	// Probe timing.
	DefaultProbeTimeoutSeconds   = 1
	DefaultProbePeriodSeconds    = 10
	DefaultProbeSuccessThreshold = 1
	DefaultProbeFailureThreshold = 3

	// DefaultRevisionHistoryLimit is how many old ControllerRevisions a
	// DaemonSet or Deployment keeps.
	DefaultRevisionHistoryLimit = 10
	// DefaultProgressDeadlineSeconds is how long a Deployment, or a node in
	// a DaemonSet's fleet rollout, may take to make progress.
	DefaultProgressDeadlineSeconds = 600

	// Rolling update bounds.
	DefaultDaemonSetMaxUnavailable  = 1
	DefaultDaemonSetMaxSurge        = 0
	DefaultDeploymentMaxUnavailable = "25%"
	DefaultDeploymentMaxSurge       = "25%"
)

// Default fills in what a manifest may leave out, with Kubernetes' defaults:
//
//   - the type metadata of the object's Go type, and the namespace of a
//     namespaced object (namespace, or "default" when that is empty);
//   - in pod specs: restartPolicy Always, terminationGracePeriodSeconds 30,
//     port protocol TCP, an imagePullPolicy of Always for images tagged
//     "latest" or untagged and IfNotPresent otherwise, toleration operator
//     Equal, and for each probe timeoutSeconds 1, periodSeconds 10,
//     successThreshold 1, failureThreshold 3 and, for httpGet, scheme HTTP
//     and path "/";
//   - in DaemonSets: updateStrategy RollingUpdate with maxUnavailable 1 and
//     maxSurge 0, revisionHistoryLimit 10 and, when spec.rollout is present,
//     onFailure Pause, offlineNodes Skip and progressDeadlineSeconds 600;
//   - in Deployments: replicas 1, strategy RollingUpdate with maxSurge and
//     maxUnavailable 25%, revisionHistoryLimit 10 and
//     progressDeadlineSeconds 600;
//   - in pod specs' secret and configMap volumes: defaultMode 0644;
//   - in Services: type ClusterIP, sessionAffinity None (and, for
//     ClientIP, a timeout of 10800 s), port protocol TCP, targetPort equal
//     to port, clusterIP and clusterIPs from each other,
//     internalTrafficPolicy Cluster, externalTrafficPolicy Cluster for a
//     NodePort Service, ipFamilyPolicy SingleStack and ipFamilies [IPv4];
//   - in Nodes: podCIDR and podCIDRs from each other;
//   - in HorizontalPodAutoscalers: minReplicas 1, a cpu target of 80 %
//     when no metric is given, and what a given behavior leaves out
//     (Kubernetes' scale-up and scale-down rules);
//   - in Secrets: type Opaque, and stringData merged into data (a key in
//     both takes stringData's value), then cleared, as Kubernetes' API
//     server does on write: the one place where Default moves a value.
//
// Otherwise it never changes a value that is set (a zero probe timing field counts as
// unset, as in Kubernetes), so applying it twice is the same as once. It
// leaves template labels, selectors and the objects only the hub writes
// (ControllerRevisions, Events) alone, apart from their type metadata and
// namespace. A nil obj is left as it is.
func Default(obj api.Object, namespace string) {
	if isNil(obj) {
		return
	}
	info, ok := kindOf(obj)
	if !ok {
		return
	}
	tm := obj.GetTypeMeta()
	if tm.Kind == "" {
		tm.Kind = info.Kind
	}
	if tm.APIVersion == "" {
		tm.APIVersion = info.APIVersion
	}
	if meta := obj.GetObjectMeta(); info.Namespaced && meta.Namespace == "" {
		meta.Namespace = namespace
		if meta.Namespace == "" {
			meta.Namespace = api.DefaultNamespace
		}
	}
	switch o := obj.(type) {
	case *api.Pod:
		defaultPodSpec(&o.Spec)
	case *api.DaemonSet:
		defaultDaemonSetSpec(&o.Spec)
	case *api.Deployment:
		defaultDeploymentSpec(&o.Spec)
	case *api.Secret:
		defaultSecret(o)
	case *api.Service:
		defaultService(o)
	case *api.Node:
		defaultNodeSpec(&o.Spec)
	case *api.HorizontalPodAutoscaler:
		defaultHPASpec(&o.Spec)
	}
}

// defaultSecret sets type Opaque and, as Kubernetes' API server does,
// merges stringData into data (stringData wins) and clears it, so a
// stored Secret holds its values in one place.
func defaultSecret(s *api.Secret) {
	if s.Type == "" {
		s.Type = api.SecretTypeOpaque
	}
	if len(s.StringData) > 0 && s.Data == nil {
		s.Data = make(map[string][]byte, len(s.StringData))
	}
	for k, v := range s.StringData {
		s.Data[k] = []byte(v)
	}
	s.StringData = nil
}

func defaultDaemonSetSpec(spec *api.DaemonSetSpec) {
	defaultPodSpec(&spec.Template.Spec)
	us := &spec.UpdateStrategy
	if us.Type == "" {
		us.Type = api.RollingUpdateStrategy
	}
	if us.Type == api.RollingUpdateStrategy {
		if us.RollingUpdate == nil {
			us.RollingUpdate = &api.RollingUpdateDaemonSet{}
		}
		ru := us.RollingUpdate
		if ru.MaxUnavailable == nil {
			v := api.FromInt(DefaultDaemonSetMaxUnavailable)
			ru.MaxUnavailable = &v
		}
		if ru.MaxSurge == nil {
			v := api.FromInt(DefaultDaemonSetMaxSurge)
			ru.MaxSurge = &v
		}
	}
	if spec.RevisionHistoryLimit == nil {
		spec.RevisionHistoryLimit = int32p(DefaultRevisionHistoryLimit)
	}
	if r := spec.Rollout; r != nil {
		if r.OnFailure == "" {
			r.OnFailure = api.OnFailurePause
		}
		if r.OfflineNodes == "" {
			r.OfflineNodes = api.OfflineSkip
		}
		if r.ProgressDeadlineSeconds == nil {
			r.ProgressDeadlineSeconds = int32p(DefaultProgressDeadlineSeconds)
		}
	}
}

func defaultDeploymentSpec(spec *api.DeploymentSpec) {
	defaultPodSpec(&spec.Template.Spec)
	if spec.Replicas == nil {
		spec.Replicas = int32p(1)
	}
	st := &spec.Strategy
	if st.Type == "" {
		st.Type = api.RollingUpdateStrategy
	}
	if st.Type == api.RollingUpdateStrategy {
		if st.RollingUpdate == nil {
			st.RollingUpdate = &api.RollingUpdateDeployment{}
		}
		ru := st.RollingUpdate
		if ru.MaxUnavailable == nil {
			v := api.FromString(DefaultDeploymentMaxUnavailable)
			ru.MaxUnavailable = &v
		}
		if ru.MaxSurge == nil {
			v := api.FromString(DefaultDeploymentMaxSurge)
			ru.MaxSurge = &v
		}
	}
	if spec.RevisionHistoryLimit == nil {
		spec.RevisionHistoryLimit = int32p(DefaultRevisionHistoryLimit)
	}
	if spec.ProgressDeadlineSeconds == nil {
		spec.ProgressDeadlineSeconds = int32p(DefaultProgressDeadlineSeconds)
	}
}

func int32p(v int32) *int32 { return &v }

// kindOf finds the kind whose Go type obj has.
func kindOf(obj api.Object) (api.KindInfo, bool) {
	t := reflect.TypeOf(obj)
	for _, k := range api.Kinds() {
		if reflect.TypeOf(k.New()) == t {
			return k, true
		}
	}
	return api.KindInfo{}, false
}

func defaultPodSpec(spec *api.PodSpec) {
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = api.RestartAlways
	}
	if spec.TerminationGracePeriodSeconds == nil {
		g := int64(DefaultTerminationGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &g
	}
	for i := range spec.Containers {
		ct := &spec.Containers[i]
		if ct.ImagePullPolicy == "" {
			ct.ImagePullPolicy = api.PullIfNotPresent
			if tag, digest := imageTag(ct.Image); tag == "latest" || (tag == "" && digest == "") {
				ct.ImagePullPolicy = api.PullAlways
			}
		}
		for j := range ct.Ports {
			if ct.Ports[j].Protocol == "" {
				ct.Ports[j].Protocol = api.ProtocolTCP
			}
		}
		defaultDeviceRequests(&ct.Resources)
		defaultProbe(ct.LivenessProbe)
		defaultProbe(ct.ReadinessProbe)
		defaultProbe(ct.StartupProbe)
	}
	for i := range spec.Tolerations {
		if spec.Tolerations[i].Operator == "" {
			spec.Tolerations[i].Operator = api.TolerationOpEqual
		}
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.Secret != nil && v.Secret.DefaultMode == nil {
			v.Secret.DefaultMode = int32p(api.DefaultVolumeMode)
		}
		if v.ConfigMap != nil && v.ConfigMap.DefaultMode == nil {
			v.ConfigMap.DefaultMode = int32p(api.DefaultVolumeMode)
		}
	}
}

func defaultProbe(p *api.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = DefaultProbeTimeoutSeconds
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = DefaultProbePeriodSeconds
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = DefaultProbeSuccessThreshold
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultProbeFailureThreshold
	}
	if h := p.HTTPGet; h != nil {
		if h.Scheme == "" {
			h.Scheme = "HTTP"
		}
		if h.Path == "" {
			h.Path = "/"
		}
	}
}

// imageTag splits the tag and digest off an image reference such as
// "registry:5000/team/app:1.2@sha256:…". A colon before the last '/' belongs
// to the registry's port, not to a tag.
func imageTag(image string) (tag, digest string) {
	ref := image
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref, digest = ref[:i], ref[i+1:]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		tag = ref[i+1:]
	}
	return tag, digest
}
