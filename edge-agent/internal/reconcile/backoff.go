package reconcile

import "time"

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
