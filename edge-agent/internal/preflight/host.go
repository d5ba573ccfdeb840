package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd"
)

// Host is the machine the checks read. Files (/proc, /sys, /lib/modules)
// are read under Root; everything else goes through the functions, which
// tests replace. RealHost returns this machine's.
type Host struct {
	// Root prefixes every file path the checks read ("/" on a board).
	Root string
	// Now is the clock.
	Now func() time.Time
	// Euid is the effective user id of the process.
	Euid func() int
	// Machine is uname's machine field ("armv7l", "aarch64").
	Machine func() (string, error)
	// FreeBytes returns the space available to unprivileged writers on
	// the filesystem that holds path.
	FreeBytes func(path string) (uint64, error)
	// LookPath finds an executable, also in the sbin directories.
	LookPath func(name string) (string, error)
	// Command runs a program and returns its standard output.
	Command func(ctx context.Context, name string, args ...string) ([]byte, error)
	// ContainerdVersion asks the containerd at socket for its version.
	ContainerdVersion func(ctx context.Context, socket string) (string, error)
	// MountOverlay mounts and unmounts an overlay filesystem in a scratch
	// directory; nil skips that test (the check then trusts
	// /proc/filesystems).
	MountOverlay func() error
}

// RealHost is this machine. The real overlay mount test runs only as
// root, in a scratch directory under scratchParent (containerd's root is
// best: that is where its snapshots go).
func RealHost(scratchParent string) Host {
	h := Host{
		Root:              "/",
		Now:               time.Now,
		Euid:              os.Geteuid,
		Machine:           machine,
		FreeBytes:         freeBytes,
		LookPath:          lookPath,
		Command:           runCommand,
		ContainerdVersion: containerdVersion,
	}
	if os.Geteuid() == 0 {
		h.MountOverlay = func() error { return mountOverlay(scratchParent) }
	}
	return h
}

func (h Host) withDefaults() Host {
	if h.Root == "" {
		h.Root = "/"
	}
	if h.Now == nil {
		h.Now = time.Now
	}
	if h.Euid == nil {
		h.Euid = os.Geteuid
	}
	if h.Machine == nil {
		h.Machine = machine
	}
	if h.FreeBytes == nil {
		h.FreeBytes = freeBytes
	}
	if h.LookPath == nil {
		h.LookPath = lookPath
	}
	if h.Command == nil {
		h.Command = runCommand
	}
	if h.ContainerdVersion == nil {
		h.ContainerdVersion = containerdVersion
	}
	return h
}

// path returns an absolute path under the host's root.
func (h Host) path(p string) string { return filepath.Join(h.Root, p) }

// readFile reads a file under the host's root.
func (h Host) readFile(p string) ([]byte, error) { return os.ReadFile(h.path(p)) }

func machine() (string, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	b := make([]byte, 0, len(u.Machine))
	for _, c := range u.Machine {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b), nil
}

func freeBytes(path string) (uint64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(path, &fs); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return fs.Bavail * uint64(fs.Bsize), nil
}

// lookPath looks in PATH and then in the sbin directories, which a
// non-login PATH lacks and where Debian puts runc.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return out, fmt.Errorf("%s: %w: %s", name, err, ee.Stderr)
		}
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// containerdVersion dials containerd with ctx's deadline and asks its
// version service.
func containerdVersion(ctx context.Context, socket string) (string, error) {
	// A missing socket is said at once, not after the dial timeout.
	if _, err := os.Stat(socket); err != nil {
		return "", fmt.Errorf("no socket: %w", err)
	}
	timeout := DefaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	client, err := containerd.New(socket, containerd.WithTimeout(timeout),
		// Naming the runtime skips a namespace lookup made without a deadline.
		containerd.WithDefaultRuntime("io.containerd.runc.v2"))
	if err != nil {
		return "", fmt.Errorf("connect %s: %w", socket, err)
	}
	defer client.Close()
	v, err := client.Version(ctx)
	if err != nil {
		return "", fmt.Errorf("containerd version at %s: %w", socket, err)
	}
	return v.Version, nil
}

// mountOverlay mounts a one-layer overlay in a scratch directory under
// parent (or the system's temporary directory when parent does not exist)
// and unmounts it again.
func mountOverlay(parent string) error {
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "flotilla-check-overlay-")
	if err != nil {
		return fmt.Errorf("overlay mount test: %w", err)
	}
	defer os.RemoveAll(dir)
	lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("overlay mount test: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := syscall.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay in %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(merged, "probe"), []byte("ok"), 0o600); err != nil {
		_ = syscall.Unmount(merged, syscall.MNT_DETACH)
		return fmt.Errorf("write through overlay in %s: %w", dir, err)
	}
	if err := syscall.Unmount(merged, 0); err != nil {
		_ = syscall.Unmount(merged, syscall.MNT_DETACH)
		return fmt.Errorf("unmount overlay in %s: %w", dir, err)
	}
	return nil
}
