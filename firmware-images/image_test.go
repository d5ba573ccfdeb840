// Package firmwareimages tests the device-image recipe: it runs `make
// firmware-image` for real (debootstrap from Debian's packages) and
// inspects the tarball a board would be flashed with.
//
// The test is gated, as the issue allows, on debootstrap being installed
// (.ci/run installs it); without it the test is skipped and says what to
// install. It needs root. FLOTILLA_FIRMWARE_ARCHES (default "amd64")
// lists the architectures to build: arm64 and armv7 bootstrap their
// second stage under qemu-user and take about ten times longer.
package firmwareimages

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const testProvision = `hostname: gw-test
hub:
  url: https://hub.test.internal:8443
  token: abc123.0123456789abcdefghijklmnopqrstuv
  caFingerprint: sha256:4807e05863c45a4e81fe7c247beed368742dcc73c85e31e9388349db41279938
node:
  name: gw-test-1
  labels:
    site: lab
    role: gateway
registries:
  insecure: [registry.test.internal:5000]
`

// elfMachine is each ARCH's ELF machine and class.
var elfMachine = map[string]struct {
	machine elf.Machine
	class   elf.Class
}{
	"amd64": {elf.EM_X86_64, elf.ELFCLASS64},
	"arm64": {elf.EM_AARCH64, elf.ELFCLASS64},
	"armv7": {elf.EM_ARM, elf.ELFCLASS32},
	"armv6": {elf.EM_ARM, elf.ELFCLASS32},
}

func TestFirmwareImage(t *testing.T) {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("debootstrap not installed in CI: .ci/run must apt-get install debootstrap")
		}
		t.Skip("debootstrap not installed (apt-get install debootstrap; .ci/run installs it): the firmware image test is gated on it")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the firmware image build needs root (debootstrap, chroot)")
	}
	arches := strings.Split(os.Getenv("FLOTILLA_FIRMWARE_ARCHES"), ",")
	if arches[0] == "" {
		arches = []string{"amd64"}
	}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) { testImage(t, arch) })
	}
}

