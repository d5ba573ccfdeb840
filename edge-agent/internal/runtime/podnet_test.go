package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	ossignal "os/signal"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/network"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/state"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The pod network against the real containerd and the real CNI plugins
// (Debian's containernetworking-plugins in /usr/lib/cni). A "pod agent"
// is the part of the agent that makes pods: the reconciler on this
// package's runtime and package network, reading its desired snapshot
// from a file and writing its status reports to another. The node's side
// of the network (bridge, routes, the plugins' host side) lives in a
// network namespace the test makes, so the machine's own is untouched;
// the pods' namespaces are bound under the agent's state directory, as
// on a board. The churn test runs the pod agent in a child process (this
// test binary, FLOTILLA_PODNET_AGENT set), to kill it with SIGKILL.

const (
	podnetNamespace = "flotilla-podnet"
	podnetCIDR      = "198.19.7.0/24"
	childEnv        = "FLOTILLA_PODNET_AGENT"
)

// podAgentConfig is what a pod agent needs; a child gets it as JSON in
// its environment.
type podAgentConfig struct {
	Socket, Registry, Dir, NodeNS string
}

func (c podAgentConfig) desiredPath() string { return filepath.Join(c.Dir, "desired.json") }
func (c podAgentConfig) reportPath() string  { return filepath.Join(c.Dir, "report.json") }
func (c podAgentConfig) netDir() string      { return filepath.Join(c.Dir, "network") }

// runPodAgent runs a pod agent until ctx ends.
func runPodAgent(ctx context.Context, cfg podAgentConfig, log *slog.Logger) error {
	rt, err := New(ctx, Options{Socket: cfg.Socket, Namespace: podnetNamespace, InsecureRegistries: []string{cfg.Registry}})
	if err != nil {
		return err
	}
	defer rt.Close()
	fd, err := unix.Open(cfg.NodeNS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open node namespace: %w", err)
	}
	defer unix.Close(fd)
	nw, err := network.New(network.Config{Dir: cfg.netDir(), Logger: log}, network.WithNetNS(fd))
	if err != nil {
		return err
	}
	rec := reconcile.New(reconcile.Config{
		Runtime: rt,
		History: state.NewMemory(),
		Desired: func() (wire.Snapshot, error) {
			var snap wire.Snapshot
			b, err := os.ReadFile(cfg.desiredPath())
			if errors.Is(err, os.ErrNotExist) {
				return snap, nil
			}
			if err != nil {
				return snap, err
			}
			return snap, json.Unmarshal(b, &snap)
		},
		Report: func(r wire.PodStatusReport) {
			b, _ := json.Marshal(r)
			tmp := cfg.reportPath() + ".tmp"
			if os.WriteFile(tmp, b, 0o644) == nil {
				_ = os.Rename(tmp, cfg.reportPath())
			}
		},
		Network: nw, DataDir: cfg.Dir, HostIP: "198.18.0.2",
		Resync: 100 * time.Millisecond, Logger: log,
	})
	return rec.Run(ctx)
}

// podAgentChild is the child process's main: it runs until SIGTERM (or
// the SIGKILL the test sends).
func podAgentChild() int {
	var cfg podAgentConfig
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "pod agent: config:", err)
		return 2
	}
	ctx, stop := ossignal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := runPodAgent(ctx, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "pod agent:", err)
		return 1
	}
	return 0
}

// podnetSite is a node namespace and a pod agent's directory.
type podnetSite struct {
	cfg    podAgentConfig
	nodeNS string
	nodeFD int
}

func newPodnetSite(t *testing.T) *podnetSite {
	t.Helper()
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(network.DefaultBinDir, p)); err != nil {
			t.Fatalf("CNI plugin %s missing: apt-get install containernetworking-plugins", p)
		}
	}
	name := fmt.Sprintf("frt%d-%s", os.Getpid()%100000, uniqueID("n")[2:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	dir, err := os.MkdirTemp("", "flotilla-podnet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &podnetSite{nodeNS: "/run/netns/" + name, nodeFD: fd,
		cfg: podAgentConfig{Socket: env.ctd.Socket, Registry: env.registry.Addr, Dir: dir, NodeNS: "/run/netns/" + name}}
	s.setDesired(t, nil)
	return s
}

func (s *podnetSite) setDesired(t *testing.T, pods []wire.SnapshotPod) {
	t.Helper()
	snap := wire.Snapshot{Node: "node", Revision: uint64(time.Now().UnixNano()), Pods: pods,
		Network: &wire.Network{PodCIDR: podnetCIDR, ClusterCIDR: "198.19.0.0/16", ServiceCIDR: "198.18.200.0/24", ClusterDomain: "cluster.local"}}
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	tmp := s.cfg.desiredPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.cfg.desiredPath()); err != nil {
		t.Fatal(err)
	}
}

// startInProcess runs a pod agent in this process until the test ends.
func (s *podnetSite) startInProcess(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runPodAgent(ctx, s.cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pod agent: %v", err)
		}
	})
}

