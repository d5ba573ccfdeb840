package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// ErrNoPodNetwork: the node has no pod CIDR yet (the hub has not given it
// one), so a pod cannot be attached.
var ErrNoPodNetwork = errors.New("the node has no pod CIDR yet")

// DefaultBinDir is where Debian's containernetworking-plugins puts the
// plugins.
const DefaultBinDir = "/usr/lib/cni"

// recheck is how often Configure looks at the kernel again when the
// snapshot's network has not changed: a default route that came or went,
// a route or the bridge removed by hand.
const recheck = 10 * time.Second

// Config sets up a Node.
type Config struct {
	// Dir holds the package's state: netns/ (the pods' namespaces),
	// pods/ (a record per pod), ipam/ (host-local's allocations).
	Dir string
	// ConfDir receives the conflist the node's pods are attached with
	// (default Dir/conf), for operators and cnitool; CacheDir is libcni's
	// cache of attachments (default Dir/cache).
	ConfDir, CacheDir string
	// BinDir holds the CNI plugins (default DefaultBinDir).
	BinDir string
	// NodeIP is the node's own address: a peer that claims it is not
	// routed.
	NodeIP netip.Addr
	Logger *slog.Logger
}

// Option changes a Node.
type Option func(*Node)

// WithNetNS makes the node's side of the network (the bridge, routes,
// kernel settings, the masquerade table, and the plugins' host side) that
// of the network namespace fd refers to instead of the caller's: for
// tests, which build a board in a namespace.
func WithNetNS(fd int) Option { return func(n *Node) { n.netnsFD = fd } }

// Node is the node's pod network. Its methods are safe for concurrent
// use; calls for one pod are serialised.
type Node struct {
	cfg     Config
	log     *slog.Logger
	netnsFD int
	cni     *libcni.CNIConfig

	configMu  sync.Mutex // one Configure at a time
	applied   *parsed
	lastCheck time.Time

	mu      sync.Mutex // guards what follows
	net     *parsed    // nil: no pod network yet
	list    *libcni.NetworkConfigList
	records map[string]record
	locks   map[string]*podLock
}

type podLock struct {
	sync.Mutex
	users int
}

// parsed is a checked wire.Network.
type parsed struct {
	podCIDR, clusterCIDR, serviceCIDR netip.Prefix
	peers                             []wire.NetworkPeer
}

func (p *parsed) equal(q *parsed) bool {
	if p == nil || q == nil {
		return p == q
	}
	return p.podCIDR == q.podCIDR && p.clusterCIDR == q.clusterCIDR && p.serviceCIDR == q.serviceCIDR &&
		slices.Equal(p.peers, q.peers)
}

// Pod is what attaching a pod needs.
type Pod struct {
	UID, Namespace, Name string
	// Ports are its containers' hostPorts.
	Ports []PortMapping
}

// Attachment is a pod's network: the path of its namespace, which every
// container of the pod joins, and its address.
type Attachment struct {
	NetNS string
	IP    netip.Addr
}

// New returns the node's pod network, reading back what an agent before
// it left: records, namespaces, allocations. It makes no change to the
// kernel; Configure does.
func New(cfg Config, opts ...Option) (*Node, error) {
	if cfg.Dir == "" {
		return nil, errors.New("network: no state directory")
	}
	if cfg.ConfDir == "" {
		cfg.ConfDir = filepath.Join(cfg.Dir, "conf")
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.Dir, "cache")
	}
	if cfg.BinDir == "" {
		cfg.BinDir = DefaultBinDir
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "network"), netnsFD: -1, locks: map[string]*podLock{}}
	for _, o := range opts {
		o(n)
	}
	for _, d := range []string{n.netnsDir(), n.recordDir(), n.ipamDir(), cfg.ConfDir, cfg.CacheDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("network: %w", err)
		}
	}
	recs, err := readRecords(n.recordDir())
	if err != nil {
		// Their pods are found by their other traces and rebuilt.
		n.log.Warn("some pods' network records are unreadable; their networks will be rebuilt", "err", err)
	}
	n.records = recs
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{cfg.BinDir}, cfg.CacheDir, &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: &logWriter{log: n.log}},
		PluginDecoder: version.PluginDecoder{},
	})
	return n, nil
}

func (n *Node) netnsDir() string  { return filepath.Join(n.cfg.Dir, "netns") }
func (n *Node) recordDir() string { return filepath.Join(n.cfg.Dir, "pods") }
func (n *Node) ipamDir() string   { return filepath.Join(n.cfg.Dir, "ipam") }

