// Package diskguard keeps a Badger database from faulting on a full disk.
// Badger writes its write-ahead log (the .mem files), its value log and its
// tables through memory maps of files it creates sparse; when the filesystem
// cannot back a page of such a map the kernel raises SIGBUS, which no Go
// program survives. A Guard therefore refuses a write before Badger sees it
// unless the free space covers the write and everything Badger may still
// have to write for what it already holds: flushing its memtables to tables
// and compacting those tables. Both sides use it: the hub's object and
// metric stores, the agent's state.
package diskguard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrFull is wrapped by every refusal: the write would leave less free
// space than the store must keep.
var ErrFull = errors.New("disk full")

// FullError is a refused write: Free bytes were free, the store keeps
// Reserve free for what it holds, and the write needed Need more.
type FullError struct {
	Free, Reserve, Need int64
}

func (e *FullError) Error() string {
	return fmt.Sprintf("disk full, %d bytes free (the store keeps %d free to flush and compact what it holds; this write needs %d more)",
		max(e.Free, 0), e.Reserve, e.Need)
}

// Unwrap makes errors.Is(err, ErrFull) hold.
func (e *FullError) Unwrap() error { return ErrFull }

// The margin, and why (docs/architecture.md, "Full disks", says the same):
//
//   - Flushing a memtable writes a table about as large as the memtable's
//     write-ahead log: at most 1.08 times it, measured with random 16-byte
//     keys, empty values and no compression (tables of small values hold
//     less: 0.43 times with 20-byte values). flushFactor rounds that up.
//   - A compaction writes all its new tables before it deletes the old
//     ones, and one from level 0 into the base level can rewrite every
//     table when the keys span the whole key space, as the stores' keys
//     do. So the whole LSM tree, and the tables the flushes will add, may
//     be written once more.
//   - Values at or over Badger's value threshold go to the value log,
//     which is only rewritten by value-log GC (guarded on its own).
//   - Slack covers the rest: the header pages of the next .mem and value
//     log files, the DISCARD file's pages, manifest appends and rewrites,
//     and on tmpfs the pages just past the end of a log that replay reads.
const (
	flushFactor = 1.25
	// DefaultSlack is the slack per Badger directory.
	DefaultSlack = 512 << 10
	// entryOverhead bounds what Badger adds to an entry in its logs and
	// tables: the header, the 8-byte version, the checksum.
	entryOverhead = 40
	// txnOverhead is a transaction's commit marker.
	txnOverhead = 64
	// pointerSize is a value-log pointer in the LSM tree.
	pointerSize = 12
)

// Cost is what admitting a write takes from the free space: the bytes it
// adds to the value log, and its log bytes, which a flush turns into
// tables and a compaction may write once more.
func Cost(lsm, vlog int64) int64 {
	return vlog + int64(float64(lsm)*(1+2*flushFactor))
}

// Tally adds up a transaction's entries into the bytes they add to the
// LSM tree and to the value log, for Cost.
type Tally struct {
	// Threshold is the store's Badger ValueThreshold: values at least this
	// large go to the value log.
	Threshold int
	LSM, VLog int64
}

// Entry counts one set (a delete is an entry with no value).
func (t *Tally) Entry(keyLen, valueLen int) {
	if t.LSM == 0 {
		t.LSM = txnOverhead
	}
	if t.Threshold > 0 && valueLen >= t.Threshold {
		t.VLog += int64(keyLen + valueLen + entryOverhead)
		t.LSM += int64(keyLen + pointerSize + entryOverhead)
		return
	}
	t.LSM += int64(keyLen + valueLen + entryOverhead)
}

// Cost is the tally's Cost.
func (t *Tally) Cost() int64 { return Cost(t.LSM, t.VLog) }

// Free returns the bytes an unprivileged writer can still use on the
// filesystem holding dir.
func Free(dir string) (int64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(fs.Bavail) * int64(fs.Bsize), nil
}

// Usage is what a Badger directory holds, by kind of file.
type Usage struct {
	// Tables is the size of the LSM tree's tables (.sst).
	Tables int64
	// Logs is the space the write-ahead logs (.mem) take on disk: what
	// their memtables flush to tables.
	Logs int64
	// LogFiles counts the .mem files that hold anything.
	LogFiles int
	// ValueLog is the space the value-log files take.
	ValueLog int64
}

// Measure reads what the Badger database in dir holds. A directory that
// does not exist yet holds nothing.
func Measure(dir string) (Usage, error) {
	var u Usage
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return u, fmt.Errorf("measure %s: %w", dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		ext := filepath.Ext(name)
		if ext != ".sst" && ext != ".mem" && ext != ".vlog" {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, name), &st); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				continue // deleted by a compaction or a flush meanwhile
			}
			return u, fmt.Errorf("measure %s: %w", filepath.Join(dir, name), err)
		}
		alloc := st.Blocks * 512 // the sparse files' real use
		switch ext {
		case ".sst":
			u.Tables += max(st.Size, alloc)
		case ".mem":
			u.Logs += alloc
			if alloc > 4096 {
				u.LogFiles++
			}
		case ".vlog":
			u.ValueLog += alloc
		}
	}
	return u, nil
}

