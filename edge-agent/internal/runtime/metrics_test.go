package runtime

import (
	"context"
	"fmt"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/metrics"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// TestContainerStats runs a container that burns CPU and one that holds
// memory, and checks the stats containerd's shim reports for them: CPU
// time that grows, a working set of at least what was allocated, and the
// pod labels.
func TestContainerStats(t *testing.T) {
	rt := newRuntime(t)
	labels := func(pod, ctr string) map[string]string {
		return map[string]string{
			reconcile.LabelPodUID: "uid-" + pod, reconcile.LabelPodName: pod,
			reconcile.LabelPodNamespace: "default", reconcile.LabelContainer: ctr,
		}
	}
	burn := uniqueID("burn")
	run(t, rt, reconcile.ContainerSpec{ID: burn, Labels: labels("burn", "main"),
		Command: []string{"sh", "-c", "while :; do :; done"}})
	hold := uniqueID("hold")
	// 24 MB of 'a' held in a shell variable. The loop keeps the shell:
	// busybox sh would exec a last simple command in its place.
	run(t, rt, reconcile.ContainerSpec{ID: hold, Labels: labels("hold", "mem"),
		Command: []string{"sh", "-c", `x=$(head -c 24000000 /dev/zero | tr '\0' a); echo ready; while :; do sleep 1000; done`}})

	// An exited task not yet deleted (a crashed run beside its
	// replacement) is not a running container.
	exited := uniqueID("exited")
	run(t, rt, reconcile.ContainerSpec{ID: exited, Labels: labels("burn", "main"), Command: []string{"true"}})
	waitState(t, rt, exited, reconcile.TaskExited)

	find := func(stats []metrics.ContainerStats, id string) (metrics.ContainerStats, bool) {
		for _, s := range stats {
			if s.ID == id {
				return s, true
			}
		}
		return metrics.ContainerStats{}, false
	}
	var first metrics.ContainerStats
	waitFor(t, 30*time.Second, "stats of both containers", func() (bool, error) {
		stats, err := rt.ContainerStats(testCtx(t, 10*time.Second))
		if err != nil {
			return false, err
		}
		b, ok1 := find(stats, burn)
		h, ok2 := find(stats, hold)
		if !ok1 || !ok2 {
			return false, fmt.Errorf("got %d stats, burn %t, hold %t", len(stats), ok1, ok2)
		}
		if h.MemoryWorkingSetBytes < 24_000_000 {
			return false, fmt.Errorf("hold working set %d bytes", h.MemoryWorkingSetBytes)
		}
		if _, ok := find(stats, exited); ok {
			return false, fmt.Errorf("stats of an exited task: %+v", stats)
		}
		first = b
		return b.CPUUsageNanos > 0, nil
	})
	if first.PodUID != "uid-burn" || first.PodName != "burn" || first.PodNamespace != "default" || first.Container != "main" {
		t.Errorf("labels not carried: %+v", first)
	}
	if first.MemoryUsageBytes < first.MemoryWorkingSetBytes {
		t.Errorf("usage %d below working set %d", first.MemoryUsageBytes, first.MemoryWorkingSetBytes)
	}
	waitFor(t, 30*time.Second, "CPU time to grow", func() (bool, error) {
		stats, err := rt.ContainerStats(testCtx(t, 10*time.Second))
		if err != nil {
			return false, err
		}
		b, _ := find(stats, burn)
		return b.CPUUsageNanos > first.CPUUsageNanos+50_000_000, fmt.Errorf("cpu %d ns, first %d ns", b.CPUUsageNanos, first.CPUUsageNanos)
	})
}

// BenchmarkContainerStats is the containerd side of one sample: three
// calls to containerd for five running containers.
func BenchmarkContainerStats(b *testing.B) {
	ctx := context.Background()
	rt, err := New(ctx, Options{Socket: env.ctd.Socket, Namespace: testNamespace + "-bench", InsecureRegistries: []string{env.registry.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.EnsureImage(ctx, env.busybox, api.PullIfNotPresent); err != nil {
		b.Fatal(err)
	}
	for i := range 5 {
		id := uniqueID(fmt.Sprintf("bench%d", i))
		spec := reconcile.ContainerSpec{ID: id, Image: env.busybox, Command: []string{"sleep", "1000"},
			Labels: map[string]string{reconcile.LabelPodUID: id, reconcile.LabelPodName: id, reconcile.LabelPodNamespace: "default", reconcile.LabelContainer: "main"}}
		if err := rt.Create(ctx, spec); err != nil {
			b.Fatal(err)
		}
		defer rt.Remove(context.Background(), id)
		defer rt.Stop(context.Background(), id, 0)
		if err := rt.Start(ctx, id, filepath.Join(b.TempDir(), id+".log")); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		stats, err := rt.ContainerStats(ctx)
		if err != nil || len(stats) != 5 {
			b.Fatalf("%d stats, %v", len(stats), err)
		}
	}
}
