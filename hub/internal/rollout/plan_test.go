package rollout

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

const (
	v1 = "aaaaaaaaaaaaaaaa"
	v2 = "bbbbbbbbbbbbbbbb"
)

// fleet returns n online nodes whose pods run hash and are available.
func fleet(n int, hash string) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{Name: fmt.Sprintf("n%02d", i), Online: true, Hash: hash, Ready: true, Labels: map[string]string{}}
	}
	return out
}

func ios(s string) *api.IntOrString {
	var v api.IntOrString
	if strings.HasSuffix(s, "%") {
		v = api.FromString(s)
	} else {
		var n int32
		fmt.Sscan(s, &n)
		v = api.FromInt(n)
	}
	return &v
}

func i32(v int32) *int32 { return &v }

// with applies changes to the named nodes.
func with(nodes []Node, f func(n *Node), names ...string) []Node {
	for i := range nodes {
		if slices.Contains(names, nodes[i].Name) {
			f(&nodes[i])
		}
	}
	return nodes
}

var (
	offline  = func(n *Node) { n.Online = false; n.Ready = false }
	noPod    = func(n *Node) { n.Hash = ""; n.Ready = false }
	notReady = func(n *Node) { n.Ready = false }
	onTarget = func(n *Node) { n.Hash = v2; n.MovedAt = t0.Add(-time.Minute) }
	inFlight = func(n *Node) { n.Hash = v2; n.Ready = false; n.MovedAt = t0.Add(-time.Minute) }
	late     = func(n *Node) { n.Hash = v2; n.Ready = false; n.MovedAt = t0.Add(-11 * time.Minute) }
	reverted = func(n *Node) {
		n.Hash = v2
		n.Reverted = true
		n.RevertReason = "CrashLoopBackOff"
		n.MovedAt = t0.Add(-time.Minute)
	}
	prePull = func(n *Node) { n.PrePulled = true }
)

// missingTag is what an agent reports when the registry has no such tag;
// flaky when it cannot reach the registry.
func missingTag(prePull bool) *api.ImagePullFailure {
	return &api.ImagePullFailure{Image: "reg/app:nope", Message: "manifest unknown", Permanent: true, PrePull: prePull, Attempts: 1}
}

func flaky(prePull bool) *api.ImagePullFailure {
	return &api.ImagePullFailure{Image: "reg/app:v2", Message: "connection refused", PrePull: prePull, Attempts: 3}
}

