package deployment

import (
	"strconv"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// TestDevicePodsGoWhereADeviceIsFree: a Deployment whose pod asks for a
// serial device gets it only on the node that has one free; the replica
// that finds none stays unbound with Kubernetes' reason, and is bound
// once a pod of another Deployment that held the device is gone.
func TestDevicePodsGoWhereADeviceIsFree(t *testing.T) {
	const serial = "devices.flotilla.io/serial"
	withSerial := func(d *api.Deployment) *api.Deployment {
		d.Spec.Template.Spec.Containers[0].Resources.Limits = api.ResourceList{serial: "1"}
		d.Spec.Template.Spec.Containers[0].Resources.Requests[serial] = "1"
		return d
	}
	modbus := withSerial(deploy("modbus", 2))
	a, b := mkNode("a"), mkNode("b")
	b.Status.Allocatable[serial] = "1"
	res := Plan(Input{Deployments: []*api.Deployment{modbus}, Nodes: []*api.Node{a, b}, Now: now, Suffix: counter("x")})
	set := res.Sets[0]
	var bound, waiting []*api.Pod
	for _, p := range set.Create {
		if p.Spec.NodeName != "" {
			bound = append(bound, p)
		} else {
			waiting = append(waiting, p)
		}
	}
	if len(bound) != 1 || bound[0].Spec.NodeName != "b" {
		t.Fatalf("bound %v, want one pod on b, the node with the device", bound)
	}
	const want = "0/2 nodes are available: 2 Insufficient devices.flotilla.io/serial."
	if len(waiting) != 1 || pendingMessage(waiting[0]) != want {
		t.Fatalf("waiting %+v, want one pod Pending with %q", waiting, want)
	}

	// Another Deployment's pod holds the device: none is free.
	other := withSerial(deploy("other", 1))
	holder := readyOf(other, "other-1", "b")
	res = Plan(Input{Deployments: []*api.Deployment{modbus}, Nodes: []*api.Node{a, b}, Pods: []*api.Pod{holder}, Now: now,
		Suffix: counter("y")})
	for _, p := range res.Sets[0].Create {
		if p.Spec.NodeName != "" || !strings.Contains(pendingMessage(p), "Insufficient devices.flotilla.io/serial") {
			t.Fatalf("pod %s on %q (%q): the device is held", p.Name, p.Spec.NodeName, pendingMessage(p))
		}
	}
}

// counter names new pods PREFIX1, PREFIX2...
func counter(prefix string) func() string {
	n := 0
	return func() string { n++; return prefix + strconv.Itoa(n) }
}
