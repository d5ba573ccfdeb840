package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
)

// procCPU reads a process's user and system CPU time.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	st, err := harness.ReadProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.CPU
}

// procMem reads a process's resident set and its peak, in KiB.
func procMem(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	st, err := harness.ReadProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.RSS >> 10, st.Peak >> 10
}

// TestMeasureAgentMetricsCost is a measurement, not a check: two agents
// run the same five pods, one sampling every second and one with metrics
// off, and the test prints the difference in CPU time per sample and in
// resident memory. The figures go in docs/benchmarks.md. It takes a minute
// and a half, so it runs only when asked for:
//
//	FLOTILLA_MEASURE=1 go test -v -run TestMeasureAgentMetricsCost ./test/e2e/
func TestMeasureAgentMetricsCost(t *testing.T) {
	if os.Getenv("FLOTILLA_MEASURE") == "" {
		t.Skip("a measurement, not a check: set FLOTILLA_MEASURE=1 to run it")
	}
	h := startHub(t, hubOptions{})
	on := startMetricsAgent(t, h)
	off := startMetricsAgent(t, h, "--metrics-interval", "0s")
	for i := range 5 {
		h.applyYAML(daemonSet(uniq(fmt.Sprintf("m%d-", i)), env.image, "", "while :; do sleep 3600; done"))
	}
	for _, a := range []*agentProc{on, off} {
		eventually(t, 60*time.Second, "five pods on "+a.node, func() error {
			if n := len(running(t, a.ns)); n != 5 {
				return fmt.Errorf("%d running", n)
			}
			return nil
		})
	}
	// Let start-up settle, then measure both over the same minute.
	time.Sleep(5 * time.Second)
	const window = 60 * time.Second
	onPid, offPid := on.proc.Pid(), off.proc.Pid()
	onStart, offStart := procCPU(t, onPid), procCPU(t, offPid)
	time.Sleep(window)
	onCPU, offCPU := procCPU(t, onPid)-onStart, procCPU(t, offPid)-offStart
	onRSS, onPeak := procMem(t, onPid)
	offRSS, offPeak := procMem(t, offPid)
	samples := int64(window / metricsInterval)
	perSample := (onCPU - offCPU) / time.Duration(samples)
	t.Logf("figure: agent CPU over %s with 5 pods: metrics every %s %s, metrics off %s; %s of agent CPU per sample (%d samples)",
		window, metricsInterval, onCPU, offCPU, perSample, samples)
	t.Logf("figure: agent RSS: metrics on %d KiB (peak %d KiB), off %d KiB (peak %d KiB)", onRSS, onPeak, offRSS, offPeak)
	t.Logf("figure: at the default 10 s interval that is %.3f%% of one core", 100*perSample.Seconds()/10)
}
