// Package scheduler chooses nodes for Deployment pods. A node is feasible
// when it is Ready, schedulable (not cordoned), free of memory and disk
// pressure, matches the pod's nodeSelector and has room for the pod's cpu
// and memory requests and its devices (devices.flotilla.io/CLASS) beside
// the requests of the pods already on it, against what its agent reports
// as allocatable. Among feasible nodes it
// spreads a group's replicas (fewest pods of the group first), then
// prefers the least requested node. Place is a pure function.
package scheduler

import (
	"fmt"
	"sort"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Unknown marks an allocatable amount the node did not report: no limit.
const Unknown = -1

// Resources are amounts of cpu (millicores), memory (bytes) and pods,
// and counts of devices by resource name (devices.go).
type Resources struct {
	MilliCPU int64
	Memory   int64
	Pods     int64
	// Devices, never Unknown: a node that reports none of a class has
	// none.
	Devices map[string]int64
}

// Node is a node as the scheduler sees it.
type Node struct {
	Name          string
	Labels        map[string]string
	Ready         bool
	Unschedulable bool
	// MemoryPressure and DiskPressure are the node's conditions of those
	// types being True.
	MemoryPressure, DiskPressure bool
	// Allocatable is what the node offers; a field set to Unknown has no
	// limit.
	Allocatable Resources
	// Requested is the sum of the requests of the pods bound to the node,
	// Pods counted one each.
	Requested Resources
	// Group counts the pods of the group being placed on the node.
	Group int
}

// Pod is what the scheduler needs of a pod.
type Pod struct {
	Requests     Resources
	NodeSelector map[string]string
}

// Node condition types the scheduler honours.
const (
	ConditionMemoryPressure = "MemoryPressure"
	ConditionDiskPressure   = "DiskPressure"
)

// Place chooses a node for each of n pods of one group, one after the
// other, each placement counting for the next. A pod that fits nowhere
// gets "", and reason says why, as Kubernetes' scheduler would
// ("0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient
// cpu."). nodes is not changed.
func Place(pod Pod, nodes []Node, n int) (placements []string, reason string) {
	work := make([]Node, len(nodes))
	copy(work, nodes)
	sel := api.SelectorFromMap(pod.NodeSelector)
	for i := 0; i < n; i++ {
		best := -1
		why := map[string]int{}
		for j := range work {
			nd := &work[j]
			if r := unfit(nd, pod, sel); r != "" {
				why[r]++
				continue
			}
			if best < 0 || better(nd, &work[best]) {
				best = j
			}
		}
		if best < 0 {
			placements = append(placements, "")
			if reason == "" {
				reason = explain(len(work), why)
			}
			continue
		}
		nd := &work[best]
		nd.Requested.MilliCPU += pod.Requests.MilliCPU
		nd.Requested.Memory += pod.Requests.Memory
		nd.Requested.Pods++
		nd.Requested.Devices = AddDevices(nd.Requested.Devices, pod.Requests.Devices, 1)
		nd.Group++
		placements = append(placements, nd.Name)
	}
	return placements, reason
}

// unfit returns why pod cannot go to node, or "".
func unfit(nd *Node, pod Pod, sel api.Selector) string {
	switch {
	case !nd.Ready:
		return "node(s) were not ready"
	case nd.Unschedulable:
		return "node(s) were unschedulable"
	case !sel.Matches(nd.Labels):
		return "node(s) didn't match Pod's node affinity/selector"
	case nd.MemoryPressure:
		return "node(s) had memory pressure"
	case nd.DiskPressure:
		return "node(s) had disk pressure"
	case exceeds(nd.Allocatable.Pods, nd.Requested.Pods, 1):
		return "Too many pods"
	case exceeds(nd.Allocatable.MilliCPU, nd.Requested.MilliCPU, pod.Requests.MilliCPU):
		return "Insufficient cpu"
	case exceeds(nd.Allocatable.Memory, nd.Requested.Memory, pod.Requests.Memory):
		return "Insufficient memory"
	}
	return InsufficientDevices(nd.Allocatable.Devices, nd.Requested.Devices, pod.Requests.Devices)
}

func exceeds(allocatable, requested, more int64) bool {
	return allocatable != Unknown && more > 0 && requested+more > allocatable
}

// better reports whether a is a better choice than b: fewer pods of the
// group, then less requested, then the name, so that ties break the same
// way every time.
func better(a, b *Node) bool {
	if a.Group != b.Group {
		return a.Group < b.Group
	}
	ua, ub := usage(a), usage(b)
	if ua != ub {
		return ua < ub
	}
	return a.Name < b.Name
}

// usage is the node's requested share of cpu and memory, averaged over the
// resources it reports (Kubernetes' least-allocated score, inverted).
func usage(n *Node) float64 {
	var sum float64
	var k int
	if n.Allocatable.MilliCPU > 0 {
		sum += float64(n.Requested.MilliCPU) / float64(n.Allocatable.MilliCPU)
		k++
	}
	if n.Allocatable.Memory > 0 {
		sum += float64(n.Requested.Memory) / float64(n.Allocatable.Memory)
		k++
	}
	if k == 0 {
		return 0
	}
	return sum / float64(k)
}

func explain(total int, why map[string]int) string {
	if total == 0 {
		return "0/0 nodes are available: no nodes registered."
	}
	reasons := make([]string, 0, len(why))
	for r, n := range why {
		reasons = append(reasons, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(reasons)
	return fmt.Sprintf("0/%d nodes are available: %s.", total, strings.Join(reasons, ", "))
}

// Requests sums a pod's container requests; a container with a limit but
// no request requests its limit, as Kubernetes defaults it.
func Requests(spec *api.PodSpec) Resources {
	var r Resources
	for _, c := range spec.Containers {
		if q, ok := request(c, api.ResourceCPU); ok {
			r.MilliCPU += q.MilliValue()
		}
		if q, ok := request(c, api.ResourceMemory); ok {
			r.Memory += q.Value()
		}
		r.Devices = deviceRequests(r.Devices, &c)
	}
	r.Pods = 1
	return r
}

func request(c api.Container, name string) (api.Quantity, bool) {
	if q, ok := c.Resources.Requests[name]; ok {
		return q, true
	}
	q, ok := c.Resources.Limits[name]
	return q, ok
}

// NodesFrom builds the scheduler's view of nodes from the store's nodes and
// the pods bound to them. inGroup tells the pods of the group to be placed.
// Pods that finished (Succeeded, Failed) hold no resources.
func NodesFrom(nodes []*api.Node, pods []*api.Pod, inGroup func(*api.Pod) bool) []Node {
	idx := make(map[string]int, len(nodes))
	out := make([]Node, len(nodes))
	for i, n := range nodes {
		idx[n.Name] = i
		out[i] = Node{
			Name: n.Name, Labels: n.Labels, Ready: n.IsReady(), Unschedulable: n.Spec.Unschedulable,
			MemoryPressure: conditionTrue(n, ConditionMemoryPressure),
			DiskPressure:   conditionTrue(n, ConditionDiskPressure),
			Allocatable:    allocatable(n),
		}
	}
	for _, p := range pods {
		i, ok := idx[p.Spec.NodeName]
		if !ok || p.Status.Phase == api.PodSucceeded || p.Status.Phase == api.PodFailed {
			continue
		}
		r := Requests(&p.Spec)
		out[i].Requested.MilliCPU += r.MilliCPU
		out[i].Requested.Memory += r.Memory
		out[i].Requested.Pods++
		out[i].Requested.Devices = AddDevices(out[i].Requested.Devices, r.Devices, 1)
		if inGroup != nil && inGroup(p) {
			out[i].Group++
		}
	}
	return out
}

func conditionTrue(n *api.Node, t string) bool {
	c := n.Status.Condition(t)
	return c != nil && c.Status == api.ConditionTrue
}

func allocatable(n *api.Node) Resources {
	alloc := n.Status.Allocatable
	if len(alloc) == 0 {
		alloc = n.Status.Capacity
	}
	r := Resources{MilliCPU: Unknown, Memory: Unknown, Pods: Unknown}
	if q, ok := alloc[api.ResourceCPU]; ok {
		r.MilliCPU = q.MilliValue()
	}
	if q, ok := alloc[api.ResourceMemory]; ok {
		r.Memory = q.Value()
	}
	if q, ok := alloc[api.ResourcePods]; ok {
		r.Pods = q.Value()
	}
	r.Devices = allocatableDevices(alloc)
	return r
}
