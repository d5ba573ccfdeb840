package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// LAN is a site's local network, behind its uplink: a bridge (lan0) in
// the Site's namespace, which is the site's router, and hosts (boards, a
// laptop), each a network namespace joined to the bridge by a veth pair,
// with an address on the LAN and a default route through the router. The
// router forwards, and masquerades what leaves through the uplink: the
// LAN's addresses never show on the host, so test processes side by side
// may use the same LAN prefix, and the host (the hub, the registry) needs
// no route to it. Cutting the Site's link cuts every host of the LAN off
// the host while they still reach each other, as a site whose uplink is
// down.
type LAN struct {
	Site    *Site
	Prefix  netip.Prefix
	Gateway netip.Addr // the router's address on the LAN

	mu    sync.Mutex
	hosts []*LANHost
}

// LANHost is one host of a LAN: a network namespace whose eth0 is on the
// LAN.
type LANHost struct {
	Name string // the namespace, under /run/netns
	IP   netip.Addr
	lan  *LAN
	port string // the router's end of its veth pair
}

// lanBridge is the LAN's bridge in the router's namespace.
const lanBridge = "lan0"

// NewLAN makes the LAN prefix (an IPv4 network) behind site: the bridge
// takes the prefix's first address.
func NewLAN(site *Site, prefix string) (*LAN, error) {
	p, err := netip.ParsePrefix(prefix)
	if err != nil || !p.Addr().Is4() || p.Masked() != p || p.Bits() > 29 {
		return nil, fmt.Errorf("LAN prefix %q: want an IPv4 network such as 192.168.77.0/24", prefix)
	}
	if _, err := FindBinary("nft"); err != nil {
		return nil, err
	}
	l := &LAN{Site: site, Prefix: p, Gateway: p.Addr().Next()}
	r := site.Name
	steps := [][]string{
		// A fixed address: a bridge that takes its ports' would change it
		// whenever a host's link goes and comes (Reboot), and the hosts
		// would keep sending to the old one, which the bridge then
		// forwards instead of routing.
		{"ip", "-n", r, "link", "add", lanBridge, "address", "02:00:5e:10:00:01", "type", "bridge"},
		{"ip", "-n", r, "addr", "add", netip.PrefixFrom(l.Gateway, p.Bits()).String(), "dev", lanBridge},
		{"ip", "-n", r, "link", "set", lanBridge, "up"},
		{"nsenter", "--net=" + NetNSPath(r), "--", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"},
	}
	for _, st := range steps {
		if err := run(st...); err != nil {
			return nil, fmt.Errorf("make LAN %s behind %s: %w", p, r, err)
		}
	}
	// What leaves for the host goes out as the router's uplink address.
	nat := fmt.Sprintf("table ip lan-nat {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n  ip saddr %s oifname %q masquerade\n }\n}\n", p, site.siteIf)
	if err := runInput(nat, "nsenter", "--net="+NetNSPath(r), "--", "nft", "-f", "-"); err != nil {
		return nil, fmt.Errorf("make LAN %s behind %s: masquerade: %w", p, r, err)
	}
	return l, nil
}

// NetNSPath is where the ip command binds the namespace name.
func NetNSPath(name string) string { return filepath.Join("/run/netns", name) }

// Join makes namespace name a host of the LAN at address ip.
func (l *LAN) Join(name string, ip netip.Addr) (*LANHost, error) {
	if !l.Prefix.Contains(ip) || ip == l.Gateway || ip == l.Prefix.Addr() {
		return nil, fmt.Errorf("join %s to LAN %s: address %s is not a host address of it", name, l.Prefix, ip)
	}
	l.mu.Lock()
	h := &LANHost{Name: name, IP: ip, lan: l, port: fmt.Sprintf("p%d", len(l.hosts)+1)}
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	if err := h.plug(); err != nil {
		return nil, err
	}
	return h, nil
}

// plug makes the namespace and its link to the LAN.
func (h *LANHost) plug() error {
	_ = run("ip", "netns", "del", h.Name) // a crashed run's leftover
	r := h.lan.Site.Name
	steps := [][]string{
		{"ip", "netns", "add", h.Name},
		{"ip", "-n", r, "link", "add", h.port, "type", "veth", "peer", "name", "eth0", "netns", h.Name},
		{"ip", "-n", r, "link", "set", h.port, "master", lanBridge, "up"},
		{"ip", "-n", h.Name, "addr", "add", netip.PrefixFrom(h.IP, h.lan.Prefix.Bits()).String(), "dev", "eth0"},
		{"ip", "-n", h.Name, "link", "set", "eth0", "up"},
		{"ip", "-n", h.Name, "link", "set", "lo", "up"},
		{"ip", "-n", h.Name, "route", "add", "default", "via", h.lan.Gateway.String()},
	}
	for _, st := range steps {
		if err := run(st...); err != nil {
			return fmt.Errorf("join %s to LAN %s: %w", h.Name, h.lan.Prefix, err)
		}
	}
	return nil
}

// Reboot deletes the host's namespace and makes it again, as it was
// when it joined: whatever was set in it since (interfaces, routes,
// packet rules, kernel settings) is gone, as after a power cycle.
// Nothing may still hold the namespace (a process running in it).
func (h *LANHost) Reboot() error {
	// The router's end first: the kernel destroys a deleted namespace's
	// interfaces later, and the new link takes the same name.
	if err := run("ip", "-n", h.lan.Site.Name, "link", "del", h.port); err != nil {
		return fmt.Errorf("reboot %s: %w", h.Name, err)
	}
	if err := run("ip", "netns", "del", h.Name); err != nil {
		return fmt.Errorf("reboot %s: %w", h.Name, err)
	}
	return h.plug()
}

// Path is the namespace's file, for nsenter --net= and setns.
func (h *LANHost) Path() string { return NetNSPath(h.Name) }

// Wrap returns the argv that runs bin with args in the host's network
// namespace only: unlike ip netns exec, nsenter keeps the caller's mount
// namespace, so bind mounts the program makes (a pod's network
// namespace) are the host's, which containerd and runc see.
func (h *LANHost) Wrap(bin string, args ...string) (string, []string) {
	nsenter, err := FindBinary("nsenter")
	if err != nil {
		nsenter = "nsenter"
	}
	return nsenter, append([]string{"--net=" + h.Path(), "--", bin}, args...)
}

// Output runs argv in the host's network namespace and returns its
// standard output.
func (h *LANHost) Output(ctx context.Context, argv ...string) (string, error) {
	bin, err := FindBinary(argv[0])
	if err != nil {
		return "", err
	}
	name, args := h.Wrap(bin, argv[1:]...)
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), h.Name, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Dial connects to addr from the host's network namespace.
func (h *LANHost) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return DialIn(ctx, h.Path(), network, addr)
}

