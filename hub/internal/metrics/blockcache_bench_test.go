package metrics

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkSeriesBlockCache writes two hours of samples of a 200-node
// fleet through the series store (flushes and compactions as a running
// hub makes them), reads an hour of 20 nodes' series and every node's
// latest sample as the CLI and a restart do, and reports how Badger's
// block cache fared by the measure of its once-a-minute "Block cache
// might be too small" warning: the hit ratio (warning below 0.4) and the
// mean life of an evicted block (warning below 10 s).
func BenchmarkSeriesBlockCache(b *testing.B) {
	const nodes, samples = 200, 720 // 2 h at 10 s
	for b.Loop() {
		series, err := OpenBadger(filepath.Join(b.TempDir(), "metrics"), 24*time.Hour, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 6))
		start := time.Now().Add(-2 * time.Hour)
		for i := range samples {
			batch := make([]Entry, 0, nodes)
			at := start.Add(time.Duration(i) * 10 * time.Second)
			for n := range nodes {
				batch = append(batch, Entry{Node: fmt.Sprintf("node-%04d", n), Sample: boardSample(r, n, at)})
			}
			if err := series.Append(batch); err != nil {
				b.Fatal(err)
			}
		}
		written := series.db.BlockCacheMetrics()
		hitsW, missesW := written.Hits(), written.Misses()
		for n := range 20 {
			if _, err := series.Range(fmt.Sprintf("node-%04d", n*7), time.Now().Add(-time.Hour), time.Now()); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := series.Latest(); err != nil {
			b.Fatal(err)
		}
		m := series.db.BlockCacheMetrics()
		b.ReportMetric(float64(missesW), "misses-while-writing")
		b.ReportMetric(float64(hitsW), "hits-while-writing")
		b.ReportMetric(float64(m.Hits()-hitsW), "hits-reading")
		b.ReportMetric(float64(m.Misses()-missesW), "misses-reading")
		b.ReportMetric(m.Ratio(), "hit-ratio")
		if le := m.LifeExpectancySeconds(); le != nil && le.Count > 0 {
			b.ReportMetric(float64(le.Sum)/float64(le.Count), "mean-life-s")
			b.ReportMetric(float64(le.Count), "evictions")
		}
		if err := series.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
