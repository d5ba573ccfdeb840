package preflight

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// board is a fake machine: a filesystem root with the /proc and /sys files
// the checks read, and fake daemons.
type board struct {
	t     *testing.T
	root  string
	state string
	host  Host
	cfg   Config
}

// healthyFiles are the files of a Raspberry Pi 4 on a 64-bit kernel with
// cgroup v2, everything in place.
func healthyFiles() map[string]string {
	return map[string]string{
		"proc/self/cgroup":                            "0::/system.slice/flotilla-agent.service\n",
		"sys/fs/cgroup/cgroup.controllers":            "cpuset cpu io memory pids\n",
		"proc/cgroups":                                "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t0\t60\t1\ncpu\t0\t60\t1\nmemory\t0\t60\t1\n",
		"proc/filesystems":                            "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n",
		"proc/sys/kernel/osrelease":                   "6.1.0-rpi7-rpi-v8\n",
		"proc/cmdline":                                "console=serial0,115200 root=PARTUUID=1 rootwait cgroup_enable=memory cgroup_memory=1\n",
		"proc/cpuinfo":                                "processor\t: 0\nBogoMIPS\t: 108.00\nCPU architecture: 8\n",
		"proc/self/ns/mnt":                            "",
		"proc/self/ns/uts":                            "",
		"proc/self/ns/ipc":                            "",
		"proc/self/ns/pid":                            "",
		"proc/self/ns/net":                            "",
		"proc/self/ns/cgroup":                         "",
		"proc/self/ns/user":                           "",
		"proc/sys/kernel/seccomp/actions_avail":       "kill_process kill_thread trap errno user_notif trace log allow\n",
		"lib/modules/6.1.0-rpi7-rpi-v8/.keep":         "",
		"proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
		"proc/sys/net/ipv4/ip_forward":                "1\n",
		"usr/lib/cni/bridge":                          "#!",
		"usr/lib/cni/host-local":                      "#!",
		"usr/lib/cni/portmap":                         "#!",
		"usr/lib/cni/loopback":                        "#!",
	}
}

func newBoard(t *testing.T, edit func(files map[string]string)) *board {
	t.Helper()
	files := healthyFiles()
	if edit != nil {
		edit(files)
	}
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "usr/lib/cni/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	b := &board{t: t, root: root, state: filepath.Join(t.TempDir(), "flotilla-agent")}
	b.host = Host{
		Root:      root,
		Now:       func() time.Time { return time.Date(2025, 5, 20, 10, 0, 0, 0, time.UTC) },
		Euid:      func() int { return 0 },
		Machine:   func() (string, error) { return "aarch64", nil },
		FreeBytes: func(string) (uint64, error) { return 20 << 30, nil },
		LookPath: func(name string) (string, error) {
			return "/usr/sbin/" + name, nil
		},
		Command: func(_ context.Context, name string, args ...string) ([]byte, error) {
			return []byte("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\n"), nil
		},
		ContainerdVersion: func(context.Context, string) (string, error) { return "1.6.20~ds1", nil },
		MountOverlay:      func() error { return nil },
	}
	b.cfg = Config{StateDir: b.state, ContainerdSocket: "/run/containerd/containerd.sock", Snapshotter: "overlayfs", Platform: "linux/arm64"}
	return b
}

func (b *board) run() Report {
	b.t.Helper()
	return Run(context.Background(), b.cfg, b.host)
}

// expect runs the checks and asserts one check's status and that its
// detail holds every snippet.
func (b *board) expect(name string, want Status, snippets ...string) Report {
	b.t.Helper()
	r := b.run()
	res, ok := r.Get(name)
	if !ok {
		b.t.Fatalf("no %q result in %+v", name, r.Results)
	}
	if res.Status != want {
		b.t.Fatalf("%s = %s (%s), want %s", name, res.Status, res.Detail, want)
	}
	for _, s := range snippets {
		if !strings.Contains(res.Detail, s) {
			b.t.Fatalf("%s detail %q lacks %q", name, res.Detail, s)
		}
	}
	if want == Fail && !r.Failed() {
		b.t.Fatalf("a FAIL result but Failed() is false")
	}
	return r
}

