package metrics

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v3/common"
	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/host"
	"github.com/shirou/gopsutil/v3/load"
	"github.com/shirou/gopsutil/v3/mem"
	"github.com/shirou/gopsutil/v3/net"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// HostSampler reads the board's usage through gopsutil. Rates (CPU, disk
// and network) are computed against the previous call, so the first call
// only primes the counters and its rates are zero. It is not safe for
// concurrent use; the collector calls it from one goroutine.
type HostSampler struct {
	// StateDir marks the filesystem that holds it as the agent's.
	StateDir string
	// ProcRoot and SysRoot replace /proc and /sys (for an agent that sees
	// the host's through a bind mount, and for tests).
	ProcRoot, SysRoot string

	primed bool
	last   time.Time
	cpu    []cpu.TimesStat
	disks  map[string]disk.IOCountersStat
	nets   map[string]net.IOCountersStat
}

// pseudoFilesystems are block-less or read-only image filesystems that say
// nothing about a board's free space, even when gopsutil lists them.
var pseudoFilesystems = map[string]bool{
	"squashfs": true, "iso9660": true, "overlay": true, "tmpfs": true, "devtmpfs": true,
	"ramfs": true, "proc": true, "sysfs": true, "cgroup": true, "cgroup2": true, "nsfs": true,
	"fuse.lxcfs": true, "autofs": true, "erofs": true,
}

func (h *HostSampler) ctx(ctx context.Context) context.Context {
	env := common.EnvMap{}
	if h.ProcRoot != "" {
		env[common.HostProcEnvKey] = h.ProcRoot
	}
	if h.SysRoot != "" {
		env[common.HostSysEnvKey] = h.SysRoot
	}
	if len(env) == 0 {
		return ctx
	}
	return context.WithValue(ctx, common.EnvKey, env)
}

func (h *HostSampler) proc(p string) string {
	if h.ProcRoot != "" {
		return filepath.Join(h.ProcRoot, p)
	}
	return filepath.Join("/proc", p)
}

func (h *HostSampler) sys(p string) string {
	if h.SysRoot != "" {
		return filepath.Join(h.SysRoot, p)
	}
	return filepath.Join("/sys", p)
}

// Sample reads the node's usage at now. A part that cannot be read is left
// out (and the first error returned alongside what could be read): a board
// without swap or sensors still reports the rest.
func (h *HostSampler) Sample(ctx context.Context, now time.Time) (wire.NodeSample, error) {
	ctx = h.ctx(ctx)
	var s wire.NodeSample
	var first error
	note := func(what string, err error) {
		if err != nil && first == nil {
			first = fmt.Errorf("%s: %w", what, err)
		}
	}
	elapsed := now.Sub(h.last).Seconds()
	rates := h.primed && elapsed > 0

	times, err := cpu.TimesWithContext(ctx, true)
	note("cpu times", err)
	if err == nil {
		s.CPU.Cores = len(times)
		if rates && len(times) == len(h.cpu) {
			s.CPU.PerCore = make([]float64, len(times))
			for i, t := range times {
				busy := fraction(busyOf(t)-busyOf(h.cpu[i]), t.Total()-h.cpu[i].Total())
				s.CPU.PerCore[i] = busy
				s.CPU.UsageCores += busy
			}
		}
		h.cpu = times
	}
	if avg, err := load.AvgWithContext(ctx); err == nil {
		s.Load = &wire.LoadSample{Load1: avg.Load1, Load5: avg.Load5, Load15: avg.Load15}
	} else {
		note("load", err)
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		s.Memory.TotalBytes, s.Memory.AvailableBytes = vm.Total, vm.Available
	} else {
		note("memory", err)
	}
	if sw, err := mem.SwapMemoryWithContext(ctx); err == nil {
		s.Memory.SwapTotalBytes, s.Memory.SwapUsedBytes = sw.Total, sw.Used
	}
	s.Filesystems, err = h.filesystems(ctx)
	note("filesystems", err)

	if io, err := disk.IOCountersWithContext(ctx); err == nil {
		if rates {
			s.Disks = h.diskRates(io, elapsed)
		}
		h.disks = io
	} else {
		note("disk io", err)
	}
	if io, err := net.IOCountersWithContext(ctx, true); err == nil {
		cur := make(map[string]net.IOCountersStat, len(io))
		for _, c := range io {
			if c.Name == "lo" {
				continue
			}
			cur[c.Name] = c
			ns := wire.NetworkSample{
				Interface: c.Name, RxBytes: c.BytesRecv, TxBytes: c.BytesSent,
				RxErrors: c.Errin, TxErrors: c.Errout, RxDropped: c.Dropin, TxDropped: c.Dropout,
			}
			if p, ok := h.nets[c.Name]; ok && rates {
				ns.RxBytesPerSecond = rate(c.BytesRecv, p.BytesRecv, elapsed)
				ns.TxBytesPerSecond = rate(c.BytesSent, p.BytesSent, elapsed)
				ns.RxErrorsPerSecond = rate(c.Errin, p.Errin, elapsed)
				ns.TxErrorsPerSecond = rate(c.Errout, p.Errout, elapsed)
				ns.RxDroppedPerSecond = rate(c.Dropin, p.Dropin, elapsed)
			}
			s.Networks = append(s.Networks, ns)
		}
		sort.Slice(s.Networks, func(i, j int) bool { return s.Networks[i].Interface < s.Networks[j].Interface })
		h.nets = cur
	} else {
		note("network io", err)
	}
	// Sensors: gopsutil returns what it could read with warnings for the
	// rest; a board without sensors has none, and reports none.
	temps, _ := host.SensorsTemperaturesWithContext(ctx)
	for _, t := range temps {
		s.Temperatures = append(s.Temperatures, wire.TemperatureSample{Sensor: t.SensorKey, Celsius: t.Temperature})
	}
	if up, err := host.UptimeWithContext(ctx); err == nil {
		s.UptimeSeconds = up
	} else {
		note("uptime", err)
	}
	s.Processes, err = h.processes()
	note("processes", err)

	h.primed, h.last = true, now
	return s, first
}