// canaryFleet is five nodes of which n00 is the canary ring.
func canaryFleet() []Node {
	return with(fleet(5, v1), func(n *Node) { n.Labels = map[string]string{"ring": "canary"} }, "n00")
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   []Node
		params  Params
		state   State
		started time.Time // when the rollout began
		now     time.Time // zero: t0

		move     []string
		phase    api.RolloutPhase
		msg      string // substring of the message
		counts   *Counts
		rollback bool
		pause    bool
		prePull  int // len(PrePull)
		failed   []string
	}{
		{name: "first step moves one node", nodes: fleet(10, v1),
			move: []string{"n00"}, phase: api.RolloutProgressing,
			counts: &Counts{Total: 10, PrePulled: 0}},
		{name: "a node in flight uses the budget", nodes: with(fleet(10, v1), inFlight, "n00"),
			phase: api.RolloutProgressing, msg: "updating n00",
			counts: &Counts{Updated: 1, Unavailable: 1, Total: 10, PrePulled: 1}},
		{name: "an available node frees the budget", nodes: with(fleet(10, v1), onTarget, "n00"),
			move: []string{"n01"}, phase: api.RolloutProgressing,
			counts: &Counts{Updated: 1, Ready: 1, Total: 10, PrePulled: 1}},
		{name: "maxUnavailable 3", nodes: with(fleet(10, v1), inFlight, "n04"), params: Params{MaxUnavailable: ios("3")},
			move: []string{"n00", "n01"}, phase: api.RolloutProgressing},
		{name: "10% of 15 rounds down to 1", nodes: fleet(15, v1), params: Params{MaxUnavailable: ios("10%")},
			move: []string{"n00"}},
		{name: "20% of 15 is 3", nodes: fleet(15, v1), params: Params{MaxUnavailable: ios("20%")},
			move: []string{"n00", "n01", "n02"}},
		{name: "budget of 0 becomes 1", nodes: fleet(10, v1), params: Params{MaxUnavailable: ios("5%"), MaxSurge: ios("0")},
			move: []string{"n00"}},
		{name: "budget of 0 as integer becomes 1", nodes: fleet(3, v1), params: Params{MaxUnavailable: ios("0")},
			move: []string{"n00"}},
		{name: "maxSurge 2", nodes: fleet(10, v1), params: Params{MaxUnavailable: ios("0"), MaxSurge: ios("2")},
			move: []string{"n00", "n01"}},
		{name: "maxSurge counts nodes in flight", nodes: with(fleet(10, v1), inFlight, "n09"), params: Params{MaxUnavailable: ios("0"), MaxSurge: ios("2")},
			move: []string{"n00"}},
		{name: "maxSurge 10% of 15 rounds up to 2", nodes: fleet(15, v1), params: Params{MaxUnavailable: ios("0"), MaxSurge: ios("10%")},
			move: []string{"n00", "n01"}},
		{name: "an unavailable old node is replaced without budget", nodes: with(fleet(10, v1), notReady, "n05"),
			move: []string{"n05"}, counts: &Counts{Unavailable: 1, Total: 10}},
		{name: "unavailable old nodes beyond the budget are all replaced", nodes: with(fleet(10, v1), notReady, "n03", "n05"),
			move: []string{"n03", "n05"}},
		{name: "offline nodes are not moved", nodes: with(fleet(5, v1), offline, "n00"),
			move: []string{"n01"}, counts: &Counts{OfflinePending: 1, Total: 5}},
		{name: "every node offline, Skip", nodes: with(fleet(3, v1), offline, "n00", "n01", "n02"),
			phase: api.RolloutComplete, msg: "3 offline node(s) pending", counts: &Counts{OfflinePending: 3, Total: 3}},
		{name: "every node offline, Wait", nodes: with(fleet(3, v1), offline, "n00", "n01", "n02"), params: Params{OfflineNodes: api.OfflineWait},
			phase: api.RolloutProgressing, msg: "waiting for 3 offline node(s)"},
		{name: "complete with offline pending (Skip)", nodes: with(with(fleet(4, v2), offline, "n03"), func(n *Node) { n.Hash = v1 }, "n03"),
			phase: api.RolloutComplete, counts: &Counts{Updated: 3, Ready: 3, OfflinePending: 1, Total: 4, PrePulled: 3}},
		{name: "offline pending blocks completion (Wait)", nodes: with(with(fleet(4, v2), offline, "n03"), func(n *Node) { n.Hash = v1 }, "n03"),
			params: Params{OfflineNodes: api.OfflineWait}, phase: api.RolloutProgressing},
		{name: "an updated node gone offline does not use the budget", nodes: with(fleet(5, v1), func(n *Node) { inFlight(n); offline(n) }, "n00"),
			move: []string{"n01"}, counts: &Counts{Updated: 1, Total: 5, PrePulled: 1}},
		{name: "an offline node that returns is updated", nodes: with(fleet(4, v2), func(n *Node) { n.Hash = v1 }, "n02"),
			move: []string{"n02"}},
		{name: "zero matching nodes", nodes: nil, phase: api.RolloutComplete, msg: "no nodes match", counts: &Counts{}},
		{name: "nodes without a pod get one at once", nodes: with(fleet(4, v1), noPod, "n01", "n03"),
			move: []string{"n01", "n03"}, counts: &Counts{Unavailable: 2, Total: 4}},
		{name: "a new DaemonSet creates every pod", nodes: with(fleet(3, v1), noPod, "n00", "n01", "n02"),
			move: []string{"n00", "n01", "n02"}},
		{name: "nodes without a pod get one even when paused", nodes: with(fleet(3, v1), noPod, "n02"), params: Params{Paused: true},
			move: []string{"n02"}, phase: api.RolloutPaused},
		{name: "deadline failure stops the rollout", nodes: with(fleet(5, v1), late, "n00"),
			phase: api.RolloutFailed, failed: []string{"n00"}, msg: "progress deadline"},
		{name: "deadline failure rolls back", nodes: with(fleet(5, v1), late, "n00"), params: Params{OnFailure: api.OnFailureRollback, CanRollback: true},
			phase: api.RolloutRolledBack, rollback: true},
		{name: "rollback without a good revision fails", nodes: with(fleet(5, v1), late, "n00"), params: Params{OnFailure: api.OnFailureRollback},
			phase: api.RolloutFailed, msg: "no earlier good revision"},
		{name: "custom progress deadline", nodes: with(fleet(5, v1), inFlight, "n00"), params: Params{ProgressDeadline: 30 * time.Second},
			phase: api.RolloutFailed},
		{name: "revert is a failure", nodes: with(fleet(5, v1), reverted, "n00"),
			phase: api.RolloutFailed, msg: "CrashLoopBackOff", failed: []string{"n00"}},
		{name: "a tolerated revert does not hold the rollout", nodes: with(fleet(5, v1), reverted, "n00"), params: Params{MaxFailures: ios("1")},
			move: []string{"n01"}, phase: api.RolloutProgressing, counts: &Counts{Failed: 1, Total: 5}},
		{name: "maxFailures 20% of 10 tolerates 2", nodes: with(fleet(10, v1), reverted, "n00", "n01"), params: Params{MaxFailures: ios("20%")},
			move: []string{"n02"}},
		{name: "maxFailures 20% of 10 stops at 3", nodes: with(fleet(10, v1), reverted, "n00", "n01", "n02"), params: Params{MaxFailures: ios("20%")},
			phase: api.RolloutFailed},
		{name: "all nodes fail", nodes: with(fleet(3, v1), reverted, "n00", "n01", "n02"), params: Params{MaxFailures: ios("1"), OnFailure: api.OnFailureRollback, CanRollback: true},
			phase: api.RolloutRolledBack, rollback: true, counts: &Counts{Failed: 3, Total: 3}},
		{name: "failures while rolling back stop it", nodes: with(fleet(3, v1), reverted, "n00"), params: Params{OnFailure: api.OnFailureRollback, CanRollback: true, RollingBack: true},
			phase: api.RolloutFailed},
		{name: "rolling back progresses under the RolledBack phase", nodes: with(fleet(3, v1), onTarget, "n00"), params: Params{RollingBack: true},
			move: []string{"n01"}, phase: api.RolloutRolledBack, msg: "rolling back"},
		{name: "rolled back and complete", nodes: fleet(3, v2), params: Params{RollingBack: true},
			phase: api.RolloutRolledBack, msg: "rolled back to the last good revision"},
		{name: "failed nodes within tolerance end degraded, not complete", nodes: with(fleet(3, v2), reverted, "n01"), params: Params{MaxFailures: ios("1")},
			phase: api.RolloutDegraded, msg: "1 node(s) failed within maxFailures 1 and do not run this revision: n01: reverted: CrashLoopBackOff"},
		{name: "a missing tag fails the node at once", nodes: with(fleet(3, v1), func(n *Node) { inFlight(n); n.PullFailure = missingTag(false) }, "n00"),
			phase: api.RolloutFailed, failed: []string{"n00"}, msg: "n00: ErrImagePull: reg/app:nope: manifest unknown"},
		{name: "a missing tag rolls back at once", nodes: with(fleet(3, v1), func(n *Node) { inFlight(n); n.PullFailure = missingTag(false) }, "n00"),
			params: Params{OnFailure: api.OnFailureRollback, CanRollback: true}, phase: api.RolloutRolledBack, rollback: true},
		{name: "a flaky registry waits for the deadline, and says why", nodes: with(fleet(3, v1), func(n *Node) { inFlight(n); n.PullFailure = flaky(false) }, "n00"),
			phase: api.RolloutProgressing, msg: "updating n00 (ImagePullBackOff: connection refused)"},
		{name: "a flaky registry past the deadline fails with its reason", nodes: with(fleet(3, v1), func(n *Node) { late(n); n.PullFailure = flaky(false) }, "n00"),
			phase: api.RolloutFailed, failed: []string{"n00"}, msg: "progress deadline (10m0s): ErrImagePull: reg/app:v2: connection refused"},
		{name: "a crash loop past the deadline says so", nodes: with(fleet(3, v1), func(n *Node) { late(n); n.Waiting = "CrashLoopBackOff" }, "n00"),
			phase: api.RolloutFailed, msg: "progress deadline (10m0s): CrashLoopBackOff"},
		{name: "a pull failure of another spec is not this rollout's", nodes: with(fleet(3, v1), func(n *Node) { n.PullFailure = missingTag(false) }, "n00"),
			move: []string{"n00"}, phase: api.RolloutProgressing},
		{name: "a pre-pull of a missing tag fails the node", nodes: with(with(fleet(3, v1), prePull, "n01", "n02"), func(n *Node) { n.PullFailure = missingTag(true) }, "n00"),
			prePull: 3, params: Params{PrePull: true}, phase: api.RolloutFailed, failed: []string{"n00"}, msg: "pre-pull failed: reg/app:nope"},
		{name: "a tolerated pre-pull failure neither holds nor moves its node", nodes: with(with(fleet(3, v1), prePull, "n01", "n02"), func(n *Node) { n.PullFailure = missingTag(true) }, "n00"),
			prePull: 3, params: Params{PrePull: true, MaxFailures: ios("1")}, move: []string{"n01"}, phase: api.RolloutProgressing},
		{name: "a flaky pre-pull holds until the deadline", nodes: with(with(fleet(3, v1), prePull, "n01", "n02"), func(n *Node) { n.PullFailure = flaky(true) }, "n00"),
			prePull: 3, params: Params{PrePull: true}, started: t0.Add(-time.Minute), phase: api.RolloutProgressing, msg: "pre-pulling images: 2 of 3"},
		{name: "a flaky pre-pull past the deadline fails", nodes: with(with(fleet(3, v1), prePull, "n01", "n02"), func(n *Node) { n.PullFailure = flaky(true) }, "n00"),
			prePull: 3, params: Params{PrePull: true}, started: t0.Add(-11 * time.Minute), phase: api.RolloutFailed, msg: "images not staged within the progress deadline"},
		{name: "a pre-pull failure is not a failure without pre-pull", nodes: with(fleet(3, v1), func(n *Node) { n.PullFailure = missingTag(true) }, "n00"),
			move: []string{"n00"}},
		{name: "a late node that became available is not failed", nodes: with(fleet(3, v1), func(n *Node) { late(n); n.Ready = true }, "n00"),
			move: []string{"n01"}},
		{name: "paused", nodes: fleet(5, v1), params: Params{Paused: true}, phase: api.RolloutPaused},
		{name: "a rollback is not held by a pause", nodes: fleet(5, v1), params: Params{Paused: true, RollingBack: true, Canary: &api.CanarySpec{Count: ios("1")}},
			move: []string{"n00"}, phase: api.RolloutRolledBack},
		{name: "an unheard node is neither moved nor available", nodes: with(fleet(5, v1), func(n *Node) { n.Unheard = true }, "n00"),
			phase: api.RolloutProgressing, msg: "waiting to hear from 1 node(s) since the hub started",
			counts: &Counts{Unavailable: 1, Unheard: 1, Total: 5}},
		{name: "an unheard node past its deadline does not fail", nodes: with(fleet(5, v1), func(n *Node) { late(n); n.Unheard = true }, "n00"),
			phase: api.RolloutProgressing, counts: &Counts{Updated: 1, Unavailable: 1, Unheard: 1, Total: 5, PrePulled: 1}},
		{name: "an unheard node does not complete a rollout", nodes: with(fleet(3, v2), func(n *Node) { n.Unheard = true }, "n02"),
			phase: api.RolloutProgressing},
		{name: "offline nodes pending are named", nodes: with(with(fleet(4, v2), offline, "n03"), func(n *Node) { n.Hash = v1 }, "n03"),
			phase: api.RolloutComplete, msg: "1 offline node(s) pending (n03)"},
		{name: "canary count goes first", nodes: fleet(10, v1), params: Params{MaxUnavailable: ios("5"), Canary: &api.CanarySpec{Count: ios("2")}},
			move: []string{"n00", "n01"}, msg: "canary"},
		{name: "canary count waits for its nodes", nodes: with(fleet(10, v1), inFlight, "n00"), params: Params{MaxUnavailable: ios("5"), Canary: &api.CanarySpec{Count: ios("2")}},
			move: []string{"n01"}},
		{name: "canary count keeps nodes already moved", nodes: with(fleet(10, v1), onTarget, "n07"), params: Params{Canary: &api.CanarySpec{Count: ios("2")}},
			move: []string{"n00"}},
		{name: "canary count skips offline nodes", nodes: with(fleet(10, v1), offline, "n00"), params: Params{MaxUnavailable: ios("5"), Canary: &api.CanarySpec{Count: ios("2")}},
			move: []string{"n01", "n02"}},
		{name: "canary done pauses for resume", nodes: with(fleet(10, v1), onTarget, "n00", "n01"), params: Params{Canary: &api.CanarySpec{Count: ios("2")}},
			phase: api.RolloutPaused, pause: true, msg: "hub rollout resume"},
		{name: "resumed after the canary", nodes: with(fleet(10, v1), onTarget, "n00", "n01"), params: Params{Canary: &api.CanarySpec{Count: ios("2")}},
			state: State{CanaryDone: true, PausedAt: t0.Add(-time.Hour)}, move: []string{"n02"}},
		{name: "paused after the canary", nodes: with(fleet(10, v1), onTarget, "n00", "n01"), params: Params{Paused: true, Canary: &api.CanarySpec{Count: ios("2")}},
			state: State{CanaryDone: true, PausedAt: t0}, phase: api.RolloutPaused, msg: "resume"},
		{name: "canary pause for a duration", nodes: with(fleet(10, v1), onTarget, "n00", "n01"), params: Params{Canary: &api.CanarySpec{Count: ios("2"), PauseSeconds: i32(60)}},
			phase: api.RolloutPaused, msg: "pausing 60s, until 2026-01-01T12:01:00Z"},
		{name: "canary pause running", nodes: with(fleet(10, v1), onTarget, "n00", "n01"), params: Params{Canary: &api.CanarySpec{Count: ios("2"), PauseSeconds: i32(60)}},
			state: State{CanaryDone: true, PausedAt: t0.Add(-30 * time.Second)}, phase: api.RolloutPaused, msg: "until 2026-01-01T12:00:30Z"},
		{name: "canary pause over", nodes: with(fleet(10, v1), onTarget, "n00", "n01"), params: Params{Canary: &api.CanarySpec{Count: ios("2"), PauseSeconds: i32(60)}},
			state: State{CanaryDone: true, PausedAt: t0.Add(-61 * time.Second)}, move: []string{"n02"}},
		{name: "canary pause of 0 goes on at once", nodes: with(fleet(10, v1), onTarget, "n00", "n01"), params: Params{Canary: &api.CanarySpec{Count: ios("2"), PauseSeconds: i32(0)}},
			move: []string{"n02"}},
		{name: "canary by selector", nodes: with(fleet(10, v1), func(n *Node) { n.Labels = map[string]string{"ring": "canary"} }, "n05", "n07"),
			params: Params{MaxUnavailable: ios("3"), Canary: &api.CanarySpec{NodeSelector: map[string]string{"ring": "canary"}}},
			move:   []string{"n05", "n07"}},
		{name: "canary selector matching nothing is skipped", nodes: fleet(4, v1),
			params: Params{Canary: &api.CanarySpec{NodeSelector: map[string]string{"ring": "canary"}}}, move: []string{"n00"}},
		{name: "canary count larger than the fleet", nodes: fleet(3, v1), params: Params{MaxUnavailable: ios("5"), Canary: &api.CanarySpec{Count: ios("50")}},
			move: []string{"n00", "n01", "n02"}},
		{name: "canary larger than the fleet completes without a pause", nodes: fleet(3, v2), params: Params{Canary: &api.CanarySpec{Count: ios("50")}},
			phase: api.RolloutComplete},
		{name: "no canary on a fresh DaemonSet", nodes: with(fleet(3, v1), noPod, "n00", "n01", "n02"), params: Params{Canary: &api.CanarySpec{Count: ios("1")}},
			move: []string{"n00", "n01", "n02"}},
		{name: "a failed canary stops the rollout", nodes: with(fleet(10, v1), reverted, "n00"), params: Params{Canary: &api.CanarySpec{Count: ios("2")}},
			phase: api.RolloutFailed},
		{name: "a failed canary stops the rollout whatever maxFailures tolerates", nodes: with(fleet(10, v1), reverted, "n00"),
			params: Params{MaxFailures: ios("3"), Canary: &api.CanarySpec{Count: ios("2")}}, phase: api.RolloutFailed, msg: "canary failed: n00"},
		{name: "an offline canary does not pass", nodes: with(canaryFleet(), func(n *Node) { onTarget(n); offline(n) }, "n00"),
			params: Params{Canary: &api.CanarySpec{NodeSelector: map[string]string{"ring": "canary"}, PauseSeconds: i32(10)}},
			phase:  api.RolloutProgressing, msg: "waiting for offline canary n00"},
		{name: "an offline canary fails past the deadline", nodes: with(canaryFleet(), func(n *Node) { late(n); offline(n) }, "n00"),
			params: Params{Canary: &api.CanarySpec{NodeSelector: map[string]string{"ring": "canary"}, PauseSeconds: i32(10)}, OnFailure: api.OnFailureRollback, CanRollback: true},
			phase:  api.RolloutRolledBack, rollback: true, msg: "canary offline and not available within the progress deadline"},
		{name: "an offline canary that never got the revision fails past the deadline", nodes: with(canaryFleet(), offline, "n00"),
			params: Params{Canary: &api.CanarySpec{NodeSelector: map[string]string{"ring": "canary"}}}, started: t0.Add(-11 * time.Minute),
			phase: api.RolloutFailed, msg: "canary offline, not updated"},
		{name: "an unready canary does not pass", nodes: with(canaryFleet(), inFlight, "n00"),
			params: Params{Canary: &api.CanarySpec{NodeSelector: map[string]string{"ring": "canary"}, PauseSeconds: i32(10)}},
			phase:  api.RolloutProgressing, msg: "canary: updating n00 first"},
		{name: "pre-pull holds the first wave", nodes: with(fleet(4, v1), prePull, "n00", "n01"), params: Params{PrePull: true},
			phase: api.RolloutProgressing, msg: "pre-pulling images: 2 of 4", prePull: 4, counts: &Counts{Total: 4, PrePulled: 2}},
		{name: "pre-pulled everywhere", nodes: with(fleet(4, v1), prePull, "n00", "n01", "n02", "n03"), params: Params{PrePull: true},
			move: []string{"n00"}, prePull: 4},
		{name: "pre-pull skips offline nodes (Skip)", nodes: with(with(fleet(4, v1), prePull, "n00", "n01", "n02"), offline, "n03"), params: Params{PrePull: true},
			move: []string{"n00"}, prePull: 4},
		{name: "pre-pull waits for offline nodes (Wait)", nodes: with(with(fleet(4, v1), prePull, "n00", "n01", "n02"), offline, "n03"),
			params: Params{PrePull: true, OfflineNodes: api.OfflineWait}, msg: "waiting for n03", prePull: 4},
		{name: "no pre-pull when rolling back", nodes: fleet(4, v1), params: Params{PrePull: true, RollingBack: true},
			move: []string{"n00"}, prePull: 0},
		{name: "OnDelete moves nothing", nodes: fleet(4, v1), params: Params{OnDelete: true},
			phase: api.RolloutProgressing, msg: "OnDelete"},
		{name: "OnDelete recreates a deleted pod on the target", nodes: with(fleet(4, v1), noPod, "n02"), params: Params{OnDelete: true},
			move: []string{"n02"}},
		{name: "minReadySeconds holds the next node", nodes: with(fleet(4, v1), func(n *Node) { onTarget(n); n.ReadySince = t0.Add(-5 * time.Second) }, "n00"),
			params: Params{MinReady: 10 * time.Second}, counts: &Counts{Updated: 1, Unavailable: 1, Total: 4, PrePulled: 1}},
		{name: "minReadySeconds passed", nodes: with(fleet(4, v1), func(n *Node) { onTarget(n); n.ReadySince = t0.Add(-10 * time.Second) }, "n00"),
			params: Params{MinReady: 10 * time.Second}, move: []string{"n01"}},
		{name: "invalid budget falls back to defaults", nodes: fleet(4, v1), params: Params{MaxUnavailable: &api.IntOrString{IsString: true, StrVal: "lots"}},
			move: []string{"n00"}, msg: "maxUnavailable"},
		{name: "complete", nodes: fleet(4, v2), phase: api.RolloutComplete, counts: &Counts{Updated: 4, Ready: 4, Total: 4, PrePulled: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			in := Input{Target: v2, Nodes: tc.nodes, Params: tc.params, State: tc.state, StartedAt: tc.started, Now: now}
			got := Plan(in)
			if !slices.Equal(got.Move, tc.move) {
				t.Errorf("move = %v, want %v (%s)", got.Move, tc.move, got.Message)
			}
			if tc.phase != "" && got.Phase != tc.phase {
				t.Errorf("phase = %s, want %s (%s)", got.Phase, tc.phase, got.Message)
			}
			if tc.msg != "" && !strings.Contains(got.Message, tc.msg) {
				t.Errorf("message %q lacks %q", got.Message, tc.msg)
			}
			if tc.counts != nil && got.Counts != *tc.counts {
				t.Errorf("counts = %+v, want %+v", got.Counts, *tc.counts)
			}
			if got.Rollback != tc.rollback || got.Pause != tc.pause {
				t.Errorf("rollback, pause = %v, %v; want %v, %v", got.Rollback, got.Pause, tc.rollback, tc.pause)
			}
			if len(got.PrePull) != tc.prePull {
				t.Errorf("prePull = %v, want %d nodes", got.PrePull, tc.prePull)
			}
			if tc.failed != nil {
				var names []string
				for _, f := range got.Failed {
					names = append(names, f.Node)
				}
				if !slices.Equal(names, tc.failed) {
					t.Errorf("failed = %v, want %v", got.Failed, tc.failed)
				}
			}
			// The planner depends on its input only: the same input, in
			// any order, plans the same (a restarted hub plans as before).
			shuffled := slices.Clone(tc.nodes)
			rand.New(rand.NewSource(1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			in.Nodes = shuffled
			again := Plan(in)
			if !slices.Equal(again.Move, got.Move) || again.Phase != got.Phase || again.Message != got.Message || again.Counts != got.Counts {
				t.Errorf("re-planning differs: %+v vs %+v", again, got)
			}
		})
	}
}

func TestPlanCanaryStateAndWake(t *testing.T) {
	nodes := with(fleet(10, v1), onTarget, "n00", "n01")
	res := Plan(Input{Target: v2, Nodes: nodes, Now: t0, Params: Params{Canary: &api.CanarySpec{Count: ios("2"), PauseSeconds: i32(60)}}})
	if !res.State.CanaryDone || !res.State.PausedAt.Equal(t0) || !res.Wake.Equal(t0.Add(time.Minute)) {
		t.Fatalf("state = %+v, wake = %v", res.State, res.Wake)
	}
	// A node reaching minReadySeconds wakes the planner.
	nodes = with(fleet(4, v1), func(n *Node) { onTarget(n); n.ReadySince = t0.Add(-5 * time.Second) }, "n00")
	res = Plan(Input{Target: v2, Nodes: nodes, Now: t0, Params: Params{MinReady: 10 * time.Second}})
	if !res.Wake.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("wake = %v", res.Wake)
	}
	// A node in flight wakes it at its deadline.
	nodes = with(fleet(4, v1), inFlight, "n00")
	res = Plan(Input{Target: v2, Nodes: nodes, Now: t0})
	if want := t0.Add(-time.Minute).Add(DefaultProgressDeadline); !res.Wake.Equal(want) {
		t.Fatalf("wake = %v, want %v", res.Wake, want)
	}
}

