package logs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// shim appends to a run's live file the way containerd's shim does
// (O_APPEND), so truncation by rotation works as on a board.
type shim struct {
	t *testing.T
	f *os.File
}

func openRun(t *testing.T, dir string, run int32) *shim {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.log", run)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &shim{t: t, f: f}
}

func (s *shim) lines(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %06d\n", prefix, i)
	}
	if _, err := s.f.WriteString(b.String()); err != nil {
		s.t.Fatal(err)
	}
	return b.String()
}

type fixture struct {
	srv     *Server
	dir     string
	ctrDir  string
	current int32
	mu      sync.Mutex
}

func newFixture(t *testing.T, maxSize int64) *fixture {
	f := &fixture{dir: t.TempDir()}
	f.ctrDir = filepath.Join(f.dir, "default_web_uid1", "main")
	f.srv = New(Config{Dir: f.dir, MaxSize: maxSize, Current: func(ref ContainerRef) (int32, bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.current, ref.UID == "uid1"
	}})
	return f
}

func (f *fixture) setCurrent(run int32) {
	f.mu.Lock()
	f.current = run
	f.mu.Unlock()
}

func req(extra func(*wire.LogRequest)) wire.LogRequest {
	r := wire.LogRequest{ID: "r1", Namespace: "default", Pod: "web", UID: "uid1", Container: "main"}
	if extra != nil {
		extra(&r)
	}
	return r
}

// readAll pages through a request with cursors, as the hub does.
func (f *fixture) readAll(t *testing.T, r wire.LogRequest) (string, wire.LogReply) {
	t.Helper()
	var out bytes.Buffer
	for {
		rep := f.srv.Serve(context.Background(), r)
		if rep.Error != "" {
			t.Fatalf("request %+v: %s (%s)", r, rep.Error, rep.Reason)
		}
		out.Write(rep.Data)
		if !rep.More {
			return out.String(), rep
		}
		c := rep.Cursor
		r.Cursor, r.TailLines, r.SinceTime = &c, nil, nil
	}
}

func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func TestRotationKeepsBoundAndTheTail(t *testing.T) {
	const max = 64 << 10
	f := newFixture(t, max)
	sh := openRun(t, f.ctrDir, 0)
	var all strings.Builder
	for i := 0; i < 100; i++ {
		all.WriteString(sh.lines("line", i*100, (i+1)*100)) // 1,200 bytes per batch
		f.srv.Maintain(time.Now())
		if n := dirBytes(t, f.ctrDir); n > max/2+1300 {
			t.Fatalf("after batch %d the container holds %d bytes, bound %d for the current run", i, n, max/2)
		}
	}
	got, rep := f.readAll(t, req(nil))
	if !strings.HasSuffix(all.String(), got) || len(got) < max/4 {
		t.Fatalf("read %d bytes that are not the tail of what was written (%d bytes)", len(got), all.Len())
	}
	if rep.Cursor.Offset != int64(all.Len()) {
		t.Errorf("cursor at %d, want the run's total %d", rep.Cursor.Offset, all.Len())
	}
	if !strings.HasPrefix(got, "line ") {
		t.Errorf("read starts mid-line: %.30q", got)
	}
	// A cursor from before the rotations reports what it missed.
	r := f.srv.Serve(context.Background(), req(func(r *wire.LogRequest) { r.Cursor = &wire.LogCursor{Run: 0, Offset: 0} }))
	if r.Skipped != int64(all.Len()-len(got)) {
		t.Errorf("skipped %d, want %d", r.Skipped, all.Len()-len(got))
	}
}

func TestTailAcrossTheRotatedPart(t *testing.T) {
	f := newFixture(t, 8<<10)
	sh := openRun(t, f.ctrDir, 0)
	sh.lines("a", 0, 150) // 1,350 bytes
	f.srv.Maintain(time.Now())
	sh.lines("a", 150, 200)
	n := int64(160)
	got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.TailLines = &n }))
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) != 160 || lines[0] != "a 000040" || lines[159] != "a 000199" {
		t.Fatalf("tail 160: %d lines, first %q last %q", len(lines), lines[0], lines[len(lines)-1])
	}
	zero := int64(0)
	if got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.TailLines = &zero })); got != "" {
		t.Errorf("tail 0 = %q", got)
	}
	// An unterminated last line counts as a line.
	sh.f.WriteString("partial")
	one := int64(1)
	if got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.TailLines = &one })); got != "partial" {
		t.Errorf("tail 1 = %q", got)
	}
}

