package api

import (
	"fmt"
	"regexp"
	"strings"
)

// Devices: a board's device nodes (a serial adapter, a camera, GPIO
// lines) are extended resources named ResourceDevicePrefix + class
// ("devices.flotilla.io/serial"). The agent counts each class in the
// node's capacity; a container asks for some in resources.limits
// (requests, defaulted to the limits, must equal them), and the agent
// gives it that many of the class's device nodes.

// ResourceDevicePrefix begins the name of every device resource.
const ResourceDevicePrefix = "devices.flotilla.io/"

var deviceClassRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateDeviceClass checks a device class name: a DNS label (lower-case
// letters, digits and '-', at most 63 characters), since it ends a
// resource name.
func ValidateDeviceClass(class string) error {
	switch {
	case class == "":
		return fmt.Errorf("device class is empty")
	case len(class) > 63:
		return fmt.Errorf("device class %.20q… is longer than 63 characters", class)
	case !deviceClassRE.MatchString(class):
		return fmt.Errorf("device class %q must be lower-case letters, digits and '-', starting and ending with a letter or digit", class)
	}
	return nil
}

// DeviceClassOf returns the class of a device resource name, and whether
// name is one ("devices.flotilla.io/serial" → "serial").
func DeviceClassOf(name string) (string, bool) {
	return strings.CutPrefix(name, ResourceDevicePrefix)
}

// DeviceResource is the resource name of a device class.
func DeviceResource(class string) string { return ResourceDevicePrefix + class }

// DeviceLimits returns the device resources a container asks for, by
// class, as whole numbers: its limits (which its requests must equal).
// Classes asked for zero times are left out.
func DeviceLimits(c *Container) map[string]int64 {
	var out map[string]int64
	for name, q := range c.Resources.Limits {
		class, ok := DeviceClassOf(name)
		if !ok {
			continue
		}
		if n := q.Value(); n > 0 {
			if out == nil {
				out = map[string]int64{}
			}
			out[class] = n
		}
	}
	return out
}

// NodeDevice is one device node of a board as its agent reports it:
// present now, or held by a pod and gone (unplugged) since.
type NodeDevice struct {
	// Class is the device's class; its resource is ResourceDevicePrefix +
	// Class.
	Class string `json:"class"`
	// Path is the node's path under the board's /dev ("ttyUSB0").
	Path string `json:"path"`
	// Type is "c" (character) or "b" (block); Major and Minor its numbers.
	Type  string `json:"type,omitempty"`
	Major int64  `json:"major,omitempty"`
	Minor int64  `json:"minor,omitempty"`
	// Absent: a pod holds the device, but its node is gone from the
	// board.
	Absent bool `json:"absent,omitempty"`
	// Pod ("namespace/name") and Container hold the device; empty: it is
	// free.
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
}
