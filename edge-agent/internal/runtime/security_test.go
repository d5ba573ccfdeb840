package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/pkg/cap"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

func ptr[T any](v T) *T { return &v }

// defaultCaps is containerd's default capability set.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
	"CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// secSpec builds the OCI spec containerd's defaults and a container's
// security options give, without containerd: the root filesystem is a
// directory with an /etc/passwd and /etc/group, as an image's would be.
func secSpec(t *testing.T, cfg ocispec.ImageConfig, sec reconcile.Security, profileRoot string) (*oci.Spec, error) {
	return secSpecWith(t, cfg, sec, seccompPolicy{root: profileRoot})
}

// secSpecWith is secSpec with the node's seccomp policy given.
func secSpecWith(t *testing.T, cfg ocispec.ImageConfig, sec reconcile.Security, policy seccompPolicy) (*oci.Spec, error) {
	t.Helper()
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1500::/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\napp:x:1500:\nvideo:x:44:app\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec := reconcile.ContainerSpec{
		ID: "c1", Security: sec,
		Labels: map[string]string{reconcile.LabelPodNamespace: "default", reconcile.LabelPodName: "web", reconcile.LabelContainer: "main"},
	}
	opts, err := securityOptions(cfg, spec, policy)
	if err != nil {
		return nil, err
	}
	ctx := namespaces.WithNamespace(context.Background(), "test")
	return oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, append([]oci.SpecOpts{oci.WithRootFSPath(rootfs)}, opts...)...)
}

func mustSpec(t *testing.T, cfg ocispec.ImageConfig, sec reconcile.Security) *oci.Spec {
	t.Helper()
	s, err := secSpec(t, cfg, sec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func caps(sc *api.Capabilities) reconcile.Security {
	return reconcile.Security{Context: api.SecurityContext{Capabilities: sc}}
}

// TestConfinedByDefault: a container that says nothing gets containerd's
// default seccomp profile, no_new_privs and the default capabilities.
func TestConfinedByDefault(t *testing.T) {
	s := mustSpec(t, ocispec.ImageConfig{}, reconcile.Security{})
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != "SCMP_ACT_ERRNO" || len(s.Linux.Seccomp.Syscalls) == 0 {
		t.Fatalf("seccomp = %+v, want containerd's default profile", s.Linux.Seccomp)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("no_new_privs not set")
	}
	if !slices.Equal(s.Process.Capabilities.Effective, defaultCaps) || s.Root.Readonly || s.Process.User.UID != 0 {
		t.Errorf("process = %+v, root = %+v", s.Process, s.Root)
	}
	if len(s.Linux.MaskedPaths) == 0 || len(s.Linux.ReadonlyPaths) == 0 {
		t.Error("/proc is not masked (procMount Default)")
	}
	// RuntimeDefault said out loud is the same.
	rd := mustSpec(t, ocispec.ImageConfig{}, reconcile.Security{Context: api.SecurityContext{SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeRuntimeDefault}}})
	if rd.Linux.Seccomp == nil || len(rd.Linux.Seccomp.Syscalls) != len(s.Linux.Seccomp.Syscalls) {
		t.Error("RuntimeDefault differs from the default")
	}
}

// TestSeccompDefaultOff: with --seccomp-default=false, a container that
// names no profile runs without one; one that names RuntimeDefault still
// gets it.
func TestSeccompDefaultOff(t *testing.T) {
	off := seccompPolicy{root: t.TempDir(), unconfinedByDefault: true}
	s, err := secSpecWith(t, ocispec.ImageConfig{}, reconcile.Security{}, off)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp != nil || !s.Process.NoNewPrivileges {
		t.Errorf("seccomp %v, no_new_privs %v: want none and set", s.Linux.Seccomp != nil, s.Process.NoNewPrivileges)
	}
	s, err = secSpecWith(t, ocispec.ImageConfig{}, reconcile.Security{Context: api.SecurityContext{
		SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeRuntimeDefault}}}, off)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil {
		t.Error("RuntimeDefault named, no profile")
	}
}

func TestUnconfinedAndEscalation(t *testing.T) {
	s := mustSpec(t, ocispec.ImageConfig{}, reconcile.Security{Context: api.SecurityContext{SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeUnconfined}}})
	if s.Linux.Seccomp != nil || !s.Process.NoNewPrivileges {
		t.Errorf("Unconfined: seccomp %v, no_new_privs %v; want none and set", s.Linux.Seccomp != nil, s.Process.NoNewPrivileges)
	}
	s = mustSpec(t, ocispec.ImageConfig{}, reconcile.Security{Context: api.SecurityContext{AllowPrivilegeEscalation: ptr(true)}})
	if s.Linux.Seccomp == nil || s.Process.NoNewPrivileges {
		t.Errorf("allowPrivilegeEscalation: seccomp %v, no_new_privs %v; want set and unset", s.Linux.Seccomp != nil, s.Process.NoNewPrivileges)
	}
	s = mustSpec(t, ocispec.ImageConfig{}, reconcile.Security{Context: api.SecurityContext{AllowPrivilegeEscalation: ptr(false)}})
	if !s.Process.NoNewPrivileges {
		t.Error("allowPrivilegeEscalation false: no_new_privs unset")
	}
}

