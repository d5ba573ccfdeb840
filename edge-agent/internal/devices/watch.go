package devices

import (
	"context"
	"os"
	"path"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long Run waits after a change under the dev root before
// it scans: udev makes a node, then its symlinks and permissions, in
// quick succession, and one scan takes them all.
const settle = 50 * time.Millisecond

// Run follows hot-plug until ctx ends: it watches the dev root (and the
// directories the patterns name, such as serial/by-id) with inotify and
// scans again shortly after anything changes there, and also every
// Rescan, which catches what inotify cannot see (a directory that
// appeared after it was watched, a queue that overflowed). Without
// inotify (too many watches on the board) it scans every Rescan only.
// It returns nil when ctx ends.
func (inv *Inventory) Run(ctx context.Context) error {
	var events <-chan fsnotify.Event
	var errs <-chan error
	w, err := fsnotify.NewWatcher()
	if err != nil {
		inv.log.Warn("no inotify for the dev root; scanning it periodically only", "every", inv.cfg.Rescan, "err", err)
	} else {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	// What changed between Open's scan and the watches is seen now.
	inv.rescan(w)
	tick := time.NewTicker(inv.cfg.Rescan)
	defer tick.Stop()
	wait := time.NewTimer(settle)
	wait.Stop()
	var settled <-chan time.Time
	soon := func() {
		if settled == nil {
			wait.Reset(settle)
			settled = wait.C
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			soon()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			inv.log.Warn("inotify on the dev root; scanning it again", "err", err)
			soon()
		case <-settled:
			settled = nil
			inv.rescan(w)
		case <-tick.C:
			inv.rescan(w)
		}
	}
}

// rescan scans again, and watches any directory of a pattern that
// appeared since.
func (inv *Inventory) rescan(w *fsnotify.Watcher) {
	if w != nil {
		inv.watch(w) // first: a node made in a new directory after the scan is then seen
	}
	if _, err := inv.Rescan(); err != nil {
		inv.log.Warn("scan devices", "err", err)
	}
}

// watch adds inotify watches on the dev root and on each existing
// directory the patterns name (their literal leading part). Watching a
// directory again changes nothing.
func (inv *Inventory) watch(w *fsnotify.Watcher) {
	dirs := map[string]bool{".": true}
	for _, c := range inv.cfg.Classes {
		for _, p := range c.Patterns {
			dir := path.Dir(p)
			if i := strings.IndexAny(dir, `*?[\`); i >= 0 {
				dir = path.Dir(dir[:i] + "x") // the literal directories before the first wildcard
			}
			for ; dir != "." && dir != "/"; dir = path.Dir(dir) {
				dirs[dir] = true
			}
		}
	}
	for dir := range dirs {
		full := hostPath(inv.cfg.Root, dir)
		if fi, err := os.Stat(full); err != nil || !fi.IsDir() {
			continue
		}
		if err := w.Add(full); err != nil {
			inv.log.Debug("watch a device directory", "dir", full, "err", err)
		}
	}
}