// NamespacePath is where pod uid's network namespace is bound.
func (n *Node) NamespacePath(uid string) string { return filepath.Join(n.netnsDir(), uid) }

// ConfListPath is where Configure writes the conflist.
func (n *Node) ConfListPath() string { return filepath.Join(n.cfg.ConfDir, "10-flotilla.conflist") }

// DNSAddress is the node's cluster DNS address (its bridge's), invalid
// while the node has no pod CIDR.
func (n *Node) DNSAddress() netip.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.net == nil {
		return netip.Addr{}
	}
	return Gateway(n.net.podCIDR)
}

// parseNetwork checks a snapshot's network: nil (none, or no pod CIDR
// yet) is nil.
func parseNetwork(w *wire.Network) (*parsed, error) {
	if w == nil || w.PodCIDR == "" {
		return nil, nil
	}
	p := &parsed{peers: slices.Clone(w.Peers)}
	var err error
	if p.podCIDR, err = netip.ParsePrefix(w.PodCIDR); err != nil || !p.podCIDR.Addr().Is4() || p.podCIDR.Masked() != p.podCIDR || p.podCIDR.Bits() > 30 {
		return nil, fmt.Errorf("network.podCIDR %q: want an IPv4 network of at least 4 addresses", w.PodCIDR)
	}
	p.clusterCIDR = p.podCIDR
	if w.ClusterCIDR != "" {
		c, err := netip.ParsePrefix(w.ClusterCIDR)
		if err != nil || !c.Addr().Is4() || c.Masked() != c || !c.Contains(p.podCIDR.Addr()) || c.Bits() > p.podCIDR.Bits() {
			return nil, fmt.Errorf("network.clusterCIDR %q: want an IPv4 network holding podCIDR %s", w.ClusterCIDR, p.podCIDR)
		}
		p.clusterCIDR = c
	}
	if w.ServiceCIDR != "" {
		s, err := netip.ParsePrefix(w.ServiceCIDR)
		if err != nil || !s.Addr().Is4() || s.Masked() != s || s.Overlaps(p.clusterCIDR) {
			return nil, fmt.Errorf("network.serviceCIDR %q: want an IPv4 network apart from the cluster CIDR %s", w.ServiceCIDR, p.clusterCIDR)
		}
		p.serviceCIDR = s
	}
	slices.SortFunc(p.peers, func(a, b wire.NetworkPeer) int { return strings.Compare(a.Node, b.Node) })
	return p, nil
}

// Configure brings the node's side of the pod network in line with the
// snapshot's: the conflist for its pod CIDR, the kernel settings, the
// bridge with its address, the masquerade of traffic leaving the cluster,
// host-gateway routes to the site's peers and, without a default route,
// the Service CIDR's route. It is cheap to call often: with the network
// unchanged it looks at the kernel again at most every 10 s. A nil
// network (or one without a pod CIDR) changes nothing in the kernel; new
// pods then wait (ErrNoPodNetwork), attached ones keep their network.
// What could not be done is in the error, and tried again next call.
func (n *Node) Configure(ctx context.Context, w *wire.Network) error {
	p, err := parseNetwork(w)
	if err != nil {
		return err
	}
	n.configMu.Lock()
	defer n.configMu.Unlock()
	if p == nil {
		n.mu.Lock()
		n.net, n.list = nil, nil
		n.mu.Unlock()
		n.applied = nil
		return nil
	}
	changed := !p.equal(n.applied)
	if !changed && time.Since(n.lastCheck) < recheck {
		return nil
	}
	if n.applied == nil || p.podCIDR != n.applied.podCIDR {
		b, err := renderConfList(p.podCIDR, n.ipamDir())
		if err != nil {
			return err
		}
		list, err := libcni.ConfListFromBytes(b)
		if err != nil {
			return fmt.Errorf("load conflist: %w", err)
		}
		if err := writeFileAtomic(n.ConfListPath(), b); err != nil {
			return err
		}
		n.mu.Lock()
		n.list = list
		n.mu.Unlock()
	}
	n.mu.Lock()
	n.net = p
	n.mu.Unlock()
	var routeErr error
	err = inNamespace(n.netnsFD, func() error {
		if err := setSysctls(ctx); err != nil {
			return err
		}
		// Routing netlink only: without families, the handle opens
		// xfrm's and netfilter's sockets too, which a kernel without
		// CONFIG_XFRM_USER (or qemu-user) refuses.
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		if err := ensureBridge(h, p.podCIDR); err != nil {
			return err
		}
		if changed {
			if err := setMasquerade(n.netnsFD, p.podCIDR, p.clusterCIDR); err != nil {
				return err
			}
		}
		have, hasDefault, err := kernelRoutes(h)
		if err != nil {
			return err
		}
		want, werr := wantRoutes(p, n.withoutSelf(p.peers), hasDefault)
		add, del := diffRoutes(want, have)
		if len(add) > 0 || len(del) > 0 {
			n.log.Info("pod network routes", "add", describeRoutes(add), "delete", describeRoutes(del))
		}
		routeErr = errors.Join(werr, applyRoutes(h, add, del))
		return nil
	})
	if err != nil {
		return fmt.Errorf("configure the pod network: %w", err)
	}
	n.applied = p
	n.lastCheck = time.Now()
	if routeErr != nil {
		return fmt.Errorf("configure the pod network: routes to the site's peers: %w", routeErr)
	}
	return nil
}

