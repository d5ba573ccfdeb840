package metrics

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func sortSamples(s []wire.MetricSample) {
	sort.Slice(s, func(i, j int) bool { return s[i].Time.Before(s[j].Time) })
}

func percent(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return round2(100 * part / whole)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

func round4(v float64) float64 { return math.Round(v*10000) / 10000 }

// WatchedFilesystems are the ones DiskPressure looks at: the root
// filesystem and the one holding the agent's state; all of them when the
// node reports neither.
func WatchedFilesystems(fss []wire.FilesystemSample) []wire.FilesystemSample {
	var out []wire.FilesystemSample
	for _, fs := range fss {
		if fs.Mount == "/" || fs.State {
			out = append(out, fs)
		}
	}
	if len(out) == 0 {
		return fss
	}
	return out
}

func fsPercent(fs wire.FilesystemSample) float64 {
	// Like df: used / (used + available), so root's reserve counts as full.
	return percent(float64(fs.UsedBytes), float64(fs.UsedBytes+fs.AvailableBytes))
}

// DiskPercent is the fullest watched filesystem's use.
func DiskPercent(n wire.NodeSample) float64 {
	var top float64
	for _, fs := range WatchedFilesystems(n.Filesystems) {
		top = max(top, fsPercent(fs))
	}
	return top
}

// MemoryPercent is memory in use (total minus available) over total.
func MemoryPercent(n wire.NodeSample) float64 {
	return percent(float64(n.Memory.UsedBytes()), float64(n.Memory.TotalBytes))
}

// Usage renders a sample as a node's status.metrics.
func Usage(s wire.MetricSample) *api.NodeUsage {
	n := s.Node
	u := &api.NodeUsage{
		Timestamp:        api.NewTime(s.Time),
		WindowSeconds:    round2(s.WindowSeconds),
		CPUCores:         n.CPU.Cores,
		CPUUsageCores:    round4(n.CPU.UsageCores),
		CPUPercent:       percent(n.CPU.UsageCores, float64(n.CPU.Cores)),
		MemoryUsedBytes:  n.Memory.UsedBytes(),
		MemoryTotalBytes: n.Memory.TotalBytes,
		MemoryPercent:    MemoryPercent(n),
		SwapUsedBytes:    n.Memory.SwapUsedBytes,
		SwapTotalBytes:   n.Memory.SwapTotalBytes,
		DiskPercent:      DiskPercent(n),
		UptimeSeconds:    n.UptimeSeconds,
		Processes:        n.Processes,
		Pods:             len(s.Pods),
	}
	if n.Load != nil {
		u.Load = &api.Load{Load1: round2(n.Load.Load1), Load5: round2(n.Load.Load5), Load15: round2(n.Load.Load15)}
	}
	for _, fs := range n.Filesystems {
		u.Filesystems = append(u.Filesystems, api.FilesystemUsage{Mount: fs.Mount, Device: fs.Device, UsedBytes: fs.UsedBytes, TotalBytes: fs.TotalBytes, Percent: fsPercent(fs)})
	}
	for _, d := range n.Disks {
		u.Disks = append(u.Disks, api.DiskIO{Device: d.Device, ReadBytesPerSecond: round2(d.ReadBytesPerSecond), WriteBytesPerSecond: round2(d.WriteBytesPerSecond)})
	}
	for _, ni := range n.Networks {
		u.Networks = append(u.Networks, api.NetworkUsage{Interface: ni.Interface, RxBytesPerSecond: round2(ni.RxBytesPerSecond), TxBytesPerSecond: round2(ni.TxBytesPerSecond), RxErrors: ni.RxErrors, TxErrors: ni.TxErrors})
	}
	for i, t := range n.Temperatures {
		u.Temperatures = append(u.Temperatures, api.TemperatureUsage{Sensor: t.Sensor, Celsius: round2(t.Celsius)})
		if i == 0 || t.Celsius > *u.TemperatureCelsius {
			c := round2(t.Celsius)
			u.TemperatureCelsius = &c
		}
	}
	return u
}

// cpuQuantity renders cores as a quantity in millicores ("250m").
func cpuQuantity(cores float64) api.Quantity {
	return api.Quantity(strconv.FormatInt(int64(math.Round(cores*1000)), 10) + "m")
}

// bytesQuantity renders bytes as a quantity in KiB ("123456Ki"), as the
// metrics API does.
func bytesQuantity(b uint64) api.Quantity {
	return api.Quantity(strconv.FormatUint(b/1024, 10) + "Ki")
}

func window(s wire.MetricSample) string {
	return s.Window().Round(time.Millisecond).String()
}

// NodeMetrics renders a node's latest sample for `top nodes`.
func NodeMetrics(node string, s wire.MetricSample) api.NodeMetrics {
	return api.NodeMetrics{
		TypeMeta:   api.TypeMeta{APIVersion: api.MetricsAPIVersion, Kind: api.KindNodeMetrics},
		ObjectMeta: api.ObjectMeta{Name: node},
		Timestamp:  api.NewTime(s.Time),
		Window:     window(s),
		Usage: api.ResourceList{
			api.ResourceCPU:    cpuQuantity(s.Node.CPU.UsageCores),
			api.ResourceMemory: bytesQuantity(s.Node.Memory.UsedBytes()),
		},
		Details: Usage(s),
	}
}

// PodMetrics renders the pods of a node's latest sample for `top pods`.
func PodMetrics(node string, s wire.MetricSample) []api.PodMetrics {
	out := make([]api.PodMetrics, 0, len(s.Pods))
	for _, p := range s.Pods {
		pm := api.PodMetrics{
			TypeMeta:   api.TypeMeta{APIVersion: api.MetricsAPIVersion, Kind: api.KindPodMetrics},
			ObjectMeta: api.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
			Timestamp:  api.NewTime(s.Time),
			Window:     window(s),
			NodeName:   node,
		}
		for _, c := range p.Containers {
			var cores float64
			if c.CPUUsageCores != nil {
				cores = *c.CPUUsageCores
			}
			pm.Containers = append(pm.Containers, api.ContainerMetrics{
				Name:     c.Name,
				Usage:    api.ResourceList{api.ResourceCPU: cpuQuantity(cores), api.ResourceMemory: bytesQuantity(c.MemoryWorkingSetBytes)},
				Restarts: c.Restarts,
			})
		}
		out = append(out, pm)
	}
	return out
}

// Metric names of a node's series. Per-object metrics carry the object in
// the middle: fs./.percent, net.eth0.rx_bps, pod.default/web.cpu_cores.
var baseColumns = []string{
	"cpu.usage_cores", "cpu.percent", "cpu.cores",
	"memory.used_bytes", "memory.total_bytes", "memory.percent",
	"swap.used_bytes", "swap.total_bytes",
	"load.1", "load.5", "load.15",
	"disk.percent", "temperature.max_celsius",
	"uptime.seconds", "processes", "pods",
}

// objectNames are the metric names per object, as patterns.
var objectNames = []string{
	"cpu.coreN.percent",
	"fs.MOUNT.percent", "fs.MOUNT.used_bytes",
	"diskio.DEV.read_bps", "diskio.DEV.write_bps",
	"net.IFACE.rx_bps", "net.IFACE.tx_bps", "net.IFACE.rx_errors", "net.IFACE.tx_errors",
	"temperature.SENSOR.celsius",
	"pod.NS/NAME.cpu_cores", "pod.NS/NAME.memory_bytes",
}

// MetricNames are the names a node's series may have: the fixed ones,
// then the per-object ones as patterns (fs.MOUNT.percent).
func MetricNames() []string {
	return append(append([]string(nil), baseColumns...), objectNames...)
}

// UnknownFilters returns the filters that select no metric. With
// samples, that is none of their columns (columns: every column of the
// series, unfiltered). Without, the node's objects are unknown, so only
// a filter outside every family (the part before the first dot: cpu,
// fs, pod) is.
func UnknownFilters(columns, filters []string, haveSamples bool) []string {
	families := map[string]bool{}
	for _, n := range MetricNames() {
		f, _, _ := strings.Cut(n, ".")
		families[f] = true
	}
	var out []string
	for _, f := range filters {
		known := false
		if haveSamples {
			for _, c := range columns {
				if matches(c, []string{f}) {
					known = true
					break
				}
			}
		} else {
			family, _, _ := strings.Cut(f, ".")
			known = families[family]
		}
		if !known {
			out = append(out, f)
		}
	}
	return out
}

// flatten turns one sample into named values.
func flatten(s wire.MetricSample) map[string]float64 {
	n := s.Node
	v := map[string]float64{
		"cpu.usage_cores":    round4(n.CPU.UsageCores),
		"cpu.percent":        percent(n.CPU.UsageCores, float64(n.CPU.Cores)),
		"cpu.cores":          float64(n.CPU.Cores),
		"memory.used_bytes":  float64(n.Memory.UsedBytes()),
		"memory.total_bytes": float64(n.Memory.TotalBytes),
		"memory.percent":     MemoryPercent(n),
		"swap.used_bytes":    float64(n.Memory.SwapUsedBytes),
		"swap.total_bytes":   float64(n.Memory.SwapTotalBytes),
		"disk.percent":       DiskPercent(n),
		"uptime.seconds":     float64(n.UptimeSeconds),
		"processes":          float64(n.Processes),
		"pods":               float64(len(s.Pods)),
	}
	if n.Load != nil {
		v["load.1"], v["load.5"], v["load.15"] = n.Load.Load1, n.Load.Load5, n.Load.Load15
	}
	for i, c := range n.CPU.PerCore {
		v[fmt.Sprintf("cpu.core%d.percent", i)] = round2(100 * c)
	}
	for _, fs := range n.Filesystems {
		v["fs."+fs.Mount+".used_bytes"] = float64(fs.UsedBytes)
		v["fs."+fs.Mount+".percent"] = fsPercent(fs)
	}
	for _, d := range n.Disks {
		v["diskio."+d.Device+".read_bps"] = round2(d.ReadBytesPerSecond)
		v["diskio."+d.Device+".write_bps"] = round2(d.WriteBytesPerSecond)
	}
	for _, ni := range n.Networks {
		v["net."+ni.Interface+".rx_bps"] = round2(ni.RxBytesPerSecond)
		v["net."+ni.Interface+".tx_bps"] = round2(ni.TxBytesPerSecond)
		v["net."+ni.Interface+".rx_errors"] = float64(ni.RxErrors)
		v["net."+ni.Interface+".tx_errors"] = float64(ni.TxErrors)
	}
	var hottest *float64
	for _, t := range n.Temperatures {
		v["temperature."+t.Sensor+".celsius"] = round2(t.Celsius)
		if hottest == nil || t.Celsius > *hottest {
			c := t.Celsius
			hottest = &c
		}
	}
	if hottest != nil {
		v["temperature.max_celsius"] = round2(*hottest)
	}
	for _, p := range s.Pods {
		var cpu, mem float64
		for _, c := range p.Containers {
			if c.CPUUsageCores != nil {
				cpu += *c.CPUUsageCores
			}
			mem += float64(c.MemoryWorkingSetBytes)
		}
		v["pod."+p.Namespace+"/"+p.Name+".cpu_cores"] = round4(cpu)
		v["pod."+p.Namespace+"/"+p.Name+".memory_bytes"] = mem
	}
	return v
}

// matches reports whether a column is selected by one of the filters: a
// filter selects the column of that name and every column under it
// ("cpu" selects cpu.usage_cores and cpu.core0.percent).
func matches(column string, filters []string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		if column == f || strings.HasPrefix(column, f+".") {
			return true
		}
	}
	return false
}