// report reads the pod agent's last status report.
func (s *podnetSite) report() (wire.PodStatusReport, error) {
	var r wire.PodStatusReport
	b, err := os.ReadFile(s.cfg.reportPath())
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

// waitPod waits until pod uid is Running with every container ready, and
// returns its status.
func (s *podnetSite) waitPod(t *testing.T, uid string, cond func(api.PodStatus) bool) api.PodStatus {
	t.Helper()
	var st api.PodStatus
	waitFor(t, time.Minute, "pod "+uid, func() (bool, error) {
		r, err := s.report()
		if err != nil {
			return false, err
		}
		for _, p := range r.Pods {
			if p.UID == uid {
				st = p.Status
				return cond(st), fmt.Errorf("status %+v", st)
			}
		}
		return false, errors.New("not reported")
	})
	return st
}

func running(st api.PodStatus) bool {
	if st.Phase != api.PodRunning || st.PodIP == "" {
		return false
	}
	for _, c := range st.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

// inNode runs f on a thread in the node's namespace.
func (s *podnetSite) inNode(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Setns(s.nodeFD, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// get fetches http://addr/ from the node's namespace.
func (s *podnetSite) get(addr string) (string, error) {
	var out string
	err := s.inNode(func() error {
		c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
		b, err := io.ReadAll(bufio.NewReader(c))
		out = string(b)
		return err
	})
	return out, err
}

// leftovers lists what of the pod network is left on the node: addresses
// host-local holds, namespaces, records, veths on the bridge.
func (s *podnetSite) leftovers(t *testing.T) []string {
	t.Helper()
	var left []string
	ipam, _ := os.ReadDir(filepath.Join(s.cfg.netDir(), "ipam", network.NetworkName))
	for _, e := range ipam {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			left = append(left, "address "+e.Name())
		}
	}
	for _, sub := range []string{"netns", "pods"} {
		es, _ := os.ReadDir(filepath.Join(s.cfg.netDir(), sub))
		for _, e := range es {
			left = append(left, sub+"/"+e.Name())
		}
	}
	out, err := exec.Command("ip", "-n", filepath.Base(s.nodeNS), "-o", "link", "show", "master", network.BridgeName).CombinedOutput()
	if err == nil && strings.TrimSpace(string(out)) != "" {
		left = append(left, "bridge ports: "+strings.TrimSpace(string(out)))
	}
	return left
}

// webPod is a pod of two containers: web serves its hostname over HTTP on
// 8080 and logs nothing; client fetches http://127.0.0.1:8080/ (its
// pod's web, over the pod's loopback) until it answers, prints it, and
// sleeps.
func webPod(name string) wire.SnapshotPod {
	zero := int64(0)
	spec := api.PodSpec{
		RestartPolicy:                 api.RestartAlways,
		TerminationGracePeriodSeconds: &zero,
		Containers: []api.Container{
			{Name: "web", Image: env.busybox, ImagePullPolicy: api.PullIfNotPresent,
				Command: []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"}},
			{Name: "client", Image: env.busybox, ImagePullPolicy: api.PullIfNotPresent,
				Command: []string{"sh", "-c", "until wget -q -O- http://127.0.0.1:8080/; do sleep 0.1; done; exec sleep 100000"}},
		},
	}
	return wire.SnapshotPod{UID: uniqueID("uid-" + name), Name: name, Namespace: "default", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
}

func TestPodNetworkLocalhostRestartAndRemoval(t *testing.T) {
	s := newPodnetSite(t)
	s.startInProcess(t)
	p := webPod("web")
	s.setDesired(t, []wire.SnapshotPod{p})
	st := s.waitPod(t, p.UID, running)
	ip, err := netip.ParseAddr(st.PodIP)
	if err != nil || !netip.MustParsePrefix(podnetCIDR).Contains(ip) || len(st.PodIPs) != 1 || st.PodIPs[0].IP != st.PodIP {
		t.Fatalf("podIP %q podIPs %v: want one address of %s", st.PodIP, st.PodIPs, podnetCIDR)
	}
	// The node reaches the pod at its address, and the pod's hostname is
	// its name.
	if body, err := s.get(st.PodIP + ":8080"); err != nil || !strings.HasSuffix(body, "\nweb\n") {
		t.Fatalf("GET %s:8080 from the node: %q, %v", st.PodIP, body, err)
	}
	// The client reached web on localhost: two containers, one namespace.
	logs := filepath.Join(s.cfg.Dir, "logs", "default_web_"+p.UID, "client", "0.log")
	waitLog(t, logs, "web")
	// The pod's resolv.conf points at the node's DNS address.
	rt := newRuntimeNS(t)
	cur := currentRun(t, rt, &p, "web")
	code, out, err := rt.Exec(testCtx(t, time.Minute), cur, []string{"cat", "/etc/resolv.conf", "/etc/hosts"}, 10*time.Second)
	if err != nil || code != 0 || !strings.Contains(string(out), "nameserver 198.19.7.1\n") || !strings.Contains(string(out), st.PodIP+"\tweb\n") {
		t.Fatalf("pod's resolv.conf and hosts: code %d err %v:\n%s", code, err, out)
	}

	// A crash: the new run joins the same namespace, with the same address.
	nsPath := filepath.Join(s.cfg.netDir(), "netns", p.UID)
	before := inode(t, nsPath)
	c := waitState(t, rt, cur, reconcile.TaskRunning)
	if err := signalPid(c.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st = s.waitPod(t, p.UID, func(st api.PodStatus) bool {
		return running(st) && st.ContainerStatuses[0].RestartCount == 1
	})
	if st.PodIP != ip.String() {
		t.Fatalf("podIP after a restart %s, want %s", st.PodIP, ip)
	}
	if after := inode(t, nsPath); after != before {
		t.Fatalf("the restart made a new namespace (inode %d, was %d)", after, before)
	}
	waitFor(t, 30*time.Second, "the restarted web to answer", func() (bool, error) {
		body, err := s.get(st.PodIP + ":8080")
		return strings.HasSuffix(body, "\nweb\n"), err
	})

	// Removal: containers, then the address and the namespace.
	s.setDesired(t, nil)
	waitFor(t, time.Minute, "the pod's network to go", func() (bool, error) {
		left := s.leftovers(t)
		return len(left) == 0, fmt.Errorf("left: %v", left)
	})
	if list, err := rt.List(testCtx(t, time.Minute)); err != nil || len(list) != 0 {
		t.Fatalf("containers left after removal: %v, %v", list, err)
	}
}

// TestPodNetworkChurnLeaksNothing makes and removes 200 pods, one after
// the other, with the pod agent killed (SIGKILL) at a random moment of
// every tenth cycle and started again, then checks that the node holds no
// address, namespace, record or bridge port.
func TestPodNetworkChurnLeaksNothing(t *testing.T) {
	cycles := 200
	if testing.Short() {
		cycles = 20
	}
	s := newPodnetSite(t)
	cfgJSON, _ := json.Marshal(s.cfg)
	var child *exec.Cmd
	var childLog strings.Builder
	var logMu sync.Mutex
	start := func() {
		child = exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), childEnv+"="+string(cfgJSON))
		child.Stderr = writerFunc(func(b []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			return childLog.Write(b)
		})
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stop := func(sig syscall.Signal) {
		_ = child.Process.Signal(sig)
		_ = child.Wait()
	}
	start()
	defer func() {
		if child != nil {
			stop(syscall.SIGTERM)
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("pod agent's log:\n%s", childLog.String())
			logMu.Unlock()
		}
	}()
	kills := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range cycles {
		p := churnPod(i)
		s.setDesired(t, []wire.SnapshotPod{p})
		if i%10 == 5 {
			// Killed while it makes this pod (and removes the last).
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			stop(syscall.SIGKILL)
			kills++
			start()
		}
		waitFor(t, time.Minute, fmt.Sprintf("cycle %d: pod %s attached", i, p.Name), func() (bool, error) {
			_, err := os.Stat(filepath.Join(s.cfg.netDir(), "pods", p.UID+".json"))
			return err == nil, err
		})
	}
	s.setDesired(t, nil)
	waitFor(t, 2*time.Minute, "every pod's network to go", func() (bool, error) {
		left := s.leftovers(t)
		return len(left) == 0, fmt.Errorf("left: %v", left)
	})
	rt := newRuntimeNS(t)
	waitFor(t, time.Minute, "every container to go", func() (bool, error) {
		list, err := rt.List(testCtx(t, time.Minute))
		return err == nil && len(list) == 0, fmt.Errorf("%d containers, %v", len(list), err)
	})
	t.Logf("%d cycles, the agent killed %d times: no address, namespace, record or bridge port left", cycles, kills)
}

// churnPod is a one-container pod that stops at once.
func churnPod(i int) wire.SnapshotPod {
	zero := int64(0)
	spec := api.PodSpec{
		RestartPolicy:                 api.RestartAlways,
		TerminationGracePeriodSeconds: &zero,
		Containers:                    []api.Container{{Name: "main", Image: env.busybox, ImagePullPolicy: api.PullIfNotPresent, Command: []string{"sleep", "100000"}}},
	}
	return wire.SnapshotPod{UID: uniqueID(fmt.Sprintf("churn%d", i)), Name: fmt.Sprintf("churn-%d", i), Namespace: "default", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// newRuntimeNS is a runtime on the pod agents' containerd namespace.
func newRuntimeNS(t *testing.T) *Containerd {
	t.Helper()
	rt, err := New(testCtx(t, 10*time.Second), Options{Socket: env.ctd.Socket, Namespace: podnetNamespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// currentRun is the ID of the newest run of a pod's container.
func currentRun(t *testing.T, rt *Containerd, pod *wire.SnapshotPod, name string) string {
	t.Helper()
	list, err := rt.List(testCtx(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	best, bestRun := "", -1
	for _, c := range list {
		if c.Labels[reconcile.LabelPodUID] != pod.UID || c.Labels[reconcile.LabelContainer] != name {
			continue
		}
		var run int
		fmt.Sscan(c.Labels[reconcile.LabelRun], &run)
		if run > bestRun {
			best, bestRun = c.ID, run
		}
	}
	if best == "" {
		t.Fatalf("no container %s of pod %s", name, pod.Name)
	}
	return best
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
