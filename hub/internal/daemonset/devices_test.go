package daemonset

import (
	"slices"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

const serial = "devices.flotilla.io/serial"

// withDevice returns d whose pod asks for one serial device.
func withDevice(d *api.DaemonSet) *api.DaemonSet {
	d.Spec.Template.Spec.Containers[0].Resources = api.ResourceRequirements{
		Limits: api.ResourceList{serial: "1"}, Requests: api.ResourceList{serial: "1"}}
	return d
}

// deviceNode is a Ready node offering n serial devices.
func deviceNode(name string, n string) *api.Node {
	nd := node(name, nil)
	nd.Status.Allocatable = api.ResourceList{"cpu": "4", serial: api.Quantity(n)}
	return nd
}

func TestPlanPlacesDevicePodsWhereTheDeviceIsFree(t *testing.T) {
	gw := withDevice(ds("gw", nil))
	other := withDevice(ds("other", nil))
	// c's one device is held by another DaemonSet's pod.
	holder := podOf(other, "c")
	nodes := []*api.Node{deviceNode("a", "1"), node("b", nil), deviceNode("c", "1")}
	res := plan1([]*api.DaemonSet{gw}, nodes, []*api.Pod{holder})
	set := res.Sets[0]
	if got := podNodes(set.Create); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("created pods on %v, want only a", got)
	}
	want := []api.NodeReason{{Node: "b", Reason: "Insufficient " + serial}, {Node: "c", Reason: "Insufficient " + serial}}
	if !slices.Equal(set.Unplaced, want) {
		t.Fatalf("unplaced %v, want %v", set.Unplaced, want)
	}
	if st := set.Status; st == nil || st.DesiredNumberScheduled != 1 {
		t.Fatalf("status %+v: want 1 desired (the nodes without the device are not targets)", st)
	}

	// Two DaemonSets after one device: the first (by the store's order)
	// takes it in this pass; the second must not count it free.
	res = plan1([]*api.DaemonSet{gw, other}, []*api.Node{deviceNode("a", "1")}, nil)
	if got := podNodes(res.Sets[0].Create); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("gw created on %v, want a", got)
	}
	if got := res.Sets[1]; len(got.Create) != 0 || len(got.Unplaced) != 1 {
		t.Fatalf("other created %v, unplaced %v: the device went to gw", podNodes(got.Create), got.Unplaced)
	}

	// A DaemonSet without devices is placed as before, devices or not.
	plain := ds("plain", nil)
	res = plan1([]*api.DaemonSet{plain}, nodes, []*api.Pod{holder})
	if got := podNodes(res.Sets[0].Create); !slices.Equal(got, []string{"a", "b", "c"}) || len(res.Sets[0].Unplaced) != 0 {
		t.Fatalf("plain created on %v, unplaced %v", got, res.Sets[0].Unplaced)
	}
}

// TestPlanKeepsADevicePodWhoseDeviceWent: the device of a node that runs
// the pod is gone (its capacity says 0): the pod stays (the agent holds
// it until the device is back) and the node stays a target.
func TestPlanKeepsADevicePodWhoseDeviceWent(t *testing.T) {
	gw := withDevice(ds("gw", nil))
	p := readyPod(gw, "a")
	res := plan1([]*api.DaemonSet{gw}, []*api.Node{deviceNode("a", "0")}, []*api.Pod{p})
	set := res.Sets[0]
	if len(set.Delete) != 0 || len(set.Create) != 0 || len(set.Unplaced) != 0 {
		t.Fatalf("delete %v, create %v, unplaced %v: want the pod left alone", set.Delete, set.Create, set.Unplaced)
	}
	if st := set.Status; st == nil || st.DesiredNumberScheduled != 1 || st.CurrentNumberScheduled != 1 {
		t.Fatalf("status %+v", st)
	}
}

// TestControllerRecordsFailedPlacementOnce: the controller records a
// FailedPlacement Warning on the DaemonSet for a node without the
// device, once however many passes run, and places the pod when the
// node's device appears.
func TestControllerRecordsFailedPlacementOnce(t *testing.T) {
	s := newSim(t, withDevice(ds("gw", nil)), 0)
	s.update(func(tx store.Tx) error { return tx.Put(deviceNode("n00", "0")) })
	for range 3 {
		s.sync()
	}
	if pods := s.pods(); len(pods) != 0 {
		t.Fatalf("pods on %v, want none: the node has no device", podNodes(pods))
	}
	evs := s.events()
	if len(evs) != 1 || evs[0].Reason != ReasonFailedPlacement || evs[0].Type != api.EventWarning || evs[0].Count != 1 ||
		evs[0].Message != `failed to place pod on "n00": Insufficient devices.flotilla.io/serial` ||
		evs[0].InvolvedObject.Kind != api.KindDaemonSet || evs[0].InvolvedObject.Name != "gw" {
		t.Fatalf("events %+v, want one FailedPlacement about gw, counted once", evs)
	}

	// The adapter is plugged in: the agent's hello raises the count.
	s.update(func(tx store.Tx) error { return tx.Put(deviceNode("n00", "1")) })
	s.sync()
	if got := podNodes(s.pods()); !slices.Equal(got, []string{"n00"}) {
		t.Fatalf("pods on %v, want n00 once its device is there", got)
	}
}

func (s *sim) events() []*api.Event {
	s.t.Helper()
	var evs []*api.Event
	err := s.st.View(func(tx store.Tx) error {
		var err error
		evs, err = store.List[api.Event](tx, "")
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return evs
}
