// Package logs keeps containers' output on the board and serves it to the
// hub. containerd's shim appends each run of a container to its own file;
// this package rotates the current run's file so that a container's files
// stay within a size bound, keeps the previous run's for `logs --previous`,
// removes older runs and the logs of pods long gone, and answers the hub's
// LogRequests (tail, since, follow with a cursor) from those files.
package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// DefaultMaxSize bounds one container's log files.
const DefaultMaxSize = 10 << 20

// DefaultRetainGone is how long the logs of a pod that is no longer on the
// node are kept.
const DefaultRetainGone = time.Hour

// ContainerRef names one container of one pod.
type ContainerRef struct {
	Namespace, Pod, UID, Container string
}

// Config configures a Server.
type Config struct {
	// Dir is the logs directory ({state-dir}/logs).
	Dir string
	// MaxSize bounds the bytes one container keeps on disk: the current
	// run rotates at a quarter of it and keeps one rotated part, the
	// previous run is cut to half of it, older runs are removed. Output
	// written between two checks (every CheckInterval) may overshoot.
	MaxSize int64
	// CheckInterval is how often files are checked for rotation (default 1 s).
	CheckInterval time.Duration
	// Current returns the run (restart count) a container is on now; when
	// it does not know, the highest-numbered run is taken.
	Current func(ContainerRef) (int32, bool)
	// Keep reports whether a pod (by uid) is still meant to be on the
	// node; the logs of others are removed RetainGone after their last
	// write. Nil keeps everything.
	Keep       func(uid string) bool
	RetainGone time.Duration
	// Reply sends an answer to the hub.
	Reply func(ctx context.Context, r wire.LogReply) error
	// Workers bounds the requests served at once (default 8); Queue the
	// requests waiting (default 32). A request beyond both is refused.
	Workers, Queue int
	Logger         *slog.Logger
}

// Server rotates log files and answers log requests.
type Server struct {
	cfg Config
	log *slog.Logger

	requests chan wire.LogRequest

	mu    sync.Mutex
	locks map[string]*sync.Mutex // by container directory
	marks map[string]*markList   // by live file path
}

// New returns a Server; call Run to start it.
func New(cfg Config) *Server {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Second
	}
	if cfg.RetainGone <= 0 {
		cfg.RetainGone = DefaultRetainGone
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 32
	}
	if cfg.Reply == nil {
		cfg.Reply = func(context.Context, wire.LogReply) error { return nil }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{
		cfg: cfg, log: cfg.Logger.With("component", "logs"),
		requests: make(chan wire.LogRequest, cfg.Queue),
		locks:    map[string]*sync.Mutex{},
		marks:    map[string]*markList{},
	}
}

// Submit queues a request without blocking (it is called on the MQTT
// receive path). It reports false when the queue is full; the hub then
// times out and may retry.
func (s *Server) Submit(req wire.LogRequest) bool {
	select {
	case s.requests <- req:
		return true
	default:
		return false
	}
}

// Run rotates files and serves requests until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case req := <-s.requests:
					reply := s.Serve(ctx, req)
					if err := s.cfg.Reply(ctx, reply); err != nil && ctx.Err() == nil {
						s.log.Warn("send log reply", "id", req.ID, "err", err)
					}
				}
			}
		}()
	}
	t := time.NewTicker(s.cfg.CheckInterval)
	defer t.Stop()
	for {
		s.Maintain(time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Server) lock(dir string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locks[dir]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[dir] = l
	}
	return l
}

// podDir is the directory of one pod's logs.
func (s *Server) podDir(ns, pod, uid string) string {
	return filepath.Join(s.cfg.Dir, ns+"_"+pod+"_"+uid)
}

