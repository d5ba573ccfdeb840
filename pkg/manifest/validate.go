package manifest

import (
	"fmt"
	"reflect"
	"regexp"
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

func validateDaemonSetSpec(c *collector, spec *api.DaemonSetSpec) {
	validateLabels(c, spec.Template.Labels, "spec.template.metadata.labels")
	validateAnnotations(c, spec.Template.Annotations, "spec.template.metadata.annotations")

	if validSelector(c, spec.Selector, "spec.selector") {
		sel, err := spec.Selector.AsSelector()
		switch {
		case err != nil:
			c.add("spec.selector", errText(err))
		case !sel.Matches(spec.Template.Labels):
			c.add("spec.template.metadata.labels", "selector does not match template labels")
		}
	}

	ps := &spec.Template.Spec
	validatePodSpec(c, ps, "spec.template.spec")
	if ps.RestartPolicy != "" && ps.RestartPolicy != api.RestartAlways {
		c.addf("spec.template.spec.restartPolicy", "must be %s for a DaemonSet, not %q", api.RestartAlways, clip(ps.RestartPolicy, 64))
	}
	if ps.NodeName != "" {
		c.add("spec.template.spec.nodeName", "must not be set for a DaemonSet: it runs a pod on every matching node")
	}
}

// validSelector checks a DaemonSet's selector and reports whether it is fit
// to match with.
func validSelector(c *collector, ls *api.LabelSelector, path string) bool {
	if ls == nil {
		c.add(path, "required")
		return false
	}
	if len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0 {
		c.add(path, "empty selector is invalid for a DaemonSet: it would select every pod")
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
	restartPolicies = []string{api.RestartAlways, api.RestartOnFailure, api.RestartNever}
	pullPolicies    = []string{api.PullAlways, api.PullIfNotPresent, api.PullNever}
	protocols       = []string{"TCP", "UDP", "SCTP"}
	hostPathTypes   = []string{"DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"}
	emptyDirMedia   = []string{"Memory"}
	resourceNames   = []string{api.ResourceCPU, api.ResourceMemory}
)

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func notOneOf(v string, allowed []string) string {
	return fmt.Sprintf("%q is not one of %s", clip(v, 64), strings.Join(allowed, ", "))
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

		switch {
		case v.HostPath == nil && v.EmptyDir == nil:
			c.add(p, "must set exactly one volume source: hostPath or emptyDir")
		case v.HostPath != nil && v.EmptyDir != nil:
			c.add(p, "may not set more than one volume source: hostPath and emptyDir are both set")
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
	for i, e := range ct.Env {
		if err := api.ValidateEnvVarName(e.Name); err != nil {
			c.add(field(index(field(path, "env"), i), "name"), errText(err))
		}
	}
	validatePorts(c, ct.Ports, field(path, "ports"), hostPorts)
	validateResources(c, &ct.Resources, field(path, "resources"))

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
				protocol = "TCP"
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
	for _, name := range sortedKeys(r.Requests) {
		limit, ok := r.Limits[name]
		if !ok || !limitsOK[name] || !requestsOK[name] {
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
		if !oneOf(name, resourceNames) {
			c.addf(p, "unsupported resource %q: Flotilla supports only cpu and memory", clip(name, 64))
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
