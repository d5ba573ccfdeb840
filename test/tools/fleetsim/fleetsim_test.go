package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/sim"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/scale"
)

// TestSmoke runs 200 simulated agents against a real hub (its own
// process, embedded broker): every node must become Ready in the hub's
// view, a DaemonSet must roll out to all of them at once and then be
// updated in waves of 25 %, with every agent ending on the new image and
// no old container left, and every node's metrics must reach the hub.
// It asserts outcomes only, never timings.
func TestSmoke(t *testing.T) {
	const nodes = 200
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	bins, err := scale.Build(ctx, filepath.Join(dir, "bin"), "github.com/flotilla-edge/flotilla/hub/cmd/hub")
	if err != nil {
		t.Fatal(err)
	}
	hub, err := scale.StartHub(ctx, scale.HubOptions{Bin: bins["hub"], DataDir: filepath.Join(dir, "hub"), LogPath: filepath.Join(dir, "hub.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := hub.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("hub log:\n%s", hub.Proc.Logs())
		}
	}()

	fleet := NewFleet(Config{
		Broker: hub.BrokerURL, Nodes: nodes, Prefix: "smoke-", Labels: map[string]string{"fleet": "smoke"},
		ConnectRate: 1000,
		Runtime:     sim.RuntimeOptions{StartDelay: 50 * time.Millisecond, ReadinessDelay: time.Second},
		// Fast metrics and heartbeats so the test sees both within seconds.
		MetricsInterval: 2 * time.Second, HeartbeatInterval: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	fctx, stopFleet := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = fleet.Run(fctx) }()
	defer func() {
		stopFleet()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("simulated agents did not stop within 30 s")
		}
	}()

	waitFor(ctx, t, "every node Ready", func() error {
		ns, err := hub.Nodes(ctx)
		if err != nil {
			return err
		}
		ready := 0
		for i := range ns {
			if ns[i].IsReady() && ns[i].Status.Online {
				ready++
			}
		}
		if ready != nodes {
			return fmt.Errorf("%d of %d nodes Ready", ready, nodes)
		}
		return nil
	})

	for _, step := range []struct{ image, maxUnavailable string }{
		{"registry.local/smoke:v1", "100%"},
		{"registry.local/smoke:v2", "25%"},
	} {
		if _, err := hub.CLI(ctx, scale.DaemonSetManifest("smoke", step.image, "fleet: smoke", step.maxUnavailable, 1), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(ctx, 40*time.Second)
		_, err := hub.WaitRollout(rctx, "default", "smoke", step.image, nodes, 200*time.Millisecond, nil)
		rcancel()
		if err != nil {
			t.Fatal(err)
		}
		// The hub's CLI agrees, and exits 0.
		if out, err := hub.CLI(ctx, "", "rollout", "status", "ds/smoke", "--watch=false"); err != nil {
			t.Fatalf("hub rollout status: %v\n%s", err, out)
		}
	}

	// The simulator's own account: every agent runs exactly the new
	// image, ready.
	st := fleet.Stats()
	if v2 := st.Images["registry.local/smoke:v2"]; v2.Ready < nodes {
		t.Errorf("simulator: %d of %d v2 containers became ready", v2.Ready, nodes)
	}
	if st.Running != nodes {
		t.Errorf("simulator: %d containers running, want %d (one per node)", st.Running, nodes)
	}
	pods, err := hub.Pods(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	readyPods := 0
	for i := range pods {
		if pods[i].IsReady() && pods[i].Spec.Containers[0].Image == "registry.local/smoke:v2" {
			readyPods++
		}
	}
	if readyPods != nodes {
		t.Errorf("hub: %d of %d pods Ready on v2", readyPods, nodes)
	}

	// Synthetic node metrics reach the hub for every node.
	waitFor(ctx, t, "metrics from every node", func() error {
		var list struct {
			Items []api.NodeMetrics `json:"items"`
		}
		if err := hub.GetJSON(ctx, "/apis/metrics.k8s.io/v1beta1/nodes", &list); err != nil {
			return err
		}
		if len(list.Items) != nodes {
			return fmt.Errorf("metrics for %d of %d nodes", len(list.Items), nodes)
		}
		return nil
	})
}

func waitFor(ctx context.Context, t *testing.T, what string, check func() error) {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		if last = check(); last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, last)
}
