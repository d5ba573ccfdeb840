package network

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The integration tests need root, iproute2 and the CNI plugins
// (containernetworking-plugins). They build a board out of network
// namespaces in 198.18.0.0/15 (RFC 2544's benchmark networks):
//
//	lan   the site LAN's switch: bridge lan0
//	node  the board under test: eth0 198.18.0.2 on the LAN; its pods
//	      get 198.19.1.0/24 (of the cluster's 198.19.0.0/16) on
//	      flotilla0, made by the package
//	peer  another board of the site, eth0 198.18.0.3, whose "pod"
//	      198.19.2.10 is an address on its loopback
//
// The node's side (bridge, routes, sysctls, nftables, the plugins' host
// side) lives in node; the pods' namespaces are bound under a temporary
// state directory, as on a board.

const (
	tNodeIP   = "198.18.0.2"
	tPeerIP   = "198.18.0.3"
	tPodCIDR  = "198.19.1.0/24"
	tPeerCIDR = "198.19.2.0/24"
	tPeerPod  = "198.19.2.10"
	tCluster  = "198.19.0.0/16"
	tServices = "198.18.200.0/24"
)

func needRoot(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, bind mounts, CNI plugins")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
	bin := os.Getenv("CNI_BIN_DIR")
	if bin == "" {
		bin = DefaultBinDir
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			t.Fatalf("CNI plugin %s missing from %s: apt-get install containernetworking-plugins", p, bin)
		}
	}
	return bin
}

// testNS is a named network namespace the test made.
type testNS struct {
	name string
	fd   int
}

var nsSeq struct {
	sync.Mutex
	n int
}

func newTestNS(t testing.TB, suffix string) *testNS {
	t.Helper()
	nsSeq.Lock()
	nsSeq.n++
	name := fmt.Sprintf("fnw%d-%d-%s", os.Getpid()%100000, nsSeq.n, suffix)
	nsSeq.Unlock()
	ipCmd(t, "netns", "add", name)
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return &testNS{name: name, fd: fd}
}

func ipCmd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n *testNS) ip(t testing.TB, args ...string) string {
	t.Helper()
	return ipCmd(t, append([]string{"-n", n.name}, args...)...)
}

// board is the namespaces above.
type board struct {
	lan, node, peer *testNS
	dir, bin        string
}

func newBoard(t testing.TB) *board {
	t.Helper()
	bin := needRoot(t)
	b := &board{lan: newTestNS(t, "lan"), node: newTestNS(t, "node"), peer: newTestNS(t, "peer"), dir: t.TempDir(), bin: bin}
	b.lan.ip(t, "link", "add", "lan0", "type", "bridge")
	b.lan.ip(t, "link", "set", "lan0", "up")
	for _, m := range []struct {
		ns         *testNS
		port, addr string
	}{{b.node, "vnode", tNodeIP}, {b.peer, "vpeer", tPeerIP}} {
		b.lan.ip(t, "link", "add", m.port, "type", "veth", "peer", "name", "eth0", "netns", m.ns.name)
		b.lan.ip(t, "link", "set", m.port, "master", "lan0", "up")
		m.ns.ip(t, "addr", "add", m.addr+"/24", "dev", "eth0")
		m.ns.ip(t, "link", "set", "eth0", "up")
	}
	b.peer.ip(t, "addr", "add", tPeerPod+"/32", "dev", "lo")
	b.peer.ip(t, "route", "add", tPodCIDR, "via", tNodeIP)
	return b
}

func (b *board) network(t testing.TB) *Node {
	t.Helper()
	n, err := New(Config{Dir: filepath.Join(b.dir, "network"), BinDir: b.bin, NodeIP: netip.MustParseAddr(tNodeIP)}, WithNetNS(b.node.fd))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { releaseAll(t, n) })
	return n
}

func wireNetwork(peers ...wire.NetworkPeer) *wire.Network {
	return &wire.Network{PodCIDR: tPodCIDR, ClusterCIDR: tCluster, ServiceCIDR: tServices, ClusterDomain: "cluster.local", Peers: peers}
}

// inPod runs f in a pod's namespace, by its path.
func inPod(t testing.TB, path string, f func() error) error {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	return inNamespace(fd, f)
}

