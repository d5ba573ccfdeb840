package metrics

import (
	"math"
	"sort"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Merge downsamples consecutive samples (oldest first) into one that
// covers their whole span and ends at the last one's time. Rates and
// gauges that move (CPU, memory in use, load, disk and network rates,
// temperatures, container CPU and memory) become means weighted by each
// sample's window; counters and slow gauges (filesystem usage, network
// totals, uptime, process count, restarts, capacity) are the last values.
// A pod or container present in only some samples is averaged over those.
func Merge(samples []wire.MetricSample) wire.MetricSample {
	switch len(samples) {
	case 0:
		return wire.MetricSample{}
	case 1:
		return samples[0]
	}
	first, last := samples[0], samples[len(samples)-1]
	out := wire.MetricSample{Time: last.Time}
	out.WindowSeconds = last.Time.Sub(first.Time).Seconds() + first.WindowSeconds
	for _, s := range samples {
		out.Merged += max(s.Merged, 1)
	}
	out.Node = mergeNodes(samples)
	out.Pods = mergePods(samples)
	return out
}

// weight is a sample's share in a mean: its window, or 1 if it has none.
func weight(s wire.MetricSample) float64 {
	if s.WindowSeconds > 0 {
		return s.WindowSeconds
	}
	return 1
}

// mean accumulates a weighted mean.
type mean struct{ sum, w float64 }

func (m *mean) add(v, w float64) { m.sum += v * w; m.w += w }

func (m mean) value() float64 {
	if m.w == 0 {
		return 0
	}
	return m.sum / m.w
}

func mergeNodes(samples []wire.MetricSample) wire.NodeSample {
	last := samples[len(samples)-1].Node
	out := wire.NodeSample{
		CPU:           wire.CPUSample{Cores: last.CPU.Cores},
		Memory:        last.Memory,
		Filesystems:   last.Filesystems,
		UptimeSeconds: last.UptimeSeconds,
		Processes:     last.Processes,
	}
	var cpu, avail, swap mean
	var l1, l5, l15 mean
	perCore := make([]mean, len(last.CPU.PerCore))
	disks := newKeyed[wire.DiskSample]()
	nets := newKeyed[wire.NetworkSample]()
	temps := newKeyed[wire.TemperatureSample]()
	type diskMeans struct{ rb, wb, r, w, busy mean }
	type netMeans struct{ rx, tx, rxe, txe, rxd mean }
	dm := map[string]*diskMeans{}
	nm := map[string]*netMeans{}
	tm := map[string]*mean{}
	for _, s := range samples {
		w := weight(s)
		n := s.Node
		cpu.add(n.CPU.UsageCores, w)
		if len(n.CPU.PerCore) == len(perCore) {
			for i, v := range n.CPU.PerCore {
				perCore[i].add(v, w)
			}
		}
		avail.add(float64(n.Memory.AvailableBytes), w)
		swap.add(float64(n.Memory.SwapUsedBytes), w)
		if n.Load != nil {
			l1.add(n.Load.Load1, w)
			l5.add(n.Load.Load5, w)
			l15.add(n.Load.Load15, w)
		}
		for _, d := range n.Disks {
			disks.put(d.Device, d)
			m := entry(dm, d.Device)
			m.rb.add(d.ReadBytesPerSecond, w)
			m.wb.add(d.WriteBytesPerSecond, w)
			m.r.add(d.ReadsPerSecond, w)
			m.w.add(d.WritesPerSecond, w)
			m.busy.add(d.IOTimeFractionPercent, w)
		}
		for _, ni := range n.Networks {
			nets.put(ni.Interface, ni)
			m := entry(nm, ni.Interface)
			m.rx.add(ni.RxBytesPerSecond, w)
			m.tx.add(ni.TxBytesPerSecond, w)
			m.rxe.add(ni.RxErrorsPerSecond, w)
			m.txe.add(ni.TxErrorsPerSecond, w)
			m.rxd.add(ni.RxDroppedPerSecond, w)
		}
		for _, t := range n.Temperatures {
			temps.put(t.Sensor, t)
			m := entry(tm, t.Sensor)
			m.add(t.Celsius, w)
		}
	}
	out.CPU.UsageCores = cpu.value()
	if len(perCore) > 0 {
		out.CPU.PerCore = make([]float64, len(perCore))
		for i := range perCore {
			out.CPU.PerCore[i] = perCore[i].value()
		}
	}
	out.Memory.AvailableBytes = uint64(avail.value())
	out.Memory.SwapUsedBytes = uint64(swap.value())
	if l1.w > 0 {
		out.Load = &wire.LoadSample{Load1: l1.value(), Load5: l5.value(), Load15: l15.value()}
	}
	for _, key := range disks.order {
		d, m := disks.last[key], dm[key]
		d.ReadBytesPerSecond, d.WriteBytesPerSecond = m.rb.value(), m.wb.value()
		d.ReadsPerSecond, d.WritesPerSecond, d.IOTimeFractionPercent = m.r.value(), m.w.value(), m.busy.value()
		out.Disks = append(out.Disks, d)
	}
	for _, key := range nets.order {
		ni, m := nets.last[key], nm[key]
		ni.RxBytesPerSecond, ni.TxBytesPerSecond = m.rx.value(), m.tx.value()
		ni.RxErrorsPerSecond, ni.TxErrorsPerSecond, ni.RxDroppedPerSecond = m.rxe.value(), m.txe.value(), m.rxd.value()
		out.Networks = append(out.Networks, ni)
	}
	for _, key := range temps.order {
		t := temps.last[key]
		t.Celsius = tm[key].value()
		out.Temperatures = append(out.Temperatures, t)
	}
	return out
}

// keyed keeps the last value seen for each key, in first-seen order.
type keyed[T any] struct {
	order []string
	last  map[string]T
}

func newKeyed[T any]() *keyed[T] { return &keyed[T]{last: map[string]T{}} }

func (k *keyed[T]) put(key string, v T) {
	if _, ok := k.last[key]; !ok {
		k.order = append(k.order, key)
	}
	k.last[key] = v
}

func mergePods(samples []wire.MetricSample) []wire.PodSample {
	type ctrMeans struct {
		cpu, ws, usage mean
		last           wire.ContainerSample
	}
	pods := newKeyed[wire.PodSample]()
	ctrs := map[string]map[string]*ctrMeans{}
	for _, s := range samples {
		w := weight(s)
		for _, p := range s.Pods {
			pods.put(p.UID, p)
			byName := ctrs[p.UID]
			if byName == nil {
				byName = map[string]*ctrMeans{}
				ctrs[p.UID] = byName
			}
			for _, c := range p.Containers {
				m := byName[c.Name]
				if m == nil {
					m = &ctrMeans{}
					byName[c.Name] = m
				}
				if c.CPUUsageCores != nil {
					m.cpu.add(*c.CPUUsageCores, w)
				}
				m.ws.add(float64(c.MemoryWorkingSetBytes), w)
				m.usage.add(float64(c.MemoryUsageBytes), w)
				m.last = c
			}
		}
	}
	out := make([]wire.PodSample, 0, len(pods.order))
	for _, uid := range pods.order {
		p := pods.last[uid]
		byName := ctrs[uid]
		cs := make([]wire.ContainerSample, 0, len(byName))
		for _, m := range byName {
			c := m.last
			c.CPUUsageCores = nil
			if m.cpu.w > 0 {
				v := m.cpu.value()
				c.CPUUsageCores = &v
			}
			c.MemoryWorkingSetBytes = uint64(m.ws.value())
			c.MemoryUsageBytes = uint64(m.usage.value())
			cs = append(cs, c)
		}
		sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
		p.Containers = cs
		out = append(out, p)
	}
	sortPods(out)
	return out
}

// Round trims readings to the precision they carry (CPU to 1/10,000 of
// a core, throughput to whole bytes per second, percentages and rates to
// hundredths), so samples encode short and compress well at the hub.
func Round(s *wire.MetricSample) {
	n := &s.Node
	n.CPU.UsageCores = roundTo(n.CPU.UsageCores, 4)
	for i := range n.CPU.PerCore {
		n.CPU.PerCore[i] = roundTo(n.CPU.PerCore[i], 4)
	}
	if n.Load != nil {
		n.Load.Load1, n.Load.Load5, n.Load.Load15 = roundTo(n.Load.Load1, 2), roundTo(n.Load.Load5, 2), roundTo(n.Load.Load15, 2)
	}
	for i := range n.Disks {
		d := &n.Disks[i]
		d.ReadBytesPerSecond, d.WriteBytesPerSecond = roundTo(d.ReadBytesPerSecond, 0), roundTo(d.WriteBytesPerSecond, 0)
		d.ReadsPerSecond, d.WritesPerSecond = roundTo(d.ReadsPerSecond, 2), roundTo(d.WritesPerSecond, 2)
		d.IOTimeFractionPercent = roundTo(d.IOTimeFractionPercent, 2)
	}
	for i := range n.Networks {
		ni := &n.Networks[i]
		ni.RxBytesPerSecond, ni.TxBytesPerSecond = roundTo(ni.RxBytesPerSecond, 0), roundTo(ni.TxBytesPerSecond, 0)
		ni.RxErrorsPerSecond, ni.TxErrorsPerSecond, ni.RxDroppedPerSecond = roundTo(ni.RxErrorsPerSecond, 2), roundTo(ni.TxErrorsPerSecond, 2), roundTo(ni.RxDroppedPerSecond, 2)
	}
	for i := range n.Temperatures {
		n.Temperatures[i].Celsius = roundTo(n.Temperatures[i].Celsius, 2)
	}
	s.WindowSeconds = roundTo(s.WindowSeconds, 3)
	for i := range s.Pods {
		for j := range s.Pods[i].Containers {
			c := &s.Pods[i].Containers[j]
			if c.CPUUsageCores != nil {
				v := roundTo(*c.CPUUsageCores, 4)
				c.CPUUsageCores = &v
			}
			c.CPUSeconds = roundTo(c.CPUSeconds, 3)
		}
	}
}

func roundTo(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}

// entry returns m[key], adding a zero value first if there is none.
func entry[T any](m map[string]*T, key string) *T {
	v := m[key]
	if v == nil {
		v = new(T)
		m[key] = v
	}
	return v
}
