package ingest

import (
	"slices"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestHelloCarriesDevices: a hello's devices and their counts land on
// the Node; a later hello that says a device went (hot-plug) lowers the
// count and drops it; the same hello again writes nothing.
func TestHelloCarriesDevices(t *testing.T) {
	st := store.NewMemory()
	in := newIngest(st, &syncBuffer{})
	topic := wire.NodeTopic("n1", wire.TopicStatus)
	tty := api.NodeDevice{Class: "serial", Path: "ttyUSB0", Type: "c", Major: 188, Minor: 0, Pod: "default/modbus", Container: "gw"}
	acm := api.NodeDevice{Class: "serial", Path: "ttyACM0", Type: "c", Major: 166, Minor: 0}
	hello := wire.Hello{
		Capacity: api.ResourceList{"cpu": "4", "devices.flotilla.io/serial": "2"},
		Devices:  []api.NodeDevice{acm, tty},
	}
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 1, hello))
	in.Flush()
	n := getNode(t, st, "n1")
	if n.Status.Allocatable["devices.flotilla.io/serial"] != "2" || !slices.Equal(n.Status.Devices, hello.Devices) {
		t.Fatalf("node status %+v", n.Status)
	}

	hello.Capacity = api.ResourceList{"cpu": "4", "devices.flotilla.io/serial": "1"}
	hello.Devices = []api.NodeDevice{tty}
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 2, hello))
	in.Flush()
	n = getNode(t, st, "n1")
	if n.Status.Capacity["devices.flotilla.io/serial"] != "1" || !slices.Equal(n.Status.Devices, []api.NodeDevice{tty}) {
		t.Fatalf("after the unplug: %+v", n.Status)
	}

	// Only the holder changes: the Node is written.
	tty.Pod, tty.Container = "", ""
	hello.Devices = []api.NodeDevice{tty}
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 3, hello))
	in.Flush()
	n = getNode(t, st, "n1")
	if !slices.Equal(n.Status.Devices, []api.NodeDevice{tty}) {
		t.Fatalf("devices %+v, want the freed ttyUSB0", n.Status.Devices)
	}
	v := st.Version()
	in.Handle(topic, msg(t, "n1", wire.TypeHello, 4, hello))
	in.Flush()
	if got := getNode(t, st, "n1"); got.ResourceVersion != n.ResourceVersion {
		t.Fatalf("the same hello again rewrote the node (store %d → %d)", v, st.Version())
	}
}