func TestBudget(t *testing.T) {
	for _, tc := range []struct {
		unav, surge string
		total       int
		wantU       int
		wantS       int
	}{
		{"1", "0", 10, 1, 0},
		{"25%", "25%", 10, 2, 3},
		{"10%", "0", 15, 1, 0},
		{"10%", "10%", 15, 1, 2},
		{"0", "0", 5, 1, 0},
		{"0%", "0%", 5, 1, 0},
		{"5%", "0", 10, 1, 0},
		{"100%", "0", 7, 7, 0},
		{"0", "1%", 1, 0, 1},
		{"3", "0", 0, 3, 0},
	} {
		u, s, err := Budget(ios(tc.unav), ios(tc.surge), tc.total, api.FromInt(1), api.FromInt(0))
		if err != nil || u != tc.wantU || s != tc.wantS {
			t.Errorf("Budget(%s, %s, %d) = %d, %d, %v; want %d, %d", tc.unav, tc.surge, tc.total, u, s, err, tc.wantU, tc.wantS)
		}
	}
	if u, s, _ := Budget(nil, nil, 8, api.FromString("25%"), api.FromString("25%")); u != 2 || s != 2 {
		t.Errorf("defaults = %d, %d", u, s)
	}
}

// TestPlanNeverExceedsBudget runs whole rollouts over random fleets:
// agents take a random number of passes to make a moved pod Ready, and
// nodes go offline and come back. The online nodes without an available
// pod never exceed maxUnavailable, no node ever goes back to the old
// revision, and every rollout completes.
func TestPlanNeverExceedsBudget(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	for shape := 0; shape < 300; shape++ {
		size := 1 + rng.Intn(60)
		var unav *api.IntOrString
		switch rng.Intn(3) {
		case 0:
			unav = ios(fmt.Sprint(rng.Intn(4)))
		case 1:
			unav = ios(fmt.Sprintf("%d%%", rng.Intn(40)))
		}
		maxU, _, _ := Budget(unav, nil, size, api.FromInt(1), api.FromInt(0))
		// A deadline longer than the run: nodes here flap offline for
		// minutes, and an offline canary past its deadline fails the
		// rollout, which this test is not about.
		params := Params{MaxUnavailable: unav, OfflineNodes: []api.OfflinePolicy{api.OfflineSkip, api.OfflineWait}[rng.Intn(2)], ProgressDeadline: 24 * time.Hour}
		if rng.Intn(3) == 0 {
			params.Canary = &api.CanarySpec{Count: ios(fmt.Sprint(1 + rng.Intn(3))), PauseSeconds: i32(0)}
		}
		nodes := fleet(size, v1)
		readyIn := map[string]int{}
		now := t0
		var state State
		completed := false
		for pass := 0; pass < 20*size+50; pass++ {
			now = now.Add(time.Second)
			// Agents: moved pods become Ready after a few passes; nodes
			// flap now and then.
			for i := range nodes {
				n := &nodes[i]
				if n.Hash == v2 && !n.Ready && n.Online {
					if readyIn[n.Name]--; readyIn[n.Name] <= 0 {
						n.Ready = true
					}
				}
				if rng.Intn(200) == 0 {
					n.Online = !n.Online
					n.Ready = n.Online && (n.Hash == v1 || readyIn[n.Name] <= 0)
				}
			}
			if pass > 10*size+20 {
				for i := range nodes { // let the fleet settle
					if !nodes[i].Online {
						nodes[i].Online = true
						nodes[i].Ready = nodes[i].Hash == v1 || readyIn[nodes[i].Name] <= 0
					}
				}
			}
			res := Plan(Input{Target: v2, Nodes: nodes, Params: params, State: state, Now: now})
			state = res.State
			if res.Phase == api.RolloutComplete && pass > 10*size+20 {
				completed = true
				break
			}
			before := unavailableOnline(nodes)
			for _, name := range res.Move {
				i := slices.IndexFunc(nodes, func(n Node) bool { return n.Name == name })
				if nodes[i].Hash == v2 {
					t.Fatalf("shape %d: node %s moved twice", shape, name)
				}
				nodes[i].Hash, nodes[i].Ready, nodes[i].MovedAt = v2, false, now
				readyIn[name] = 1 + rng.Intn(4)
			}
			// Moves never take the count above the budget. (Nodes that come
			// back online not Ready may; the planner then moves no
			// available node until the count is under the budget again.)
			if after := unavailableOnline(nodes); after > max(maxU, before) {
				t.Fatalf("shape %d (size %d, maxUnavailable %d): %d online nodes unavailable after pass %d, %d before",
					shape, size, maxU, after, pass, before)
			}
		}
		if !completed {
			t.Fatalf("shape %d (size %d, %+v) did not complete", shape, size, params)
		}
	}
}

