package reconcile

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/network"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// fakeNetwork is an in-memory PodNetwork that records what it is asked.
type fakeNetwork struct {
	mu       sync.Mutex
	podCIDR  netip.Prefix // invalid: no pod network yet
	attached map[string]network.Attachment
	ports    map[string][]network.PortMapping
	next     netip.Addr
	// made counts the namespaces made (CNI ADDs); detached, the pods
	// released, in order.
	made     int
	detached []string
	// stale holds the UIDs with traces but no attachment (Pods lists
	// them).
	stale     map[string]bool
	attachErr error
}

func newFakeNetwork(podCIDR string) *fakeNetwork {
	f := &fakeNetwork{attached: map[string]network.Attachment{}, ports: map[string][]network.PortMapping{}, stale: map[string]bool{}}
	if podCIDR != "" {
		f.podCIDR = netip.MustParsePrefix(podCIDR)
		f.next = network.Gateway(f.podCIDR)
	}
	return f
}

func (f *fakeNetwork) Configure(_ context.Context, n *wire.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n != nil && n.PodCIDR != "" && !f.podCIDR.IsValid() {
		f.podCIDR = netip.MustParsePrefix(n.PodCIDR)
		f.next = network.Gateway(f.podCIDR)
	}
	return nil
}

func (f *fakeNetwork) Attach(_ context.Context, pod network.Pod) (network.Attachment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.attached[pod.UID]; ok {
		return a, nil
	}
	if f.attachErr != nil {
		return network.Attachment{}, f.attachErr
	}
	if !f.podCIDR.IsValid() {
		return network.Attachment{}, network.ErrNoPodNetwork
	}
	f.next = f.next.Next()
	f.made++
	a := network.Attachment{NetNS: "/netns/" + pod.UID, IP: f.next}
	f.attached[pod.UID], f.ports[pod.UID] = a, pod.Ports
	delete(f.stale, pod.UID)
	return a, nil
}

func (f *fakeNetwork) UpdatePorts(ctx context.Context, pod network.Pod) (network.Attachment, error) {
	f.mu.Lock()
	same := slices.Equal(f.ports[pod.UID], pod.Ports)
	if !same {
		delete(f.attached, pod.UID)
	}
	f.mu.Unlock()
	return f.Attach(ctx, pod)
}

func (f *fakeNetwork) Attachment(uid string) (network.Attachment, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.attached[uid]
	return a, ok
}

func (f *fakeNetwork) Detach(_ context.Context, uid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.attached, uid)
	delete(f.stale, uid)
	f.detached = append(f.detached, uid)
	return nil
}

func (f *fakeNetwork) Pods() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for uid := range f.attached {
		out = append(out, uid)
	}
	for uid := range f.stale {
		out = append(out, uid)
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeNetwork) DNSAddress() netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.podCIDR.IsValid() {
		return netip.Addr{}
	}
	return network.Gateway(f.podCIDR)
}

func (f *fakeNetwork) counts() (made int, detached []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.made, slices.Clone(f.detached)
}

var testNetwork = &wire.Network{PodCIDR: "10.42.3.0/24", ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDomain: "cluster.local"}

func netHarness(t *testing.T, podCIDR string) (*harness, *fakeNetwork) {
	h := newHarness(t)
	fn := newFakeNetwork(podCIDR)
	h.net = fn
	h.rec = h.newReconciler()
	return h, fn
}

