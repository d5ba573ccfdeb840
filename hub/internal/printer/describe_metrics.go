package printer

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// describeNodeUsage writes the node's latest sample (status.metrics) and
// the usage of the pods on it, after the pods and their requests.
func describeNodeUsage(d *describer, n *api.Node, pods []api.PodMetrics, now time.Time) {
	u := n.Status.Metrics
	if u == nil {
		d.line(0, "Usage:\t%s", none)
	} else {
		d.line(0, "Usage:\t(sampled %s ago, over %s)", age(now, u.Timestamp), time.Duration(u.WindowSeconds*float64(time.Second)).Round(time.Millisecond))
		d.line(1, "CPU:\t%s of %d cores (%s)", FormatCPU(int64(u.CPUUsageCores*1000+0.5)), u.CPUCores, pct(u.CPUPercent))
		d.line(1, "Memory:\t%s of %s (%s)", api.FormatBytes(int64(u.MemoryUsedBytes)), api.FormatBytes(int64(u.MemoryTotalBytes)), pct(u.MemoryPercent))
		if u.SwapTotalBytes > 0 {
			d.line(1, "Swap:\t%s of %s", api.FormatBytes(int64(u.SwapUsedBytes)), api.FormatBytes(int64(u.SwapTotalBytes)))
		}
		var fss []string
		for _, fs := range u.Filesystems {
			fss = append(fss, fmt.Sprintf("%s %s", fs.Mount, pct(fs.Percent)))
		}
		d.line(1, "Disk:\t%s (%s)", pct(u.DiskPercent), orNone(strings.Join(fss, ", ")))
		if u.Load != nil {
			d.line(1, "Load:\t%.2f %.2f %.2f", u.Load.Load1, u.Load.Load5, u.Load.Load15)
		}
		if len(u.Temperatures) == 0 {
			d.line(1, "Temperature:\t%s", none)
		} else {
			var ts []string
			for _, t := range u.Temperatures {
				ts = append(ts, t.Sensor+" "+strconv.FormatFloat(t.Celsius, 'f', 1, 64)+"C")
			}
			d.line(1, "Temperature:\t%s", strings.Join(ts, ", "))
		}
		d.line(1, "Uptime:\t%s", HumanDuration(time.Duration(u.UptimeSeconds)*time.Second))
		d.line(1, "Processes:\t%d", u.Processes)
	}
	if len(pods) == 0 {
		d.line(0, "Pod Usage:\t%s", none)
		return
	}
	sorted := append([]api.PodMetrics(nil), pods...)
	SortPodMetrics(sorted, SortByCPU)
	d.line(0, "Pod Usage:")
	d.line(1, "Namespace\tName\tCPU(cores)\tMemory(bytes)\tRestarts")
	d.line(1, "---------\t----\t----------\t-------------\t--------")
	for _, p := range sorted {
		cpu, mem := podTotals(p)
		var restarts int32
		for _, c := range p.Containers {
			restarts += c.Restarts
		}
		d.line(1, "%s\t%s\t%s\t%s\t%d", p.Namespace, p.Name, FormatCPU(cpu), FormatMemory(mem), restarts)
	}
}
