package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/typeurl/v2"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// CFS period used for CPU limits, as the kubelet uses it.
const cfsPeriod = 100_000 // microseconds

// shimGroupAnnotation is the OCI annotation by which the runc v2 shim
// (containerd 1.6 and 1.7, runtime/v2/runc) serves every task whose spec
// carries the same value from one shim process: the first task of a group
// starts the shim, later ones find its socket and join it.
const shimGroupAnnotation = "io.containerd.runc.v2.group"

// Create creates the container and its writable snapshot, but no task. The
// image must already be present (EnsureImage).
func (c *Containerd) Create(ctx context.Context, spec reconcile.ContainerSpec) error {
	ctx = c.ns(ctx)
	if _, err := c.client.LoadContainer(ctx, spec.ID); err == nil {
		return fmt.Errorf("create container %s: %w", spec.ID, reconcile.ErrAlreadyExists)
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("create container %s: %w", spec.ID, classify(err))
	}
	name, err := normalizeRef(spec.Image)
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	img, err := c.localImage(ctx, name)
	if err != nil {
		return fmt.Errorf("create container %s: image %s: %w", spec.ID, spec.Image, err)
	}
	imgConfig, err := imageConfig(ctx, img)
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	specOpts, err := specOptions(img, imgConfig, spec)
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	secOpts, err := c.securityOptions(imgConfig, spec) // security.go
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	specOpts = append(specOpts, secOpts...)
	err = c.newContainer(ctx, spec.ID, c.opts.Snapshotter, func() error {
		_, err := c.client.NewContainer(ctx, spec.ID,
			containerd.WithContainerLabels(spec.Labels),
			containerd.WithImage(img),
			containerd.WithSnapshotter(c.opts.Snapshotter),
			containerd.WithNewSnapshot(spec.ID, img),
			containerd.WithNewSpec(specOpts...),
		)
		return err
	})
	if err != nil {
		return fmt.Errorf("create container %s: %w", spec.ID, err)
	}
	return nil
}

// newContainer runs create, which makes container id with a new snapshot
// keyed id. A snapshot of that key without its container is one an agent
// killed between taking the snapshot and recording the container left
// behind (its lease dies with the agent, but containerd collects it only
// later): nothing uses it, so it is removed and create runs again, rather
// than the "already exists" it causes being taken for the container's.
// After any other failure the snapshot is removed at once, so that a
// retry can take it again.
func (c *Containerd) newContainer(ctx context.Context, id, snapshotter string, create func() error) error {
	snapshots := c.client.SnapshotService(snapshotter)
	err := classify(create())
	if errors.Is(err, reconcile.ErrAlreadyExists) {
		if _, lerr := c.client.LoadContainer(ctx, id); !errdefs.IsNotFound(lerr) {
			return err // the container itself exists
		}
		c.log.Warn("removing a snapshot left without its container", "id", id)
		if rerr := snapshots.Remove(ctx, id); rerr != nil && !errdefs.IsNotFound(rerr) {
			return fmt.Errorf("remove stale snapshot %s: %w", id, classify(rerr))
		}
		err = classify(create())
	}
	if err != nil && !errors.Is(err, reconcile.ErrAlreadyExists) {
		if rerr := snapshots.Remove(ctx, id); rerr != nil && !errdefs.IsNotFound(rerr) {
			c.log.Warn("remove snapshot after failed create", "id", id, "err", rerr)
		}
	}
	return err
}

// CreateNextRun creates container id as the next run of container from: the
// same image layers under a fresh writable layer, the same OCI spec and
// runtime (the spec's cgroup renamed for id, and put in shimGroup), labels,
// and no task. It reads neither the image nor a pod spec, so it costs a few
// calls to containerd, where Create costs a dozen.
func (c *Containerd) CreateNextRun(ctx context.Context, from, id string, labels map[string]string, shimGroup string) error {
	ctx = c.ns(ctx)
	old, err := c.client.ContainerService().Get(ctx, from)
	if err != nil {
		return fmt.Errorf("create container %s from %s: %w", id, from, classify(err))
	}
	snapshots := c.client.SnapshotService(old.Snapshotter)
	layer, err := snapshots.Stat(ctx, old.SnapshotKey)
	if err != nil {
		return fmt.Errorf("create container %s from %s: snapshot: %w", id, from, classify(err))
	}
	v, err := typeurl.UnmarshalAny(old.Spec)
	if err != nil {
		return fmt.Errorf("create container %s from %s: decode spec: %w", id, from, err)
	}
	spec, ok := v.(*specs.Spec)
	if !ok || spec.Linux == nil {
		return fmt.Errorf("create container %s from %s: spec is a %T", id, from, v)
	}
	// containerd's default spec names a container's cgroup after it.
	spec.Linux.CgroupsPath = filepath.Join("/", c.opts.Namespace, id)
	if shimGroup != "" {
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[shimGroupAnnotation] = shimGroup
	}
	err = c.newContainer(ctx, id, old.Snapshotter, func() error {
		_, err := c.client.NewContainer(ctx, id,
			containerd.WithContainerLabels(labels),
			func(ctx context.Context, _ *containerd.Client, ctr *containers.Container) error {
				if _, err := snapshots.Prepare(ctx, id, layer.Parent); err != nil {
					return err
				}
				ctr.Snapshotter, ctr.SnapshotKey, ctr.Image, ctr.Runtime = old.Snapshotter, id, old.Image, old.Runtime
				return nil
			},
			containerd.WithSpec(spec),
		)
		return err
	})
	if err != nil {
		return fmt.Errorf("create container %s from %s: %w", id, from, err)
	}
	return nil
}

