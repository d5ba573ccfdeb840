package manifest

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Validate checks obj with Kubernetes' rules for the subset Flotilla
// supports and returns an ErrorList with every problem found, each with its
// field path, or nil. Call Default first: Validate expects what Default
// fills in, such as the namespace of a namespaced object.
func Validate(obj api.Object) error {
	c := &collector{}
	switch o := obj.(type) {
	case *api.Namespace:
		if o != nil {
			validateMeta(c, o, api.KindNamespace)
		}
	case *api.Node:
		if o != nil {
			validateMeta(c, o, api.KindNode)
			validateNodeSpec(c, &o.Spec)
		}
	case *api.Pod:
		if o != nil {
			validateMeta(c, o, api.KindPod)
			validatePodSpec(c, &o.Spec, "spec")
		}
	case *api.DaemonSet:
		if o != nil {
			validateMeta(c, o, api.KindDaemonSet)
			validateDaemonSetSpec(c, &o.Spec)
		}
	case *api.Deployment:
		if o != nil {
			validateMeta(c, o, api.KindDeployment)
			validateDeploymentSpec(c, &o.Spec)
		}
	// ControllerRevisions and Events are written only by the hub and the
	// agents; they decode (so that `hub get -o yaml` output reads back) and
	// only their metadata is checked.
	case *api.ControllerRevision:
		if o != nil {
			validateMeta(c, o, api.KindControllerRevision)
		}
	case *api.Event:
		if o != nil {
			validateMeta(c, o, api.KindEvent)
		}
	case *api.Secret:
		if o != nil {
			validateMeta(c, o, api.KindSecret)
			validateSecret(c, o)
		}
	case *api.ConfigMap:
		if o != nil {
			validateMeta(c, o, api.KindConfigMap)
			validateConfigMap(c, o)
		}
	case *api.Service:
		if o != nil {
			validateMeta(c, o, api.KindService)
			validateService(c, o)
		}
	case *api.Endpoints:
		if o != nil {
			validateMeta(c, o, api.KindEndpoints)
			validateEndpoints(c, o)
		}
	case *api.Ingress:
		if o != nil {
			validateMeta(c, o, api.KindIngress)
			validateIngress(c, o)
		}
	case *api.IngressClass:
		if o != nil {
			validateMeta(c, o, api.KindIngressClass)
			validateIngressClass(c, o)
		}
	case *api.HorizontalPodAutoscaler:
		if o != nil {
			validateMeta(c, o, api.KindHorizontalPodAutoscaler)
			validateHPASpec(c, &o.Spec)
		}
	// Certificate requests are made by the hub at enrolment; like Events,
	// they decode and only their metadata is checked.
	case *api.CertificateSigningRequest:
		if o != nil {
			validateMeta(c, o, api.KindCertificateSigningRequest)
		}
	case nil:
	default:
		c.addf("", "unsupported object type %T", obj)
	}
	if isNil(obj) {
		c.add("", "no object")
	}
	return c.err()
}

