package rollout

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// DefaultProgressDeadline is how long a moved node may take to become
// available before it counts as failed, when the rollout does not say.
const DefaultProgressDeadline = 600 * time.Second

// Node is one target node as the planner sees it.
type Node struct {
	Name   string
	Labels map[string]string
	// Online is true while the node is Ready.
	Online bool
	// Hash is the template hash of the node's pod, "" when it has none.
	Hash string
	// Ready is true when the agent reports the pod Ready on the spec the
	// hub assigned it (or, after a revert, on the spec it reverted to).
	Ready bool
	// ReadySince is when the pod became Ready; zero means long ago.
	ReadySince time.Time
	// MovedAt is when the node was moved to Hash; zero means unknown, and
	// such a node never fails by the progress deadline.
	MovedAt time.Time
	// Reverted is true when the agent gave up on the target spec and runs
	// its last good one; RevertReason says why.
	Reverted     bool
	RevertReason string
	// PrePulled is true once the agent reports the target's images on the
	// node.
	PrePulled bool
}

// Params are a rollout's settings, resolved from the object's spec. Zero
// values take the defaults named on each field.
type Params struct {
	// OnDelete moves no node: a node gets the target only when its pod is
	// deleted (and recreated).
	OnDelete bool
	// MaxUnavailable (default 1) and MaxSurge (default 0), resolved
	// against the number of target nodes.
	MaxUnavailable *api.IntOrString
	MaxSurge       *api.IntOrString
	// MinReady is how long a pod must be Ready to count as available.
	MinReady time.Duration
	// ProgressDeadline bounds how long a moved node may take to become
	// available (default DefaultProgressDeadline).
	ProgressDeadline time.Duration
	// MaxFailures is how many failed nodes (or what share of the target
	// nodes, rounded down) the rollout tolerates (default 0).
	MaxFailures *api.IntOrString
	// OnFailure is api.OnFailurePause (default) or api.OnFailureRollback.
	OnFailure string
	// OfflineNodes is api.OfflineSkip (default) or api.OfflineWait.
	OfflineNodes string
	// Canary, when set, updates its nodes first and then pauses.
	Canary *api.CanarySpec
	// PrePull holds every move until the online target nodes (all target
	// nodes with OfflineNodes Wait) have the target's images.
	PrePull bool
	// Paused stops all moves.
	Paused bool
	// RollingBack marks the rollout back to the last good revision that a
	// failure started: no canary, no pre-pull, no second rollback.
	RollingBack bool
	// CanRollback says a last good revision exists to roll back to.
	CanRollback bool
}

// State is what a rollout remembers between passes; the controllers keep
// it in the object's status.rollout.
type State struct {
	// CanaryDone is set once every canary node is updated and available.
	CanaryDone bool
	// PausedAt is when the canary pause began.
	PausedAt time.Time
}

// Input is everything Plan reads.
type Input struct {
	// Target is the template hash being rolled out.
	Target string
	// Nodes are the target nodes: every node that should run the pod.
	Nodes  []Node
	Params Params
	State  State
	Now    time.Time
}

// Counts are a rollout's numbers over its target nodes.
type Counts struct {
	// Updated nodes run the target (reverted ones do not).
	Updated int
	// Ready are updated nodes whose pod is available.
	Ready int
	// Unavailable are online nodes without an available pod.
	Unavailable int
	// Failed nodes reverted, or missed the progress deadline.
	Failed int
	// OfflinePending are offline nodes not on the target yet.
	OfflinePending int
	Total          int
	// PrePulled are nodes that have the target's images: updated ones and
	// those that report them pre-pulled.
	PrePulled int
}

