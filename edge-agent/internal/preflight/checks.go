package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Check names, as printed.
const (
	CheckPrivileges   = "privileges"
	CheckArchitecture = "architecture"
	CheckKernel       = "kernel"
	CheckCgroups      = "cgroups"
	CheckCgroupCPU    = "cgroup cpu"
	CheckCgroupMemory = "cgroup memory"
	CheckSnapshotter  = "snapshotter"
	CheckNamespaces   = "namespaces"
	CheckSeccomp      = "seccomp"
	CheckContainerd   = "containerd"
	CheckRunc         = "runc"
	CheckStateDir     = "state dir"
	CheckClock        = "clock"
)

// memoryHint tells how to turn the memory controller on where it is most
// often off: Raspberry Pi OS.
const memoryHint = "add `cgroup_enable=memory cgroup_memory=1` to the kernel command line " +
	"(Raspberry Pi OS: the one line of /boot/firmware/cmdline.txt, /boot/cmdline.txt before bookworm) and reboot"

type checker struct {
	cfg Config
	h   Host
}

func pass(name, format string, a ...any) Result {
	return Result{Name: name, Status: Pass, Detail: fmt.Sprintf(format, a...)}
}

func warn(name, format string, a ...any) Result {
	return Result{Name: name, Status: Warn, Detail: fmt.Sprintf(format, a...)}
}

func fail(name, format string, a ...any) Result {
	return Result{Name: name, Status: Fail, Detail: fmt.Sprintf(format, a...)}
}

func (c checker) privileges() Result {
	if uid := c.h.Euid(); uid != 0 {
		return warn(CheckPrivileges, "running as uid %d: the agent runs as root (containerd's socket, mounts); some checks below may fail only for that", uid)
	}
	return pass(CheckPrivileges, "root")
}

// architecture compares the ARM variant the agent was built for with what
// the CPU reports: a GOARMv7 build on an ARMv6 board (Raspberry Pi Zero
// and 1) dies on its first VFPv3 instruction.
func (c checker) architecture() Result {
	plat := c.cfg.Platform
	parts := strings.Split(plat, "/")
	if len(parts) < 2 || parts[1] != "arm" {
		return pass(CheckArchitecture, "%s", plat)
	}
	want := 7
	if len(parts) > 2 {
		if v, err := strconv.Atoi(strings.TrimPrefix(parts[2], "v")); err == nil {
			want = v
		}
	}
	cpu, source, ok := c.cpuArchitecture()
	if !ok {
		return warn(CheckArchitecture, "%s; neither /proc/cpuinfo nor uname tells the CPU's ARM version, cannot tell whether this build fits", plat)
	}
	if cpu < want {
		return fail(CheckArchitecture, "this build is for ARMv%d but the CPU is ARMv%d (%s): use the edge-agent-linux-armv%d build", want, cpu, source, cpu)
	}
	return pass(CheckArchitecture, "%s on an ARMv%d CPU (%s)", plat, cpu, source)
}

// cpuArchitecture reads the CPU's ARM version as containerd does: "CPU
// architecture" in /proc/cpuinfo (an ARMv6 Raspberry Pi reports 7 there,
// with an "ARMv6-compatible" model name), else the machine uname reports
// (emulators show the host's /proc/cpuinfo).
func (c checker) cpuArchitecture() (version int, source string, ok bool) {
	fields := map[string]string{}
	if b, err := c.h.readFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, found := strings.Cut(line, ":")
			k = strings.ToLower(strings.TrimSpace(k))
			if _, seen := fields[k]; found && !seen {
				fields[k] = strings.TrimSpace(v)
			}
		}
	}
	if v, found := fields["cpu architecture"]; found {
		n, ok := leadingInt(v)
		if strings.EqualFold(v, "AArch64") {
			n, ok = 8, true
		}
		if ok && n == 7 && strings.HasPrefix(strings.ToLower(fields["model name"]), "armv6-compatible") {
			return 6, "/proc/cpuinfo: " + fields["model name"], true
		}
		return n, "/proc/cpuinfo", ok
	}
	m, err := c.h.Machine()
	if err != nil {
		return 0, "", false
	}
	if m == "aarch64" || m == "arm64" {
		return 8, "uname: " + m, true
	}
	if rest, found := strings.CutPrefix(m, "armv"); found {
		n, ok := leadingInt(rest)
		return n, "uname: " + m, ok
	}
	return 0, "", false
}

