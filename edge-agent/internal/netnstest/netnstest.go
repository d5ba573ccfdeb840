// Package netnstest makes network namespaces for the agent's integration
// tests, which build a small site (a board, its pods, a peer board) out of
// them with the ip command, and runs code inside one. It needs root and
// iproute2; tests skip without them.
package netnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NeedRoot skips a test that needs root and the ip command.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and nftables")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
}

// NS is a named network namespace the test made; it is deleted when the
// test ends.
type NS struct {
	Name string
	// FD is an open descriptor of the namespace (for WithNetNS options).
	FD int
}

// New makes the namespace name, with its loopback up.
func New(t testing.TB, name string) *NS {
	t.Helper()
	_ = exec.Command("ip", "netns", "del", name).Run() // a crashed run's leftover
	IP(t, "netns", "add", name)
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	n := &NS{Name: name, FD: fd}
	t.Cleanup(func() {
		unix.Close(fd)
		_ = exec.Command("ip", "netns", "del", name).Run()
	})
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// IP runs the ip command with args, on the host.
func IP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// IP runs the ip command with args in the namespace.
func (n *NS) IP(t testing.TB, args ...string) {
	t.Helper()
	IP(t, append([]string{"-n", n.Name}, args...)...)
}

// Do runs f on a thread that is in the namespace: sockets f makes belong
// to it and keep working from any thread afterwards.
func (n *NS) Do(f func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(n.FD, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", n.Name, err)
	}
	ferr := f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine rather
		// than run other goroutines in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", n.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Sysctl reads a setting of the namespace ("net.ipv4.ip_forward").
func (n *NS) Sysctl(t testing.TB, key string) string {
	t.Helper()
	var b []byte
	err := n.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
		return err
	})
	if err != nil {
		t.Fatalf("read %s in %s: %v", key, n.Name, err)
	}
	return strings.TrimSpace(string(b))
}
