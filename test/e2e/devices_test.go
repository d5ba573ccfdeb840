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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// The board's devices end to end: a serial port made of a pseudo-terminal
// pair by socat (apt-get install socat), one end linked into the agent's
// dev root as ttyUSB0, the other read "on the board"; the real hub,
// agent, containerd and runc.

const serialResource = "devices.flotilla.io/serial"

// startDeviceAgent starts an agent as startAgent does, looking for devices
// under devRoot.
func startDeviceAgent(t *testing.T, h *hubProc, devRoot string) *agentProc {
	t.Helper()
	node := uniq("dev-")
	a := &agentProc{t: t, hub: h, node: node, ns: "e2e-" + node, stateDir: filepath.Join(env.dir, node), bin: env.agentBin}
	a.logPath = filepath.Join(env.dir, node+".log")
	a.args = []string{
		"--broker", h.MQTT, "--node-name", node,
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", env.reg.Addr,
		"--heartbeat-interval", "1s", "--resync-interval", "2s",
		"--dev-root", devRoot,
	}
	a.args = append(a.args, hostNetworkFlags...)
	a.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", a.node, a.proc.Logs())
		}
		_ = a.proc.Stop()
		removeAll(t, a.ns)
	})
	eventually(t, 20*time.Second, "node "+node+" Ready", func() error {
		if n := h.node(node); !n.IsReady() {
			return fmt.Errorf("node not ready: %+v", n.Status.Conditions)
		}
		return nil
	})
	return a
}

// serialPort is a pseudo-terminal pair joined by socat: what is written to
// one end (dev) arrives at the other (board), which the test reads from
// the start, as a program on the board would.
type serialPort struct {
	cmd        *exec.Cmd
	dev, board string // the links socat makes to the two ends
	pts        string // the pseudo-terminal dev leads to

	mu      sync.Mutex
	got     []byte // what arrived at the board's end
	arrived chan struct{}
}

// newSerialPort starts socat with its two ends linked at dev and board,
// and a reader of the board's end; it stops both when the test ends
// (socat by its process).
func newSerialPort(t *testing.T, dev, board string) *serialPort {
	t.Helper()
	if _, err := exec.LookPath("socat"); err != nil {
		t.Fatalf("socat is needed to make a serial port (apt-get install -y socat): %v", err)
	}
	p := &serialPort{dev: dev, board: board, arrived: make(chan struct{}, 1)}
	p.cmd = exec.Command("socat", "-d", "-d", "pty,raw,echo=0,link="+dev, "pty,raw,echo=0,link="+board)
	var out bytes.Buffer
	p.cmd.Stdout, p.cmd.Stderr = &out, &out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var f *os.File
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if f != nil {
			f.Close()
		}
		wg.Wait()
		if t.Failed() {
			t.Logf("--- socat\n%s", out.String())
		}
	})
	eventually(t, 10*time.Second, "socat's links", func() error {
		target, err := os.Readlink(dev)
		if err != nil {
			return err
		}
		if _, err := os.Stat(board); err != nil {
			return err
		}
		p.pts = target
		return nil
	})
	f, err := os.OpenFile(board, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			n, err := f.Read(buf)
			p.mu.Lock()
			p.got = append(p.got, buf[:n]...)
			p.mu.Unlock()
			select {
			case p.arrived <- struct{}{}:
			default:
			}
			if err != nil {
				return // closed at the end of the test
			}
		}
	}()
	return p
}

// mark is how much has arrived at the board's end so far.
func (p *serialPort) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// quiet waits until nothing has arrived at the board's end for half a
// second (what was written before is through) and returns the mark.
func (p *serialPort) quiet(t *testing.T) int {
	t.Helper()
	last, since := p.mark(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Since(since) < 500*time.Millisecond; time.Sleep(50 * time.Millisecond) {
		if m := p.mark(); m != last {
			last, since = m, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatal("the serial port never went quiet")
		}
	}
	return last
}

// waitFor waits until want arrives at the board's end after mark.
func (p *serialPort) waitFor(t *testing.T, want string, mark int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		got := string(p.got[mark:])
		p.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		select {
		case <-p.arrived:
		case <-deadline.C:
			t.Fatalf("%q never arrived at the board's end of the serial port; got %q", want, got)
		}
	}
}

