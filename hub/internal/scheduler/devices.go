package scheduler

import (
	"maps"
	"slices"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Devices are extended resources (devices.flotilla.io/CLASS): a node
// offers what its agent counts of each class, a pod takes whole ones,
// never overcommitted, so a pod fits only where enough are free
// (allocatable minus what the node's pods requested). A node that does
// not report a class has none of it.

// AddDevices returns have plus times × more, as a new map when more has
// anything (have is never changed: callers share it between views).
func AddDevices(have, more map[string]int64, times int64) map[string]int64 {
	if len(more) == 0 {
		return have
	}
	out := make(map[string]int64, len(have)+len(more))
	maps.Copy(out, have)
	for name, n := range more {
		out[name] += times * n
		if out[name] == 0 {
			delete(out, name)
		}
	}
	return out
}

// InsufficientDevices returns why a pod asking for want does not fit
// beside requested on a node that offers allocatable, in Kubernetes'
// words ("Insufficient devices.flotilla.io/serial"), or "" if it fits.
// The first resource short, by name, is named.
func InsufficientDevices(allocatable, requested, want map[string]int64) string {
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if n := want[name]; n > 0 && requested[name]+n > allocatable[name] {
			return "Insufficient " + name
		}
	}
	return ""
}

// deviceRequests adds a container's device requests (its limits, which
// its requests equal) to have, by resource name.
func deviceRequests(have map[string]int64, c *api.Container) map[string]int64 {
	for class, n := range api.DeviceLimits(c) {
		if have == nil {
			have = map[string]int64{}
		}
		have[api.DeviceResource(class)] += n
	}
	return have
}

// allocatableDevices reads the device resources of a node's allocatable
// list; nil if it has none.
func allocatableDevices(alloc api.ResourceList) map[string]int64 {
	var out map[string]int64
	for name, q := range alloc {
		if _, ok := api.DeviceClassOf(name); !ok {
			continue
		}
		if out == nil {
			out = map[string]int64{}
		}
		out[name] = q.Value()
	}
	return out
}
