package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// probeScript prints what confines the container, from inside it, then
// sleeps: the seccomp mode, no_new_privs and effective capabilities of its
// own process, its user and groups, whether its root filesystem takes a
// write, and the group of a file it creates in its emptyDir.
const probeScript = `grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; ` +
	`echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"; ` +
	`if touch /rootfs-write 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi; ` +
	`f=/scratch/f-$(id -u)-$RANDOM; touch $f && echo "scratch-group=$(stat -c %g $f)"; ` +
	`echo probed; sleep 3600`

// confinedDaemonSet has three containers: one that says nothing (the
// confined default), one that drops every capability and adds two back,
// and one that runs as a non-root user with a read-only root; the pod's
// fsGroup owns its emptyDir.
func confinedDaemonSet(name, image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: %[1]s}
spec:
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
      securityContext: {fsGroup: 2000}
      volumes: [{name: scratch, emptyDir: {}}]
      containers:
      - name: plain
        image: %[2]s
        command: [sh, -c, %[3]q]
        volumeMounts: [{name: scratch, mountPath: /scratch}]
      - name: caps
        image: %[2]s
        command: [sh, -c, %[3]q]
        volumeMounts: [{name: scratch, mountPath: /scratch}]
        securityContext:
          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, CHOWN]}
      - name: user
        image: %[2]s
        command: [sh, -c, %[3]q]
        volumeMounts: [{name: scratch, mountPath: /scratch}]
        securityContext:
          runAsUser: 1000
          runAsGroup: 3000
          runAsNonRoot: true
          readOnlyRootFilesystem: true
          allowPrivilegeEscalation: false
`, name, image, probeScript)
}

// probed returns what container c of pod printed, once it has.
func probed(t *testing.T, h *hubProc, pod, c string) map[string]string {
	t.Helper()
	var out string
	eventually(t, 30*time.Second, "container "+c+" probed", func() error {
		o, errOut, err := h.cli("", "logs", pod, "-c", c)
		if err != nil || !strings.Contains(o, "probed\n") {
			return fmt.Errorf("%v %q %s", err, o, errOut)
		}
		out = o
		return nil
	})
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			got[k] = strings.TrimSpace(v)
		}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				got[k] = v
			}
		}
		if g, ok := strings.CutPrefix(line, "uid="); ok {
			_, groups, _ := strings.Cut(g, "groups=")
			got["groups"] = groups
		}
	}
	return got
}

// TestSecurityContextConfinesTheRunningContainer reads each container's
// confinement from inside it, running: the default is the runtime's
// seccomp filter (Seccomp 2) with no_new_privs and containerd's default
// capabilities; the capabilities asked for are the only ones in effect;
// runAsUser and runAsGroup are the process's ids, fsGroup among its
// groups and the group of what it writes in its emptyDir; a read-only
// root takes no write.
func TestSecurityContextConfinesTheRunningContainer(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startMetricsAgent(t, h, "--metrics-interval", "0s")
	ds := uniq("confined")
	h.applyYAML(confinedDaemonSet(ds, env.image))
	pod := podName(t, h, ds, a.node)

	plain := probed(t, h, pod, "plain")
	caps := probed(t, h, pod, "caps")
	user := probed(t, h, pod, "user")
	for _, c := range []struct {
		name string
		got  map[string]string
		want map[string]string
	}{
		// containerd's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL
		// SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD
		// AUDIT_WRITE SETFCAP.
		{"plain", plain, map[string]string{"Seccomp": "2", "NoNewPrivs": "1", "CapEff": "00000000a80425fb", "uid": "0", "rootfs": "writable"}},
		// CHOWN (bit 0) and NET_BIND_SERVICE (bit 10) only.
		{"caps", caps, map[string]string{"Seccomp": "2", "NoNewPrivs": "1", "CapEff": "0000000000000401", "uid": "0", "rootfs": "writable"}},
		{"user", user, map[string]string{"Seccomp": "2", "NoNewPrivs": "1", "uid": "1000", "gid": "3000", "rootfs": "readonly", "scratch-group": "2000"}},
	} {
		for k, want := range c.want {
			if c.got[k] != want {
				t.Errorf("container %s: %s = %q, want %q (all: %v)", c.name, k, c.got[k], want, c.got)
			}
		}
	}
	if groups := strings.Fields(user["groups"]); !containsString(groups, "2000") {
		t.Errorf("container user: groups %v lack the fsGroup 2000", groups)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// waitingOf returns the waiting state of container c of the pod of ds on
// node, as the hub shows it.
func waitingOf(h *hubProc, ds, node, c string) (*api.ContainerStateWaiting, error) {
	p := podOn(h.pods(), ds, node)
	if p == nil {
		return nil, fmt.Errorf("no pod yet")
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == c && cs.State.Waiting != nil {
			return cs.State.Waiting, nil
		}
	}
	return nil, fmt.Errorf("container %s not waiting: %+v", c, p.Status)
}

// TestRunAsNonRootOnARootImage: a container with runAsNonRoot whose image
// runs as root waits as CreateContainerConfigError with kubelet's
// message, and nothing of it is created in containerd.
func TestRunAsNonRootOnARootImage(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startMetricsAgent(t, h, "--metrics-interval", "0s")
	ds := uniq("nonroot")
	h.applyYAML(strings.Replace(daemonSet(ds, env.image, "", "sleep 3600"),
		"      containers:\n", "      securityContext: {runAsNonRoot: true}\n      containers:\n", 1))
	eventually(t, 30*time.Second, "CreateContainerConfigError", func() error {
		w, err := waitingOf(h, ds, a.node, "main")
		if err != nil {
			return err
		}
		if w.Reason != "CreateContainerConfigError" || !strings.HasPrefix(w.Message, "container has runAsNonRoot and image will run as root (pod: ") {
			return fmt.Errorf("waiting %+v", w)
		}
		return nil
	})
	for _, c := range containers(t, a.ns) {
		if c.Labels["io.flotilla.pod.name"] != "" && strings.HasPrefix(c.Labels["io.flotilla.pod.name"], ds) {
			t.Errorf("container %s created for a refused configuration", c.ID)
		}
	}
	eventually(t, 30*time.Second, "a Failed event that says why", func() error {
		for _, e := range nodeEvents(t, h, a.node) {
			if e.Reason == "Failed" && strings.HasPrefix(e.Message, "Error: container has runAsNonRoot and image will run as root") {
				return nil
			}
		}
		return fmt.Errorf("events %v", reasons(nodeEvents(t, h, a.node)))
	})
}

// TestMissingLocalhostProfile: a Localhost seccomp profile the board does
// not have is CreateContainerConfigError naming its path; once the
// profile is put in the agent's directory, the container runs under it
// (this one refuses mkdir).
func TestMissingLocalhostProfile(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startMetricsAgent(t, h, "--metrics-interval", "0s")
	ds := uniq("localhost")
	h.applyYAML(strings.Replace(daemonSet(ds, env.image, "", "mkdir /made || echo mkdir-refused; echo probed; sleep 3600"),
		"      containers:\n", "      securityContext: {seccompProfile: {type: Localhost, localhostProfile: profiles/no-mkdir.json}}\n      containers:\n", 1))
	path := filepath.Join(a.stateDir, "seccomp", "profiles", "no-mkdir.json")
	eventually(t, 30*time.Second, "CreateContainerConfigError", func() error {
		w, err := waitingOf(h, ds, a.node, "main")
		if err != nil {
			return err
		}
		if w.Reason != "CreateContainerConfigError" || !strings.Contains(w.Message, "seccomp profile "+path+" does not exist on this board") {
			return fmt.Errorf("waiting %+v", w)
		}
		return nil
	})
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	profile := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}`
	if err := os.WriteFile(path, []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := podName(t, h, ds, a.node) // the retry after the back-off
	eventually(t, 30*time.Second, "the profile refuses mkdir", func() error {
		out, errOut, err := h.cli("", "logs", pod)
		if err != nil || !strings.Contains(out, "mkdir-refused\nprobed\n") {
			return fmt.Errorf("%v %q %s", err, out, errOut)
		}
		return nil
	})
}

