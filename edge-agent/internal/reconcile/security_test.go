package reconcile

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func ptr[T any](v T) *T { return &v }

func TestEffectiveSecurity(t *testing.T) {
	unconfined := &api.SeccompProfile{Type: api.SeccompProfileTypeUnconfined}
	pod := &api.PodSpec{SecurityContext: &api.PodSecurityContext{
		RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000)), RunAsNonRoot: ptr(true),
		SupplementalGroups: []int64{4000}, FSGroup: ptr(int64(2000)), SeccompProfile: unconfined,
	}}
	// A container that says nothing takes the pod's.
	got := EffectiveSecurity(pod, &api.Container{Name: "a"})
	want := Security{
		Context:            api.SecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000)), RunAsNonRoot: ptr(true), SeccompProfile: unconfined},
		SupplementalGroups: []int64{4000, 2000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// The container's own fields win.
	own := &api.SecurityContext{RunAsUser: ptr(int64(0)), RunAsNonRoot: ptr(false), ReadOnlyRootFilesystem: ptr(true),
		SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeRuntimeDefault}}
	got = EffectiveSecurity(pod, &api.Container{Name: "b", SecurityContext: own})
	if *got.Context.RunAsUser != 0 || *got.Context.RunAsNonRoot || *got.Context.RunAsGroup != 3000 ||
		got.Context.SeccompProfile.Type != api.SeccompProfileTypeRuntimeDefault || !*got.Context.ReadOnlyRootFilesystem {
		t.Errorf("got %+v", got.Context)
	}
	if own.RunAsGroup != nil {
		t.Error("the merge changed the container's spec")
	}
	// Neither says anything: the zero Security.
	if got := EffectiveSecurity(&api.PodSpec{}, &api.Container{}); !reflect.DeepEqual(got, Security{}) {
		t.Errorf("got %+v", got)
	}
}

func TestContainerSpecCarriesSecurity(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	p.Spec.SecurityContext = &api.PodSecurityContext{RunAsUser: ptr(int64(1000)), FSGroup: ptr(int64(2000))}
	p.Spec.Containers[0].SecurityContext = &api.SecurityContext{ReadOnlyRootFilesystem: ptr(true)}
	p.SpecHash = api.HashPodSpec(&p.Spec)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	cs := h.rt.specs[ContainerID(&p, "main")]
	if s := cs.Security; *s.Context.RunAsUser != 1000 || !*s.Context.ReadOnlyRootFilesystem || !slices.Equal(s.SupplementalGroups, []int64{2000}) {
		t.Fatalf("security = %+v", s)
	}
}

// TestConfigErrorIsCreateContainerConfigError: a container the runtime
// refuses for its configuration (an image that runs as root under
// runAsNonRoot) waits as CreateContainerConfigError with the runtime's
// message, is reported once per try as kubelet reports it, and is tried
// again after the back-off, not at once.
func TestConfigErrorIsCreateContainerConfigError(t *testing.T) {
	h := newHarness(t)
	p := pod("web", "reg/web:v1", api.RestartAlways)
	const msg = `container has runAsNonRoot and image will run as root (pod: "default/web", container: main)`
	h.rt.createErr = map[string]error{"main": fmt.Errorf("create container x: %w", &ConfigError{Msg: msg})}
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	if got := h.rt.takeCalls(); !slices.Equal(got, []string{"pull reg/web:v1", "create main"}) {
		t.Fatalf("calls = %v", got)
	}
	st := h.lastStatus("web")
	w := st.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != "CreateContainerConfigError" || w.Message != msg {
		t.Fatalf("state = %+v", st.ContainerStatuses[0].State)
	}
	var failed []string
	for _, e := range h.events {
		if e.Reason == "Failed" {
			failed = append(failed, e.Message)
		}
	}
	if !slices.Equal(failed, []string{"Error: " + msg}) {
		t.Fatalf("Failed events = %q", failed)
	}
	h.sync()
	if got := h.rt.takeCalls(); len(got) != 0 {
		t.Fatalf("retried within the back-off: %v", got)
	}
	// The board changed (the image was rebuilt): after the back-off it runs.
	delete(h.rt.createErr, "main")
	h.clock.Advance(11 * time.Second)
	h.sync()
	if st := h.lastStatus("web"); st.Phase != api.PodRunning {
		t.Fatalf("after the back-off: %+v", st)
	}
}

