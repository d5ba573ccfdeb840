package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// killWait bounds the wait for a task to die after SIGKILL, and for an old
// task's deletion.
const killWait = 10 * time.Second

// Start starts a new task for the container with stdout and stderr appended
// to logPath, first deleting a previous task that has exited. Starting a
// container whose task is running returns an error wrapping
// reconcile.ErrAlreadyExists. The start time is recorded in the container's
// LabelStartedAt just before the task starts.
func (c *Containerd) Start(ctx context.Context, id, logPath string) error {
	ctx = c.ns(ctx)
	if !filepath.IsAbs(logPath) {
		return fmt.Errorf("start container %s: log path %q is not absolute", id, logPath)
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return fmt.Errorf("start container %s: log directory: %w", id, err)
	}
	ctr, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, classify(err))
	}
	if err := deleteOldTask(ctx, ctr); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	task, err := ctr.NewTask(ctx, cio.LogFile(logPath))
	if err != nil {
		return fmt.Errorf("start container %s: new task: %w", id, classify(err))
	}
	deleteTask := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
		defer cancel()
		if _, derr := task.Delete(dctx, containerd.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			c.log.Warn("delete task after failed start", "id", id, "err", derr)
		}
	}
	// The start time is recorded just before the start, not after it: an
	// agent killed in between would otherwise leave a running container
	// with no start time for good. One killed before the start leaves a
	// created task, which the next Start deletes, recording a new time.
	started := time.Now().UTC().Format(time.RFC3339Nano)
	if _, err := ctr.SetLabels(ctx, map[string]string{reconcile.LabelStartedAt: started}); err != nil {
		deleteTask()
		return fmt.Errorf("start container %s: record start time: %w", id, classify(err))
	}
	if err := task.Start(ctx); err != nil {
		deleteTask()
		return fmt.Errorf("start container %s: %w", id, classify(err))
	}
	return nil
}

// deleteOldTask deletes the container's task if it has exited (or was
// created and never started). A running task is an error wrapping
// reconcile.ErrAlreadyExists.
func deleteOldTask(ctx context.Context, ctr containerd.Container) error {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load task: %w", classify(err))
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("task status: %w", classify(err))
	}
	switch st.Status {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		return fmt.Errorf("task is %s: %w", st.Status, reconcile.ErrAlreadyExists)
	}
	dctx, cancel := context.WithTimeout(ctx, killWait)
	defer cancel()
	if _, err := task.Delete(dctx, killUnlessStopped(st.Status)...); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete %s task: %w", st.Status, classify(err))
	}
	return nil
}

// killUnlessStopped is the delete option for a task in state status: a
// task that has not stopped is killed first; killing one that has costs a
// runc invocation (kill --all) that can only fail.
func killUnlessStopped(status containerd.ProcessStatus) []containerd.ProcessDeleteOpts {
	if status == containerd.Stopped {
		return nil
	}
	return []containerd.ProcessDeleteOpts{containerd.WithProcessKill}
}

// Stop sends SIGTERM to the main process, waits up to grace, then sends
// SIGKILL and waits (bounded) for the exit before deleting the task. A
// container without a task, or whose task has exited, is not an error (an
// exited task is deleted too).
func (c *Containerd) Stop(ctx context.Context, id string, grace time.Duration) error {
	ctx = c.ns(ctx)
	ctr, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("stop container %s: %w", id, classify(err))
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("stop container %s: load task: %w", id, classify(err))
	}

	// Wait before signalling, so the exit cannot be missed.
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	exited, err := task.Wait(wctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("stop container %s: wait: %w", id, classify(err))
	}
	if err := c.stopTask(ctx, task, exited, grace); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer cancel()
	if _, err := task.Delete(dctx); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: delete task: %w", id, classify(err))
	}
	return nil
}

// stopTask signals TERM then, after grace, KILL, and returns once exited
// delivers.
func (c *Containerd) stopTask(ctx context.Context, task containerd.Task, exited <-chan containerd.ExitStatus, grace time.Duration) error {
	if grace > 0 {
		if err := signal(ctx, task, syscall.SIGTERM); err != nil {
			return err
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-exited:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for exit after SIGTERM: %w", ctx.Err())
		case <-timer.C:
			c.log.Debug("grace period over, killing", "id", task.ID(), "grace", grace)
		}
	}
	if err := signal(ctx, task, syscall.SIGKILL); err != nil {
		return err
	}
	timer := time.NewTimer(killWait)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for exit after SIGKILL: %w", ctx.Err())
	case <-timer.C:
		return fmt.Errorf("task did not exit within %s of SIGKILL", killWait)
	}
}

// signal sends sig to the task's main process; a process that has already
// finished is not an error.
func signal(ctx context.Context, task containerd.Task, sig syscall.Signal) error {
	err := task.Kill(ctx, sig)
	if err == nil || errdefs.IsNotFound(err) || errors.Is(err, errdefs.ErrFailedPrecondition) {
		return nil
	}
	return fmt.Errorf("send %s: %w", sig, classify(err))
}
