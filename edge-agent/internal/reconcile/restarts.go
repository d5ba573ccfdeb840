package reconcile

import (
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Restart back-off, as kubelet does it: the first restart after a crash is
// immediate, the next waits 10 s, then the wait doubles up to 5 minutes. A
// container that ran cleanly for 10 minutes starts over.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	backoffReset   = 10 * time.Minute
)

// RestartRecord is what the agent remembers about one container across its
// own restarts, so that a crash-looping container does not get a fresh quick
// restart whenever the agent restarts.
type RestartRecord struct {
	// Restarts counts restarts of this container (the RESTARTS column).
	Restarts int32 `json:"restarts"`
	// Backoffs counts restarts since the container last ran cleanly for
	// backoffReset; it sets the next delay.
	Backoffs int `json:"backoffs"`
	// NextRestart is the earliest time of the next restart.
	NextRestart time.Time `json:"nextRestart"`
	// Last is the container's last termination, for lastTerminationState.
	Last *Termination `json:"last,omitempty"`
}

// Termination is one finished run of a container.
type Termination struct {
	ExitCode   int32     `json:"exitCode"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// backoffDelay is the wait before restart number n since the last reset
// (n = 0 is the first restart after a crash).
func backoffDelay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := backoffInitial
	for i := 1; i < n; i++ {
		d *= 2
		if d >= backoffMax {
			return backoffMax
		}
	}
	return d
}

// recordExit updates rec for a run that ended, and returns when the next
// restart may happen.
func (rec *RestartRecord) recordExit(t Termination) time.Time {
	if !t.StartedAt.IsZero() && t.FinishedAt.Sub(t.StartedAt) >= backoffReset {
		rec.Backoffs = 0
	}
	rec.Last = &t
	rec.NextRestart = t.FinishedAt.Add(backoffDelay(rec.Backoffs))
	return rec.NextRestart
}

// counted is rec with one more restart counted: a restart is counted
// before it is made.
func (rec RestartRecord) counted() RestartRecord {
	rec.Restarts++
	rec.Backoffs++
	return rec
}

// uncounted takes back the restart counted for a start that found its
// task running: that start was neither a restart nor a failure.
func (rec RestartRecord) uncounted() RestartRecord {
	rec.Restarts--
	rec.Backoffs--
	return rec
}

// shouldRestart applies the pod's restartPolicy to an exit code.
func shouldRestart(policy api.RestartPolicy, exitCode int32) bool {
	switch policy {
	case api.RestartNever:
		return false
	case api.RestartOnFailure:
		return exitCode != 0
	}
	return true
}

// restartTracker makes the one decision about an exited run of a
// container: whether it restarts, and when. As Nomad's RestartTracker
// does for a task, it holds what the decision reads (the pod's restart
// policy, the container's stored history, the back-off of a failed create
// or start), and decide is the only place the decision is made. It does
// no I/O: the caller reads what it holds, and acts on and saves what
// decide returns.
type restartTracker struct {
	policy  api.RestartPolicy
	history RestartRecord
	// retry is the end of the back-off of the container's failed create
	// or start (zero: none, or over).
	retry time.Time
}

// restartDecision is what becomes of one exited run.
type restartDecision struct {
	// restart: the policy restarts the container, not before at (the
	// restart back-off or the retry back-off, whichever ends later).
	restart bool
	at      time.Time
	// record is the container's history with this exit in it. newExit:
	// the stored history did not have it; record must be saved, and the
	// exit reported.
	record  RestartRecord
	newExit bool
}

// decide decides for run, which has exited, at now. An exit is known by
// its run's start time: the stored history's last termination is the
// same exit if it started at the same time. An exit without a finish
// time (its task vanished) finished now.
func (t restartTracker) decide(run Container, now time.Time) restartDecision {
	d := restartDecision{restart: shouldRestart(t.policy, run.ExitCode), record: t.history}
	if last := t.history.Last; last == nil || !last.StartedAt.Equal(run.StartedAt) {
		finished := run.FinishedAt
		if finished.IsZero() {
			finished = now
		}
		d.record.recordExit(Termination{ExitCode: run.ExitCode, StartedAt: run.StartedAt, FinishedAt: finished})
		d.newExit = true
	}
	if d.restart {
		d.at = latest(d.record.NextRestart, t.retry)
	}
	return d
}

// due reports whether the restart is to be made at now.
func (d restartDecision) due(now time.Time) bool {
	return d.restart && !d.at.After(now)
}