// Result is what Plan decided.
type Result struct {
	// Move lists the nodes to put on the target now, by name. Nodes
	// without a pod are always in it: their pod is created on the target.
	Move    []string
	Phase   string
	Message string
	Counts  Counts
	// Updating lists online nodes on the target whose pod is not available
	// yet, and the nodes moved now.
	Updating []string
	// Failed lists the failed nodes with the reason.
	Failed []api.NodeReason
	// Rollback asks the controller to return to the last good revision.
	Rollback bool
	// PrePull lists the nodes that should stage the target's images: the
	// nodes not on the target yet, when Params.PrePull is set.
	PrePull []string
	// State is the rollout state to keep for the next pass.
	State State
	// Pause asks the controller to pause the rollout in its spec: the
	// canary nodes are done and the rollout waits for a resume.
	Pause bool
	// MaxUnavailable, MaxSurge and MaxFailures are the resolved budgets.
	MaxUnavailable, MaxSurge, MaxFailures int
	// Wake is when the plan may change with time alone (a pod reaching
	// minReadySeconds, a progress deadline, the end of a canary pause);
	// zero means never.
	Wake time.Time
}

// Defaults of a DaemonSet's rolling update.
var (
	defaultMaxUnavailable = api.FromInt(1)
	defaultMaxSurge       = api.FromInt(0)
)

// nodeState is the planner's view of one node.
type nodeState struct {
	*Node
	atTarget  bool // the pod is on the target revision (reverted or not)
	updated   bool // on the target and running it
	available bool
	failed    string // reason, "" when not failed
}

