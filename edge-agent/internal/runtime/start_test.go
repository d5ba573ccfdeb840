package runtime

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// TestStartTimeOnlyOnceATaskExists: the start-time label is how a new
// agent tells that a container has run (a container with one and no task
// is a run whose task vanished, and counts as a restart). A start whose
// task cannot be created (here runc create fails: the command does not
// exist) must leave no label, as an agent killed during runc create must
// not: else the next pass, or the next agent, counts a restart of a
// container that never ran. (Writing the label alongside the task's
// creation, as the reverted c283aa6 did, fails this test.)
func TestStartTimeOnlyOnceATaskExists(t *testing.T) {
	rt := newRuntime(t)
	ctx := testCtx(t, time.Minute)
	ensure(t, rt, env.busybox)
	id := uniqueID("never-ran")
	spec := reconcile.ContainerSpec{
		ID:      id,
		Image:   env.busybox,
		Labels:  map[string]string{reconcile.LabelPodUID: "uid-never", reconcile.LabelContainer: "main"},
		Command: []string{"/no/such/command"},
	}
	if err := rt.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Remove(context.Background(), id); err != nil {
			t.Errorf("Remove %s: %v", id, err)
		}
	})
	err := rt.Start(ctx, id, filepath.Join(t.TempDir(), "logs", "0.log"))
	if err == nil {
		t.Fatal("Start of a command that does not exist succeeded")
	}
	t.Logf("Start: %v", err)
	c, err := find(ctx, rt, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.State == reconcile.TaskRunning || c.State == reconcile.TaskExited {
		t.Fatalf("state %s after a failed start", c.State)
	}
	if !c.StartedAt.IsZero() || c.Labels[reconcile.LabelStartedAt] != "" {
		t.Fatalf("a container whose task was never created has a start time (%s, label %q): it would count as restarted",
			c.StartedAt, c.Labels[reconcile.LabelStartedAt])
	}
}
