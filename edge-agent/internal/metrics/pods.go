package metrics

import (
	"context"
	"sort"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Runtime is what the collector needs from the container runtime: the
// cgroup usage of every running container. The containerd adapter
// satisfies it.
type Runtime interface {
	ContainerStats(ctx context.Context) ([]ContainerStats, error)
}

// ContainerStats is one running container's cgroup usage, with the pod it
// belongs to.
type ContainerStats struct {
	ID           string
	PodUID       string
	PodName      string
	PodNamespace string
	Container    string
	// CPUUsageNanos is the container's cumulative CPU time.
	CPUUsageNanos uint64
	// MemoryUsageBytes is the cgroup's memory usage, page cache included;
	// MemoryWorkingSetBytes is that minus inactive file pages.
	MemoryUsageBytes      uint64
	MemoryWorkingSetBytes uint64
	// Time is when the stats were read.
	Time time.Time
}

// ContainerKey names a container within a pod.
type ContainerKey struct {
	PodUID    string
	Container string
}

// cpuReading is a container's CPU counter at one time.
type cpuReading struct {
	nanos uint64
	at    time.Time
}

// podSampler turns container stats into pod samples, computing CPU rates
// against the previous reading of the same container.
type podSampler struct {
	prev map[string]cpuReading // by container ID
}

func (p *podSampler) sample(stats []ContainerStats, restarts map[ContainerKey]int32) []wire.PodSample {
	byPod := map[string]*wire.PodSample{}
	cur := make(map[string]cpuReading, len(stats))
	for _, st := range stats {
		if st.PodUID == "" {
			continue
		}
		cur[st.ID] = cpuReading{nanos: st.CPUUsageNanos, at: st.Time}
		cs := wire.ContainerSample{
			Name:                  st.Container,
			CPUSeconds:            float64(st.CPUUsageNanos) / 1e9,
			MemoryWorkingSetBytes: st.MemoryWorkingSetBytes,
			MemoryUsageBytes:      st.MemoryUsageBytes,
			Restarts:              restarts[ContainerKey{PodUID: st.PodUID, Container: st.Container}],
		}
		if prev, ok := p.prev[st.ID]; ok && st.Time.After(prev.at) && st.CPUUsageNanos >= prev.nanos {
			cores := float64(st.CPUUsageNanos-prev.nanos) / float64(st.Time.Sub(prev.at).Nanoseconds())
			cs.CPUUsageCores = &cores
		}
		pod := byPod[st.PodUID]
		if pod == nil {
			pod = &wire.PodSample{Namespace: st.PodNamespace, Name: st.PodName, UID: st.PodUID}
			byPod[st.PodUID] = pod
		}
		pod.Containers = append(pod.Containers, cs)
	}
	p.prev = cur
	out := make([]wire.PodSample, 0, len(byPod))
	for _, pod := range byPod {
		sort.Slice(pod.Containers, func(i, j int) bool { return pod.Containers[i].Name < pod.Containers[j].Name })
		out = append(out, *pod)
	}
	sortPods(out)
	return out
}

func sortPods(pods []wire.PodSample) {
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		if pods[i].Name != pods[j].Name {
			return pods[i].Name < pods[j].Name
		}
		return pods[i].UID < pods[j].UID
	})
}
