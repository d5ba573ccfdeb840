package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDrainOneNodeFleet: the real hub, agent and containerd. Draining the
// only node evicts its Deployment pod, which has nowhere to go: drain
// returns once the pod left the node, names it with the scheduler's
// reason, and the agent stops its container; uncordoning brings it back.
func TestDrainOneNodeFleet(t *testing.T) {
	h := startHub(t, hubOptions{})
	a := startAgent(t, h)
	h.applyYAML(deploymentYAML("solo", 1, 300))
	eventually(t, 60*time.Second, "the pod runs", func() error {
		if n := len(running(t, a.ns)); n != 1 {
			return fmt.Errorf("%d containers running", n)
		}
		return nil
	})

	start := time.Now()
	out, errOut, err := h.cli("", "drain", a.node, "--timeout", "2m")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("drain: %v (after %s)\nstdout: %s\nstderr: %s", err, took, out, errOut)
	}
	t.Logf("drain returned after %s", took)
	for _, want := range []string{"node/" + a.node + " cordoned", "evicting pod default/solo-", " evicted\n", "node/" + a.node + " drained\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("drain's output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "Warning: 1 evicted pod(s) have no node to go to:") ||
		!strings.Contains(errOut, "(deployment default/solo): Unschedulable: 0/1 nodes are available: 1 node(s) were unschedulable") {
		t.Errorf("drain should name the pod no node takes, and why:\n%s", errOut)
	}
	eventually(t, 30*time.Second, "the agent stops the evicted pod", func() error {
		if n := len(running(t, a.ns)); n != 0 {
			return fmt.Errorf("%d containers running", n)
		}
		return nil
	})
	if pods := h.pods(); len(pods) != 1 || pods[0].Spec.NodeName != "" {
		t.Fatalf("the replacement should wait unplaced: %+v", pods)
	}

	h.mustCLI("uncordon", a.node)
	eventually(t, 60*time.Second, "the replacement runs once the node is back", func() error {
		if n := len(running(t, a.ns)); n != 1 {
			return fmt.Errorf("%d containers running", n)
		}
		return nil
	})
}