// imageConfig reads the image's OCI config (entrypoint, cmd, env...).
func imageConfig(ctx context.Context, img containerd.Image) (ocispec.ImageConfig, error) {
	desc, err := img.Config(ctx)
	if err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("image config: %w", classify(err))
	}
	blob, err := content.ReadBlob(ctx, img.ContentStore(), desc)
	if err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("read image config: %w", classify(err))
	}
	var ociImage ocispec.Image
	if err := json.Unmarshal(blob, &ociImage); err != nil {
		return ocispec.ImageConfig{}, fmt.Errorf("decode image config: %w", err)
	}
	return ociImage.Config, nil
}

// processArgs follows Kubernetes: Command replaces the entrypoint (and then
// the image's cmd is dropped), Args replaces the cmd.
func processArgs(cfg ocispec.ImageConfig, command, args []string) []string {
	entrypoint, cmd := cfg.Entrypoint, cfg.Cmd
	if len(command) > 0 {
		entrypoint, cmd = command, nil
	}
	if len(args) > 0 {
		cmd = args
	}
	out := make([]string, 0, len(entrypoint)+len(cmd))
	out = append(out, entrypoint...)
	return append(out, cmd...)
}

// cpuShares is the kubelet's MilliCPUToShares.
func cpuShares(milli int64) uint64 {
	const minShares, sharesPerCPU, milliPerCPU = 2, 1024, 1000
	shares := milli * sharesPerCPU / milliPerCPU
	if shares < minShares {
		return minShares
	}
	return uint64(shares)
}

// specOptions builds the OCI spec: the image's config first, then the pod's
// overrides.
func specOptions(img containerd.Image, cfg ocispec.ImageConfig, spec reconcile.ContainerSpec) ([]oci.SpecOpts, error) {
	args := processArgs(cfg, spec.Command, spec.Args)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command: image %s has no entrypoint or cmd and none is given", spec.Image)
	}
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithProcessArgs(args...),
		oci.WithEnv(spec.Env),
		// containerd's default spec has no cgroup mount; Kubernetes (CRI)
		// gives every container its own cgroup read-only, so programs can
		// see their limits.
		oci.WithMounts([]specs.Mount{{
			Destination: "/sys/fs/cgroup",
			Type:        "cgroup",
			Source:      "cgroup",
			Options:     []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
		}}),
	}
	if spec.ShimGroup != "" {
		opts = append(opts, oci.WithAnnotations(map[string]string{shimGroupAnnotation: spec.ShimGroup}))
	}
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	if spec.NetworkNamespace == "" {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace))
		if !mounts(spec, "/etc/hosts") {
			opts = append(opts, oci.WithHostHostsFile)
		}
		if !mounts(spec, "/etc/resolv.conf") {
			opts = append(opts, oci.WithHostResolvconf)
		}
		if h, err := os.Hostname(); err == nil {
			opts = append(opts, oci.WithHostname(h))
		}
	} else {
		// The pod's namespace, held by the agent; /etc/hosts,
		// /etc/hostname and /etc/resolv.conf come as mounts.
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: spec.NetworkNamespace}))
		if spec.Hostname != "" {
			opts = append(opts, oci.WithHostname(spec.Hostname))
		}
	}
	if len(spec.Mounts) > 0 {
		mounts := make([]specs.Mount, 0, len(spec.Mounts))
		for _, m := range spec.Mounts {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			mounts = append(mounts, specs.Mount{
				Type:        "bind",
				Source:      m.Source,
				Destination: m.Destination,
				Options:     []string{"rbind", mode},
			})
		}
		opts = append(opts, oci.WithMounts(mounts))
	}
	if spec.CPULimitMilli > 0 {
		opts = append(opts, oci.WithCPUCFS(spec.CPULimitMilli*cfsPeriod/1000, cfsPeriod))
	}
	if spec.CPURequestMilli > 0 {
		opts = append(opts, oci.WithCPUShares(cpuShares(spec.CPURequestMilli)))
	}
	if spec.MemoryLimitBytes > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(spec.MemoryLimitBytes)))
	}
	opts = append(opts, withDevices(spec.Devices)) // devices.go
	return opts, nil
}

