package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// hubProc is a running `hub serve`.
type hubProc struct {
	t       *testing.T
	proc    *harness.Process
	dir     string
	URL     string // HTTP API
	MQTT    string // broker URL agents use
	args    []string
	logPath string
	tls     bool
}

type hubOptions struct {
	// broker is an external broker URL; empty runs the embedded one.
	broker string
	grace  time.Duration
	// mqttHost is where the embedded broker listens (default 127.0.0.1);
	// 0.0.0.0 lets agents in site namespaces reach it.
	mqttHost string
	// tls runs the hub as it runs by default: TLS, client certificates,
	// authenticated API (see security_test.go). Without it the hub runs
	// with --insecure.
	tls bool
	// dataTmpfs, if set, is the size of a tmpfs mounted for the hub's data
	// directory (see diskfull_test.go).
	dataTmpfs int64
	// extra are more `hub serve` flags.
	extra []string
}

var seq atomic.Int64

// uniq returns a short name unique within this test run.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, seq.Add(1))
}

func startHub(t *testing.T, o hubOptions) *hubProc {
	t.Helper()
	dir := filepath.Join(env.dir, uniq("hub"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	httpPort, _ := harness.FreePort()
	h := &hubProc{t: t, dir: dir, URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), logPath: filepath.Join(dir, "hub.log"), tls: o.tls}
	h.args = []string{"serve", "--data-dir", filepath.Join(dir, "data"), "--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort)}
	if o.dataTmpfs > 0 {
		mountTmpfs(t, filepath.Join(dir, "data"), o.dataTmpfs)
	}
	if o.tls {
		h.URL = fmt.Sprintf("https://127.0.0.1:%d", httpPort)
	} else {
		h.args = append(h.args, "--insecure")
	}
	if o.broker != "" {
		h.args = append(h.args, "--broker", o.broker)
		h.MQTT = o.broker
	} else {
		mqttPort, _ := harness.FreePort()
		host := o.mqttHost
		if host == "" {
			host = "127.0.0.1"
		}
		h.args = append(h.args, "--mqtt-listen", fmt.Sprintf("%s:%d", host, mqttPort))
		h.MQTT = fmt.Sprintf("tcp://127.0.0.1:%d", mqttPort)
		if o.tls {
			h.MQTT = fmt.Sprintf("ssl://127.0.0.1:%d", mqttPort)
		}
	}
	grace := o.grace
	if grace == 0 {
		grace = 5 * time.Second
	}
	h.args = append(h.args, "--node-grace-period", grace.String())
	h.args = append(h.args, o.extra...)
	h.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- hub log (tail)\n%s", h.proc.Logs())
		}
		_ = h.proc.Stop()
	})
	return h
}

func (h *hubProc) start() {
	h.t.Helper()
	p, err := harness.StartTiedProcess("hub", h.logPath, env.hubBin, h.args...)
	if err != nil {
		h.t.Fatal(err)
	}
	h.proc = p
	err = p.WaitReady(context.Background(), func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/healthz", nil)
		resp, err := h.httpClient().Do(req)
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
		h.t.Fatal(err)
	}
}

// restart stops (or kills) the hub and starts it again on the same data.
func (h *hubProc) restart(kill bool) {
	h.t.Helper()
	if kill {
		_ = h.proc.Kill()
	} else {
		_ = h.proc.Stop()
	}
	h.start()
}