// leadingInt parses the digits at the start of s ("6TEJ" → 6).
func leadingInt(s string) (int, bool) {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(s[:end])
	return n, err == nil
}

func (c checker) kernel() Result {
	b, err := c.h.readFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return fail(CheckKernel, "cannot read the kernel release: %v", err)
	}
	release := strings.TrimSpace(string(b))
	major, minor, ok := kernelVersion(release)
	switch {
	case !ok:
		return warn(CheckKernel, "%s: cannot parse the version", release)
	case major < 3 || major == 3 && minor < 10:
		return fail(CheckKernel, "%s: containerd and runc need Linux 3.10 or later", release)
	case major < 4 || major == 4 && minor < 15:
		return warn(CheckKernel, "%s: works, but Linux 4.15 or later is recommended (cgroup v2 cpu controller, overlayfs fixes)", release)
	}
	return pass(CheckKernel, "%s", release)
}

// kernelVersion parses "6.1.0-rpi7-rpi-v8" into 6, 1.
func kernelVersion(release string) (int, int, bool) {
	fields := strings.SplitN(release, ".", 3)
	if len(fields) < 2 {
		return 0, 0, false
	}
	major, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0, 0, false
	}
	minor, ok := leadingInt(fields[1])
	return major, minor, ok
}

// cgroups finds the cgroup version from /proc/self/cgroup and checks that
// the cpu and memory controllers are there: /sys/fs/cgroup/cgroup.controllers
// on v2, /proc/cgroups and the process's hierarchies on v1.
func (c checker) cgroups() []Result {
	raw, err := c.h.readFile("/proc/self/cgroup")
	if err != nil {
		return []Result{fail(CheckCgroups, "cannot read /proc/self/cgroup (%v): the kernel lacks cgroups", err)}
	}
	var v1Controllers []string
	unified := false
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = true
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl != "" && !strings.HasPrefix(ctl, "name=") {
				v1Controllers = append(v1Controllers, ctl)
			}
		}
	}
	cmdline, _ := c.h.readFile("/proc/cmdline")
	if len(v1Controllers) == 0 && unified {
		return c.cgroupsV2(string(cmdline))
	}
	if len(v1Controllers) == 0 {
		return []Result{fail(CheckCgroups, "no cgroup hierarchy in /proc/self/cgroup: mount cgroup2 on /sys/fs/cgroup (systemd does this)")}
	}
	return c.cgroupsV1(v1Controllers, unified, string(cmdline))
}

func (c checker) cgroupsV2(cmdline string) []Result {
	b, err := c.h.readFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return []Result{fail(CheckCgroups, "v2 in /proc/self/cgroup, but /sys/fs/cgroup/cgroup.controllers cannot be read (%v): mount cgroup2 on /sys/fs/cgroup", err)}
	}
	available := strings.Fields(string(b))
	out := []Result{pass(CheckCgroups, "v2 (unified), controllers: %s", strings.Join(available, " "))}
	for _, ctl := range []struct{ name, check string }{{"cpu", CheckCgroupCPU}, {"memory", CheckCgroupMemory}} {
		if slices.Contains(available, ctl.name) {
			out = append(out, pass(ctl.check, "available"))
			continue
		}
		out = append(out, fail(ctl.check, "%s", missingController(ctl.name, "not in /sys/fs/cgroup/cgroup.controllers", cmdline)))
	}
	return out
}

func (c checker) cgroupsV1(mounted []string, unified bool, cmdline string) []Result {
	enabled := map[string]bool{}
	known := map[string]bool{}
	if b, err := c.h.readFile("/proc/cgroups"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 || strings.HasPrefix(f[0], "#") {
				continue
			}
			known[f[0]] = true
			enabled[f[0]] = f[3] == "1"
		}
	}
	mode := "v1 (legacy hierarchies)"
	if unified {
		mode = "v1 (hybrid: legacy hierarchies and a unified one); containerd uses the v1 controllers"
	}
	out := []Result{pass(CheckCgroups, "%s", mode)}
	for _, ctl := range []struct{ name, check string }{{"cpu", CheckCgroupCPU}, {"memory", CheckCgroupMemory}} {
		switch {
		case known[ctl.name] && !enabled[ctl.name]:
			out = append(out, fail(ctl.check, "%s", missingController(ctl.name, "disabled in /proc/cgroups", cmdline)))
		case !slices.Contains(mounted, ctl.name) && !known[ctl.name]:
			out = append(out, fail(ctl.check, "%s", missingController(ctl.name, "not built into the kernel", cmdline)))
		case !slices.Contains(mounted, ctl.name):
			out = append(out, fail(ctl.check, "enabled but not mounted: mount the %s hierarchy under /sys/fs/cgroup (systemd does this)", ctl.name))
		default:
			out = append(out, pass(ctl.check, "enabled and mounted"))
		}
	}
	return out
}

