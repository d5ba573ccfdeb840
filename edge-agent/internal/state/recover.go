package state

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/diskguard"
)

// ErrLocked means another process holds the state directory: a second
// agent on the same board.
var ErrLocked = errors.New("the state directory is in use by another process")

// ErrDiskFull means the store's filesystem has no room for a write, or to
// open the store; moving the store aside would not help. The error is
// also a *diskguard.FullError, which says how many bytes were free.
var ErrDiskFull = diskguard.ErrFull

// minFree is the free space below which a failed open is blamed on the
// disk rather than on the store.
const minFree = 4 << 20

// Lock takes an exclusive lock on dir/agent.lock for the life of the
// process (the returned function releases it). Badger drops the cause of
// its own lock failure, so the agent locks first, with a typed error.
func Lock(dir string) (func(), error) {
	f, err := os.OpenFile(dir+"/agent.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (is another edge-agent running?)", dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock state dir %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// OpenOrRecover opens the store in dir. A store damaged beyond opening (a
// board's power cut or a failing card can do that) is moved aside to
// dir.broken-<time> and a fresh one is made: the agent then rebuilds from
// what containerd runs (containers carry their pod's labels) and from the
// next snapshot, rather than crash-looping. It reports whether it did.
//
// The caller holds Lock. A full disk is not damage: it returns an error
// wrapping ErrDiskFull and leaves the store alone.
func OpenOrRecover(dir string, logger *slog.Logger) (*Store, bool, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s, err := Open(dir, logger)
	if err == nil {
		return s, false, nil
	}
	if errors.Is(err, ErrDiskFull) {
		return nil, false, err
	}
	var fs syscall.Statfs_t
	if serr := syscall.Statfs(parentOf(dir), &fs); serr == nil && int64(fs.Bavail)*int64(fs.Bsize) < minFree {
		return nil, false, fmt.Errorf("%w: %v", ErrDiskFull, err)
	}
	aside := fmt.Sprintf("%s.broken-%s", dir, time.Now().UTC().Format("20060102T150405Z"))
	logger.Error("agent state is damaged and cannot be opened; moving it aside and starting afresh "+
		"(running containers are re-adopted; restart counts and undelivered reports in it are lost)",
		"dir", dir, "movedTo", aside, "err", err)
	if rerr := os.Rename(dir, aside); rerr != nil {
		return nil, false, fmt.Errorf("open agent state: %v; moving it aside failed: %w", err, rerr)
	}
	s, err = Open(dir, logger)
	if err != nil {
		return nil, true, fmt.Errorf("open a fresh agent state after moving the damaged one to %s: %w", aside, err)
	}
	return s, true, nil
}

func parentOf(dir string) string {
	if i := strings.LastIndexByte(dir, '/'); i > 0 {
		return dir[:i]
	}
	return "."
}
