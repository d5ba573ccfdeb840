package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/contrib/seccomp"
	"github.com/containerd/containerd/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// How a container is confined: its securityContext (reconcile.Security,
// the pod's merged in) turned into OCI spec options, applied after the
// image's configuration and the pod's other settings.
//
// Confined unless the manifest says otherwise: containerd's default
// seccomp profile (the one its CRI plugin gives RuntimeDefault) and
// no_new_privs for every container, unless seccompProfile is Unconfined
// or Localhost, allowPrivilegeEscalation is true, or the container is
// privileged. A privileged container gets what Kubernetes gives one on
// containerd: every capability the agent holds, the board's devices, no
// seccomp filter, no masked or read-only paths in /proc and /sys, and
// writable sysfs and cgroupfs.
//
// What needs the board is checked here, before anything is created, and
// refused as a reconcile.ConfigError: runAsNonRoot against the image's
// user, a Localhost profile's file.

// DefaultSeccompProfileRoot is where Localhost seccomp profiles are read
// from when Options names no directory: the default state directory's
// seccomp, as kubelet reads them from its root directory's.
const DefaultSeccompProfileRoot = "/var/lib/flotilla-agent/seccomp"

// securityOptions returns the spec options for spec's securityContext,
// given the image's configuration, or a reconcile.ConfigError.
func (c *Containerd) securityOptions(cfg ocispec.ImageConfig, spec reconcile.ContainerSpec) ([]oci.SpecOpts, error) {
	p := seccompPolicy{root: c.opts.SeccompProfileRoot, unconfinedByDefault: c.opts.UnconfinedByDefault}
	if p.root == "" {
		p.root = DefaultSeccompProfileRoot
	}
	return securityOptions(cfg, spec, p)
}

// seccompPolicy is the node's side of seccomp: where Localhost profiles
// are, and what a container that names no profile gets.
type seccompPolicy struct {
	root                string
	unconfinedByDefault bool
}

