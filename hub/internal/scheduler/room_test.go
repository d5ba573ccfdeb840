package scheduler

import "testing"

// TestReserveCountsWhatPlaceWould: Reserve finds room for as many pods as
// Place places, says why the rest fit nowhere in Place's words, and keeps
// the room it took, so that a second ask sees it gone.
func TestReserveCountsWhatPlaceWould(t *testing.T) {
	pod := Pod{Requests: Resources{MilliCPU: 800, Memory: 64 << 20, Pods: 1}}
	fleet := func() []Node { return []Node{n("a"), n("b", busy(1500)), n("c", notReady), n("d", cordoned)} }
	placements, reason := Place(pod, fleet(), 4)
	placed := 0
	for _, p := range placements {
		if p != "" {
			placed++
		}
	}
	nodes := fleet()
	got, why := Reserve(pod, nodes, 4)
	if got != placed || why != reason {
		t.Fatalf("Reserve %d (%q), Place %d (%q)", got, why, placed, reason)
	}
	if nodes[0].Requested.MilliCPU != 1600 || nodes[0].Requested.Pods != 2 {
		t.Errorf("the room taken is not kept: %+v", nodes[0].Requested)
	}
	if got, why := Reserve(pod, nodes, 1); got != 0 || why != "0/4 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable, 2 Insufficient cpu." {
		t.Errorf("a second ask: %d (%q)", got, why)
	}
	if got, why := Reserve(Pod{}, []Node{n("a", unknown)}, 50); got != 50 || why != "" {
		t.Errorf("no limits: %d (%q)", got, why)
	}
}
