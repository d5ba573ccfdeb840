package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/dns"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/network"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// The pod network, as the reconciler uses it. A pod that is not on the
// host network gets its network namespace (and address) before its first
// container is created; every container of the pod, every run, joins it,
// with the pod's /etc/hosts, /etc/hostname and /etc/resolv.conf mounted
// from the pod's directory. A restart finds the namespace there and makes
// no CNI call. The namespace goes after the pod's containers, and a
// collection catches what an agent killed half-way left behind.

// PodNetwork gives pods their network namespaces; package network's Node
// satisfies it, a fake satisfies it in unit tests.
type PodNetwork interface {
	// Configure applies the snapshot's network (nil: none) to the node.
	Configure(ctx context.Context, n *wire.Network) error
	// Attach returns the pod's namespace and address, making them if it
	// has none (network.ErrNoPodNetwork while the node has no pod CIDR).
	Attach(ctx context.Context, pod network.Pod) (network.Attachment, error)
	// UpdatePorts attaches the pod again if its hostPorts changed; none
	// of its containers may run.
	UpdatePorts(ctx context.Context, pod network.Pod) (network.Attachment, error)
	// Attachment returns the pod's network as last attached.
	Attachment(uid string) (network.Attachment, bool)
	// Detach releases the pod's network; its containers must be gone.
	Detach(ctx context.Context, uid string) error
	// Pods lists every pod with something of its network on the node.
	Pods() ([]string, error)
	// DNSAddress is the node's cluster DNS address, invalid without a pod
	// CIDR.
	DNSAddress() netip.Addr
}

// Waiting, and events, of a pod whose network could not be set up, as
// kubelet words them.
const (
	reasonNetworkNotReady = "NetworkNotReady"
	reasonSandboxFailed   = "FailedCreatePodSandBox"
	msgNoPodCIDR          = "network is not ready: the node has no pod CIDR yet"
	// networkGCPeriod is how often the pass looks for the networks of pods
	// that are gone.
	networkGCPeriod = 5 * time.Second
)

// onPodNetwork says whether pod's containers join a namespace of the
// pod's own: the pod is not on the host network, and the node runs pod
// networking (a snapshot without a network, from a hub that runs none,
// keeps every pod on the host's, as before).
func (r *Reconciler) onPodNetwork(pod *wire.SnapshotPod) bool {
	if pod.Spec.HostNetwork || r.cfg.Network == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.netOn
}

// configureNetwork applies the snapshot's network to the node at the
// start of a pass. A failure is logged when it changes; pods whose
// network can be made still get it.
func (r *Reconciler) configureNetwork(ctx context.Context, snap wire.Snapshot) {
	if r.cfg.Network == nil {
		return
	}
	r.mu.Lock()
	r.netOn = snap.Network != nil
	r.mu.Unlock()
	err := r.cfg.Network.Configure(ctx, snap.Network)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	r.mu.Lock()
	changed := msg != r.netErr
	r.netErr = msg
	r.mu.Unlock()
	if changed && err != nil && ctx.Err() == nil {
		r.log.Warn("configure the pod network", "err", err)
	}
}

// networkReady says whether a pod's first container may be created: its
// network can be made (the node has a pod CIDR) or is there already.
func (r *Reconciler) networkReady(pod *wire.SnapshotPod) bool {
	if !r.onPodNetwork(pod) || r.cfg.Network.DNSAddress().IsValid() {
		return true
	}
	_, ok := r.cfg.Network.Attachment(pod.UID)
	return ok
}

