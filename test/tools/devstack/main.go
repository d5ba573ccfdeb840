// Command devstack is the quick start behind `make up` and `make down`: it
// runs a whole one-machine fleet (containerd if none is running, a local OCI
// registry holding a locally built image, the hub with its embedded broker,
// and an edge agent), applies the example DaemonSet, waits until its pod
// runs, and later stops everything it started. State, pid files and logs
// live in .flotilla/ under the current directory.
//
//	go run ./test/tools/devstack up      # start and apply the example
//	go run ./test/tools/devstack status  # what is running
//	go run ./test/tools/devstack down    # stop it all and remove its containers
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
	"github.com/flotilla-edge/flotilla/test/images"
)

// Fixed addresses of the quick start; the example manifest names the
// registry's address in its image.
const (
	stateDir       = ".flotilla"
	registryAddr   = "127.0.0.1:5000"
	httpAddr       = "127.0.0.1:8443"
	mqttAddr       = "127.0.0.1:8883"
	exampleImage   = registryAddr + "/flotilla/hello:1.0"
	exampleFile    = "manifests/examples/hello-daemonset.yaml"
	systemSocket   = "/run/containerd/containerd.sock"
	agentNamespace = "flotilla"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: devstack up|down|status")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up()
	case "down":
		err = down()
	case "status":
		err = status()
	default:
		err = fmt.Errorf("unknown command %q: want up, down or status", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func path(parts ...string) string { return filepath.Join(append([]string{stateDir}, parts...)...) }

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

// The daemons the quick start may run, in start order.
var daemons = []string{"containerd", "registry", "hub", "edge-agent"}

func up() error {
	if os.Geteuid() != 0 {
		return errors.New("the quick start runs containerd containers and needs root: run it with sudo")
	}
	for _, bin := range []string{"bin/hub", "bin/edge-agent"} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%s is missing: run `make build` (or `make up`) first", bin)
		}
	}
	if running := alive(); len(running) > 0 {
		say("already up (%s); `make down` stops it", strings.Join(running, ", "))
		return status()
	}
	if err := os.MkdirAll(path("pids"), 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	socket, err := ensureContainerd(ctx)
	if err != nil {
		return err
	}
	if err := checkFree(registryAddr, httpAddr, mqttAddr); err != nil {
		return err
	}

	say("starting a local OCI registry on %s", registryAddr)
	reg, err := harness.StartRegistryAt(ctx, path("registry"), registryAddr)
	if err != nil {
		return err
	}
	writePid("registry", reg.Pid())

	say("building the example image from this machine's busybox and pushing %s", exampleImage)
	img, err := images.BuildBusybox("amd64")
	if err != nil {
		return fmt.Errorf("build the example image: %w", err)
	}
	if _, err := images.Push(ctx, img, exampleImage); err != nil {
		return fmt.Errorf("push the example image: %w", err)
	}

	say("starting the hub (HTTP API %s, embedded MQTT broker %s, store %s)", httpAddr, mqttAddr, path("hub"))
	hub, err := harness.StartProcess("hub", path("hub.log"), "bin/hub", "serve",
		"--data-dir", path("hub"), "--http-listen", httpAddr, "--mqtt-listen", mqttAddr)
	if err != nil {
		return err
	}
	writePid("hub", hub.Pid())
	if err := hub.WaitReady(ctx, httpOK("https://"+httpAddr+"/healthz")); err != nil {
		return err
	}
	if err := installClientConfig(); err != nil {
		return err
	}
	out, err := exec.Command("bin/hub", "token", "create", "-q", "--ttl", "10m", "--config", path("hub", "admin.conf")).Output()
	tok := strings.Fields(string(out))
	if err != nil || len(tok) != 2 {
		return fmt.Errorf("create a bootstrap token: %v %q", err, out)
	}

	node, _ := os.Hostname()
	node = strings.ToLower(node)
	if err := writeTokenFile(path(tokenFile), tok[0]); err != nil {
		return err
	}
	say("starting an edge agent for node %q on containerd %s; it enrols with a bootstrap token (from %s) and connects over mutual TLS", node, socket, path(tokenFile))
	agent, err := harness.StartProcess("edge-agent", path("edge-agent.log"), "bin/edge-agent", agentArgs(node, socket, path(tokenFile), tok[1])...)
	if err != nil {
		return err
	}
	writePid("edge-agent", agent.Pid())
	if err := agent.WaitReady(ctx, nodeReady(node)); err != nil {
		return err
	}
	// Enrolled: the agent has its certificate, and the token was for one
	// node only.
	_ = os.Remove(path(tokenFile))

	say("applying %s", exampleFile)
	if err := hubCLI("apply", "-f", exampleFile); err != nil {
		return err
	}
	say("waiting for its pod to run")
	if err := agent.WaitReady(ctx, podRunning(node)); err != nil {
		return err
	}
	fmt.Println()
	_ = hubCLI("get", "nodes")
	fmt.Println()
	_ = hubCLI("get", "pods", "-o", "wide")
	fmt.Printf(`
The fleet is up. Try:
  bin/hub get ds
  bin/hub describe node %s
  bin/hub label node %s site-        # the pod leaves the node
  bin/hub label node %s site=lab     # and comes back
Logs are in %s/*.log. Stop everything with: make down
`, node, node, node, stateDir)
	return nil
}

// tokenFile holds the bootstrap token under the state directory until the
// agent enrolled.
const tokenFile = "agent-token"

// writeTokenFile writes the bootstrap token for the agent's --token-file,
// readable by its owner only: on the command line every user would see it
// in ps.
func writeTokenFile(file, token string) error {
	_ = os.Remove(file) // WriteFile keeps the mode of a file that exists
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the bootstrap token: %w", err)
	}
	return nil
}

