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
// secret volumes are written to a tmpfs under the pod's directory (never
// the board's disk), configMap volumes to the pod's directory; both read
// only, written again at each container start.
func (r *Reconciler) mounts(pod *wire.SnapshotPod, c *api.Container, src ConfigSource) ([]Mount, error) {
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
			if err := os.Chmod(source, 0o777|setgidFor(&pod.Spec)); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			if g := fsGroupOf(&pod.Spec); g != nil {
				if err := applyFSGroup(source, *g, false); err != nil {
					return nil, fmt.Errorf("volume %q: %w", v.Name, err)
				}
			}
		case v.Secret != nil || v.ConfigMap != nil:
			var err error
			if source, err = r.configVolume(pod, v, src); err != nil {
				return nil, fmt.Errorf("volume %q: %w", v.Name, err)
			}
			out = append(out, Mount{Source: source, Destination: vm.MountPath, ReadOnly: true})
			continue
		default:
			return nil, fmt.Errorf("volume %q has no supported source", v.Name)
		}
		out = append(out, Mount{Source: source, Destination: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	return out, nil
}

// configVolume writes a secret or configMap volume's files and returns its
// directory.
func (r *Reconciler) configVolume(pod *wire.SnapshotPod, v *api.Volume, src ConfigSource) (string, error) {
	dir := filepath.Join(r.podDir(pod.UID), "volumes", v.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var (
		data        map[string][]byte
		ok          bool
		optional    bool
		items       []api.KeyToPath
		defaultMode int32 = 0o644
		what        string
	)
	if s := v.Secret; s != nil {
		if err := mountSecretTmpfs(dir); err != nil {
			return "", err
		}
		data, ok = src.Secret(pod.Namespace, s.SecretName)
		optional, items, what = isTrue(s.Optional), s.Items, "secret "+s.SecretName
		if s.DefaultMode != nil {
			defaultMode = *s.DefaultMode
		}
	} else {
		cm := v.ConfigMap
		data, ok = src.ConfigMap(pod.Namespace, cm.Name)
		optional, items, what = isTrue(cm.Optional), cm.Items, "configmap "+cm.Name
		if cm.DefaultMode != nil {
			defaultMode = *cm.DefaultMode
		}
	}
	if !ok {
		if !optional {
			return "", fmt.Errorf("%s: %w", what, ErrConfigMissing)
		}
		data, items = nil, nil
	}
	if err := WriteConfigVolume(dir, data, items, defaultMode); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if g := fsGroupOf(&pod.Spec); g != nil {
		if err := applyFSGroup(dir, *g, true); err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
	}
	return dir, nil
}

// mountSecretTmpfs mounts a tmpfs for a secret volume, readable by root
// only outside the container.
func mountSecretTmpfs(dir string) error {
	mounted, err := isMountPoint(dir)
	if err != nil || mounted {
		return err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=16m"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
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