// TestPrivileged: every capability the agent holds, the board's devices,
// no seccomp filter, nothing masked, writable cgroupfs; capabilities and
// seccomp in the manifest do not take anything away.
func TestPrivileged(t *testing.T) {
	s := mustSpec(t, ocispec.ImageConfig{}, reconcile.Security{Context: api.SecurityContext{
		Privileged:     ptr(true),
		Capabilities:   &api.Capabilities{Drop: []api.Capability{"ALL"}},
		SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeRuntimeDefault},
	}})
	current, err := cap.Current()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Capabilities.Effective, current) || !slices.Contains(current, "CAP_SYS_ADMIN") {
		t.Errorf("capabilities = %v, want the agent's %v", s.Process.Capabilities.Effective, current)
	}
	if s.Linux.Seccomp != nil || s.Process.NoNewPrivileges || len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("seccomp %v, no_new_privs %v, masked %v, read-only %v", s.Linux.Seccomp != nil, s.Process.NoNewPrivileges, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if len(s.Linux.Devices) == 0 || len(s.Linux.Resources.Devices) == 0 || !s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1].Allow {
		t.Errorf("devices = %d, rules = %+v", len(s.Linux.Devices), s.Linux.Resources.Devices)
	}
}

func TestCapabilities(t *testing.T) {
	without := func(c string) []string {
		return slices.DeleteFunc(slices.Clone(defaultCaps), func(x string) bool { return x == c })
	}
	for _, tc := range []struct {
		name string
		caps *api.Capabilities
		want []string
	}{
		{"drop ALL, add one back", &api.Capabilities{Drop: []api.Capability{"ALL"}, Add: []api.Capability{"NET_BIND_SERVICE"}}, []string{"CAP_NET_BIND_SERVICE"}},
		{"drop ALL", &api.Capabilities{Drop: []api.Capability{"all"}}, nil},
		{"add and drop, any spelling", &api.Capabilities{Add: []api.Capability{"net_admin", "CAP_SYS_TIME"}, Drop: []api.Capability{"CHOWN"}},
			append(without("CAP_CHOWN"), "CAP_NET_ADMIN", "CAP_SYS_TIME")},
		{"add ALL and drop ALL: drop wins", &api.Capabilities{Add: []api.Capability{"ALL"}, Drop: []api.Capability{"ALL"}}, nil},
	} {
		s := mustSpec(t, ocispec.ImageConfig{}, caps(tc.caps))
		c := s.Process.Capabilities
		for _, set := range [][]string{c.Effective, c.Permitted, c.Bounding} {
			if !slices.Equal(set, tc.want) {
				t.Errorf("%s: got %v, want %v", tc.name, set, tc.want)
			}
		}
	}
	// Add ALL, drop one: every capability the agent holds but that one.
	s := mustSpec(t, ocispec.ImageConfig{}, caps(&api.Capabilities{Add: []api.Capability{"ALL"}, Drop: []api.Capability{"KILL"}}))
	if eff := s.Process.Capabilities.Effective; slices.Contains(eff, "CAP_KILL") || !slices.Contains(eff, "CAP_SYS_ADMIN") {
		t.Errorf("add ALL drop KILL: %v", eff)
	}
	// The default profile follows the capabilities: a container with
	// CAP_SYS_ADMIN may call mount, one without may not.
	allowsMount := func(s *oci.Spec) bool {
		for _, sc := range s.Linux.Seccomp.Syscalls {
			if slices.Contains(sc.Names, "mount") && sc.Action == "SCMP_ACT_ALLOW" {
				return true
			}
		}
		return false
	}
	if allowsMount(mustSpec(t, ocispec.ImageConfig{}, reconcile.Security{})) ||
		!allowsMount(mustSpec(t, ocispec.ImageConfig{}, caps(&api.Capabilities{Add: []api.Capability{"SYS_ADMIN"}}))) {
		t.Error("the default seccomp profile does not follow the capabilities")
	}
}

// TestCapabilityNamesAreContainerds: the names the manifest accepts are
// the ones containerd knows.
func TestCapabilityNamesAreContainerds(t *testing.T) {
	if got, want := api.LinuxCapabilities(), cap.Known(); !slices.Equal(got, want) {
		t.Fatalf("pkg/api knows %v,\ncontainerd %v", got, want)
	}
}

