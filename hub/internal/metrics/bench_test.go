package metrics

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/ingest"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// boardSample is a sample of a typical board: 4 cores, root and data
// filesystems, one disk, two interfaces, one sensor and 10 single-container
// pods, with values that move the way real ones do (and so compress no
// better than real ones).
func boardSample(r *rand.Rand, node int, at time.Time) wire.MetricSample {
	jitter := func(base, spread float64) float64 {
		return float64(int64((base+spread*r.Float64())*10000)) / 10000
	}
	cpu := jitter(0.8, 1.2)
	s := wire.MetricSample{
		Time: at, WindowSeconds: 10,
		Node: wire.NodeSample{
			CPU:    wire.CPUSample{Cores: 4, UsageCores: cpu, PerCore: []float64{jitter(0.1, 0.5), jitter(0.1, 0.5), jitter(0.1, 0.5), jitter(0.1, 0.5)}},
			Load:   &wire.LoadSample{Load1: jitter(0.5, 1), Load5: jitter(0.5, 0.5), Load15: jitter(0.5, 0.2)},
			Memory: wire.MemorySample{TotalBytes: 4 << 30, AvailableBytes: uint64(2<<30 + r.IntN(1<<28)), SwapTotalBytes: 1 << 30, SwapUsedBytes: uint64(r.IntN(1 << 20))},
			Filesystems: []wire.FilesystemSample{
				{Mount: "/", Device: "/dev/mmcblk0p2", Type: "ext4", TotalBytes: 30 << 30, UsedBytes: uint64(8<<30 + r.IntN(1<<20)), AvailableBytes: 20 << 30, InodesTotal: 1900000, InodesUsed: 210000, State: true},
				{Mount: "/boot/firmware", Device: "/dev/mmcblk0p1", Type: "vfat", TotalBytes: 512 << 20, UsedBytes: 60 << 20, AvailableBytes: 452 << 20},
			},
			Disks: []wire.DiskSample{{Device: "mmcblk0", ReadBytesPerSecond: float64(r.IntN(200000)), WriteBytesPerSecond: float64(r.IntN(800000)), ReadsPerSecond: jitter(0, 20), WritesPerSecond: jitter(0, 60), IOTimeFractionPercent: jitter(0, 5)}},
			Networks: []wire.NetworkSample{
				{Interface: "eth0", RxBytesPerSecond: float64(r.IntN(50000)), TxBytesPerSecond: float64(r.IntN(20000)), RxBytes: uint64(at.Unix() * 3000), TxBytes: uint64(at.Unix() * 1000)},
				{Interface: "wlan0", RxBytesPerSecond: 0, TxBytesPerSecond: 0, RxBytes: 123456, TxBytes: 654321},
			},
			Temperatures:  []wire.TemperatureSample{{Sensor: "cpu_thermal", Celsius: jitter(45, 10)}},
			UptimeSeconds: uint64(at.Unix() % 10000000), Processes: 140 + r.IntN(10),
		},
	}
	for p := range 10 {
		c := jitter(0, 0.2)
		s.Pods = append(s.Pods, wire.PodSample{
			Namespace: "default", Name: fmt.Sprintf("sensor-gateway-%d-%05d", p, node), UID: fmt.Sprintf("6f1c2a3b-%04d-4e5f-8a9b-%012d", p, node),
			Containers: []wire.ContainerSample{{Name: "main", CPUUsageCores: &c, CPUSeconds: float64(at.Unix()%100000) / 7,
				MemoryWorkingSetBytes: uint64(30<<20 + r.IntN(1<<20)), MemoryUsageBytes: uint64(50<<20 + r.IntN(1<<20)), Restarts: 0}},
		})
	}
	return s
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIngest1000NodesPerInterval feeds what 1,000 nodes send in one
// default interval (one metrics message each, as encoded by the agent)
// through ingest's decoding into the fleet and its Badger series store,
// with the object store on Badger too (a metrics message is a sign of life
// that ingest records), and reports the hub's CPU time per interval.
func BenchmarkIngest1000NodesPerInterval(b *testing.B) {
	const nodes = 1000
	dir := b.TempDir()
	st, err := store.OpenBadger(filepath.Join(dir, "store"), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	series, err := OpenBadger(filepath.Join(dir, "metrics"), DefaultRetention, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer series.Close()
	fleet := NewFleet(FleetOptions{Series: series, Logger: slog.New(slog.DiscardHandler)})
	in := ingest.New(ingest.Options{Store: st, Metrics: fleet, Logger: slog.New(slog.DiscardHandler)})
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now().Add(-time.Hour)
	msgs := func(interval int) ([]string, [][]byte) {
		topics, payloads := make([]string, nodes), make([][]byte, nodes)
		at := start.Add(time.Duration(interval) * 10 * time.Second)
		for n := range nodes {
			name := fmt.Sprintf("node-%04d", n)
			payload, err := wire.Encode(wire.TypeMetrics, name, uint64(interval+1), at, wire.MetricsBatch{Samples: []wire.MetricSample{boardSample(r, n, at)}})
			if err != nil {
				b.Fatal(err)
			}
			topics[n], payloads[n] = wire.NodeTopic(name, wire.TopicMetrics), payload
		}
		return topics, payloads
	}
	var cpu time.Duration
	var bytes int
	interval := 0
	for b.Loop() {
		b.StopTimer()
		topics, payloads := msgs(interval)
		interval++
		bytes = 0
		for _, p := range payloads {
			bytes += len(p)
		}
		b.StartTimer()
		before := cpuTime()
		for i := range topics {
			in.Handle(topics[i], payloads[i])
		}
		in.Flush()
		if err := fleet.Flush(); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - before
	}
	b.ReportMetric(float64(cpu.Milliseconds())/float64(interval), "cpu-ms/interval")
	b.ReportMetric(float64(cpu.Microseconds())/float64(interval)/nodes, "cpu-µs/node")
	b.ReportMetric(float64(bytes)/nodes, "msg-bytes/node")
}

// BenchmarkStoragePerNodeDay writes a day of 10-second samples of a few
// boards into the Badger series store, compacts it, and reports the bytes
// on disk per node per day. Run it with -benchtime=1x: one iteration is a
// whole day.
func BenchmarkStoragePerNodeDay(b *testing.B) {
	const nodes = 4
	const perDay = 24 * 60 * 6
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "metrics")
		series, err := OpenBadger(dir, 48*time.Hour, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, 4))
		start := time.Now().Add(-24 * time.Hour)
		var raw int64
		for i := 0; i < perDay; i += 60 {
			var batch []Entry
			for j := i; j < min(i+60, perDay); j++ {
				at := start.Add(time.Duration(j) * 10 * time.Second)
				for n := range nodes {
					batch = append(batch, Entry{Node: fmt.Sprintf("node-%04d", n), Sample: boardSample(r, n, at)})
				}
			}
			if err := series.Append(batch); err != nil {
				b.Fatal(err)
			}
		}
		for n := range nodes {
			got, _ := series.Range(fmt.Sprintf("node-%04d", n), start, time.Now())
			if len(got) != perDay {
				b.Fatalf("node %d: %d samples kept, want %d", n, len(got), perDay)
			}
		}
		latest, _ := series.Latest()
		for _, s := range latest {
			raw += int64(len(mustJSON(s)))
		}
		if err := series.Flatten(); err != nil {
			b.Fatal(err)
		}
		if err := series.Close(); err != nil {
			b.Fatal(err)
		}
		onDisk := dirSize(dir)
		b.ReportMetric(float64(onDisk)/nodes/(1<<20), "MiB/node/day")
		b.ReportMetric(float64(raw)/nodes, "json-bytes/sample")
		b.ReportMetric(float64(onDisk)/nodes/perDay, "disk-bytes/sample")
	}
}

func mustJSON(s wire.MetricSample) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return b
}
