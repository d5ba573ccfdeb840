package main

import (
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