// Plan decides one step of a rollout. It is a pure function of its input.
func Plan(in Input) Result {
	p := in.Params
	now := in.Now
	res := Result{State: in.State}
	res.Counts.Total = len(in.Nodes)

	nodes := make([]nodeState, len(in.Nodes))
	for i := range in.Nodes {
		nodes[i].Node = &in.Nodes[i]
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })

	var notes []string
	maxUnavailable, maxSurge, err := Budget(p.MaxUnavailable, p.MaxSurge, len(nodes), defaultMaxUnavailable, defaultMaxSurge)
	if err != nil {
		notes = append(notes, err.Error())
	}
	maxFailures, err := Scaled(p.MaxFailures, len(nodes), false, 0)
	if err != nil {
		notes = append(notes, "maxFailures: "+err.Error())
	}
	res.MaxUnavailable, res.MaxSurge, res.MaxFailures = maxUnavailable, maxSurge, maxFailures
	deadline := p.ProgressDeadline
	if deadline <= 0 {
		deadline = DefaultProgressDeadline
	}
	wait := p.OfflineNodes == api.OfflineWait

	wake := func(t time.Time) {
		if t.After(now) && (res.Wake.IsZero() || t.Before(res.Wake)) {
			res.Wake = t
		}
	}

	// Classify every node and count.
	c := &res.Counts
	for i := range nodes {
		n := &nodes[i]
		n.atTarget = n.Hash == in.Target && n.Hash != ""
		n.updated = n.atTarget && !n.Reverted
		n.available = n.Ready
		if n.Ready && p.MinReady > 0 && !n.ReadySince.IsZero() {
			if until := n.ReadySince.Add(p.MinReady); until.After(now) {
				n.available = false
				wake(until)
			}
		}
		switch {
		case n.atTarget && n.Reverted:
			reason := n.RevertReason
			if reason == "" {
				reason = "reverted by the agent"
			}
			n.failed = "reverted: " + reason
		case n.atTarget && n.Online && !n.available && !n.MovedAt.IsZero():
			if due := n.MovedAt.Add(deadline); !now.Before(due) {
				n.failed = fmt.Sprintf("not available within the progress deadline (%s)", deadline)
			} else {
				wake(due)
			}
		}
		if n.updated {
			c.Updated++
			if n.available {
				c.Ready++
			}
		}
		if n.Online && !n.available {
			c.Unavailable++
		}
		if n.failed != "" {
			c.Failed++
			res.Failed = append(res.Failed, api.NodeReason{Node: n.Name, Reason: n.failed})
		}
		if !n.Online && !n.atTarget {
			c.OfflinePending++
		}
		if n.updated || n.PrePulled {
			c.PrePulled++
		}
		if n.Hash == "" {
			// A node without a pod gets one on the target at once: there is
			// nothing running there to keep available.
			res.Move = append(res.Move, n.Name)
		}
		if p.PrePull && !p.RollingBack && !n.atTarget && n.Hash != "" {
			res.PrePull = append(res.PrePull, n.Name)
		}
	}
	for _, n := range nodes {
		if n.Online && n.atTarget && !n.available && n.failed == "" {
			res.Updating = append(res.Updating, n.Name)
		}
	}
	finish := func(phase, msg string) Result {
		if p.RollingBack && phase != api.RolloutFailed {
			if phase == api.RolloutComplete {
				msg = "rolled back to the last good revision: " + msg
			} else {
				msg = "rolling back to the last good revision: " + msg
			}
			phase = api.RolloutRolledBack
		}
		res.Phase = phase
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, "; ") + ")"
		}
		res.Message = msg
		return res
	}

	if len(nodes) == 0 {
		return finish(api.RolloutComplete, "no nodes match")
	}

	// Too many failures stop the rollout.
	if c.Failed > maxFailures {
		msg := fmt.Sprintf("%d node(s) failed, more than maxFailures %d: %s", c.Failed, maxFailures, failedSummary(res.Failed))
		if p.OnFailure == api.OnFailureRollback && !p.RollingBack {
			if p.CanRollback {
				res.Rollback = true
				return finish(api.RolloutRolledBack, msg+"; rolling back")
			}
			msg += "; no earlier good revision to roll back to"
		}
		return finish(api.RolloutFailed, msg)
	}

	// done reports whether a node needs nothing more from this rollout.
	done := func(n *nodeState) bool {
		switch {
		case n.failed != "":
			return true // failed within what maxFailures tolerates
		case n.Online:
			return n.updated && n.available
		case wait:
			return n.updated
		}
		return true // offline, Skip: updates when it returns
	}
	allDone := true
	for i := range nodes {
		if !done(&nodes[i]) {
			allDone = false
			break
		}
	}
	if allDone {
		return finish(api.RolloutComplete, progressSummary(c))
	}

	if p.OnDelete {
		return finish(api.RolloutProgressing, fmt.Sprintf("%s; OnDelete: %d node(s) take the new revision when their pod is deleted",
			progressSummary(c), c.Total-c.Updated))
	}
	if p.Paused {
		msg := "paused: " + progressSummary(c)
		if p.Canary != nil && in.State.CanaryDone && p.Canary.PauseSeconds == nil {
			msg = "canary nodes updated; run `hub rollout resume` to continue: " + progressSummary(c)
		}
		return finish(api.RolloutPaused, msg)
	}

	// Canary nodes first, then a pause.
	var eligible map[string]bool
	if p.Canary != nil && !p.RollingBack {
		if !res.State.CanaryDone {
			set := canarySet(nodes, p.Canary, len(nodes))
			canaryDone := true
			for i := range nodes {
				if set[nodes[i].Name] && !done(&nodes[i]) {
					canaryDone = false
					break
				}
			}
			switch {
			case len(set) == 0:
				res.State.CanaryDone = true // nothing to try first
			case canaryDone:
				res.State.CanaryDone = true
				res.State.PausedAt = now
				if p.Canary.PauseSeconds == nil {
					res.Pause = true
					return finish(api.RolloutPaused, fmt.Sprintf("canary nodes updated (%s); run `hub rollout resume` to continue: %s",
						strings.Join(sortedKeys(set), ", "), progressSummary(c)))
				}
			default:
				eligible = set
			}
		}
		if res.State.CanaryDone && p.Canary.PauseSeconds != nil && *p.Canary.PauseSeconds > 0 {
			until := res.State.PausedAt.Add(time.Duration(*p.Canary.PauseSeconds) * time.Second)
			if now.Before(until) {
				wake(until)
				return finish(api.RolloutPaused, fmt.Sprintf("canary nodes updated; pausing %ds, until %s: %s",
					*p.Canary.PauseSeconds, until.UTC().Format(time.RFC3339), progressSummary(c)))
			}
		}
	}

	// Stage the images everywhere before the first move.
	if p.PrePull && !p.RollingBack {
		need, have := 0, 0
		var missing []string
		for i := range nodes {
			n := &nodes[i]
			if n.atTarget || n.Hash == "" || (!n.Online && !wait) {
				continue
			}
			need++
			if n.PrePulled {
				have++
			} else {
				missing = append(missing, n.Name)
			}
		}
		if have < need {
			return finish(api.RolloutProgressing, fmt.Sprintf("pre-pulling images: %d of %d node(s) ready; waiting for %s",
				have, need, nameList(missing, 5)))
		}
	}

	// Move nodes within the budget. Old pods that are not available are
	// replaced at once, as Kubernetes does: that takes nothing away.
	room := maxUnavailable - c.Unavailable
	if maxSurge > 0 {
		inflight := 0
		for i := range nodes {
			n := &nodes[i]
			if n.Online && n.atTarget && !n.Reverted && !n.available {
				inflight++
			}
		}
		room = maxSurge - inflight
	}
	var moved []string
	for i := range nodes {
		n := &nodes[i]
		if n.atTarget || n.Hash == "" || !n.Online || (eligible != nil && !eligible[n.Name]) {
			continue
		}
		if !n.available {
			moved = append(moved, n.Name)
			continue
		}
		if room > 0 {
			moved = append(moved, n.Name)
			room--
		}
	}
	res.Move = append(res.Move, moved...)
	res.Updating = append(res.Updating, moved...)
	sort.Strings(res.Updating)
	if len(moved) > 0 {
		wake(now.Add(deadline))
	}
	msg := progressSummary(c)
	if eligible != nil {
		msg = fmt.Sprintf("canary: updating %s first; %s", strings.Join(sortedKeys(eligible), ", "), msg)
	}
	if len(res.Updating) > 0 {
		msg += "; updating " + nameList(res.Updating, 5)
	}
	if c.OfflinePending > 0 && wait {
		msg += fmt.Sprintf("; waiting for %d offline node(s)", c.OfflinePending)
	}
	return finish(api.RolloutProgressing, msg)
}

