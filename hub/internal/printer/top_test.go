package printer

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func nodeM(name, cpu, mem string, temp *float64) api.NodeMetrics {
	return api.NodeMetrics{ObjectMeta: api.ObjectMeta{Name: name},
		Usage:   api.ResourceList{api.ResourceCPU: api.Quantity(cpu), api.ResourceMemory: api.Quantity(mem)},
		Details: &api.NodeUsage{CPUPercent: 12.5, MemoryPercent: 40.4, DiskPercent: 71, TemperatureCelsius: temp, Load: &api.Load{Load1: 0.5}, UptimeSeconds: 3 * 3600}}
}

func TestTopNodesSortsAndShowsAbsentTemperature(t *testing.T) {
	hot := 61.26
	var b bytes.Buffer
	items := []api.NodeMetrics{nodeM("a", "250m", "1048576Ki", nil), nodeM("b", "1500m", "524288Ki", &hot)}
	if err := PrintTopNodes(&b, items, SortByCPU, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "b ") || !strings.HasPrefix(lines[2], "a ") {
		t.Fatalf("sort by cpu:\n%s", b.String())
	}
	for _, want := range []string{"NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%", "DISK%", "TEMP", "LOAD", "UPTIME"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("header %q lacks %s", lines[0], want)
		}
	}
	if f := strings.Fields(lines[1]); f[1] != "1500m" || f[3] != "512Mi" || f[6] != "61.3C" || f[7] != "0.50" || f[8] != "3h" {
		t.Errorf("row b: %v", f)
	}
	if f := strings.Fields(lines[2]); f[6] != none {
		t.Errorf("a board without sensors shows %q", f[6])
	}
	b.Reset()
	_ = PrintTopNodes(&b, items, SortByMemory, true)
	if !strings.HasPrefix(b.String(), "a ") {
		t.Errorf("sort by memory, no headers:\n%s", b.String())
	}
	if err := PrintTopNodes(&b, nil, SortByCPU, false); err != ErrNoResources {
		t.Errorf("empty: %v", err)
	}
}

func TestTopPods(t *testing.T) {
	pod := func(ns, name, cpu, mem string) api.PodMetrics {
		return api.PodMetrics{ObjectMeta: api.ObjectMeta{Name: name, Namespace: ns}, Containers: []api.ContainerMetrics{
			{Name: "main", Usage: api.ResourceList{api.ResourceCPU: api.Quantity(cpu), api.ResourceMemory: api.Quantity(mem)}},
			{Name: "side", Usage: api.ResourceList{api.ResourceCPU: "1m", api.ResourceMemory: "1024Ki"}},
		}}
	}
	items := []api.PodMetrics{pod("default", "idle", "1m", "2048Ki"), pod("kube", "burner", "990m", "4096Ki")}
	var b bytes.Buffer
	if err := PrintTopPods(&b, items, SortByCPU, true, false, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if f := strings.Fields(lines[1]); f[0] != "kube" || f[1] != "burner" || f[2] != "991m" || f[3] != "5Mi" {
		t.Errorf("first row %v:\n%s", f, b.String())
	}
	b.Reset()
	_ = PrintTopPods(&b, items, SortByName, false, true, false)
	if !strings.Contains(b.String(), "POD") || strings.Count(b.String(), "\n") != 5 {
		t.Errorf("--containers:\n%s", b.String())
	}
}

func TestSeriesCSV(t *testing.T) {
	v := 1.5
	s := &api.NodeMetricsSeries{Columns: []string{"cpu.usage_cores", "fs./data,x.percent"}, Points: []api.SeriesPoint{
		{Time: api.NewTime(time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)), WindowSeconds: 10, Values: []*float64{&v, nil}},
	}}
	var b bytes.Buffer
	if err := PrintSeriesCSV(&b, s); err != nil {
		t.Fatal(err)
	}
	want := "time,window_seconds,cpu.usage_cores,\"fs./data,x.percent\"\n2026-01-01T00:00:10Z,10,1.5,\n"
	if b.String() != want {
		t.Errorf("csv:\n%s\nwant:\n%s", b.String(), want)
	}
}