// withoutSelf drops a peer with the node's own address (a hub that
// lists the node among its peers).
func (n *Node) withoutSelf(peers []wire.NetworkPeer) []wire.NetworkPeer {
	if !n.cfg.NodeIP.IsValid() {
		return peers
	}
	return slices.DeleteFunc(slices.Clone(peers), func(p wire.NetworkPeer) bool { return p.IP == n.cfg.NodeIP.String() })
}

// lockPod serialises the calls for one pod.
func (n *Node) lockPod(uid string) func() {
	n.mu.Lock()
	l := n.locks[uid]
	if l == nil {
		l = &podLock{}
		n.locks[uid] = l
	}
	l.users++
	n.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		n.mu.Lock()
		if l.users--; l.users == 0 {
			delete(n.locks, uid)
		}
		n.mu.Unlock()
	}
}

// Attachment returns pod uid's network as last attached, without
// looking at the kernel.
func (n *Node) Attachment(uid string) (Attachment, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	rec, ok := n.records[uid]
	if !ok {
		return Attachment{}, false
	}
	return Attachment{NetNS: n.NamespacePath(uid), IP: rec.IP}, true
}

// Attach returns the pod's network, making it if it has none: a
// namespace bound under Dir/netns and a CNI ADD, whose address is
// recorded on disk before it is returned. A pod whose namespace is there
// gets it back without a CNI call (a container's restart, an agent's
// restart). A pod with traces but no live namespace (the node rebooted,
// or an agent was killed while attaching it) has them cleaned up first
// (CNI DEL), and asks for the address it had.
func (n *Node) Attach(ctx context.Context, pod Pod) (Attachment, error) {
	if err := validUID(pod.UID); err != nil {
		return Attachment{}, err
	}
	defer n.lockPod(pod.UID)()
	path := n.NamespacePath(pod.UID)
	n.mu.Lock()
	rec, known := n.records[pod.UID]
	p, list := n.net, n.list
	n.mu.Unlock()
	if known && namespaceLive(path) {
		return Attachment{NetNS: path, IP: rec.IP}, nil
	}
	if p == nil {
		return Attachment{}, ErrNoPodNetwork
	}
	var want netip.Addr
	if known && p.podCIDR.Contains(rec.IP) && rec.IP != Gateway(p.podCIDR) {
		want = rec.IP
	}
	return n.attach(ctx, pod, p, list, want)
}

// UpdatePorts gives an attached pod the hostPorts of pod, if they
// changed: portmap takes its mappings only when a pod is attached, so the
// pod is attached again with the address it has. No container of the pod
// may run meanwhile (the caller stops them first); their next runs join
// the new namespace at the same path.
func (n *Node) UpdatePorts(ctx context.Context, pod Pod) (Attachment, error) {
	if err := validUID(pod.UID); err != nil {
		return Attachment{}, err
	}
	defer n.lockPod(pod.UID)()
	path := n.NamespacePath(pod.UID)
	n.mu.Lock()
	rec, known := n.records[pod.UID]
	p, list := n.net, n.list
	n.mu.Unlock()
	if known && namespaceLive(path) && samePorts(rec.Ports, pod.Ports) {
		return Attachment{NetNS: path, IP: rec.IP}, nil
	}
	if p == nil {
		return Attachment{}, ErrNoPodNetwork
	}
	var want netip.Addr
	if known && p.podCIDR.Contains(rec.IP) {
		want = rec.IP
	}
	return n.attach(ctx, pod, p, list, want)
}