func TestPreviousRunAndCleanup(t *testing.T) {
	f := newFixture(t, 1<<20)
	openRun(t, f.ctrDir, 0).lines("run0", 0, 3)
	f.srv.Maintain(time.Now())
	if rep := f.srv.Serve(context.Background(), req(func(r *wire.LogRequest) { r.Previous = true })); rep.Reason != "NotFound" {
		t.Fatalf("previous with one run: %+v", rep)
	} else if strings.HasPrefix(rep.Error, "not found") || !strings.HasPrefix(rep.Error, "previous terminated container") {
		// The reason carries the class; the text is kubectl's, as the CLI prints it after "Error from server (NotFound): ".
		t.Errorf("reply text %q repeats its class", rep.Error)
	}
	time.Sleep(10 * time.Millisecond) // distinct modification times
	openRun(t, f.ctrDir, 1).lines("run1", 0, 3)
	f.setCurrent(1)
	time.Sleep(10 * time.Millisecond)
	openRun(t, f.ctrDir, 2).lines("run2", 0, 3)
	f.setCurrent(2)
	f.srv.Maintain(time.Now())
	got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.Previous = true }))
	if !strings.HasPrefix(got, "run1 000000") {
		t.Errorf("previous = %q, want run 1's", got)
	}
	got, _ = f.readAll(t, req(nil))
	if !strings.HasPrefix(got, "run2 000000") {
		t.Errorf("current = %q, want run 2's", got)
	}
	if _, err := os.Stat(filepath.Join(f.ctrDir, "0.log")); !os.IsNotExist(err) {
		t.Errorf("run 0 not removed: %v", err)
	}
}

func TestSinceUsesWhatWasSeenWhen(t *testing.T) {
	f := newFixture(t, 1<<20)
	sh := openRun(t, f.ctrDir, 0)
	t1 := time.Now()
	sh.lines("old", 0, 5)
	f.srv.Maintain(t1)
	t2 := t1.Add(time.Minute)
	sh.lines("new", 0, 5)
	f.srv.Maintain(t2)
	since := t1.Add(30 * time.Second)
	got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.SinceTime = &since }))
	if !strings.HasPrefix(got, "new 000000") || strings.Contains(got, "old") {
		t.Errorf("since between the two writes = %q", got)
	}
	early := t1.Add(-time.Hour)
	if got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.SinceTime = &early })); !strings.HasPrefix(got, "old 000000") {
		t.Errorf("since before everything = %q", got)
	}
	late := t2.Add(time.Second)
	if got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.SinceTime = &late })); got != "" {
		t.Errorf("since after everything = %q", got)
	}
	// A restarted agent has no marks: the files' modification time decides.
	f2 := New(Config{Dir: f.dir, MaxSize: 1 << 20})
	if got, _ := (&fixture{srv: f2}).readAll(t, req(func(r *wire.LogRequest) { r.SinceTime = &late })); got != "" && !time.Now().After(late) {
		t.Errorf("after restart, since later than the last write = %q", got)
	}
}