// podRef is what attaching pod needs: its identity and hostPorts.
func podRef(pod *wire.SnapshotPod) network.Pod {
	p := network.Pod{UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name}
	for _, c := range pod.Spec.Containers {
		for _, port := range c.Ports {
			if port.HostPort <= 0 {
				continue
			}
			proto := strings.ToLower(string(port.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			p.Ports = append(p.Ports, network.PortMapping{HostPort: port.HostPort, ContainerPort: port.ContainerPort, Protocol: proto})
		}
	}
	return p
}

// ensureNetwork returns the pod's network, making it if it has none
// (a first container, or the node rebooted), for container key. A pod on
// the host network has none. A failure is recorded for the container's
// status and back-off, and reported.
func (r *Reconciler) ensureNetwork(ctx context.Context, pod *wire.SnapshotPod, key string) (network.Attachment, bool) {
	if !r.onPodNetwork(pod) {
		return network.Attachment{}, true
	}
	att, err := r.cfg.Network.Attach(ctx, podRef(pod))
	if err != nil {
		if ctx.Err() != nil {
			return att, false
		}
		if errors.Is(err, network.ErrNoPodNetwork) {
			// Backed off as any failed create: a restart must not spin.
			r.failed(pod.UID, key, reasonCreating, errors.New(msgNoPodCIDR))
			return att, false
		}
		r.log.Warn("set up the pod's network", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		r.failed(pod.UID, key, reasonCreating, fmt.Errorf("failed to set up the pod's network: %w", err))
		r.emit(pod, "", api.EventWarning, reasonSandboxFailed, "Failed to create pod sandbox: "+err.Error())
		return att, false
	}
	if err := r.writeEtcFiles(pod, att, false); err != nil {
		r.log.Warn("write the pod's /etc files", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		r.failed(pod.UID, key, reasonConfigError, err)
		return att, false
	}
	return att, true
}

// hostname is a pod's hostname: its name, cut to a DNS label as kubelet
// cuts it.
func hostname(pod *wire.SnapshotPod) string {
	h := pod.Name
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

// etcDir holds a pod's /etc/hosts, /etc/hostname and /etc/resolv.conf.
func (r *Reconciler) etcDir(uid string) string { return filepath.Join(r.podDir(uid), "etc") }

// writeEtcFiles writes a pod's hosts and hostname files for its address,
// unless (and force is false) they were written for that address already
// by this agent. Each file is replaced whole (a new file renamed over the
// old), so a container that runs keeps what it has, and its next run
// mounts the new one.
func (r *Reconciler) writeEtcFiles(pod *wire.SnapshotPod, att network.Attachment, force bool) error {
	var done bool
	r.withPod(pod.UID, func(s *podState) { done = s.etcIP == att.IP })
	if done && !force {
		return nil
	}
	dir := r.etcDir(pod.UID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pod files: %w", err)
	}
	h := hostname(pod)
	hosts := "# Kubernetes-managed hosts file.\n" +
		"127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\n" +
		"fe00::0\tip6-mcastprefix\n" +
		"fe00::1\tip6-allnodes\n" +
		"fe00::2\tip6-allrouters\n" +
		att.IP.String() + "\t" + h + "\n"
	if err := replaceFile(filepath.Join(dir, "hosts"), []byte(hosts)); err != nil {
		return err
	}
	if err := replaceFile(filepath.Join(dir, "hostname"), []byte(h+"\n")); err != nil {
		return err
	}
	r.withPod(pod.UID, func(s *podState) { s.etcIP = att.IP })
	return nil
}

// resolvConf writes the pod's resolv.conf (dns.PodResolvConf: its
// dnsPolicy and dnsConfig, the node's cluster domain, DNS address and own
// resolv.conf) and says whether the pod mounts it: every pod on a pod
// network, and a host-network pod whose policy is not the host's.
func (r *Reconciler) resolvConf(pod *wire.SnapshotPod, snap *wire.Snapshot, onPodNet bool) (string, bool, error) {
	policy := pod.Spec.EffectiveDNSPolicy()
	if !onPodNet && (policy == api.DNSClusterFirst || policy == api.DNSDefault) {
		return "", false, nil // the board's own, as before
	}
	in := dns.PodDNS{
		Policy:        string(policy),
		HostNetwork:   !onPodNet,
		Namespace:     pod.Namespace,
		ClusterDomain: "cluster.local",
	}
	if snap.Network != nil && snap.Network.ClusterDomain != "" {
		in.ClusterDomain = snap.Network.ClusterDomain
	}
	if r.cfg.Network != nil {
		if a := r.cfg.Network.DNSAddress(); a.IsValid() {
			in.ClusterDNS = a.String()
		}
	}
	host, err := dns.ReadResolvConf(r.resolvConfPath())
	if err != nil {
		r.log.Warn("read the node's resolv.conf for a pod's", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
	in.Host = host
	if c := pod.Spec.DNSConfig; c != nil {
		in.Config = &dns.DNSConfig{Nameservers: c.Nameservers, Searches: c.Searches}
		for _, o := range c.Options {
			in.Config.Options = append(in.Config.Options, dns.DNSOption{Name: o.Name, Value: o.Value})
		}
	}
	conf, warnings, err := dns.PodResolvConf(in)
	if err != nil {
		return "", false, fmt.Errorf("pod's resolv.conf: %w", err)
	}
	if len(warnings) > 0 {
		r.emit(pod, "", api.EventWarning, "DNSConfigForming", strings.Join(warnings, "; "))
	}
	path := filepath.Join(r.etcDir(pod.UID), "resolv.conf")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", false, fmt.Errorf("pod files: %w", err)
	}
	if err := replaceFile(path, conf.Bytes()); err != nil {
		return "", false, err
	}
	return path, true, nil
}

func (r *Reconciler) resolvConfPath() string {
	if r.cfg.ResolvConf != "" {
		return r.cfg.ResolvConf
	}
	return "/etc/resolv.conf"
}

// networkSpec sets a container's network: the pod's namespace, hostname
// and files, or the host's (with the pod's resolv.conf where its policy
// asks for one).
func (r *Reconciler) networkSpec(pod *wire.SnapshotPod, snap *wire.Snapshot, cs *ContainerSpec) error {
	onPodNet := r.onPodNetwork(pod)
	if onPodNet {
		att, ok := r.cfg.Network.Attachment(pod.UID)
		if !ok {
			return fmt.Errorf("pod %s/%s has no network namespace", pod.Namespace, pod.Name)
		}
		if err := r.writeEtcFiles(pod, att, true); err != nil {
			return err
		}
		cs.NetworkNamespace, cs.Hostname = att.NetNS, hostname(pod)
		dir := r.etcDir(pod.UID)
		cs.Mounts = append(cs.Mounts,
			Mount{Source: filepath.Join(dir, "hosts"), Destination: "/etc/hosts"},
			Mount{Source: filepath.Join(dir, "hostname"), Destination: "/etc/hostname"})
	}
	path, mount, err := r.resolvConf(pod, snap, onPodNet)
	if err != nil {
		return err
	}
	if mount {
		cs.Mounts = append(cs.Mounts, Mount{Source: path, Destination: "/etc/resolv.conf"})
	}
	return nil
}

// podIPs is what a pod's status says of its addresses: its own, once
// attached; the node's, for a pod on the host network.
func (r *Reconciler) podIPs(pod *wire.SnapshotPod) (string, []api.PodIP) {
	ip := ""
	if r.cfg.Network != nil && !pod.Spec.HostNetwork {
		if att, ok := r.cfg.Network.Attachment(pod.UID); ok {
			ip = att.IP.String()
		}
	}
	if ip == "" && !r.onPodNetwork(pod) {
		ip = r.cfg.HostIP
	}
	if ip == "" {
		return "", nil
	}
	return ip, []api.PodIP{{IP: ip}}
}

// collectNetworks releases, in a worker of their own, the networks of
// pods that are gone (and whose containers are too) or that moved to the
// host network: what a pod's removal could not release, or an agent
// killed half-way left. It looks every networkGCPeriod.
func (r *Reconciler) collectNetworks(ctx context.Context, plans map[string]*podPlan, orphans map[string][]Container) {
	if r.cfg.Network == nil {
		return
	}
	now := r.now()
	r.mu.Lock()
	due := !now.Before(r.nextNetGC)
	if due {
		r.nextNetGC = now.Add(networkGCPeriod)
	}
	r.mu.Unlock()
	if !due {
		return
	}
	uids, err := r.cfg.Network.Pods()
	if err != nil {
		r.log.Warn("list the pods' networks", "err", err)
	}
	for _, uid := range uids {
		if plan := plans[uid]; plan != nil && (r.onPodNetwork(plan.pod) || len(plan.stale) > 0) {
			continue
		}
		if len(orphans[uid]) > 0 {
			continue // removePod releases it after the containers
		}
		busy := false
		r.withPod(uid, func(s *podState) { busy = s.workers[podWorker] })
		if busy {
			continue // a worker may be attaching it for a spec of before
		}
		desired := plans[uid] != nil
		r.spawn(ctx, uid, removeWorker, func(ctx context.Context) { r.releaseNetwork(ctx, uid, !desired) })
	}
}

// releaseNetwork detaches a pod's network and, for a pod no longer
// desired, removes its directory.
func (r *Reconciler) releaseNetwork(ctx context.Context, uid string, gone bool) {
	if err := r.cfg.Network.Detach(ctx, uid); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("release a pod's network", "uid", uid, "err", err)
		}
		return
	}
	if gone {
		if err := removePodVolumes(r.podDir(uid)); err != nil {
			r.log.Warn("remove pod directory", "uid", uid, "err", err)
		}
	}
	r.withPod(uid, func(s *podState) { s.etcIP = netip.Addr{} })
}

// replaceFile writes path by a new file renamed over it.
func replaceFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