func TestUserAndGroups(t *testing.T) {
	tests := []struct {
		name      string
		cfg       ocispec.ImageConfig
		sec       reconcile.Security
		uid, gid  uint32
		addedGids []uint32
	}{
		{"image's user", ocispec.ImageConfig{}, reconcile.Security{}, 0, 0, nil},
		{"runAsUser takes its group from the image's passwd", ocispec.ImageConfig{},
			reconcile.Security{Context: api.SecurityContext{RunAsUser: ptr(int64(1000))}}, 1000, 1500, []uint32{1500, 44}},
		{"runAsUser not in passwd gets group 0", ocispec.ImageConfig{},
			reconcile.Security{Context: api.SecurityContext{RunAsUser: ptr(int64(2000))}}, 2000, 0, []uint32{0}},
		{"runAsUser and runAsGroup", ocispec.ImageConfig{User: "app"},
			reconcile.Security{Context: api.SecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000))}}, 1000, 3000, []uint32{3000, 44}},
		{"runAsGroup over the image's user", ocispec.ImageConfig{User: "1000"},
			reconcile.Security{Context: api.SecurityContext{RunAsGroup: ptr(int64(3000))}}, 1000, 3000, []uint32{3000, 44}},
		{"supplemental groups and fsGroup", ocispec.ImageConfig{},
			reconcile.Security{Context: api.SecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000))}, SupplementalGroups: []int64{4000, 2000, 3000}},
			1000, 3000, []uint32{3000, 44, 4000, 2000}},
	}
	for _, tt := range tests {
		s := mustSpec(t, tt.cfg, tt.sec)
		u := s.Process.User
		if u.UID != tt.uid || u.GID != tt.gid || (tt.addedGids != nil && !slices.Equal(u.AdditionalGids, tt.addedGids)) {
			t.Errorf("%s: user %d:%d groups %v, want %d:%d groups %v", tt.name, u.UID, u.GID, u.AdditionalGids, tt.uid, tt.gid, tt.addedGids)
		}
	}
	s := mustSpec(t, ocispec.ImageConfig{}, reconcile.Security{Context: api.SecurityContext{ReadOnlyRootFilesystem: ptr(true)}})
	if !s.Root.Readonly {
		t.Error("readOnlyRootFilesystem: root not read-only")
	}
}

// TestRunAsNonRoot: refused with kubelet's messages, as a ConfigError,
// before any option is built.
func TestRunAsNonRoot(t *testing.T) {
	nonRoot := func(sc api.SecurityContext) reconcile.Security {
		sc.RunAsNonRoot = ptr(true)
		return reconcile.Security{Context: sc}
	}
	const ref = `(pod: "default/web", container: main)`
	for _, tc := range []struct {
		name string
		user string
		sec  reconcile.Security
		want string // "" if it runs
	}{
		{"unset user is root", "", nonRoot(api.SecurityContext{}), "container has runAsNonRoot and image will run as root " + ref},
		{"user 0", "0:0", nonRoot(api.SecurityContext{}), "container has runAsNonRoot and image will run as root " + ref},
		{"a named user", "app", nonRoot(api.SecurityContext{}), "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root " + ref},
		{"runAsUser 0", "1000", nonRoot(api.SecurityContext{RunAsUser: ptr(int64(0))}), "container's runAsUser breaks non-root policy " + ref},
		{"numeric user", "1000:1000", nonRoot(api.SecurityContext{}), ""},
		{"runAsUser over a root image", "", nonRoot(api.SecurityContext{RunAsUser: ptr(int64(1000))}), ""},
		{"runAsNonRoot false", "", reconcile.Security{Context: api.SecurityContext{RunAsNonRoot: ptr(false)}}, ""},
	} {
		_, err := secSpec(t, ocispec.ImageConfig{User: tc.user}, tc.sec, t.TempDir())
		var ce *reconcile.ConfigError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.As(err, &ce) || ce.Msg != tc.want):
			t.Errorf("%s: got %v, want ConfigError %q", tc.name, err, tc.want)
		}
	}
}

func TestLocalhostProfiles(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "profiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	const profile = `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`
	for name, content := range map[string]string{"profiles/deny-mkdir.json": profile, "broken.json": "{defaultAction", "empty.json": "{}"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	local := func(p string) reconcile.Security {
		return reconcile.Security{Context: api.SecurityContext{SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeLocalhost, LocalhostProfile: &p}}}
	}
	s, err := secSpec(t, ocispec.ImageConfig{}, local("profiles/deny-mkdir.json"), root)
	if err != nil {
		t.Fatal(err)
	}
	if sc := s.Linux.Seccomp; sc == nil || sc.DefaultAction != "SCMP_ACT_ALLOW" || len(sc.Syscalls) != 1 || !s.Process.NoNewPrivileges {
		t.Fatalf("seccomp = %+v", sc)
	}
	for name, want := range map[string]string{
		"missing.json":      "seccomp profile " + filepath.Join(root, "missing.json") + " does not exist on this board",
		"broken.json":       "seccomp profile " + filepath.Join(root, "broken.json") + " is not a valid OCI seccomp profile",
		"empty.json":        "it has no defaultAction",
		"../outside.json":   "is outside the seccomp profile directory",
		"profiles/../../x":  "is outside the seccomp profile directory",
		"profiles/../.json": "does not exist",
	} {
		_, err := secSpec(t, ocispec.ImageConfig{}, local(name), root)
		var ce *reconcile.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(ce.Msg, want) {
			t.Errorf("%s: got %v, want a ConfigError with %q", name, err, want)
		}
	}
}

