// Package sim runs simulated edge agents for the fleet simulator
// (test/tools/fleetsim): the real agent code (link, outbox, snapshot handling,
// reconciler, probes, status and metrics reporting) with its state kept in
// memory, a simulated container runtime in place of containerd and
// synthetic node metrics in place of gopsutil. Everything the hub sees
// from a simulated agent went through the same code as on a board; only
// what the containers do is made up.
package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/metrics"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// RuntimeOptions shape what simulated containers do.
type RuntimeOptions struct {
	// StartDelay is how long starting a container takes.
	StartDelay time.Duration
	// FailureRate is the probability (0 to 1) that a started container
	// crashes at once with exit code 1, as a bad image would.
	FailureRate float64
	// ReadinessDelay is how long after starting a container its exec
	// probes (readiness, liveness, startup) begin to succeed; before, they
	// fail with exit code 1. Zero: they succeed at once.
	ReadinessDelay time.Duration
	// MemoryBytes is each running container's reported working set
	// (default 16 MiB).
	MemoryBytes uint64
	// OnEvent, if set, is told what happens to containers (for the
	// simulator's own timing). It is called with the runtime's lock held:
	// it must be quick and must not call back into the runtime.
	OnEvent func(Event)
}

// EventKind is what happened to a simulated container.
type EventKind int

// Event kinds.
const (
	// Created: the reconciler created the container.
	Created EventKind = iota
	// Started: its task runs.
	Started
	// Ready: an exec probe first succeeded since it started.
	Ready
	// Exited: it stopped or crashed.
	Exited
)

// Event is one thing that happened to a simulated container.
type Event struct {
	Kind        EventKind
	ContainerID string
	// Revision is the snapshot revision the container was created for.
	Revision uint64
	Image    string
	At       time.Time
}

// Runtime is a simulated container runtime. It satisfies agent.Runtime
// through the edge agent's reconciler, probe and metrics interfaces; its
// methods are safe for concurrent use.
type Runtime struct {
	opts RuntimeOptions

	mu         sync.Mutex
	containers map[string]*reconcile.Container
	ready      map[string]bool // container ID → a probe passed since its start
	exits      chan reconcile.Exit
	rnd        *rand.Rand
}

// NewRuntime returns an empty simulated runtime.
func NewRuntime(opts RuntimeOptions) *Runtime {
	if opts.MemoryBytes == 0 {
		opts.MemoryBytes = 16 << 20
	}
	return &Runtime{
		opts:       opts,
		containers: map[string]*reconcile.Container{},
		ready:      map[string]bool{},
		// Exits only wake the reconciler early; its resync catches one
		// dropped when the buffer is full.
		exits: make(chan reconcile.Exit, 4),
		rnd:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// List returns every container with a copy of its labels.
func (r *Runtime) List(ctx context.Context) ([]reconcile.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]reconcile.Container, 0, len(r.containers))
	for _, c := range r.containers {
		cp := *c
		cp.Labels = make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			cp.Labels[k] = v
		}
		out = append(out, cp)
	}
	return out, nil
}

// EnsureImage pretends every image is present: its digest is the hash of
// its reference.
func (r *Runtime) EnsureImage(ctx context.Context, ref string, policy api.PullPolicy) (string, error) {
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Create records a container that is not yet running.
func (r *Runtime) Create(ctx context.Context, spec reconcile.ContainerSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.containers[spec.ID]; ok {
		return fmt.Errorf("create %s: %w", spec.ID, reconcile.ErrAlreadyExists)
	}
	labels := make(map[string]string, len(spec.Labels))
	for k, v := range spec.Labels {
		labels[k] = v
	}
	c := &reconcile.Container{ID: spec.ID, Labels: labels, Image: spec.Image, State: reconcile.TaskNone}
	r.containers[spec.ID] = c
	r.emit(Created, c, time.Now())
	return nil
}

// CreateNextRun creates id like from, with labels.
func (r *Runtime) CreateNextRun(ctx context.Context, from, id string, labels map[string]string, shimGroup string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, ok := r.containers[from]
	if !ok {
		return fmt.Errorf("create %s from %s: %w", id, from, reconcile.ErrNotFound)
	}
	if _, ok := r.containers[id]; ok {
		return fmt.Errorf("create %s: %w", id, reconcile.ErrAlreadyExists)
	}
	copied := make(map[string]string, len(labels))
	for k, v := range labels {
		copied[k] = v
	}
	c := &reconcile.Container{ID: id, Labels: copied, Image: old.Image, State: reconcile.TaskNone}
	r.containers[id] = c
	r.emit(Created, c, time.Now())
	return nil
}

// emit tells OnEvent; called with r.mu held, it must only read c.
func (r *Runtime) emit(kind EventKind, c *reconcile.Container, at time.Time) {
	if r.opts.OnEvent != nil {
		r.opts.OnEvent(Event{Kind: kind, ContainerID: c.ID, Revision: revisionOf(*c), Image: c.Image, At: at})
	}
}

// Start takes StartDelay, then runs the container, which crashes at once
// with probability FailureRate.
func (r *Runtime) Start(ctx context.Context, id, logPath string) error {
	if d := r.opts.StartDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("start %s: %w", id, reconcile.ErrNotFound)
	}
	now := time.Now()
	c.State, c.StartedAt, c.ExitCode, c.FinishedAt, c.Pid = reconcile.TaskRunning, now, 0, time.Time{}, 1
	c.Labels[reconcile.LabelStartedAt] = now.UTC().Format(time.RFC3339Nano)
	delete(r.ready, id)
	crash := r.opts.FailureRate > 0 && r.rnd.Float64() < r.opts.FailureRate
	r.emit(Started, c, now)
	r.mu.Unlock()
	if crash {
		r.Exit(id, 1)
	}
	return nil
}

