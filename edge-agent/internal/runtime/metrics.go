package runtime

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/metrics"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

var _ metrics.Runtime = (*Containerd)(nil)

// Type URLs of the cgroup stats a shim returns, as containerd 1.6 and 1.7
// name them.
const (
	cgroupsV1Metrics = "io.containerd.cgroups.v1.Metrics"
	cgroupsV2Metrics = "io.containerd.cgroups.v2.Metrics"
)

// ContainerStats returns the cgroup usage of every running task in the
// namespace, with the pod labels of its container. It costs three calls to
// containerd whatever the number of containers: list containers (for
// labels), list tasks (for which run), then the metrics of every task at
// once. containerd's metrics include exited tasks not yet deleted, such as
// a crashed run beside its replacement, which are left out.
func (c *Containerd) ContainerStats(ctx context.Context) ([]metrics.ContainerStats, error) {
	ctx = c.ns(ctx)
	ctrs, err := c.client.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("container stats: list containers: %w", classify(err))
	}
	labels := make(map[string]map[string]string, len(ctrs))
	for _, ctr := range ctrs {
		labels[ctr.ID] = ctr.Labels
	}
	tasks, err := c.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("container stats: list tasks: %w", classify(err))
	}
	running := make(map[string]bool, len(tasks.Tasks))
	for _, t := range tasks.Tasks {
		switch t.Status {
		case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
			running[t.ID] = true
		}
	}
	resp, err := c.client.TaskService().Metrics(ctx, &tasksapi.MetricsRequest{})
	if err != nil {
		return nil, fmt.Errorf("container stats: task metrics: %w", classify(err))
	}
	out := make([]metrics.ContainerStats, 0, len(resp.Metrics))
	var first error
	for _, m := range resp.Metrics {
		l, ok := labels[m.ID]
		if !ok || l[reconcile.LabelPodUID] == "" || !running[m.ID] {
			continue
		}
		st, err := decodeStats(m)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("container stats: %s: %w", m.ID, err)
			}
			continue
		}
		st.ID = m.ID
		st.PodUID = l[reconcile.LabelPodUID]
		st.PodName = l[reconcile.LabelPodName]
		st.PodNamespace = l[reconcile.LabelPodNamespace]
		st.Container = l[reconcile.LabelContainer]
		out = append(out, st)
	}
	return out, first
}

// decodeStats reads CPU and memory out of a shim's cgroup v1 or v2 stats.
// The working set is usage minus inactive file pages, as the kubelet
// computes it.
func decodeStats(m *types.Metric) (metrics.ContainerStats, error) {
	var st metrics.ContainerStats
	st.Time = time.Now()
	if ts := m.GetTimestamp(); ts != nil {
		st.Time = ts.AsTime()
	}
	data := m.GetData()
	if data == nil {
		return st, fmt.Errorf("no stats")
	}
	url := data.GetTypeUrl()
	var usage, inactive uint64
	switch {
	case strings.HasSuffix(url, cgroupsV1Metrics):
		var s v1.Metrics
		if err := proto.Unmarshal(data.GetValue(), &s); err != nil {
			return st, fmt.Errorf("decode cgroup v1 stats: %w", err)
		}
		st.CPUUsageNanos = s.GetCPU().GetUsage().GetTotal()
		usage = s.GetMemory().GetUsage().GetUsage()
		inactive = s.GetMemory().GetTotalInactiveFile()
	case strings.HasSuffix(url, cgroupsV2Metrics):
		var s v2.Metrics
		if err := proto.Unmarshal(data.GetValue(), &s); err != nil {
			return st, fmt.Errorf("decode cgroup v2 stats: %w", err)
		}
		st.CPUUsageNanos = s.GetCPU().GetUsageUsec() * 1000
		usage = s.GetMemory().GetUsage()
		inactive = s.GetMemory().GetInactiveFile()
	default:
		return st, fmt.Errorf("unknown stats type %q", url)
	}
	st.MemoryUsageBytes = usage
	if inactive < usage {
		st.MemoryWorkingSetBytes = usage - inactive
	}
	return st, nil
}
