package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/defaults"
	"github.com/containerd/containerd/errdefs"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

const (
	// MaxExecOutput bounds the combined stdout and stderr Exec keeps, as
	// the kubelet bounds an exec probe's output; the rest is discarded.
	MaxExecOutput = 10 << 10
	// execIODrain bounds the wait, after the exec'd process exits, for
	// output still in flight. A background child that inherited the
	// process's stdout would otherwise hold the wait open forever.
	execIODrain = time.Second
)

// Exec runs argv in the container's running task, as a probe or
// `kubectl exec` would: with the environment, working directory and user of
// the container's own process. It returns the process's exit code and its
// combined stdout and stderr (the first MaxExecOutput bytes).
//
// The process is killed if it runs longer than timeout (zero or less: only
// ctx bounds it); Exec then returns what it printed so far and an error
// wrapping context.DeadlineExceeded. If ctx ends first, the process is
// killed too and the error wraps ctx.Err(). Either way, and on success, the
// exec'd process is deleted from the task before Exec returns. A container
// that does not exist or has no running task gives an error wrapping
// reconcile.ErrNotFound.
//
// The exits of exec'd processes are not reported by Exits.
func (c *Containerd) Exec(ctx context.Context, containerID string, argv []string, timeout time.Duration) (int, []byte, error) {
	if len(argv) == 0 {
		return -1, nil, fmt.Errorf("exec in container %s: no command", containerID)
	}
	ctx = c.ns(ctx)
	task, ctr, err := c.runningTask(ctx, containerID)
	if err != nil {
		return -1, nil, fmt.Errorf("exec %q in container %s: %w", argv, containerID, err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return -1, nil, fmt.Errorf("exec %q in container %s: read spec: %w", argv, containerID, classify(err))
	}
	if spec.Process == nil {
		return -1, nil, fmt.Errorf("exec %q in container %s: spec has no process", argv, containerID)
	}
	pspec := *spec.Process
	pspec.Args = argv
	pspec.Terminal = false
	pspec.ConsoleSize = nil

	execID, err := newExecID()
	if err != nil {
		return -1, nil, fmt.Errorf("exec %q in container %s: %w", argv, containerID, err)
	}
	fifoDir := c.fifoDir
	if fifoDir == "" {
		fifoDir = defaults.DefaultFIFODir
	}
	out := &boundedBuffer{max: MaxExecOutput}
	// Stdout and stderr go through FIFOs in a fresh directory under
	// fifoDir, which deleting the process removes.
	// Creating and starting the process are not cut short by the caller's
	// deadline: a start the client gave up on may still happen in the
	// shim, leaving a process nobody kills. They get killWait; the
	// caller's deadline is honoured once the process runs, below.
	opctx, cancelOp := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer cancelOp()
	proc, err := task.Exec(opctx, execID, &pspec,
		cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(fifoDir)))
	if err != nil {
		return -1, nil, fmt.Errorf("exec %q in container %s: %w", argv, containerID, classify(err))
	}
	defer c.deleteExec(ctx, containerID, proc)

	// Waiting before starting cannot miss the exit. The wait outlives the
	// caller's cancellation, so that a killed process is seen to exit
	// before it is deleted; the deferred cancel ends it.
	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	exited, err := proc.Wait(wctx)
	if err != nil {
		return -1, nil, fmt.Errorf("exec %q in container %s: wait: %w", argv, containerID, classify(err))
	}
	if err := proc.Start(opctx); err != nil {
		return -1, nil, fmt.Errorf("exec %q in container %s: start: %w", argv, containerID, classify(err))
	}

	var expired <-chan time.Time
	if timeout > 0 {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case st := <-exited:
		code, _, err := st.Result()
		if err != nil {
			// The wait broke, not the process: make sure it is gone
			// before it is deleted.
			c.killExec(ctx, containerID, proc, exited)
			return -1, out.Bytes(), fmt.Errorf("exec %q in container %s: wait: %w", argv, containerID, classify(err))
		}
		drainIO(proc)
		return int(code), out.Bytes(), nil
	case <-expired:
		c.killExec(ctx, containerID, proc, exited)
		return -1, out.Bytes(), fmt.Errorf("exec %q in container %s: timed out after %s: %w",
			argv, containerID, timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		c.killExec(ctx, containerID, proc, exited)
		return -1, out.Bytes(), fmt.Errorf("exec %q in container %s: %w", argv, containerID, ctx.Err())
	}
}

// runningTask loads the container and its task, which must be running.
func (c *Containerd) runningTask(ctx context.Context, id string) (containerd.Task, containerd.Container, error) {
	ctr, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, nil, classify(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("load task: %w", classify(err))
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("task status: %w", classify(err))
	}
	if st.Status != containerd.Running {
		return nil, nil, fmt.Errorf("task is %s, not running: %w", st.Status, reconcile.ErrNotFound)
	}
	return task, ctr, nil
}

// killExec sends SIGKILL to an exec'd process and waits, bounded, for its
// exit, even if ctx has ended.
func (c *Containerd) killExec(ctx context.Context, containerID string, proc containerd.Process, exited <-chan containerd.ExitStatus) {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer cancel()
	if err := proc.Kill(kctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		c.log.Warn("kill exec process", "id", containerID, "exec", proc.ID(), "err", err)
	}
	select {
	case <-exited:
	case <-kctx.Done():
		c.log.Warn("exec process did not exit after SIGKILL", "id", containerID, "exec", proc.ID(), "wait", killWait)
	}
}

// deleteExec removes the exec'd process from the task, which also closes
// its IO and removes its FIFOs. It runs even if ctx has ended. Failing to
// delete does not fail the Exec (the process has finished by then); it is
// logged, and the IO is closed here instead.
func (c *Containerd) deleteExec(ctx context.Context, containerID string, proc containerd.Process) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer cancel()
	if _, err := proc.Delete(dctx); err != nil {
		if !errdefs.IsNotFound(err) {
			c.log.Warn("delete exec process", "id", containerID, "exec", proc.ID(), "err", err)
		}
		if pio := proc.IO(); pio != nil {
			pio.Cancel()
			pio.Close()
		}
	}
}

// drainIO waits, at most execIODrain, for the output copies of a process
// that has exited. Its goroutine ends when the copies do, which deleting
// the process (always deferred by Exec) forces.
func drainIO(proc containerd.Process) {
	pio := proc.IO()
	if pio == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		pio.Wait()
		close(done)
	}()
	timer := time.NewTimer(execIODrain)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
}

// newExecID returns a process ID unique within the task. It differs from
// every container ID, which is how Exits tells exec'd processes apart.
func newExecID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("exec id: %w", err)
	}
	return "exec-" + hex.EncodeToString(b), nil
}

// boundedBuffer keeps the first max bytes written to it and discards the
// rest, without ever failing a write, so the process is never blocked on a
// full pipe. Stdout and stderr are copied into it concurrently.
type boundedBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns a copy of what has been kept so far.
func (b *boundedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}