// serveTCP answers every connection to addr, in the namespace at path,
// with its own name and the client's address.
func serveTCP(t testing.TB, path, addr, name string) {
	t.Helper()
	var ln net.Listener
	if err := inPod(t, path, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, path, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr().(*net.TCPAddr).IP)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// ask connects to addr from the namespace at path (or the node's, for
// a *testNS) and returns the greeting.
func ask(t testing.TB, enter func(func() error) error, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	if err := enter(func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, 5*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func podEnter(t testing.TB, path string) func(func() error) error {
	return func(f func() error) error { return inPod(t, path, f) }
}

func nsEnter(n *testNS) func(func() error) error {
	return func(f func() error) error { return inNamespace(n.fd, f) }
}

func TestAttachGivesPodsAddressesThatReachEachOtherAndThePeer(t *testing.T) {
	b := newBoard(t)
	nw := b.network(t)
	ctx := context.Background()
	if err := nw.Configure(ctx, wireNetwork(wire.NetworkPeer{Node: "peer", IP: tPeerIP, PodCIDR: tPeerCIDR})); err != nil {
		t.Fatal(err)
	}
	a, err := nw.Attach(ctx, Pod{UID: "uid-a", Namespace: "default", Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := nw.Attach(ctx, Pod{UID: "uid-c", Namespace: "default", Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	cidr := netip.MustParsePrefix(tPodCIDR)
	if !cidr.Contains(a.IP) || !cidr.Contains(c.IP) || a.IP == c.IP || a.IP == Gateway(cidr) {
		t.Fatalf("addresses %s and %s: want two pod addresses of %s other than the gateway", a.IP, c.IP, cidr)
	}
	serveTCP(t, a.NetNS, a.IP.String()+":8080", "a")
	serveTCP(t, c.NetNS, "0.0.0.0:8080", "c")
	// Pod to pod on the bridge: the client's own address is seen.
	if got, err := ask(t, podEnter(t, a.NetNS), c.IP.String()+":8080"); err != nil || got != "c "+a.IP.String() {
		t.Fatalf("pod a to pod c: %q, %v; want %q", got, err, "c "+a.IP.String())
	}
	// Localhost inside a pod reaches the pod's own server (two containers
	// of one pod share the namespace).
	if got, err := ask(t, podEnter(t, c.NetNS), "127.0.0.1:8080"); err != nil || !strings.HasPrefix(got, "c ") {
		t.Fatalf("pod c to its own localhost: %q, %v", got, err)
	}
	// The node reaches its pods.
	if got, err := ask(t, nsEnter(b.node), a.IP.String()+":8080"); err != nil || !strings.HasPrefix(got, "a ") {
		t.Fatalf("node to pod a: %q, %v", got, err)
	}
	// The peer's pod, through the host-gateway route, unmasqueraded: it
	// sees the pod's address, as a pod of another node must.
	serveTCPns(t, b.peer, tPeerPod+":8080", "peer")
	if got, err := ask(t, podEnter(t, a.NetNS), tPeerPod+":8080"); err != nil || got != "peer "+a.IP.String() {
		t.Fatalf("pod a to the peer's pod: %q, %v; want %q", got, err, "peer "+a.IP.String())
	}
	// Outside the cluster (the LAN's own address) it is masqueraded.
	serveTCPns(t, b.peer, tPeerIP+":8081", "lan")
	if got, err := ask(t, podEnter(t, a.NetNS), tPeerIP+":8081"); err != nil || got != "lan "+tNodeIP {
		t.Fatalf("pod a to a LAN address: %q, %v; want %q (masqueraded)", got, err, "lan "+tNodeIP)
	}
	// The pod's DNS address is the bridge's.
	if got := nw.DNSAddress(); got != netip.MustParseAddr("198.19.1.1") {
		t.Fatalf("DNSAddress = %s", got)
	}
}

func serveTCPns(t testing.TB, n *testNS, addr, name string) {
	t.Helper()
	serveTCP(t, "/run/netns/"+n.name, addr, name)
}

// releaseAll detaches every pod the node has traces of, so that a failed
// test leaves no mount behind.
func releaseAll(t testing.TB, n *Node) {
	t.Helper()
	uids, err := n.Pods()
	if err != nil {
		t.Errorf("list pods: %v", err)
	}
	for _, uid := range uids {
		if err := n.Detach(context.Background(), uid); err != nil {
			t.Errorf("detach %s: %v", uid, err)
		}
	}
}

// TestRebootRebuildsFromLocalState: the bind mounts are gone (a reboot),
// host-local's files, libcni's cache and the records are not. A new agent
// makes the pod's namespace again, with the address it had, and releases
// the stale attachment first (one address for the pod, not two).
func TestRebootRebuildsFromLocalState(t *testing.T) {
	b := newBoard(t)
	ctx := context.Background()
	nw := b.network(t)
	if err := nw.Configure(ctx, wireNetwork()); err != nil {
		t.Fatal(err)
	}
	pod := Pod{UID: "uid-r", Namespace: "default", Name: "r"}
	first, err := nw.Attach(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	// The reboot: the namespace goes with its mount, the file stays.
	if err := unix.Unmount(first.NetNS, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if namespaceLive(first.NetNS) {
		t.Fatal("namespace still live after its unmount")
	}
	again := b.network(t) // the agent after the reboot
	if att, ok := again.Attachment(pod.UID); !ok || att.IP != first.IP {
		t.Fatalf("the new agent's record: %+v, %v; want %s", att, ok, first.IP)
	}
	if err := again.Configure(ctx, wireNetwork()); err != nil {
		t.Fatal(err)
	}
	att, err := again.Attach(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if att.IP != first.IP || !namespaceLive(att.NetNS) {
		t.Fatalf("rebuilt: %+v, want a live namespace at %s", att, first.IP)
	}
	ids, _ := allocatedIDs(again.ipamDir())
	if len(ids) != 1 || len(ids[pod.UID]) != 1 {
		t.Fatalf("host-local holds %v, want one address for the pod", ids)
	}
	serveTCP(t, att.NetNS, "0.0.0.0:8080", "r")
	if got, err := ask(t, nsEnter(b.node), att.IP.String()+":8080"); err != nil || !strings.HasPrefix(got, "r ") {
		t.Fatalf("node to the rebuilt pod: %q, %v", got, err)
	}
}

// TestKilledMidAttachLeavesNothingBehind: an agent killed after the
// plugins ran and before the record was written leaves a namespace, an
// address and libcni's cache. A new agent lists the pod, and either
// attaches it again (one address) or releases everything.
func TestKilledMidAttachLeavesNothingBehind(t *testing.T) {
	b := newBoard(t)
	ctx := context.Background()
	nw := b.network(t)
	if err := nw.Configure(ctx, wireNetwork()); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"uid-k1", "uid-k2"} {
		if _, err := nw.Attach(ctx, Pod{UID: uid, Namespace: "default", Name: uid}); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(nw.recordDir(), uid+".json")); err != nil {
			t.Fatal(err)
		}
	}
	again := b.network(t)
	if err := again.Configure(ctx, wireNetwork()); err != nil {
		t.Fatal(err)
	}
	uids, err := again.Pods()
	if err != nil || !slices.Equal(uids, []string{"uid-k1", "uid-k2"}) {
		t.Fatalf("pods the new agent finds: %v, %v", uids, err)
	}
	// k1 is still wanted, k2 is not.
	att, err := again.Attach(ctx, Pod{UID: "uid-k1", Namespace: "default", Name: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Detach(ctx, "uid-k2"); err != nil {
		t.Fatal(err)
	}
	ids, _ := allocatedIDs(again.ipamDir())
	if len(ids) != 1 || !slices.Equal(ids["uid-k1"], []netip.Addr{att.IP}) {
		t.Fatalf("host-local holds %v, want only %s for uid-k1", ids, att.IP)
	}
	if _, err := os.Stat(again.NamespacePath("uid-k2")); !os.IsNotExist(err) {
		t.Fatalf("uid-k2's namespace file: %v", err)
	}
	if uids, err := again.Pods(); err != nil || !slices.Equal(uids, []string{"uid-k1"}) {
		t.Fatalf("pods left: %v, %v", uids, err)
	}
}

// TestHostPortsFollowThePod: a pod's hostPorts changed move its portmap
// rules; the pod keeps its address and its containers' next runs join
// the namespace at the same path.
func TestHostPortsFollowThePod(t *testing.T) {
	b := newBoard(t)
	ctx := context.Background()
	nw := b.network(t)
	if err := nw.Configure(ctx, wireNetwork()); err != nil {
		t.Fatal(err)
	}
	pod := Pod{UID: "uid-h", Namespace: "default", Name: "h", Ports: []PortMapping{{HostPort: 18080, ContainerPort: 8080, Protocol: "tcp"}}}
	att, err := nw.Attach(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	serveTCP(t, att.NetNS, "0.0.0.0:8080", "h")
	if got, err := ask(t, nsEnter(b.peer), tNodeIP+":18080"); err != nil || !strings.HasPrefix(got, "h ") {
		t.Fatalf("LAN to hostPort 18080: %q, %v", got, err)
	}
	// The same ports again: nothing changes (same namespace).
	if again, err := nw.UpdatePorts(ctx, pod); err != nil || again != att {
		t.Fatalf("UpdatePorts with the same ports: %+v, %v", again, err)
	}
	// The caller's slice changed in place must still count as a change.
	pod.Ports[0].HostPort = 18081
	moved, err := nw.UpdatePorts(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if moved.IP != att.IP {
		t.Fatalf("the pod's address changed with its hostPorts: %s, was %s", moved.IP, att.IP)
	}
	serveTCP(t, moved.NetNS, "0.0.0.0:8080", "h2")
	if got, err := ask(t, nsEnter(b.peer), tNodeIP+":18081"); err != nil || !strings.HasPrefix(got, "h2 ") {
		t.Fatalf("LAN to hostPort 18081: %q, %v", got, err)
	}
	if got, err := ask(t, nsEnter(b.peer), tNodeIP+":18080"); err == nil {
		t.Fatalf("the old hostPort 18080 still answers: %q", got)
	}
}
