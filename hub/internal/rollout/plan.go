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
	// PullFailure is the agent's report that an image cannot be pulled:
	// for the target spec once the node is on it, or, before that, for
	// the target's images it was asked to stage (PullFailure.PrePull).
	// The controller leaves out failures that are not about the target.
	PullFailure *api.ImagePullFailure
	// Waiting is why the pod is not Ready, as the agent reports it (a
	// container's waiting reason such as CrashLoopBackOff); "" if none.
	Waiting string
	// Unheard is set while the hub has not heard from the node since the
	// hub started: all it knows of the node is from before, so the node
	// is neither moved nor counted available until it reports again.
	Unheard bool
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
	// available, and a node that cannot stage the target's images or an
	// offline canary may hold the rollout (default
	// DefaultProgressDeadline).
	ProgressDeadline time.Duration
	// MaxFailures is how many failed nodes (or what share of the target
	// nodes, rounded down) the rollout tolerates (default 0): one more
	// stops it.
	MaxFailures *api.IntOrString
	// OnFailure is api.OnFailurePause (default) or api.OnFailureRollback.
	OnFailure api.OnFailurePolicy
	// OfflineNodes is api.OfflineSkip (default) or api.OfflineWait.
	OfflineNodes api.OfflinePolicy
	// Canary, when set, updates its nodes first and then pauses.
	Canary *api.CanarySpec
	// PrePull holds every move until the online target nodes (all target
	// nodes with OfflineNodes Wait) have the target's images.
	PrePull bool
	// Paused stops all moves, except a rollback's.
	Paused bool
	// RollingBack marks the rollout back to the last good revision that a
	// failure started: no canary, no pre-pull, no pause, no second
	// rollback.
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
	// StartedAt is when the rollout of Target began; zero if unknown. A
	// node that is not moved yet fails by the progress deadline counted
	// from it (its pre-pull never finishing, an offline canary).
	StartedAt time.Time
	Now       time.Time
}

// Counts are a rollout's numbers over its target nodes.
type Counts struct {
	// Updated nodes run the target (reverted ones do not).
	Updated int
	// Ready are updated nodes whose pod is available.
	Ready int
	// Unavailable are online nodes without an available pod (unheard
	// ones included).
	Unavailable int
	// Failed nodes reverted, cannot pull the target's images, or missed
	// the progress deadline.
	Failed int
	// OfflinePending are offline nodes not on the target yet.
	OfflinePending int
	// Unheard are online nodes the hub has not heard from since it
	// started.
	Unheard int
	Total   int
	// PrePulled are nodes that have the target's images: updated ones and
	// those that report them pre-pulled.
	PrePulled int
}

// Result is what Plan decided.
type Result struct {
	// Move lists the nodes to put on the target now, by name. Nodes
	// without a pod are always in it: their pod is created on the target.
	Move    []string
	Phase   api.RolloutPhase
	Message string
	Counts  Counts
	// Updating lists online nodes on the target whose pod is not available
	// yet, and the nodes moved now.
	Updating []string
	// Failed lists the failed nodes with the reason.
	Failed []api.NodeReason
	// OfflinePending names the offline nodes not on the target yet.
	OfflinePending []string
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
	canary    bool   // in the canary set of a canary not yet passed
	failed    string // reason, "" when not failed
}

// planner holds one Plan call's working state; its methods are Plan's
// steps, in the order Plan calls them.
type planner struct {
	in       Input
	p        Params
	now      time.Time
	deadline time.Duration
	wait     bool // OfflineNodes Wait
	nodes    []nodeState
	notes    []string // problems with the parameters, appended to the message
	res      Result
}