// missingController explains a missing controller and what to do.
func missingController(name, why, cmdline string) string {
	disabled := slices.ContainsFunc(strings.Fields(cmdline), func(arg string) bool {
		k, v, _ := strings.Cut(arg, "=")
		return k == "cgroup_disable" && slices.Contains(strings.Split(v, ","), name)
	})
	msg := fmt.Sprintf("the %s controller is %s", name, why)
	if disabled {
		msg += fmt.Sprintf(" (the kernel command line has cgroup_disable=%s)", name)
	}
	if name == "memory" {
		return msg + ": memory limits cannot work; " + memoryHint
	}
	return msg + ": CPU limits cannot work; use a kernel with CONFIG_CGROUP_SCHED and CONFIG_CFS_BANDWIDTH"
}

// snapshotter checks the kernel side of the agent's snapshotter: overlay
// for overlayfs (listed in /proc/filesystems, then a real mount when the
// host can), nothing for native.
func (c checker) snapshotter() Result {
	switch c.cfg.Snapshotter {
	case "native":
		return pass(CheckSnapshotter, "native: needs no kernel feature (copies every layer: slower, more disk)")
	case "overlayfs":
	default:
		return warn(CheckSnapshotter, "%s: not checked here; make sure containerd has it configured", c.cfg.Snapshotter)
	}
	fs, err := c.h.readFile("/proc/filesystems")
	if err != nil {
		return fail(CheckSnapshotter, "overlayfs: cannot read /proc/filesystems: %v", err)
	}
	hasOverlay := slices.ContainsFunc(strings.Split(string(fs), "\n"), func(line string) bool {
		f := strings.Fields(line)
		return len(f) > 0 && f[len(f)-1] == "overlay"
	})
	if !hasOverlay {
		release, _ := c.h.readFile("/proc/sys/kernel/osrelease")
		mod := filepath.Join("/lib/modules", strings.TrimSpace(string(release)), "kernel/fs/overlayfs")
		if _, err := os.Stat(c.h.path(mod)); err == nil {
			return warn(CheckSnapshotter, "overlayfs: the overlay module is not loaded yet: `modprobe overlay` (containerd's systemd unit does it at start)")
		}
		return fail(CheckSnapshotter, "overlayfs: the kernel has no overlay filesystem (CONFIG_OVERLAY_FS): use such a kernel, or run the agent and containerd with the native snapshotter (--snapshotter native)")
	}
	if c.h.MountOverlay == nil {
		return pass(CheckSnapshotter, "overlayfs: overlay is in /proc/filesystems (mount not tried)")
	}
	if err := c.h.MountOverlay(); err != nil {
		return fail(CheckSnapshotter, "overlayfs: overlay is in /proc/filesystems but a test mount failed: %v (is containerd's root on a filesystem overlay cannot use as upper layer, such as NFS or another overlay?)", err)
	}
	return pass(CheckSnapshotter, "overlayfs: mounted and wrote through a test overlay")
}

// namespaces checks /proc/self/ns: runc needs mnt, uts, ipc, pid and net;
// user and cgroup namespaces are used when there.
func (c checker) namespaces() Result {
	var missing, optionalMissing, present []string
	for _, ns := range []string{"mnt", "uts", "ipc", "pid", "net", "cgroup", "user"} {
		if _, err := os.Lstat(c.h.path("/proc/self/ns/" + ns)); err != nil {
			if ns == "cgroup" || ns == "user" {
				optionalMissing = append(optionalMissing, ns)
			} else {
				missing = append(missing, ns)
			}
			continue
		}
		present = append(present, ns)
	}
	switch {
	case len(missing) > 0:
		return fail(CheckNamespaces, "missing %s (have %s): runc needs mnt, uts, ipc, pid and net namespaces (CONFIG_NAMESPACES and friends)",
			strings.Join(missing, " "), strings.Join(present, " "))
	case len(optionalMissing) > 0:
		return warn(CheckNamespaces, "%s; missing %s (optional)", strings.Join(present, " "), strings.Join(optionalMissing, " "))
	}
	return pass(CheckNamespaces, "%s", strings.Join(present, " "))
}