// isNil reports whether obj is nil or a typed nil pointer.
func isNil(obj api.Object) bool {
	if obj == nil {
		return true
	}
	v := reflect.ValueOf(obj)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// errText renders an error from pkg/api for a report, bounded in length: those
// messages quote the offending value, which may be large.
func errText(err error) string { return clip(err.Error(), 300) }

// validateMeta checks type and object metadata.
func validateMeta(c *collector, obj api.Object, kind string) {
	info, _ := api.LookupKind(kind)
	tm, meta := obj.GetTypeMeta(), obj.GetObjectMeta()
	if tm.Kind != "" && tm.Kind != info.Kind {
		c.addf("kind", "must be %q for this object, not %q", info.Kind, clip(tm.Kind, 64))
	}
	if tm.APIVersion != "" && tm.APIVersion != info.APIVersion {
		c.addf("apiVersion", "must be %q for kind %s, not %q", info.APIVersion, info.Kind, clip(tm.APIVersion, 64))
	}

	checkName := api.ValidateDNSSubdomain
	if kind == api.KindNamespace {
		checkName = api.ValidateDNSLabel
	}
	if err := checkName(meta.Name); err != nil {
		c.add("metadata.name", errText(err))
	}
	if info.Namespaced {
		if err := api.ValidateDNSLabel(meta.Namespace); err != nil {
			c.add("metadata.namespace", errText(err))
		}
	} else if meta.Namespace != "" {
		c.addf("metadata.namespace", "must be empty: %s is not namespaced", info.Kind)
	}
	validateLabels(c, meta.Labels, "metadata.labels")
	validateAnnotations(c, meta.Annotations, "metadata.annotations")
}

// validateLabels checks label keys and values; nodeSelector and matchLabels
// follow the same rules.
func validateLabels(c *collector, labels map[string]string, path string) {
	for _, k := range sortedKeys(labels) {
		if err := api.ValidateLabelKey(k); err != nil {
			c.add(path, errText(err))
			continue
		}
		if err := api.ValidateLabelValue(labels[k]); err != nil {
			c.add(key(path, k), errText(err))
		}
	}
}

// maxAnnotationBytes is Kubernetes' limit on the total size of an object's
// annotations.
const maxAnnotationBytes = 256 << 10

func validateAnnotations(c *collector, annotations map[string]string, path string) {
	total := 0
	for _, k := range sortedKeys(annotations) {
		if err := api.ValidateLabelKey(k); err != nil {
			c.add(path, strings.Replace(errText(err), "label key", "annotation key", 1))
		}
		total += len(k) + len(annotations[k])
	}
	if total > maxAnnotationBytes {
		c.addf(path, "must be at most %d bytes in total, not %d", maxAnnotationBytes, total)
	}
}

// validateWorkload checks what DaemonSets and Deployments share: a
// non-empty selector that matches the template's labels, and a pod template
// whose pods always restart and are not bound to a node by the user.
func validateWorkload(c *collector, kind string, selector *api.LabelSelector, template *api.PodTemplateSpec) {
	validateLabels(c, template.Labels, "spec.template.metadata.labels")
	validateAnnotations(c, template.Annotations, "spec.template.metadata.annotations")

	if validSelector(c, selector, "spec.selector", kind) {
		sel, err := selector.AsSelector()
		switch {
		case err != nil:
			c.add("spec.selector", errText(err))
		case !sel.Matches(template.Labels):
			c.add("spec.template.metadata.labels", "selector does not match template labels")
		}
	}

	ps := &template.Spec
	validatePodSpec(c, ps, "spec.template.spec")
	if ps.RestartPolicy != "" && ps.RestartPolicy != api.RestartAlways {
		c.addf("spec.template.spec.restartPolicy", "must be %s for a %s, not %q", api.RestartAlways, kind, clip(string(ps.RestartPolicy), 64))
	}
	if ps.NodeName != "" {
		why := "the hub places its pods"
		if kind == api.KindDaemonSet {
			why = "it runs a pod on every matching node"
		}
		c.addf("spec.template.spec.nodeName", "must not be set for a %s: %s", kind, why)
	}
}

func validateDaemonSetSpec(c *collector, spec *api.DaemonSetSpec) {
	validateWorkload(c, api.KindDaemonSet, spec.Selector, &spec.Template)

	const path = "spec.updateStrategy"
	us := &spec.UpdateStrategy
	switch us.Type {
	case "", api.RollingUpdateStrategy:
		if ru := us.RollingUpdate; ru != nil {
			validateRollingUpdateDaemonSet(c, ru, field(path, "rollingUpdate"))
		}
	case api.OnDeleteStrategy:
		if us.RollingUpdate != nil {
			c.addf(field(path, "rollingUpdate"), "may not be set when type is %s", api.OnDeleteStrategy)
		}
	default:
		c.add(field(path, "type"), notOneOf(us.Type, daemonSetStrategies))
	}
	nonNegative(c, int64(spec.MinReadySeconds), "spec.minReadySeconds")
	if l := spec.RevisionHistoryLimit; l != nil {
		nonNegative(c, int64(*l), "spec.revisionHistoryLimit")
	}
	if r := spec.Rollout; r != nil {
		validateRollout(c, r, "spec.rollout", spec.MinReadySeconds)
	}
}

// validateRollingUpdateDaemonSet applies Kubernetes' rules: both bounds are
// non-negative integers or percentages up to 100%, and exactly one of them
// is non-zero, since a node either surges (runs the old and the new pod for
// a while) or replaces (stops the old pod first). Unset bounds count with
// their defaults, maxUnavailable 1 and maxSurge 0.
func validateRollingUpdateDaemonSet(c *collector, ru *api.RollingUpdateDaemonSet, path string) {
	unavailablePath, surgePath := field(path, "maxUnavailable"), field(path, "maxSurge")
	unavailable, uOK := checkIntOrPercent(c, valueOr(ru.MaxUnavailable, api.FromInt(DefaultDaemonSetMaxUnavailable)), unavailablePath, 0, 100)
	surge, sOK := checkIntOrPercent(c, valueOr(ru.MaxSurge, api.FromInt(DefaultDaemonSetMaxSurge)), surgePath, 0, 100)
	if !uOK || !sOK {
		return
	}
	switch {
	case unavailable == 0 && surge == 0:
		c.add(unavailablePath, "may not be 0 when maxSurge is 0")
	case unavailable != 0 && surge != 0:
		c.addf(surgePath, "may not be set when maxUnavailable is non-zero (maxUnavailable defaults to %d; set it to 0 to surge)", DefaultDaemonSetMaxUnavailable)
	}
}

func validateDeploymentSpec(c *collector, spec *api.DeploymentSpec) {
	validateWorkload(c, api.KindDeployment, spec.Selector, &spec.Template)

	if r := spec.Replicas; r != nil {
		nonNegative(c, int64(*r), "spec.replicas")
	}
	const path = "spec.strategy"
	st := &spec.Strategy
	switch st.Type {
	case "", api.RollingUpdateStrategy:
		if ru := st.RollingUpdate; ru != nil {
			validateRollingUpdateDeployment(c, ru, field(path, "rollingUpdate"))
		}
	case api.RecreateStrategy:
		if st.RollingUpdate != nil {
			c.addf(field(path, "rollingUpdate"), "may not be set when type is %s", api.RecreateStrategy)
		}
	default:
		c.add(field(path, "type"), notOneOf(st.Type, deploymentStrategies))
	}
	nonNegative(c, int64(spec.MinReadySeconds), "spec.minReadySeconds")
	if l := spec.RevisionHistoryLimit; l != nil {
		nonNegative(c, int64(*l), "spec.revisionHistoryLimit")
	}
	validateProgressDeadline(c, spec.ProgressDeadlineSeconds, "spec.progressDeadlineSeconds", spec.MinReadySeconds)
}

// validateRollingUpdateDeployment applies Kubernetes' rules: both bounds are
// non-negative integers or percentages, maxUnavailable at most 100% (a
// surge may exceed 100%), and not both zero. Unset bounds count with their
// default, 25%.
func validateRollingUpdateDeployment(c *collector, ru *api.RollingUpdateDeployment, path string) {
	unavailablePath, surgePath := field(path, "maxUnavailable"), field(path, "maxSurge")
	unavailable, uOK := checkIntOrPercent(c, valueOr(ru.MaxUnavailable, api.FromString(DefaultDeploymentMaxUnavailable)), unavailablePath, 0, 100)
	surge, sOK := checkIntOrPercent(c, valueOr(ru.MaxSurge, api.FromString(DefaultDeploymentMaxSurge)), surgePath, 0, noMaxPercent)
	if uOK && sOK && unavailable == 0 && surge == 0 {
		c.add(unavailablePath, "may not be 0 when maxSurge is 0")
	}
}

// validateRollout checks Flotilla's fleet rollout block.
func validateRollout(c *collector, r *api.RolloutSpec, path string, minReadySeconds int32) {
	if cs := r.Canary; cs != nil {
		p := field(path, "canary")
		hasSelector, hasCount := len(cs.NodeSelector) > 0, cs.Count != nil
		switch {
		case !hasSelector && !hasCount:
			c.add(p, "must set exactly one of nodeSelector (non-empty) or count")
		case hasSelector && hasCount:
			c.add(p, "may not set both nodeSelector and count")
		}
		validateLabels(c, cs.NodeSelector, field(p, "nodeSelector"))
		if hasCount {
			checkIntOrPercent(c, *cs.Count, field(p, "count"), 1, 100)
		}
		if ps := cs.PauseSeconds; ps != nil {
			nonNegative(c, int64(*ps), field(p, "pauseSeconds"))
		}
	}
	if mf := r.MaxFailures; mf != nil {
		checkIntOrPercent(c, *mf, field(path, "maxFailures"), 0, 100)
	}
	if r.OnFailure != "" && !oneOf(r.OnFailure, onFailureActions) {
		c.add(field(path, "onFailure"), notOneOf(r.OnFailure, onFailureActions))
	}
	if r.OfflineNodes != "" && !oneOf(r.OfflineNodes, offlinePolicies) {
		c.add(field(path, "offlineNodes"), notOneOf(r.OfflineNodes, offlinePolicies))
	}
	validateProgressDeadline(c, r.ProgressDeadlineSeconds, field(path, "progressDeadlineSeconds"), minReadySeconds)
}

// validateProgressDeadline checks a progress deadline as Kubernetes does
// for Deployments: more than 0, and more than minReadySeconds, since a pod
// cannot count as available sooner.
func validateProgressDeadline(c *collector, seconds *int32, path string, minReadySeconds int32) {
	switch {
	case seconds == nil:
	case *seconds <= 0:
		c.add(path, "must be greater than 0")
	case *seconds <= minReadySeconds:
		c.addf(path, "must be greater than minReadySeconds (%d)", minReadySeconds)
	}
}

func nonNegative(c *collector, v int64, path string) {
	if v < 0 {
		c.add(path, "must be greater than or equal to 0")
	}
}

func valueOr(v *api.IntOrString, def api.IntOrString) api.IntOrString {
	if v == nil {
		return def
	}
	return *v
}

// noMaxPercent lifts the upper bound of checkIntOrPercent.
const noMaxPercent = -1

// checkIntOrPercent checks v at path: an integer of at least min, or a
// percentage "N%" (digits only, as Kubernetes requires) with N of at least
// min and, unless maxPercent is noMaxPercent, at most maxPercent. It returns
// the integer or N, and whether v is valid.
func checkIntOrPercent(c *collector, v api.IntOrString, path string, min, maxPercent int) (int, bool) {
	if !v.IsString {
		if int(v.IntVal) < min {
			c.addf(path, "must be greater than or equal to %d", min)
			return 0, false
		}
		return int(v.IntVal), true
	}
	pct, ok := parsePercent(v.StrVal)
	switch {
	case !ok:
		c.addf(path, "%q must be an integer or a percentage such as \"25%%\"", clip(v.StrVal, 64))
		return 0, false
	case maxPercent != noMaxPercent && (pct < min || pct > maxPercent):
		c.addf(path, "%q must be a percentage from %d%% to %d%%", clip(v.StrVal, 64), min, maxPercent)
		return 0, false
	case pct < min:
		c.addf(path, "%q must be a percentage of at least %d%%", clip(v.StrVal, 64), min)
		return 0, false
	}
	return pct, true
}

// parsePercent reads "N%" where N is one or more decimal digits. A value
// too large for an int reads as the largest int.
func parsePercent(s string) (int, bool) {
	digits, ok := strings.CutSuffix(s, "%")
	if !ok || digits == "" {
		return 0, false
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return math.MaxInt, true // only digits, so only out of range
	}
	return n, true
}

// validSelector checks a DaemonSet's or Deployment's selector and reports
// whether it is fit to match with.
func validSelector(c *collector, ls *api.LabelSelector, path, kind string) bool {
	if ls == nil {
		c.add(path, "required")
		return false
	}
	if len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0 {
		c.addf(path, "empty selector is invalid for a %s: it would select every pod", kind)
		return false
	}
	before := c.count()
	validateLabels(c, ls.MatchLabels, field(path, "matchLabels"))
	for i, e := range ls.MatchExpressions {
		p := index(field(path, "matchExpressions"), i)
		if err := api.ValidateLabelKey(e.Key); err != nil {
			c.add(field(p, "key"), errText(err))
		}
		switch e.Operator {
		case api.OpIn, api.OpNotIn:
			if len(e.Values) == 0 {
				c.addf(field(p, "values"), "must be non-empty for operator %s", e.Operator)
			}
		case api.OpExists, api.OpDoesNotExist:
			if len(e.Values) != 0 {
				c.addf(field(p, "values"), "must be empty for operator %s", e.Operator)
			}
		case "":
			c.add(field(p, "operator"), "required")
		default:
			c.addf(field(p, "operator"), "%q is not one of In, NotIn, Exists, DoesNotExist", clip(e.Operator, 64))
		}
		for j, v := range e.Values {
			if err := api.ValidateLabelValue(v); err != nil {
				c.add(index(field(p, "values"), j), errText(err))
			}
		}
	}
	return c.count() == before
}

// Allowed values.
var (
	restartPolicies = []api.RestartPolicy{api.RestartAlways, api.RestartOnFailure, api.RestartNever}
	pullPolicies    = []api.PullPolicy{api.PullAlways, api.PullIfNotPresent, api.PullNever}
	protocols       = []api.Protocol{api.ProtocolTCP, api.ProtocolUDP, api.ProtocolSCTP}
	hostPathTypes   = []string{"DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"}
	emptyDirMedia   = []string{"Memory"}
	resourceNames   = []string{api.ResourceCPU, api.ResourceMemory}

	daemonSetStrategies  = []api.StrategyType{api.RollingUpdateStrategy, api.OnDeleteStrategy}
	deploymentStrategies = []api.StrategyType{api.RollingUpdateStrategy, api.RecreateStrategy}
	onFailureActions     = []api.OnFailurePolicy{api.OnFailurePause, api.OnFailureRollback}
	offlinePolicies      = []api.OfflinePolicy{api.OfflineSkip, api.OfflineWait}

	probeSchemes      = []string{"HTTP", "HTTPS"}
	tolerationOps     = []api.TolerationOperator{api.TolerationOpEqual, api.TolerationOpExists}
	tolerationEffects = []api.TaintEffect{api.TaintEffectNoSchedule, api.TaintEffectPreferNoSchedule, api.TaintEffectNoExecute}
)

func oneOf[T ~string](v T, allowed []T) bool {
	return slices.Contains(allowed, v)
}

func notOneOf[T ~string](v T, allowed []T) string {
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return fmt.Sprintf("%q is not one of %s", clip(string(v), 64), strings.Join(names, ", "))
}

// validatePodSpec checks a pod spec at path ("spec" for a Pod,
// "spec.template.spec" for a DaemonSet).
func validatePodSpec(c *collector, spec *api.PodSpec, path string) {
	volumes := validateVolumes(c, spec.Volumes, field(path, "volumes"))

	containersPath := field(path, "containers")
	if len(spec.Containers) == 0 {
		c.add(containersPath, "at least one container is required")
	}
	names := map[string]bool{}
	hostPorts := map[string]bool{}
	for i := range spec.Containers {
		ct := &spec.Containers[i]
		p := index(containersPath, i)
		if err := api.ValidateDNSLabel(ct.Name); err != nil {
			c.add(field(p, "name"), errText(err))
		} else if names[ct.Name] {
			c.addf(field(p, "name"), "duplicate container name %q", ct.Name)
		}
		names[ct.Name] = true
		validateContainer(c, ct, p, volumes, hostPorts)
	}

	if spec.RestartPolicy != "" && !oneOf(spec.RestartPolicy, restartPolicies) {
		c.add(field(path, "restartPolicy"), notOneOf(spec.RestartPolicy, restartPolicies))
	}
	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		c.add(field(path, "terminationGracePeriodSeconds"), "must be greater than or equal to 0")
	}
	validateLabels(c, spec.NodeSelector, field(path, "nodeSelector"))
	validateTolerations(c, spec.Tolerations, field(path, "tolerations"))
	validatePodDNS(c, spec, path)
	validatePodSecurityContext(c, spec.SecurityContext, field(path, "securityContext"))
	if spec.NodeName != "" {
		if err := api.ValidateDNSSubdomain(spec.NodeName); err != nil {
			c.add(field(path, "nodeName"), errText(err))
		}
	}
}