// Plan decides one step of a rollout. It is a pure function of its input.
func Plan(in Input) Result {
	pl := newPlanner(in)
	pl.classify()
	if len(pl.nodes) == 0 {
		return pl.finish(api.RolloutComplete, "no nodes match")
	}
	if res, stop := pl.stopOnFailures(); stop {
		return res
	}
	if pl.allDone() {
		return pl.complete()
	}
	c := &pl.res.Counts
	if pl.p.OnDelete {
		return pl.finish(api.RolloutProgressing, fmt.Sprintf("%s; OnDelete: %d node(s) take the new revision when their pod is deleted",
			pl.summary(), c.Total-c.Updated))
	}
	if pl.p.Paused && !pl.p.RollingBack {
		msg := "paused: " + pl.summary()
		if pl.p.Canary != nil && pl.in.State.CanaryDone && pl.p.Canary.PauseSeconds == nil {
			msg = "canary nodes updated; run `hub rollout resume` to continue: " + pl.summary()
		}
		return pl.finish(api.RolloutPaused, msg)
	}
	eligible, res, stop := pl.canaryStage()
	if stop {
		return res
	}
	if res, stop := pl.prePullStage(); stop {
		return res
	}
	pl.move(eligible)
	return pl.progress(eligible)
}

func newPlanner(in Input) *planner {
	pl := &planner{in: in, p: in.Params, now: in.Now, res: Result{State: in.State}}
	pl.res.Counts.Total = len(in.Nodes)
	pl.nodes = make([]nodeState, len(in.Nodes))
	for i := range in.Nodes {
		pl.nodes[i].Node = &in.Nodes[i]
	}
	sort.Slice(pl.nodes, func(i, j int) bool { return pl.nodes[i].Name < pl.nodes[j].Name })
	maxUnavailable, maxSurge, err := Budget(pl.p.MaxUnavailable, pl.p.MaxSurge, len(pl.nodes), defaultMaxUnavailable, defaultMaxSurge)
	if err != nil {
		pl.notes = append(pl.notes, err.Error())
	}
	maxFailures, err := Scaled(pl.p.MaxFailures, len(pl.nodes), false, 0)
	if err != nil {
		pl.notes = append(pl.notes, "maxFailures: "+err.Error())
	}
	pl.res.MaxUnavailable, pl.res.MaxSurge, pl.res.MaxFailures = maxUnavailable, maxSurge, maxFailures
	pl.deadline = pl.p.ProgressDeadline
	if pl.deadline <= 0 {
		pl.deadline = DefaultProgressDeadline
	}
	pl.wait = pl.p.OfflineNodes == api.OfflineWait
	return pl
}

// wake asks for a pass at t, if that is later than now and earlier than
// any other wake.
func (pl *planner) wake(t time.Time) {
	if t.After(pl.now) && (pl.res.Wake.IsZero() || t.Before(pl.res.Wake)) {
		pl.res.Wake = t
	}
}

// canaryActive says whether the canary stage still runs.
func (pl *planner) canaryActive() bool {
	return pl.p.Canary != nil && !pl.p.RollingBack && !pl.res.State.CanaryDone
}

// classify works out every node's state, why it failed if it did, and
// the counts.
func (pl *planner) classify() {
	now := pl.now
	for i := range pl.nodes {
		n := &pl.nodes[i]
		n.atTarget = n.Hash == pl.in.Target && n.Hash != ""
		n.updated = n.atTarget && !n.Reverted
		n.available = n.Ready && !n.Unheard
		if n.available && pl.p.MinReady > 0 && !n.ReadySince.IsZero() {
			if until := n.ReadySince.Add(pl.p.MinReady); until.After(now) {
				n.available = false
				pl.wake(until)
			}
		}
	}
	if pl.canaryActive() {
		for name := range canarySet(pl.nodes, pl.p.Canary, len(pl.nodes)) {
			i := sort.Search(len(pl.nodes), func(i int) bool { return pl.nodes[i].Name >= name })
			pl.nodes[i].canary = true
		}
	}
	c := &pl.res.Counts
	for i := range pl.nodes {
		n := &pl.nodes[i]
		n.failed = pl.failure(n)
		if n.updated {
			c.Updated++
			if n.available {
				c.Ready++
			}
		}
		if n.Online && !n.available {
			c.Unavailable++
		}
		if n.Online && n.Unheard {
			c.Unheard++
		}
		if n.failed != "" {
			c.Failed++
			pl.res.Failed = append(pl.res.Failed, api.NodeReason{Node: n.Name, Reason: n.failed})
		}
		if !n.Online && !n.atTarget {
			c.OfflinePending++
			pl.res.OfflinePending = append(pl.res.OfflinePending, n.Name)
		}
		if n.updated || n.PrePulled {
			c.PrePulled++
		}
		if n.Hash == "" {
			// A node without a pod gets one on the target at once: there is
			// nothing running there to keep available.
			pl.res.Move = append(pl.res.Move, n.Name)
		}
		if pl.p.PrePull && !pl.p.RollingBack && !n.atTarget && n.Hash != "" {
			pl.res.PrePull = append(pl.res.PrePull, n.Name)
		}
	}
	for _, n := range pl.nodes {
		if n.Online && n.atTarget && !n.available && n.failed == "" {
			pl.res.Updating = append(pl.res.Updating, n.Name)
		}
	}
}