// cli runs the hub CLI against this hub and returns stdout, stderr.
func (h *hubProc) cli(stdin string, args ...string) (string, string, error) {
	conn := []string{"--server", h.URL}
	if h.tls {
		conn = []string{"--config", filepath.Join(h.dir, "data", "admin.conf")}
	}
	cmd := exec.Command(env.hubBin, append(args, conn...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (h *hubProc) mustCLI(args ...string) string {
	h.t.Helper()
	out, errOut, err := h.cli("", args...)
	if err != nil {
		h.t.Fatalf("hub %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// applyYAML applies a manifest given as text.
func (h *hubProc) applyYAML(manifest string) {
	h.t.Helper()
	out, errOut, err := h.cli(manifest, "apply", "-f", "-")
	if err != nil {
		h.t.Fatalf("hub apply: %v\n%s%s", err, out, errOut)
	}
}

// pods lists every pod through the CLI.
func (h *hubProc) pods() []api.Pod {
	h.t.Helper()
	var list struct{ Items []api.Pod }
	h.getJSON(&list, "get", "pods", "-A", "-o", "json")
	return list.Items
}

// node returns a node as the hub shows it; a node the hub does not know
// yet comes back empty (not Ready).
func (h *hubProc) node(name string) *api.Node {
	h.t.Helper()
	var n api.Node
	out, _, err := h.cli("", "get", "node", name, "-o", "json")
	if err != nil {
		return &n
	}
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		h.t.Fatalf("hub get node %s: decode: %v\n%s", name, err, out)
	}
	return &n
}

func (h *hubProc) getJSON(v any, args ...string) {
	h.t.Helper()
	out := h.mustCLI(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		h.t.Fatalf("hub %s: decode: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// agentProc is a running edge-agent.
type agentProc struct {
	t    *testing.T
	hub  *hubProc
	proc *harness.Process
	node string
	// ns is the agent's own containerd namespace, so tests sharing the
	// daemon do not see each other's containers.
	ns       string
	stateDir string
	bin      string // the agent binary, or the wrapper that runs it in a site
	args     []string
	logPath  string
}

// hostNetworkFlags run an agent's pods on the host's network: the agents
// these tests start in the host's network namespace share it (with each
// other and with other packages' tests), and a namespace has one pod
// bridge and one Service rule table. The network tests give each board a
// namespace of its own instead.
var hostNetworkFlags = []string{"--pod-network=false", "--service-proxy=false", "--cluster-dns=false"}

func startAgent(t *testing.T, h *hubProc, labels ...string) *agentProc {
	t.Helper()
	node := uniq("node-")
	a := &agentProc{t: t, hub: h, node: node, ns: "e2e-" + node, stateDir: filepath.Join(env.dir, node), bin: env.agentBin}
	a.logPath = filepath.Join(env.dir, node+".log")
	a.args = []string{
		"--broker", h.MQTT, "--node-name", node,
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", env.reg.Addr,
		"--heartbeat-interval", "1s", "--resync-interval", "2s",
	}
	a.args = append(a.args, hostNetworkFlags...)
	for _, l := range labels {
		a.args = append(a.args, "--label", l)
	}
	a.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", a.node, a.proc.Logs())
		}
		_ = a.proc.Stop()
	})
	eventually(t, 20*time.Second, "node "+node+" Ready", func() error {
		n := h.node(node)
		if !n.IsReady() {
			return fmt.Errorf("node not ready: %+v", n.Status.Conditions)
		}
		return nil
	})
	return a
}

func (a *agentProc) start() {
	a.t.Helper()
	p, err := harness.StartTiedProcess("edge-agent", a.logPath, a.bin, a.args...)
	if err != nil {
		a.t.Fatal(err)
	}
	a.proc = p
}

// kill9 kills the agent as a power cut would.
func (a *agentProc) kill9() {
	a.t.Helper()
	if err := a.proc.Kill(); err != nil {
		a.t.Fatal(err)
	}
}

// container is a container as containerd itself reports it.
type container struct {
	ID        string
	Labels    map[string]string
	Status    containerd.ProcessStatus
	Pid       uint32
	Args      []string
	StartedAt string
}

// containers asks containerd, not the hub, what runs in ns.
func containers(t *testing.T, ns string) []container {
	t.Helper()
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 10*time.Second)
	defer cancel()
	cs, err := client.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []container
	for _, c := range cs {
		info, err := c.Info(ctx)
		if err != nil {
			continue // removed meanwhile
		}
		ct := container{ID: c.ID(), Labels: info.Labels, StartedAt: info.Labels["io.flotilla.container.started-at"]}
		if spec, err := c.Spec(ctx); err == nil && spec.Process != nil {
			ct.Args = spec.Process.Args
		}
		if task, err := c.Task(ctx, nil); err == nil {
			ct.Pid = task.Pid()
			if st, err := task.Status(ctx); err == nil {
				ct.Status = st.Status
			}
		}
		out = append(out, ct)
	}
	return out
}

// running returns the containers of ns whose task runs.
func running(t *testing.T, ns string) []container {
	var out []container
	for _, c := range containers(t, ns) {
		if c.Status == containerd.Running {
			out = append(out, c)
		}
	}
	return out
}

// killTask kills a container's task with SIGKILL, as a crash would.
func killTask(t *testing.T, ns, id string) {
	t.Helper()
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	c, err := client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(ctx, 9); err != nil {
		t.Fatal(err)
	}
}

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// daemonSet renders a DaemonSet manifest.
func daemonSet(name, image, selectorLabel string, command string) string {
	sel := ""
	if selectorLabel != "" {
		k, v, _ := strings.Cut(selectorLabel, "=")
		sel = fmt.Sprintf("      nodeSelector:\n        %s: %q\n", k, v)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
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
%s      terminationGracePeriodSeconds: 2
      containers:
        - name: main
          image: %s
          command: ["sh", "-c", %s]
`, name, name, name, sel, image, strconv.Quote(command))
}

// podOn returns the pod of the given DaemonSet on node, or nil.
func podOn(pods []api.Pod, ds, node string) *api.Pod {
	for i := range pods {
		p := &pods[i]
		if p.Spec.NodeName == node && p.Labels["app"] == ds {
			return p
		}
	}
	return nil
}