// Stop ends a running container at once (SIGTERM is always obeyed).
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok && c.State == reconcile.TaskRunning {
		c.State, c.ExitCode, c.FinishedAt = reconcile.TaskExited, 143, time.Now()
		r.emit(Exited, c, c.FinishedAt)
	}
	return nil
}

// Remove forgets a container.
func (r *Runtime) Remove(ctx context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.containers, id)
	delete(r.ready, id)
	return nil
}

// Exits delivers the exits that Exit causes. The channel is shared by
// every caller and never closed; a simulated runtime does not restart.
func (r *Runtime) Exits(ctx context.Context) <-chan reconcile.Exit { return r.exits }

// Exit makes a running container exit with code, as a crash would, and
// reports whether it was running.
func (r *Runtime) Exit(id string, code int32) bool {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok || c.State != reconcile.TaskRunning {
		r.mu.Unlock()
		return false
	}
	now := time.Now()
	c.State, c.ExitCode, c.FinishedAt = reconcile.TaskExited, code, now
	r.emit(Exited, c, now)
	r.mu.Unlock()
	select {
	case r.exits <- reconcile.Exit{ContainerID: id, ExitCode: code, ExitedAt: now}:
	default:
	}
	return true
}

// CrashAll makes every running container exit with code and returns how
// many did.
func (r *Runtime) CrashAll(code int32) int {
	r.mu.Lock()
	var ids []string
	for id, c := range r.containers {
		if c.State == reconcile.TaskRunning {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	n := 0
	for _, id := range ids {
		if r.Exit(id, code) {
			n++
		}
	}
	return n
}

// Running counts the running containers.
func (r *Runtime) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.containers {
		if c.State == reconcile.TaskRunning {
			n++
		}
	}
	return n
}

// IDs lists the containers' IDs.
func (r *Runtime) IDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.containers))
	for id := range r.containers {
		out = append(out, id)
	}
	return out
}

// Exec answers probes: exit code 0 once the container has run for
// ReadinessDelay, 1 before, and an error for a container not running.
func (r *Runtime) Exec(ctx context.Context, containerID string, argv []string, timeout time.Duration) (int, []byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[containerID]
	if !ok || c.State != reconcile.TaskRunning {
		return 0, nil, fmt.Errorf("exec in %s: %w", containerID, reconcile.ErrNotFound)
	}
	now := time.Now()
	if now.Sub(c.StartedAt) < r.opts.ReadinessDelay {
		return 1, []byte("simulated: not ready yet"), nil
	}
	if !r.ready[containerID] {
		r.ready[containerID] = true
		r.emit(Ready, c, now)
	}
	return 0, nil, nil
}

// ContainerStats reports synthetic usage for the running containers: a
// steady 10 millicores and MemoryBytes each.
func (r *Runtime) ContainerStats(ctx context.Context) ([]metrics.ContainerStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	var out []metrics.ContainerStats
	for id, c := range r.containers {
		if c.State != reconcile.TaskRunning {
			continue
		}
		cpu := uint64(now.Sub(c.StartedAt).Nanoseconds() / 100) // 0.01 of a core
		out = append(out, metrics.ContainerStats{
			ID:                    id,
			PodUID:                c.Labels[reconcile.LabelPodUID],
			PodName:               c.Labels[reconcile.LabelPodName],
			PodNamespace:          c.Labels[reconcile.LabelPodNamespace],
			Container:             c.Labels[reconcile.LabelContainer],
			CPUUsageNanos:         cpu,
			MemoryUsageBytes:      r.opts.MemoryBytes + r.opts.MemoryBytes/4,
			MemoryWorkingSetBytes: r.opts.MemoryBytes,
			Time:                  now,
		})
	}
	return out, nil
}

// Version names the simulated runtime; the agent reports it as
// containerd://<version>.
func (r *Runtime) Version(ctx context.Context) (string, error) { return "fleetsim", nil }

// Close does nothing.
func (r *Runtime) Close() error { return nil }

// revisionOf reads a container's snapshot revision label.
func revisionOf(c reconcile.Container) uint64 {
	n, _ := strconv.ParseUint(c.Labels[reconcile.LabelRevision], 10, 64)
	return n
}