// failure says why n failed this rollout, "" if it did not (yet), and
// asks for a pass when a deadline it waits for passes.
func (pl *planner) failure(n *nodeState) string {
	past := func(from time.Time) bool {
		if from.IsZero() {
			return false
		}
		due := from.Add(pl.deadline)
		if pl.now.Before(due) {
			pl.wake(due)
			return false
		}
		return true
	}
	pf := n.PullFailure
	prePulling := pl.p.PrePull && !pl.p.RollingBack && !n.atTarget && n.Hash != ""
	if pf != nil && !(pf.PrePull && prePulling) && !(!pf.PrePull && n.atTarget) {
		pf = nil // about something else than this rollout's target
	}
	switch {
	case n.atTarget && n.Reverted:
		reason := n.RevertReason
		if reason == "" {
			reason = "reverted by the agent"
		}
		return "reverted: " + reason
	case pf != nil && pf.Permanent:
		// A registry that says the tag does not exist, or refuses the
		// credentials, will say so again: waiting for the deadline would
		// only hold the fleet up.
		return pullReason(pf)
	case n.Unheard:
		return "" // what the hub knows of it is from before it started
	case n.canary && !n.Online && n.atTarget && past(n.MovedAt):
		return fmt.Sprintf("canary offline and not available within the progress deadline (%s)", pl.deadline)
	case n.canary && !n.Online && !n.atTarget && past(pl.in.StartedAt):
		return fmt.Sprintf("canary offline, not updated within the progress deadline (%s)", pl.deadline)
	case n.atTarget && n.Online && !n.available && past(n.MovedAt):
		msg := fmt.Sprintf("not available within the progress deadline (%s)", pl.deadline)
		if pf != nil {
			msg += ": " + pullReason(pf)
		} else if n.Waiting != "" {
			msg += ": " + n.Waiting
		}
		return msg
	case pf != nil && pf.PrePull && n.Online && past(pl.in.StartedAt):
		return fmt.Sprintf("images not staged within the progress deadline (%s): %s", pl.deadline, pullReason(pf))
	}
	return ""
}

// pullReason says why an image could not be pulled, as a rollout reports
// it.
func pullReason(pf *api.ImagePullFailure) string {
	what := "ErrImagePull"
	if pf.PrePull {
		what = "pre-pull failed"
	}
	if strings.Contains(pf.Message, pf.Image) {
		return what + ": " + pf.Message
	}
	return fmt.Sprintf("%s: %s: %s", what, pf.Image, pf.Message)
}

// stopOnFailures stops the rollout when more nodes failed than it
// tolerates, or any canary node failed: by rolling back if it may, by
// failing if not.
func (pl *planner) stopOnFailures() (Result, bool) {
	c := &pl.res.Counts
	var canaryFailed []api.NodeReason
	for _, n := range pl.nodes {
		if n.canary && n.failed != "" {
			canaryFailed = append(canaryFailed, api.NodeReason{Node: n.Name, Reason: n.failed})
		}
	}
	var msg string
	switch {
	case c.Failed > pl.res.MaxFailures:
		msg = fmt.Sprintf("%d node(s) failed, more than maxFailures %d: %s", c.Failed, pl.res.MaxFailures, failedSummary(pl.res.Failed))
	case len(canaryFailed) > 0:
		// The canary is the test: whatever maxFailures tolerates across the
		// fleet, a canary that fails says the revision is not good.
		msg = fmt.Sprintf("canary failed: %s", failedSummary(canaryFailed))
	default:
		return Result{}, false
	}
	if pl.p.OnFailure == api.OnFailureRollback && !pl.p.RollingBack {
		if pl.p.CanRollback {
			pl.res.Rollback = true
			return pl.finish(api.RolloutRolledBack, msg+"; rolling back"), true
		}
		msg += "; no earlier good revision to roll back to"
	}
	return pl.finish(api.RolloutFailed, msg), true
}