// validateVolumes checks the pod's volumes and returns the names declared.
func validateVolumes(c *collector, vols []api.Volume, path string) map[string]bool {
	names := map[string]bool{}
	for i := range vols {
		v := &vols[i]
		p := index(path, i)
		if err := api.ValidateDNSLabel(v.Name); err != nil {
			c.add(field(p, "name"), errText(err))
		} else if names[v.Name] {
			c.addf(field(p, "name"), "duplicate volume name %q", v.Name)
		}
		names[v.Name] = true

		var sources []string
		for _, src := range []struct {
			name string
			set  bool
		}{
			{"hostPath", v.HostPath != nil}, {"emptyDir", v.EmptyDir != nil},
			{"secret", v.Secret != nil}, {"configMap", v.ConfigMap != nil},
		} {
			if src.set {
				sources = append(sources, src.name)
			}
		}
		switch {
		case len(sources) == 0:
			c.add(p, "must set exactly one volume source: hostPath, emptyDir, secret or configMap")
		case len(sources) == 2:
			c.addf(p, "may not set more than one volume source: %s and %s are both set", sources[0], sources[1])
		case len(sources) > 2:
			c.addf(p, "may not set more than one volume source: %s are all set", strings.Join(sources, ", "))
		}
		if sv := v.Secret; sv != nil {
			svPath := field(p, "secret")
			validateObjectRef(c, sv.SecretName, field(svPath, "secretName"))
			validateVolumeItems(c, sv.Items, sv.DefaultMode, svPath)
		}
		if cv := v.ConfigMap; cv != nil {
			cvPath := field(p, "configMap")
			validateObjectRef(c, cv.Name, field(cvPath, "name"))
			validateVolumeItems(c, cv.Items, cv.DefaultMode, cvPath)
		}
		if hp := v.HostPath; hp != nil {
			hpPath := field(p, "hostPath")
			switch {
			case hp.Path == "":
				c.add(field(hpPath, "path"), "required")
			case !strings.HasPrefix(hp.Path, "/"):
				c.addf(field(hpPath, "path"), "%q must be an absolute path", clip(hp.Path, 200))
			}
			if hp.Type != "" && !oneOf(hp.Type, hostPathTypes) {
				c.add(field(hpPath, "type"), notOneOf(hp.Type, hostPathTypes))
			}
		}
		if ed := v.EmptyDir; ed != nil {
			edPath := field(p, "emptyDir")
			if ed.Medium != "" && !oneOf(ed.Medium, emptyDirMedia) {
				c.addf(field(edPath, "medium"), "%q is not one of \"\" (the node's disk) or Memory", clip(ed.Medium, 64))
			}
			if ed.SizeLimit != nil {
				if err := ed.SizeLimit.Validate(); err != nil {
					c.add(field(edPath, "sizeLimit"), errText(err))
				}
			}
		}
	}
	return names
}