// statusField returns a field of /proc/self/status as a container printed
// it.
func statusField(t *testing.T, status, name string) string {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in:\n%s", name, status)
	return ""
}

// TestConfinementInARunningContainer runs containers on the real
// containerd and reads their confinement from inside: the default one is
// filtered (Seccomp 2) with no_new_privs and containerd's default
// capabilities; one that drops ALL and adds NET_BIND_SERVICE has that
// one, runs as its runAsUser with its groups; a privileged one has no
// filter and every capability.
func TestConfinementInARunningContainer(t *testing.T) {
	rt := newRuntime(t)
	probe := []string{"sh", "-c", "cat /proc/self/status; echo ID=$(id -u):$(id -g):$(id -G)"}
	for _, tc := range []struct {
		name                 string
		sec                  reconcile.Security
		seccomp, nnp, capEff string
		id                   string
	}{
		{"default", reconcile.Security{}, "2", "1", "00000000a80425fb", "ID=0:0:0\n"},
		{"restricted", reconcile.Security{Context: api.SecurityContext{
			RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000)),
			Capabilities: &api.Capabilities{Drop: []api.Capability{"ALL"}, Add: []api.Capability{"NET_BIND_SERVICE"}},
		}, SupplementalGroups: []int64{4000}}, "2", "1", "0000000000000000", "ID=1000:3000:3000 4000"},
		{"root with one capability", reconcile.Security{Context: api.SecurityContext{
			Capabilities: &api.Capabilities{Drop: []api.Capability{"ALL"}, Add: []api.Capability{"NET_BIND_SERVICE", "CHOWN"}},
		}}, "2", "1", "0000000000000401", "ID=0:0:0\n"},
		{"unconfined", reconcile.Security{Context: api.SecurityContext{SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeUnconfined}}},
			"0", "1", "00000000a80425fb", "ID=0:0:0\n"},
		{"privileged", reconcile.Security{Context: api.SecurityContext{Privileged: ptr(true)}}, "0", "0", "", "ID=0:0:0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, out := runToExit(t, rt, reconcile.ContainerSpec{ID: uniqueID("sec"), Command: probe, Security: tc.sec})
			if got := statusField(t, out, "Seccomp"); got != tc.seccomp {
				t.Errorf("Seccomp %s, want %s", got, tc.seccomp)
			}
			if got := statusField(t, out, "NoNewPrivs"); got != tc.nnp {
				t.Errorf("NoNewPrivs %s, want %s", got, tc.nnp)
			}
			capEff := statusField(t, out, "CapEff")
			want := tc.capEff
			if want == "" { // privileged: what the agent holds
				want = statusField(t, readSelfStatus(t), "CapEff")
			}
			if capEff != want {
				t.Errorf("CapEff %s, want %s", capEff, want)
			}
			if !strings.Contains(out, tc.id) {
				t.Errorf("want %s in:\n%s", tc.id, out)
			}
		})
	}
}

func readSelfStatus(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRefusedConfigurationCreatesNothing: a container refused for its
// configuration leaves no container and no snapshot behind.
func TestRefusedConfigurationCreatesNothing(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)
	ensure(t, rt, env.busybox)
	missing := "nowhere/profile.json"
	for _, sec := range []reconcile.Security{
		{Context: api.SecurityContext{RunAsNonRoot: ptr(true)}},
		{Context: api.SecurityContext{SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeLocalhost, LocalhostProfile: &missing}}},
	} {
		id := uniqueID("refused")
		err := rt.Create(ctx, reconcile.ContainerSpec{ID: id, Image: env.busybox, Security: sec,
			Labels: map[string]string{reconcile.LabelPodNamespace: "default", reconcile.LabelPodName: "web", reconcile.LabelContainer: "main"}})
		var ce *reconcile.ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("got %v, want a ConfigError", err)
		}
		if _, err := find(ctx, rt, id); !isNotFoundErr(err) {
			t.Errorf("%s: a container was left: %v", id, err)
		}
		if _, err := rt.client.SnapshotService(DefaultSnapshotter).Stat(rt.ns(ctx), id); err == nil {
			t.Errorf("%s: a snapshot was left", id)
		}
	}
}
