package arm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
	"github.com/flotilla-edge/flotilla/test/images"
)

// imagePlatform is the platform each target's pods must get from the
// multi-arch index.
var imagePlatform = map[string]string{
	"amd64": "linux/amd64",
	"arm64": "linux/arm64",
	"armv7": "linux/arm/v7",
	"armv6": "linux/arm/v6",
}

// machine is what `uname -m` says in a container on each target's node.
// Containers run under qemu through binfmt_misc with qemu's default CPU,
// so an arm/v6 image on the armv6 node still says armv7l there; the
// armv6 check sets QEMU_CPU=arm1176 to run it on a Pi Zero's CPU.
var machine = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "armv7": "armv7l", "armv6": "armv7l"}

// TestEmulatedFleet runs the agent for amd64 natively and for arm64,
// armv7 and armv6 under qemu-user, all joined to one real hub and sharing
// the host's real containerd, and checks what runs inside the containers:
// a DaemonSet with nodeSelector kubernetes.io/arch: arm64 lands only on
// the arm64 node, single-arch arm64 and armhf images run on their nodes,
// and one multi-arch image (an OCI index of amd64, arm64, arm/v7 and
// arm/v6) runs its own variant on every node.
func TestEmulatedFleet(t *testing.T) {
	ctx := context.Background()
	refs := pushArchImages(t, ctx)
	h := startHub(t)
	agents := map[string]*agentProc{}
	for _, target := range targets {
		agents[target] = startAgent(t, h, target)
	}
	for _, target := range targets {
		a := agents[target]
		waitFor(t, 60*time.Second, "node "+a.node+" Ready", func() error {
			n := h.node(a.node)
			if !n.IsReady() {
				return fmt.Errorf("not ready: %+v", n.Status.Conditions)
			}
			return nil
		})
	}

	t.Run("node facts", func(t *testing.T) {
		wantArch := map[string]string{"amd64": "amd64", "arm64": "arm64", "armv7": "arm", "armv6": "arm"}
		wantVariant := map[string]string{"armv7": "v7", "armv6": "v6"}
		for _, target := range targets {
			n := h.node(agents[target].node)
			if got := n.Labels[api.LabelArch]; got != wantArch[target] {
				t.Errorf("%s: label %s=%q, want %q", target, api.LabelArch, got, wantArch[target])
			}
			if got := n.Status.NodeInfo.Variant; got != wantVariant[target] {
				t.Errorf("%s: nodeInfo.variant %q, want %q", target, got, wantVariant[target])
			}
			if got := n.Status.NodeInfo.AgentVersion; got != buildVersion {
				t.Errorf("%s: agent version %q, want %q", target, got, buildVersion)
			}
		}
	})

	// The script every pod runs: say which image variant it got and what
	// machine it runs on, then stay up.
	const script = `echo "platform=$IMAGE_PLATFORM machine=$(uname -m)"; sleep 3600`

	t.Run("nodeSelector arm64", func(t *testing.T) {
		h.apply(daemonSet("only-arm64", refs["arm64"], map[string]string{api.LabelArch: "arm64"}, nil, script))
		waitLogs(t, h, agents, "only-arm64", map[string]string{"arm64": "platform=linux/arm64 machine=aarch64"})
	})

	t.Run("armhf image on the armv7 node", func(t *testing.T) {
		h.apply(daemonSet("only-armv7", refs["armv7"], map[string]string{"flotilla.test/board": "armv7"}, nil, script))
		waitLogs(t, h, agents, "only-armv7", map[string]string{"armv7": "platform=linux/arm/v7 machine=armv7l"})
	})

	t.Run("multi-arch index", func(t *testing.T) {
		h.apply(daemonSet("multi", refs["index"], nil, nil, script))
		want := map[string]string{}
		for _, target := range targets {
			want[target] = fmt.Sprintf("platform=%s machine=%s", imagePlatform[target], machine[target])
		}
		waitLogs(t, h, agents, "multi", want)
	})

	t.Run("armv6 variant on an ARM1176", func(t *testing.T) {
		// The same index on the armv6 node, its container emulated on the
		// Raspberry Pi Zero's CPU: the arm/v6 (armel) busybox runs there.
		h.apply(daemonSet("multi-v6cpu", refs["index"], map[string]string{"flotilla.test/board": "armv6"},
			map[string]string{"QEMU_CPU": "arm1176"}, script))
		waitLogs(t, h, agents, "multi-v6cpu", map[string]string{"armv6": "platform=linux/arm/v6 machine=armv6l"})
	})
}

