package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

const serial = "devices.flotilla.io/serial"

func devs(alloc map[string]int64) func(*Node) {
	return func(n *Node) { n.Allocatable.Devices = alloc }
}

func held(req map[string]int64) func(*Node) {
	return func(n *Node) { n.Requested.Devices = req }
}

func TestPlaceDevices(t *testing.T) {
	one := Pod{Requests: Resources{Devices: map[string]int64{serial: 1}}}
	for _, tc := range []struct {
		name   string
		pod    Pod
		nodes  []Node
		n      int
		want   []string
		reason string
	}{
		{name: "only where the device is", pod: one, nodes: []Node{n("a"), n("b", devs(map[string]int64{serial: 1})), n("c")}, n: 1, want: []string{"b"}},
		{name: "a node with none of the class is short of it", pod: one, nodes: []Node{n("a"), n("b")}, n: 1, want: []string{""},
			reason: "0/2 nodes are available: 2 Insufficient devices.flotilla.io/serial."},
		{name: "a class reported as zero", pod: one, nodes: []Node{n("a", devs(map[string]int64{serial: 0}))}, n: 1, want: []string{""},
			reason: "0/1 nodes are available: 1 Insufficient devices.flotilla.io/serial."},
		{name: "one device, one pod: the second waits", pod: one, nodes: []Node{n("a", devs(map[string]int64{serial: 1}))}, n: 2,
			want: []string{"a", ""}, reason: "0/1 nodes are available: 1 Insufficient devices.flotilla.io/serial."},
		{name: "held by a pod already there", pod: one,
			nodes: []Node{n("a", devs(map[string]int64{serial: 2}), held(map[string]int64{serial: 2})), n("b", devs(map[string]int64{serial: 2}), held(map[string]int64{serial: 1}))},
			n:     2, want: []string{"b", ""}},
		{name: "two at once", pod: Pod{Requests: Resources{Devices: map[string]int64{serial: 2}}},
			nodes: []Node{n("a", devs(map[string]int64{serial: 1})), n("b", devs(map[string]int64{serial: 3}))}, n: 2,
			want: []string{"b", ""}, reason: "2 Insufficient devices.flotilla.io/serial"},
		{name: "each class counts", pod: Pod{Requests: Resources{Devices: map[string]int64{serial: 1, "devices.flotilla.io/video": 1}}},
			nodes: []Node{n("a", devs(map[string]int64{serial: 1})), n("b", devs(map[string]int64{serial: 1, "devices.flotilla.io/video": 1}))}, n: 1,
			want: []string{"b"}},
		{name: "unreported cpu and memory still need the device", pod: one, nodes: []Node{n("a", unknown)}, n: 1, want: []string{""},
			reason: "1 Insufficient devices.flotilla.io/serial"},
		{name: "a pod without devices goes anywhere", pod: Pod{}, nodes: []Node{n("a", held(map[string]int64{serial: 5}))}, n: 1, want: []string{"a"}},
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
				t.Errorf("Place changed its input: %s, was %s", fmt.Sprint(tc.nodes), before)
			}
		})
	}
}

func TestNodesFromCountsDevices(t *testing.T) {
	node := &api.Node{ObjectMeta: api.ObjectMeta{Name: "a"}}
	node.Status.Conditions = []api.NodeCondition{{Type: api.NodeReady, Status: api.ConditionTrue}}
	node.Status.Allocatable = api.ResourceList{"cpu": "2", serial: "3", "devices.flotilla.io/gpio": "1"}
	pod := func(phase api.PodPhase, limits api.ResourceList) *api.Pod {
		p := &api.Pod{Spec: api.PodSpec{NodeName: "a", Containers: []api.Container{{Name: "c", Resources: api.ResourceRequirements{Limits: limits}}}}}
		p.Status.Phase = phase
		return p
	}
	pods := []*api.Pod{
		pod(api.PodRunning, api.ResourceList{serial: "1"}),
		pod(api.PodPending, api.ResourceList{serial: "1", "cpu": "100m"}),
		pod(api.PodFailed, api.ResourceList{serial: "1"}), // finished: holds nothing
	}
	two := pod(api.PodRunning, nil)
	two.Spec.Containers = append(two.Spec.Containers, api.Container{Name: "d", Resources: api.ResourceRequirements{Limits: api.ResourceList{"devices.flotilla.io/gpio": "1"}}})
	pods = append(pods, two)
	got := NodesFrom([]*api.Node{node}, pods, nil)[0]
	if got.Allocatable.Devices[serial] != 3 || got.Allocatable.Devices["devices.flotilla.io/gpio"] != 1 || len(got.Allocatable.Devices) != 2 {
		t.Errorf("allocatable devices = %v", got.Allocatable.Devices)
	}
	if got.Requested.Devices[serial] != 2 || got.Requested.Devices["devices.flotilla.io/gpio"] != 1 {
		t.Errorf("requested devices = %v, want serial 2 (the failed pod holds none), gpio 1", got.Requested.Devices)
	}
	if r := Requests(&two.Spec); r.Devices["devices.flotilla.io/gpio"] != 1 || len(r.Devices) != 1 {
		t.Errorf("Requests = %+v", r)
	}
}

func TestAddDevicesNeverChangesItsInput(t *testing.T) {
	have := map[string]int64{serial: 1}
	sum := AddDevices(have, map[string]int64{serial: 2}, 1)
	if have[serial] != 1 || sum[serial] != 3 {
		t.Errorf("have %v, sum %v", have, sum)
	}
	if back := AddDevices(sum, map[string]int64{serial: 3}, -1); len(back) != 0 {
		t.Errorf("taking all back leaves %v", back)
	}
}