func TestHealthyBoardPasses(t *testing.T) {
	b := newBoard(t, nil)
	r := b.run()
	for _, res := range r.Results {
		if res.Status != Pass {
			t.Errorf("%s: %s %s", res.Name, res.Status, res.Detail)
		}
	}
	if r.Failed() {
		t.Fatal("Failed() on a healthy board")
	}
	var out strings.Builder
	if err := r.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PASS  cgroups ", "v2 (unified)", "PASS  containerd ", "1.6.20", "ready: the agent can run here"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if got := strings.Count(out.String(), "\n"); got != len(r.Results)+2 {
		t.Errorf("report has %d lines for %d results:\n%s", got, len(r.Results), out.String())
	}
}

func TestCgroupV2WithoutMemory(t *testing.T) {
	b := newBoard(t, func(f map[string]string) {
		f["sys/fs/cgroup/cgroup.controllers"] = "cpuset cpu io pids\n"
		f["proc/cmdline"] = "console=tty1 root=PARTUUID=1 rootwait cgroup_disable=memory\n"
	})
	r := b.expect(CheckCgroupMemory, Fail, "cgroup_enable=memory cgroup_memory=1", "/boot/firmware/cmdline.txt", "cgroup_disable=memory")
	if res, _ := r.Get(CheckCgroupCPU); res.Status != Pass {
		t.Fatalf("cpu = %+v", res)
	}
	var out strings.Builder
	_ = r.Write(&out)
	if !strings.Contains(out.String(), "FAIL  cgroup memory") || !strings.Contains(out.String(), "not ready") {
		t.Fatalf("report:\n%s", out.String())
	}
}

func TestCgroupV2NotMounted(t *testing.T) {
	b := newBoard(t, func(f map[string]string) { delete(f, "sys/fs/cgroup/cgroup.controllers") })
	b.expect(CheckCgroups, Fail, "mount cgroup2")
}

// A Raspberry Pi OS bullseye board: cgroup v1, memory disabled by default.
func TestCgroupV1MemoryDisabled(t *testing.T) {
	b := newBoard(t, func(f map[string]string) {
		f["proc/self/cgroup"] = "6:cpu,cpuacct:/\n5:pids:/\n2:devices:/\n1:name=systemd:/\n0::/\n"
		f["proc/cgroups"] = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t6\t100\t1\ncpuacct\t6\t100\t1\nmemory\t0\t80\t0\npids\t5\t100\t1\n"
		f["proc/cmdline"] = "console=tty1 root=PARTUUID=1 rootwait\n"
	})
	b.expect(CheckCgroups, Pass, "hybrid")
	b.expect(CheckCgroupCPU, Pass)
	b.expect(CheckCgroupMemory, Fail, "disabled in /proc/cgroups", "cgroup_enable=memory")
}

func TestCgroupV1Healthy(t *testing.T) {
	b := newBoard(t, func(f map[string]string) {
		f["proc/self/cgroup"] = "4:memory:/\n1:cpu:/\n"
		f["proc/cgroups"] = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t3\t1\nmemory\t4\t42\t1\n"
	})
	b.expect(CheckCgroups, Pass, "v1 (legacy")
	b.expect(CheckCgroupMemory, Pass)
}

func TestCgroupV1NotMounted(t *testing.T) {
	b := newBoard(t, func(f map[string]string) {
		f["proc/self/cgroup"] = "1:cpu:/\n"
		f["proc/cgroups"] = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t3\t1\nmemory\t0\t1\t1\n"
	})
	b.expect(CheckCgroupMemory, Fail, "not mounted")
}

func TestNoCgroups(t *testing.T) {
	b := newBoard(t, func(f map[string]string) { delete(f, "proc/self/cgroup") })
	b.expect(CheckCgroups, Fail, "lacks cgroups")
}

func TestOverlay(t *testing.T) {
	noOverlay := func(f map[string]string) { f["proc/filesystems"] = "nodev\tsysfs\n\text4\n" }
	t.Run("not built", func(t *testing.T) {
		newBoard(t, noOverlay).expect(CheckSnapshotter, Fail, "CONFIG_OVERLAY_FS", "--snapshotter native")
	})
	t.Run("module not loaded", func(t *testing.T) {
		newBoard(t, func(f map[string]string) {
			noOverlay(f)
			f["lib/modules/6.1.0-rpi7-rpi-v8/kernel/fs/overlayfs/overlay.ko.xz"] = ""
		}).expect(CheckSnapshotter, Warn, "modprobe overlay")
	})
	t.Run("native snapshotter needs none", func(t *testing.T) {
		b := newBoard(t, noOverlay)
		b.cfg.Snapshotter = "native"
		b.expect(CheckSnapshotter, Pass, "native")
	})
	t.Run("mount fails", func(t *testing.T) {
		b := newBoard(t, nil)
		b.host.MountOverlay = func() error { return errors.New("invalid argument") }
		b.expect(CheckSnapshotter, Fail, "test mount failed", "invalid argument")
	})
	t.Run("mount not tried", func(t *testing.T) {
		b := newBoard(t, nil)
		b.host.MountOverlay = nil
		b.expect(CheckSnapshotter, Pass, "mount not tried")
	})
}

