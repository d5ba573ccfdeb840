package podsecurity

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func ptr[T any](v T) *T { return &v }

// restrictedPod is the smallest pod the restricted level admits, as
// Kubernetes' documentation writes it: non-root, RuntimeDefault seccomp,
// no privilege escalation, every capability dropped.
func restrictedPod() *api.PodSpec {
	return &api.PodSpec{
		SecurityContext: &api.PodSecurityContext{
			RunAsNonRoot:   ptr(true),
			SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []api.Container{{
			Name: "app", Image: "app:1",
			SecurityContext: &api.SecurityContext{
				AllowPrivilegeEscalation: ptr(false),
				Capabilities:             &api.Capabilities{Drop: []api.Capability{"ALL"}},
			},
		}},
		Volumes: []api.Volume{
			{Name: "scratch", EmptyDir: &api.EmptyDirVolumeSource{}},
			{Name: "creds", Secret: &api.SecretVolumeSource{SecretName: "creds"}},
			{Name: "conf", ConfigMap: &api.ConfigMapVolumeSource{LocalObjectReference: api.LocalObjectReference{Name: "conf"}}},
		},
	}
}

// sc returns container 0's securityContext.
func sc(s *api.PodSpec) *api.SecurityContext { return s.Containers[0].SecurityContext }

// found renders violations as "field: reason (detail)" for comparison.
func found(vs []Violation) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, fmt.Sprintf("%s: %s (%s)", v.Field, v.Reason, v.Detail))
	}
	return out
}

const c0 = "spec.containers[0]."

