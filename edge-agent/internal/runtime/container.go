package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// CFS period used for CPU limits, as the kubelet uses it.
const cfsPeriod = 100_000 // microseconds

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
	_, err = c.client.NewContainer(ctx, spec.ID,
		containerd.WithContainerLabels(spec.Labels),
		containerd.WithImage(img),
		containerd.WithSnapshotter(c.opts.Snapshotter),
		containerd.WithNewSnapshot(spec.ID, img),
		containerd.WithNewSpec(specOpts...),
	)
	if err != nil {
		// The snapshot was taken under NewContainer's lease, which is gone
		// now; remove it at once so that a retry can take it again.
		if !errors.Is(classify(err), reconcile.ErrAlreadyExists) {
			if rerr := c.client.SnapshotService(c.opts.Snapshotter).Remove(ctx, spec.ID); rerr != nil && !errdefs.IsNotFound(rerr) {
				c.log.Warn("remove snapshot after failed create", "id", spec.ID, "err", rerr)
			}
		}
		return fmt.Errorf("create container %s: %w", spec.ID, classify(err))
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
	if spec.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(spec.WorkingDir))
	}
	if spec.HostNetwork {
		opts = append(opts,
			oci.WithHostNamespace(specs.NetworkNamespace),
			oci.WithHostHostsFile,
			oci.WithHostResolvconf)
		if h, err := os.Hostname(); err == nil {
			opts = append(opts, oci.WithHostname(h))
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
	return opts, nil
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
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
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
// A container removed while listing is left out.
func (c *Containerd) List(ctx context.Context) ([]reconcile.Container, error) {
	ctx = c.ns(ctx)
	ctrs, err := c.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", classify(err))
	}
	out := make([]reconcile.Container, 0, len(ctrs))
	for _, ctr := range ctrs {
		rc, err := c.describe(ctx, ctr)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list containers: %s: %w", ctr.ID(), classify(err))
		}
		out = append(out, rc)
	}
	return out, nil
}

// describe reads one container's record and task. Errors are containerd's,
// unclassified.
func (c *Containerd) describe(ctx context.Context, ctr containerd.Container) (reconcile.Container, error) {
	info, err := ctr.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return reconcile.Container{}, err
	}
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
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return rc, nil
	}
	if err != nil {
		return reconcile.Container{}, err
	}
	rc.Pid = task.Pid()
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		// The task went away between loading and asking.
		rc.Pid = 0
		return rc, nil
	}
	if err != nil {
		return reconcile.Container{}, err
	}
	switch st.Status {
	case containerd.Created:
		rc.State = reconcile.TaskCreated
	case containerd.Running, containerd.Pausing, containerd.Paused:
		rc.State = reconcile.TaskRunning
	case containerd.Stopped:
		rc.State = reconcile.TaskExited
		rc.ExitCode = int32(st.ExitStatus)
		rc.FinishedAt = st.ExitTime
	default:
		rc.State = reconcile.TaskUnknown
	}
	return rc, nil
}