// pushArchImages pushes single-arch busybox images for arm64 and armv7
// and one multi-arch index of all four targets. Each image carries
// IMAGE_PLATFORM in its environment, so a container says which variant
// the agent picked.
func pushArchImages(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	plat := map[string]string{"amd64": "amd64", "arm64": "arm64", "armv7": "arm/v7", "armv6": "arm/v6"}
	var all []v1.Image
	refs := map[string]string{}
	for _, target := range targets {
		var opts []images.Option
		if target != "amd64" {
			opts = append(opts, images.WithBusybox(env.busybox[target]))
		}
		img, err := images.BuildBusybox(plat[target], opts...)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Config
		c.Env = append(append([]string{}, c.Env...), "IMAGE_PLATFORM="+imagePlatform[target])
		if img, err = mutate.Config(img, c); err != nil {
			t.Fatal(err)
		}
		all = append(all, img)
		refs[target] = fmt.Sprintf("%s/arm/busybox:%s", env.reg.Addr, target)
		if _, err := images.Push(ctx, img, refs[target]); err != nil {
			t.Fatal(err)
		}
	}
	idx, err := images.Index(all...)
	if err != nil {
		t.Fatal(err)
	}
	refs["index"] = env.reg.Addr + "/arm/busybox:multi"
	if _, err := images.PushIndex(ctx, idx, refs["index"]); err != nil {
		t.Fatal(err)
	}
	return refs
}

// waitLogs waits until the DaemonSet ds has exactly one pod on each node
// in want (and none elsewhere), each Running, and each pod's container
// log holds want[target].
func waitLogs(t *testing.T, h *hubProc, agents map[string]*agentProc, ds string, want map[string]string) {
	t.Helper()
	waitFor(t, 90*time.Second, ds+" running where it should, and only there", func() error {
		pods := h.pods()
		for _, target := range targets {
			a := agents[target]
			var mine []api.Pod
			for _, p := range pods {
				if p.Labels["app"] == ds && p.Spec.NodeName == a.node {
					mine = append(mine, p)
				}
			}
			line, wanted := want[target]
			if !wanted {
				if len(mine) != 0 {
					return fmt.Errorf("%s has a pod on the %s node, which its selector excludes", ds, target)
				}
				continue
			}
			if len(mine) != 1 || mine[0].Status.Phase != api.PodRunning {
				return fmt.Errorf("%s on the %s node: %d pods %+v", ds, target, len(mine), phases(mine))
			}
			logs := a.containerLogs(ds)
			if !strings.Contains(logs, line) {
				return fmt.Errorf("%s on the %s node: container log %q lacks %q", ds, target, logs, line)
			}
		}
		return nil
	})
	for target, line := range want {
		t.Logf("%s on %s: %s", ds, target, line)
	}
}

func phases(pods []api.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name+":"+string(p.Status.Phase))
	}
	return out
}

// hubProc is a running `hub serve` with its embedded broker.
type hubProc struct {
	t    *testing.T
	proc *harness.Process
	URL  string
	MQTT string
	bin  string
}

func startHub(t *testing.T) *hubProc {
	t.Helper()
	dir := t.TempDir()
	httpPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	mqttPort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	h := &hubProc{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), MQTT: fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort),
		bin: filepath.Join(env.dist, "hub-linux-amd64")}
	p, err := harness.StartProcess("hub", filepath.Join(dir, "hub.log"), h.bin, "serve", "--insecure",
		"--data-dir", filepath.Join(dir, "data"), "--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", mqttPort), "--node-grace-period", "20s")
	if err != nil {
		t.Fatal(err)
	}
	h.proc = p
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hub log (tail)\n%s", p.Logs())
		}
		_ = p.Stop()
	})
	err = p.WaitReady(context.Background(), func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hubProc) cli(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append(args, "--server", h.URL)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("hub %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (h *hubProc) apply(manifest string) {
	h.t.Helper()
	if _, err := h.cli(manifest, "apply", "-f", "-"); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hubProc) pods() []api.Pod {
	h.t.Helper()
	out, err := h.cli("", "get", "pods", "-A", "-o", "json")
	if err != nil {
		h.t.Fatal(err)
	}
	var list struct{ Items []api.Pod }
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		h.t.Fatalf("decode pods: %v\n%s", err, out)
	}
	return list.Items
}

