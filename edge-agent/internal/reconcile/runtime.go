package reconcile

import (
	"context"
	"errors"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Runtime is what the reconciler needs from a container runtime. The
// containerd adapter (package runtime) satisfies it on a board; a fake
// satisfies it in unit tests. Every container the agent manages carries the
// labels below, so an agent restarted from scratch can find them again.
type Runtime interface {
	// List returns every container in the agent's namespace, with its labels
	// and the state of its task.
	List(ctx context.Context) ([]Container, error)
	// EnsureImage makes ref available on the board according to policy
	// (Always, IfNotPresent, Never) and returns the image's digest.
	EnsureImage(ctx context.Context, ref string, policy api.PullPolicy) (digest string, err error)
	// Create creates a container, not yet running. Creating an ID that
	// already exists returns an error wrapping ErrAlreadyExists.
	Create(ctx context.Context, spec ContainerSpec) error
	// CreateNextRun creates container id as the next run of container
	// from: the same image, command, environment, mounts and limits, a
	// fresh writable layer, the given labels, in shimGroup, and no task.
	// Creating an ID that already exists returns an error wrapping
	// ErrAlreadyExists.
	CreateNextRun(ctx context.Context, from, id string, labels map[string]string, shimGroup string) error
	// Start starts a new task for the container, first deleting an exited
	// one. Its stdout and stderr go to logPath. It records the start time
	// on the container (LabelStartedAt), so List reports it after an agent
	// restart, and only once the task exists: a container with a start
	// time and no task is one whose task was created and went, which the
	// reconciler counts as an exit; one whose task could not be created
	// (or an agent killed meanwhile) must not count as a restart.
	Start(ctx context.Context, id, logPath string) error
	// Stop sends SIGTERM, waits up to grace, then SIGKILL, and returns once
	// the task has exited (it is then deleted). Stopping a container with no
	// running task is not an error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove deletes a stopped container and its filesystem. Removing a
	// container that does not exist is not an error.
	Remove(ctx context.Context, id string) error
	// Exits delivers task-exit notifications for the containers' main
	// processes until ctx ends, resubscribing if the runtime restarts.
	Exits(ctx context.Context) <-chan Exit
}

// Container labels. Every container the agent creates carries all of them.
const (
	LabelPodUID       = "io.flotilla.pod.uid"
	LabelPodName      = "io.flotilla.pod.name"
	LabelPodNamespace = "io.flotilla.pod.namespace"
	LabelSpecHash     = "io.flotilla.pod.spec-hash"
	LabelRevision     = "io.flotilla.snapshot.revision"
	LabelContainer    = "io.flotilla.container.name"
	// LabelRun numbers the runs of a container: 0 for the first, the
	// restart count for the one a restart created (see RunID).
	LabelRun = "io.flotilla.container.run"
	// LabelStartedAt is set by Runtime.Start (RFC 3339, nanoseconds).
	LabelStartedAt = "io.flotilla.container.started-at"
)

// TaskState is the state of a container's task.
type TaskState int

// Task states. A container with no task (never started, or its task
// deleted) is TaskNone.
const (
	TaskNone TaskState = iota
	TaskCreated
	TaskRunning
	TaskExited
	TaskUnknown
)

func (s TaskState) String() string {
	switch s {
	case TaskNone:
		return "none"
	case TaskCreated:
		return "created"
	case TaskRunning:
		return "running"
	case TaskExited:
		return "exited"
	}
	return "unknown"
}

// Container is a container as the runtime reports it.
type Container struct {
	ID     string
	Labels map[string]string
	Image  string
	State  TaskState
	Pid    uint32
	// StartedAt is when the current (or last) task started, from
	// LabelStartedAt; zero if never started.
	StartedAt time.Time
	// ExitCode and FinishedAt are set when State is TaskExited.
	ExitCode   int32
	FinishedAt time.Time
}

// ContainerSpec is everything needed to create one container. Command and
// Args follow Kubernetes: Command replaces the image's entrypoint, Args
// replaces its cmd.
type ContainerSpec struct {
	ID         string
	Labels     map[string]string
	Image      string
	Command    []string
	Args       []string
	Env        []string // KEY=VALUE, applied over the image's environment
	WorkingDir string
	// NetworkNamespace is the path of the pod's network namespace, which
	// every container of the pod joins; "" runs the container in the
	// board's (hostNetwork), with the board's hostname, /etc/hosts and
	// /etc/resolv.conf unless Mounts bring others.
	NetworkNamespace string
	// Hostname is the container's hostname on a pod network (the pod's
	// name); on the board's network it is the board's.
	Hostname string
	Mounts   []Mount
	// ShimGroup, when set, puts the container's tasks in the one shim
	// process that serves every container of the same group (a pod), so a
	// task created while another of the group exists needs no new shim.
	ShimGroup string
	// CPULimitMilli and MemoryLimitBytes are enforced through the OCI spec
	// (CFS quota and memory limit); zero means unlimited. CPURequestMilli
	// sets cpu shares.
	CPULimitMilli    int64
	CPURequestMilli  int64
	MemoryLimitBytes int64
	// Security is who the container runs as and how it is confined
	// (security.go). Its zero value is a container that says nothing:
	// the runtime still confines it by default.
	Security Security

	// Devices are the board's device nodes the container is given
	// (package devices): each at its path under the container's /dev,
	// with the device cgroup rule that lets it use it.
	Devices []DeviceNode
}

// DeviceNode is one device node of the board given to a container.
type DeviceNode struct {
	// HostPath is the node on the board (a symlink leads to it);
	// ContainerPath, where the container sees it (/dev/...).
	HostPath, ContainerPath string
	// Type ("c" or "b"), Major and Minor are the node's, for the cgroup
	// rule.
	Type         string
	Major, Minor int64
}

// Mount binds a board path into a container.
type Mount struct {
	Source      string
	Destination string
	ReadOnly    bool
}

// Exit is a task-exit notification.
type Exit struct {
	ContainerID string
	ExitCode    int32
	ExitedAt    time.Time
}

// Errors a Runtime classifies, so the reconciler can tell the reasons apart.
var (
	ErrAlreadyExists = errors.New("already exists")
	ErrNotFound      = errors.New("not found")
	// ErrImagePull wraps a failure to fetch an image from its registry.
	// The runtime adds one of the kinds below when it can tell why.
	ErrImagePull = errors.New("image pull failed")
	// ErrImageNeverPull is returned for policy Never when the image is absent.
	ErrImageNeverPull = errors.New("image not present and pull policy is Never")

	// ErrImageNotFound: the registry says the repository or the tag does
	// not exist. Permanent: retrying cannot help until someone pushes it.
	ErrImageNotFound = errors.New("image not found in the registry")
	// ErrRegistryDenied: the registry refused the pull (HTTP 401 or 403:
	// no or wrong credentials, or no access to the repository). Permanent.
	ErrRegistryDenied = errors.New("registry denied the pull")
	// ErrInvalidImageRef: the image reference does not parse. Permanent.
	ErrInvalidImageRef = errors.New("invalid image reference")
	// ErrRegistryUnavailable: the registry could not be reached or failed
	// (connection refused, a time-out, HTTP 5xx or 429). Transient.
	ErrRegistryUnavailable = errors.New("registry unavailable")
)

// PermanentPullError reports whether a pull failed for a reason that
// retrying cannot mend by itself: the registry said not found, refused
// access, or the reference is malformed.
func PermanentPullError(err error) bool {
	return errors.Is(err, ErrImageNotFound) || errors.Is(err, ErrRegistryDenied) || errors.Is(err, ErrInvalidImageRef)
}
