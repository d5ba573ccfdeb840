package reconcile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Security is how one container is confined, from its securityContext and
// its pod's. The runtime turns it into the container's OCI spec.
type Security struct {
	// Context is the container's securityContext with the pod's
	// runAsUser, runAsGroup, runAsNonRoot and seccompProfile filled in
	// where the container leaves them unset, as kubelet merges them.
	Context api.SecurityContext
	// SupplementalGroups are the groups the container's process holds
	// besides its own: the pod's supplementalGroups, then its fsGroup, so
	// that it can use the volumes fsGroup owns.
	SupplementalGroups []int64
}

// EffectiveSecurity merges a container's securityContext with its pod's.
func EffectiveSecurity(pod *api.PodSpec, c *api.Container) Security {
	var s Security
	if c.SecurityContext != nil {
		s.Context = *c.SecurityContext
	}
	if p := pod.SecurityContext; p != nil {
		if s.Context.RunAsUser == nil {
			s.Context.RunAsUser = p.RunAsUser
		}
		if s.Context.RunAsGroup == nil {
			s.Context.RunAsGroup = p.RunAsGroup
		}
		if s.Context.RunAsNonRoot == nil {
			s.Context.RunAsNonRoot = p.RunAsNonRoot
		}
		if s.Context.SeccompProfile == nil {
			s.Context.SeccompProfile = p.SeccompProfile
		}
		s.SupplementalGroups = append(s.SupplementalGroups, p.SupplementalGroups...)
		if p.FSGroup != nil {
			s.SupplementalGroups = append(s.SupplementalGroups, *p.FSGroup)
		}
	}
	return s
}

// ConfigError is a container whose configuration cannot run on this board,
// kubelet's CreateContainerConfigError: an image that would run as root
// under runAsNonRoot, a Localhost seccomp profile the board does not have.
// The runtime returns it before it creates anything; the reconciler
// reports it and tries again with back-off, since the board or the
// manifest may change.
type ConfigError struct {
	Msg string
}

func (e *ConfigError) Error() string { return e.Msg }

// fsGroupOf is the pod's fsGroup, or nil.
func fsGroupOf(pod *api.PodSpec) *int64 {
	if pod.SecurityContext == nil {
		return nil
	}
	return pod.SecurityContext.FSGroup
}

// setgidFor is the set-group-ID bit for an emptyDir of a pod with an
// fsGroup, so that resetting the directory's mode keeps it.
func setgidFor(pod *api.PodSpec) os.FileMode {
	if fsGroupOf(pod) == nil {
		return 0
	}
	return os.ModeSetgid
}

// Permission bits fsGroup adds, as kubelet adds them: group read (and
// write, unless the volume is read-only) on everything, group search and
// set-group-ID on directories, so that what the pod creates later belongs
// to the group too.
const (
	fsGroupRW   = 0o660
	fsGroupRO   = 0o440
	fsGroupExec = 0o110
)

// applyFSGroup gives group gid the volume at dir, as kubelet does for
// fsGroup: every file and directory below it (symbolic links themselves,
// not what they point to) gets group gid and the group bits above. A
// writable volume whose top directory already has the group and its
// set-group-ID bit is taken as done, so that a large emptyDir is not
// walked at every container start.
func applyFSGroup(dir string, gid int64, readOnly bool) error {
	if !readOnly {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return fmt.Errorf("fsGroup: stat %s: %w", dir, err)
		}
		if int64(st.Gid) == gid && st.Mode&unix.S_ISGID != 0 {
			return nil
		}
	}
	mask := os.FileMode(fsGroupRW)
	if readOnly {
		mask = fsGroupRO
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, -1, int(gid)); err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m := mask
		if d.IsDir() {
			m |= os.ModeSetgid | fsGroupExec
		}
		return os.Chmod(path, info.Mode()|m)
	})
	if err != nil {
		return fmt.Errorf("fsGroup %d on %s: %w", gid, dir, err)
	}
	return nil
}
