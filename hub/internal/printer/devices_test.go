package printer

import (
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestDescribeNodeDevices(t *testing.T) {
	node := testNodes()[0]
	node.Status.Capacity["devices.flotilla.io/serial"] = "2"
	node.Status.Allocatable["devices.flotilla.io/serial"] = "2"
	node.Status.Allocatable["devices.flotilla.io/video"] = "0"
	node.Status.Devices = []api.NodeDevice{
		{Class: "serial", Path: "ttyUSB0", Type: "c", Major: 188, Pod: "default/modbus-x1", Container: "gateway"},
		{Class: "video", Path: "video0", Type: "c", Major: 81, Absent: true, Pod: "default/cam-x2", Container: "cam"},
		{Class: "serial", Path: "ttyACM0", Type: "c", Major: 166},
	}
	modbus := describedPod()
	modbus.Name = "modbus-x1"
	modbus.Spec.Containers[0].Resources = api.ResourceRequirements{
		Limits: api.ResourceList{"devices.flotilla.io/serial": "1"}, Requests: api.ResourceList{"devices.flotilla.io/serial": "1"}}
	out := describe(t, node, Related{Pods: []*api.Pod{modbus}})
	wantLines(t, out,
		"  devices.flotilla.io/serial:  2",
		"Devices:",
		"  Class   Device           Held By",
		"  -----   ------           -------",
		"  serial  ttyACM0          <free>",
		"  serial  ttyUSB0          default/modbus-x1 (gateway)",
		"  video   video0 (absent)  default/cam-x2 (cam)",
		"  devices.flotilla.io/serial  1         1",
		"  devices.flotilla.io/video   0         0",
	)
	if strings.Index(out, "Devices:") < strings.Index(out, "Allocatable:") {
		t.Errorf("devices before the allocatable list:\n%s", out)
	}

	// A node without devices shows no section.
	if out := describe(t, testNodes()[0], Related{}); strings.Contains(out, "Devices:") || strings.Contains(out, "devices.flotilla.io") {
		t.Errorf("a node without devices:\n%s", out)
	}
}