// TestRestrictedNamespaceRefusesAPrivilegedPod: apply refuses a
// privileged DaemonSet in a namespace that enforces the restricted level,
// naming the field, and stores nothing of the file.
func TestRestrictedNamespaceRefusesAPrivilegedPod(t *testing.T) {
	h := startHub(t, hubOptions{})
	ns, ds := uniq("locked"), uniq("priv")
	manifest := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels: {pod-security.kubernetes.io/enforce: restricted}\n---\n", ns) +
		strings.Replace(strings.Replace(daemonSet(ds, env.image, "", "sleep 3600"), "metadata:\n  name: "+ds, "metadata:\n  name: "+ds+"\n  namespace: "+ns, 1),
			"          command:", "          securityContext: {privileged: true}\n          command:", 1)
	out, errOut, err := h.cli(manifest, "apply", "-f", "-")
	if err == nil {
		t.Fatalf("apply of a privileged pod in a restricted namespace succeeded:\n%s", out)
	}
	const want = `spec.template.spec.containers[0].securityContext.privileged: violates PodSecurity "restricted:latest": privileged (container "main" must not set securityContext.privileged=true)`
	t.Logf("apply said:\n%s", errOut)
	if !strings.Contains(errOut, want) {
		t.Fatalf("apply said:\n%s%s\nwant a line with\n%s", out, errOut, want)
	}
	if _, _, err := h.cli("", "get", "namespace", ns); err == nil {
		t.Error("the namespace of the refused file was stored")
	}
	if _, _, err := h.cli("", "get", "daemonset", ds, "-n", ns); err == nil {
		t.Error("the refused DaemonSet was stored")
	}
}

// TestRestrictedExampleRuns applies manifests/examples/restricted-namespace.yaml
// (with the test registry's image): the restricted namespace admits its
// DaemonSet, and its pod runs as user 1000.
func TestRestrictedExampleRuns(t *testing.T) {
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "manifests", "examples", "restricted-namespace.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	example := strings.ReplaceAll(string(b), "127.0.0.1:5000/flotilla/hello:1.0", env.image)
	h := startHub(t, hubOptions{})
	a := startMetricsAgent(t, h, "--metrics-interval", "0s", "--label", "site=lab")
	h.applyYAML(example)
	var pod string
	eventually(t, 30*time.Second, "the example's pod running", func() error {
		for _, p := range h.pods() {
			if p.Namespace == "locked" && p.Spec.NodeName == a.node && p.Status.Phase == api.PodRunning {
				pod = p.Name
				return nil
			}
		}
		return fmt.Errorf("not running")
	})
	eventually(t, 30*time.Second, "the pod's output", func() error {
		out, errOut, err := h.cli("", "logs", pod, "-n", "locked")
		if err != nil || !strings.Contains(out, "uid=1000") {
			return fmt.Errorf("%v %q %s", err, out, errOut)
		}
		return nil
	})
}