func testImage(t *testing.T, arch string) {
	want, ok := elfMachine[arch]
	if !ok {
		t.Fatalf("unknown ARCH %q", arch)
	}
	dist := t.TempDir()
	provision := filepath.Join(dist, "provision.yaml")
	if err := os.WriteFile(provision, []byte(testProvision), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cmd := exec.Command("make", "firmware-image", "ARCH="+arch, "DIST="+dist, "PROVISION="+provision, "VERSION=v0.0.0-fwtest")
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make firmware-image ARCH=%s: %v\n%s", arch, err, out)
	}
	report, _ := os.ReadFile(filepath.Join(dist, "flotilla-rootfs-bookworm-"+arch+".txt"))
	t.Logf("make firmware-image ARCH=%s took %s; steps:\n%s", arch, time.Since(start).Round(time.Second), report)

	tarball := filepath.Join(dist, "flotilla-rootfs-bookworm-"+arch+".tar.gz")
	files := readTarball(t, tarball, map[string]bool{
		"./usr/local/bin/edge-agent":                  true,
		"./etc/systemd/system/flotilla-agent.service": true,
		"./etc/flotilla/agent.yaml":                   true,
		"./etc/hostname":                              true,
		"./etc/machine-id":                            true,
		"./usr/bin/containerd":                        true,
		"./usr/sbin/runc":                             true,
		"./usr/bin/containerd-shim-runc-v2":           true,
		"./usr/lib/systemd/system/containerd.service": true,
		"./usr/lib/cni/bridge":                        true,
		"./usr/lib/cni/host-local":                    true,
		"./usr/lib/cni/portmap":                       true,
		"./usr/lib/cni/loopback":                      true,
		"./usr/lib/systemd/systemd":                   false,
		"./etc/systemd/system/multi-user.target.wants/flotilla-agent.service": false,
		"./etc/systemd/system/multi-user.target.wants/containerd.service":     false,
		"./etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service": false,
	})

	// The agent, containerd and runc are built for ARCH.
	for _, bin := range []string{"./usr/local/bin/edge-agent", "./usr/bin/containerd", "./usr/sbin/runc"} {
		f, err := elf.NewFile(bytes.NewReader(files[bin].data))
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		if f.Machine != want.machine || f.Class != want.class {
			t.Errorf("%s is %s %s, want %s %s for ARCH=%s", bin, f.Class, f.Machine, want.class, want.machine, arch)
		}
		if bin == "./usr/local/bin/edge-agent" && files[bin].mode&0o111 == 0 {
			t.Errorf("%s is not executable: %v", bin, files[bin].mode)
		}
	}

	// The unit is the repository's, enabled for multi-user.target.
	unit, err := os.ReadFile("../arm/systemd/flotilla-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files["./etc/systemd/system/flotilla-agent.service"].data, unit) {
		t.Error("the image's flotilla-agent.service differs from arm/systemd/flotilla-agent.service")
	}
	for link, target := range map[string]string{
		"./etc/systemd/system/multi-user.target.wants/flotilla-agent.service": "/etc/systemd/system/flotilla-agent.service",
		"./etc/systemd/system/multi-user.target.wants/containerd.service":     "/lib/systemd/system/containerd.service",
		"./etc/systemd/system/sysinit.target.wants/systemd-timesyncd.service": "/lib/systemd/system/systemd-timesyncd.service",
	} {
		if got := files[link].link; got != target {
			t.Errorf("%s -> %q, want %q (the service is not enabled)", link, got, target)
		}
	}

	// The config is the provisioning file's, in the agent's keys.
	var cfg struct {
		Hub              string   `json:"hub"`
		Token            string   `json:"token"`
		CAFingerprint    string   `json:"ca-fingerprint"`
		NodeName         string   `json:"node-name"`
		Label            []string `json:"label"`
		InsecureRegistry []string `json:"insecure-registry"`
		StateDir         string   `json:"state-dir"`
		ContainerdSocket string   `json:"containerd-socket"`
	}
	agentYAML := files["./etc/flotilla/agent.yaml"]
	if err := yaml.UnmarshalStrict(agentYAML.data, &cfg); err != nil {
		t.Fatalf("agent.yaml: %v\n%s", err, agentYAML.data)
	}
	if cfg.Hub != "https://hub.test.internal:8443" || cfg.Token != "abc123.0123456789abcdefghijklmnopqrstuv" ||
		cfg.CAFingerprint != "sha256:4807e05863c45a4e81fe7c247beed368742dcc73c85e31e9388349db41279938" || cfg.NodeName != "gw-test-1" ||
		strings.Join(cfg.Label, ",") != "role=gateway,site=lab" || strings.Join(cfg.InsecureRegistry, ",") != "registry.test.internal:5000" ||
		cfg.StateDir != "/var/lib/flotilla-agent" || cfg.ContainerdSocket != "/run/containerd/containerd.sock" {
		t.Errorf("agent.yaml = %+v", cfg)
	}
	if agentYAML.mode.Perm() != 0o600 {
		t.Errorf("agent.yaml mode %v, want 0600", agentYAML.mode.Perm())
	}
	if got := string(files["./etc/hostname"].data); got != "gw-test\n" {
		t.Errorf("hostname %q", got)
	}
	if len(files["./etc/machine-id"].data) != 0 {
		t.Error("/etc/machine-id is not empty: every board would share one machine id")
	}

	// The image's agent accepts its config: check reads it and fails only
	// on what this machine lacks (no containerd at the image's socket).
	agent := filepath.Join(dist, "image-edge-agent")
	cfgFile := filepath.Join(dist, "image-agent.yaml")
	os.WriteFile(agent, files["./usr/local/bin/edge-agent"].data, 0o755)
	os.WriteFile(cfgFile, agentYAML.data, 0o600)
	checkOut, err := exec.Command(agent, "check", "--config", cfgFile, "--containerd-socket", filepath.Join(dist, "none.sock"),
		"--state-dir", filepath.Join(dist, "state")).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(checkOut), "FAIL  containerd") || strings.Contains(string(checkOut), "unknown setting") {
		t.Errorf("the image's agent with its config: %v\n%s", err, checkOut)
	}
}

type entry struct {
	data []byte
	mode os.FileMode
	link string
}

// readTarball reads the entries named in want (true: read the content)
// and fails for any that is missing.
func readTarball(t *testing.T, path string, want map[string]bool) map[string]entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	got := map[string]entry{}
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		n++
		readContent, ok := want[h.Name]
		if !ok {
			continue
		}
		e := entry{mode: h.FileInfo().Mode(), link: h.Linkname}
		if readContent {
			if e.data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
		got[h.Name] = e
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("%s: no %s", filepath.Base(path), name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%s: %d entries", filepath.Base(path), n)
	return got
}
