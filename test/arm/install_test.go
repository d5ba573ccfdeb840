package arm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestInstallScript runs arm/install.sh into a temporary root (DESTDIR)
// and checks what a board would get: the binary for its architecture, the
// unit (which systemd-analyze verifies), the config (which the agent
// accepts), the state directory and the enablement symlink. It also
// checks that the script refuses a missing containerd or CNI plugin, a binary for the
// wrong architecture and one that does not match SHA256SUMS.
func TestInstallScript(t *testing.T) {
	script := filepath.Join(env.root, "arm", "install.sh")
	run := func(destdir string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = append(os.Environ(), "DESTDIR="+destdir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	fakeRoot := func(t *testing.T) string {
		root := t.TempDir()
		for _, p := range []string{"usr/bin/containerd", "usr/sbin/runc",
			"usr/lib/cni/bridge", "usr/lib/cni/host-local", "usr/lib/cni/portmap", "usr/lib/cni/loopback"} {
			os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
			if err := os.WriteFile(filepath.Join(root, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	args := []string{"--dist", env.dist, "--broker", "tcp://hub.lab:1883", "--node-name", "rpi-7",
		"--label", "site=north", "--label", "role=gateway", "--insecure-registry", "registry.lab:5000"}

	t.Run("arm64 board", func(t *testing.T) {
		root := fakeRoot(t)
		out, err := run(root, append([]string{"--arch", "arm64"}, args...)...)
		if err != nil {
			t.Fatalf("install.sh: %v\n%s", err, out)
		}
		bin, err := os.ReadFile(filepath.Join(root, "usr/local/bin/edge-agent"))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(env.dist, "edge-agent-linux-arm64"))
		if string(bin) != string(want) {
			t.Fatal("installed binary is not dist/edge-agent-linux-arm64")
		}
		unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/flotilla-agent.service"))
		repoUnit, _ := os.ReadFile(filepath.Join(env.root, "arm/systemd/flotilla-agent.service"))
		if string(unit) != string(repoUnit) {
			t.Fatal("installed unit differs from arm/systemd/flotilla-agent.service")
		}
		for _, s := range []string{"Restart=always", "After=network-online.target containerd.service", "ExecStart=/usr/local/bin/edge-agent --config /etc/flotilla/agent.yaml", "StateDirectory=flotilla-agent", "WantedBy=multi-user.target"} {
			if !strings.Contains(string(unit), s) {
				t.Errorf("unit lacks %q", s)
			}
		}
		if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/flotilla-agent.service")); err != nil || target != "/etc/systemd/system/flotilla-agent.service" {
			t.Errorf("not enabled: %q %v", target, err)
		}
		for path, mode := range map[string]os.FileMode{"usr/local/bin/edge-agent": 0o755, "etc/flotilla/agent.yaml": 0o600, "var/lib/flotilla-agent": 0o700} {
			fi, err := os.Stat(filepath.Join(root, path))
			if err != nil || fi.Mode().Perm() != mode {
				t.Errorf("%s: %v %v, want mode %v", path, fi.Mode(), err, mode)
			}
		}
		var cfg map[string]any
		raw, _ := os.ReadFile(filepath.Join(root, "etc/flotilla/agent.yaml"))
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("agent.yaml: %v\n%s", err, raw)
		}
		if cfg["broker"] != "tcp://hub.lab:1883" || cfg["node-name"] != "rpi-7" || len(cfg["label"].([]any)) != 2 {
			t.Errorf("agent.yaml = %v", cfg)
		}

		// The agent takes that config: check reads every key from it.
		out, err = runTarget(t, "amd64", "check", "--config", filepath.Join(root, "etc/flotilla/agent.yaml"),
			"--containerd-socket", env.ctd.Socket, "--state-dir", filepath.Join(root, "var/lib/flotilla-agent"))
		if err != nil {
			t.Fatalf("edge-agent check with the installed config: %v\n%s", err, out)
		}

		// systemd's own verdict on the unit (a copy whose ExecStart points
		// at the binary in DESTDIR): unknown keys and bad values are
		// reported as lines naming the file.
		unitCopy := filepath.Join(t.TempDir(), "flotilla-agent.service")
		os.WriteFile(unitCopy, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/edge-agent", filepath.Join(root, "usr/local/bin/edge-agent"))), 0o644)
		vout, err := exec.Command("systemd-analyze", "verify", unitCopy).CombinedOutput()
		if errors.Is(err, exec.ErrNotFound) {
			t.Fatal("systemd-analyze not found: apt-get install systemd")
		}
		if err != nil || strings.Contains(string(vout), "flotilla-agent.service") {
			t.Errorf("systemd-analyze verify: %v\n%s", err, vout)
		}

		// A second run keeps the board's config.
		out, err = run(root, "--arch", "arm64", "--dist", env.dist, "--broker", "tcp://other:1883")
		if err != nil || !strings.Contains(out, "keeping the existing") {
			t.Fatalf("second install: %v\n%s", err, out)
		}
		if raw2, _ := os.ReadFile(filepath.Join(root, "etc/flotilla/agent.yaml")); string(raw2) != string(raw) {
			t.Fatal("a second install changed the config")
		}
	})

	t.Run("enrolling board", func(t *testing.T) {
		root := fakeRoot(t)
		fp := "sha256:" + strings.Repeat("ab", 32)
		out, err := run(root, "--arch", "armv7", "--dist", env.dist, "--hub", "https://hub.lab:8443",
			"--token", "abc123.0123456789abcdefghijklmnopqrstuv", "--ca-fingerprint", fp, "--label", "site=north")
		if err != nil {
			t.Fatalf("install.sh: %v\n%s", err, out)
		}
		var cfg map[string]any
		raw, _ := os.ReadFile(filepath.Join(root, "etc/flotilla/agent.yaml"))
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("agent.yaml: %v\n%s", err, raw)
		}
		if cfg["hub"] != "https://hub.lab:8443" || cfg["token"] != "abc123.0123456789abcdefghijklmnopqrstuv" || cfg["ca-fingerprint"] != fp {
			t.Errorf("agent.yaml = %v", cfg)
		}
		if _, ok := cfg["broker"]; ok {
			t.Errorf("agent.yaml sets a broker; the agent derives ssl://HUB:8883 from the hub URL: %v", cfg)
		}
		// The agent takes those keys.
		out, err = runTarget(t, "amd64", "check", "--config", filepath.Join(root, "etc/flotilla/agent.yaml"),
			"--containerd-socket", env.ctd.Socket, "--state-dir", filepath.Join(root, "var/lib/flotilla-agent"))
		if err != nil {
			t.Fatalf("edge-agent check with the enrolling config: %v\n%s", err, out)
		}
	})

	t.Run("detects this machine", func(t *testing.T) {
		out, err := run(fakeRoot(t), args...)
		if err != nil || !strings.Contains(out, "architecture: amd64") {
			t.Fatalf("install.sh without --arch on amd64: %v\n%s", err, out)
		}
	})

	t.Run("refuses", func(t *testing.T) {
		for name, tc := range map[string]struct {
			root func(t *testing.T) string
			args []string
			want string
		}{
			"no containerd": {func(t *testing.T) string { return t.TempDir() }, append([]string{"--arch", "armv7"}, args...), "missing containerd runc: apt-get install containerd runc"},
			"no CNI plugins": {func(t *testing.T) string {
				root := fakeRoot(t)
				os.Remove(filepath.Join(root, "usr/lib/cni/portmap"))
				return root
			}, append([]string{"--arch", "arm64"}, args...), "missing the CNI plugins portmap in"},
			"wrong binary":  {fakeRoot, []string{"--arch", "armv7", "--binary", filepath.Join(env.dist, "edge-agent-linux-arm64"), "--broker", "tcp://h:1883"}, "is an arm64 binary, this board needs arm (armv7)"},
			"no broker":     {fakeRoot, []string{"--arch", "armv6", "--dist", env.dist}, "or --broker is required"},
			"hub, no token": {fakeRoot, []string{"--arch", "armv6", "--dist", env.dist, "--hub", "https://h:8443"}, "--hub needs --token and --ca-fingerprint"},
			"bad arch":      {fakeRoot, []string{"--arch", "riscv64"}, "want amd64, arm64, armv7 or armv6"},
		} {
			t.Run(name, func(t *testing.T) {
				out, err := run(tc.root(t), tc.args...)
				if err == nil || !strings.Contains(out, tc.want) {
					t.Fatalf("err %v, output lacks %q:\n%s", err, tc.want, out)
				}
			})
		}
		// A binary that does not match SHA256SUMS.
		dist := t.TempDir()
		b, _ := os.ReadFile(filepath.Join(env.dist, "edge-agent-linux-armv7"))
		os.WriteFile(filepath.Join(dist, "edge-agent-linux-armv7"), append(b, 0), 0o755)
		sums, _ := os.ReadFile(filepath.Join(env.dist, "SHA256SUMS"))
		os.WriteFile(filepath.Join(dist, "SHA256SUMS"), sums, 0o644)
		out, err := run(fakeRoot(t), "--arch", "armv7", "--dist", dist, "--broker", "tcp://h:1883")
		if err == nil || !strings.Contains(out, "does not match") {
			t.Fatalf("a corrupted binary was installed: %v\n%s", err, out)
		}
	})
}
