package arm

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
)

// maxIdleRSSMiB bounds the amd64 agent's resident memory at idle, with and
// without pods: a 512 MiB board must keep most of its memory for pods.
const maxIdleRSSMiB = 96

// TestAgentIdleRSS measures the amd64 agent's resident memory (VmRSS of
// /proc/<pid>/status) once it has been idle for a while with no pod, then
// with five pods running. FLOTILLA_RSS_STEADY sets how long it waits at
// each step (default 20s; the figures in docs/benchmarks.md use 60s).
func TestAgentIdleRSS(t *testing.T) {
	steady := 20 * time.Second
	if v := os.Getenv("FLOTILLA_RSS_STEADY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FLOTILLA_RSS_STEADY: %v", err)
		}
		steady = d
	}
	refs := pushArchImages(t, t.Context())
	h := startHub(t)
	a := startAgent(t, h, "amd64")
	waitFor(t, 60*time.Second, "node Ready", func() error {
		if !h.node(a.node).IsReady() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	time.Sleep(steady)
	idle := status(t, a.proc.Pid())
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
	time.Sleep(steady)
	busy := status(t, a.proc.Pid())
	t.Logf("edge-agent linux/amd64 after %s idle: 0 pods VmRSS %.1f MiB; 5 pods VmRSS %.1f MiB (anonymous %.1f, file-backed %.1f, shared memory %.1f; VmHWM %.1f MiB, threads %s)",
		steady, idle["VmRSS"], busy["VmRSS"], busy["RssAnon"], busy["RssFile"], busy["RssShmem"], busy["VmHWM"], fmt.Sprint(busy["Threads"]))
	if idle["VmRSS"] > maxIdleRSSMiB || busy["VmRSS"] > maxIdleRSSMiB {
		t.Errorf("agent RSS over %d MiB: idle %.1f, 5 pods %.1f", maxIdleRSSMiB, idle["VmRSS"], busy["VmRSS"])
	}
}

// status reads pid's memory, in MiB (Threads as is).
func status(t *testing.T, pid int) map[string]float64 {
	t.Helper()
	st, err := harness.ReadProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	return map[string]float64{"VmRSS": float64(st.RSS) / mib, "VmHWM": float64(st.Peak) / mib,
		"RssAnon": float64(st.Anon) / mib, "RssFile": float64(st.File) / mib, "RssShmem": float64(st.RSS-st.Anon-st.File) / mib,
		"Threads": float64(st.Threads)}
}