// mounts says whether spec mounts something on dest.
func mounts(spec reconcile.ContainerSpec, dest string) bool {
	for _, m := range spec.Mounts {
		if m.Destination == dest {
			return true
		}
	}
	return false
}

// Remove deletes the container and its snapshot, killing and deleting its
// task first if it has one. A missing container is not an error.
func (c *Containerd) Remove(ctx context.Context, id string) error {
	ctx = c.ns(ctx)
	ctr, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("remove container %s: %w", id, classify(err))
	}
	task, err := ctr.Task(ctx, nil)
	switch {
	case err == nil:
		var status containerd.ProcessStatus
		if st, err := task.Status(ctx); err == nil {
			status = st.Status
		}
		if _, err := task.Delete(ctx, killUnlessStopped(status)...); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s: delete task: %w", id, classify(err))
		}
	case !errdefs.IsNotFound(err):
		return fmt.Errorf("remove container %s: load task: %w", id, classify(err))
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, classify(err))
	}
	return nil
}

// List returns every container in the namespace with the state of its task.
// A container removed while listing is left out. It costs two calls to
// containerd whatever the number of containers (the container records, then
// every task's state at once), where asking container by container cost two
// calls per container, each waking that container's shim: on a loaded
// 2-core board 20 containers took 150–250 ms, and the reconciler lists on
// every pass, restarts included. A container that has run before but is
// missing from the task list (a shim that did not answer in time is left
// out of it by containerd) is asked about on its own.
func (c *Containerd) List(ctx context.Context) ([]reconcile.Container, error) {
	ctx = c.ns(ctx)
	records, err := c.client.ContainerService().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", classify(err))
	}
	resp, err := c.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", classify(err))
	}
	tasks := make(map[string]*tasktypes.Process, len(resp.Tasks))
	for _, t := range resp.Tasks {
		tasks[t.ID] = t // a task's ID is its container's
	}
	out := make([]reconcile.Container, 0, len(records))
	for _, rec := range records {
		rc := fromRecord(rec)
		if t, ok := tasks[rec.ID]; ok {
			var exitedAt time.Time
			if t.ExitedAt != nil {
				exitedAt = t.ExitedAt.AsTime()
			}
			setTaskState(&rc, t.Pid, taskStatus(t.Status), t.ExitStatus, exitedAt)
		} else if !rc.StartedAt.IsZero() {
			ctr, err := c.client.LoadContainer(ctx, rec.ID)
			if err == nil {
				rc, err = c.describe(ctx, ctr)
			}
			if errdefs.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list containers: %s: %w", rec.ID, classify(err))
			}
		}
		out = append(out, rc)
	}
	return out, nil
}

// fromRecord is a container as its record shows it, without a task.
func fromRecord(info containers.Container) reconcile.Container {
	rc := reconcile.Container{
		ID:     info.ID,
		Labels: info.Labels,
		Image:  info.Image,
		State:  reconcile.TaskNone,
	}
	if s, ok := info.Labels[reconcile.LabelStartedAt]; ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			rc.StartedAt = t
		}
	}
	return rc
}

// taskStatus maps the task API's status onto the client's.
func taskStatus(s tasktypes.Status) containerd.ProcessStatus {
	switch s {
	case tasktypes.Status_CREATED:
		return containerd.Created
	case tasktypes.Status_RUNNING:
		return containerd.Running
	case tasktypes.Status_STOPPED:
		return containerd.Stopped
	case tasktypes.Status_PAUSED:
		return containerd.Paused
	case tasktypes.Status_PAUSING:
		return containerd.Pausing
	}
	return containerd.Unknown
}

// setTaskState records a task's state on rc.
func setTaskState(rc *reconcile.Container, pid uint32, status containerd.ProcessStatus, exitCode uint32, exitedAt time.Time) {
	rc.Pid = pid
	switch status {
	case containerd.Created:
		rc.State = reconcile.TaskCreated
	case containerd.Running, containerd.Pausing, containerd.Paused:
		rc.State = reconcile.TaskRunning
	case containerd.Stopped:
		rc.State = reconcile.TaskExited
		rc.ExitCode = int32(exitCode)
		rc.FinishedAt = exitedAt
	default:
		rc.State = reconcile.TaskUnknown
	}
}

// describe reads one container's record and task. Errors are containerd's,
// unclassified.
func (c *Containerd) describe(ctx context.Context, ctr containerd.Container) (reconcile.Container, error) {
	info, err := ctr.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return reconcile.Container{}, err
	}
	rc := fromRecord(info)
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return rc, nil
	}
	if err != nil {
		return reconcile.Container{}, err
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		// The task went away between loading and asking.
		return rc, nil
	}
	if err != nil {
		return reconcile.Container{}, err
	}
	setTaskState(&rc, task.Pid(), st.Status, st.ExitStatus, st.ExitTime)
	return rc, nil
}
