package runtime

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/cio"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// BenchmarkRestartPhases restarts a crashed container the way the
// reconciler does (Start: delete the exited task, new task, start, record
// the start time) and reports how long each phase takes, to show where a
// restart's time goes:
//
//	sudo go test -run '^$' -bench RestartPhases -benchtime 20x ./edge-agent/internal/runtime/
func BenchmarkRestartPhases(b *testing.B) {
	ctx := context.Background()
	rt, err := New(ctx, Options{Socket: env.ctd.Socket, Namespace: testNamespace, InsecureRegistries: []string{env.registry.Addr}})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.EnsureImage(ctx, env.busybox, PullIfNotPresent); err != nil {
		b.Fatal(err)
	}
	id := uniqueID("restart-bench")
	if err := rt.Create(ctx, reconcile.ContainerSpec{ID: id, Image: env.busybox, Labels: map[string]string{reconcile.LabelPodUID: "uid-" + id},
		Command: []string{"sleep", "1000"}, HostNetwork: true}); err != nil {
		b.Fatal(err)
	}
	defer rt.Remove(context.Background(), id)
	logPath := filepath.Join(b.TempDir(), id+".log")
	if err := rt.Start(ctx, id, logPath); err != nil {
		b.Fatal(err)
	}
	nctx := rt.ns(ctx)
	ctr, err := rt.client.LoadContainer(nctx, id)
	if err != nil {
		b.Fatal(err)
	}
	var del, create, start, label time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
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
		if _, err := task.Delete(nctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		nt, err := ctr.NewTask(nctx, cio.LogFile(logPath))
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := nt.Start(nctx); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		if _, err := ctr.SetLabels(nctx, map[string]string{reconcile.LabelStartedAt: t3.UTC().Format(time.RFC3339Nano)}); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		del += t1.Sub(t0)
		create += t2.Sub(t1)
		start += t3.Sub(t2)
		label += t4.Sub(t3)
	}
	n := float64(b.N)
	b.ReportMetric(float64(del.Milliseconds())/n, "ms-delete")
	b.ReportMetric(float64(create.Milliseconds())/n, "ms-newtask")
	b.ReportMetric(float64(start.Milliseconds())/n, "ms-start")
	b.ReportMetric(float64(label.Milliseconds())/n, "ms-label")
}