// parsePodDir splits {namespace}_{pod}_{uid}; names and uids never hold '_'.
func parsePodDir(name string) (ns, pod, uid string, ok bool) {
	parts := strings.Split(name, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// currentRun picks the run a container is on: the one the reconciler
// last reported, whose file may not exist yet (its task is starting) — or,
// since a report can lag a restart by a moment, a higher-numbered run
// written since. Without a report it is the highest-numbered run.
func (s *Server) currentRun(ref ContainerRef, runs map[int32]*runFiles) (int32, bool) {
	if s.cfg.Current != nil {
		if run, ok := s.cfg.Current(ref); ok {
			var since time.Time
			if r := runs[run]; r != nil {
				since = r.modTime
			}
			cur := run
			for n, r := range runs {
				if n > cur && r.modTime.After(since) {
					cur = n
				}
			}
			return cur, true
		}
	}
	best, found := int32(-1), false
	for run := range runs {
		if run > best {
			best, found = run, true
		}
	}
	return best, found
}

// runOrEmpty is a run's files, or an empty run when it has written
// nothing yet.
func runOrEmpty(dir string, runs map[int32]*runFiles, run int32) *runFiles {
	if r := runs[run]; r != nil {
		return r
	}
	return &runFiles{run: run, live: filepath.Join(dir, strconv.Itoa(int(run))+".log")}
}

// previousRun is the most recently written run other than current.
func previousRun(runs map[int32]*runFiles, current int32) (*runFiles, bool) {
	var prev *runFiles
	for run, r := range runs {
		if run == current {
			continue
		}
		if prev == nil || r.modTime.After(prev.modTime) || (r.modTime.Equal(prev.modTime) && r.run > prev.run) {
			prev = r
		}
	}
	return prev, prev != nil
}

// Maintain runs one pass of rotation and clean-up over every container.
func (s *Server) Maintain(now time.Time) {
	pods, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("read logs directory", "err", err)
		}
		return
	}
	live := map[string]bool{}
	for _, p := range pods {
		ns, pod, uid, ok := parsePodDir(p.Name())
		if !ok || !p.IsDir() {
			continue
		}
		podDir := filepath.Join(s.cfg.Dir, p.Name())
		ctrs, err := os.ReadDir(podDir)
		if err != nil {
			continue
		}
		newest := time.Time{}
		for _, c := range ctrs {
			if !c.IsDir() {
				continue
			}
			ref := ContainerRef{Namespace: ns, Pod: pod, UID: uid, Container: c.Name()}
			last := s.maintainContainer(ref, filepath.Join(podDir, c.Name()), now, live)
			if last.After(newest) {
				newest = last
			}
		}
		if s.cfg.Keep != nil && !s.cfg.Keep(uid) && now.Sub(newest) > s.cfg.RetainGone {
			if err := os.RemoveAll(podDir); err != nil {
				s.log.Warn("remove logs of a gone pod", "dir", podDir, "err", err)
			} else {
				s.log.Info("removed logs of a gone pod", "namespace", ns, "pod", pod, "uid", uid)
			}
		}
	}
	s.mu.Lock()
	for path := range s.marks {
		if !live[path] {
			delete(s.marks, path)
		}
	}
	s.mu.Unlock()
}

// maintainContainer rotates the current run if needed, trims the previous
// run, removes older runs, and notes how far the current run has got (for
// requests by time). It returns the newest modification time seen.
func (s *Server) maintainContainer(ref ContainerRef, dir string, now time.Time, live map[string]bool) time.Time {
	l := s.lock(dir)
	l.Lock()
	defer l.Unlock()
	runs, extra, err := scanContainer(dir)
	if err != nil {
		return time.Time{}
	}
	for _, p := range extra {
		_ = os.Remove(p)
	}
	var newest time.Time
	for _, r := range runs {
		if r.modTime.After(newest) {
			newest = r.modTime
		}
	}
	cur, ok := s.currentRun(ref, runs)
	if !ok {
		return newest
	}
	if r := runs[cur]; r != nil {
		chunk := max(s.cfg.MaxSize/4, 1)
		if r.liveSize > chunk {
			if err := s.rotate(r); err != nil {
				s.log.Warn("rotate container log", "file", r.live, "err", err)
			}
		}
		s.mark(r, now)
		live[r.live] = true
	}
	prev, hasPrev := previousRun(runs, cur)
	for run, o := range runs {
		if run == cur || (hasPrev && run == prev.run) {
			continue
		}
		removeRun(o)
	}
	if hasPrev {
		live[prev.live] = true
		if prev.size() > s.cfg.MaxSize/2 && prev.seg != "" {
			_ = os.Remove(prev.seg)
		}
	}
	return newest
}

func removeRun(r *runFiles) {
	_ = os.Remove(r.live)
	if r.seg != "" {
		_ = os.Remove(r.seg)
	}
}