func validateContainer(c *collector, ct *api.Container, path string, volumes, hostPorts map[string]bool) {
	switch {
	case ct.Image == "":
		c.add(field(path, "image"), "required")
	case strings.TrimSpace(ct.Image) != ct.Image:
		c.add(field(path, "image"), "must not have leading or trailing whitespace")
	}
	if ct.ImagePullPolicy != "" && !oneOf(ct.ImagePullPolicy, pullPolicies) {
		c.add(field(path, "imagePullPolicy"), notOneOf(ct.ImagePullPolicy, pullPolicies))
	}
	for i := range ct.Env {
		validateEnvVar(c, &ct.Env[i], index(field(path, "env"), i))
	}
	for i := range ct.EnvFrom {
		validateEnvFrom(c, &ct.EnvFrom[i], index(field(path, "envFrom"), i))
	}
	validatePorts(c, ct.Ports, field(path, "ports"), hostPorts)
	validateResources(c, &ct.Resources, field(path, "resources"))
	validateProbe(c, ct.LivenessProbe, field(path, "livenessProbe"), "a liveness probe", ct.Ports)
	validateProbe(c, ct.ReadinessProbe, field(path, "readinessProbe"), "", ct.Ports)
	validateProbe(c, ct.StartupProbe, field(path, "startupProbe"), "a startup probe", ct.Ports)
	validateSecurityContext(c, ct.SecurityContext, field(path, "securityContext"))

	mountPaths := map[string]bool{}
	for i, m := range ct.VolumeMounts {
		p := index(field(path, "volumeMounts"), i)
		switch {
		case m.Name == "":
			c.add(field(p, "name"), "required")
		case !volumes[m.Name]:
			c.addf(field(p, "name"), "volume %q is not declared in the pod's volumes", clip(m.Name, 64))
		}
		switch {
		case m.MountPath == "":
			c.add(field(p, "mountPath"), "required")
		case !strings.HasPrefix(m.MountPath, "/"):
			c.addf(field(p, "mountPath"), "%q must be an absolute path", clip(m.MountPath, 200))
		case mountPaths[m.MountPath]:
			c.addf(field(p, "mountPath"), "duplicate mount path %q", clip(m.MountPath, 200))
		}
		mountPaths[m.MountPath] = true
	}
}