// canarySet picks the canary nodes: those matching the canary's node
// selector, or the first Count nodes by name, counting nodes already on the
// target first so that the set stays the same from pass to pass. With both,
// the selector's nodes are limited to Count.
func canarySet(nodes []nodeState, cs *api.CanarySpec, total int) map[string]bool {
	set := map[string]bool{}
	var pool []*nodeState
	sel := api.SelectorFromMap(cs.NodeSelector)
	for i := range nodes {
		if len(cs.NodeSelector) == 0 || sel.Matches(nodes[i].Labels) {
			pool = append(pool, &nodes[i])
		}
	}
	if cs.Count == nil {
		if len(cs.NodeSelector) == 0 {
			return set
		}
		for _, n := range pool {
			set[n.Name] = true
		}
		return set
	}
	count, err := cs.Count.ScaledValue(total, true)
	if err != nil {
		count = 1
	}
	for _, n := range pool {
		if len(set) < count && n.atTarget {
			set[n.Name] = true
		}
	}
	for _, n := range pool {
		if len(set) < count && !n.atTarget && n.Online && n.Hash != "" {
			set[n.Name] = true
		}
	}
	return set
}

func progressSummary(c *Counts) string {
	s := fmt.Sprintf("%d of %d node(s) updated, %d available", c.Updated, c.Total, c.Ready)
	if c.Failed > 0 {
		s += fmt.Sprintf(", %d failed", c.Failed)
	}
	if c.OfflinePending > 0 {
		s += fmt.Sprintf(", %d offline node(s) pending", c.OfflinePending)
	}
	return s
}

func failedSummary(failed []api.NodeReason) string {
	var parts []string
	for i, f := range failed {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(failed)-3))
			break
		}
		parts = append(parts, f.Node+": "+f.Reason)
	}
	return strings.Join(parts, "; ")
}

// nameList joins at most max names, saying how many were left out.
func nameList(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