// node returns the node as the hub shows it, empty if unknown yet.
func (h *hubProc) node(name string) *api.Node {
	var n api.Node
	out, err := h.cli("", "get", "node", name, "-o", "json")
	if err == nil {
		_ = json.Unmarshal([]byte(out), &n)
	}
	return &n
}

// agentProc is an edge agent for one target.
type agentProc struct {
	target   string
	node     string
	ns       string
	stateDir string
	proc     *harness.Process
}

// startAgent starts target's agent against h, with a 2 s heartbeat and a
// 3 s resync so that tests see changes quickly.
func startAgent(t *testing.T, h *hubProc, target string) *agentProc {
	t.Helper()
	return startAgentWith(t, h, target, nil, "--heartbeat-interval", "2s", "--resync-interval", "3s")
}

// startAgentWith starts target's agent against h with env added to its
// environment and extra flags; otherwise at the agent's own defaults.
func startAgentWith(t *testing.T, h *hubProc, target string, environ []string, extra ...string) *agentProc {
	t.Helper()
	a := &agentProc{target: target, node: "arm-" + target, ns: "armtest-" + target, stateDir: filepath.Join(t.TempDir(), "state")}
	argv := agentCommand(target, append([]string{
		"--broker", h.MQTT, "--node-name", a.node,
		"--label", "flotilla.test/board=" + target,
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", env.reg.Addr,
		// The boards of this rig share the host's network namespace, so
		// their pods do too (one bridge, one rule table per namespace).
		"--pod-network=false", "--service-proxy=false", "--cluster-dns=false"}, append(seccompFlags(target), extra...)...)...)
	p, err := harness.StartProcessEnv("edge-agent-"+target, filepath.Join(filepath.Dir(a.stateDir), "agent.log"), environ, argv[0], argv[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	a.proc = p
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", target, p.Logs())
		}
		_ = p.Stop()
		// The namespace's containers go with the test.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := env.ctd.Cleanup(ctx); err != nil {
			t.Log(err)
		}
		// The pods' network namespaces, bound under the state
		// directory, which the test's temporary directory holds.
		if err := harness.UnmountUnder(a.stateDir); err != nil {
			t.Log(err)
		}
	})
	return a
}

// seccompFlags are the flags an agent of target needs for seccomp: one
// run under qemu-user would build containerd's default seccomp profile
// for its own architecture, not the host kernel's, and the profile would
// refuse the host's system calls to the emulator in every container
// (qemu's arch_prctl first); so its containers name no default profile.
func seccompFlags(target string) []string {
	if target == "amd64" {
		return nil
	}
	return []string{"--seccomp-default=false"}
}

// containerLogs returns the newest log of the first container of ds's
// pod on this node, read from the agent's log directory
// ({state-dir}/logs/{namespace}_{pod}_{uid}/{container}/{restart}.log).
func (a *agentProc) containerLogs(ds string) string {
	files, _ := filepath.Glob(filepath.Join(a.stateDir, "logs", "default_"+ds+"-*", "*", "*.log"))
	sort.Slice(files, func(i, j int) bool { return restartOf(files[i]) < restartOf(files[j]) })
	if len(files) == 0 {
		return ""
	}
	b, _ := os.ReadFile(files[len(files)-1])
	return string(b)
}

func restartOf(path string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(filepath.Base(path), ".log"))
	return n
}

// daemonSet renders a DaemonSet running sh -c script.
func daemonSet(name, image string, selector, envVars map[string]string, script string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: %s
spec:
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 1
`, name, name, name)
	if len(selector) > 0 {
		b.WriteString("      nodeSelector:\n")
		for k, v := range selector {
			fmt.Fprintf(&b, "        %s: %q\n", k, v)
		}
	}
	fmt.Fprintf(&b, `      containers:
        - name: main
          image: %s
          command: ["sh", "-c", %s]
`, image, strconv.Quote(script))
	if len(envVars) > 0 {
		b.WriteString("          env:\n")
		for k, v := range envVars {
			fmt.Fprintf(&b, "            - {name: %s, value: %q}\n", k, v)
		}
	}
	return b.String()
}

// waitFor retries check until it returns nil or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
