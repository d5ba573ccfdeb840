package manifest

import (
	"fmt"
	"math"
	"path"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Security contexts, pod and container, with Kubernetes' validation rules
// for the fields Flotilla supports, and one of its own: a capability must
// be one Linux has (Kubernetes passes any name on to the runtime, which
// fails the container only when it starts). What needs the board (the
// image's user for runAsNonRoot, a Localhost profile's file) is checked by
// the agent when it creates the container; what needs the namespace (its
// Pod Security level) by the hub when it applies.

// Allowed values.
var (
	seccompTypes = []api.SeccompProfileType{
		api.SeccompProfileTypeRuntimeDefault, api.SeccompProfileTypeUnconfined, api.SeccompProfileTypeLocalhost,
	}
	procMountTypes = []api.ProcMountType{api.ProcMountDefault, "Unmasked"}
)

// maxID is the largest user or group ID Kubernetes accepts (runc's bound).
const maxID = math.MaxInt32

// validatePodSecurityContext checks a pod's securityContext at path.
func validatePodSecurityContext(c *collector, sc *api.PodSecurityContext, path string) {
	if sc == nil {
		return
	}
	validateID(c, sc.RunAsUser, field(path, "runAsUser"))
	validateID(c, sc.RunAsGroup, field(path, "runAsGroup"))
	validateID(c, sc.FSGroup, field(path, "fsGroup"))
	for i := range sc.SupplementalGroups {
		validateID(c, &sc.SupplementalGroups[i], index(field(path, "supplementalGroups"), i))
	}
	validateSeccompProfile(c, sc.SeccompProfile, field(path, "seccompProfile"))
}

// validateSecurityContext checks a container's securityContext at path.
func validateSecurityContext(c *collector, sc *api.SecurityContext, path string) {
	if sc == nil {
		return
	}
	validateID(c, sc.RunAsUser, field(path, "runAsUser"))
	validateID(c, sc.RunAsGroup, field(path, "runAsGroup"))
	validateSeccompProfile(c, sc.SeccompProfile, field(path, "seccompProfile"))
	if pm := sc.ProcMount; pm != nil {
		switch {
		case *pm == api.ProcMountDefault:
		case *pm == "Unmasked":
			c.add(field(path, "procMount"), `"Unmasked" is not supported by Flotilla: it needs a user namespace (hostUsers: false), which Flotilla does not give pods; only Default is`)
		default:
			c.add(field(path, "procMount"), notOneOf(*pm, procMountTypes))
		}
	}
	if caps := sc.Capabilities; caps != nil {
		validateCapabilities(c, caps.Add, field(path, "capabilities.add"))
		validateCapabilities(c, caps.Drop, field(path, "capabilities.drop"))
	}
	// Kubernetes' two rules about no_new_privs: a privileged container,
	// and one given CAP_SYS_ADMIN (written so), gain privileges anyway.
	if ape := sc.AllowPrivilegeEscalation; ape != nil && !*ape {
		if sc.Privileged != nil && *sc.Privileged {
			c.add(path, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true")
		}
		if caps := sc.Capabilities; caps != nil {
			for _, cp := range caps.Add {
				if cp == "CAP_SYS_ADMIN" {
					c.add(path, "cannot set `allowPrivilegeEscalation` to false and `capabilities.add` CAP_SYS_ADMIN")
				}
			}
		}
	}
}

// validateID checks a user or group ID, if set.
func validateID(c *collector, id *int64, path string) {
	if id != nil && (*id < 0 || *id > maxID) {
		c.addf(path, "must be between 0 and %d, inclusive", maxID)
	}
}

// validateSeccompProfile checks a seccomp profile, if set: a known type,
// and a localhostProfile exactly for Localhost, relative and staying
// inside the agent's profile directory.
func validateSeccompProfile(c *collector, sp *api.SeccompProfile, path string) {
	if sp == nil {
		return
	}
	lp := field(path, "localhostProfile")
	switch sp.Type {
	case api.SeccompProfileTypeLocalhost:
		if sp.LocalhostProfile == nil {
			c.add(lp, "must be set when seccomp type is Localhost")
			return
		}
		if err := localDescendingPath(*sp.LocalhostProfile); err != nil {
			c.add(lp, err.Error())
		}
	case api.SeccompProfileTypeRuntimeDefault, api.SeccompProfileTypeUnconfined:
		if sp.LocalhostProfile != nil {
			c.add(lp, "can only be set when seccomp type is Localhost")
		}
	case "":
		c.add(field(path, "type"), "required: one of RuntimeDefault, Unconfined, Localhost")
	default:
		c.add(field(path, "type"), notOneOf(sp.Type, seccompTypes))
	}
}

// localDescendingPath checks that p names a file below a directory: not
// empty, not absolute, and with no ".." element (with either separator,
// as Kubernetes checks it).
func localDescendingPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("must not be empty: give the profile's file, relative to the agent's seccomp profile directory")
	case path.IsAbs(p) || strings.HasPrefix(p, `\`):
		return fmt.Errorf("%q must be a relative path (to the agent's seccomp profile directory)", clip(p, 200))
	}
	for _, part := range strings.FieldsFunc(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return fmt.Errorf("%q must not contain '..'", clip(p, 200))
		}
	}
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("%q must not contain a NUL byte", clip(p, 200))
	}
	return nil
}

// validateCapabilities checks that every name in caps is a Linux
// capability, with or without CAP_, or ALL.
func validateCapabilities(c *collector, caps []api.Capability, path string) {
	for i, cp := range caps {
		p := index(path, i)
		if cp == "" {
			c.add(p, "must not be empty: name a Linux capability such as NET_ADMIN, or ALL")
			continue
		}
		if cp.IsAll() {
			continue
		}
		if _, ok := cp.Canonical(); !ok {
			c.addf(p, "unknown capability %q: want a Linux capability such as NET_ADMIN or CAP_NET_ADMIN, or ALL", clip(string(cp), 64))
		}
	}
}