// Close deletes the namespace (its link goes with it).
func (h *LANHost) Close() error { return run("ip", "netns", "del", h.Name) }

// Close deletes the LAN's hosts; the bridge goes with the Site.
func (l *LAN) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, h := range l.hosts {
		if err := h.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.hosts = nil
	return errors.Join(errs...)
}

// DialIn connects to addr from the network namespace at nsPath: the
// socket is made on a thread that entered the namespace, and belongs to
// it from then on, whichever thread uses it. The thread goes back to its
// own namespace before the scheduler may use it again. It must not end
// instead (a goroutine that exits locked ends its thread): a child that
// thread started with a parent-death signal, as StartTiedProcess starts
// the hub and agents, would be killed with it.
func DialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own network namespace: %w", err)}
			return
		}
		defer unix.Close(own)
		fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open network namespace %s: %w", nsPath, err)}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("enter network namespace %s: %w", nsPath, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if rerr := unix.Setns(own, unix.CLONE_NEWNET); rerr == nil {
			runtime.UnlockOSThread()
		} // else the thread stays in nsPath and ends with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// UnmountUnder detaches every mount at or below dir (a pod network
// namespace's bind mount), deepest first, so that dir can be removed.
func UnmountUnder(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := unmountUnder(dir); err != nil {
		return err
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// runInput is run with stdin.
func runInput(stdin string, argv ...string) error {
	bin, err := FindBinary(argv[0])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
