package metrics

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// BenchmarkHostSample is the cost of reading this machine's usage once
// through gopsutil: CPU times, load, memory, swap, filesystems, disk and
// network counters, sensors, uptime and the process count.
func BenchmarkHostSample(b *testing.B) {
	h := &HostSampler{StateDir: b.TempDir()}
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Sample(ctx, time.Now()); err != nil {
			b.Logf("incomplete: %v", err)
		}
	}
}

// BenchmarkCollectAndEncode is one whole sample as the agent takes it
// every interval, minus containerd's answer (a fake with 10 pods): the
// node reading, the pod rates, rounding and the wire encoding that goes to
// the outbox. It reports the encoded size too.
func BenchmarkCollectAndEncode(b *testing.B) {
	rt := &fakeRuntime{}
	for i := range 10 {
		rt.stats = append(rt.stats, ContainerStats{
			ID: fmt.Sprintf("c%d", i), PodUID: fmt.Sprintf("0123456789abcdef-%d", i), PodName: fmt.Sprintf("sensor-gateway-%d", i),
			PodNamespace: "default", Container: "main", MemoryWorkingSetBytes: 12 << 20, MemoryUsageBytes: 20 << 20,
		})
	}
	c := New(Config{Interval: 10 * time.Second, StateDir: b.TempDir()})
	c.SetRuntime(rt)
	ctx := context.Background()
	var size int
	now := time.Now()
	for b.Loop() {
		now = now.Add(10 * time.Second)
		for i := range rt.stats {
			rt.stats[i].CPUUsageNanos += 1e9
			rt.stats[i].Time = now
		}
		s := c.Collect(ctx, now)
		enc, err := wire.Encode(wire.TypeMetrics, "node-1", 1, now, wire.MetricsBatch{Samples: []wire.MetricSample{s}})
		if err != nil {
			b.Fatal(err)
		}
		size = len(enc)
	}
	b.ReportMetric(float64(size), "bytes/sample")
}