// deviceDeployment renders a Deployment whose pod asks for one serial
// device and writes line to it every half second, at whatever path under
// /dev the board gave it.
func deviceDeployment(name, line string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: gateway
          image: %s
          command: ["sh", "-c", "while true; do for d in /dev/ttyUSB*; do echo %s > $d || echo write failed; done; sleep 0.5; done"]
          resources:
            limits:
              %s: 1
`, name, name, name, env.image, line, serialResource)
}

// appPod returns the pod of the Deployment app, or nil.
func appPod(pods []api.Pod, app string) *api.Pod {
	for i := range pods {
		if pods[i].Labels["app"] == app {
			return &pods[i]
		}
	}
	return nil
}

// unschedulable returns why a pod is not scheduled, "" if it is.
func unschedulable(p *api.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == "PodScheduled" && c.Status == api.ConditionFalse {
			return c.Message
		}
	}
	return ""
}

// apiGet decodes an object the hub's API serves at path.
func (h *hubProc) apiGet(path string, v any) error {
	resp, err := h.httpClient().Get(h.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// serialCount is the node's serial devices as the hub shows them.
func serialCount(h *hubProc, node string) (string, error) {
	var n api.Node
	if err := h.apiGet("/api/v1/nodes/"+node, &n); err != nil {
		return "", err
	}
	return string(n.Status.Allocatable[serialResource]), nil
}

// podRunning reports whether the pod of the Deployment app runs, as the
// hub shows it.
func podRunning(h *hubProc, app string) (bool, error) {
	var list struct{ Items []api.Pod }
	if err := h.apiGet("/api/v1/namespaces/default/pods", &list); err != nil {
		return false, err
	}
	p := appPod(list.Items, app)
	return p != nil && p.Status.Phase == api.PodRunning && len(p.Status.ContainerStatuses) == 1 &&
		p.Status.ContainerStatuses[0].State.Running != nil, nil
}

func waitSerialCount(t *testing.T, h *hubProc, node, want string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("node %s with %s %s", node, want, serialResource), func() error {
		got, err := serialCount(h, node)
		if err != nil || got != want {
			return fmt.Errorf("%s = %q (%v)", serialResource, got, err)
		}
		return nil
	})
}

// TestDevicesEndToEnd: a serial port plugged into a board is advertised
// in its node's capacity; a Pending pod that asks for it is scheduled
// there and writes to it from inside its container, which the board
// reads; a second pod asking for the only port stays Pending with
// Kubernetes' reason; `describe node` shows who holds it; pulling the
// port out lowers the capacity, warns the pod and stops its container;
// plugging it back in runs the pod again.
func TestDevicesEndToEnd(t *testing.T) {
	h := startHub(t, hubOptions{})
	devRoot := filepath.Join(env.dir, uniq("devroot-"))
	if err := os.MkdirAll(devRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	a := startDeviceAgent(t, h, devRoot)
	waitSerialCount(t, h, a.node, "0")

	// A pod that asks for the port before the board has one waits.
	h.applyYAML(deviceDeployment("modbus", "reading-1"))
	const want = "0/1 nodes are available: 1 Insufficient devices.flotilla.io/serial."
	eventually(t, 30*time.Second, "modbus Pending for want of a serial port", func() error {
		p := appPod(h.pods(), "modbus")
		if p == nil || p.Spec.NodeName != "" || unschedulable(p) != want {
			return fmt.Errorf("pod %+v", p)
		}
		return nil
	})

	// The adapter is plugged in.
	plugged := time.Now()
	port := newSerialPort(t, filepath.Join(devRoot, "ttyUSB0"), filepath.Join(env.dir, uniq("board-tty-")))
	waitSerialCount(t, h, a.node, "1")
	advertised := time.Since(plugged)
	eventually(t, 60*time.Second, "modbus Running", func() error {
		ok, err := podRunning(h, "modbus")
		if !ok {
			return fmt.Errorf("not running (%v)", err)
		}
		return nil
	})
	toRun := time.Since(plugged)
	t.Logf("device plugged in → advertised on the hub %s, → the Pending pod running %s", advertised.Round(time.Millisecond), toRun.Round(time.Millisecond))
	port.waitFor(t, "reading-1", 0, 30*time.Second)

	// describe node lists the port and its holder.
	modbus := appPod(h.pods(), "modbus")
	out := h.mustCLI("describe", "node", a.node)
	for _, line := range []string{"Devices:", "serial  ttyUSB0", "default/" + modbus.Name + " (gateway)", serialResource + "  1"} {
		if !strings.Contains(out, line) {
			t.Fatalf("describe node lacks %q:\n%s", line, out)
		}
	}

	// A second pod after the only port stays Pending, with the reason.
	h.applyYAML(deviceDeployment("second", "reading-2"))
	eventually(t, 30*time.Second, "second Pending for want of a free serial port", func() error {
		p := appPod(h.pods(), "second")
		if p == nil || p.Spec.NodeName != "" || unschedulable(p) != want {
			return fmt.Errorf("pod %+v", p)
		}
		return nil
	})

	// The adapter is pulled out (socat's pair stays; the node goes).
	if err := os.Remove(port.dev); err != nil {
		t.Fatal(err)
	}
	waitSerialCount(t, h, a.node, "0")
	eventually(t, 30*time.Second, "modbus warned and waiting for its device", func() error {
		var list struct{ Items []api.Event }
		h.getJSON(&list, "get", "events", "-A", "-o", "json")
		warned := false
		for _, e := range list.Items {
			if e.InvolvedObject.Name == modbus.Name && e.Type == api.EventWarning && e.Reason == "DeviceUnavailable" &&
				strings.Contains(e.Message, "ttyUSB0 (devices.flotilla.io/serial) is not on the node") {
				warned = true
			}
		}
		p := appPod(h.pods(), "modbus")
		if !warned || p == nil || len(p.Status.ContainerStatuses) != 1 {
			return fmt.Errorf("warned %v, pod %+v", warned, p)
		}
		if w := p.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "DeviceUnavailable" {
			return fmt.Errorf("modbus's container state %+v", p.Status.ContainerStatuses[0].State)
		}
		return nil
	})
	if n := len(running(t, a.ns)); n != 0 {
		t.Fatalf("%d containers still run without their device", n)
	}
	stopped := port.quiet(t) // nothing writes the port now

	// Plugged back in: the pod runs again, on the same port.
	if err := os.Symlink(port.pts, port.dev); err != nil {
		t.Fatal(err)
	}
	waitSerialCount(t, h, a.node, "1")
	eventually(t, 60*time.Second, "modbus Running again", func() error {
		p := appPod(h.pods(), "modbus")
		if p == nil || p.Status.Phase != api.PodRunning || p.Status.ContainerStatuses[0].State.Running == nil ||
			p.Status.ContainerStatuses[0].RestartCount < 1 {
			return fmt.Errorf("pod %+v", p)
		}
		return nil
	})
	port.waitFor(t, "reading-1", stopped, 30*time.Second)
	if p := appPod(h.pods(), "second"); p == nil || p.Spec.NodeName != "" {
		t.Fatalf("second %+v: the port is modbus's", p)
	}
}

// TestMeasureDeviceAppears measures, over several rounds, the time from a
// device node appearing under the agent's dev root to the node
// advertising it on the hub, and to a Pending pod that asked for it
// running there (polling the hub's API every 10 ms). A measurement, not a
// check:
//
//	FLOTILLA_MEASURE=1 go test -v -run TestMeasureDeviceAppears ./test/e2e/
func TestMeasureDeviceAppears(t *testing.T) {
	if os.Getenv("FLOTILLA_MEASURE") == "" {
		t.Skip("a measurement, not a check: set FLOTILLA_MEASURE=1 to run it")
	}
	const rounds = 10
	h := startHub(t, hubOptions{})
	devRoot := filepath.Join(env.dir, uniq("devroot-"))
	if err := os.MkdirAll(devRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	a := startDeviceAgent(t, h, devRoot)
	port := newSerialPort(t, filepath.Join(devRoot, "ttyUSB0"), filepath.Join(env.dir, uniq("board-tty-")))
	if err := os.Remove(port.dev); err != nil {
		t.Fatal(err)
	}
	waitSerialCount(t, h, a.node, "0")
	var toAdvertised, toRunning []time.Duration
	for i := range rounds {
		app := fmt.Sprintf("measure-%d", i)
		h.applyYAML(deviceDeployment(app, app))
		eventually(t, 30*time.Second, app+" Pending", func() error {
			if p := appPod(h.pods(), app); p == nil || unschedulable(p) == "" {
				return fmt.Errorf("pod %+v", p)
			}
			return nil
		})
		start := time.Now()
		if err := os.Symlink(port.pts, port.dev); err != nil {
			t.Fatal(err)
		}
		var adv time.Duration
		for deadline := start.Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if adv == 0 {
				if n, _ := serialCount(h, a.node); n == "1" {
					adv = time.Since(start)
				}
			}
			if ok, _ := podRunning(h, app); ok {
				if adv == 0 {
					adv = time.Since(start)
				}
				toRunning = append(toRunning, time.Since(start))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %s not running within 60 s", i, app)
			}
		}
		toAdvertised = append(toAdvertised, adv)
		h.mustCLI("delete", "deployment", app)
		eventually(t, 60*time.Second, app+" gone from the board", func() error {
			if p := appPod(h.pods(), app); p != nil {
				return fmt.Errorf("pod %s still there", p.Name)
			}
			if n := len(running(t, a.ns)); n != 0 {
				return fmt.Errorf("%d containers run", n)
			}
			return nil
		})
		if err := os.Remove(port.dev); err != nil {
			t.Fatal(err)
		}
		waitSerialCount(t, h, a.node, "0")
	}
	t.Logf("device appears → advertised on the hub: %s", spread(toAdvertised))
	t.Logf("device appears → Pending pod running:   %s", spread(toRunning))
}

// spread is "median M (min A, max B) over N" of samples.
func spread(samples []time.Duration) string {
	s := slices.Clone(samples)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("median %s (min %s, max %s) over %d", r(s[len(s)/2]), r(s[0]), r(s[len(s)-1]), len(s))
}

// deviceMounts returns, per container running in ns, the device paths
// bound under its /dev, as containerd has its spec.
func deviceMounts(t *testing.T, ns string) [][]string {
	t.Helper()
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 10*time.Second)
	defer cancel()
	var out [][]string
	for _, c := range running(t, ns) {
		ctr, err := client.LoadContainer(ctx, c.ID)
		if err != nil {
			continue
		}
		spec, err := ctr.Spec(ctx)
		if err != nil {
			continue
		}
		var devs []string
		for _, m := range spec.Mounts {
			if strings.HasPrefix(m.Destination, "/dev/tty") {
				devs = append(devs, m.Source)
			}
		}
		out = append(out, devs)
	}
	return out
}

// TestDevicesAcrossAnOfflineReboot: a pod keeps the device it holds when
// the board reboots while the hub is away, even where a fresh choice
// would differ: it got ttyUSB1 (the only port then), ttyUSB0 came later;
// after the reboot, without the hub, it runs again on ttyUSB1, and the
// hub, back, shows the same.
func TestDevicesAcrossAnOfflineReboot(t *testing.T) {
	h := startHub(t, hubOptions{})
	devRoot := filepath.Join(env.dir, uniq("devroot-"))
	if err := os.MkdirAll(devRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	a := startDeviceAgent(t, h, devRoot)
	port1 := newSerialPort(t, filepath.Join(devRoot, "ttyUSB1"), filepath.Join(env.dir, uniq("board-tty-")))
	waitSerialCount(t, h, a.node, "1")
	h.applyYAML(deviceDeployment("gw", "from-gw"))
	eventually(t, 60*time.Second, "gw Running", func() error {
		if ok, err := podRunning(h, "gw"); !ok {
			return fmt.Errorf("not running (%v)", err)
		}
		return nil
	})
	port1.waitFor(t, "from-gw", 0, 30*time.Second)
	port0 := newSerialPort(t, filepath.Join(devRoot, "ttyUSB0"), filepath.Join(env.dir, uniq("board-tty-")))
	waitSerialCount(t, h, a.node, "2")
	gw := appPod(h.pods(), "gw")

	// The hub goes away; the board loses power: the agent dies, and with
	// it every container's process.
	if err := h.proc.Stop(); err != nil {
		t.Fatal(err)
	}
	a.kill9()
	for _, c := range running(t, a.ns) {
		killTask(t, a.ns, c.ID)
	}
	eventually(t, 30*time.Second, "the board's containers dead", func() error {
		if n := len(running(t, a.ns)); n != 0 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	mark1, mark0 := port1.quiet(t), port0.mark()

	// It boots without the hub.
	a.start()
	eventually(t, 60*time.Second, "gw running again, without the hub", func() error {
		mounts := deviceMounts(t, a.ns)
		if len(mounts) != 1 || len(mounts[0]) != 1 || mounts[0][0] != port1.dev {
			return fmt.Errorf("running containers' devices %v, want [[%s]]", mounts, port1.dev)
		}
		return nil
	})
	port1.waitFor(t, "from-gw", mark1, 30*time.Second)
	if port0.mark() != mark0 {
		t.Fatalf("something wrote to ttyUSB0, which nobody holds")
	}

	// The hub is back: the node says the same.
	h.start()
	eventually(t, 60*time.Second, "the hub shows ttyUSB1 still gw's", func() error {
		var n api.Node
		if err := h.apiGet("/api/v1/nodes/"+a.node, &n); err != nil {
			return err
		}
		want := map[string]string{"ttyUSB0": "", "ttyUSB1": "default/" + gw.Name}
		got := map[string]string{}
		for _, d := range n.Status.Devices {
			got[d.Path] = d.Pod
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("devices %v, want %v", got, want)
		}
		return nil
	})
}

// TestDeviceDaemonSet: a DaemonSet whose pod asks for a serial port makes
// no pod on a board without one (the DaemonSet gets a FailedPlacement
// event naming the node), and one as soon as the board has one.
func TestDeviceDaemonSet(t *testing.T) {
	h := startHub(t, hubOptions{})
	devRoot := filepath.Join(env.dir, uniq("devroot-"))
	if err := os.MkdirAll(devRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	a := startDeviceAgent(t, h, devRoot)
	waitSerialCount(t, h, a.node, "0")
	ds := strings.Replace(strings.Replace(deviceDeployment("gateways", "from-ds"), "kind: Deployment", "kind: DaemonSet", 1), "  replicas: 1\n", "", 1)
	h.applyYAML(ds)
	want := fmt.Sprintf("failed to place pod on %q: Insufficient devices.flotilla.io/serial", a.node)
	eventually(t, 30*time.Second, "a FailedPlacement event", func() error {
		var list struct{ Items []api.Event }
		h.getJSON(&list, "get", "events", "-A", "-o", "json")
		for _, e := range list.Items {
			if e.InvolvedObject.Kind == api.KindDaemonSet && e.InvolvedObject.Name == "gateways" && e.Reason == "FailedPlacement" && e.Message == want {
				return nil
			}
		}
		return fmt.Errorf("events %+v", list.Items)
	})
	if p := appPod(h.pods(), "gateways"); p != nil {
		t.Fatalf("pod %s made for a node without the device", p.Name)
	}
	port := newSerialPort(t, filepath.Join(devRoot, "ttyUSB0"), filepath.Join(env.dir, uniq("board-tty-")))
	eventually(t, 60*time.Second, "the DaemonSet's pod Running", func() error {
		if ok, err := podRunning(h, "gateways"); !ok {
			return fmt.Errorf("not running (%v)", err)
		}
		return nil
	})
	port.waitFor(t, "from-ds", 0, 30*time.Second)
}
