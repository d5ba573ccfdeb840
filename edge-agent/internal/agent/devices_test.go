package agent_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/agent"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// hellos collects the agent's hellos and events the broker hears.
type hellos struct {
	mu      sync.Mutex
	list    []wire.Hello
	events  []wire.Event
	changed chan struct{}
}

func (h *hellos) note(topic string, payload []byte) {
	env, err := wire.Decode(topic, payload)
	if err != nil {
		return
	}
	h.mu.Lock()
	switch env.Type {
	case wire.TypeHello:
		var hello wire.Hello
		if json.Unmarshal(env.Payload, &hello) == nil {
			h.list = append(h.list, hello)
		}
	case wire.TypeEvent:
		var e wire.Event
		if json.Unmarshal(env.Payload, &e) == nil {
			h.events = append(h.events, e)
		}
	}
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

func (h *hellos) waitUntil(t *testing.T, what string, cond func(last wire.Hello, events []wire.Event) bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ok := len(h.list) > 0 && cond(h.list[len(h.list)-1], h.events)
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.changed:
		case <-deadline.C:
			h.mu.Lock()
			defer h.mu.Unlock()
			t.Fatalf("the broker never heard %s; hellos: %+v", what, h.list)
		}
	}
}

func plugIn(t *testing.T, root, name string) {
	t.Helper()
	if err := os.Symlink("/dev/null", filepath.Join(root, name)); err != nil {
		t.Fatal(err)
	}
}

// TestRunAnnouncesDevices: the hello counts the board's devices by class
// and lists them; a device plugged in, given to a pod or pulled out sends
// the hello again at once (the rescan is an hour away), and the pod whose
// device went gets a Warning event.
func TestRunAnnouncesDevices(t *testing.T) {
	root := t.TempDir()
	plugIn(t, root, "ttyUSB0")
	r := newRig(t, func(c *agent.Config) {
		c.Devices = &devices.Config{Root: root, Classes: devices.DefaultClasses(), Rescan: time.Hour}
	})
	defer r.stop(t)
	h := &hellos{changed: make(chan struct{}, 1)}
	if err := r.srv.Subscribe(wire.AllNodesTopic("+"), 2, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		h.note(pk.TopicName, pk.Payload)
	}); err != nil {
		t.Fatal(err)
	}
	serial := func(last wire.Hello) api.Quantity { return last.Capacity["devices.flotilla.io/serial"] }
	// The hello of the connect may have gone before the subscription:
	// the hub's request brings it again.
	r.publish(t, wire.TopicRequests, wire.TypeHelloRequest, wire.HelloRequest{})
	h.waitUntil(t, "a hello with one serial device", func(last wire.Hello, _ []wire.Event) bool {
		return serial(last) == "1" && last.Capacity["devices.flotilla.io/video"] == "0" && last.Capacity["cpu"] != "" &&
			slices.Equal(last.Devices, []api.NodeDevice{{Class: "serial", Path: "ttyUSB0", Type: "c", Major: 1, Minor: 3}})
	})

	plugIn(t, root, "ttyUSB1")
	h.waitUntil(t, "a hello with two serial devices", func(last wire.Hello, _ []wire.Event) bool { return serial(last) == "2" })

	grace := int64(1)
	spec := api.PodSpec{RestartPolicy: api.RestartAlways, TerminationGracePeriodSeconds: &grace,
		Containers: []api.Container{{Name: "main", Image: "reg/gw:v1", ImagePullPolicy: api.PullIfNotPresent,
			Resources: api.ResourceRequirements{Limits: api.ResourceList{"devices.flotilla.io/serial": "1"}}}}}
	gw := wire.SnapshotPod{UID: "uid-gw", Name: "gw", Namespace: "default", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
	r.publish(t, wire.TopicDesired, wire.TypeSnapshot, wire.Snapshot{Node: node, Revision: 1, Pods: []wire.SnapshotPod{gw}})
	h.waitUntil(t, "a hello with ttyUSB0 held by gw", func(last wire.Hello, _ []wire.Event) bool {
		return len(last.Devices) == 2 && last.Devices[0].Pod == "default/gw" && last.Devices[0].Container == "main" && last.Devices[1].Pod == ""
	})

	if err := os.Remove(filepath.Join(root, "ttyUSB0")); err != nil {
		t.Fatal(err)
	}
	h.waitUntil(t, "ttyUSB0 gone, still gw's, and gw warned", func(last wire.Hello, events []wire.Event) bool {
		if serial(last) != "1" || len(last.Devices) != 2 || !last.Devices[1].Absent || last.Devices[1].Pod != "default/gw" {
			return false
		}
		for _, e := range events {
			if e.Object.Name == "gw" && e.Type == api.EventWarning && e.Reason == "DeviceUnavailable" {
				return true
			}
		}
		return false
	})
}
