// Package arm holds the ARM tests: the cross builds themselves, agents for
// arm64, armv7 and armv6 running under qemu-user against a real hub and
// containerd and running pods of ARM images, edge-agent check under
// emulation, the install script, the board profiles, and a 32-bit soak of
// the agent's Badger store.
//
// They need root, Debian's containerd, runc, docker-registry,
// busybox-static and qemu-user-static, and Debian's busybox-static .debs
// for arm64, armhf and armel (fetched once with apt-get into a private
// list directory and cached, see debs_test.go). TestMain registers
// qemu's binfmt_misc handlers with the F flag (arm/binfmt.sh), so runc can
// start foreign containers. Anything missing fails the run, naming the
// package to install.
package arm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
)

// env is what TestMain set up; tests read it.
var env struct {
	root string // the module root
	dir  string
	// dist holds arm/cross.sh's output: edge-agent-linux-{amd64,arm64,armv7,armv6},
	// hub-linux-amd64 and SHA256SUMS.
	dist string
	ctd  *harness.Containerd
	reg  *harness.Registry
	// busybox is the busybox-static binary per target (amd64, arm64,
	// armv7, armv6), extracted from Debian's packages.
	busybox map[string]string
}

// targets are the cross builds, as arm/cross.sh names them.
var targets = []string{"amd64", "arm64", "armv7", "armv6"}

// buildVersion is stamped into the test builds, to check `version`.
const buildVersion = "v0.0.0-armtest"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "FAIL: the ARM tests need root: they register binfmt handlers and run containerd and runc")
		return 1
	}
	// Cold cross builds of four targets take minutes on a 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "flotilla-arm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	env.dir = dir
	defer os.RemoveAll(dir)
	if err := setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: set up the ARM test environment:", err)
		teardown()
		return 1
	}
	code := m.Run()
	if code != 0 {
		if env.ctd != nil {
			fmt.Fprintf(os.Stderr, "--- containerd log (tail)\n%s\n", env.ctd.Logs())
		}
		if env.reg != nil {
			fmt.Fprintf(os.Stderr, "--- registry log (tail)\n%s\n", env.reg.Logs())
		}
	}
	teardown()
	return code
}

func setup(ctx context.Context) error {
	start := time.Now()
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	env.root = root
	for _, q := range []string{"qemu-aarch64-static", "qemu-arm-static"} {
		if _, err := exec.LookPath(q); err != nil {
			return fmt.Errorf("%s not found: apt-get install qemu-user-static", q)
		}
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(root, "arm", "binfmt.sh")).CombinedOutput(); err != nil {
		return fmt.Errorf("arm/binfmt.sh: %w\n%s", err, out)
	}
	env.busybox, err = busyboxBinaries(ctx, filepath.Join(env.dir, "busybox"))
	if err != nil {
		return err
	}
	buildStart := time.Now()
	env.dist = filepath.Join(env.dir, "dist")
	if err := crossBuild(ctx, "edge-agent", targets...); err != nil {
		return err
	}
	if err := crossBuild(ctx, "hub", "amd64"); err != nil {
		return err
	}
	buildTime := time.Since(buildStart)
	if env.ctd, err = harness.StartContainerd(ctx, filepath.Join(env.dir, "ctd")); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	if env.reg, err = harness.StartRegistry(ctx, filepath.Join(env.dir, "registry")); err != nil {
		return fmt.Errorf("start registry: %w", err)
	}
	fmt.Fprintf(os.Stderr, "arm environment ready in %s (cross builds %s)\n",
		time.Since(start).Round(time.Millisecond), buildTime.Round(time.Millisecond))
	return nil
}

// crossBuild runs arm/cross.sh as `make cross` does, into env.dist.
func crossBuild(ctx context.Context, binary string, targets ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(env.root, "arm", "cross.sh"), targets...)
	cmd.Dir = env.root
	cmd.Env = append(os.Environ(), "DIST="+env.dist, "BINARIES="+binary,
		"VERSION="+buildVersion, "COMMIT=abc1234", "DATE=2025-05-20T10:00:00Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("arm/cross.sh %v: %w\n%s", targets, err, out)
	}
	return nil
}

func teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if env.reg != nil {
		_ = env.reg.Stop()
	}
	if env.ctd != nil {
		if err := env.ctd.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "teardown containerd:", err)
		}
	}
}

// emulator returns the command that runs a target's binary: directly on
// amd64, under qemu-user with its default CPU otherwise. That CPU says
// armv7l to uname even for the armv6 build, as an ARMv6 Raspberry Pi says
// "CPU architecture: 7" in /proc/cpuinfo: the agent must pick its image
// variant from its build, not from what the machine reports.
func emulator(target string) []string {
	switch target {
	case "arm64":
		return []string{"qemu-aarch64-static"}
	case "armv7", "armv6":
		return []string{"qemu-arm-static"}
	}
	return nil
}

// boardEmulator is emulator with the armv6 build on an emulated ARM1176,
// the Raspberry Pi Zero's CPU.
func boardEmulator(target string) []string {
	if target == "armv6" {
		return []string{"qemu-arm-static", "-cpu", "arm1176"}
	}
	return emulator(target)
}

// agentCommand is the argv that runs target's edge-agent with args.
func agentCommand(target string, args ...string) []string {
	return append(append(emulator(target), filepath.Join(env.dist, "edge-agent-linux-"+target)), args...)
}

// boardCommand is agentCommand on the board's own CPU.
func boardCommand(target string, args ...string) []string {
	return append(append(boardEmulator(target), filepath.Join(env.dist, "edge-agent-linux-"+target)), args...)
}
