package manifest

import (
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Device resources (devices.flotilla.io/CLASS) follow Kubernetes' rules
// for extended resources: whole numbers, never overcommitted, so a
// container sets them in its limits, and its requests, defaulted to the
// limits, must equal them.

// defaultDeviceRequests sets the request of every device resource a
// container limits and does not request to its limit, as Kubernetes
// defaults requests of extended resources. A limit that is not valid is
// left for validation to report, once.
func defaultDeviceRequests(r *api.ResourceRequirements) {
	for name, q := range r.Limits {
		class, ok := api.DeviceClassOf(name)
		if !ok || api.ValidateDeviceClass(class) != nil || q.Validate() != nil || q.MilliValue()%1000 != 0 {
			continue
		}
		if _, set := r.Requests[name]; set {
			continue
		}
		if r.Requests == nil {
			r.Requests = api.ResourceList{}
		}
		r.Requests[name] = q
	}
}

// validateDeviceQuantity checks one device resource of a limits or
// requests list at path: a known class, and a whole number.
func validateDeviceQuantity(c *collector, class string, q api.Quantity, path string) bool {
	if err := api.ValidateDeviceClass(class); err != nil {
		c.add(path, errText(err))
		return false
	}
	if err := q.Validate(); err != nil {
		c.add(path, errText(err))
		return false
	}
	if q.MilliValue()%1000 != 0 {
		c.addf(path, "must be an integer: devices are counted whole, not %q", clip(q.String(), 64))
		return false
	}
	return true
}

// validateDeviceRequests checks that every device resource requested is
// limited, to the same number (path is the resources' path).
func validateDeviceRequests(c *collector, r *api.ResourceRequirements, valid func(name string) bool, path string) {
	for _, name := range sortedKeys(r.Requests) {
		if _, ok := api.DeviceClassOf(name); !ok || !valid(name) {
			continue
		}
		limit, ok := r.Limits[name]
		switch {
		case !ok:
			c.addf(key(field(path, "limits"), name), "must be set: a device resource is not overcommitted, so it is limited to what is requested (requests %q)",
				r.Requests[name].String())
		case limit.Value() != r.Requests[name].Value():
			c.addf(key(field(path, "requests"), name), "must be equal to the %s limit %q: a device resource is not overcommitted",
				name, limit.String())
		}
	}
}
