package printer

import (
	"fmt"
	"strconv"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// podSummary is what kubectl shows of a pod in the READY, STATUS and
// RESTARTS columns.
type podSummary struct {
	ready, total int
	status       string
	restarts     int
	lastRestart  time.Time
}

// summarizePod derives the pod's columns with kubectl's printPod logic. The
// phase is the starting point and a pod-level reason (NodeLost, Evicted)
// replaces it. Then each container with a waiting reason, a terminated
// reason, or a bare exit (Signal:N, ExitCode:N) replaces it in turn, the
// first container in the spec having the last word, exactly as kubectl
// walks them. Only ready, running containers count as ready. A "Completed"
// status while another container still runs is shown as Running (or
// NotReady when the pod is not Ready), as kubectl does.
func summarizePod(p *api.Pod) podSummary {
	s := podSummary{total: len(p.Spec.Containers), status: string(p.Status.Phase)}
	if p.Status.Reason != "" {
		s.status = p.Status.Reason
	}
	hasRunning := false
	statuses := p.Status.ContainerStatuses
	for i := len(statuses) - 1; i >= 0; i-- {
		cs := statuses[i]
		s.restarts += int(cs.RestartCount)
		if t := cs.LastState.Terminated; t != nil && t.FinishedAt.After(s.lastRestart) {
			s.lastRestart = t.FinishedAt.Time
		}
		switch w, t := cs.State.Waiting, cs.State.Terminated; {
		case w != nil && w.Reason != "":
			s.status = w.Reason
		case t != nil && t.Reason != "":
			s.status = t.Reason
		case t != nil && t.Signal != 0:
			s.status = fmt.Sprintf("Signal:%d", t.Signal)
		case t != nil:
			s.status = fmt.Sprintf("ExitCode:%d", t.ExitCode)
		case cs.Ready && cs.State.Running != nil:
			hasRunning = true
			s.ready++
		}
	}
	if s.status == "Completed" && hasRunning {
		if p.IsReady() {
			s.status = string(api.PodRunning)
		} else {
			s.status = "NotReady"
		}
	}
	// Terminating (a pending deletion) has no field in Flotilla's types yet.
	return s
}

// restartsColumn is kubectl ≥1.28's RESTARTS cell: "5 (3m ago)", or just
// the count when there were none or the last exit time is unknown.
func (s podSummary) restartsColumn(now time.Time) string {
	n := strconv.Itoa(s.restarts)
	if s.restarts == 0 || s.lastRestart.IsZero() {
		return n
	}
	return fmt.Sprintf("%s (%s ago)", n, age(now, api.NewTime(s.lastRestart)))
}