// busyOf is the time a core spent not idle. Guest time is already part of
// user time on Linux.
func busyOf(t cpu.TimesStat) float64 {
	return t.Total() - t.Idle - t.Iowait
}

func fraction(num, den float64) float64 {
	if den <= 0 || num <= 0 {
		return 0
	}
	if f := num / den; f < 1 {
		return f
	}
	return 1
}

// rate is a counter's increase per second; a counter that went backwards
// (a device reset) counts as no increase.
func rate(cur, prev uint64, seconds float64) float64 {
	if cur < prev || seconds <= 0 {
		return 0
	}
	return float64(cur-prev) / seconds
}

// filesystems lists mounted block-device filesystems, one per device (a
// device mounted in several places is reported at its shortest mount
// point), skipping pseudo and image filesystems.
func (h *HostSampler) filesystems(ctx context.Context) ([]wire.FilesystemSample, error) {
	parts, err := disk.PartitionsWithContext(ctx, false)
	if err != nil {
		return nil, err
	}
	byDevice := map[string]disk.PartitionStat{}
	for _, p := range parts {
		if pseudoFilesystems[p.Fstype] || strings.HasPrefix(p.Device, "/dev/loop") || !strings.HasPrefix(p.Mountpoint, "/") {
			continue
		}
		if prev, ok := byDevice[p.Device]; ok && len(prev.Mountpoint) <= len(p.Mountpoint) {
			continue
		}
		byDevice[p.Device] = p
	}
	var out []wire.FilesystemSample
	stateMount := ""
	for _, p := range byDevice {
		if h.StateDir != "" && within(h.StateDir, p.Mountpoint) && len(p.Mountpoint) > len(stateMount) {
			stateMount = p.Mountpoint
		}
	}
	var first error
	for _, p := range byDevice {
		u, err := disk.UsageWithContext(ctx, p.Mountpoint)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("usage of %s: %w", p.Mountpoint, err)
			}
			continue
		}
		out = append(out, wire.FilesystemSample{
			Mount: p.Mountpoint, Device: p.Device, Type: p.Fstype,
			TotalBytes: u.Total, UsedBytes: u.Used, AvailableBytes: u.Free,
			InodesTotal: u.InodesTotal, InodesUsed: u.InodesUsed,
			State: p.Mountpoint == stateMount,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mount < out[j].Mount })
	return out, first
}

// within reports whether path is mount or below it.
func within(path, mount string) bool {
	if mount == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == mount || strings.HasPrefix(path, mount+"/")
}

// diskRates turns two readings of /proc/diskstats into rates for whole
// block devices (those in /sys/block), leaving out partitions, which would
// count the same I/O twice, and loop and RAM devices.
func (h *HostSampler) diskRates(cur map[string]disk.IOCountersStat, seconds float64) []wire.DiskSample {
	entries, err := os.ReadDir(h.sys("block"))
	if err != nil {
		return nil
	}
	var out []wire.DiskSample
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") || strings.HasPrefix(name, "fd") {
			continue
		}
		c, ok := cur[name]
		p, ok2 := h.disks[name]
		if !ok || !ok2 {
			continue
		}
		out = append(out, wire.DiskSample{
			Device:                name,
			ReadBytesPerSecond:    rate(c.ReadBytes, p.ReadBytes, seconds),
			WriteBytesPerSecond:   rate(c.WriteBytes, p.WriteBytes, seconds),
			ReadsPerSecond:        rate(c.ReadCount, p.ReadCount, seconds),
			WritesPerSecond:       rate(c.WriteCount, p.WriteCount, seconds),
			IOTimeFractionPercent: 100 * fraction(float64(c.IoTime-min(c.IoTime, p.IoTime))/1000, seconds),
		})
	}
	return out
}

// processes counts the numbered entries of /proc.
func (h *HostSampler) processes() (int, error) {
	d, err := os.Open(h.proc(""))
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if name != "" && name[0] >= '0' && name[0] <= '9' {
			n++
		}
	}
	return n, nil
}
