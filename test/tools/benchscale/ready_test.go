package main

import (
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestReadyWatch(t *testing.T) {
	var w readyWatch
	at := time.Date(2026, 12, 7, 19, 16, 42, 0, time.UTC)
	st := func(hash string, ready int32) *api.RolloutStatus {
		return &api.RolloutStatus{TemplateHash: hash, Ready: ready, Updated: 10, Total: 10}
	}
	steps := []struct {
		ro   *api.RolloutStatus
		down bool
	}{
		{st("old", 10), false}, // the previous rollout's status
		{st("new", 0), false},  // another template: starts afresh
		{st("new", 3), false},
		{st("new", 3), false},
		{st("new", 1), true},
		{nil, false},
		{st("new", 7), false},
		{st("new", 6), true},
		{st("new", 10), false},
	}
	for i, s := range steps {
		if _, down := w.see(s.ro, at.Add(time.Duration(i)*time.Second)); down != s.down {
			t.Fatalf("step %d (%+v): decrease %v, want %v", i, s.ro, down, s.down)
		}
	}
	if len(w.drops) != 2 || w.lost() != 3 {
		t.Fatalf("drops %+v, lost %d; want 2 drops, 3 pods", w.drops, w.lost())
	}
	if d := w.drops[0]; d.From != 3 || d.To != 1 || !d.At.Equal(at.Add(4*time.Second)) {
		t.Fatalf("first drop %+v", d)
	}
	if got, want := w.summary(), "2 decrease(s), 3 pod(s) in all; the largest at 19:16:46.000 Ready 3 → 1 (10/10 updated, 0 unavailable)"; got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
}

// The lines of two rollouts in a row (the DaemonSet created at v1, then
// updated to v2) must not read as one rollout: at 10,000 nodes the
// creation's last line (7,951 Ready) and the update's first (1,426 Ready)
// came 6 s apart under the same heading and read as Ready going down.
func TestProgressLinesNameTheRollout(t *testing.T) {
	at := time.Date(2026, 12, 7, 21, 48, 21, 0, time.UTC)
	v1 := &api.RolloutStatus{TemplateHash: "h1", Revision: 1, Updated: 10000, Total: 10000, Ready: 7951, Unavailable: 2049}
	v1done := &api.RolloutStatus{TemplateHash: "h1", Revision: 1, Updated: 10000, Total: 10000, Ready: 10000, Phase: api.RolloutComplete}
	v2 := &api.RolloutStatus{TemplateHash: "h2", Revision: 2, Updated: 10000, Total: 10000, Ready: 1426, Unavailable: 8574}

	creating := progressLine(at, "fleet", "registry.local/fleet:v1", v1, true)
	updating := progressLine(at.Add(6*time.Second), "fleet", "registry.local/fleet:v2", v2, true)
	for _, c := range []struct{ line, want string }{
		{creating, "registry.local/fleet:v1"}, {creating, "revision 1"}, {creating, "7951 ready"},
		{updating, "registry.local/fleet:v2"}, {updating, "revision 2"}, {updating, "1426 ready"},
	} {
		if !strings.Contains(c.line, c.want) {
			t.Errorf("line %q does not say %q", c.line, c.want)
		}
	}
	// Before the controller's first pass over v2 the hub still shows v1's
	// finished rollout: the line must not present its counts as v2's.
	stale := progressLine(at.Add(time.Second), "fleet", "registry.local/fleet:v2", v1done, false)
	for _, want := range []string{"registry.local/fleet:v2", "not planned yet", "revision 1"} {
		if !strings.Contains(stale, want) {
			t.Errorf("line %q, of the previous template's status, does not say %q", stale, want)
		}
	}
	if strings.Contains(stale, "revision 2") {
		t.Errorf("line %q gives the previous template's status as revision 2's", stale)
	}
}
