package printer

import (
	"fmt"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Progress is where a rollout stands, as `hub rollout status` shows it.
type Progress struct {
	// Resource is "daemon set" or "deployment"; Name the object's name.
	Resource, Name string
	Revision       int64
	Phase          api.RolloutPhase
	Message        string
	// Counts over the target nodes (DaemonSets) or replicas (Deployments).
	Updated, Ready, Unavailable, Failed, OfflinePending, Total int
	// PrePull is set when the rollout pre-pulls images; PrePulled counts
	// the targets that have them.
	PrePull     bool
	PrePulled   int
	Updating    []string
	FailedNodes []api.NodeReason
	// Waiting, when set, replaces the counts: the hub has not taken up the
	// change yet.
	Waiting string
}

// ProgressFromDaemonSet reads a DaemonSet's rollout status.
func ProgressFromDaemonSet(ds *api.DaemonSet) Progress {
	p := Progress{Resource: "daemon set", Name: ds.Name}
	p.PrePull = ds.Spec.Rollout != nil && ds.Spec.Rollout.PrePull
	fromRollout(&p, ds.Status.Rollout)
	return p
}

// ProgressFromDeployment reads a Deployment's rollout status.
func ProgressFromDeployment(d *api.Deployment) Progress {
	p := Progress{Resource: "deployment", Name: d.Name}
	fromRollout(&p, d.Status.Rollout)
	return p
}

func fromRollout(p *Progress, ro *api.RolloutStatus) {
	if ro == nil {
		p.Waiting = "waiting for the hub to take up the " + p.Resource
		return
	}
	p.Revision, p.Phase, p.Message = ro.Revision, ro.Phase, ro.Message
	p.Updated, p.Ready, p.Unavailable = int(ro.Updated), int(ro.Ready), int(ro.Unavailable)
	p.Failed, p.OfflinePending, p.Total = int(ro.Failed), int(ro.OfflinePending), int(ro.Total)
	p.PrePulled = int(ro.PrePulled)
	p.Updating, p.FailedNodes = ro.Updating, ro.FailedNodes
}

func (p Progress) title() string {
	s := fmt.Sprintf("%s %q", p.Resource, p.Name)
	if p.Revision > 0 {
		s += fmt.Sprintf(" revision %d", p.Revision)
	}
	return s
}

func (p Progress) counts() string {
	s := fmt.Sprintf("%d/%d updated, %d ready, %d unavailable, %d failed, %d offline-pending",
		p.Updated, p.Total, p.Ready, p.Unavailable, p.Failed, p.OfflinePending)
	if p.PrePull {
		s += fmt.Sprintf(", %d/%d pre-pulled", p.PrePulled, p.Total)
	}
	return s
}

// ProgressLine is the one-line form, for output that is not a terminal:
// the CLI prints it whenever it changes.
func ProgressLine(p Progress) string {
	if p.Waiting != "" {
		return p.title() + ": " + p.Waiting
	}
	s := fmt.Sprintf("%s: %s: %s", p.title(), p.Phase, p.counts())
	if len(p.Updating) > 0 {
		s += "; updating " + joinMax(p.Updating, 5)
	}
	return s
}

// ProgressBlock is the terminal form, redrawn in place: a bar with the
// counts, pre-pull progress, the nodes updating now, the failed nodes and
// the hub's message, each line at most width columns.
func ProgressBlock(p Progress, width int) []string {
	if width <= 0 {
		width = 80
	}
	var lines []string
	if p.Waiting != "" {
		return []string{clip(p.title()+": "+p.Waiting, width)}
	}
	lines = append(lines, clip(fmt.Sprintf("%s  %s", p.title(), p.Phase), width))
	barWidth := min(max(width-24, 10), 50)
	lines = append(lines, clip(fmt.Sprintf("%s %d/%d updated %3d%%", bar(p.Ready, p.Updated, p.Total, barWidth), p.Updated, p.Total, percent(p.Updated, p.Total)), width))
	lines = append(lines, clip(fmt.Sprintf("ready %d  unavailable %d  failed %d  offline-pending %d  total %d",
		p.Ready, p.Unavailable, p.Failed, p.OfflinePending, p.Total), width))
	if p.PrePull {
		lines = append(lines, clip(fmt.Sprintf("pre-pull %s %d/%d", bar(p.PrePulled, p.PrePulled, p.Total, barWidth-9), p.PrePulled, p.Total), width))
	}
	if len(p.Updating) > 0 {
		lines = append(lines, clip("updating: "+strings.Join(p.Updating, ", "), width))
	}
	for i, f := range p.FailedNodes {
		if i == 3 {
			lines = append(lines, fmt.Sprintf("failed: and %d more", len(p.FailedNodes)-3))
			break
		}
		lines = append(lines, clip("failed: "+f.Node+": "+f.Reason, width))
	}
	if p.Message != "" {
		lines = append(lines, clip(p.Message, width))
	}
	return lines
}

// bar draws done (solid) and started (shaded) parts of total in width
// cells.
func bar(done, started, total, width int) string {
	width = max(width, 3)
	if total <= 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	full := min(done*width/total, width)
	part := min(max(started*width/total-full, 0), width-full)
	return "[" + strings.Repeat("█", full) + strings.Repeat("▒", part) + strings.Repeat("░", width-full-part) + "]"
}

func percent(n, total int) int {
	if total <= 0 {
		return 100
	}
	return n * 100 / total
}

// clip shortens s to width runes, with an ellipsis.
func clip(s string, width int) string {
	r := []rune(s)
	if len(r) <= width || width < 2 {
		return s
	}
	return string(r[:width-1]) + "…"
}

func joinMax(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