func TestFollowWaitsForNewOutputAndEndsWithTheRun(t *testing.T) {
	f := newFixture(t, 1<<20)
	sh := openRun(t, f.ctrDir, 0)
	sh.lines("x", 0, 2)
	_, rep := f.readAll(t, req(nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan wire.LogReply, 1)
	go func() {
		c := rep.Cursor
		got <- f.srv.Serve(ctx, req(func(r *wire.LogRequest) { r.Cursor = &c; r.WaitSeconds = 5 }))
	}()
	sh.lines("x", 2, 3)
	r := <-got
	if string(r.Data) != "x 000002\n" || r.Ended {
		t.Fatalf("follow: %+v", r)
	}
	// The container restarts: the old run's follow ends once it is read.
	openRun(t, f.ctrDir, 1).lines("y", 0, 1)
	f.setCurrent(1)
	c := r.Cursor
	r = f.srv.Serve(ctx, req(func(r *wire.LogRequest) { r.Cursor = &c; r.WaitSeconds = 5 }))
	if !r.Ended || len(r.Data) != 0 {
		t.Fatalf("follow of a finished run: %+v", r)
	}
}

func TestRefusesPathsOutsideTheLogs(t *testing.T) {
	f := newFixture(t, 1<<20)
	for _, bad := range []func(*wire.LogRequest){
		func(r *wire.LogRequest) { r.Container = "../../etc" },
		func(r *wire.LogRequest) { r.Namespace = ".." },
		func(r *wire.LogRequest) { r.Pod = "a_b" },
		func(r *wire.LogRequest) { r.UID = "" },
		func(r *wire.LogRequest) { n := int64(-1); r.TailLines = &n },
	} {
		if rep := f.srv.Serve(context.Background(), req(bad)); rep.Reason != "BadRequest" {
			t.Errorf("%+v: reason %q", req(bad), rep.Reason)
		} else if strings.HasPrefix(rep.Error, "bad request") {
			t.Errorf("reply text %q repeats its class", rep.Error)
		}
	}
	if rep := f.srv.Serve(context.Background(), req(nil)); rep.Reason != "NotFound" || strings.HasPrefix(rep.Error, "not found") {
		t.Errorf("missing container: %+v", rep)
	}
}

func TestGonePodLogsAreRemovedAfterRetention(t *testing.T) {
	dir := t.TempDir()
	keep := map[string]bool{"uid1": true}
	srv := New(Config{Dir: dir, RetainGone: time.Hour, Keep: func(uid string) bool { return keep[uid] }})
	openRun(t, filepath.Join(dir, "default_web_uid1", "main"), 0).lines("k", 0, 1)
	openRun(t, filepath.Join(dir, "default_old_uid2", "main"), 0).lines("g", 0, 1)
	srv.Maintain(time.Now())
	if _, err := os.Stat(filepath.Join(dir, "default_old_uid2")); err != nil {
		t.Fatalf("gone pod removed before its retention: %v", err)
	}
	srv.Maintain(time.Now().Add(2 * time.Hour))
	if _, err := os.Stat(filepath.Join(dir, "default_old_uid2")); !os.IsNotExist(err) {
		t.Errorf("gone pod kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "default_web_uid1")); err != nil {
		t.Errorf("kept pod removed: %v", err)
	}
}

// TestRunServesQueuedRequests goes through Submit and Run, as the agent
// does.
func TestRunServesQueuedRequests(t *testing.T) {
	dir := t.TempDir()
	openRun(t, filepath.Join(dir, "default_web_uid1", "main"), 0).lines("hello", 0, 1)
	replies := make(chan wire.LogReply, 1)
	srv := New(Config{Dir: dir, Reply: func(_ context.Context, r wire.LogReply) error { replies <- r; return nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Run(ctx) }()
	if !srv.Submit(req(nil)) {
		t.Fatal("queue full")
	}
	r := <-replies
	cancel()
	<-done
	if r.ID != "r1" || string(r.Data) != "hello 000000\n" {
		t.Fatalf("reply %+v", r)
	}
}

// TestCurrentRunAroundARestart covers the moments around a restart: the
// reconciler may report the new run before its file exists, or the file
// may exist before the report. Either way --previous is the run before.
func TestCurrentRunAroundARestart(t *testing.T) {
	f := newFixture(t, 1<<20)
	openRun(t, f.ctrDir, 0).lines("run0", 0, 1)
	time.Sleep(10 * time.Millisecond)
	openRun(t, f.ctrDir, 1).lines("run1", 0, 1)
	f.setCurrent(1)

	// Reported 2, file not there yet.
	f.setCurrent(2)
	if got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.Previous = true })); got != "run1 000000\n" {
		t.Errorf("previous while run 2 starts = %q", got)
	}
	got, rep := f.readAll(t, req(nil))
	if got != "" || rep.Ended || rep.Cursor.Run != 2 {
		t.Errorf("current while run 2 starts = %q %+v", got, rep)
	}
	// Following from there picks up run 2's first output.
	c := rep.Cursor
	time.Sleep(10 * time.Millisecond)
	openRun(t, f.ctrDir, 2).lines("run2", 0, 1)
	r := f.srv.Serve(context.Background(), req(func(r *wire.LogRequest) { r.Cursor = &c }))
	if string(r.Data) != "run2 000000\n" {
		t.Errorf("follow into run 2: %+v", r)
	}

	// Reported 1 still, run 2 written since: run 2 is current.
	f.setCurrent(1)
	if got, _ := f.readAll(t, req(nil)); got != "run2 000000\n" {
		t.Errorf("current with a lagging report = %q", got)
	}
	if got, _ := f.readAll(t, req(func(r *wire.LogRequest) { r.Previous = true })); got != "run1 000000\n" {
		t.Errorf("previous with a lagging report = %q", got)
	}
}
