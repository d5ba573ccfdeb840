// Package e2e holds Flotilla's end-to-end tests: the real hub and agent
// binaries, a real containerd with runc, a real OCI registry and, for
// interop, a real Mosquitto, all started by TestMain. They need root and
// Debian's containerd, runc, docker-registry, mosquitto and busybox-static
// packages, and socat (a serial port for the device tests); a missing part
// fails the run, it does not skip it.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
	"github.com/flotilla-edge/flotilla/test/images"
)

// env is the shared test environment TestMain builds.
var env struct {
	dir      string
	hubBin   string
	agentBin string
	ctd      *harness.Containerd
	reg      *harness.Registry
	mosq     *harness.Mosquitto
	regPort  int
	// image is a busybox image in the registry; image2 is the same content
	// under another tag.
	image, image2 string
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "FAIL: the end-to-end tests need root: they run containerd and runc")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "flotilla-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	env.dir = dir
	defer os.RemoveAll(dir)

	if err := setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: set up the end-to-end environment:", err)
		teardown()
		return 1
	}
	code := m.Run()
	if code != 0 {
		printDaemonLogs()
	}
	teardown()
	return code
}

func setup(ctx context.Context) error {
	start := time.Now()
	if err := buildBinaries(ctx); err != nil {
		return err
	}
	var err error
	if env.ctd, err = harness.StartContainerd(ctx, filepath.Join(env.dir, "containerd")); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	// The registry listens on every address, so agents in site namespaces
	// can pull through their link (see siteImage); host agents use loopback.
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	if env.reg, err = harness.StartRegistryAt(ctx, filepath.Join(env.dir, "registry"), fmt.Sprintf("0.0.0.0:%d", port)); err != nil {
		return fmt.Errorf("start registry: %w", err)
	}
	env.reg.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	env.regPort = port
	if env.mosq, err = harness.StartMosquitto(ctx, filepath.Join(env.dir, "mosquitto")); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	img, err := images.BuildBusybox("amd64")
	if err != nil {
		return fmt.Errorf("build test image: %w", err)
	}
	env.image = env.reg.Addr + "/e2e/busybox:v1"
	env.image2 = env.reg.Addr + "/e2e/busybox:v2"
	for _, ref := range []string{env.image, env.image2} {
		if _, err := images.Push(ctx, img, ref); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	fmt.Fprintf(os.Stderr, "e2e environment ready in %s: containerd %s, registry %s, mosquitto %s\n",
		time.Since(start).Round(time.Millisecond), env.ctd.Socket, env.reg.Addr, env.mosq.URL)
	return nil
}

// buildBinaries builds the hub and the agent as a user would.
func buildBinaries(ctx context.Context) error {
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	env.hubBin = filepath.Join(env.dir, "bin", "hub")
	env.agentBin = filepath.Join(env.dir, "bin", "edge-agent")
	for out, pkg := range map[string]string{env.hubBin: "./hub/cmd/hub", env.agentBin: "./edge-agent/cmd/edge-agent"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
	}
	return nil
}

func printDaemonLogs() {
	if env.ctd != nil {
		fmt.Fprintf(os.Stderr, "--- containerd log (tail)\n%s\n", env.ctd.Logs())
	}
	if env.reg != nil {
		fmt.Fprintf(os.Stderr, "--- registry log (tail)\n%s\n", env.reg.Logs())
	}
	if env.mosq != nil {
		fmt.Fprintf(os.Stderr, "--- mosquitto log (tail)\n%s\n", env.mosq.Logs())
	}
}

func teardown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if env.mosq != nil {
		_ = env.mosq.Stop()
	}
	if env.reg != nil {
		_ = env.reg.Stop()
	}
	if env.ctd != nil {
		if err := env.ctd.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "teardown containerd:", err)
		}
	}
}
