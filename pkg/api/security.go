package api

import "strings"

// PodSecurityContext is the supported subset of Kubernetes' pod-level
// securityContext: who a pod's containers run as, the groups they hold,
// the group that owns the volumes the agent writes for the pod (fsGroup),
// and the seccomp profile of containers that name none.
type PodSecurityContext struct {
	RunAsUser          *int64          `json:"runAsUser,omitempty"`
	RunAsGroup         *int64          `json:"runAsGroup,omitempty"`
	RunAsNonRoot       *bool           `json:"runAsNonRoot,omitempty"`
	SupplementalGroups []int64         `json:"supplementalGroups,omitempty"`
	FSGroup            *int64          `json:"fsGroup,omitempty"`
	SeccompProfile     *SeccompProfile `json:"seccompProfile,omitempty"`
}

// SecurityContext is the supported subset of Kubernetes' container-level
// securityContext. A field it leaves unset takes the pod's value where the
// pod has one (runAsUser, runAsGroup, runAsNonRoot, seccompProfile).
//
// Flotilla's defaults are confined where Kubernetes leaves the runtime's:
// a container that says nothing runs under the runtime's default seccomp
// profile and with no_new_privs set; seccompProfile type Unconfined,
// allowPrivilegeEscalation true or privileged true lift them.
type SecurityContext struct {
	Capabilities             *Capabilities   `json:"capabilities,omitempty"`
	Privileged               *bool           `json:"privileged,omitempty"`
	RunAsUser                *int64          `json:"runAsUser,omitempty"`
	RunAsGroup               *int64          `json:"runAsGroup,omitempty"`
	RunAsNonRoot             *bool           `json:"runAsNonRoot,omitempty"`
	ReadOnlyRootFilesystem   *bool           `json:"readOnlyRootFilesystem,omitempty"`
	AllowPrivilegeEscalation *bool           `json:"allowPrivilegeEscalation,omitempty"`
	ProcMount                *ProcMountType  `json:"procMount,omitempty"`
	SeccompProfile           *SeccompProfile `json:"seccompProfile,omitempty"`
}

// Capabilities adds Linux capabilities to the runtime's default set and
// drops others from it. Names are written as Kubernetes writes them
// (NET_ADMIN) or with the kernel's prefix (CAP_NET_ADMIN); ALL stands for
// every capability.
type Capabilities struct {
	Add  []Capability `json:"add,omitempty"`
	Drop []Capability `json:"drop,omitempty"`
}

// Capability is a Linux capability's name.
type Capability string

// CapabilityAll, in add or drop, is every capability.
const CapabilityAll Capability = "ALL"

// SeccompProfile says which seccomp filter confines a container.
type SeccompProfile struct {
	Type SeccompProfileType `json:"type"`
	// LocalhostProfile is the profile's file, relative to the agent's
	// seccomp profile directory; set exactly when Type is Localhost.
	LocalhostProfile *string `json:"localhostProfile,omitempty"`
}

// SeccompProfileType is a kind of seccomp profile.
type SeccompProfileType string

// Seccomp profile types, as in Kubernetes.
const (
	// SeccompProfileTypeRuntimeDefault is containerd's default profile.
	SeccompProfileTypeRuntimeDefault SeccompProfileType = "RuntimeDefault"
	// SeccompProfileTypeUnconfined is no seccomp filter at all.
	SeccompProfileTypeUnconfined SeccompProfileType = "Unconfined"
	// SeccompProfileTypeLocalhost is a profile file on the board.
	SeccompProfileTypeLocalhost SeccompProfileType = "Localhost"
)

// ProcMountType is how /proc is mounted in a container.
type ProcMountType string

// ProcMountDefault masks and makes read-only the usual parts of /proc,
// as the runtime does; it is the only type Flotilla supports (Unmasked
// needs a user namespace).
const ProcMountDefault ProcMountType = "Default"

// linuxCapabilities are the Linux capabilities by number (capabilities(7),
// kernel 5.9 and later), without their CAP_ prefix.
var linuxCapabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
	"SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
	"NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
	"SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
	"SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
	"SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
	"BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// LinuxCapabilities returns the names of every Linux capability, with
// the CAP_ prefix, in the kernel's order.
func LinuxCapabilities() []string {
	out := make([]string, len(linuxCapabilities))
	for i, c := range linuxCapabilities {
		out[i] = "CAP_" + c
	}
	return out
}

// Canonical returns the capability's name as the kernel writes it, upper
// case with the CAP_ prefix ("net_admin" and "NET_ADMIN" both give
// "CAP_NET_ADMIN"), and whether it names a Linux capability. ALL is not
// a capability: it gives "ALL", false.
func (c Capability) Canonical() (string, bool) {
	name := strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")
	for _, known := range linuxCapabilities {
		if name == known {
			return "CAP_" + known, true
		}
	}
	return strings.ToUpper(string(c)), false
}

// IsAll reports whether c is ALL, in any case.
func (c Capability) IsAll() bool {
	return strings.EqualFold(string(c), string(CapabilityAll))
}