func twoContainerPod(name string) wire.SnapshotPod {
	spec := api.PodSpec{
		RestartPolicy: api.RestartAlways,
		Containers: []api.Container{
			{Name: "main", Image: "reg/web:v1", ImagePullPolicy: api.PullIfNotPresent,
				Ports: []api.ContainerPort{{ContainerPort: 80, HostPort: 8080}}},
			{Name: "side", Image: "reg/side:v1", ImagePullPolicy: api.PullIfNotPresent},
		},
	}
	return wire.SnapshotPod{UID: "uid-" + name, Name: name, Namespace: "shop", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
}

func TestPodContainersJoinOneNamespaceWithThePodsFiles(t *testing.T) {
	h, fn := netHarness(t, "")
	p := twoContainerPod("web")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}, Network: testNetwork})
	h.sync()
	made, _ := fn.counts()
	if made != 1 {
		t.Fatalf("namespaces made = %d, want 1 for the pod's two containers", made)
	}
	att, _ := fn.Attachment(p.UID)
	if fn.ports[p.UID][0] != (network.PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}) {
		t.Errorf("hostPorts handed to the network = %+v", fn.ports[p.UID])
	}
	for _, name := range []string{"main", "side"} {
		spec := h.rt.specs[ContainerID(&p, name)]
		if spec.NetworkNamespace != att.NetNS || spec.Hostname != "web" {
			t.Errorf("%s: namespace %q hostname %q, want %q and web", name, spec.NetworkNamespace, spec.Hostname, att.NetNS)
		}
		files := map[string]string{}
		for _, m := range spec.Mounts {
			b, err := os.ReadFile(m.Source)
			if err != nil {
				t.Fatalf("%s: mount %s: %v", name, m.Destination, err)
			}
			files[m.Destination] = string(b)
		}
		if !strings.Contains(files["/etc/hosts"], att.IP.String()+"\tweb\n") {
			t.Errorf("%s: /etc/hosts = %q, want a line for %s web", name, files["/etc/hosts"], att.IP)
		}
		if files["/etc/hostname"] != "web\n" {
			t.Errorf("%s: /etc/hostname = %q", name, files["/etc/hostname"])
		}
		want := "search shop.svc.cluster.local svc.cluster.local cluster.local lan\nnameserver 10.42.3.1\noptions ndots:5\n"
		if files["/etc/resolv.conf"] != want {
			t.Errorf("%s: /etc/resolv.conf = %q, want %q", name, files["/etc/resolv.conf"], want)
		}
	}
	st := h.lastStatus("web")
	if st.PodIP != att.IP.String() || len(st.PodIPs) != 1 || st.PodIPs[0].IP != att.IP.String() {
		t.Fatalf("status podIP %q podIPs %v, want %s", st.PodIP, st.PodIPs, att.IP)
	}
}

func TestRestartReusesThePodsNamespace(t *testing.T) {
	h, fn := netHarness(t, "10.42.3.0/24")
	p := twoContainerPod("web")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}, Network: testNetwork})
	h.sync()
	att, _ := fn.Attachment(p.UID)
	h.rt.takeCalls()
	h.clock.Advance(time.Second)
	h.rt.exit(h.rt.current(&p, "main"), 1)
	h.sync()
	if got := h.rt.takeCalls(); !slices.Equal(got, restartCalls) {
		t.Fatalf("restart calls = %v, want %v", got, restartCalls)
	}
	if made, _ := fn.counts(); made != 1 {
		t.Fatalf("namespaces made = %d after a restart, want the pod's one", made)
	}
	if spec := h.rt.specs[h.rt.current(&p, "main")]; spec.NetworkNamespace != att.NetNS {
		t.Fatalf("restarted run's namespace %q, want %q", spec.NetworkNamespace, att.NetNS)
	}
	if ip := h.lastStatus("web").PodIP; ip != att.IP.String() {
		t.Fatalf("podIP after restart %s, want %s", ip, att.IP)
	}
	// An agent restart finds the pod's network again, makes nothing.
	h.rec = h.newReconciler()
	h.sync()
	if made, _ := fn.counts(); made != 1 || len(h.rt.takeCalls()) != 0 {
		t.Fatalf("restarted agent: namespaces made %d, calls %v", made, h.rt.takeCalls())
	}
}

func TestPodWaitsForThePodCIDR(t *testing.T) {
	h, fn := netHarness(t, "")
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}, Network: &wire.Network{ClusterCIDR: "10.42.0.0/16"}})
	h.sync()
	if calls := h.rt.takeCalls(); slices.Contains(calls, "create main") {
		t.Fatalf("created a container without a pod network: %v", calls)
	}
	st := h.lastStatus("web")
	w := st.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != reasonCreating || !strings.Contains(w.Message, "no pod CIDR") || st.PodIP != "" {
		t.Fatalf("status = %+v, want ContainerCreating waiting for the pod CIDR and no podIP", st)
	}
	// The pod CIDR arrives.
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{p}, Network: testNetwork})
	h.sync()
	if made, _ := fn.counts(); made != 1 {
		t.Fatalf("namespaces made = %d once the pod CIDR came", made)
	}
	if c, ok := h.rt.get(ContainerID(&p, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("container not running once the pod CIDR came: %+v", c)
	}
}