// rotate copies the live file to a new rotated part and truncates it. The
// shim appends with O_APPEND, so its next write lands at the new end;
// output written between the copy's last read and the truncation is lost
// (the window of logrotate's copytruncate, a few microseconds).
func (s *Server) rotate(r *runFiles) error {
	base := r.base()
	src, err := os.OpenFile(r.live, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := fmt.Sprintf("%s.%d.tmp", r.live, base)
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("copy %s: %w", r.live, err)
	}
	seg := fmt.Sprintf("%s.%d", r.live, base)
	if err := os.Rename(tmp, seg); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	// Only now is the old rotated part superseded.
	if r.seg != "" && r.seg != seg {
		_ = os.Remove(r.seg)
	}
	if err := src.Truncate(0); err != nil {
		return fmt.Errorf("truncate %s: %w", r.live, err)
	}
	r.seg, r.segStart, r.segSize, r.liveSize = seg, base, n, 0
	return nil
}

// markList remembers, for one run's live file, how far it had got at
// given times: everything before offset was written by time.
type markList struct {
	run   int32
	times []time.Time
	offs  []int64
}

const maxMarks = 512

func (s *Server) mark(r *runFiles, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.marks[r.live]
	if m == nil || m.run != r.run {
		// First sight of this file (or the agent restarted): all that is
		// there was written by its modification time.
		m = &markList{run: r.run}
		s.marks[r.live] = m
		if r.end() > 0 {
			m.times, m.offs = append(m.times, r.modTime), append(m.offs, r.end())
		}
	}
	end := r.end()
	if n := len(m.offs); n > 0 && m.offs[n-1] == end {
		return
	}
	if n := len(m.offs); n > 0 && m.offs[n-1] > end {
		// The file went backwards (rewritten from scratch): start over.
		m.times, m.offs = nil, nil
	}
	m.times, m.offs = append(m.times, now), append(m.offs, end)
	if len(m.offs) > maxMarks {
		// Thin out the older half, keeping the newest marks exact.
		keep := len(m.offs) / 2
		var t []time.Time
		var o []int64
		for i := 0; i < keep; i += 2 {
			t, o = append(t, m.times[i]), append(o, m.offs[i])
		}
		m.times, m.offs = append(t, m.times[keep:]...), append(o, m.offs[keep:]...)
	}
}

// sinceOffset returns where output written at or after since begins: the
// offset the run had reached at the newest mark not after since. Without
// marks it falls back on the files' modification time.
func (s *Server) sinceOffset(r *runFiles, since time.Time) int64 {
	s.mu.Lock()
	m := s.marks[r.live]
	s.mu.Unlock()
	off := int64(-1)
	if m != nil && m.run == r.run {
		for i, t := range m.times {
			if t.After(since) {
				break
			}
			off = m.offs[i]
		}
	} else if !r.modTime.After(since) {
		off = r.end()
	}
	if off < 0 {
		return r.start()
	}
	return off
}

// errNotFound and errBadRequest classify failed requests for the reply.
var (
	errNotFound   = errors.New("not found")
	errBadRequest = errors.New("bad request")
)

// requestError is a refused request: the reply carries its class as the
// reason and its message as the text, which therefore does not repeat
// the class (the CLI prints "Error from server (NotFound): " + text).
type requestError struct {
	class error
	msg   string
}

func (e *requestError) Error() string        { return e.msg }
func (e *requestError) Is(target error) bool { return target == e.class }

func notFoundf(format string, args ...any) error {
	return &requestError{class: errNotFound, msg: fmt.Sprintf(format, args...)}
}

func badRequestf(format string, args ...any) error {
	return &requestError{class: errBadRequest, msg: fmt.Sprintf(format, args...)}
}

// Serve answers one request.
func (s *Server) Serve(ctx context.Context, req wire.LogRequest) wire.LogReply {
	reply, err := s.serve(ctx, req)
	if err != nil {
		reply = wire.LogReply{ID: req.ID, Error: err.Error(), Reason: "InternalError"}
		switch {
		case errors.Is(err, errNotFound):
			reply.Reason = "NotFound"
		case errors.Is(err, errBadRequest):
			reply.Reason = "BadRequest"
		}
	}
	return reply
}