// seccomp checks that the kernel filters system calls: every container
// runs under the runtime's default seccomp profile unless its manifest
// says Unconfined, and runc cannot start one without the kernel's
// support (CONFIG_SECCOMP_FILTER, whose actions Linux 4.14 and later
// list).
func (c checker) seccomp() Result {
	b, err := c.h.readFile("/proc/sys/kernel/seccomp/actions_avail")
	if err != nil {
		return fail(CheckSeccomp, "the kernel does not list seccomp filter actions (%v): containers are confined by a seccomp filter by default, "+
			"which needs CONFIG_SECCOMP_FILTER (Linux 4.14 or later); without it only pods whose securityContext sets seccompProfile type Unconfined can run", err)
	}
	return pass(CheckSeccomp, "filter actions: %s", strings.TrimSpace(string(b)))
}

func (c checker) containerd(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	v, err := c.h.ContainerdVersion(ctx, c.cfg.ContainerdSocket)
	if err != nil {
		hint := "is containerd installed and running? (apt-get install containerd; systemctl status containerd)"
		if errors.Is(err, context.DeadlineExceeded) {
			hint = fmt.Sprintf("no answer within %s: is containerd starting or stuck?", c.cfg.Timeout)
		}
		return fail(CheckContainerd, "%s: %v; %s", c.cfg.ContainerdSocket, err, hint)
	}
	major, minor, ok := kernelVersion(strings.TrimPrefix(v, "v"))
	if ok && (major < 1 || major == 1 && minor < 6) {
		return warn(CheckContainerd, "version %s at %s: 1.6 or later is recommended", v, c.cfg.ContainerdSocket)
	}
	return pass(CheckContainerd, "version %s at %s", v, c.cfg.ContainerdSocket)
}

func (c checker) runc(ctx context.Context) Result {
	path, err := c.h.LookPath("runc")
	if err != nil {
		return fail(CheckRunc, "not found: apt-get install runc (containerd's runc v2 shim runs every container with it)")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	out, err := c.h.Command(ctx, path, "--version")
	if err != nil {
		return fail(CheckRunc, "%s does not run: %v", path, err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return pass(CheckRunc, "%s (%s)", path, first)
}

// stateDir checks the free space where the agent keeps its store, logs and
// volumes (the nearest existing parent, before the first start).
func (c checker) stateDir() Result {
	dir := c.cfg.StateDir
	existing := dir
	for {
		if _, err := os.Stat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return fail(CheckStateDir, "%s: no existing parent directory", dir)
		}
		existing = parent
	}
	free, err := c.h.FreeBytes(existing)
	if err != nil {
		return fail(CheckStateDir, "%s: %v", dir, err)
	}
	where := dir
	if existing != dir {
		where = fmt.Sprintf("%s (not created yet; checked %s)", dir, existing)
	}
	switch {
	case free < FailFreeBytes:
		return fail(CheckStateDir, "%s free on %s: the agent needs at least %s for its store and logs", human(free), where, human(FailFreeBytes))
	case free < WarnFreeBytes:
		return warn(CheckStateDir, "%s free on %s: below %s, images and logs will soon fill it", human(free), where, human(WarnFreeBytes))
	}
	return pass(CheckStateDir, "%s free on %s", human(free), where)
}

func (c checker) clock() Result {
	now := c.h.Now().UTC()
	if now.Year() < MinYear {
		return fail(CheckClock, "the clock says %s: this board has no real-time clock or it is not set; enable NTP (systemd-timesyncd) or fit an RTC, since TLS to the hub fails until the time is right",
			now.Format("2006-01-02T15:04:05Z"))
	}
	return pass(CheckClock, "%s", now.Format("2006-01-02T15:04:05Z"))
}

// human prints a byte count in binary units.
func human(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}