// TestFSGroupOwnsTheVolumesTheAgentWrites: with an fsGroup, an emptyDir
// and a secret volume belong to that group, their directories carry the
// set-group-ID bit, and the secret's files are readable by the group
// (kubelet's rules); without one, nothing changes.
func TestFSGroupOwnsTheVolumesTheAgentWrites(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root: it changes files' groups and mounts a tmpfs for the secret volume")
	}
	h := newHarness(t)
	spec := api.PodSpec{
		SecurityContext: &api.PodSecurityContext{FSGroup: ptr(int64(2345))},
		Containers: []api.Container{{Name: "app", Image: "reg/app:v1",
			VolumeMounts: []api.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "creds", MountPath: "/creds"}}}},
		Volumes: []api.Volume{
			{Name: "scratch", EmptyDir: &api.EmptyDirVolumeSource{}},
			{Name: "creds", Secret: &api.SecretVolumeSource{SecretName: "creds", DefaultMode: ptr(int32(0o400))}},
		},
	}
	p := wire.SnapshotPod{UID: "u-fs", Name: "app", Namespace: "default", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p},
		Secrets: []wire.SnapshotSecret{{Namespace: "default", Name: "creds", Data: map[string][]byte{"token": []byte("s3cret")}}}})
	t.Cleanup(func() { _ = removePodVolumes(h.rec.podDir(p.UID)) })
	cs, err := h.rec.containerSpec(&p, &p.Spec.Containers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	scratch, creds := cs.Mounts[0].Source, cs.Mounts[1].Source
	// A file the pod wrote before (as root) in its emptyDir.
	if err := os.WriteFile(filepath.Join(scratch, "old"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(scratch, 0, 0); err != nil { // as before the walk
		t.Fatal(err)
	}
	if _, err := h.rec.containerSpec(&p, &p.Spec.Containers[0], 0); err != nil {
		t.Fatal(err)
	}
	check := func(path string, wantMode os.FileMode) {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Gid != 2345 {
			t.Errorf("%s: group %d, want 2345", path, st.Gid)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeSetgid); got != wantMode {
			t.Errorf("%s: mode %v, want %v", path, got, wantMode)
		}
	}
	check(scratch, 0o777|os.ModeSetgid)
	check(filepath.Join(scratch, "old"), 0o660)
	check(creds, 0o755|os.ModeSetgid)
	data, err := filepath.EvalSymlinks(filepath.Join(creds, "token"))
	if err != nil {
		t.Fatal(err)
	}
	check(filepath.Dir(data), 0o755|os.ModeSetgid)
	check(data, 0o440)
	check(filepath.Join(creds, "token"), os.ModePerm) // the link itself

	// A pod without fsGroup: the emptyDir is root's, as before.
	plain := p
	plain.UID, plain.Spec.SecurityContext = "u-plain", nil
	t.Cleanup(func() { _ = removePodVolumes(h.rec.podDir(plain.UID)) })
	cs, err = h.rec.containerSpec(&plain, &plain.Spec.Containers[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cs.Mounts {
		fi, err := os.Stat(m.Source)
		if err != nil {
			t.Fatal(err)
		}
		if gid := fi.Sys().(*syscall.Stat_t).Gid; gid != 0 || fi.Mode()&os.ModeSetgid != 0 {
			t.Errorf("%s without fsGroup: group %d, mode %v", m.Source, gid, fi.Mode())
		}
	}
	if !strings.HasSuffix(scratch, "/volumes/scratch") {
		t.Errorf("scratch at %s", scratch)
	}
}