func validatePorts(c *collector, ports []api.ContainerPort, path string, hostPorts map[string]bool) {
	names := map[string]bool{}
	for i, port := range ports {
		p := index(path, i)
		if port.Name != "" {
			if err := validatePortName(port.Name); err != nil {
				c.add(field(p, "name"), errText(err))
			} else if names[port.Name] {
				c.addf(field(p, "name"), "duplicate port name %q", port.Name)
			}
			names[port.Name] = true
		}
		if port.ContainerPort < 1 || port.ContainerPort > 65535 {
			c.add(field(p, "containerPort"), "must be between 1 and 65535")
		}
		if port.HostPort < 0 || port.HostPort > 65535 {
			c.add(field(p, "hostPort"), "must be between 1 and 65535, or 0 for none")
		}
		protocol := port.Protocol
		if protocol != "" && !oneOf(protocol, protocols) {
			c.add(field(p, "protocol"), notOneOf(protocol, protocols))
		}
		if port.HostPort > 0 {
			if protocol == "" {
				protocol = api.ProtocolTCP
			}
			hp := fmt.Sprintf("%d/%s", port.HostPort, protocol)
			if hostPorts[hp] {
				c.addf(field(p, "hostPort"), "duplicate host port %s in the pod", hp)
			}
			hostPorts[hp] = true
		}
	}
}

