package manifest

import (
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// secureDS is a DaemonSet with every securityContext field Flotilla
// supports, written as in Kubernetes' documentation.
const secureDS = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: sensor
spec:
  selector:
    matchLabels: {app: sensor}
  template:
    metadata:
      labels: {app: sensor}
    spec:
      securityContext:
        runAsUser: 1000
        runAsGroup: 3000
        runAsNonRoot: true
        supplementalGroups: [4000, 4001]
        fsGroup: 2000
        seccompProfile:
          type: RuntimeDefault
      containers:
      - name: reader
        image: registry.local/sensor:1
        securityContext:
          runAsUser: 1001
          runAsGroup: 3001
          runAsNonRoot: true
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
          privileged: false
          procMount: Default
          capabilities:
            drop: ["ALL"]
            add: ["NET_BIND_SERVICE", "CAP_NET_RAW", "sys_time"]
          seccompProfile:
            type: Localhost
            localhostProfile: profiles/sensor.json
      - name: debug
        image: registry.local/sensor:1
        securityContext:
          privileged: true
          allowPrivilegeEscalation: true
          capabilities: {add: [ALL]}
          seccompProfile: {type: Unconfined}
`

func TestSecurityContextLoads(t *testing.T) {
	docs, err := Load("ds.yaml", []byte(secureDS), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	ds := docs[0].Object.(*api.DaemonSet)
	pod := ds.Spec.Template.Spec.SecurityContext
	if pod == nil || *pod.RunAsUser != 1000 || *pod.RunAsGroup != 3000 || !*pod.RunAsNonRoot || *pod.FSGroup != 2000 ||
		len(pod.SupplementalGroups) != 2 || pod.SeccompProfile.Type != api.SeccompProfileTypeRuntimeDefault {
		t.Fatalf("pod securityContext: %+v", pod)
	}
	sc := ds.Spec.Template.Spec.Containers[0].SecurityContext
	if sc == nil || *sc.RunAsUser != 1001 || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation ||
		*sc.ProcMount != api.ProcMountDefault || sc.SeccompProfile.Type != api.SeccompProfileTypeLocalhost ||
		*sc.SeccompProfile.LocalhostProfile != "profiles/sensor.json" || len(sc.Capabilities.Add) != 3 || sc.Capabilities.Drop[0] != "ALL" {
		t.Fatalf("container securityContext: %+v", sc)
	}
	// No defaults are filled in: a pod that says nothing keeps saying
	// nothing, so that its spec hash does not change.
	docs, err = Load("ds.yaml", []byte(minimalDS), LoadOptions{Apply: true})
	if err != nil {
		t.Fatal(err)
	}
	plain := docs[0].Object.(*api.DaemonSet).Spec.Template.Spec
	if plain.SecurityContext != nil || plain.Containers[0].SecurityContext != nil {
		t.Fatalf("Default filled in a securityContext: %+v %+v", plain.SecurityContext, plain.Containers[0].SecurityContext)
	}
}

func TestSecurityContextValidation(t *testing.T) {
	const (
		pod = "spec.template.spec.securityContext"
		c0  = "spec.template.spec.containers[0].securityContext"
	)
	tests := []struct {
		name     string
		old, new string // replaced in secureDS
		field    string
		msg      string
	}{
		{"negative runAsUser", "runAsUser: 1000", "runAsUser: -1", pod + ".runAsUser", "must be between 0 and 2147483647, inclusive"},
		{"runAsUser too large", "runAsUser: 1001", "runAsUser: 2147483648", c0 + ".runAsUser", "must be between 0 and 2147483647, inclusive"},
		{"negative runAsGroup", "runAsGroup: 3001", "runAsGroup: -5", c0 + ".runAsGroup", "must be between 0 and 2147483647, inclusive"},
		{"negative fsGroup", "fsGroup: 2000", "fsGroup: -1", pod + ".fsGroup", "must be between 0 and 2147483647, inclusive"},
		{"negative supplemental group", "[4000, 4001]", "[4000, -4001]", pod + ".supplementalGroups[1]", "must be between 0 and 2147483647, inclusive"},
		{"unknown capability", `"sys_time"`, `"SYS_TIMEX"`, c0 + ".capabilities.add[2]", `unknown capability "SYS_TIMEX": want a Linux capability such as NET_ADMIN or CAP_NET_ADMIN, or ALL`},
		{"unknown capability to drop", `drop: ["ALL"]`, `drop: ["ALL", "CAP_"]`, c0 + ".capabilities.drop[1]", `unknown capability "CAP_"`},
		{"empty capability", `drop: ["ALL"]`, `drop: [""]`, c0 + ".capabilities.drop[0]", "must not be empty"},
		{"seccomp type required", "type: RuntimeDefault", "type: \"\"", pod + ".seccompProfile.type", "required: one of RuntimeDefault, Unconfined, Localhost"},
		{"seccomp type unknown", "type: RuntimeDefault", "type: runtime/default", pod + ".seccompProfile.type", `"runtime/default" is not one of RuntimeDefault, Unconfined, Localhost`},
		{"Localhost needs a profile", "            localhostProfile: profiles/sensor.json\n", "", c0 + ".seccompProfile.localhostProfile", "must be set when seccomp type is Localhost"},
		{"Localhost profile absolute", "localhostProfile: profiles/sensor.json", "localhostProfile: /etc/sensor.json", c0 + ".seccompProfile.localhostProfile", `"/etc/sensor.json" must be a relative path`},
		{"Localhost profile climbs out", "localhostProfile: profiles/sensor.json", "localhostProfile: profiles/../../sensor.json", c0 + ".seccompProfile.localhostProfile", `must not contain '..'`},
		{"Localhost profile climbs out with backslashes", "localhostProfile: profiles/sensor.json", `localhostProfile: 'a\..\b.json'`, c0 + ".seccompProfile.localhostProfile", `must not contain '..'`},
		{"Localhost profile empty", "localhostProfile: profiles/sensor.json", `localhostProfile: ""`, c0 + ".seccompProfile.localhostProfile", "must not be empty"},
		{"localhostProfile only with Localhost", "type: RuntimeDefault", "type: RuntimeDefault\n          localhostProfile: a.json", pod + ".seccompProfile.localhostProfile", "can only be set when seccomp type is Localhost"},
		{"procMount Unmasked", "procMount: Default", "procMount: Unmasked", c0 + ".procMount", `"Unmasked" is not supported by Flotilla`},
		{"procMount unknown", "procMount: Default", "procMount: Masked", c0 + ".procMount", `"Masked" is not one of Default, Unmasked`},
		{"privileged without escalation", "privileged: false", "privileged: true", c0, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"},
		{"CAP_SYS_ADMIN without escalation", `"CAP_NET_RAW"`, `"CAP_SYS_ADMIN"`, c0, "cannot set `allowPrivilegeEscalation` to false and `capabilities.add` CAP_SYS_ADMIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := strings.Replace(secureDS, tt.old, tt.new, 1)
			if input == secureDS {
				t.Fatalf("replacement of %q did not apply", tt.old)
			}
			_, err := Load("ds.yaml", []byte(input), LoadOptions{Apply: true})
			list := errorsOf(t, err)
			for _, e := range list {
				if e.Field == tt.field && strings.Contains(e.Msg, tt.msg) {
					if len(list) != 1 {
						t.Errorf("one problem, reported as %d:\n%v", len(list), err)
					}
					return
				}
			}
			t.Fatalf("want %s: …%s…, got:\n%v", tt.field, tt.msg, err)
		})
	}
}

func TestSecurityContextErrorExactly(t *testing.T) {
	input := strings.Replace(secureDS, `"sys_time"`, `"NET_ADMN"`, 1)
	_, err := Load("ds.yaml", []byte(input), LoadOptions{Apply: true})
	const want = `ds.yaml: document 1: spec.template.spec.containers[0].securityContext.capabilities.add[2]: ` +
		`unknown capability "NET_ADMN": want a Linux capability such as NET_ADMIN or CAP_NET_ADMIN, or ALL`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestCapabilityNames(t *testing.T) {
	for in, want := range map[api.Capability]string{
		"NET_ADMIN": "CAP_NET_ADMIN", "CAP_NET_ADMIN": "CAP_NET_ADMIN", "net_admin": "CAP_NET_ADMIN",
		"cap_chown": "CAP_CHOWN", "CHECKPOINT_RESTORE": "CAP_CHECKPOINT_RESTORE",
	} {
		if got, ok := in.Canonical(); !ok || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []api.Capability{"ALL", "NET", "CAP_CAP_CHOWN", "", "CAP_"} {
		if _, ok := bad.Canonical(); ok {
			t.Errorf("%q taken for a capability", bad)
		}
	}
	if !api.Capability("all").IsAll() || api.Capability("ALLX").IsAll() {
		t.Error("IsAll")
	}
	if n := len(api.LinuxCapabilities()); n != 41 {
		t.Errorf("%d capabilities, want the 41 of Linux 5.9", n)
	}
}
