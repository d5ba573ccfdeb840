package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Rollbacks remembers, per pod, the last spec that ran Ready and a spec
// the agent refused, so that the agent can take a bad update back on its
// own, even while it cannot reach the hub, and keep it back across its own
// restarts.
type Rollbacks interface {
	LastGood(uid string) (wire.SnapshotPod, bool, error)
	SaveGood(pod wire.SnapshotPod) error
	Rejection(uid string) (Rejection, bool, error)
	SaveRejection(uid string, r Rejection) error
	Forget(uid string) error
}

// Rejection is a spec the agent gave up on, and why.
type Rejection struct {
	SpecHash string    `json:"specHash"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// crashLoopRestarts is how many restarts of a new spec's container make
// the agent give up on that spec.
const crashLoopRestarts = 3

// goodAfter is how long a pod must stay Ready, without a restart, before
// its spec counts as good: a crash-looping container is Ready between its
// crashes, and must not become the spec to go back to.
const goodAfter = 30 * time.Second

// trial is a spec the agent is trying on a pod that had a good one.
type trial struct {
	hash  string
	since time.Time
}

// effective returns the pods the node should really run: the snapshot's,
// except those whose desired spec the agent rejected, which run their last
// good spec instead (with the revert to report).
func (r *Reconciler) effective(snap wire.Snapshot) (wire.Snapshot, map[string]*wire.Revert) {
	if r.cfg.Rollbacks == nil {
		return snap, nil
	}
	out := snap
	out.Pods = make([]wire.SnapshotPod, len(snap.Pods))
	reverts := map[string]*wire.Revert{}
	for i, p := range snap.Pods {
		out.Pods[i] = p
		rej, ok, err := r.cfg.Rollbacks.Rejection(p.UID)
		if err != nil || !ok || rej.SpecHash == "" {
			continue
		}
		if rej.SpecHash != p.SpecHash {
			// The hub sent another spec: try it.
			if err := r.cfg.Rollbacks.SaveRejection(p.UID, Rejection{}); err != nil {
				r.log.Warn("clear rejection", "pod", p.Namespace+"/"+p.Name, "err", err)
			}
			continue
		}
		good, ok, err := r.cfg.Rollbacks.LastGood(p.UID)
		if err != nil || !ok {
			continue
		}
		good.Name, good.Namespace, good.UID = p.Name, p.Namespace, p.UID
		good.PrePull, good.ProgressDeadlineSeconds = nil, 0
		out.Pods[i] = good
		reverts[p.UID] = &wire.Revert{FromSpecHash: p.SpecHash, ToSpecHash: good.SpecHash, Reason: rej.Reason}
	}
	return out, reverts
}

// judge watches pods whose spec changed under a progress deadline: it
// records a spec as good once the pod is Ready with it, and rejects a new
// spec that crash-loops or is not Ready in time, so the next pass runs the
// last good spec again. It runs in the loop goroutine.
func (r *Reconciler) judge(plans map[string]*podPlan, reverts map[string]*wire.Revert) {
	if r.cfg.Rollbacks == nil {
		return
	}
	r.forgetJudgements(plans)
	now := r.now()
	for uid, plan := range plans {
		switch {
		case reverts[uid] != nil:
			r.withPod(uid, func(s *podState) { s.trial = trial{} })
		case r.podReady(plan):
			r.withPod(uid, func(s *podState) { s.trial = trial{} })
			r.maybeSaveGood(plan)
		case plan.pod.ProgressDeadlineSeconds > 0:
			r.judgeTrial(plan, now)
		}
	}
}

// maybeSaveGood saves the spec of a Ready pod as its last good one, once
// it has been Ready for goodAfter.
func (r *Reconciler) maybeSaveGood(plan *podPlan) {
	pod := plan.pod
	var saved string
	r.withPod(pod.UID, func(s *podState) { saved = s.goodHash })
	if saved == pod.SpecHash || r.readyFor(plan) < goodAfter {
		return
	}
	if err := r.cfg.Rollbacks.SaveGood(*pod); err != nil {
		r.log.Warn("remember good spec", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return
	}
	r.withPod(pod.UID, func(s *podState) { s.goodHash = pod.SpecHash })
}

// judgeTrial follows a pod that is not Ready under a progress deadline
// and has a good spec to go back to: it rejects the pod's spec when a
// container crash-loops, or the deadline passes.
func (r *Reconciler) judgeTrial(plan *podPlan, now time.Time) {
	pod := plan.pod
	good, ok, err := r.cfg.Rollbacks.LastGood(pod.UID)
	if err != nil {
		r.log.Error("read the pod's last good spec", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return
	}
	if !ok || good.SpecHash == pod.SpecHash {
		return // nothing to go back to
	}
	var t trial
	r.withPod(pod.UID, func(s *podState) {
		if s.trial.hash != pod.SpecHash {
			s.trial = trial{hash: pod.SpecHash, since: now}
		}
		t = s.trial
	})
	reason := ""
	for i := range pod.Spec.Containers {
		name := pod.Spec.Containers[i].Name
		rec, err := r.cfg.History.Restarts(ContainerID(pod, name))
		if err != nil {
			r.log.Error("read restart history", "pod", pod.Namespace+"/"+pod.Name, "container", name, "err", err)
			continue
		}
		if rec.Restarts >= crashLoopRestarts {
			reason = fmt.Sprintf("container %s crash-looped (%d restarts)", name, rec.Restarts)
		}
	}
	if deadline := time.Duration(pod.ProgressDeadlineSeconds) * time.Second; reason == "" && now.Sub(t.since) > deadline {
		reason = fmt.Sprintf("not Ready within the progress deadline of %s", deadline)
	}
	if reason == "" {
		return
	}
	if err := r.cfg.Rollbacks.SaveRejection(pod.UID, Rejection{SpecHash: pod.SpecHash, Reason: reason, At: now}); err != nil {
		r.log.Error("record rejected spec", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return
	}
	r.withPod(pod.UID, func(s *podState) { s.trial = trial{} })
	r.log.Warn("reverting pod to its last good spec", "pod", pod.Namespace+"/"+pod.Name, "from", pod.SpecHash, "to", good.SpecHash, "reason", reason)
	r.emit(pod, "", api.EventWarning, "RolledBack", fmt.Sprintf("Reverted to the last good spec (%s): new spec %s %s", good.SpecHash, pod.SpecHash, reason))
	r.Wake()
}

// readyFor is how long every container of the plan's pod has been
// running, as a lower bound of how long the pod has been Ready.
func (r *Reconciler) readyFor(plan *podPlan) time.Duration {
	var least time.Duration = -1
	for i := range plan.pod.Spec.Containers {
		c := plan.current[plan.pod.Spec.Containers[i].Name]
		if d := r.now().Sub(c.StartedAt); least < 0 || d < least {
			least = d
		}
	}
	return least
}

// podReady reports whether every container of the plan's pod runs at the
// current spec and is Ready.
func (r *Reconciler) podReady(plan *podPlan) bool {
	for i := range plan.pod.Spec.Containers {
		c, ok := plan.current[plan.pod.Spec.Containers[i].Name]
		if !ok || c.State != TaskRunning || !r.probeStatus(c.ID).Ready {
			return false
		}
	}
	return len(plan.pod.Spec.Containers) > 0
}

// prePull stages the images a coming rollout will need, in a worker of its
// own so that the pod keeps running and its other work is not held up.
func (r *Reconciler) prePull(ctx context.Context, pod *wire.SnapshotPod) time.Time {
	if len(pod.PrePull) == 0 {
		return time.Time{}
	}
	want := strings.Join(pod.PrePull, ",")
	var done bool
	r.withPod(pod.UID, func(s *podState) { done = s.prepulled == want })
	if done {
		return time.Time{}
	}
	// The images' pull back-off holds a pre-pull as it holds a start.
	for _, img := range pod.PrePull {
		if f, held := r.pulls.holding(img, api.PullIfNotPresent, r.now()); held {
			r.holdPull(pod.UID, "", img, f)
			r.emitAll(r.announcement(pod, "", "", img, f))
			return f.Next
		}
	}
	images := slices.Clone(pod.PrePull)
	r.spawn(ctx, pod.UID, prePullWorker, func(ctx context.Context) { r.prePullImages(ctx, pod, images, want) })
	return time.Time{}
}

// prePullImages is the pre-pull's worker: it pulls images in turn, and
// records them staged once all are.
func (r *Reconciler) prePullImages(ctx context.Context, pod *wire.SnapshotPod, images []string, want string) {
	for _, img := range images {
		present, f, tried := r.fetch(ctx, img, api.PullIfNotPresent)
		if present {
			continue
		}
		if f.Attempts == 0 {
			return // ctx ended
		}
		r.holdPull(pod.UID, "", img, f)
		if tried {
			r.log.Warn("pre-pull image failed; backing off", "pod", pod.Namespace+"/"+pod.Name, "image", img,
				"attempt", f.Attempts, "permanent", f.Permanent, "retryIn", f.Next.Sub(r.now()).Round(time.Second), "err", f.Message)
			r.emit(pod, "", api.EventWarning, "Failed", fmt.Sprintf("Failed to pre-pull image %q: %s", img, f.Message))
		} else {
			r.emitAll(r.announcement(pod, "", "", img, f))
		}
		return
	}
	r.withPod(pod.UID, func(s *podState) {
		s.prepulled = want
		s.prePull.wait, s.prePull.retry = waitState{}, retryState{}
	})
	r.emit(pod, "", api.EventNormal, "PrePulled", fmt.Sprintf("Staged %d image(s) for the coming rollout", len(images)))
}

// prePullFailure returns the failure of the pre-pull of raw (the pod as
// the snapshot has it) while a pull of it fails; runs is the spec the pod
// runs.
func (r *Reconciler) prePullFailure(raw, runs *wire.SnapshotPod) *api.ImagePullFailure {
	w, ok := r.waiting(raw.UID, "")
	if !ok || w.reason != reasonErrImagePull || !slices.Contains(raw.PrePull, w.image) {
		return nil
	}
	f, ok := r.pulls.get(w.image)
	if !ok {
		return nil
	}
	return f.status(w.image, runs.SpecHash, true)
}

// isPrePulled reports whether pod's pre-pull list is on the board.
func (r *Reconciler) isPrePulled(pod *wire.SnapshotPod) bool {
	if len(pod.PrePull) == 0 {
		return false
	}
	var staged string
	r.withPod(pod.UID, func(s *podState) { staged = s.prepulled })
	return staged == strings.Join(pod.PrePull, ",")
}