var (
	portNameChars  = regexp.MustCompile(`^[-a-z0-9]+$`)
	portNameLetter = regexp.MustCompile(`[a-z]`)
)

// validatePortName checks an IANA service name, as Kubernetes does for port
// names: at most 15 lower-case letters, digits and '-', with at least one
// letter, no "--", and no '-' at either end.
func validatePortName(n string) error {
	switch {
	case len(n) > 15:
		return fmt.Errorf("%q is longer than 15 characters", clip(n, 64))
	case !portNameChars.MatchString(n):
		return fmt.Errorf("%q may contain only lower-case letters, digits and '-'", clip(n, 64))
	case !portNameLetter.MatchString(n):
		return fmt.Errorf("%q must contain at least one letter", n)
	case strings.Contains(n, "--"):
		return fmt.Errorf("%q may not contain \"--\"", n)
	case strings.HasPrefix(n, "-") || strings.HasSuffix(n, "-"):
		return fmt.Errorf("%q may not begin or end with '-'", n)
	}
	return nil
}

func validateResources(c *collector, r *api.ResourceRequirements, path string) {
	limitsOK := validateResourceList(c, r.Limits, field(path, "limits"))
	requestsOK := validateResourceList(c, r.Requests, field(path, "requests"))
	validateDeviceRequests(c, r, func(name string) bool { return requestsOK[name] && (limitsOK[name] || r.Limits[name] == "") }, path)
	for _, name := range sortedKeys(r.Requests) {
		limit, ok := r.Limits[name]
		if _, device := api.DeviceClassOf(name); device || !ok || !limitsOK[name] || !requestsOK[name] {
			continue
		}
		if r.Requests[name].MilliValue() > limit.MilliValue() {
			c.addf(key(field(path, "requests"), name), "must be less than or equal to the %s limit %q", name, limit.String())
		}
	}
}

