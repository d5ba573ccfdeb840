// Package podsecurity checks pod specs against Kubernetes' Pod Security
// Standards (privileged, baseline, restricted), the level a namespace
// enforces with its pod-security.kubernetes.io/enforce label. It knows the
// standards' current ("latest") checks for the fields Flotilla supports,
// and words each violation as Kubernetes' admission does, with the field
// path of the offending (or missing) value. It reads nothing but its
// arguments; the API server calls it when it writes a workload.
package podsecurity

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Namespace labels, as in Kubernetes. Only enforce has an effect in
// Flotilla; the others are checked for valid values and kept.
const (
	labelPrefix         = "pod-security.kubernetes.io/"
	LabelEnforce        = labelPrefix + "enforce"
	LabelEnforceVersion = labelPrefix + "enforce-version"
)

// Level is a Pod Security Standard.
type Level string

// The levels, from open to confined; each allows less than the one before.
const (
	Privileged Level = "privileged"
	Baseline   Level = "baseline"
	Restricted Level = "restricted"
)

var levels = []Level{Privileged, Baseline, Restricted}

// Violation is one way a pod spec breaks a level.
type Violation struct {
	// Field is the path of the value that breaks the level, or of the one
	// that must be set, from the object's root.
	Field string
	// Reason names the check, as Kubernetes does ("privileged", "host
	// namespaces", "runAsNonRoot != true"...); Detail says what to change.
	Reason, Detail string
}

// Message is the violation as Kubernetes' admission words it, with the
// level: violates PodSecurity "restricted:latest": privileged (container
// "main" must not set securityContext.privileged=true).
func (v Violation) Message(l Level) string {
	return fmt.Sprintf("violates PodSecurity %q: %s (%s)", string(l)+":latest", v.Reason, v.Detail)
}

// LabelProblem is a pod-security label with a value Kubernetes refuses.
type LabelProblem struct {
	Label, Msg string
}

// Enforced returns the level a namespace's labels enforce: Privileged
// (no checks) when they name none or an invalid one (ValidateLabels
// refuses those when the namespace is written).
func Enforced(labels map[string]string) Level {
	if l := Level(labels[LabelEnforce]); l == Baseline || l == Restricted {
		return l
	}
	return Privileged
}

// versionValue is a level's version label: latest, or a Kubernetes minor
// version.
var versionValue = regexp.MustCompile(`^(latest|v1\.(0|[1-9][0-9]*))$`)

// ValidateLabels checks a namespace's pod-security labels: enforce, audit
// and warn name a level, their -version labels "latest" or a version such
// as v1.30. Flotilla checks every version as the latest.
func ValidateLabels(labels map[string]string) []LabelProblem {
	var out []LabelProblem
	for _, mode := range []string{"audit", "enforce", "warn"} {
		k := labelPrefix + mode
		if v, ok := labels[k]; ok && !isLevel(v) {
			out = append(out, LabelProblem{k, fmt.Sprintf("%q must be one of privileged, baseline, restricted", v)})
		}
		if v, ok := labels[k+"-version"]; ok && !versionValue.MatchString(v) {
			out = append(out, LabelProblem{k + "-version", fmt.Sprintf(`%q must be "latest" or a Kubernetes version such as "v1.30"`, v)})
		}
	}
	return out
}

func isLevel(v string) bool {
	for _, l := range levels {
		if Level(v) == l {
			return true
		}
	}
	return false
}

// CheckObject checks the pods a Pod, DaemonSet or Deployment stands for
// against level; other objects have none.
func CheckObject(level Level, obj api.Object) []Violation {
	switch o := obj.(type) {
	case *api.Pod:
		return Check(level, &o.Spec, "spec")
	case *api.DaemonSet:
		return Check(level, &o.Spec.Template.Spec, "spec.template.spec")
	case *api.Deployment:
		return Check(level, &o.Spec.Template.Spec, "spec.template.spec")
	}
	return nil
}

// PodSpecOf returns the pod spec a Pod, DaemonSet or Deployment stands
// for, or nil.
func PodSpecOf(obj api.Object) *api.PodSpec {
	switch o := obj.(type) {
	case *api.Pod:
		return &o.Spec
	case *api.DaemonSet:
		return &o.Spec.Template.Spec
	case *api.Deployment:
		return &o.Spec.Template.Spec
	}
	return nil
}

