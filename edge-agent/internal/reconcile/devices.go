package reconcile

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Devices: a container whose limits ask for devices.flotilla.io/CLASS is
// given that many of the board's device nodes (package devices decides
// which, and remembers it across restarts). Each pass asks for every
// desired container's devices; a container runs only with all of its
// devices on the board: until then it waits (DeviceUnavailable, reported
// once as a Warning event, and no back-off: the device's return wakes
// the loop), and a running container whose device is unplugged is
// stopped, then restarted by its restartPolicy once the device is back.

// Devices hands containers the board's device nodes; package devices'
// Inventory satisfies it.
type Devices interface {
	// Assign gives each container of reqs the devices it asks for and
	// says what each holds; the devices of pods in keep (their containers
	// are still on the board) stay theirs.
	Assign(reqs []devices.Request, keep map[string]bool) (map[devices.Key]devices.Grant, error)
	// HostPath is where a device is on the board.
	HostPath(devices.Device) string
}

const reasonDeviceUnavailable = "DeviceUnavailable"

// errDeviceUnavailable: a container's devices are not all on the board
// (or not all given to it).
var errDeviceUnavailable = errors.New("devices unavailable")

// assignDevices asks for the devices of every container of the
// snapshot's pods, keeping those of pods whose containers are still on
// the board (orphans), and records the grants for this pass. It returns
// when to try again if the assignment could not be saved.
func (r *Reconciler) assignDevices(snap wire.Snapshot, orphans map[string][]Container) time.Time {
	var reqs []devices.Request
	keyOf := map[devices.Key]string{}
	for i := range snap.Pods {
		p := &snap.Pods[i]
		for j := range p.Spec.Containers {
			c := &p.Spec.Containers[j]
			counts := api.DeviceLimits(c)
			if len(counts) == 0 {
				continue
			}
			reqs = append(reqs, devices.Request{PodUID: p.UID, Namespace: p.Namespace, Pod: p.Name, Container: c.Name, Counts: counts})
			keyOf[devices.Key{PodUID: p.UID, Container: c.Name}] = ContainerID(p, c.Name)
		}
	}
	grants := make(map[string]devices.Grant, len(reqs))
	var retry time.Time
	switch {
	case r.cfg.Devices == nil:
		for _, key := range keyOf {
			grants[key] = devices.Grant{Waiting: "this agent hands out no devices"}
		}
	default: // also without requests: what pods no longer here held is released
		keep := make(map[string]bool, len(orphans))
		for owner := range orphans {
			keep[owner] = true
		}
		got, err := r.cfg.Devices.Assign(reqs, keep)
		if err != nil {
			r.log.Error("assign devices; containers that lack theirs wait", "err", err)
			retry = r.now().Add(5 * time.Second)
		}
		for k, key := range keyOf {
			grants[key] = got[k]
		}
	}
	r.mu.Lock()
	r.grants = grants
	r.mu.Unlock()
	return retry
}

// grant returns the devices of container key and whether it asks for
// any.
func (r *Reconciler) grant(key string) (devices.Grant, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.grants[key]
	return g, ok
}

// devicesReady says whether a container may run as far as its devices
// go. One that may not waits with the reason, reported once as a Warning
// event; one that may stops waiting for them.
func (r *Reconciler) devicesReady(pod *wire.SnapshotPod, spec *api.Container) bool {
	key := ContainerID(pod, spec.Name)
	g, asks := r.grant(key)
	if !asks {
		return true
	}
	if !g.Ready() {
		r.setWaiting(pod.UID, key, reasonDeviceUnavailable, g.Waiting)
		r.warnDeviceWait(pod, spec.Name, key, g.Waiting)
		return false
	}
	r.withContainer(pod.UID, key, func(c *containerState) {
		c.deviceWait = ""
		if c.hold.wait.reason == reasonDeviceUnavailable {
			c.hold.wait = waitState{}
		}
	})
	return true
}

// warnDeviceWait reports a Warning event that a container waits for its
// devices, once per reason.
func (r *Reconciler) warnDeviceWait(pod *wire.SnapshotPod, name, key, why string) {
	var first bool
	r.withContainer(pod.UID, key, func(c *containerState) {
		first = c.deviceWait != why
		c.deviceWait = why
	})
	if first {
		r.log.Warn("container waits for its devices", "pod", pod.Namespace+"/"+pod.Name, "container", name, "reason", why)
		r.emit(pod, name, api.EventWarning, reasonDeviceUnavailable, fmt.Sprintf("Container %s waits for its devices: %s", name, why))
	}
}

// devicesGone returns why a running container must stop for its
// devices (one is unplugged), or "".
func (r *Reconciler) devicesGone(pod *wire.SnapshotPod, spec *api.Container) string {
	g, asks := r.grant(ContainerID(pod, spec.Name))
	if !asks || g.Ready() {
		return ""
	}
	return g.Waiting
}

// stopForDevices stops a running container whose device is gone, having
// reported why; its exit then goes by its restartPolicy, and a restart
// waits for the device.
func (r *Reconciler) stopForDevices(ctx context.Context, pod *wire.SnapshotPod, c Container, why string) {
	name := c.Labels[LabelContainer]
	r.warnDeviceWait(pod, name, ContainerID(pod, name), why)
	grace := defaultGracePeriod
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	r.emit(pod, name, api.EventNormal, "Killing", fmt.Sprintf("Stopping container %s: its devices are not all on the node", name))
	if err := r.cfg.Runtime.Stop(ctx, c.ID, grace); err != nil && ctx.Err() == nil {
		r.log.Warn("stop a container whose device is gone", "container", c.ID, "err", err)
	}
}

// containerDevices returns the device nodes to give a container, or
// errDeviceUnavailable (with why) if it must not run yet.
func (r *Reconciler) containerDevices(pod *wire.SnapshotPod, spec *api.Container) ([]DeviceNode, error) {
	g, asks := r.grant(ContainerID(pod, spec.Name))
	if !asks {
		return nil, nil
	}
	if !g.Ready() {
		return nil, fmt.Errorf("%w: %s", errDeviceUnavailable, g.Waiting)
	}
	out := make([]DeviceNode, 0, len(g.Devices))
	for _, d := range g.Devices {
		out = append(out, DeviceNode{HostPath: r.cfg.Devices.HostPath(d), ContainerPath: "/dev/" + d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor})
	}
	return out, nil
}

// holdsDevices says whether a container is given devices: its next run
// is made from the pod's spec, with the devices as they are now, not
// copied from the last run (an adapter plugged back may have new
// numbers).
func (r *Reconciler) holdsDevices(pod *wire.SnapshotPod, spec *api.Container) bool {
	_, asks := r.grant(ContainerID(pod, spec.Name))
	return asks
}
