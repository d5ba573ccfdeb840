package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// On-disk layout, under the agent's {state-dir}/logs:
//
//	{namespace}_{pod}_{uid}/{container}/{run}.log          the live file of run {run}
//	{namespace}_{pod}_{uid}/{container}/{run}.log.{start}  its rotated part: the bytes
//	                                                       [start, start+size) of the run
//
// {run} is the container's restart count when it started. The containerd
// shim appends to the live file (it opens it O_APPEND), so rotation copies
// the live file to a new rotated part and truncates it: the shim's next
// write lands at offset 0. A run's bytes are addressed by their offset in
// everything the run ever wrote; the live file starts at the end of the
// rotated part (or at 0 when there is none).

// runFiles is one run's files.
type runFiles struct {
	run      int32
	live     string // path; may not exist
	liveSize int64
	seg      string // rotated part's path, "" if none
	segStart int64
	segSize  int64
	modTime  time.Time // newest modification of either file
}

// base is the offset of the live file's first byte.
func (r *runFiles) base() int64 {
	if r.seg == "" {
		return 0
	}
	return r.segStart + r.segSize
}

// start is the oldest offset still on disk.
func (r *runFiles) start() int64 {
	if r.seg != "" {
		return r.segStart
	}
	return r.base()
}

// end is the offset just past the last byte written.
func (r *runFiles) end() int64 { return r.base() + r.liveSize }

// size is the bytes on disk.
func (r *runFiles) size() int64 { return r.liveSize + r.segSize }

// scanContainer lists the runs in one container's directory. Stray files
// are ignored; of several rotated parts of one run (left by a crash), the
// newest is used and the others reported in extra for removal.
func scanContainer(dir string) (runs map[int32]*runFiles, extra []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	runs = map[int32]*runFiles{}
	get := func(run int32) *runFiles {
		r := runs[run]
		if r == nil {
			r = &runFiles{run: run, live: filepath.Join(dir, strconv.Itoa(int(run))+".log")}
			runs[run] = r
		}
		return r
	}
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(name, ".log")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 32)
		if err != nil || n < 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		r := get(int32(n))
		if info.ModTime().After(r.modTime) {
			r.modTime = info.ModTime()
		}
		switch {
		case rest == "":
			r.liveSize = info.Size()
		case strings.HasPrefix(rest, "."):
			start, err := strconv.ParseInt(rest[1:], 10, 64)
			if err != nil || start < 0 {
				if !strings.HasSuffix(rest, ".tmp") {
					continue
				}
				extra = append(extra, filepath.Join(dir, name))
				continue
			}
			if r.seg != "" {
				if start < r.segStart {
					extra = append(extra, filepath.Join(dir, name))
					continue
				}
				extra = append(extra, r.seg)
			}
			r.seg, r.segStart, r.segSize = filepath.Join(dir, name), start, info.Size()
		}
	}
	return runs, extra, nil
}

// readRange reads up to limit bytes of the run from offset from (moved up
// to the oldest byte still on disk; skipped says by how much).
func readRange(r *runFiles, from, limit int64) (data []byte, next, skipped int64, err error) {
	if from < r.start() {
		skipped = r.start() - from
		from = r.start()
	}
	end := r.end()
	if from > end {
		from = end
	}
	n := min(end-from, limit)
	if n <= 0 {
		return nil, from, skipped, nil
	}
	buf := make([]byte, 0, n)
	base := r.base()
	if from < base {
		part, err := readAt(r.seg, from-r.segStart, min(n, base-from))
		if err != nil {
			return nil, from, skipped, err
		}
		buf = append(buf, part...)
	}
	if rest := n - int64(len(buf)); rest > 0 {
		off := from + int64(len(buf)) - base
		part, err := readAt(r.live, off, rest)
		if err != nil {
			return nil, from, skipped, err
		}
		buf = append(buf, part...)
	}
	return buf, from + int64(len(buf)), skipped, nil
}

func readAt(path string, off, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return buf[:m], nil
}

// tailOffset returns the offset where the last n lines of the run begin
// (a last line without its newline counts as a line).
func tailOffset(r *runFiles, n int64) (int64, error) {
	start, end := r.start(), r.end()
	if n <= 0 {
		return end, nil
	}
	const block = 32 << 10
	pos := end
	var lines int64
	first := true
	for pos > start {
		from := max(start, pos-block)
		data, _, _, err := readRange(r, from, pos-from)
		if err != nil {
			return 0, err
		}
		if len(data) == 0 {
			break
		}
		for i := len(data) - 1; i >= 0; i-- {
			if data[i] != '\n' {
				first = false
				continue
			}
			if first {
				// The run's final newline ends the last line; it does not
				// start a new one.
				first = false
				continue
			}
			lines++
			if lines == n {
				return from + int64(i) + 1, nil
			}
		}
		pos = from
	}
	return start, nil
}

// alignLine moves offset to the start of the next line unless it already
// is at one, so a time-based start never begins mid-line.
func alignLine(r *runFiles, offset int64) (int64, error) {
	if offset <= r.start() || offset >= r.end() {
		return offset, nil
	}
	prev, _, _, err := readRange(r, offset-1, 1)
	if err != nil || (len(prev) == 1 && prev[0] == '\n') {
		return offset, err
	}
	const block = 32 << 10
	for pos := offset; pos < r.end(); {
		data, next, _, err := readRange(r, pos, block)
		if err != nil {
			return offset, err
		}
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return pos + int64(i) + 1, nil
		}
		if next == pos {
			break
		}
		pos = next
	}
	return r.end(), nil
}

// sortedRuns returns the runs by number.
func sortedRuns(runs map[int32]*runFiles) []*runFiles {
	out := make([]*runFiles, 0, len(runs))
	for _, r := range runs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].run < out[j].run })
	return out
}
