package metrics

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func f64(v float64) *float64 { return &v }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func sample(at time.Time, window, cpu float64, avail uint64, podCPU *float64, ws uint64) wire.MetricSample {
	return wire.MetricSample{
		Time: at, WindowSeconds: window,
		Node: wire.NodeSample{
			CPU:      wire.CPUSample{Cores: 2, UsageCores: cpu, PerCore: []float64{cpu / 2, cpu / 2}},
			Memory:   wire.MemorySample{TotalBytes: 1000, AvailableBytes: avail},
			Load:     &wire.LoadSample{Load1: cpu},
			Networks: []wire.NetworkSample{{Interface: "eth0", RxBytesPerSecond: cpu * 100, RxBytes: uint64(at.Unix())}},
		},
		Pods: []wire.PodSample{{Namespace: "default", Name: "p", UID: "u1", Containers: []wire.ContainerSample{
			{Name: "c", CPUUsageCores: podCPU, MemoryWorkingSetBytes: ws, Restarts: int32(at.Unix() % 7)},
		}}},
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestMergeWeightsByWindowAndKeepsLastCounters(t *testing.T) {
	in := []wire.MetricSample{
		sample(t0.Add(10*time.Second), 10, 1.0, 400, f64(0.5), 100),
		sample(t0.Add(20*time.Second), 10, 2.0, 600, nil, 300), // new container: no CPU yet
		sample(t0.Add(40*time.Second), 20, 0.5, 500, f64(0.2), 200),
	}
	m := Merge(in)
	if !m.Time.Equal(in[2].Time) || m.WindowSeconds != 40 || m.Merged != 3 {
		t.Fatalf("time %s window %v merged %d; want last time, 40 s, 3", m.Time, m.WindowSeconds, m.Merged)
	}
	// (1·10 + 2·10 + 0.5·20) / 40 = 1.0
	if !near(m.Node.CPU.UsageCores, 1.0) || !near(m.Node.CPU.PerCore[0], 0.5) {
		t.Errorf("cpu %v per core %v, want 1.0 and 0.5", m.Node.CPU.UsageCores, m.Node.CPU.PerCore)
	}
	if m.Node.Memory.AvailableBytes != 500 || m.Node.Memory.TotalBytes != 1000 {
		t.Errorf("memory %+v, want available 500 (weighted mean)", m.Node.Memory)
	}
	if !near(m.Node.Load.Load1, 1.0) || !near(m.Node.Networks[0].RxBytesPerSecond, 100) {
		t.Errorf("load %+v rx %v", m.Node.Load, m.Node.Networks[0].RxBytesPerSecond)
	}
	if m.Node.Networks[0].RxBytes != uint64(in[2].Time.Unix()) {
		t.Errorf("counter %d, want the last one", m.Node.Networks[0].RxBytes)
	}
	c := m.Pods[0].Containers[0]
	// CPU over the samples that had it: (0.5·10 + 0.2·20) / 30 = 0.3
	if c.CPUUsageCores == nil || !near(*c.CPUUsageCores, 0.3) {
		t.Errorf("container cpu %v, want 0.3", c.CPUUsageCores)
	}
	if c.MemoryWorkingSetBytes != 200 || c.Restarts != in[2].Pods[0].Containers[0].Restarts {
		t.Errorf("container %+v: want working set 200 (mean) and the last restarts", c)
	}
	// Merging merged samples counts every raw sample.
	again := Merge([]wire.MetricSample{m, sample(t0.Add(50*time.Second), 10, 1, 1, nil, 1)})
	if again.Merged != 4 || again.WindowSeconds != 50 {
		t.Errorf("re-merge: merged %d window %v, want 4 and 50", again.Merged, again.WindowSeconds)
	}
}

func TestMergeSingleAndEmpty(t *testing.T) {
	s := sample(t0, 10, 1, 1, nil, 1)
	if got := Merge([]wire.MetricSample{s}); !got.Time.Equal(s.Time) || got.Merged != 0 {
		t.Errorf("single: %+v", got)
	}
	if got := Merge(nil); !got.Time.IsZero() {
		t.Errorf("empty: %+v", got)
	}
}

func TestMergePodsPresentInSomeSamples(t *testing.T) {
	a := sample(t0.Add(10*time.Second), 10, 1, 1, f64(1), 10)
	b := sample(t0.Add(20*time.Second), 10, 1, 1, f64(1), 10)
	b.Pods = append(b.Pods, wire.PodSample{Namespace: "default", Name: "a-first", UID: "u0", Containers: []wire.ContainerSample{{Name: "x", MemoryWorkingSetBytes: 7}}})
	m := Merge([]wire.MetricSample{a, b})
	if len(m.Pods) != 2 || m.Pods[0].Name != "a-first" || m.Pods[0].Containers[0].MemoryWorkingSetBytes != 7 {
		t.Fatalf("pods %+v: want both, sorted, the late one averaged over its own samples", m.Pods)
	}
}

// fakeNode returns a fixed node sample with a CPU value that says which
// call it was.
type fakeNode struct{ n int }

func (f *fakeNode) Sample(_ context.Context, _ time.Time) (wire.NodeSample, error) {
	f.n++
	return wire.NodeSample{CPU: wire.CPUSample{Cores: 1, UsageCores: float64(f.n)}}, nil
}

type fakeRuntime struct{ stats []ContainerStats }

func (f *fakeRuntime) ContainerStats(context.Context) ([]ContainerStats, error) { return f.stats, nil }

func TestCollectorSendsRawOnlineAndMergesPerMinuteOffline(t *testing.T) {
	var sent []wire.MetricsBatch
	c := New(Config{Interval: 10 * time.Second, Node: &fakeNode{}, Send: func(b wire.MetricsBatch) { sent = append(sent, b) }})
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	ctx := context.Background()
	step := func(sec int, online bool) { c.deliver(c.Collect(ctx, at(sec)), online) }

	step(10, true)
	step(20, true)
	if len(sent) != 2 || sent[1].Samples[0].Merged != 0 {
		t.Fatalf("online: %d batches, want one raw sample each", len(sent))
	}
	// Offline from 30 s to 130 s: buckets [0,60) [60,120) [120,180).
	for sec := 30; sec <= 130; sec += 10 {
		step(sec, false)
	}
	if len(sent) != 4 {
		t.Fatalf("offline: %d batches, want 2 raw + 2 closed buckets", len(sent))
	}
	b1, b2 := sent[2].Samples[0], sent[3].Samples[0]
	if b1.Merged != 3 || !b1.Time.Equal(at(50)) || b1.WindowSeconds != 30 {
		t.Errorf("first bucket: merged %d at %s window %v; want 3 samples ending at 50 s covering 30 s", b1.Merged, b1.Time, b1.WindowSeconds)
	}
	if b2.Merged != 6 || !b2.Time.Equal(at(110)) || b2.WindowSeconds != 60 {
		t.Errorf("second bucket: merged %d at %s window %v", b2.Merged, b2.Time, b2.WindowSeconds)
	}
	// Back online: the open bucket (120, 130) goes first, then the raw sample.
	step(140, true)
	if len(sent) != 6 {
		t.Fatalf("reconnect: %d batches, want the open bucket then the raw sample", len(sent))
	}
	if s := sent[4].Samples[0]; s.Merged != 2 || !s.Time.Equal(at(130)) {
		t.Errorf("open bucket: %+v", s)
	}
	if s := sent[5].Samples[0]; s.Merged != 0 || !s.Time.Equal(at(140)) {
		t.Errorf("raw after reconnect: %+v", s)
	}
	// No gap: every sample's window starts where the previous one ended.
	var end time.Time
	for i, b := range sent {
		s := b.Samples[0]
		start := s.Time.Add(-s.Window())
		if i > 0 && !start.Equal(end) {
			t.Errorf("batch %d starts at %s, previous ended at %s", i, start, end)
		}
		end = s.Time
	}
}

func TestCollectorFlushesOpenBucketOnStop(t *testing.T) {
	var sent []wire.MetricsBatch
	c := New(Config{Interval: 10 * time.Second, Node: &fakeNode{}, Send: func(b wire.MetricsBatch) { sent = append(sent, b) }})
	c.deliver(c.Collect(context.Background(), t0.Add(10*time.Second)), false)
	if len(sent) != 0 {
		t.Fatal("sent before the bucket closed")
	}
	c.flushBucket()
	if len(sent) != 1 {
		t.Fatal("open bucket lost")
	}
}

func TestCollectorPodRatesAndRestarts(t *testing.T) {
	rt := &fakeRuntime{}
	c := New(Config{Interval: 10 * time.Second, Node: &fakeNode{},
		Restarts: func() map[ContainerKey]int32 { return map[ContainerKey]int32{{PodUID: "u1", Container: "main"}: 3} }})
	c.SetRuntime(rt)
	st := func(nanos uint64, at time.Time) []ContainerStats {
		return []ContainerStats{
			{ID: "a", PodUID: "u1", PodName: "web", PodNamespace: "default", Container: "main", CPUUsageNanos: nanos, MemoryWorkingSetBytes: 5, Time: at},
			{ID: "x", Container: "not-a-pod"},
		}
	}
	rt.stats = st(1e9, t0)
	s := c.Collect(context.Background(), t0)
	if len(s.Pods) != 1 || s.Pods[0].Containers[0].CPUUsageCores != nil {
		t.Fatalf("first sample: %+v; want one pod with no CPU rate yet", s.Pods)
	}
	rt.stats = st(3e9, t0.Add(4*time.Second))
	s = c.Collect(context.Background(), t0.Add(4*time.Second))
	cs := s.Pods[0].Containers[0]
	if cs.CPUUsageCores == nil || !near(*cs.CPUUsageCores, 0.5) || cs.Restarts != 3 || cs.CPUSeconds != 3 {
		t.Errorf("second sample: %+v; want 0.5 cores (2 s of CPU over 4 s), restarts 3", cs)
	}
}

func TestHostSamplerReadsThisMachine(t *testing.T) {
	h := &HostSampler{StateDir: t.TempDir()}
	ctx := context.Background()
	if _, err := h.Sample(ctx, time.Now()); err != nil {
		t.Logf("first sample incomplete: %v", err)
	}
	// Burn a little CPU so the rate is not zero on an idle machine.
	end := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(end) {
	}
	s, err := h.Sample(ctx, time.Now())
	if err != nil {
		t.Logf("sample incomplete: %v", err)
	}
	if s.CPU.Cores < 1 || len(s.CPU.PerCore) != s.CPU.Cores || s.CPU.UsageCores <= 0 || s.CPU.UsageCores > float64(s.CPU.Cores) {
		t.Errorf("cpu %+v", s.CPU)
	}
	if s.Memory.TotalBytes == 0 || s.Memory.AvailableBytes > s.Memory.TotalBytes {
		t.Errorf("memory %+v", s.Memory)
	}
	if s.UptimeSeconds == 0 || s.Processes < 2 || s.Load == nil {
		t.Errorf("uptime %d processes %d load %v", s.UptimeSeconds, s.Processes, s.Load)
	}
	if len(s.Filesystems) == 0 {
		t.Fatal("no filesystems")
	}
	state := 0
	for _, fs := range s.Filesystems {
		if pseudoFilesystems[fs.Type] || fs.TotalBytes == 0 {
			t.Errorf("pseudo or empty filesystem listed: %+v", fs)
		}
		if fs.State {
			state++
		}
	}
	if state > 1 {
		t.Errorf("%d filesystems marked as the state dir's", state)
	}
	for _, n := range s.Networks {
		if n.Interface == "lo" {
			t.Error("loopback listed")
		}
	}
}

// TestTemperaturesAbsentOrPresent points the sampler at a fake /sys: no
// sensor means no temperatures at all (not a zero), a thermal zone means
// one reading.
func TestTemperaturesAbsentOrPresent(t *testing.T) {
	sys := t.TempDir()
	h := &HostSampler{SysRoot: sys}
	s, _ := h.Sample(context.Background(), time.Now())
	if len(s.Temperatures) != 0 {
		t.Fatalf("no sensors, got %+v", s.Temperatures)
	}
	b, _ := json.Marshal(s)
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	if _, ok := raw["temperatures"]; ok {
		t.Error("absent temperatures encoded")
	}
	zone := filepath.Join(sys, "class", "thermal", "thermal_zone0")
	if err := os.MkdirAll(zone, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(zone, "type"), []byte("cpu-thermal\n"), 0o644)
	os.WriteFile(filepath.Join(zone, "temp"), []byte("47250\n"), 0o644)
	s, _ = h.Sample(context.Background(), time.Now())
	if len(s.Temperatures) != 1 || s.Temperatures[0].Sensor != "cpu-thermal" || !near(s.Temperatures[0].Celsius, 47.25) {
		t.Fatalf("temperatures %+v, want cpu-thermal at 47.25", s.Temperatures)
	}
}

// TestOfflineDayFitsTheOutbox checks the arithmetic the design rests on: a
// day of one-minute samples of a busy board fits the default outbox bound
// many times over.
func TestOfflineDayFitsTheOutbox(t *testing.T) {
	s := sample(t0, 60, 1, 1, f64(1), 1)
	s.Merged = 6
	for i := 0; i < 30; i++ {
		s.Pods = append(s.Pods, wire.PodSample{Namespace: "default", Name: "pod-with-a-long-name-0123456789", UID: "0123456789abcdef0123456789abcdef",
			Containers: []wire.ContainerSample{{Name: "main", CPUUsageCores: f64(0.123456), CPUSeconds: 12345.678, MemoryWorkingSetBytes: 123456789, MemoryUsageBytes: 223456789}}})
	}
	b, err := wire.Encode(wire.TypeMetrics, "node-1", 1, t0, wire.MetricsBatch{Samples: []wire.MetricSample{s}})
	if err != nil {
		t.Fatal(err)
	}
	perDay := int64(len(b)) * 24 * 60
	const outboxBytes = 64 << 20
	t.Logf("one merged sample with 30 pods: %d bytes; a day offline: %d KiB of a %d MiB outbox", len(b), perDay>>10, outboxBytes>>20)
	if perDay > outboxBytes/2 {
		t.Errorf("a day offline takes %d bytes, more than half the outbox", perDay)
	}
}

func TestRoundTrimsPrecision(t *testing.T) {
	s := sample(t0, 10.00049, 1.123456789, 1, f64(0.123456789), 1)
	s.Node.Disks = []wire.DiskSample{{Device: "sda", ReadBytesPerSecond: 126656.21004157717, ReadsPerSecond: 4.987407464464827}}
	Round(&s)
	if s.Node.CPU.UsageCores != 1.1235 || s.Node.Disks[0].ReadBytesPerSecond != 126656 || s.Node.Disks[0].ReadsPerSecond != 4.99 ||
		*s.Pods[0].Containers[0].CPUUsageCores != 0.1235 || s.WindowSeconds != 10 {
		t.Errorf("rounded: cpu %v disk %+v container %v window %v", s.Node.CPU.UsageCores, s.Node.Disks[0], *s.Pods[0].Containers[0].CPUUsageCores, s.WindowSeconds)
	}
}