// securityOptions is the method's work, with the node's policy given.
func securityOptions(cfg ocispec.ImageConfig, spec reconcile.ContainerSpec, policy seccompPolicy) ([]oci.SpecOpts, error) {
	sc := spec.Security.Context
	if err := checkRunAsNonRoot(cfg, spec); err != nil {
		return nil, err
	}
	opts := userOptions(cfg, spec.Security)
	if isTrue(sc.ReadOnlyRootFilesystem) {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if isTrue(sc.Privileged) {
		// Capabilities and seccomp as the manifest gives them do not
		// apply: a privileged container has them all, and no filter.
		return append(opts, oci.WithPrivileged, oci.WithHostDevices, oci.WithAllDevicesAllowed, oci.WithNewPrivileges), nil
	}
	opts = append(opts, capabilityOptions(sc.Capabilities)...)
	if ape := sc.AllowPrivilegeEscalation; ape != nil && *ape {
		opts = append(opts, oci.WithNewPrivileges)
	} else {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	// After the capabilities: the default profile allows the system
	// calls that the container's capabilities need.
	sp, err := seccompOption(sc.SeccompProfile, policy)
	if err != nil {
		return nil, err
	}
	return append(opts, sp), nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// podRef names spec's pod and container for messages, as kubelet does.
func podRef(spec reconcile.ContainerSpec) string {
	return fmt.Sprintf("pod: %q, container: %s", spec.Labels[reconcile.LabelPodNamespace]+"/"+spec.Labels[reconcile.LabelPodName], spec.Labels[reconcile.LabelContainer])
}

// checkRunAsNonRoot refuses, with kubelet's messages, a container that
// must not run as root and would: its runAsUser is 0, or it has none and
// the image's user is root, unset (root) or a name that cannot be
// checked without trusting the image's /etc/passwd.
func checkRunAsNonRoot(cfg ocispec.ImageConfig, spec reconcile.ContainerSpec) error {
	sc := spec.Security.Context
	if !isTrue(sc.RunAsNonRoot) {
		return nil
	}
	if u := sc.RunAsUser; u != nil {
		if *u == 0 {
			return &reconcile.ConfigError{Msg: fmt.Sprintf("container's runAsUser breaks non-root policy (%s)", podRef(spec))}
		}
		return nil
	}
	user, _, _ := strings.Cut(cfg.User, ":")
	if user == "" {
		user = "0"
	}
	uid, err := strconv.ParseUint(user, 10, 32)
	switch {
	case err != nil:
		return &reconcile.ConfigError{Msg: fmt.Sprintf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (%s)", user, podRef(spec))}
	case uid == 0:
		return &reconcile.ConfigError{Msg: fmt.Sprintf("container has runAsNonRoot and image will run as root (%s)", podRef(spec))}
	}
	return nil
}

// userOptions sets the process's user and groups: runAsUser and
// runAsGroup over the image's user (a runAsUser without a runAsGroup
// takes its group from the image's /etc/passwd, or 0, as containerd's
// CRI plugin does), the user's groups from the image's /etc/group, then
// the pod's supplemental groups and fsGroup.
func userOptions(cfg ocispec.ImageConfig, sec reconcile.Security) []oci.SpecOpts {
	sc := sec.Context
	imageUser, _, _ := strings.Cut(cfg.User, ":")
	if imageUser == "" {
		imageUser = "0"
	}
	var opts []oci.SpecOpts
	user := imageUser
	switch {
	case sc.RunAsUser != nil && sc.RunAsGroup != nil:
		user = strconv.FormatInt(*sc.RunAsUser, 10)
		opts = append(opts, oci.WithUIDGID(uint32(*sc.RunAsUser), uint32(*sc.RunAsGroup)))
	case sc.RunAsUser != nil:
		user = strconv.FormatInt(*sc.RunAsUser, 10)
		opts = append(opts, oci.WithUserID(uint32(*sc.RunAsUser)))
	case sc.RunAsGroup != nil:
		opts = append(opts, oci.WithUser(imageUser+":"+strconv.FormatInt(*sc.RunAsGroup, 10)))
	}
	if len(opts) > 0 {
		// Setting the user cleared the groups the image's config gave.
		opts = append(opts, oci.WithAdditionalGIDs(user))
	}
	if len(sec.SupplementalGroups) > 0 {
		opts = append(opts, withGroups(sec.SupplementalGroups))
	}
	return opts
}

// withGroups adds numeric groups to the process's, without reading the
// image's /etc/group (which oci.WithAppendAdditionalGroups mounts the
// root filesystem to do).
func withGroups(gids []int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for _, g := range gids {
			if !hasGID(s.Process.User.AdditionalGids, uint32(g)) {
				s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
			}
		}
		return nil
	}
}

func hasGID(gids []uint32, g uint32) bool {
	for _, x := range gids {
		if x == g {
			return true
		}
	}
	return false
}

// capabilityOptions adds and drops capabilities from containerd's default
// set, as containerd's CRI plugin does: add ALL starts from every
// capability the agent holds, drop ALL from none (drop wins), then the
// named ones are added and dropped. Names are the kernel's (CAP_...), in
// any case, with or without the prefix.
func capabilityOptions(caps *api.Capabilities) []oci.SpecOpts {
	if caps == nil {
		return nil
	}
	var opts []oci.SpecOpts
	var add, drop []string
	addAll, dropAll := false, false
	for _, cp := range caps.Add {
		if cp.IsAll() {
			addAll = true
		} else if name, ok := cp.Canonical(); ok {
			add = append(add, name)
		}
	}
	for _, cp := range caps.Drop {
		if cp.IsAll() {
			dropAll = true
		} else if name, ok := cp.Canonical(); ok {
			drop = append(drop, name)
		}
	}
	switch {
	case dropAll:
		opts = append(opts, oci.WithCapabilities(nil))
	case addAll:
		opts = append(opts, oci.WithAllCurrentCapabilities)
	}
	if len(add) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(add))
	}
	if len(drop) > 0 {
		opts = append(opts, oci.WithDroppedCapabilities(drop))
	}
	return opts
}

// seccompOption is the container's seccomp filter: containerd's default
// profile unless the manifest asks for none or for a profile file of the
// board's, or names none on a node whose agent runs with
// --seccomp-default=false.
//
// containerd builds its default profile for the architecture the agent
// was built for, which is the kernel's except where the agent itself runs
// under qemu-user (the emulated test rig): there the profile would refuse
// the host's own system calls (qemu's arch_prctl first), and the agent
// runs with --seccomp-default=false.
func seccompOption(sp *api.SeccompProfile, policy seccompPolicy) (oci.SpecOpts, error) {
	switch {
	case sp == nil && policy.unconfinedByDefault:
		return oci.WithSeccompUnconfined, nil
	case sp == nil || sp.Type == api.SeccompProfileTypeRuntimeDefault:
		return seccomp.WithDefaultProfile(), nil
	case sp.Type == api.SeccompProfileTypeUnconfined:
		return oci.WithSeccompUnconfined, nil
	case sp.Type == api.SeccompProfileTypeLocalhost && sp.LocalhostProfile != nil:
		profile, err := loadProfile(policy.root, *sp.LocalhostProfile)
		if err != nil {
			return nil, err
		}
		return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			p := *profile // each container its own copy
			s.Linux.Seccomp = &p
			return nil
		}, nil
	}
	return nil, &reconcile.ConfigError{Msg: fmt.Sprintf("seccomp profile type %q is not supported", sp.Type)}
}

// loadProfile reads and decodes a Localhost profile, name relative to
// root, refusing a name that leaves root.
func loadProfile(root, name string) (*specs.LinuxSeccomp, error) {
	path := filepath.Join(root, name)
	if rel, err := filepath.Rel(root, path); err != nil || !filepath.IsLocal(rel) {
		return nil, &reconcile.ConfigError{Msg: fmt.Sprintf("seccomp profile %q is outside the seccomp profile directory %s", name, root)}
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &reconcile.ConfigError{Msg: fmt.Sprintf("seccomp profile %s does not exist on this board (Localhost profiles are read from the agent's --seccomp-profile-root, %s)", path, root)}
	case err != nil:
		return nil, &reconcile.ConfigError{Msg: fmt.Sprintf("cannot read seccomp profile %s: %v", path, err)}
	}
	var p specs.LinuxSeccomp
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, &reconcile.ConfigError{Msg: fmt.Sprintf("seccomp profile %s is not a valid OCI seccomp profile: %v", path, err)}
	}
	if p.DefaultAction == "" {
		return nil, &reconcile.ConfigError{Msg: fmt.Sprintf("seccomp profile %s is not a valid OCI seccomp profile: it has no defaultAction", path)}
	}
	return &p, nil
}
