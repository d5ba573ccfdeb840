package reconcile

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Host path types, as in Kubernetes' HostPathType.
const (
	hostPathUnset             = ""
	hostPathDirectoryOrCreate = "DirectoryOrCreate"
	hostPathDirectory         = "Directory"
	hostPathFileOrCreate      = "FileOrCreate"
	hostPathFile              = "File"
	hostPathSocket            = "Socket"
)

// mounts prepares the volumes one container mounts and returns the bind
// mounts for it. emptyDir volumes live under the pod's directory and go
// away with the pod; hostPath volumes are checked or created per their type.
func (r *Reconciler) mounts(pod *wire.SnapshotPod, c *api.Container) ([]Mount, error) {
	volumes := make(map[string]*api.Volume, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		volumes[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	var out []Mount
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volumeMount %q: no volume of that name in the pod", vm.Name)
		}
		var source string
		switch {
		case v.HostPath != nil:
			if err := prepareHostPath(v.HostPath); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			source = v.HostPath.Path
		case v.EmptyDir != nil:
			source = filepath.Join(r.podDir(pod.UID), "volumes", v.Name)
			if err := os.MkdirAll(source, 0o777); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			if v.EmptyDir.Medium == "Memory" {
				if err := mountTmpfs(source, v.EmptyDir.SizeLimit); err != nil {
					return nil, fmt.Errorf("volume %q: %w", v.Name, err)
				}
			}
			// World-writable like kubelet's emptyDir, so non-root images can use it.
			if err := os.Chmod(source, 0o777); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
		default:
			return nil, fmt.Errorf("volume %q has no supported source", v.Name)
		}
		out = append(out, Mount{Source: source, Destination: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	return out, nil
}

func prepareHostPath(hp *api.HostPathVolumeSource) error {
	fi, err := os.Stat(hp.Path)
	switch hp.Type {
	case hostPathUnset:
		if os.IsNotExist(err) {
			// Kubernetes creates a missing directory for an unset type too
			// (the runtime does); do it here so the bind mount works.
			return os.MkdirAll(hp.Path, 0o755)
		}
		return err
	case hostPathDirectoryOrCreate:
		if os.IsNotExist(err) {
			return os.MkdirAll(hp.Path, 0o755)
		}
		if err == nil && !fi.IsDir() {
			return fmt.Errorf("hostPath %s exists and is not a directory", hp.Path)
		}
		return err
	case hostPathDirectory:
		if err != nil {
			return fmt.Errorf("hostPath %s: %w", hp.Path, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("hostPath %s is not a directory", hp.Path)
		}
	case hostPathFileOrCreate:
		if os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(hp.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		if err == nil && fi.IsDir() {
			return fmt.Errorf("hostPath %s is a directory, not a file", hp.Path)
		}
		return err
	case hostPathFile:
		if err != nil {
			return fmt.Errorf("hostPath %s: %w", hp.Path, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("hostPath %s is not a regular file", hp.Path)
		}
	case hostPathSocket:
		if err != nil {
			return fmt.Errorf("hostPath %s: %w", hp.Path, err)
		}
		if fi.Mode()&os.ModeSocket == 0 {
			return fmt.Errorf("hostPath %s is not a socket", hp.Path)
		}
	default:
		return fmt.Errorf("hostPath type %q is not supported (use DirectoryOrCreate, Directory, FileOrCreate, File or Socket)", hp.Type)
	}
	return nil
}

// mountTmpfs mounts a tmpfs on dir unless one is already there (a pod's
// second container shares the first one's).
func mountTmpfs(dir string, size *api.Quantity) error {
	mounted, err := isMountPoint(dir)
	if err != nil || mounted {
		return err
	}
	opts := "mode=0777"
	if size != nil {
		opts += ",size=" + strconv.FormatInt(size.Value(), 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is on a different device than its parent.
func isMountPoint(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return false, fmt.Errorf("stat %s: %w", filepath.Dir(dir), err)
	}
	return st.Dev != parent.Dev, nil
}

// removePodVolumes unmounts a pod's memory-backed volumes and deletes its
// directory (its emptyDir volumes).
func removePodVolumes(dir string) error {
	entries, _ := os.ReadDir(filepath.Join(dir, "volumes"))
	for _, e := range entries {
		p := filepath.Join(dir, "volumes", e.Name())
		if mounted, _ := isMountPoint(p); mounted {
			if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmount %s: %w", p, err)
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