// SeriesOf renders samples as a table: the base columns first, in their
// order, then the per-object columns sorted by name.
func SeriesOf(node string, since time.Time, samples []wire.MetricSample, filters []string) *api.NodeMetricsSeries {
	flat := make([]map[string]float64, len(samples))
	extra := map[string]bool{}
	base := map[string]bool{}
	for _, c := range baseColumns {
		base[c] = true
	}
	for i, s := range samples {
		flat[i] = flatten(s)
		for k := range flat[i] {
			if !base[k] {
				extra[k] = true
			}
		}
	}
	var cols []string
	for _, c := range baseColumns {
		if matches(c, filters) {
			cols = append(cols, c)
		}
	}
	var more []string
	for c := range extra {
		if matches(c, filters) {
			more = append(more, c)
		}
	}
	sort.Strings(more)
	cols = append(cols, more...)
	out := &api.NodeMetricsSeries{
		TypeMeta: api.TypeMeta{APIVersion: "flotilla.io/v1", Kind: api.KindNodeMetricsSeries},
		Node:     node, Since: api.NewTime(since.UTC()),
		Columns: cols, Points: make([]api.SeriesPoint, 0, len(samples)),
	}
	for i, s := range samples {
		p := api.SeriesPoint{Time: api.NewTime(s.Time), WindowSeconds: round2(s.WindowSeconds), Values: make([]*float64, len(cols))}
		for j, c := range cols {
			if v, ok := flat[i][c]; ok {
				v := v
				p.Values[j] = &v
			}
		}
		out.Points = append(out.Points, p)
	}
	return out
}
