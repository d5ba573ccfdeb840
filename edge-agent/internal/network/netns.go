package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// A pod's network namespace is held by a bind mount of the namespace onto
// a file, so it lives without any process in it: between a container's
// runs, while the agent restarts, and until the pod is removed.

// newNamespace makes a network namespace and binds it onto path, which
// must not exist yet.
func newNamespace(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	f.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The thread that unshares its network namespace is never given
		// back to the scheduler: the goroutine ends locked, and the
		// runtime ends the thread with it.
		runtime.LockOSThread()
		if err = unix.Unshare(unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err = unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			err = fmt.Errorf("bind %s: %w", self, err)
		}
	}()
	wg.Wait()
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create network namespace %s: %w", path, err)
	}
	return nil
}

// namespaceLive reports whether path holds a network namespace (its bind
// mount is there): false for a missing file, or a file left by a reboot.
func namespaceLive(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// removeNamespace unmounts and removes path. A missing path is not an
// error.
func removeNamespace(path string) error {
	if namespaceLive(path) {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount network namespace %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", path, err)
	}
	return nil
}

// inNamespace runs f on a thread that is in the network namespace fd
// refers to (fd < 0: the caller's), so that what f opens, and the
// processes it starts, belong to that namespace.
func inNamespace(fd int, f func() error) error {
	if fd < 0 {
		return f()
	}
	var err error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Locked for good: the thread ends with the goroutine instead of
		// running others in the wrong namespace.
		runtime.LockOSThread()
		if err = unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("enter the node's network namespace: %w", err)
			return
		}
		err = f()
	}()
	wg.Wait()
	return err
}