func TestNamespaces(t *testing.T) {
	newBoard(t, func(f map[string]string) { delete(f, "proc/self/ns/pid") }).expect(CheckNamespaces, Fail, "missing pid")
	newBoard(t, func(f map[string]string) { delete(f, "proc/self/ns/user") }).expect(CheckNamespaces, Warn, "missing user (optional)")
}

func TestSeccomp(t *testing.T) {
	newBoard(t, nil).expect(CheckSeccomp, Pass, "errno")
	newBoard(t, func(f map[string]string) { delete(f, "proc/sys/kernel/seccomp/actions_avail") }).
		expect(CheckSeccomp, Fail, "CONFIG_SECCOMP_FILTER", "seccompProfile type Unconfined")
}

func TestKernelVersion(t *testing.T) {
	for release, want := range map[string]Status{
		"3.4.113-sun8i\n":     Fail,
		"4.9.337-tegra\n":     Warn, // Jetson Nano's L4T
		"4.19.0-armmp\n":      Pass,
		"6.18.44-fc-v782\n":   Pass,
		"weird\n":             Warn,
		"5.10.160-legacy-rk3": Pass,
	} {
		newBoard(t, func(f map[string]string) { f["proc/sys/kernel/osrelease"] = release }).expect(CheckKernel, want)
	}
}

func TestContainerd(t *testing.T) {
	b := newBoard(t, nil)
	b.host.ContainerdVersion = func(ctx context.Context, socket string) (string, error) {
		return "", errors.New("dial unix " + socket + ": connect: no such file or directory")
	}
	b.expect(CheckContainerd, Fail, "no such file", "systemctl status containerd")

	// A daemon that does not answer: the check gives up at its timeout.
	b.cfg.Timeout = 50 * time.Millisecond
	b.host.ContainerdVersion = func(ctx context.Context, _ string) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	}
	start := time.Now()
	b.expect(CheckContainerd, Fail, "no answer within 50ms")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the check waited %s", d)
	}

	b.host.ContainerdVersion = func(context.Context, string) (string, error) { return "1.4.13", nil }
	b.expect(CheckContainerd, Warn, "1.6 or later")
}

func TestRunc(t *testing.T) {
	b := newBoard(t, nil)
	b.host.LookPath = func(name string) (string, error) { return "", exec.ErrNotFound }
	b.expect(CheckRunc, Fail, "apt-get install runc")
	b = newBoard(t, nil)
	b.host.Command = func(context.Context, string, ...string) ([]byte, error) {
		return nil, errors.New("exec format error")
	}
	b.expect(CheckRunc, Fail, "exec format error")
	newBoard(t, nil).expect(CheckRunc, Pass, "runc version 1.1.5")
}

func TestStateDirSpace(t *testing.T) {
	for free, want := range map[uint64]Status{
		50 << 20:  Fail,
		500 << 20: Warn,
		2 << 30:   Pass,
	} {
		b := newBoard(t, nil)
		var asked string
		b.host.FreeBytes = func(p string) (uint64, error) { asked = p; return free, nil }
		b.expect(CheckStateDir, want)
		// The state dir does not exist yet: its parent is checked.
		if asked != filepath.Dir(b.state) {
			t.Fatalf("free space asked of %s, want the nearest existing parent %s", asked, filepath.Dir(b.state))
		}
	}
}

func TestClock(t *testing.T) {
	b := newBoard(t, nil)
	b.host.Now = func() time.Time { return time.Unix(5, 0) }
	b.expect(CheckClock, Fail, "1970-01-01T00:00:05Z", "NTP")
	b.host.Now = func() time.Time { return time.Date(2023, 12, 31, 23, 0, 0, 0, time.UTC) }
	b.expect(CheckClock, Fail)
	b.host.Now = func() time.Time { return time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC) }
	b.expect(CheckClock, Pass)
}

