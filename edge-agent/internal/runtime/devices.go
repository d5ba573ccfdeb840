package runtime

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// withDevices gives the container the board's device nodes it holds, and
// nothing else: each node is bind-mounted at its path under the
// container's /dev (the node itself, not a copy made with mknod: the
// slave side of a pseudo-terminal opens only through its own devpts
// entry, and a bind works for every other device too), and the device
// cgroup allows reading, writing and mknod of its major:minor, after
// containerd's default rules, which deny every device but the standard
// few.
func withDevices(devs []reconcile.DeviceNode) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		for _, d := range devs {
			if err := checkDevice(d); err != nil {
				return err
			}
			s.Mounts = append(s.Mounts, specs.Mount{
				Type: "bind", Source: d.HostPath, Destination: d.ContainerPath,
				Options: []string{"bind", "rw", "nosuid", "noexec"},
			})
			if s.Linux == nil {
				s.Linux = &specs.Linux{}
			}
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			major, minor := d.Major, d.Minor
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: "rwm",
			})
		}
		return nil
	}
}

// checkDevice refuses a device the spec cannot carry: it must be a
// character or block device bound from an absolute path on the board to
// a path under the container's /dev.
func checkDevice(d reconcile.DeviceNode) error {
	switch {
	case d.Type != "c" && d.Type != "b":
		return fmt.Errorf("device %s: type %q, want c or b", d.HostPath, d.Type)
	case !path.IsAbs(d.HostPath):
		return fmt.Errorf("device %s: the board's path must be absolute", d.HostPath)
	case path.Clean(d.ContainerPath) != d.ContainerPath || !strings.HasPrefix(d.ContainerPath, "/dev/"):
		return fmt.Errorf("device %s: container path %q must be a clean path under /dev/", d.HostPath, d.ContainerPath)
	case d.Major < 0 || d.Minor < 0:
		return fmt.Errorf("device %s: negative numbers %d:%d", d.HostPath, d.Major, d.Minor)
	}
	return nil
}
