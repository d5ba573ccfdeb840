package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The integration tests build a small site out of network namespaces, all
// in 198.18.0.0/15 (reserved for benchmark networks, RFC 2544):
//
//	lan    the site LAN's switch and a laptop on it: bridge lan0, 198.19.0.1
//	node   the board: eth0 198.19.0.2 on the LAN, bridge flotilla0
//	       198.19.1.1 for its pods (pod CIDR 198.19.1.0/24); the rules
//	       under test live here
//	pod1-3 pods on node's bridge, 198.19.1.11-13
//	peer   another board of the site on the LAN (198.19.0.3) with one pod
//	       address, 198.19.2.10, on its loopback; node routes 198.19.2.0/24
//	       to it, as the agent does for a site peer
//
// Service addresses are 198.19.200.x; node routes them to its bridge, as
// the agent must, so that the node's own traffic to a ClusterIP has a
// route when the board has no default route.

const (
	lanIP    = "198.19.0.1"
	nodeIP   = "198.19.0.2"
	peerIP   = "198.19.0.3"
	bridgeIP = "198.19.1.1"
	peerPod  = "198.19.2.10"
	podCIDR  = "198.19.1.0/24"
)

var podIPs = []string{"198.19.1.11", "198.19.1.12", "198.19.1.13"}

// needRoot skips a test that needs root and the ip command; everything
// else it needs it makes itself.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and nftables")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
}

// netns is a named network namespace the test made.
type netns struct {
	name string
	fd   int
}