// agentArgs is the agent's command line. It names the token's file, not
// the token.
func agentArgs(node, socket, tokenFile, caFingerprint string) []string {
	return []string{
		"--hub", "https://" + httpAddr, "--token-file", tokenFile, "--ca-fingerprint", caFingerprint,
		"--broker", "ssl://" + mqttAddr, "--node-name", node, "--label", "site=lab",
		"--containerd-socket", socket, "--containerd-namespace", agentNamespace,
		"--state-dir", path("agent"), "--insecure-registry", registryAddr,
	}
}

// ensureContainerd returns the socket of a running containerd, starting one
// under .flotilla/ if the machine has none.
func ensureContainerd(ctx context.Context) (string, error) {
	if containerdServes(ctx, systemSocket) {
		say("using the containerd already running at %s", systemSocket)
		return systemSocket, nil
	}
	say("no containerd running: starting one under %s", path("containerd"))
	c, err := harness.StartContainerd(ctx, path("containerd"))
	if err != nil {
		return "", err
	}
	writePid("containerd", c.Pid())
	if err := os.WriteFile(path("containerd.socket"), []byte(c.Socket), 0o644); err != nil {
		return "", err
	}
	return c.Socket, nil
}

func containerdServes(ctx context.Context, socket string) bool {
	if _, err := os.Stat(socket); err != nil {
		return false
	}
	client, err := containerd.New(socket, containerd.WithTimeout(2*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		return false
	}
	defer client.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ok, err := client.IsServing(cctx)
	return err == nil && ok
}

// checkFree fails, naming the address, if something already listens there.
func checkFree(addrs ...string) error {
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is in use (%v): stop what listens there, or `make down` a previous quick start", a, err)
		}
		l.Close()
	}
	return nil
}

// clientConfigMarker marks a ~/.flotilla/config that devstack wrote, so
// that `make down` removes only its own.
const clientConfigMarker = "# written by make up (test/tools/devstack)\n"

// clientConfigPath is where the hub CLI finds its settings by default.
func clientConfigPath() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".flotilla", "config")
}