// done reports whether a node needs nothing more from this rollout.
func (pl *planner) done(n *nodeState) bool {
	switch {
	case n.failed != "":
		return true // failed within what maxFailures tolerates
	case n.Online:
		return n.updated && n.available
	case pl.wait:
		return n.updated
	}
	return true // offline, Skip: updates when it returns
}

func (pl *planner) allDone() bool {
	for i := range pl.nodes {
		if !pl.done(&pl.nodes[i]) {
			return false
		}
	}
	return true
}

// complete ends a rollout that has nothing left to do: Complete when no
// node failed, Degraded when some did within maxFailures, since those do
// not run the revision.
func (pl *planner) complete() Result {
	if c := &pl.res.Counts; c.Failed > 0 {
		return pl.finish(api.RolloutDegraded, fmt.Sprintf("%s; %d node(s) failed within maxFailures %d and do not run this revision: %s",
			pl.summary(), c.Failed, pl.res.MaxFailures, failedSummary(pl.res.Failed)))
	}
	return pl.finish(api.RolloutComplete, pl.summary())
}

// canaryStage updates the canary nodes first and then pauses. It returns
// the nodes that may move while the canary runs (nil: any), or the result
// when the rollout waits.
func (pl *planner) canaryStage() (eligible map[string]bool, res Result, stop bool) {
	p := pl.p
	if p.Canary == nil || p.RollingBack {
		return nil, Result{}, false
	}
	if !pl.res.State.CanaryDone {
		var set []string
		passed := true
		for i := range pl.nodes {
			n := &pl.nodes[i]
			if !n.canary {
				continue
			}
			set = append(set, n.Name)
			// A canary passes only on what its nodes were seen to do: Ready
			// on the revision for minReadySeconds. An offline one holds the
			// rollout, whatever OfflineNodes says, until it is back or past
			// the deadline.
			if !(n.Online && n.updated && n.available) {
				passed = false
			}
		}
		switch {
		case len(set) == 0:
			pl.res.State.CanaryDone = true // nothing to try first
		case passed:
			pl.res.State.CanaryDone = true
			pl.res.State.PausedAt = pl.now
			if p.Canary.PauseSeconds == nil {
				pl.res.Pause = true
				return nil, pl.finish(api.RolloutPaused, fmt.Sprintf("canary nodes updated (%s); run `hub rollout resume` to continue: %s",
					strings.Join(set, ", "), pl.summary())), true
			}
		default:
			eligible = map[string]bool{}
			for _, name := range set {
				eligible[name] = true
			}
		}
	}
	if pl.res.State.CanaryDone && p.Canary.PauseSeconds != nil && *p.Canary.PauseSeconds > 0 {
		until := pl.res.State.PausedAt.Add(time.Duration(*p.Canary.PauseSeconds) * time.Second)
		if pl.now.Before(until) {
			pl.wake(until)
			return nil, pl.finish(api.RolloutPaused, fmt.Sprintf("canary nodes updated; pausing %ds, until %s: %s",
				*p.Canary.PauseSeconds, until.UTC().Format(time.RFC3339), pl.summary())), true
		}
	}
	return eligible, Result{}, false
}

