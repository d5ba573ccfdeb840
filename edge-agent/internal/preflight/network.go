package preflight

import (
	"os"
	"path/filepath"
	"strings"
)

// Checks of what the pod network needs.
const (
	CheckCNIPlugins  = "cni plugins"
	CheckBrNetfilter = "br_netfilter"
	CheckIPForward   = "ip forward"
	CheckIptables    = "iptables"
)

// cniPlugins are the plugins a pod's attachment runs.
var cniPlugins = []string{"bridge", "host-local", "portmap", "loopback"}

// cni checks that the plugins are in the agent's --cni-bin-dir.
func (c checker) cni() Result {
	dir := c.cfg.CNIBinDir
	var missing []string
	for _, p := range cniPlugins {
		fi, err := os.Stat(c.h.path(filepath.Join(dir, p)))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fail(CheckCNIPlugins, "%s missing from %s: pods off the host network cannot start; apt-get install containernetworking-plugins (or set --cni-bin-dir)",
			strings.Join(missing, ", "), dir)
	}
	return pass(CheckCNIPlugins, "%s in %s", strings.Join(cniPlugins, ", "), dir)
}

// brNetfilter checks that bridged packets pass the IPv4 hooks: without it
// a pod's reply to a pod of its node that reached it through a Service is
// not translated back. The agent loads the module and sets the switch at
// start, so a module that is only not loaded yet is a pass.
func (c checker) brNetfilter() Result {
	if b, err := c.h.readFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		if strings.TrimSpace(string(b)) == "1" {
			return pass(CheckBrNetfilter, "loaded, bridge-nf-call-iptables=1")
		}
		return pass(CheckBrNetfilter, "loaded, bridge-nf-call-iptables=0 (the agent sets it to 1 at start)")
	}
	release, _ := c.h.readFile("/proc/sys/kernel/osrelease")
	rel := strings.TrimSpace(string(release))
	if b, err := c.h.readFile(filepath.Join("/lib/modules", rel, "modules.builtin")); err == nil && strings.Contains(string(b), "/br_netfilter.ko") {
		return pass(CheckBrNetfilter, "built into the kernel")
	}
	matches, _ := filepath.Glob(c.h.path(filepath.Join("/lib/modules", rel, "kernel/net/bridge/br_netfilter.ko*")))
	if len(matches) > 0 {
		if _, err := c.h.LookPath("modprobe"); err != nil {
			return fail(CheckBrNetfilter, "the module is there but not loaded, and modprobe is missing: apt-get install kmod, or load br_netfilter at boot (/etc/modules-load.d)")
		}
		return pass(CheckBrNetfilter, "not loaded yet; the agent loads it at start (modprobe br_netfilter)")
	}
	return fail(CheckBrNetfilter, "the kernel has no br_netfilter (CONFIG_BRIDGE_NETFILTER): Services cannot answer pods on the same node; use a kernel with it")
}

// ipForward reports IPv4 forwarding, which the agent turns on.
func (c checker) ipForward() Result {
	b, err := c.h.readFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return fail(CheckIPForward, "cannot read /proc/sys/net/ipv4/ip_forward (%v): the kernel has no IPv4 networking?", err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return pass(CheckIPForward, "on")
	}
	return warn(CheckIPForward, "off: the agent turns it on when the node gets its pod CIDR (net.ipv4.ip_forward=1); a firewall that turns it off again cuts pods off")
}

// iptables: portmap (hostPort) programs its rules with the iptables
// command.
func (c checker) iptables() Result {
	p, err := c.h.LookPath("iptables")
	if err != nil {
		return warn(CheckIptables, "not found: containerPort hostPort cannot work (the portmap plugin runs iptables); apt-get install iptables")
	}
	return pass(CheckIptables, "%s", p)
}

// networkChecks are the pod network's checks, in order.
func (c checker) networkChecks() []Result {
	return []Result{c.cni(), c.brNetfilter(), c.ipForward(), c.iptables()}
}