func newNetns(t testing.TB, name string) *netns {
	t.Helper()
	_ = exec.Command("ip", "netns", "del", name).Run() // a crashed run's leftover
	ipCmd(t, "netns", "add", name)
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	n := &netns{name: name, fd: fd}
	t.Cleanup(func() {
		unix.Close(fd)
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return n
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (n *netns) ip(t testing.TB, args ...string) {
	t.Helper()
	ipCmd(t, append([]string{"-n", n.name}, args...)...)
}

// do runs f on a thread that is in the namespace: sockets f makes belong
// to it and keep working from any thread afterwards.
func (n *netns) do(f func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", n.name, err)
	}
	ferr := f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine rather
		// than run other goroutines in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", n.name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func (n *netns) sysctl(t testing.TB, key, value string) {
	t.Helper()
	err := n.do(func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, n.name, err)
	}
}

// site is the namespaces above.
type site struct {
	lan, node, peer *netns
	pods            []*netns
}

var siteSeq struct {
	sync.Mutex
	n int
}

func newSite(t testing.TB) *site {
	t.Helper()
	needRoot(t)
	siteSeq.Lock()
	siteSeq.n++
	prefix := fmt.Sprintf("fpx%d-%d-", os.Getpid()%100000, siteSeq.n)
	siteSeq.Unlock()
	s := &site{
		lan:  newNetns(t, prefix+"lan"),
		node: newNetns(t, prefix+"node"),
		peer: newNetns(t, prefix+"peer"),
	}
	s.lan.ip(t, "link", "add", "lan0", "type", "bridge")
	s.lan.ip(t, "addr", "add", lanIP+"/24", "dev", "lan0")
	s.lan.ip(t, "link", "set", "lan0", "up")
	for _, m := range []struct {
		ns   *netns
		port string
		addr string
	}{{s.node, "vnode", nodeIP}, {s.peer, "vpeer", peerIP}} {
		s.lan.ip(t, "link", "add", m.port, "type", "veth", "peer", "name", "eth0", "netns", m.ns.name)
		s.lan.ip(t, "link", "set", m.port, "master", "lan0", "up")
		m.ns.ip(t, "addr", "add", m.addr+"/24", "dev", "eth0")
		m.ns.ip(t, "link", "set", "eth0", "up")
	}
	s.node.ip(t, "link", "add", "flotilla0", "type", "bridge")
	s.node.ip(t, "addr", "add", bridgeIP+"/24", "dev", "flotilla0")
	s.node.ip(t, "link", "set", "flotilla0", "up")
	s.node.ip(t, "route", "add", "198.19.2.0/24", "via", peerIP)
	s.node.ip(t, "route", "add", "198.19.200.0/24", "dev", "flotilla0")
	s.node.sysctl(t, "net.ipv4.ip_forward", "1")
	// Replies of a pod to a pod on the same bridge are bridged, not
	// routed: they must pass netfilter to be translated back.
	s.node.sysctl(t, "net.bridge.bridge-nf-call-iptables", "1")
	s.peer.ip(t, "addr", "add", peerPod+"/32", "dev", "lo")
	s.peer.ip(t, "route", "add", "198.19.1.0/24", "via", nodeIP)
	for i, addr := range podIPs {
		pod := newNetns(t, fmt.Sprintf("%spod%d", prefix, i+1))
		port := fmt.Sprintf("vpod%d", i+1)
		s.node.ip(t, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", pod.name)
		s.node.ip(t, "link", "set", port, "master", "flotilla0", "up")
		// A pod reaching itself through a Service: its packet comes back
		// out of the port it came in by (the CNI bridge's hairpinMode).
		s.node.ip(t, "link", "set", port, "type", "bridge_slave", "hairpin", "on")
		pod.ip(t, "addr", "add", addr+"/24", "dev", "eth0")
		pod.ip(t, "link", "set", "eth0", "up")
		pod.ip(t, "route", "add", "default", "via", bridgeIP)
		s.pods = append(s.pods, pod)
	}
	return s
}

func (s *site) config() Config {
	return Config{
		NodeName: "node",
		NodeIPs:  []netip.Addr{netip.MustParseAddr(nodeIP)},
		PodCIDR:  netip.MustParsePrefix(podCIDR),
	}
}

// proxy returns a Proxy programming the site's node.
func (s *site) proxy(t testing.TB) *Proxy {
	t.Helper()
	p, err := New(s.config(), WithNetNS(s.node.fd))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Servers answer every TCP connection with "NAME CLIENT-ADDRESS\n" and
// then echo lines; every UDP datagram gets the same line back.

const (
	tcpPort = 8080
	udpPort = 8053
)

func (s *site) serveAll(t testing.TB) {
	t.Helper()
	for i, pod := range s.pods {
		name := fmt.Sprintf("pod%d", i+1)
		serve(t, pod, podIPs[i], name)
	}
	serve(t, s.peer, peerPod, "peer")
}

func serve(t testing.TB, ns *netns, addr, name string) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := ns.do(func() error {
		var err error
		if ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", addr, tcpPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", fmt.Sprintf("%s:%d", addr, udpPort))
		return err
	})
	if err != nil {
		t.Fatalf("serve %s: %v", name, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if _, err := fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr().(*net.TCPAddr).IP); err != nil {
					return
				}
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := fmt.Fprintf(c, "%s %s\n", name, sc.Text()); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(fmt.Appendf(nil, "%s %s\n", name, from.(*net.UDPAddr).IP), from)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// ioTimeout bounds every network wait of a client.
const ioTimeout = 5 * time.Second

// dial opens a TCP connection from inside ns.
func dial(ns *netns, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.do(func() error {
		var err error
		d := net.Dialer{Timeout: ioTimeout}
		c, err = d.DialContext(context.Background(), "tcp4", addr)
		return err
	})
	return c, err
}

// greeting reads the server's first line: "NAME CLIENT-ADDRESS".
func greeting(c net.Conn) (name, client string, err error) {
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return "", "", fmt.Errorf("greeting %q", line)
	}
	return f[0], f[1], nil
}

// ask connects over TCP from ns and returns who answered and the address
// it saw the client come from.
func ask(ns *netns, addr string) (name, client string, err error) {
	c, err := dial(ns, addr)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	return greeting(c)
}

// askUDP sends one datagram from ns and returns who answered.
func askUDP(ns *netns, addr string) (name, client string, err error) {
	var c net.Conn
	err = ns.do(func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write([]byte("?\n")); err != nil {
		return "", "", err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return "", "", err
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) != 2 {
		return "", "", fmt.Errorf("answer %q", buf[:n])
	}
	return f[0], f[1], nil
}

// echo sends a line on an open connection and checks the same server
// answers it.
func echo(c net.Conn, want string) error {
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := fmt.Fprintf(c, "ping\n"); err != nil {
		return err
	}
	var buf [64]byte
	n, err := c.Read(buf[:])
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(string(buf[:n])); got != want+" ping" {
		return fmt.Errorf("echo answered %q, want %q", got, want+" ping")
	}
	return nil
}

// Service builders.

func tcpPortSpec(name string, port, nodePort int32) wire.ServicePort {
	return wire.ServicePort{Name: name, Protocol: "TCP", Port: port, NodePort: nodePort, TargetPort: name}
}

func udpPortSpec(name string, port, nodePort int32) wire.ServicePort {
	return wire.ServicePort{Name: name, Protocol: "UDP", Port: port, NodePort: nodePort, TargetPort: name}
}

// ep is a ready endpoint serving the test ports under the names "http"
// and "dns".
func ep(ip, node string) wire.Endpoint {
	return wire.Endpoint{IP: ip, Node: node, Name: "pod-" + ip, Namespace: "default", Ready: true,
		Ports: map[string]int32{"http": tcpPort, "dns": udpPort}}
}

func notReady(e wire.Endpoint) wire.Endpoint { e.Ready = false; return e }

func localEPs(n int) []wire.Endpoint {
	var eps []wire.Endpoint
	for _, ip := range podIPs[:n] {
		eps = append(eps, ep(ip, "node"))
	}
	return eps
}