func unavailableOnline(nodes []Node) int {
	n := 0
	for _, node := range nodes {
		if node.Online && !node.Ready {
			n++
		}
	}
	return n
}

// BenchmarkPlan10k plans one step of a rollout over 10,000 nodes, a
// quarter of them done, some in flight, some offline.
func BenchmarkPlan10k(b *testing.B) {
	nodes := fleet(10000, v1)
	for i := range nodes {
		nodes[i].Name = fmt.Sprintf("node-%05d", i)
		nodes[i].Labels = map[string]string{"site": fmt.Sprintf("s%d", i%50)}
		switch {
		case i%4 == 0:
			nodes[i].Hash, nodes[i].MovedAt = v2, t0.Add(-time.Minute)
		case i%97 == 0:
			nodes[i].Online, nodes[i].Ready = false, false
		}
	}
	for i := 1; i < 10000; i += 400 {
		nodes[i].Hash, nodes[i].Ready, nodes[i].MovedAt = v2, false, t0.Add(-time.Minute)
	}
	params := Params{MaxUnavailable: ios("5%"), MaxFailures: ios("1%"), Canary: &api.CanarySpec{Count: ios("10")}, PrePull: false}
	state := State{CanaryDone: true}
	b.ReportAllocs()
	for b.Loop() {
		res := Plan(Input{Target: v2, Nodes: nodes, Params: params, State: state, Now: t0})
		if len(res.Move) == 0 {
			b.Fatal("nothing moved")
		}
	}
}