// validateResourceList checks names and quantities and returns the names
// whose quantities are valid.
func validateResourceList(c *collector, list api.ResourceList, path string) map[string]bool {
	valid := map[string]bool{}
	for _, name := range sortedKeys(list) {
		p := key(path, name)
		if class, device := api.DeviceClassOf(name); device {
			valid[name] = validateDeviceQuantity(c, class, list[name], p)
			continue
		}
		if !oneOf(name, resourceNames) {
			c.addf(p, "unsupported resource %q: Flotilla supports only cpu, memory and %sCLASS", clip(name, 64), api.ResourceDevicePrefix)
			continue
		}
		if err := list[name].Validate(); err != nil {
			c.add(p, errText(err))
			continue
		}
		valid[name] = true
	}
	return valid
}

// validateTolerations checks tolerations with Kubernetes' rules.
func validateTolerations(c *collector, tolerations []api.Toleration, path string) {
	for i := range tolerations {
		t := &tolerations[i]
		p := index(path, i)
		if t.Key != "" {
			if err := api.ValidateLabelKey(t.Key); err != nil {
				c.add(field(p, "key"), errText(err))
			}
		}
		switch t.Operator {
		case api.TolerationOpExists:
			if t.Value != "" {
				c.addf(field(p, "value"), "must be empty when operator is %s", api.TolerationOpExists)
			}
		case "", api.TolerationOpEqual:
			if t.Key == "" {
				c.addf(field(p, "operator"), "must be %s when key is empty (to tolerate every taint)", api.TolerationOpExists)
			}
			if err := api.ValidateLabelValue(t.Value); err != nil {
				c.add(field(p, "value"), errText(err))
			}
		default:
			c.add(field(p, "operator"), notOneOf(t.Operator, tolerationOps))
		}
		if t.Effect != "" && !oneOf(t.Effect, tolerationEffects) {
			c.add(field(p, "effect"), notOneOf(t.Effect, tolerationEffects))
		}
		if s := t.TolerationSeconds; s != nil {
			if t.Effect != api.TaintEffectNoExecute {
				c.addf(field(p, "tolerationSeconds"), "may only be set when effect is %s", api.TaintEffectNoExecute)
			}
			nonNegative(c, *s, field(p, "tolerationSeconds"))
		}
	}
}

