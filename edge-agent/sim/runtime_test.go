package sim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

func TestRuntimeLifecycle(t *testing.T) {
	ctx := context.Background()
	var events []EventKind
	rt := NewRuntime(RuntimeOptions{StartDelay: 20 * time.Millisecond, ReadinessDelay: 50 * time.Millisecond,
		OnEvent: func(ev Event) { events = append(events, ev.Kind) }})
	spec := reconcile.ContainerSpec{ID: "c1", Image: "img:v1", Labels: map[string]string{reconcile.LabelRevision: "7"}}
	if err := rt.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := rt.Create(ctx, spec); !errors.Is(err, reconcile.ErrAlreadyExists) {
		t.Fatalf("second create: %v, want ErrAlreadyExists", err)
	}
	t0 := time.Now()
	if err := rt.Start(ctx, "c1", ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 20*time.Millisecond {
		t.Errorf("start took %s, want at least the start delay", d)
	}
	if code, _, err := rt.Exec(ctx, "c1", []string{"true"}, time.Second); err != nil || code != 1 {
		t.Errorf("probe before the readiness delay: code %d err %v, want 1", code, err)
	}
	time.Sleep(60 * time.Millisecond)
	if code, _, err := rt.Exec(ctx, "c1", []string{"true"}, time.Second); err != nil || code != 0 {
		t.Errorf("probe after the readiness delay: code %d err %v, want 0", code, err)
	}
	stats, _ := rt.ContainerStats(ctx)
	if len(stats) != 1 || stats[0].MemoryWorkingSetBytes == 0 {
		t.Errorf("stats %+v, want one running container", stats)
	}
	if !rt.Exit("c1", 2) {
		t.Fatal("exit of a running container reported false")
	}
	select {
	case ex := <-rt.Exits(ctx):
		if ex.ContainerID != "c1" || ex.ExitCode != 2 {
			t.Errorf("exit %+v", ex)
		}
	default:
		t.Error("no exit delivered")
	}
	cs, _ := rt.List(ctx)
	if len(cs) != 1 || cs[0].State != reconcile.TaskExited || cs[0].ExitCode != 2 {
		t.Errorf("list after exit: %+v", cs)
	}
	want := []EventKind{Created, Started, Ready, Exited}
	if len(events) != len(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Fatalf("events %v, want %v", events, want)
		}
	}
	if err := rt.Remove(ctx, "c1"); err != nil || rt.Running() != 0 || len(rt.IDs()) != 0 {
		t.Errorf("remove: %v, %d running, ids %v", err, rt.Running(), rt.IDs())
	}
}

func TestRuntimeFailureRate(t *testing.T) {
	ctx := context.Background()
	rt := NewRuntime(RuntimeOptions{FailureRate: 1})
	_ = rt.Create(ctx, reconcile.ContainerSpec{ID: "c", Labels: map[string]string{}})
	if err := rt.Start(ctx, "c", ""); err != nil {
		t.Fatal(err)
	}
	if rt.Running() != 0 {
		t.Error("a container with failure rate 1 kept running")
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	slow := NewRuntime(RuntimeOptions{StartDelay: time.Hour})
	_ = slow.Create(ctx, reconcile.ContainerSpec{ID: "c", Labels: map[string]string{}})
	if err := slow.Start(ctx2, "c", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("start with a cancelled context: %v", err)
	}
}
