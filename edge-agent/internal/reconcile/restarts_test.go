package reconcile

import (
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// TestRestartTrackerDecides is the restart decision on its own: policy,
// history, retry back-off and the exited run in; whether and when the
// container restarts, and the history with the exit, out.
func TestRestartTrackerDecides(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	started, finished := t0.Add(-time.Minute), t0.Add(-time.Second)
	exited := func(code int32) Container {
		return Container{State: TaskExited, ExitCode: code, StartedAt: started, FinishedAt: finished}
	}
	// earlier is the history of a container that crashed n times in a row.
	earlier := func(n int) RestartRecord {
		last := Termination{ExitCode: 1, StartedAt: started.Add(-time.Hour), FinishedAt: started.Add(-time.Hour + time.Second)}
		return RestartRecord{Restarts: int32(n), Backoffs: n, Last: &last, NextRestart: last.FinishedAt}
	}
	for _, tc := range []struct {
		name    string
		policy  api.RestartPolicy
		history RestartRecord
		retry   time.Time
		run     Container
		// want
		restart  bool
		at       time.Time
		newExit  bool
		backoffs int
		due      bool
	}{
		{name: "Always restarts a crash, at once the first time", policy: api.RestartAlways, run: exited(1),
			restart: true, at: finished, newExit: true, due: true},
		{name: "Always restarts a clean exit", policy: api.RestartAlways, run: exited(0),
			restart: true, at: finished, newExit: true, due: true},
		{name: "OnFailure restarts a crash", policy: api.RestartOnFailure, run: exited(2),
			restart: true, at: finished, newExit: true, due: true},
		{name: "OnFailure leaves a clean exit", policy: api.RestartOnFailure, run: exited(0),
			newExit: true},
		{name: "Never leaves a crash", policy: api.RestartNever, run: exited(1),
			newExit: true},
		{name: "the second crash in a row waits 10 s", policy: api.RestartAlways, history: earlier(1), run: exited(1),
			restart: true, at: finished.Add(10 * time.Second), newExit: true, backoffs: 1},
		{name: "the fourth waits 40 s", policy: api.RestartAlways, history: earlier(3), run: exited(1),
			restart: true, at: finished.Add(40 * time.Second), newExit: true, backoffs: 3},
		{name: "the wait stops growing at 5 minutes", policy: api.RestartAlways, history: earlier(30), run: exited(1),
			restart: true, at: finished.Add(backoffMax), newExit: true, backoffs: 30},
		{name: "a run of 10 minutes starts the back-off over", policy: api.RestartAlways, history: earlier(3),
			run:     Container{State: TaskExited, ExitCode: 1, StartedAt: finished.Add(-backoffReset), FinishedAt: finished},
			restart: true, at: finished, newExit: true, backoffs: 0, due: true},
		{name: "an exit already recorded is not new, and keeps its time", policy: api.RestartAlways,
			history: RestartRecord{Restarts: 2, Backoffs: 2, NextRestart: t0.Add(time.Minute),
				Last: &Termination{ExitCode: 1, StartedAt: started, FinishedAt: finished}},
			run: exited(1), restart: true, at: t0.Add(time.Minute), backoffs: 2},
		{name: "a failed create's back-off holds a due restart", policy: api.RestartAlways, retry: t0.Add(5 * time.Second), run: exited(1),
			restart: true, at: t0.Add(5 * time.Second), newExit: true},
		{name: "a retry back-off that is over does not", policy: api.RestartAlways, history: earlier(1), retry: finished, run: exited(1),
			restart: true, at: finished.Add(10 * time.Second), newExit: true, backoffs: 1},
		{name: "a task that vanished finished now", policy: api.RestartAlways, history: earlier(1),
			run:     Container{State: TaskExited, ExitCode: 137, StartedAt: started},
			restart: true, at: t0.Add(10 * time.Second), newExit: true, backoffs: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stored Termination
			if tc.history.Last != nil {
				stored = *tc.history.Last
			}
			tr := restartTracker{policy: tc.policy, history: tc.history, retry: tc.retry}
			d := tr.decide(tc.run, t0)
			if tc.history.Last != nil && *tc.history.Last != stored {
				t.Fatal("decide changed the stored history in place")
			}
			if d.restart != tc.restart || !d.at.Equal(tc.at) || d.newExit != tc.newExit || d.due(t0) != tc.due {
				t.Fatalf("decide = restart %v at %v, new exit %v, due %v; want %v at %v, %v, %v",
					d.restart, d.at, d.newExit, d.due(t0), tc.restart, tc.at, tc.newExit, tc.due)
			}
			if d.record.Backoffs != tc.backoffs || d.record.Restarts != tc.history.Restarts {
				t.Fatalf("record %+v: backoffs %d, want %d; restarts %d, want %d (decide counts no restart)",
					d.record, d.record.Backoffs, tc.backoffs, d.record.Restarts, tc.history.Restarts)
			}
			if d.newExit {
				last := d.record.Last
				if last == nil || last.ExitCode != tc.run.ExitCode || !last.StartedAt.Equal(tc.run.StartedAt) {
					t.Fatalf("the new exit is not the record's last termination: %+v", last)
				}
				if want := tc.run.FinishedAt; !want.IsZero() && !last.FinishedAt.Equal(want) || want.IsZero() && !last.FinishedAt.Equal(t0) {
					t.Fatalf("last termination finished %v", last.FinishedAt)
				}
			} else if d.record.Last != tc.history.Last {
				t.Fatalf("a known exit changed the record: %+v", d.record)
			}
		})
	}
}

// TestRestartCounting: a restart is counted before it is made, and taken
// back for a start that found its task running.
func TestRestartCounting(t *testing.T) {
	rec := RestartRecord{Restarts: 4, Backoffs: 2}
	c := rec.counted()
	if c.Restarts != 5 || c.Backoffs != 3 || rec.Restarts != 4 {
		t.Fatalf("counted %+v from %+v", c, rec)
	}
	if u := c.uncounted(); u != rec {
		t.Fatalf("uncounted %+v, want %+v", u, rec)
	}
}