// Check returns every way spec, found at path, breaks level, in the
// standards' order of checks and then the containers'. Where the
// restricted level has a stricter form of a baseline check
// (capabilities, volume types, seccomp), only the stricter one reports,
// as in Kubernetes.
func Check(level Level, spec *api.PodSpec, path string) []Violation {
	if level != Baseline && level != Restricted {
		return nil
	}
	c := &checker{spec: spec, path: path}
	// Baseline.
	c.hostNamespaces()
	c.privileged()
	if level == Baseline {
		c.baselineCapabilities()
		c.hostPathVolumes()
	}
	c.hostPorts()
	c.procMount()
	if level == Baseline {
		c.baselineSeccomp()
		return c.out
	}
	// Restricted.
	c.restrictedVolumes()
	c.allowPrivilegeEscalation()
	c.runAsNonRoot()
	c.runAsUser()
	c.restrictedSeccomp()
	c.restrictedCapabilities()
	return c.out
}

type checker struct {
	spec *api.PodSpec
	path string
	out  []Violation
}

func (c *checker) add(field, reason, format string, args ...any) {
	c.out = append(c.out, Violation{Field: c.path + "." + field, Reason: reason, Detail: fmt.Sprintf(format, args...)})
}

// container returns the path of container i's field f.
func container(i int, f string) string {
	return "containers[" + strconv.Itoa(i) + "]." + f
}

// sc is container i's securityContext, empty if it has none.
func (c *checker) sc(i int) api.SecurityContext {
	if sc := c.spec.Containers[i].SecurityContext; sc != nil {
		return *sc
	}
	return api.SecurityContext{}
}

// podSC is the pod's securityContext, empty if it has none.
func (c *checker) podSC() api.PodSecurityContext {
	if sc := c.spec.SecurityContext; sc != nil {
		return *sc
	}
	return api.PodSecurityContext{}
}

// Baseline: sharing the host's namespaces (Flotilla has only the
// network's to share).
func (c *checker) hostNamespaces() {
	if c.spec.HostNetwork {
		c.add("hostNetwork", "host namespaces", "hostNetwork=true")
	}
}

// Baseline: privileged containers.
func (c *checker) privileged() {
	for i, ct := range c.spec.Containers {
		if p := c.sc(i).Privileged; p != nil && *p {
			c.add(container(i, "securityContext.privileged"), "privileged", "container %q must not set securityContext.privileged=true", ct.Name)
		}
	}
}

// baselineAllowed are the capabilities baseline lets a container add:
// Docker's default set without NET_RAW, as the standard lists them.
var baselineAllowed = map[string]bool{
	"CAP_AUDIT_WRITE": true, "CAP_CHOWN": true, "CAP_DAC_OVERRIDE": true, "CAP_FOWNER": true,
	"CAP_FSETID": true, "CAP_KILL": true, "CAP_MKNOD": true, "CAP_NET_BIND_SERVICE": true,
	"CAP_SETFCAP": true, "CAP_SETGID": true, "CAP_SETPCAP": true, "CAP_SETUID": true, "CAP_SYS_CHROOT": true,
}

// Baseline: capabilities beyond the default set. Names are compared as
// the kernel's (CHOWN, CAP_CHOWN and chown are one capability).
func (c *checker) baselineCapabilities() {
	for i, ct := range c.spec.Containers {
		caps := c.sc(i).Capabilities
		if caps == nil {
			continue
		}
		for j, cp := range caps.Add {
			if name, ok := cp.Canonical(); ok && baselineAllowed[name] {
				continue
			}
			c.add(container(i, "securityContext.capabilities.add["+strconv.Itoa(j)+"]"), "non-default capabilities",
				"container %q must not include %q in securityContext.capabilities.add", ct.Name, string(cp))
		}
	}
}

// Baseline: hostPath volumes.
func (c *checker) hostPathVolumes() {
	for i, v := range c.spec.Volumes {
		if v.HostPath != nil {
			c.add("volumes["+strconv.Itoa(i)+"].hostPath", "hostPath volumes", "volume %q", v.Name)
		}
	}
}

// Baseline: host ports.
func (c *checker) hostPorts() {
	for i, ct := range c.spec.Containers {
		for j, p := range ct.Ports {
			if p.HostPort != 0 {
				c.add(container(i, "ports["+strconv.Itoa(j)+"].hostPort"), "hostPort", "container %q uses hostPort %d", ct.Name, p.HostPort)
			}
		}
	}
}

// Baseline: an unmasked /proc (which validation refuses anyway).
func (c *checker) procMount() {
	for i, ct := range c.spec.Containers {
		if pm := c.sc(i).ProcMount; pm != nil && *pm != api.ProcMountDefault {
			c.add(container(i, "securityContext.procMount"), "procMount", "container %q must not set securityContext.procMount to %q", ct.Name, string(*pm))
		}
	}
}

// Baseline: seccomp explicitly off.
func (c *checker) baselineSeccomp() {
	if sp := c.podSC().SeccompProfile; sp != nil && sp.Type == api.SeccompProfileTypeUnconfined {
		c.add("securityContext.seccompProfile.type", "seccompProfile", "pod must not set securityContext.seccompProfile.type to %q", string(sp.Type))
	}
	for i, ct := range c.spec.Containers {
		if sp := c.sc(i).SeccompProfile; sp != nil && sp.Type == api.SeccompProfileTypeUnconfined {
			c.add(container(i, "securityContext.seccompProfile.type"), "seccompProfile", "container %q must not set securityContext.seccompProfile.type to %q", ct.Name, string(sp.Type))
		}
	}
}