func (s *Server) serve(ctx context.Context, req wire.LogRequest) (wire.LogReply, error) {
	if err := validateRequest(req); err != nil {
		return wire.LogReply{}, err
	}
	ref := ContainerRef{Namespace: req.Namespace, Pod: req.Pod, UID: req.UID, Container: req.Container}
	dir := filepath.Join(s.podDir(req.Namespace, req.Pod, req.UID), req.Container)
	limit := int64(wire.MaxLogChunk)
	if req.LimitBytes > 0 && req.LimitBytes < limit {
		limit = req.LimitBytes
	}
	wait := min(time.Duration(req.WaitSeconds*float64(time.Second)), wire.MaxLogWait)
	deadline := time.Now().Add(wait)
	for {
		reply, done, err := s.read(ref, dir, req, limit)
		if err != nil || done || len(reply.Data) > 0 || reply.Ended || wait <= 0 || !time.Now().Before(deadline) {
			return reply, err
		}
		// Following and nothing new yet: look again shortly.
		select {
		case <-ctx.Done():
			return reply, nil
		case <-time.After(min(250*time.Millisecond, time.Until(deadline))):
		}
	}
}

// read answers req once, under the container's lock so that a rotation
// cannot move the bytes while they are read. done says waiting cannot
// change the answer.
func (s *Server) read(ref ContainerRef, dir string, req wire.LogRequest, limit int64) (wire.LogReply, bool, error) {
	l := s.lock(dir)
	l.Lock()
	defer l.Unlock()
	runs, _, err := scanContainer(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(runs) == 0) {
		return wire.LogReply{}, true, notFoundf("no logs of container %q in pod %s/%s on this node", req.Container, req.Namespace, req.Pod)
	}
	if err != nil {
		return wire.LogReply{}, true, err
	}
	cur, _ := s.currentRun(ref, runs)
	reply := wire.LogReply{ID: req.ID}
	var r *runFiles
	var from int64
	switch {
	case req.Cursor != nil:
		r = runs[req.Cursor.Run]
		if r == nil && req.Cursor.Run == cur {
			r = runOrEmpty(dir, runs, cur) // started, nothing written yet
		}
		if r == nil {
			// The run's files are gone (removed as too old): nothing more.
			reply.Cursor, reply.Ended = *req.Cursor, true
			return reply, true, nil
		}
		from = req.Cursor.Offset
	case req.Previous:
		prev, ok := previousRun(runs, cur)
		if !ok {
			return wire.LogReply{}, true, notFoundf("previous terminated container %q in pod %q not found", req.Container, req.Pod)
		}
		r = prev
	default:
		r = runOrEmpty(dir, runs, cur)
	}
	if req.Cursor == nil {
		from = r.start()
		if req.SinceTime != nil {
			from, err = alignLine(r, s.sinceOffset(r, *req.SinceTime))
			if err != nil {
				return wire.LogReply{}, true, err
			}
		}
		if req.TailLines != nil {
			tail, err := tailOffset(r, *req.TailLines)
			if err != nil {
				return wire.LogReply{}, true, err
			}
			from = max(from, tail)
		}
	}
	data, next, skipped, err := readRange(r, from, limit)
	if err != nil {
		return wire.LogReply{}, true, err
	}
	reply.Data, reply.Skipped = data, skipped
	reply.Cursor = wire.LogCursor{Run: r.run, Offset: next}
	reply.More = next < r.end()
	reply.Ended = !reply.More && r.run != cur
	return reply, false, nil
}

// validateRequest refuses requests that could address files outside the
// logs directory or ask for nonsense.
func validateRequest(req wire.LogRequest) error {
	for name, v := range map[string]string{"namespace": req.Namespace, "pod": req.Pod, "uid": req.UID, "container": req.Container} {
		if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/_\x00") {
			return badRequestf("invalid %s %q: want a name without /, _ or NUL", name, v)
		}
	}
	if req.TailLines != nil && *req.TailLines < 0 {
		return badRequestf("invalid tailLines %d: want 0 or more", *req.TailLines)
	}
	if req.Cursor != nil && (req.Cursor.Offset < 0 || req.Cursor.Run < 0) {
		return badRequestf("invalid cursor %+v: want a run and an offset of 0 or more", *req.Cursor)
	}
	return nil
}