// prePullStage holds every move until the images are staged on the nodes
// that will take them.
func (pl *planner) prePullStage() (Result, bool) {
	if !pl.p.PrePull || pl.p.RollingBack {
		return Result{}, false
	}
	need, have := 0, 0
	var missing []string
	for i := range pl.nodes {
		n := &pl.nodes[i]
		if n.atTarget || n.Hash == "" || n.failed != "" || (!n.Online && !pl.wait) {
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
		return pl.finish(api.RolloutProgressing, fmt.Sprintf("pre-pulling images: %d of %d node(s) ready; waiting for %s",
			have, need, nameList(missing, 5))), true
	}
	return Result{}, false
}

// move picks the nodes to put on the target within the budget. Old pods
// that are not available are replaced at once, as Kubernetes does: that
// takes nothing away. Nodes the hub has not heard from since it started
// are left alone: their pods may be down for all it knows, and they count
// against the budget as if they were.
func (pl *planner) move(eligible map[string]bool) {
	c := &pl.res.Counts
	room := pl.res.MaxUnavailable - c.Unavailable
	if pl.res.MaxSurge > 0 {
		inflight := 0
		for i := range pl.nodes {
			n := &pl.nodes[i]
			if n.Online && n.atTarget && !n.Reverted && !n.available {
				inflight++
			}
		}
		room = pl.res.MaxSurge - inflight
	}
	var moved []string
	for i := range pl.nodes {
		n := &pl.nodes[i]
		if n.atTarget || n.Hash == "" || !n.Online || n.Unheard || n.failed != "" || (eligible != nil && !eligible[n.Name]) {
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
	pl.res.Move = append(pl.res.Move, moved...)
	pl.res.Updating = append(pl.res.Updating, moved...)
	sort.Strings(pl.res.Updating)
	if len(moved) > 0 {
		pl.wake(pl.now.Add(pl.deadline))
	}
}

// progress reports a rollout that goes on.
func (pl *planner) progress(eligible map[string]bool) Result {
	c := &pl.res.Counts
	msg := pl.summary()
	if eligible != nil {
		msg = fmt.Sprintf("canary: updating %s first; %s", strings.Join(sortedKeys(eligible), ", "), msg)
		var away []string
		for _, n := range pl.nodes {
			if eligible[n.Name] && !n.Online {
				away = append(away, n.Name)
			}
		}
		if len(away) > 0 {
			msg += "; waiting for offline canary " + nameList(away, 5)
		}
	}
	if len(pl.res.Updating) > 0 {
		msg += "; updating " + nameList(pl.withWaiting(pl.res.Updating), 5)
	}
	if c.OfflinePending > 0 && pl.wait {
		msg += fmt.Sprintf("; waiting for %d offline node(s)", c.OfflinePending)
	}
	if c.Unheard > 0 {
		msg += fmt.Sprintf("; waiting to hear from %d node(s) since the hub started", c.Unheard)
	}
	return pl.finish(api.RolloutProgressing, msg)
}

// withWaiting adds to each named node why its pod is not Ready, when the
// agent said.
func (pl *planner) withWaiting(names []string) []string {
	out := make([]string, len(names))
	for i, name := range names {
		out[i] = name
		j := sort.Search(len(pl.nodes), func(j int) bool { return pl.nodes[j].Name >= name })
		if j < len(pl.nodes) && pl.nodes[j].Name == name {
			if n := pl.nodes[j]; n.PullFailure != nil && !n.PullFailure.PrePull && n.atTarget {
				out[i] += " (ImagePullBackOff: " + n.PullFailure.Message + ")"
			} else if n.Waiting != "" {
				out[i] += " (" + n.Waiting + ")"
			}
		}
	}
	return out
}

// summary is the counts in words, naming the offline nodes still pending.
func (pl *planner) summary() string {
	c := &pl.res.Counts
	s := fmt.Sprintf("%d of %d node(s) updated, %d available", c.Updated, c.Total, c.Ready)
	if c.Failed > 0 {
		s += fmt.Sprintf(", %d failed", c.Failed)
	}
	if c.OfflinePending > 0 {
		s += fmt.Sprintf(", %d offline node(s) pending (%s)", c.OfflinePending, nameList(pl.res.OfflinePending, 5))
	}
	return s
}

// finish sets the phase and message of the result; while rolling back,
// every outcome but a failure reads as the rollback's.
func (pl *planner) finish(phase api.RolloutPhase, msg string) Result {
	if pl.p.RollingBack && phase != api.RolloutFailed {
		if phase == api.RolloutComplete || phase == api.RolloutDegraded {
			msg = "rolled back to the last good revision: " + msg
		} else {
			msg = "rolling back to the last good revision: " + msg
		}
		phase = api.RolloutRolledBack
	}
	pl.res.Phase = phase
	if len(pl.notes) > 0 {
		msg += " (" + strings.Join(pl.notes, "; ") + ")"
	}
	pl.res.Message = msg
	return pl.res
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