// installClientConfig copies the hub's admin.conf to ~/.flotilla/config,
// where `bin/hub` finds it, unless the user has a config of their own.
func installClientConfig() error {
	dst := clientConfigPath()
	if b, err := os.ReadFile(dst); err == nil && !strings.HasPrefix(string(b), clientConfigMarker) {
		say("keeping your %s; use bin/hub --config %s", dst, path("hub", "admin.conf"))
		return nil
	}
	b, err := os.ReadFile(path("hub", "admin.conf"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	say("wrote %s (the hub's URL, CA and admin token) for bin/hub", dst)
	return os.WriteFile(dst, append([]byte(clientConfigMarker), b...), 0o600)
}

// removeClientConfig removes ~/.flotilla/config if devstack wrote it.
func removeClientConfig() {
	dst := clientConfigPath()
	if b, err := os.ReadFile(dst); err == nil && strings.HasPrefix(string(b), clientConfigMarker) {
		_ = os.Remove(dst)
		_ = os.Remove(filepath.Dir(dst)) // only if empty
	}
}

// apiClient trusts the hub CA and sends the admin token, read from the
// hub's admin.conf.
func apiClient() (*http.Client, string) {
	var cfg struct {
		CA    string `json:"certificate-authority-data"`
		Token string `json:"token"`
	}
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(path("hub", "admin.conf")); err == nil && yaml.Unmarshal(b, &cfg) == nil {
		if pemBytes, err := base64.StdEncoding.DecodeString(cfg.CA); err == nil {
			pool.AppendCertsFromPEM(pemBytes)
		}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, cfg.Token
}

func httpOK(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		// Before the hub wrote its CA there is nothing to check it with;
		// the health check carries no secret.
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
}

func getJSON(ctx context.Context, url string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	c, token := apiClient()
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func nodeReady(node string) func(context.Context) error {
	return func(ctx context.Context) error {
		var n api.Node
		if err := getJSON(ctx, "https://"+httpAddr+"/api/v1/nodes/"+node, &n); err != nil {
			return fmt.Errorf("node %s: %w", node, err)
		}
		if !n.IsReady() {
			return fmt.Errorf("node %s not ready", node)
		}
		return nil
	}
}

func podRunning(node string) func(context.Context) error {
	return func(ctx context.Context) error {
		var list struct{ Items []api.Pod }
		if err := getJSON(ctx, "https://"+httpAddr+"/api/v1/pods?fieldSelector=spec.nodeName%3D"+node, &list); err != nil {
			return err
		}
		for _, p := range list.Items {
			if p.Status.Phase == api.PodRunning {
				return nil
			}
		}
		return errors.New("no pod running yet")
	}
}

func hubCLI(args ...string) error {
	cmd := exec.Command("bin/hub", append(args, "--config", path("hub", "admin.conf"))...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func writePid(name string, pid int) {
	_ = os.WriteFile(path("pids", name+".pid"), []byte(strconv.Itoa(pid)), 0o644)
}

func readPid(name string) int {
	b, err := os.ReadFile(path("pids", name+".pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

// alive lists the quick start's daemons that run.
func alive() []string {
	var out []string
	for _, d := range daemons {
		if processAlive(readPid(d)) {
			out = append(out, d)
		}
	}
	return out
}

func status() error {
	for _, d := range daemons {
		pid := readPid(d)
		switch {
		case pid == 0 && d == "containerd":
			fmt.Printf("  %-11s not started by the quick start (a running containerd was used, if any)\n", d)
		case pid == 0:
			fmt.Printf("  %-11s not started\n", d)
		case processAlive(pid):
			fmt.Printf("  %-11s running (pid %d)\n", d, pid)
		default:
			fmt.Printf("  %-11s stopped (pid %d gone)\n", d, pid)
		}
	}
	return nil
}

func down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if processAlive(readPid("hub")) && processAlive(readPid("edge-agent")) {
		say("deleting the example DaemonSet, so the agent stops its pod gracefully")
		_ = hubCLI("delete", "-f", exampleFile, "--ignore-not-found")
	}
	socket := systemSocket
	if b, err := os.ReadFile(path("containerd.socket")); err == nil {
		socket = strings.TrimSpace(string(b))
	}
	// Wait (bounded) for the agent to remove the pod, then stop the agent
	// and remove anything it left in its namespace.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && processAlive(readPid("edge-agent")) {
		if n, err := countContainers(ctx, socket); err != nil || n == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, d := range []string{"edge-agent", "hub", "registry"} {
		stopPid(d)
	}
	if err := removeContainers(ctx, socket); err != nil {
		fmt.Fprintln(os.Stderr, "devstack: remove containers:", err)
	}
	if readPid("containerd") != 0 {
		stopPid("containerd")
		c := &harness.Containerd{Dir: path("containerd"), Socket: socket}
		if err := c.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "devstack: clean up containerd:", err)
		}
	}
	for _, dir := range []string{"pids", "hub", "agent", "registry", "containerd", "containerd.socket", tokenFile} {
		_ = os.RemoveAll(path(dir))
	}
	removeClientConfig()
	say("stopped; logs are kept in %s/*.log", stateDir)
	return nil
}

// stopPid sends SIGTERM to a daemon's process group, then SIGKILL after 10 s.
func stopPid(name string) {
	pid := readPid(name)
	if !processAlive(pid) {
		return
	}
	say("stopping %s (pid %d)", name, pid)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		reap(pid)
	}
	if processAlive(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	_ = os.Remove(path("pids", name+".pid"))
}

// reap collects the exit status of a child of this process, if it is one.
func reap(pid int) {
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
}

func withClient(ctx context.Context, socket string, fn func(ctx context.Context, c *containerd.Client) error) error {
	if !containerdServes(ctx, socket) {
		return nil
	}
	client, err := containerd.New(socket, containerd.WithTimeout(5*time.Second), containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		return err
	}
	defer client.Close()
	return fn(namespaces.WithNamespace(ctx, agentNamespace), client)
}

func countContainers(ctx context.Context, socket string) (int, error) {
	n := 0
	err := withClient(ctx, socket, func(ctx context.Context, c *containerd.Client) error {
		cs, err := c.Containers(ctx)
		n = len(cs)
		return err
	})
	return n, err
}

// removeContainers deletes every container left in the agent's namespace.
func removeContainers(ctx context.Context, socket string) error {
	return withClient(ctx, socket, func(ctx context.Context, c *containerd.Client) error {
		cs, err := c.Containers(ctx)
		if err != nil {
			return err
		}
		for _, ctr := range cs {
			if task, err := ctr.Task(ctx, nil); err == nil {
				if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
					return err
				}
			}
			if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
				return err
			}
		}
		return nil
	})
}
