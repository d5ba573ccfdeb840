package printer

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// describeNodeDevices lists the board's device nodes, by class and path,
// and the pod (and container) holding each, as the agent last said; a
// device a pod holds that is unplugged is marked absent.
func describeNodeDevices(d *describer, n *api.Node) {
	if len(n.Status.Devices) == 0 {
		return
	}
	devs := slices.Clone(n.Status.Devices)
	slices.SortFunc(devs, func(a, b api.NodeDevice) int {
		return cmp.Or(cmp.Compare(a.Class, b.Class), cmp.Compare(a.Path, b.Path))
	})
	d.line(0, "Devices:")
	d.line(1, "Class\tDevice\tHeld By")
	d.line(1, "-----\t------\t-------")
	for _, dev := range devs {
		path := dev.Path
		if dev.Absent {
			path += " (absent)"
		}
		held := "<free>"
		if dev.Pod != "" {
			held = fmt.Sprintf("%s (%s)", dev.Pod, dev.Container)
		}
		d.line(1, "%s\t%s\t%s", dev.Class, path, held)
	}
}

// describeDeviceAllocation adds kubectl's rows for extended resources to
// the "Allocated resources" table: per device resource the node offers
// or its pods ask for, the pods' requests and limits, whole numbers.
func describeDeviceAllocation(d *describer, alloc api.ResourceList, pods []*api.Pod) {
	req, lim := map[string]int64{}, map[string]int64{}
	for name := range alloc {
		if _, ok := api.DeviceClassOf(name); ok {
			req[name], lim[name] = 0, 0
		}
	}
	for _, p := range pods {
		for _, c := range p.Spec.Containers {
			for name, q := range c.Resources.Limits {
				if _, ok := api.DeviceClassOf(name); ok {
					lim[name] += q.Value()
					req[name] += q.Value() // requests equal limits
				}
			}
		}
	}
	for _, name := range sortedKeys(req) {
		d.line(1, "%s\t%d\t%d", name, req[name], lim[name])
	}
}