// Reserve is the free space the database in dir must keep for what it
// holds (see the margin above), slack included.
func (u Usage) Reserve(slack int64) int64 {
	flushed := int64(float64(u.Logs) * flushFactor)
	return u.Tables + 2*flushed + slack
}

// Guard admits writes to one or more Badger databases on one filesystem
// (the hub's object and metric stores share its data directory). It
// checks the free space against the reserve at most every second, or
// every tenth of a second while it refuses, and in between counts the
// cost of what it admitted, so a write costs no system call. It is safe
// for concurrent use.
type Guard struct {
	dirs  []string
	slack int64

	mu      sync.Mutex
	free    int64
	reserve int64
	spent   int64 // cost admitted since the last check
	checked time.Time
	err     error // of the last check
	full    bool  // what Full said last
}

// New guards the Badger databases in dirs, keeping slack bytes (per
// directory; DefaultSlack when 0) on top of their reserve.
func New(slack int64, dirs ...string) *Guard {
	if slack <= 0 {
		slack = DefaultSlack
	}
	return &Guard{dirs: dirs, slack: slack}
}

const (
	recheck        = time.Second
	recheckRefused = 100 * time.Millisecond
)

// Check measures the free space and the reserve now.
func (g *Guard) Check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.checkLocked()
}

func (g *Guard) checkLocked() error {
	free, reserve, err := g.measure()
	g.checked = time.Now()
	g.err = err
	if err != nil {
		return err
	}
	g.free, g.reserve, g.spent = free, reserve, 0
	return nil
}

func (g *Guard) measure() (free, reserve int64, err error) {
	free = -1
	for _, d := range g.dirs {
		f, err := Free(existing(d))
		if err != nil {
			return 0, 0, err
		}
		if free < 0 || f < free {
			free = f
		}
		u, err := Measure(d)
		if err != nil {
			return 0, 0, err
		}
		reserve += u.Reserve(g.slack)
	}
	return free, reserve, nil
}

// existing is dir or its nearest existing parent, whose filesystem dir
// will be on.
func existing(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir || strings.TrimSpace(parent) == "" {
			return dir
		}
		dir = parent
	}
}

// Admit takes cost (see Cost and Tally) from the free space, or refuses
// with a *FullError when that would leave less than the reserve.
func (g *Guard) Admit(cost int64) error { return g.admit(cost, 0) }

// AdmitCritical is Admit for small bookkeeping writes that must go on
// while ordinary ones are refused (deleting delivered entries, which is
// how space comes back): they may use up to half of the slack.
func (g *Guard) AdmitCritical(cost int64) error { return g.admit(cost, g.slack*int64(len(g.dirs))/2) }

func (g *Guard) admit(cost, allowance int64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checked) >= recheck || g.err != nil {
		if err := g.checkLocked(); err != nil {
			return fmt.Errorf("check free space: %w", err)
		}
	}
	if g.fits(cost, allowance) {
		g.spent += cost
		return nil
	}
	// Refuse on figures measured now: what was admitted since the last
	// check was counted at its worst, and flushes may have returned space.
	if g.spent > 0 || time.Since(g.checked) >= recheckRefused {
		if err := g.checkLocked(); err != nil {
			return fmt.Errorf("check free space: %w", err)
		}
		if g.fits(cost, allowance) {
			g.spent += cost
			return nil
		}
	}
	return &FullError{Free: g.free - g.spent, Reserve: g.reserve, Need: cost}
}

func (g *Guard) fits(cost, allowance int64) bool {
	return g.free-g.spent-cost >= g.reserve-allowance
}

// Room is how many bytes of cost the guard would still admit, by its
// latest check (made now if it is stale); negative when the free space is
// already under the reserve.
func (g *Guard) Room() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if time.Since(g.checked) >= recheck {
		_ = g.checkLocked() // on error the last figures stand
	}
	return g.free - g.spent - g.reserve
}

// State returns the free space and the reserve of the latest check.
func (g *Guard) State() (free, reserve int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.free - g.spent, g.reserve
}

// Full reports whether the guard is refusing ordinary writes of any size
// worth having: less than the slack of room is left. Once full it stays
// so until twice the slack is free, so that a store writing at the edge
// does not flap (each change of a node's DiskPressure is a write and an
// event on the hub).
func (g *Guard) Full() bool {
	room := g.Room()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.full {
		g.full = room < 2*g.slack
	} else {
		g.full = room < g.slack
	}
	return g.full
}

// StartReadOnly reports whether the Badger database in dir, one of those
// g guards, must open read-only: the free space is under the reserve of
// what they hold, so opening it for writing (which replays and flushes its
// logs, creates files and lets compactions run) could fault. It returns a
// *FullError when read-only cannot work either, because dir holds
// write-ahead logs that only an open for writing replays (a store stopped
// without closing, on a disk that something else then filled).
func StartReadOnly(g *Guard, dir string) (bool, error) {
	if err := g.Check(); err != nil {
		return false, err
	}
	room := g.Room()
	if room >= 0 {
		return false, nil
	}
	u, err := Measure(dir)
	if err != nil {
		return false, err
	}
	free, reserve := g.State()
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); u.LogFiles > 0 || err != nil {
		// Nothing to read without replaying a log, or no store yet.
		return false, &FullError{Free: free, Reserve: reserve, Need: -room}
	}
	return true, nil
}