func TestLevels(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *api.PodSpec)
		// baseline and restricted are the violations each level finds;
		// the privileged level finds none, ever.
		baseline, restricted []string
	}{
		{"the restricted example", func(s *api.PodSpec) {}, nil, nil},
		{"a pod that says nothing", func(s *api.PodSpec) {
			s.SecurityContext, s.Containers[0].SecurityContext = nil, nil
		}, nil, []string{
			c0 + `securityContext.allowPrivilegeEscalation: allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)`,
			c0 + `securityContext.runAsNonRoot: runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)`,
			c0 + `securityContext.seccompProfile: seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`,
			c0 + `securityContext.capabilities.drop: unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])`,
		}},
		{"hostNetwork", func(s *api.PodSpec) { s.HostNetwork = true },
			[]string{`spec.hostNetwork: host namespaces (hostNetwork=true)`},
			[]string{`spec.hostNetwork: host namespaces (hostNetwork=true)`}},
		{"privileged", func(s *api.PodSpec) {
			sc(s).Privileged, sc(s).AllowPrivilegeEscalation = ptr(true), nil
		}, []string{
			c0 + `securityContext.privileged: privileged (container "app" must not set securityContext.privileged=true)`,
		}, []string{
			c0 + `securityContext.privileged: privileged (container "app" must not set securityContext.privileged=true)`,
			c0 + `securityContext.allowPrivilegeEscalation: allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)`,
		}},
		{"privileged false is fine", func(s *api.PodSpec) { sc(s).Privileged = ptr(false) }, nil, nil},
		{"a default capability added", func(s *api.PodSpec) {
			sc(s).Capabilities.Add = []api.Capability{"CHOWN", "CAP_KILL", "net_bind_service"}
		}, nil, []string{
			c0 + `securityContext.capabilities.add[0]: unrestricted capabilities (container "app" must not include "CHOWN" in securityContext.capabilities.add)`,
			c0 + `securityContext.capabilities.add[1]: unrestricted capabilities (container "app" must not include "CAP_KILL" in securityContext.capabilities.add)`,
		}},
		{"NET_ADMIN and NET_RAW added", func(s *api.PodSpec) {
			sc(s).Capabilities.Add = []api.Capability{"NET_ADMIN", "NET_RAW"}
		}, []string{
			c0 + `securityContext.capabilities.add[0]: non-default capabilities (container "app" must not include "NET_ADMIN" in securityContext.capabilities.add)`,
			c0 + `securityContext.capabilities.add[1]: non-default capabilities (container "app" must not include "NET_RAW" in securityContext.capabilities.add)`,
		}, []string{
			c0 + `securityContext.capabilities.add[0]: unrestricted capabilities (container "app" must not include "NET_ADMIN" in securityContext.capabilities.add)`,
			c0 + `securityContext.capabilities.add[1]: unrestricted capabilities (container "app" must not include "NET_RAW" in securityContext.capabilities.add)`,
		}},
		{"ALL added", func(s *api.PodSpec) {
			sc(s).Capabilities = &api.Capabilities{Add: []api.Capability{"ALL"}}
		}, []string{
			c0 + `securityContext.capabilities.add[0]: non-default capabilities (container "app" must not include "ALL" in securityContext.capabilities.add)`,
		}, []string{
			c0 + `securityContext.capabilities.drop: unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])`,
			c0 + `securityContext.capabilities.add[0]: unrestricted capabilities (container "app" must not include "ALL" in securityContext.capabilities.add)`,
		}},
		{"hostPath volume", func(s *api.PodSpec) {
			s.Volumes = append(s.Volumes, api.Volume{Name: "dev", HostPath: &api.HostPathVolumeSource{Path: "/dev"}})
		}, []string{
			`spec.volumes[3].hostPath: hostPath volumes (volume "dev")`,
		}, []string{
			`spec.volumes[3].hostPath: restricted volume types (volume "dev" uses restricted volume type "hostPath")`,
		}},
		{"hostPort", func(s *api.PodSpec) {
			s.Containers[0].Ports = []api.ContainerPort{{ContainerPort: 80}, {ContainerPort: 502, HostPort: 502}}
		}, []string{
			c0 + `ports[1].hostPort: hostPort (container "app" uses hostPort 502)`,
		}, []string{
			c0 + `ports[1].hostPort: hostPort (container "app" uses hostPort 502)`,
		}},
		{"pod seccomp Unconfined", func(s *api.PodSpec) {
			s.SecurityContext.SeccompProfile.Type = api.SeccompProfileTypeUnconfined
		}, []string{
			`spec.securityContext.seccompProfile.type: seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")`,
		}, []string{
			`spec.securityContext.seccompProfile.type: seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")`,
			c0 + `securityContext.seccompProfile: seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`,
		}},
		{"container seccomp Unconfined", func(s *api.PodSpec) {
			sc(s).SeccompProfile = &api.SeccompProfile{Type: api.SeccompProfileTypeUnconfined}
		}, []string{
			c0 + `securityContext.seccompProfile.type: seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")`,
		}, []string{
			c0 + `securityContext.seccompProfile.type: seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")`,
		}},
		{"container Localhost seccomp without the pod's", func(s *api.PodSpec) {
			s.SecurityContext.SeccompProfile = nil
			sc(s).SeccompProfile = &api.SeccompProfile{Type: api.SeccompProfileTypeLocalhost, LocalhostProfile: ptr("p.json")}
		}, nil, nil},
		{"allowPrivilegeEscalation true", func(s *api.PodSpec) { sc(s).AllowPrivilegeEscalation = ptr(true) }, nil, []string{
			c0 + `securityContext.allowPrivilegeEscalation: allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)`,
		}},
		{"runAsNonRoot on the container instead", func(s *api.PodSpec) {
			s.SecurityContext.RunAsNonRoot, sc(s).RunAsNonRoot = nil, ptr(true)
		}, nil, nil},
		{"runAsNonRoot false on the pod", func(s *api.PodSpec) { s.SecurityContext.RunAsNonRoot = ptr(false) }, nil, []string{
			`spec.securityContext.runAsNonRoot: runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)`,
			c0 + `securityContext.runAsNonRoot: runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)`,
		}},
		{"runAsNonRoot false on the container", func(s *api.PodSpec) { sc(s).RunAsNonRoot = ptr(false) }, nil, []string{
			c0 + `securityContext.runAsNonRoot: runAsNonRoot != true (container "app" must not set securityContext.runAsNonRoot=false)`,
		}},
		{"runAsUser 0", func(s *api.PodSpec) {
			s.SecurityContext.RunAsUser, sc(s).RunAsUser = ptr(int64(0)), ptr(int64(0))
		}, nil, []string{
			`spec.securityContext.runAsUser: runAsUser=0 (pod must not set runAsUser=0)`,
			c0 + `securityContext.runAsUser: runAsUser=0 (container "app" must not set runAsUser=0)`,
		}},
		{"runAsUser 1000", func(s *api.PodSpec) { sc(s).RunAsUser = ptr(int64(1000)) }, nil, nil},
		{"procMount Unmasked", func(s *api.PodSpec) { sc(s).ProcMount = ptr(api.ProcMountType("Unmasked")) }, []string{
			c0 + `securityContext.procMount: procMount (container "app" must not set securityContext.procMount to "Unmasked")`,
		}, []string{
			c0 + `securityContext.procMount: procMount (container "app" must not set securityContext.procMount to "Unmasked")`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, lv := range []struct {
				level Level
				want  []string
			}{{Privileged, nil}, {Baseline, tt.baseline}, {Restricted, tt.restricted}} {
				spec := restrictedPod()
				tt.mutate(spec)
				got := found(Check(lv.level, spec, "spec"))
				want := lv.want
				if want == nil {
					want = []string{}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s:\ngot  %s\nwant %s", lv.level, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
				}
			}
		})
	}
}

