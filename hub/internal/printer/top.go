package printer

import (
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// TopSort orders `top` rows: by CPU or memory, highest first, or by name.
type TopSort string

// Sort keys of `top --sort-by`.
const (
	SortByName   TopSort = ""
	SortByCPU    TopSort = "cpu"
	SortByMemory TopSort = "memory"
)

// cpuMilli and memBytes read a usage list's quantities.
func cpuMilli(rl api.ResourceList) int64 { return rl[api.ResourceCPU].MilliValue() }
func memBytes(rl api.ResourceList) int64 { return rl[api.ResourceMemory].Value() }

// FormatCPU renders millicores as kubectl top does ("250m").
func FormatCPU(milli int64) string { return strconv.FormatInt(milli, 10) + "m" }

// FormatMemory renders bytes as kubectl top does ("123Mi").
func FormatMemory(b int64) string {
	return strconv.FormatInt(b/(1<<20), 10) + "Mi"
}

func pct(v float64) string { return strconv.Itoa(int(v+0.5)) + "%" }

// PrintTopNodes writes `hub top nodes`: NAME CPU(cores) CPU% MEMORY(bytes)
// MEMORY% DISK% TEMP LOAD UPTIME.
func PrintTopNodes(w io.Writer, items []api.NodeMetrics, by TopSort, noHeaders bool) error {
	if len(items) == 0 {
		return ErrNoResources
	}
	sorted := append([]api.NodeMetrics(nil), items...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Usage, sorted[j].Usage
		switch by {
		case SortByCPU:
			if cpuMilli(a) != cpuMilli(b) {
				return cpuMilli(a) > cpuMilli(b)
			}
		case SortByMemory:
			if memBytes(a) != memBytes(b) {
				return memBytes(a) > memBytes(b)
			}
		}
		return sorted[i].Name < sorted[j].Name
	})
	t := table{headers: []string{"NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%", "DISK%", "TEMP", "LOAD", "UPTIME"}}
	for _, m := range sorted {
		d := m.Details
		if d == nil {
			d = &api.NodeUsage{}
		}
		temp := none
		if d.TemperatureCelsius != nil {
			temp = strconv.FormatFloat(*d.TemperatureCelsius, 'f', 1, 64) + "C"
		}
		load := none
		if d.Load != nil {
			load = strconv.FormatFloat(d.Load.Load1, 'f', 2, 64)
		}
		t.rows = append(t.rows, []string{
			m.Name,
			FormatCPU(cpuMilli(m.Usage)), pct(d.CPUPercent),
			FormatMemory(memBytes(m.Usage)), pct(d.MemoryPercent),
			pct(d.DiskPercent), temp, load,
			HumanDuration(time.Duration(d.UptimeSeconds) * time.Second),
		})
	}
	return writeTable(w, t, !noHeaders)
}

// podTotals sums a pod's containers.
func podTotals(p api.PodMetrics) (cpu, mem int64) {
	for _, c := range p.Containers {
		cpu += cpuMilli(c.Usage)
		mem += memBytes(c.Usage)
	}
	return cpu, mem
}

// SortPodMetrics orders pods for `top pods`.
func SortPodMetrics(items []api.PodMetrics, by TopSort) {
	sort.SliceStable(items, func(i, j int) bool {
		ci, mi := podTotals(items[i])
		cj, mj := podTotals(items[j])
		switch by {
		case SortByCPU:
			if ci != cj {
				return ci > cj
			}
		case SortByMemory:
			if mi != mj {
				return mi > mj
			}
		}
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
}

// PrintTopPods writes `hub top pods`: [NAMESPACE] NAME CPU(cores)
// MEMORY(bytes), or with containers one row per container (POD NAME ...).
func PrintTopPods(w io.Writer, items []api.PodMetrics, by TopSort, allNamespaces, containers, noHeaders bool) error {
	if len(items) == 0 {
		return ErrNoResources
	}
	sorted := append([]api.PodMetrics(nil), items...)
	SortPodMetrics(sorted, by)
	var t table
	if containers {
		t.headers = []string{"POD", "NAME", "CPU(cores)", "MEMORY(bytes)"}
	} else {
		t.headers = []string{"NAME", "CPU(cores)", "MEMORY(bytes)"}
	}
	if allNamespaces {
		t.headers = append([]string{"NAMESPACE"}, t.headers...)
	}
	for _, p := range sorted {
		var rows [][]string
		if containers {
			for _, c := range p.Containers {
				rows = append(rows, []string{p.Name, c.Name, FormatCPU(cpuMilli(c.Usage)), FormatMemory(memBytes(c.Usage))})
			}
		} else {
			cpu, mem := podTotals(p)
			rows = append(rows, []string{p.Name, FormatCPU(cpu), FormatMemory(mem)})
		}
		for _, r := range rows {
			if allNamespaces {
				r = append([]string{p.Namespace}, r...)
			}
			t.rows = append(t.rows, r)
		}
	}
	return writeTable(w, t, !noHeaders)
}

// PrintSeriesCSV writes a node's series as CSV: time, window, then one
// column per metric; a missing value is an empty cell.
func PrintSeriesCSV(w io.Writer, s *api.NodeMetricsSeries) error {
	cw := csv.NewWriter(w)
	header := append([]string{"time", "window_seconds"}, s.Columns...)
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, p := range s.Points {
		row := make([]string, 0, len(header))
		row = append(row, p.Time.UTC().Format(time.RFC3339), strconv.FormatFloat(p.WindowSeconds, 'f', -1, 64))
		for _, v := range p.Values {
			if v == nil {
				row = append(row, "")
			} else {
				row = append(row, strconv.FormatFloat(*v, 'f', -1, 64))
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// PrintSeriesTable writes a node's series as an aligned table.
func PrintSeriesTable(w io.Writer, s *api.NodeMetricsSeries) error {
	if len(s.Points) == 0 {
		return ErrNoResources
	}
	t := table{headers: append([]string{"TIME", "WINDOW"}, s.Columns...)}
	for _, p := range s.Points {
		row := []string{p.Time.UTC().Format(time.RFC3339), (time.Duration(p.WindowSeconds * float64(time.Second))).Round(time.Second).String()}
		for _, v := range p.Values {
			if v == nil {
				row = append(row, "-")
			} else {
				row = append(row, strconv.FormatFloat(*v, 'f', -1, 64))
			}
		}
		t.rows = append(t.rows, row)
	}
	return writeTable(w, t, true)
}

// PrintObjectJSON writes any API value as indented JSON, as -o json does.
func PrintObjectJSON(w io.Writer, v any) error {
	return encode(w, FormatJSON, v)
}
