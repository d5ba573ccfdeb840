package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func n(name string, mutate ...func(*Node)) Node {
	nd := Node{Name: name, Ready: true, Labels: map[string]string{},
		Allocatable: Resources{MilliCPU: 2000, Memory: 1 << 30, Pods: 110}}
	for _, m := range mutate {
		m(&nd)
	}
	return nd
}

var (
	notReady  = func(n *Node) { n.Ready = false }
	cordoned  = func(n *Node) { n.Unschedulable = true }
	memPress  = func(n *Node) { n.MemoryPressure = true }
	diskPress = func(n *Node) { n.DiskPressure = true }
	lab       = func(n *Node) { n.Labels = map[string]string{"site": "lab"} }
	busy      = func(cpu int64) func(*Node) { return func(n *Node) { n.Requested.MilliCPU = cpu } }
	group     = func(k int) func(*Node) { return func(n *Node) { n.Group = k } }
	unknown   = func(n *Node) { n.Allocatable = Resources{MilliCPU: Unknown, Memory: Unknown, Pods: Unknown} }
)

func TestPlace(t *testing.T) {
	small := Pod{Requests: Resources{MilliCPU: 500, Memory: 64 << 20}}
	for _, tc := range []struct {
		name   string
		pod    Pod
		nodes  []Node
		n      int
		want   []string
		reason string
	}{
		{name: "spreads replicas", pod: small, nodes: []Node{n("a"), n("b"), n("c")}, n: 3, want: []string{"a", "b", "c"}},
		{name: "spreads more replicas than nodes", pod: Pod{}, nodes: []Node{n("a"), n("b")}, n: 5, want: []string{"a", "b", "a", "b", "a"}},
		{name: "fewest of the group first", pod: small, nodes: []Node{n("a", group(2)), n("b", group(1)), n("c", group(2))}, n: 2, want: []string{"b", "a"}},
		{name: "then least requested", pod: small, nodes: []Node{n("a", busy(1000)), n("b", busy(200)), n("c", busy(500))}, n: 1, want: []string{"b"}},
		{name: "not ready nodes are skipped", pod: small, nodes: []Node{n("a", notReady), n("b")}, n: 2, want: []string{"b", "b"}},
		{name: "cordoned nodes are skipped", pod: small, nodes: []Node{n("a", cordoned), n("b")}, n: 1, want: []string{"b"}},
		{name: "pressure avoided", pod: small, nodes: []Node{n("a", memPress), n("b", diskPress), n("c")}, n: 1, want: []string{"c"}},
		{name: "node selector", pod: Pod{NodeSelector: map[string]string{"site": "lab"}}, nodes: []Node{n("a"), n("b", lab)}, n: 2, want: []string{"b", "b"}},
		{name: "cpu runs out", pod: Pod{Requests: Resources{MilliCPU: 800}}, nodes: []Node{n("a"), n("b", busy(1500))}, n: 4,
			want: []string{"a", "a", "", ""}, reason: "0/2 nodes are available: 2 Insufficient cpu."},
		{name: "memory runs out", pod: Pod{Requests: Resources{Memory: 600 << 20}}, nodes: []Node{n("a")}, n: 2,
			want: []string{"a", ""}, reason: "Insufficient memory"},
		{name: "pod count runs out", pod: Pod{}, nodes: []Node{n("a", func(n *Node) { n.Allocatable.Pods = 1 })}, n: 2,
			want: []string{"a", ""}, reason: "Too many pods"},
		{name: "unreported allocatable has no limit", pod: Pod{Requests: Resources{MilliCPU: 64000}}, nodes: []Node{n("a", unknown)}, n: 1, want: []string{"a"}},
		{name: "nothing fits, every reason", pod: Pod{NodeSelector: map[string]string{"site": "lab"}},
			nodes: []Node{n("a", notReady), n("b", cordoned), n("c"), n("d", lab, memPress)}, n: 1, want: []string{""},
			reason: "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had memory pressure, 1 node(s) were not ready, 1 node(s) were unschedulable."},
		{name: "no nodes", pod: small, nodes: nil, n: 1, want: []string{""}, reason: "no nodes registered"},
		{name: "zero replicas", pod: small, nodes: []Node{n("a")}, n: 0, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fmt.Sprint(tc.nodes)
			got, reason := Place(tc.pod, tc.nodes, tc.n)
			if !slices.Equal(got, tc.want) {
				t.Errorf("placements = %q, want %q", got, tc.want)
			}
			if tc.reason != "" && !strings.Contains(reason, tc.reason) {
				t.Errorf("reason = %q, want %q", reason, tc.reason)
			}
			if fmt.Sprint(tc.nodes) != before {
				t.Errorf("Place changed its input")
			}
		})
	}
}

func TestNodesFrom(t *testing.T) {
	mk := func(name string, ready bool, alloc api.ResourceList, conds ...api.NodeCondition) *api.Node {
		nd := &api.Node{ObjectMeta: api.ObjectMeta{Name: name}}
		st := api.ConditionFalse
		if ready {
			st = api.ConditionTrue
		}
		nd.Status.Conditions = append([]api.NodeCondition{{Type: api.NodeReady, Status: st}}, conds...)
		nd.Status.Allocatable = alloc
		return nd
	}
	nodes := []*api.Node{
		mk("a", true, api.ResourceList{"cpu": "2", "memory": "1Gi"}),
		mk("b", false, nil, api.NodeCondition{Type: ConditionDiskPressure, Status: api.ConditionTrue}),
	}
	nodes[1].Spec.Unschedulable = true
	pod := func(node, cpu, mem string, phase api.PodPhase, mine bool) *api.Pod {
		p := &api.Pod{Spec: api.PodSpec{NodeName: node, Containers: []api.Container{{Name: "c",
			Resources: api.ResourceRequirements{Requests: api.ResourceList{}, Limits: api.ResourceList{}}}}}}
		if cpu != "" {
			p.Spec.Containers[0].Resources.Requests["cpu"] = api.Quantity(cpu)
		}
		if mem != "" {
			p.Spec.Containers[0].Resources.Limits["memory"] = api.Quantity(mem) // limit only: requests its limit
		}
		p.Status.Phase = phase
		if mine {
			p.Labels = map[string]string{"app": "web"}
		}
		return p
	}
	pods := []*api.Pod{
		pod("a", "250m", "128Mi", api.PodRunning, true),
		pod("a", "1", "", api.PodRunning, false),
		pod("a", "1", "", api.PodSucceeded, false), // finished: holds nothing
		pod("b", "", "", api.PodRunning, true),
		pod("gone", "1", "", api.PodRunning, true),
	}
	got := NodesFrom(nodes, pods, func(p *api.Pod) bool { return p.Labels["app"] == "web" })
	a, b := got[0], got[1]
	if !a.Ready || a.Allocatable.MilliCPU != 2000 || a.Allocatable.Memory != 1<<30 || a.Allocatable.Pods != Unknown ||
		a.Requested.MilliCPU != 1250 || a.Requested.Memory != 128<<20 || a.Requested.Pods != 2 || a.Group != 1 {
		t.Fatalf("a = %+v", a)
	}
	if b.Ready || !b.Unschedulable || !b.DiskPressure || b.Allocatable.MilliCPU != Unknown || b.Group != 1 {
		t.Fatalf("b = %+v", b)
	}
}