// validateProbe checks a container's probe, if it has one. mustSucceedOnce
// names the probe in messages when its successThreshold must be 1, as
// Kubernetes requires of liveness and startup probes; it is empty for a
// readiness probe. ports are the container's ports, which a probe may name.
func validateProbe(c *collector, pr *api.Probe, path, mustSucceedOnce string, ports []api.ContainerPort) {
	if pr == nil {
		return
	}
	var handlers []string
	if pr.Exec != nil {
		handlers = append(handlers, "exec")
	}
	if pr.HTTPGet != nil {
		handlers = append(handlers, "httpGet")
	}
	if pr.TCPSocket != nil {
		handlers = append(handlers, "tcpSocket")
	}
	switch len(handlers) {
	case 0:
		c.add(path, "must set exactly one handler: exec, httpGet or tcpSocket")
	case 1:
	default:
		c.addf(path, "may not set more than one handler: %s are set", strings.Join(handlers, " and "))
	}

	if e := pr.Exec; e != nil && len(e.Command) == 0 {
		c.add(field(path, "exec.command"), "required")
	}
	if h := pr.HTTPGet; h != nil {
		p := field(path, "httpGet")
		if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			c.addf(field(p, "path"), "%q must start with \"/\"", clip(h.Path, 200))
		}
		validateProbePort(c, h.Port, field(p, "port"), ports)
		if h.Scheme != "" && !oneOf(h.Scheme, probeSchemes) {
			c.add(field(p, "scheme"), notOneOf(h.Scheme, probeSchemes))
		}
		for i, hdr := range h.HTTPHeaders {
			hp := index(field(p, "httpHeaders"), i)
			switch {
			case hdr.Name == "":
				c.add(field(hp, "name"), "required")
			case !isHTTPToken(hdr.Name):
				c.addf(field(hp, "name"), "%q is not a valid HTTP header name", clip(hdr.Name, 64))
			}
			if strings.ContainsFunc(hdr.Value, func(r rune) bool { return r != '\t' && (r < ' ' || r == 0x7f) }) {
				c.add(field(hp, "value"), "must not contain control characters")
			}
		}
	}
	if t := pr.TCPSocket; t != nil {
		validateProbePort(c, t.Port, field(path, "tcpSocket.port"), ports)
	}

	nonNegative(c, int64(pr.InitialDelaySeconds), field(path, "initialDelaySeconds"))
	// Zero means the default, which is at least 1.
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"timeoutSeconds", pr.TimeoutSeconds},
		{"periodSeconds", pr.PeriodSeconds},
		{"successThreshold", pr.SuccessThreshold},
		{"failureThreshold", pr.FailureThreshold},
	} {
		if f.v < 0 {
			c.add(field(path, f.name), "must be greater than or equal to 1")
		}
	}
	if mustSucceedOnce != "" && pr.SuccessThreshold > 1 {
		c.addf(field(path, "successThreshold"), "must be 1 for %s", mustSucceedOnce)
	}
}

// validateProbePort checks a probe's port: a number from 1 to 65535, or the
// name of one of the container's ports.
func validateProbePort(c *collector, port api.IntOrString, path string, ports []api.ContainerPort) {
	if !port.IsString {
		if port.IntVal < 1 || port.IntVal > 65535 {
			c.add(path, "must be between 1 and 65535, or the name of one of the container's ports")
		}
		return
	}
	if port.StrVal == "" {
		c.add(path, "required")
		return
	}
	if err := validatePortName(port.StrVal); err != nil {
		c.add(path, errText(err))
		return
	}
	for _, p := range ports {
		if p.Name == port.StrVal {
			return
		}
	}
	c.addf(path, "%q is not the name of one of the container's ports", port.StrVal)
}

// isHTTPToken reports whether s is an RFC 9110 token, as header names must
// be.
func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}
