package arm

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
)

// maxIdleRSSMiB bounds the amd64 agent's resident memory at idle, with and
// without pods: a 512 MiB board must keep most of its memory for pods.
const maxIdleRSSMiB = 96

// idleSettle is how long the agent is left after each step before the
// idle window opens: one round of its 10 s timers.
const idleSettle = 10 * time.Second

// TestAgentIdleRSS measures the amd64 agent at idle at its own defaults
// (10 s heartbeat, metrics and resync; its default soft memory limit),
// first with no pod, then with five pods running. Over an idle window it
// prints the agent's resident memory at the end (VmRSS of
// /proc/<pid>/status), the CPU time it used (utime+stime of
// /proc/<pid>/stat) and the garbage collections it ran (GODEBUG=gctrace=1
// writes one line per collection to its log). FLOTILLA_RSS_STEADY sets the
// window (default 30s; the figures in docs/benchmarks.md use 60s).
// FLOTILLA_RSS_AGENT_ENV adds space-separated KEY=value settings to the
// agent's environment, to compare (GOMEMLIMIT=off, GOGC=50).
func TestAgentIdleRSS(t *testing.T) {
	steady := 30 * time.Second
	if v := os.Getenv("FLOTILLA_RSS_STEADY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FLOTILLA_RSS_STEADY: %v", err)
		}
		steady = d
	}
	environ := append([]string{"GODEBUG=gctrace=1"}, strings.Fields(os.Getenv("FLOTILLA_RSS_AGENT_ENV"))...)
	refs := pushArchImages(t, t.Context())
	h := startHub(t)
	a := startAgentWith(t, h, "amd64", environ)
	waitFor(t, 60*time.Second, "node Ready", func() error {
		if !h.node(a.node).IsReady() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	time.Sleep(idleSettle)
	idle := measureIdle(t, a, steady)
	for i := range 5 {
		h.apply(daemonSet(fmt.Sprintf("rss-%d", i), refs["amd64"], map[string]string{"flotilla.test/board": "amd64"}, nil, "sleep 3600"))
	}
	waitFor(t, 60*time.Second, "5 pods running", func() error {
		n := 0
		for _, p := range h.pods() {
			if strings.HasPrefix(p.Labels["app"], "rss-") && p.Status.Phase == "Running" {
				n++
			}
		}
		if n != 5 {
			return fmt.Errorf("%d running", n)
		}
		return nil
	})
	time.Sleep(idleSettle)
	busy := measureIdle(t, a, steady)
	t.Logf("edge-agent linux/amd64, idle %s (env %s):\n  0 pods: %s\n  5 pods: %s",
		steady, strings.Join(environ, " "), idle, busy)
	if idle.RSS > maxIdleRSSMiB<<20 || busy.RSS > maxIdleRSSMiB<<20 {
		t.Errorf("agent RSS over %d MiB: idle %.1f, 5 pods %.1f", maxIdleRSSMiB, mib(idle.RSS), mib(busy.RSS))
	}
}

// idleFigures is what the agent did over one idle window.
type idleFigures struct {
	harness.ProcStats               // at the end of the window
	window            time.Duration // wall time
	cpu               time.Duration // CPU time used in the window
	gcs               int           // collections in the window, -1 if unknown
	lastGC            string        // the last collection's heap figures
}

func (f idleFigures) String() string {
	gc := "collections unknown (no gctrace in the log)"
	if f.gcs >= 0 {
		gc = fmt.Sprintf("%d collections (%.1f a minute; last: %s)", f.gcs, float64(f.gcs)/f.window.Minutes(), f.lastGC)
	}
	return fmt.Sprintf("VmRSS %.1f MiB (anonymous %.1f, file-backed %.1f, shared memory %.1f; VmHWM %.1f MiB, threads %d); "+
		"CPU %.2f s in %s = %.2f %% of a core; %s",
		mib(f.RSS), mib(f.Anon), mib(f.File), mib(f.RSS-f.Anon-f.File), mib(f.Peak), f.Threads,
		f.cpu.Seconds(), f.window.Round(time.Second), 100*f.cpu.Seconds()/f.window.Seconds(), gc)
}

// measureIdle reads a's process and its collections now and after window.
func measureIdle(t *testing.T, a *agentProc, window time.Duration) idleFigures {
	t.Helper()
	pid := a.proc.Pid()
	before, err := harness.ReadProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	gc0, _ := lastGC(t, a.proc.LogPath())
	time.Sleep(window)
	after, err := harness.ReadProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	gc1, last := lastGC(t, a.proc.LogPath())
	f := idleFigures{ProcStats: after, window: after.Taken.Sub(before.Taken), cpu: after.CPU - before.CPU, gcs: -1, lastGC: last}
	if gc1 > 0 {
		f.gcs = gc1 - gc0
	}
	return f
}

// gcLine matches the Go runtime's gctrace line: its cycle number, and the
// heap at the start of the cycle, at its end, live, and the goal.
var gcLine = regexp.MustCompile(`gc (\d+) @[0-9.]+s [^\n]*?(\d+->\d+->\d+ MB, \d+ MB goal)`)

// lastGC returns the number of the last collection in the log at path (0
// if none) and its heap figures.
func lastGC(t *testing.T, path string) (int, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := gcLine.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return 0, ""
	}
	last := m[len(m)-1]
	n, _ := strconv.Atoi(string(last[1]))
	return n, string(last[2])
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