func TestArchitecture(t *testing.T) {
	// A Raspberry Pi Zero or 1 (ARM1176, ARMv6) reports "CPU architecture:
	// 7"; its model name tells it apart, as containerd's matcher knows.
	piZero := func(f map[string]string) {
		f["proc/cpuinfo"] = "processor\t: 0\nmodel name\t: ARMv6-compatible processor rev 7 (v6l)\nCPU architecture: 7\n"
	}
	b := newBoard(t, piZero)
	b.cfg.Platform = "linux/arm/v7"
	b.expect(CheckArchitecture, Fail, "CPU is ARMv6", "edge-agent-linux-armv6")
	b.cfg.Platform = "linux/arm/v6"
	b.expect(CheckArchitecture, Pass, "ARMv6")

	b = newBoard(t, func(f map[string]string) {
		f["proc/cpuinfo"] = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nCPU architecture: 7\n"
	})
	b.cfg.Platform = "linux/arm/v7"
	b.expect(CheckArchitecture, Pass, "ARMv7 CPU")

	// Under qemu-user /proc/cpuinfo is the host's: uname decides.
	b = newBoard(t, func(f map[string]string) { f["proc/cpuinfo"] = "vendor_id\t: GenuineIntel\n" })
	b.host.Machine = func() (string, error) { return "armv7l", nil }
	b.cfg.Platform = "linux/arm/v7"
	b.expect(CheckArchitecture, Pass, "uname: armv7l")
	b.host.Machine = func() (string, error) { return "x86_64", nil }
	b.expect(CheckArchitecture, Warn, "cannot tell")
	b.cfg.Platform = "linux/amd64"
	b.expect(CheckArchitecture, Pass, "linux/amd64")
}

func TestNotRootWarns(t *testing.T) {
	b := newBoard(t, nil)
	b.host.Euid = func() int { return 1000 }
	b.expect(CheckPrivileges, Warn, "uid 1000")
}

func TestPodNetworkChecks(t *testing.T) {
	// A plugin missing: pods off the host network cannot start.
	b := newBoard(t, func(f map[string]string) { delete(f, "usr/lib/cni/portmap") })
	b.expect(CheckCNIPlugins, Fail, "portmap missing from /usr/lib/cni", "apt-get install containernetworking-plugins")
	// Another directory, as --cni-bin-dir gives it.
	b = newBoard(t, nil)
	b.cfg.CNIBinDir = "/opt/cni/bin"
	b.expect(CheckCNIPlugins, Fail, "bridge, host-local, portmap, loopback missing from /opt/cni/bin")

	// br_netfilter not loaded: a pass if the module is there (the agent
	// loads it), a failure if the kernel has none.
	noBr := func(f map[string]string) { delete(f, "proc/sys/net/bridge/bridge-nf-call-iptables") }
	b = newBoard(t, func(f map[string]string) {
		noBr(f)
		f["lib/modules/6.1.0-rpi7-rpi-v8/kernel/net/bridge/br_netfilter.ko.xz"] = ""
	})
	b.expect(CheckBrNetfilter, Pass, "the agent loads it")
	b = newBoard(t, noBr)
	b.expect(CheckBrNetfilter, Fail, "CONFIG_BRIDGE_NETFILTER")
	b = newBoard(t, func(f map[string]string) {
		noBr(f)
		f["lib/modules/6.1.0-rpi7-rpi-v8/modules.builtin"] = "kernel/net/bridge/bridge.ko\nkernel/net/bridge/br_netfilter.ko\n"
	})
	b.expect(CheckBrNetfilter, Pass, "built into the kernel")

	// Forwarding off: the agent turns it on, a warning.
	b = newBoard(t, func(f map[string]string) { f["proc/sys/net/ipv4/ip_forward"] = "0\n" })
	b.expect(CheckIPForward, Warn, "the agent turns it on")

	// No iptables: hostPorts cannot work.
	b = newBoard(t, nil)
	b.host.LookPath = func(name string) (string, error) {
		if name == "iptables" {
			return "", exec.ErrNotFound
		}
		return "/usr/sbin/" + name, nil
	}
	b.expect(CheckIptables, Warn, "hostPort cannot work")
}