// Restricted: only core volume types (of Flotilla's, all but hostPath).
func (c *checker) restrictedVolumes() {
	for i, v := range c.spec.Volumes {
		if v.HostPath != nil {
			c.add("volumes["+strconv.Itoa(i)+"].hostPath", "restricted volume types", "volume %q uses restricted volume type \"hostPath\"", v.Name)
		}
	}
}

// Restricted: allowPrivilegeEscalation set to false, explicitly.
func (c *checker) allowPrivilegeEscalation() {
	for i, ct := range c.spec.Containers {
		if ape := c.sc(i).AllowPrivilegeEscalation; ape == nil || *ape {
			c.add(container(i, "securityContext.allowPrivilegeEscalation"), "allowPrivilegeEscalation != false",
				"container %q must set securityContext.allowPrivilegeEscalation=false", ct.Name)
		}
	}
}

// Restricted: runAsNonRoot true, for the pod or every container, and
// false nowhere.
func (c *checker) runAsNonRoot() {
	const reason = "runAsNonRoot != true"
	pod := c.podSC().RunAsNonRoot
	if pod != nil && !*pod {
		c.add("securityContext.runAsNonRoot", reason, "pod must not set securityContext.runAsNonRoot=false")
	}
	for i, ct := range c.spec.Containers {
		switch own := c.sc(i).RunAsNonRoot; {
		case own != nil && !*own:
			c.add(container(i, "securityContext.runAsNonRoot"), reason, "container %q must not set securityContext.runAsNonRoot=false", ct.Name)
		case own == nil && (pod == nil || !*pod):
			c.add(container(i, "securityContext.runAsNonRoot"), reason, "pod or container %q must set securityContext.runAsNonRoot=true", ct.Name)
		}
	}
}

// Restricted: no runAsUser 0.
func (c *checker) runAsUser() {
	if u := c.podSC().RunAsUser; u != nil && *u == 0 {
		c.add("securityContext.runAsUser", "runAsUser=0", "pod must not set runAsUser=0")
	}
	for i, ct := range c.spec.Containers {
		if u := c.sc(i).RunAsUser; u != nil && *u == 0 {
			c.add(container(i, "securityContext.runAsUser"), "runAsUser=0", "container %q must not set runAsUser=0", ct.Name)
		}
	}
}

// Restricted: a seccomp profile, RuntimeDefault or Localhost, for the pod
// or every container, and Unconfined nowhere.
func (c *checker) restrictedSeccomp() {
	const reason = "seccompProfile"
	confined := func(sp *api.SeccompProfile) bool {
		return sp.Type == api.SeccompProfileTypeRuntimeDefault || sp.Type == api.SeccompProfileTypeLocalhost
	}
	pod := c.podSC().SeccompProfile
	if pod != nil && !confined(pod) {
		c.add("securityContext.seccompProfile.type", reason, "pod must not set securityContext.seccompProfile.type to %q", string(pod.Type))
	}
	podOK := pod != nil && confined(pod)
	for i, ct := range c.spec.Containers {
		switch own := c.sc(i).SeccompProfile; {
		case own != nil && !confined(own):
			c.add(container(i, "securityContext.seccompProfile.type"), reason, "container %q must not set securityContext.seccompProfile.type to %q", ct.Name, string(own.Type))
		case own == nil && !podOK:
			c.add(container(i, "securityContext.seccompProfile"), reason,
				`pod or container %q must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`, ct.Name)
		}
	}
}

// Restricted: every container drops ALL and adds back at most
// NET_BIND_SERVICE.
func (c *checker) restrictedCapabilities() {
	const reason = "unrestricted capabilities"
	for i, ct := range c.spec.Containers {
		caps := c.sc(i).Capabilities
		if caps == nil {
			caps = &api.Capabilities{}
		}
		dropsAll := false
		for _, d := range caps.Drop {
			if d.IsAll() {
				dropsAll = true
			}
		}
		if !dropsAll {
			c.add(container(i, "securityContext.capabilities.drop"), reason, `container %q must set securityContext.capabilities.drop=["ALL"]`, ct.Name)
		}
		for j, cp := range caps.Add {
			if name, ok := cp.Canonical(); ok && name == "CAP_NET_BIND_SERVICE" {
				continue
			}
			c.add(container(i, "securityContext.capabilities.add["+strconv.Itoa(j)+"]"), reason,
				"container %q must not include %q in securityContext.capabilities.add", ct.Name, string(cp))
		}
	}
}