func TestEveryContainerIsChecked(t *testing.T) {
	spec := restrictedPod()
	spec.Containers = append(spec.Containers, api.Container{Name: "sidecar", Image: "s:1",
		SecurityContext: &api.SecurityContext{Privileged: ptr(true)}})
	got := found(Check(Baseline, spec, "spec.template.spec"))
	want := []string{`spec.template.spec.containers[1].securityContext.privileged: privileged (container "sidecar" must not set securityContext.privileged=true)`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestCheckObjectAndMessage(t *testing.T) {
	ds := &api.DaemonSet{Spec: api.DaemonSetSpec{Template: api.PodTemplateSpec{Spec: *restrictedPod()}}}
	ds.Spec.Template.Spec.HostNetwork = true
	vs := CheckObject(Restricted, ds)
	if len(vs) != 1 || vs[0].Field != "spec.template.spec.hostNetwork" {
		t.Fatalf("got %+v", vs)
	}
	const want = `violates PodSecurity "restricted:latest": host namespaces (hostNetwork=true)`
	if got := vs[0].Message(Restricted); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if vs := CheckObject(Restricted, &api.ConfigMap{}); vs != nil {
		t.Fatalf("a ConfigMap has violations: %v", vs)
	}
}

func TestLabels(t *testing.T) {
	for labels, want := range map[string]Level{
		"":           Privileged,
		"privileged": Privileged,
		"baseline":   Baseline,
		"restricted": Restricted,
		"Restricted": Privileged, // invalid, refused by ValidateLabels
	} {
		l := map[string]string{}
		if labels != "" {
			l[LabelEnforce] = labels
		}
		if got := Enforced(l); got != want {
			t.Errorf("%q: got %s, want %s", labels, got, want)
		}
	}
	problems := ValidateLabels(map[string]string{
		LabelEnforce: "strict", LabelEnforceVersion: "v1.30",
		"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "1.30",
		"pod-security.kubernetes.io/audit": "baseline", "pod-security.kubernetes.io/audit-version": "latest",
		"app": "x",
	})
	want := []LabelProblem{
		{LabelEnforce, `"strict" must be one of privileged, baseline, restricted`},
		{"pod-security.kubernetes.io/warn-version", `"1.30" must be "latest" or a Kubernetes version such as "v1.30"`},
	}
	if !reflect.DeepEqual(problems, want) {
		t.Fatalf("got %+v\nwant %+v", problems, want)
	}
}
