package arm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCrossBuilds checks what arm/cross.sh (make cross) produced: one
// static, stripped binary per target for the right ELF machine, built
// without cgo, with -trimpath and the right GOARM, listed with its
// SHA-256 in SHA256SUMS.
func TestCrossBuilds(t *testing.T) {
	want := map[string]struct {
		machine elf.Machine
		class   elf.Class
		goarch  string
		goarm   string
	}{
		"amd64": {elf.EM_X86_64, elf.ELFCLASS64, "amd64", ""},
		"arm64": {elf.EM_AARCH64, elf.ELFCLASS64, "arm64", ""},
		"armv7": {elf.EM_ARM, elf.ELFCLASS32, "arm", "7"},
		"armv6": {elf.EM_ARM, elf.ELFCLASS32, "arm", "6"},
	}
	sums := readSums(t, filepath.Join(env.dist, "SHA256SUMS"))
	for _, target := range targets {
		name := "edge-agent-linux-" + target
		path := filepath.Join(env.dist, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if sums[name] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: SHA256SUMS says %q, the file is %x", name, sums[name], sum)
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		w := want[target]
		if f.Machine != w.machine || f.Class != w.class {
			t.Errorf("%s: %s %s, want %s %s", name, f.Class, f.Machine, w.class, w.machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s has an ELF interpreter: not static", name)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v", name, libs)
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s has a symbol table: not stripped (-s -w)", name)
		}
		f.Close()

		bi, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["GOARCH"] != w.goarch {
			t.Errorf("%s built with %v, want CGO_ENABLED=0, -trimpath, GOARCH=%s", name, settings, w.goarch)
		}
		if w.goarm != "" && strings.SplitN(settings["GOARM"], ",", 2)[0] != w.goarm {
			t.Errorf("%s: GOARM=%q, want %s", name, settings["GOARM"], w.goarm)
		}
		t.Logf("%s: %d KiB", name, len(b)>>10)
	}
}

func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sum, name, ok := strings.Cut(sc.Text(), "  "); ok {
			out[name] = sum
		}
	}
	return out
}

// TestVersionUnderEmulation runs every target's `edge-agent version`, the
// ARM ones under qemu-user: it names the version, commit, date and the
// platform the binary was built for, ARM variant included.
func TestVersionUnderEmulation(t *testing.T) {
	want := map[string]string{
		"amd64": "platform:   linux/amd64\n",
		"arm64": "platform:   linux/arm64\n",
		"armv7": "platform:   linux/arm/v7 (ARM variant v7, GOARM=7)\n",
		"armv6": "platform:   linux/arm/v6 (ARM variant v6, GOARM=6)\n",
	}
	for _, target := range targets {
		out, err := runTarget(t, target, "version")
		if err != nil {
			t.Fatalf("%s version: %v\n%s", target, err, out)
		}
		for _, s := range []string{"edge-agent " + buildVersion + "\n", "commit:     abc1234\n", "built:      2025-05-20T10:00:00Z\n", want[target]} {
			if !strings.Contains(out, s) {
				t.Errorf("%s version lacks %q:\n%s", target, s, out)
			}
		}
	}
}

// TestARMv7BuildRefusesARMv6 shows why there is an armv6 build: the GOARM=7
// binary does not run on a Raspberry Pi Zero's ARM1176 (emulated here),
// which has no VFPv3: it dies with SIGILL (or Go's own VFPv3 check), as
// on the board.
func TestARMv7BuildRefusesARMv6(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "qemu-arm-static", "-cpu", "arm1176",
		filepath.Join(env.dist, "edge-agent-linux-armv7"), "version").CombinedOutput()
	if err == nil {
		t.Fatalf("the armv7 build ran on an ARM1176:\n%s", out)
	}
	if !strings.Contains(string(out), "VFPv3") && !strings.Contains(string(out), "Illegal instruction") {
		t.Fatalf("the armv7 build failed on an ARM1176, but not with an illegal instruction: %v\n%s", err, out)
	}
}

// TestCheckUnderEmulation runs `edge-agent check` of every target against
// the test's containerd: every required check passes (the checks read
// /proc and /sys through qemu-user as a board's agent would), and the
// architecture check sees the CPU the binary runs on.
func TestCheckUnderEmulation(t *testing.T) {
	wantArch := map[string]string{
		"amd64": "PASS  architecture   linux/amd64",
		"arm64": "PASS  architecture   linux/arm64",
		"armv7": "PASS  architecture   linux/arm/v7 on an ARMv7 CPU (uname: armv7l)",
		"armv6": "PASS  architecture   linux/arm/v6 on an ARMv6 CPU (uname: armv6l)",
	}
	for _, target := range targets {
		stateDir := filepath.Join(t.TempDir(), "state")
		out, err := runTarget(t, target, "check", "--containerd-socket", env.ctd.Socket, "--state-dir", stateDir)
		if err != nil {
			t.Errorf("%s check: %v\n%s", target, err, out)
			continue
		}
		for _, s := range []string{wantArch[target], "PASS  containerd ", "PASS  runc ", "PASS  cgroup memory ", "ready: the agent can run here"} {
			if !strings.Contains(out, s) {
				t.Errorf("%s check lacks %q:\n%s", target, s, out)
			}
		}
	}

	// A required check failing makes the exit status non-zero.
	out, err := runTarget(t, "arm64", "check", "--containerd-socket", filepath.Join(t.TempDir(), "none.sock"), "--check-timeout", "2s")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(out, "FAIL  containerd") {
		t.Fatalf("check with no containerd: %v\n%s", err, out)
	}
}

// runTarget runs target's edge-agent with args, under qemu for ARM, on
// the board's CPU (an ARM1176 for armv6).
func runTarget(t *testing.T, target string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	argv := boardCommand(target, args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return string(out), nil
}

// TestCheckNoCgoCatchesCgo runs arm/check-nocgo.sh (make check-nocgo) on a
// module with a package that imports "C" through a dependency: it must
// fail and name that package. (CI runs it on the agent and pkg/.)
func TestCheckNoCgoCatchesCgo(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":        "module example.com/cgoprobe\n\ngo 1.22\n",
		"app/app.go":    "package app\n\nimport _ \"example.com/cgoprobe/sensor\"\n",
		"sensor/cgo.go": "package sensor\n\n// int answer(void) { return 42; }\nimport \"C\"\n\nfunc Answer() int { return int(C.answer()) }\n",
	}
	for name, content := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(env.root, "arm", "check-nocgo.sh"), "./app/...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "example.com/cgoprobe/sensor") {
		t.Fatalf("check-nocgo on a cgo dependency: %v\n%s", err, out)
	}
}