func samePorts(a, b []PortMapping) bool {
	return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b))
}

// attach cleans up what the pod had, then makes its namespace and
// attaches it, asking for address want if valid. The caller holds the
// pod's lock.
func (n *Node) attach(ctx context.Context, pod Pod, p *parsed, list *libcni.NetworkConfigList, want netip.Addr) (Attachment, error) {
	if err := n.release(ctx, pod.UID); err != nil {
		return Attachment{}, fmt.Errorf("attach pod %s/%s: clean up its earlier network: %w", pod.Namespace, pod.Name, err)
	}
	path := n.NamespacePath(pod.UID)
	if err := newNamespace(path); err != nil {
		return Attachment{}, fmt.Errorf("attach pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	rt := n.runtimeConf(pod, path)
	if want.IsValid() {
		rt.CapabilityArgs["ips"] = []string{netip.PrefixFrom(want, p.podCIDR.Bits()).String()}
	}
	ip, err := n.add(ctx, list, rt)
	if err != nil && want.IsValid() && ctx.Err() == nil {
		// Its address is taken meanwhile: any will do.
		n.log.Info("pod's earlier address is not free; taking another", "pod", pod.Namespace+"/"+pod.Name, "ip", want, "err", err)
		if derr := n.del(ctx, list, rt); derr == nil {
			delete(rt.CapabilityArgs, "ips")
			ip, err = n.add(ctx, list, rt)
		}
	}
	if err != nil {
		// Give back whatever the plugins did; what this cannot undo is
		// found again by the next Attach or by the collection of pods no
		// longer wanted.
		if derr := n.del(context.WithoutCancel(ctx), list, rt); derr == nil {
			_ = removeNamespace(path)
		}
		return Attachment{}, fmt.Errorf("attach pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	rec := record{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, IP: ip, PodCIDR: p.podCIDR, Ports: slices.Clone(pod.Ports)}
	if err := writeRecord(n.recordDir(), rec); err != nil {
		return Attachment{}, fmt.Errorf("attach pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	n.mu.Lock()
	n.records[pod.UID] = rec
	n.mu.Unlock()
	n.log.Info("attached pod to the pod network", "pod", pod.Namespace+"/"+pod.Name, "uid", pod.UID, "ip", ip)
	return Attachment{NetNS: path, IP: ip}, nil
}

func (n *Node) runtimeConf(pod Pod, path string) *libcni.RuntimeConf {
	ports := make([]map[string]any, 0, len(pod.Ports))
	for _, pm := range pod.Ports {
		m := map[string]any{"hostPort": pm.HostPort, "containerPort": pm.ContainerPort, "protocol": pm.Protocol}
		if pm.HostIP != "" {
			m["hostIP"] = pm.HostIP
		}
		ports = append(ports, m)
	}
	return &libcni.RuntimeConf{
		ContainerID: pod.UID,
		NetNS:       path,
		IfName:      PodInterface,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_UID", pod.UID},
		},
		CapabilityArgs: map[string]any{"portMappings": ports},
	}
}

// add runs the plugins' ADD and returns the pod's IPv4 address.
func (n *Node) add(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (netip.Addr, error) {
	var res types.Result
	err := inNamespace(n.netnsFD, func() error {
		r, err := n.cni.AddNetworkList(ctx, list, rt)
		res = r
		return err
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cni add: %w", err)
	}
	cur, err := types100.NewResultFromResult(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cni add: result: %w", err)
	}
	for _, ipc := range cur.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP.To4()); ok && ipc.Address.IP.To4() != nil {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("cni add: the plugins gave the pod no IPv4 address")
}

// del runs the plugins' DEL (libcni hands them the cached result).
func (n *Node) del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	err := inNamespace(n.netnsFD, func() error { return n.cni.DelNetworkList(ctx, list, rt) })
	if err != nil {
		return fmt.Errorf("cni del: %w", err)
	}
	return nil
}

// Detach releases pod uid's network: CNI DEL (its address goes back to
// host-local, its hostPorts' rules go), then its namespace and its
// record. The pod's containers must be gone. Detaching a pod with no
// network is not an error.
func (n *Node) Detach(ctx context.Context, uid string) error {
	if err := validUID(uid); err != nil {
		return err
	}
	defer n.lockPod(uid)()
	if err := n.release(ctx, uid); err != nil {
		return fmt.Errorf("detach pod %s: %w", uid, err)
	}
	return nil
}

// release is Detach with the pod's lock held.
func (n *Node) release(ctx context.Context, uid string) error {
	path := n.NamespacePath(uid)
	n.mu.Lock()
	rec, known := n.records[uid]
	p, cur := n.net, n.list
	n.mu.Unlock()
	_, nsErr := os.Lstat(path)
	rt := &libcni.RuntimeConf{ContainerID: uid, IfName: PodInterface, Args: [][2]string{{"IgnoreUnknown", "1"}}}
	cachedConf, cachedRT, _ := n.cni.GetNetworkListCachedConfig(&libcni.NetworkConfigList{Name: NetworkName}, rt)
	if !known && nsErr != nil && cachedConf == nil && !n.allocated(uid) {
		return nil // nothing of it is left
	}
	// The configuration it was attached with: libcni's cache has it;
	// else the record's CIDR; else the node's.
	var list *libcni.NetworkConfigList
	if cachedConf != nil {
		if l, err := libcni.ConfListFromBytes(cachedConf); err == nil {
			list = l
			rt = cachedRT
		}
	}
	if list == nil {
		cidr := netip.MustParsePrefix("192.0.2.0/24") // host-local releases by pod, whatever the range
		if known {
			cidr = rec.PodCIDR
		} else if p != nil {
			cidr = p.podCIDR
		}
		if p != nil && cidr == p.podCIDR && cur != nil {
			list = cur
		} else {
			b, err := renderConfList(cidr, n.ipamDir())
			if err != nil {
				return err
			}
			if list, err = libcni.ConfListFromBytes(b); err != nil {
				return fmt.Errorf("load conflist: %w", err)
			}
		}
		if known {
			rt.CapabilityArgs = n.runtimeConf(Pod{UID: uid, Ports: rec.Ports}, "").CapabilityArgs
		}
	}
	rt.NetNS = ""
	if namespaceLive(path) {
		rt.NetNS = path
	}
	if err := n.del(ctx, list, rt); err != nil {
		return err
	}
	if err := removeNamespace(path); err != nil {
		return err
	}
	if err := removeRecord(n.recordDir(), uid); err != nil {
		return err
	}
	n.mu.Lock()
	delete(n.records, uid)
	n.mu.Unlock()
	if known || nsErr == nil {
		n.log.Info("released pod's network", "uid", uid, "ip", rec.IP)
	}
	return nil
}

// allocated says whether host-local holds an address for uid.
func (n *Node) allocated(uid string) bool {
	ids, err := allocatedIDs(n.ipamDir())
	if err != nil {
		return true // look closer: DEL is harmless
	}
	_, ok := ids[uid]
	return ok
}

// Pods returns the UIDs of every pod with something of its network on
// the node: a record, a namespace, an address host-local holds, or
// libcni's cache of its attachment. The caller detaches those no longer
// wanted, so nothing leaks whatever the moment an agent was killed.
func (n *Node) Pods() ([]string, error) {
	uids := map[string]bool{}
	n.mu.Lock()
	for uid := range n.records {
		uids[uid] = true
	}
	n.mu.Unlock()
	var errs []error
	if entries, err := os.ReadDir(n.netnsDir()); err != nil {
		errs = append(errs, fmt.Errorf("read network namespaces: %w", err))
	} else {
		for _, e := range entries {
			uids[e.Name()] = true
		}
	}
	ids, err := allocatedIDs(n.ipamDir())
	if err != nil {
		errs = append(errs, err)
	}
	for id := range ids {
		uids[id] = true
	}
	atts, err := n.cni.GetCachedAttachments("")
	if err != nil {
		errs = append(errs, fmt.Errorf("read libcni's cache: %w", err))
	}
	for _, a := range atts {
		if a.Network == NetworkName {
			uids[a.ContainerID] = true
		}
	}
	out := make([]string, 0, len(uids))
	for uid := range uids {
		if validUID(uid) == nil {
			out = append(out, uid)
		}
	}
	slices.Sort(out)
	return out, errors.Join(errs...)
}

// writeFileAtomic writes path by a synced temporary file renamed over it.
func writeFileAtomic(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// logWriter logs what the plugins write to their standard error.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(b []byte) (int, error) {
	if s := strings.TrimSpace(string(b)); s != "" {
		w.log.Warn("cni plugin said", "stderr", s)
	}
	return len(b), nil
}
