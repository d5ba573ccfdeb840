package reconcile

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// devicePod is a pod whose container asks for one serial device.
func devicePod(name string) wire.SnapshotPod {
	grace := int64(2)
	spec := api.PodSpec{
		RestartPolicy: api.RestartAlways, TerminationGracePeriodSeconds: &grace,
		Containers: []api.Container{{Name: "main", Image: "reg/gw:v1", ImagePullPolicy: api.PullIfNotPresent,
			Resources: api.ResourceRequirements{Limits: api.ResourceList{"devices.flotilla.io/serial": "1"},
				Requests: api.ResourceList{"devices.flotilla.io/serial": "1"}}}},
	}
	return wire.SnapshotPod{UID: "uid-" + name, Name: name, Namespace: "default", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
}

// deviceBoard is a dev root whose ttyUSB0 is a character device (a
// symlink to /dev/null), and the board's device inventory over it.
func deviceBoard(t *testing.T) (root string, inv *devices.Inventory) {
	t.Helper()
	root = t.TempDir()
	plugTTY(t, root)
	inv, err := devices.Open(devices.Config{Root: root, Classes: devices.DefaultClasses(), StateFile: filepath.Join(t.TempDir(), "devices.json")})
	if err != nil {
		t.Fatal(err)
	}
	return root, inv
}

func plugTTY(t *testing.T, root string) {
	t.Helper()
	if err := os.Symlink("/dev/null", filepath.Join(root, "ttyUSB0")); err != nil {
		t.Fatal(err)
	}
}

func waitingOf(st api.PodStatus) *api.ContainerStateWaiting {
	return st.ContainerStatuses[0].State.Waiting
}

func (h *harness) takeEvents() []wire.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	evs := h.events
	h.events = nil
	return evs
}

func hasEvent(evs []wire.Event, typ api.EventType, reason, text string) bool {
	for _, e := range evs {
		if e.Type == typ && e.Reason == reason && strings.Contains(e.Message, text) {
			return true
		}
	}
	return false
}

// TestDevicesGoToTheirContainers follows a serial adapter through a
// pod's life on the board: given to the first pod (and to no other),
// unplugged (the pod's container is stopped and waits, out of the crash
// loop), plugged back (restarted with it), and freed for the next pod
// when the first goes.
func TestDevicesGoToTheirContainers(t *testing.T) {
	h := newHarness(t)
	root, inv := deviceBoard(t)
	h.rec.cfg.Devices = inv
	gw, second := devicePod("gw"), devicePod("second")
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{gw, second}})
	h.sync()

	if got := h.rt.takeCalls(); !slices.Equal(got, []string{"pull reg/gw:v1", "create main", "start main"}) {
		t.Fatalf("calls %v: want one container created, for gw", got)
	}
	spec := h.rt.specs[ContainerID(&gw, "main")]
	want := []DeviceNode{{HostPath: filepath.Join(root, "ttyUSB0"), ContainerPath: "/dev/ttyUSB0", Type: "c", Major: 1, Minor: 3}}
	if !slices.Equal(spec.Devices, want) {
		t.Fatalf("gw's devices %+v, want %+v", spec.Devices, want)
	}
	w := waitingOf(h.lastStatus("second"))
	if w == nil || w.Reason != reasonDeviceUnavailable || w.Message != "1 devices.flotilla.io/serial asked for, 0 free on the node" {
		t.Fatalf("second waits %+v", w)
	}
	if evs := h.takeEvents(); !hasEvent(evs, api.EventWarning, reasonDeviceUnavailable, "Container main waits for its devices: 1 devices.flotilla.io/serial asked for") {
		t.Fatalf("events %+v: want second's wait reported", evs)
	}
	h.sync()
	if evs := h.takeEvents(); hasEvent(evs, api.EventWarning, reasonDeviceUnavailable, "") {
		t.Fatalf("the same wait reported again: %+v", evs)
	}

	// The adapter is pulled out.
	if err := os.Remove(filepath.Join(root, "ttyUSB0")); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Rescan(); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.sync()
	if got := h.rt.takeCalls(); !slices.Equal(got, []string{"stop main 2s"}) {
		t.Fatalf("calls %v: want gw stopped, and nothing else", got)
	}
	evs := h.takeEvents()
	if !hasEvent(evs, api.EventWarning, reasonDeviceUnavailable, "device ttyUSB0 (devices.flotilla.io/serial) is not on the node") ||
		!hasEvent(evs, api.EventNormal, "Killing", "its devices are not all on the node") {
		t.Fatalf("events %+v: want the device's loss reported", evs)
	}
	st := h.lastStatus("gw").ContainerStatuses[0]
	if w := st.State.Waiting; w == nil || w.Reason != reasonDeviceUnavailable || st.LastState.Terminated == nil {
		t.Fatalf("gw's status %+v: want it waiting for its device, its run terminated", st)
	}
	// However long it waits, it is not restarted, nor woken early.
	h.clock.Advance(10 * time.Minute)
	if next := h.sync(); !next.IsZero() {
		t.Fatalf("next wake %v: a container waiting for a device waits for the device", next)
	}
	if got := h.rt.takeCalls(); len(got) != 0 {
		t.Fatalf("calls %v while the device is out", got)
	}

	// Plugged back: gw restarts with it, from its spec; second still waits.
	plugTTY(t, root)
	if _, err := inv.Rescan(); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if got := h.rt.takeCalls(); !slices.Equal(got, []string{"create main", "start main", "remove main"}) {
		t.Fatalf("calls %v: want gw's next run made from its spec", got)
	}
	st = h.lastStatus("gw").ContainerStatuses[0]
	if st.State.Running == nil || st.RestartCount != 1 {
		t.Fatalf("gw's status %+v: want it running again, restarted once", st)
	}
	if !slices.Equal(h.rt.specs[h.rt.current(&gw, "main")].Devices, want) {
		t.Fatalf("gw's new run has devices %+v", h.rt.specs[h.rt.current(&gw, "main")].Devices)
	}
	if w := waitingOf(h.lastStatus("second")); w == nil || w.Reason != reasonDeviceUnavailable {
		t.Fatalf("second %+v: the device is gw's", w)
	}

	// gw goes: once its container is removed, second gets the device.
	h.desired.set(wire.Snapshot{Revision: 2, Pods: []wire.SnapshotPod{second}})
	h.sync()
	h.sync()
	if c, ok := h.rt.get(ContainerID(&second, "main")); !ok || c.State != TaskRunning {
		t.Fatalf("second %+v: want it running with the freed device (calls %v)", c, h.rt.takeCalls())
	}
	if devs := inv.Devices(); len(devs) != 1 || devs[0].Pod != "default/second" {
		t.Fatalf("devices %+v", devs)
	}
}

func TestDevicesWithoutAnInventoryWait(t *testing.T) {
	h := newHarness(t)
	h.desired.set(wire.Snapshot{Revision: 1, Pods: []wire.SnapshotPod{devicePod("gw")}})
	h.sync()
	if got := h.rt.takeCalls(); len(got) != 0 {
		t.Fatalf("calls %v", got)
	}
	if w := waitingOf(h.lastStatus("gw")); w == nil || w.Reason != reasonDeviceUnavailable || w.Message != "this agent hands out no devices" {
		t.Fatalf("gw waits %+v", w)
	}
}
