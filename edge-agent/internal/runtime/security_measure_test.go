package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// TestMeasureSeccompStartLatency measures what the confined default costs
// a pod's start: N pods of one container each (the same busybox image,
// each its own shim, as each pod has), alternating containerd's default
// seccomp profile and Unconfined, from Create (the OCI spec built, the
// profile included, and the snapshot taken) to Start returned (runc has
// installed the filter and exec'd the process). It prints p50 and p95 of
// each, and the ratio:
//
//	FLOTILLA_MEASURE=1 go test -count=1 -v -run TestMeasureSeccompStartLatency ./edge-agent/internal/runtime/
//
// FLOTILLA_MEASURE_N sets N (default 60: 30 of each).
func TestMeasureSeccompStartLatency(t *testing.T) {
	if os.Getenv("FLOTILLA_MEASURE") == "" {
		t.Skip("a measurement, not a check: set FLOTILLA_MEASURE=1 to run it")
	}
	n := 60
	if s := os.Getenv("FLOTILLA_MEASURE_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 2 {
			t.Fatalf("FLOTILLA_MEASURE_N=%q: want a number of pods, at least 2", s)
		}
		n = v
	}
	rt := newRuntime(t)
	ensure(t, rt, env.busybox)
	logs := t.TempDir()
	unconfined := reconcile.Security{Context: api.SecurityContext{SeccompProfile: &api.SeccompProfile{Type: api.SeccompProfileTypeUnconfined}}}
	modes := []struct {
		name string
		sec  reconcile.Security
	}{{"RuntimeDefault (the default)", reconcile.Security{}}, {"Unconfined", unconfined}}
	create := [2][]time.Duration{}
	total := [2][]time.Duration{}
	// One of each first, not counted: the image's first snapshot, the
	// shim binary's first load.
	for i := -2; i < n; i++ {
		m := (i + 2) % 2
		id := uniqueID("seclat")
		spec := reconcile.ContainerSpec{ID: id, Image: env.busybox, Command: []string{"sleep", "1000"}, ShimGroup: id, Security: modes[m].sec,
			Labels: map[string]string{reconcile.LabelPodUID: id}}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		if err := rt.Create(ctx, spec); err != nil {
			cancel()
			t.Fatal(err)
		}
		created := time.Since(start)
		if err := rt.Start(ctx, id, filepath.Join(logs, id+".log")); err != nil {
			cancel()
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		cancel()
		if err := rt.Remove(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if i >= 0 {
			create[m] = append(create[m], created)
			total[m] = append(total[m], elapsed)
		}
	}
	pct := func(d []time.Duration, p int) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[(len(s)-1)*p/100]
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	for m, mode := range modes {
		fmt.Printf("FIGURE: start of a pod (Create+Start), %s, %d pods: p50 %s p95 %s (Create alone p50 %s p95 %s)\n",
			mode.name, len(total[m]), ms(pct(total[m], 50)), ms(pct(total[m], 95)), ms(pct(create[m], 50)), ms(pct(create[m], 95)))
	}
	fmt.Printf("FIGURE: default profile / Unconfined: p50 %.2f, p95 %.2f\n",
		float64(pct(total[0], 50))/float64(pct(total[1], 50)), float64(pct(total[0], 95))/float64(pct(total[1], 95)))
}
