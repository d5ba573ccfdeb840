// Package tmpfstest gives tests a small filesystem of their own to fill:
// a tmpfs mounted for the test (which needs root) and a child process to
// fill it in, so that a store that faults on the full disk (SIGBUS kills a
// Go program outright) fails the test with its output instead of killing
// the test binary.
package tmpfstest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new directory and unmounts it
// when the test ends. The test is skipped, and says so, when not run as
// root.
func Mount(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount a %d-byte tmpfs on %s: %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file at path until the filesystem is full and returns
// how many bytes it took.
func Fill(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{0xa5}, 4096)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// ChildEnv names the variable that tells a test binary it runs as the
// child of RunChild.
const ChildEnv = "FLOTILLA_TMPFS_CHILD"

// Child returns the argument RunChild passed, and whether this process is
// that child.
func Child() (string, bool) {
	v := os.Getenv(ChildEnv)
	return v, v != ""
}

// RunChild runs the test named test again in a child process of the test
// binary, with arg for Child, and fails t with the child's output when the
// child fails or dies (a SIGBUS is reported as the signal that killed it).
// It returns the child's output.
func RunChild(t *testing.T, test, arg string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), ChildEnv+"="+arg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("the child was killed by %v:\n%s", ws.Signal(), tail(out))
			}
		}
		t.Fatalf("the child failed: %v\n%s", err, tail(out))
	}
	return string(out)
}

// tail keeps the end of a long output, and the line of a Go runtime's
// fatal error (the fault), which a crash prints before its long trace.
func tail(out []byte) []byte {
	const keep = 16 << 10
	if len(out) <= keep {
		return out
	}
	var head []byte
	if i := bytes.Index(out, []byte("fatal error:")); i >= 0 {
		line, _, _ := bytes.Cut(out[i:], []byte("\n"))
		head = append(append(head, line...), '\n')
	}
	return append(append(head, "…\n"...), out[len(out)-keep:]...)
}
