package arm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// debArch maps a cross target to the Debian architecture whose
// busybox-static runs on it: armhf is ARMv7, armel ARMv5TE (which an
// ARMv6 CPU runs).
var debArch = map[string]string{"arm64": "arm64", "armv7": "armhf", "armv6": "armel"}

// busyboxBinaries returns a static busybox per target: the host's for
// amd64, and for the ARM targets the one in Debian's busybox-static
// package of that architecture, extracted under dir. The .debs are
// downloaded once into the cache (FLOTILLA_TEST_CACHE, default
// ~/.cache/flotilla) with apt-get and a private package list, which leaves
// the machine's apt configuration alone.
func busyboxBinaries(ctx context.Context, dir string) (map[string]string, error) {
	out := map[string]string{"amd64": "/bin/busybox"}
	if _, err := os.Stat(out["amd64"]); err != nil {
		return nil, fmt.Errorf("%s: %w: apt-get install busybox-static", out["amd64"], err)
	}
	cache, err := cacheDir()
	if err != nil {
		return nil, err
	}
	debs := map[string]string{}
	var missing []string
	for target, arch := range debArch {
		debs[target] = filepath.Join(cache, "busybox-static_"+arch+".deb")
		if _, err := os.Stat(debs[target]); err != nil {
			missing = append(missing, arch)
		}
	}
	if len(missing) > 0 {
		if err := downloadDebs(ctx, cache, missing); err != nil {
			return nil, err
		}
	}
	for target, deb := range debs {
		dst := filepath.Join(dir, target)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return nil, err
		}
		if b, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, dst).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("dpkg-deb -x %s: %w\n%s", deb, err, b)
		}
		bin := filepath.Join(dst, "bin", "busybox")
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s holds no bin/busybox: %w", deb, err)
		}
		out[target] = bin
	}
	return out, nil
}

func cacheDir() (string, error) {
	dir := os.Getenv("FLOTILLA_TEST_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("cache dir: %w (set FLOTILLA_TEST_CACHE)", err)
		}
		dir = filepath.Join(base, "flotilla")
	}
	dir = filepath.Join(dir, "debs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return dir, nil
}

// downloadDebs fetches busybox-static for the Debian architectures with
// apt-get against a private sources list (the machine's Debian mirror and
// release) and list directory.
func downloadDebs(ctx context.Context, cache string, arches []string) error {
	mirror, err := debianMirror()
	if err != nil {
		return err
	}
	suite, err := debianSuite()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(cache, "apt-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	for _, d := range []string{"lists/partial", "cache/archives/partial", "parts", "out"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			return err
		}
	}
	sources := filepath.Join(work, "sources.list")
	line := fmt.Sprintf("deb [arch=%s] %s %s main\n", strings.Join(arches, ","), mirror, suite)
	if err := os.WriteFile(sources, []byte(line), 0o644); err != nil {
		return err
	}
	opts := []string{"-q",
		"-o", "Dir::Etc::SourceList=" + sources,
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(work, "parts"),
		"-o", "Dir::State::Lists=" + filepath.Join(work, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(work, "cache"),
		"-o", "APT::Sandbox::User=root",
	}
	var pkgs []string
	for _, a := range arches {
		opts = append(opts, "-o", "APT::Architectures::="+a)
		pkgs = append(pkgs, "busybox-static:"+a)
	}
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append(append([]string{}, opts...), args...)...)
		cmd.Dir = filepath.Join(work, "out")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s (private list for %s from %s): %w\n%s", args[0], strings.Join(arches, ","), mirror, err, b)
		}
		return nil
	}
	if err := apt("update"); err != nil {
		return err
	}
	if err := apt(append([]string{"download"}, pkgs...)...); err != nil {
		return err
	}
	for _, a := range arches {
		got, _ := filepath.Glob(filepath.Join(work, "out", "busybox-static_*_"+a+".deb"))
		if len(got) != 1 {
			return fmt.Errorf("apt-get download busybox-static:%s left %v", a, got)
		}
		if err := os.Rename(got[0], filepath.Join(cache, "busybox-static_"+a+".deb")); err != nil {
			return err
		}
	}
	return nil
}

// debianMirror is the first Debian archive in the machine's apt sources
// (deb822 .sources or one-line lists), not the security one.
func debianMirror() (string, error) {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, append([]string{"/etc/apt/sources.list"}, lists...)...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			var uri string
			switch {
			case fields[0] == "URIs:":
				uri = fields[1]
			case fields[0] == "deb":
				for _, f := range fields[1:] {
					if strings.Contains(f, "://") {
						uri = f
						break
					}
				}
			}
			if strings.HasSuffix(strings.TrimSuffix(uri, "/"), "/debian") {
				return strings.TrimSuffix(uri, "/"), nil
			}
		}
	}
	return "", errors.New("no Debian archive in /etc/apt/sources.list*: the ARM tests fetch busybox-static for arm64, armhf and armel from it")
}

// debianSuite is the release codename of this machine.
func debianSuite() (string, error) {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok && v != "" {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", errors.New("no VERSION_CODENAME in /etc/os-release")
}
