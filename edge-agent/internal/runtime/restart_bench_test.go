package runtime

import (
	"context"
	"fmt"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/cio"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// BenchmarkRestartPhases restarts a crashed container and reports how
// long each phase takes, to show where a restart's time goes:
//
//	go test -run '^$' -bench RestartPhases -benchtime 20x ./edge-agent/internal/runtime/
//
// new-run is what the reconciler does: create the next run's container as
// a copy of the exited one (CreateNextRun) in the pod's shim group (its
// task joins the shim that the exited run keeps alive), start it, and only
// then remove the exited run (ms-delete-after, off the restart's path). in-place is what it did before: delete the
// exited task, then a new task (and a new shim) in the same container.
func BenchmarkRestartPhases(b *testing.B) {
	for _, mode := range []string{"new-run", "in-place"} {
		b.Run(mode, func(b *testing.B) { benchRestart(b, mode == "new-run") })
	}
}

func benchRestart(b *testing.B, newRun bool) {
	ctx := context.Background()
	rt, err := New(ctx, Options{Socket: env.ctd.Socket, Namespace: testNamespace, InsecureRegistries: []string{env.registry.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.EnsureImage(ctx, env.busybox, api.PullIfNotPresent); err != nil {
		b.Fatal(err)
	}
	base := uniqueID("restart-bench")
	spec := func(run int) reconcile.ContainerSpec {
		s := reconcile.ContainerSpec{ID: base, Image: env.busybox, Labels: map[string]string{reconcile.LabelPodUID: "uid-" + base},
			Command: []string{"sleep", "1000"}}
		if newRun {
			s.ID, s.ShimGroup = fmt.Sprintf("%s-%d", base, run), base
		}
		return s
	}
	logPath := filepath.Join(b.TempDir(), base+".log")
	if err := rt.Create(ctx, spec(0)); err != nil {
		b.Fatal(err)
	}
	current := spec(0).ID
	defer func() { rt.Remove(context.Background(), current) }()
	if err := rt.Start(ctx, current, logPath); err != nil {
		b.Fatal(err)
	}
	nctx := rt.ns(ctx)
	var create, del, newTask, start, label, after time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		b.StopTimer()
		ctr, err := rt.client.LoadContainer(nctx, current)
		if err != nil {
			b.Fatal(err)
		}
		task, err := ctr.Task(nctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		exited, err := task.Wait(nctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := task.Kill(nctx, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		<-exited
		b.StartTimer()
		t0 := time.Now()
		next := ctr
		if newRun {
			if err := rt.CreateNextRun(ctx, current, spec(i).ID, spec(i).Labels, base); err != nil {
				b.Fatal(err)
			}
			if next, err = rt.client.LoadContainer(nctx, spec(i).ID); err != nil {
				b.Fatal(err)
			}
		} else if _, err := task.Delete(nctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		nt, err := next.NewTask(nctx, cio.LogFile(logPath))
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := next.SetLabels(nctx, map[string]string{reconcile.LabelStartedAt: t2.UTC().Format(time.RFC3339Nano)}); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if err := nt.Start(nctx); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		if newRun {
			if err := rt.Remove(ctx, current); err != nil {
				b.Fatal(err)
			}
			current = spec(i).ID
		}
		t5 := time.Now()
		if newRun {
			create += t1.Sub(t0)
		} else {
			del += t1.Sub(t0)
		}
		newTask += t2.Sub(t1)
		label += t3.Sub(t2)
		start += t4.Sub(t3)
		after += t5.Sub(t4)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	if newRun {
		b.ReportMetric(ms(create), "ms-create")
		b.ReportMetric(ms(after), "ms-delete-after")
	} else {
		b.ReportMetric(ms(del), "ms-delete")
	}
	b.ReportMetric(ms(newTask), "ms-newtask")
	b.ReportMetric(ms(label), "ms-label")
	b.ReportMetric(ms(start), "ms-start")
	b.ReportMetric(ms(create+del+newTask+label+start), "ms-restart")
}