func TestHostNetworkPodsKeepTheHostsNetwork(t *testing.T) {
	h, fn := netHarness(t, "10.42.3.0/24")
	h.rec.cfg.HostIP = "192.0.2.7"
	p := pod("agent", "reg/a:v1", api.RestartAlways)
	p.Spec.HostNetwork = true
	p.SpecHash = api.HashPodSpec(&p.Spec)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}, Network: testNetwork})
	h.sync()
	spec := h.rt.specs[ContainerID(&p, "main")]
	if made, _ := fn.counts(); made != 0 || spec.NetworkNamespace != "" || len(spec.Mounts) != 0 {
		t.Fatalf("host-network pod: namespaces made %d, spec namespace %q, mounts %v", made, spec.NetworkNamespace, spec.Mounts)
	}
	if st := h.lastStatus("agent"); st.PodIP != "192.0.2.7" || st.HostIP != "192.0.2.7" {
		t.Fatalf("podIP %q hostIP %q, want the node's", st.PodIP, st.HostIP)
	}
	// ClusterFirstWithHostNet: the host's network with the cluster's DNS.
	p.Spec.DNSPolicy = api.DNSClusterFirstWithHostNet
	p.SpecHash = api.HashPodSpec(&p.Spec)
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{p}, Network: testNetwork})
	h.sync()
	spec = h.rt.specs[ContainerID(&p, "main")]
	if len(spec.Mounts) != 1 || spec.Mounts[0].Destination != "/etc/resolv.conf" || spec.NetworkNamespace != "" {
		t.Fatalf("ClusterFirstWithHostNet: namespace %q mounts %+v, want the host's network and a resolv.conf", spec.NetworkNamespace, spec.Mounts)
	}
	if b, _ := os.ReadFile(spec.Mounts[0].Source); !strings.Contains(string(b), "nameserver 10.42.3.1\n") {
		t.Fatalf("ClusterFirstWithHostNet resolv.conf = %q", b)
	}
}

func TestNoNetworkInTheSnapshotKeepsPodsOnTheHost(t *testing.T) {
	h, fn := netHarness(t, "10.42.3.0/24")
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}})
	h.sync()
	if made, _ := fn.counts(); made != 0 || h.rt.specs[ContainerID(&p, "main")].NetworkNamespace != "" {
		t.Fatalf("a hub without pod networking: the pod got a namespace")
	}
}

func TestRemovedPodReleasesItsNetworkAfterItsContainers(t *testing.T) {
	h, fn := netHarness(t, "10.42.3.0/24")
	p := twoContainerPod("web")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}, Network: testNetwork})
	h.sync()
	dir := h.rec.podDir(p.UID)
	h.rt.takeCalls()
	h.desired.set(wire.Snapshot{Revision: 2, Network: testNetwork})
	h.sync()
	if _, detached := fn.counts(); !slices.Equal(detached, []string{p.UID}) {
		t.Fatalf("detached %v, want the pod's", detached)
	}
	if len(h.rt.containers) != 0 {
		t.Fatalf("containers left: %v", h.rt.containers)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("pod directory %s left: %v", dir, err)
	}
}

func TestCollectsNetworksOfPodsThatAreGone(t *testing.T) {
	h, fn := netHarness(t, "10.42.3.0/24")
	// An agent killed between a pod's last container and its network's
	// release; another between making a namespace and recording it.
	fn.attached["uid-gone"] = network.Attachment{NetNS: "/netns/uid-gone", IP: netip.MustParseAddr("10.42.3.9")}
	fn.stale["uid-half"] = true
	if err := os.MkdirAll(filepath.Join(h.rec.podDir("uid-gone"), "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}, Network: testNetwork})
	h.sync()
	_, detached := fn.counts()
	slices.Sort(detached)
	if !slices.Equal(detached, []string{"uid-gone", "uid-half"}) {
		t.Fatalf("detached %v, want the two gone pods", detached)
	}
	if _, ok := fn.Attachment(p.UID); !ok {
		t.Fatalf("the desired pod lost its network")
	}
	if _, err := os.Stat(h.rec.podDir("uid-gone")); !os.IsNotExist(err) {
		t.Fatalf("gone pod's directory left: %v", err)
	}
}

func TestFailedAttachBacksOffAndIsReported(t *testing.T) {
	h, fn := netHarness(t, "10.42.3.0/24")
	fn.attachErr = fmt.Errorf("plugin bridge failed (add): boom")
	p := pod("web", "reg/web:v1", api.RestartAlways)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{p}, Network: testNetwork})
	next := h.sync()
	if _, ok := h.rt.get(ContainerID(&p, "main")); ok {
		t.Fatalf("created a container without its network")
	}
	if !slices.Contains(h.eventReasons(), reasonSandboxFailed) {
		t.Fatalf("no %s event", reasonSandboxFailed)
	}
	w := h.lastStatus("web").ContainerStatuses[0].State.Waiting
	if w == nil || !strings.Contains(w.Message, "boom") {
		t.Fatalf("waiting = %+v, want the plugin's error", w)
	}
	if next.IsZero() || !next.After(h.clock.Now()) {
		t.Fatalf("next attempt %v: want a back-off", next)
	}
}
