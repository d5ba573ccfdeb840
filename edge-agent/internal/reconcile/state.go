package reconcile

import (
	"net/netip"
	"reflect"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/probe"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// What the reconciler remembers between passes, one podState per pod and
// one containerState per container (all its runs). One rule guards all
// of it: it is read and written only under Reconciler.mu, through the
// methods below, by the loop and the pod workers alike, and no pointer
// into it is kept past an unlock. Nothing in it must survive an agent
// restart: what must (restart counts and back-off, the last good spec)
// is in the History and the Rollbacks.

// workerKind names one of a pod's workers; at most one of each runs at a
// time.
type workerKind int

const (
	// podWorker creates, starts, restarts and replaces the pod's
	// containers.
	podWorker workerKind = iota
	// prePullWorker pulls the images of the pod's coming rollout.
	prePullWorker
	// removeWorker removes the containers of a pod that is no longer
	// desired, or a container that is not Flotilla's.
	removeWorker
	workerKinds
)

// foreignOwner is the owner of a container that carries no pod UID: it is
// not Flotilla's, and is removed by a worker of its own.
func foreignOwner(c Container) string { return "foreign:" + c.ID }

// podState is what the reconciler remembers of one pod.
type podState struct {
	// workers says which of the pod's workers run.
	workers [workerKinds]bool
	// prePull is the pod's pre-pull's wait for an image's pull back-off;
	// prepulled, the pre-pull list staged for it.
	prePull   hold
	prepulled string
	// trial is the spec under trial against a progress deadline, and
	// goodHash the last spec this agent saved as good (see judge).
	trial    trial
	goodHash string
	// containers are the pod's containers, by container key
	// (ContainerID).
	containers map[string]*containerState
	// etcIP is the address the pod's hosts file was last written for.
	etcIP netip.Addr
}

// containerState is what the reconciler remembers of one container.
type containerState struct {
	hold hold
	// restarting: a pass handed the container's exit to the pod's
	// worker, which records it along with the restart (see planExited);
	// the container is left alone until that worker is done.
	restarting bool
	// health is the last probe state of run healthRun, kept to report
	// its changes as events.
	healthRun string
	health    probe.Status
	// deviceWait is why the container last waited for its devices, as
	// reported (devices.go); "" once it has them.
	deviceWait string
}

// hold is why a container (or a pod's pre-pull) is not running and when
// it may be tried again.
type hold struct {
	wait  waitState
	retry retryState
	// announced is the end of the pull back-off step last reported with
	// a BackOff event.
	announced time.Time
}

// waitState is a waiting reason; the zero value is not waiting.
type waitState struct {
	reason, message string
	// image is the image whose pull the container (or pre-pull) waits
	// for, when reason is reasonErrImagePull.
	image string
}

// retryState is the back-off of a container whose pull, create or start
// failed, so a persistent failure is retried at kubelet's pace, not in a
// hot loop.
type retryState struct {
	failures int
	next     time.Time
}

// empty reports whether s remembers nothing, so it can go.
func (s *podState) empty() bool {
	return s.workers == [workerKinds]bool{} && s.prePull == (hold{}) && s.prepulled == "" &&
		s.trial == (trial{}) && s.goodHash == "" && len(s.containers) == 0 && !s.etcIP.IsValid()
}

// hold returns the hold of container key, or with key "" the pre-pull's.
func (s *podState) hold(key string) *hold {
	if key == "" {
		return &s.prePull
	}
	return &s.container(key).hold
}

// container returns container key's state, made if it has none.
func (s *podState) container(key string) *containerState {
	c := s.containers[key]
	if c == nil {
		c = &containerState{}
		s.containers[key] = c
	}
	return c
}

// podLocked returns the state of the pod (or foreign container) owner,
// made if it has none. The caller holds mu.
func (r *Reconciler) podLocked(owner string) *podState {
	s := r.pods[owner]
	if s == nil {
		s = &podState{containers: map[string]*containerState{}}
		r.pods[owner] = s
	}
	return s
}

// withPod runs f on the state of pod uid with mu held: f must be quick
// and must not call out of the reconciler.
func (r *Reconciler) withPod(uid string, f func(s *podState)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r.podLocked(uid))
}

// withContainer runs f on the state of container key of pod uid, as
// withPod.
func (r *Reconciler) withContainer(uid, key string, f func(c *containerState)) {
	r.withPod(uid, func(s *podState) { f(s.container(key)) })
}

// The holds. A hold is named by its pod's UID and a container key, or ""
// for the pod's pre-pull.

func (r *Reconciler) setWaiting(uid, key, reason, message string) {
	r.withPod(uid, func(s *podState) { s.hold(key).wait = waitState{reason: reason, message: message} })
}

// clearWaiting forgets why a container waits, and its back-off: it runs.
func (r *Reconciler) clearWaiting(uid, key string) {
	r.withPod(uid, func(s *podState) {
		h := s.hold(key)
		h.wait, h.retry = waitState{}, retryState{}
	})
}

// waiting returns why a container (or pre-pull) waits, if it does.
func (r *Reconciler) waiting(uid, key string) (w waitState, ok bool) {
	r.withPod(uid, func(s *podState) { w = s.hold(key).wait })
	return w, w.reason != ""
}

// retryWait returns when a failed step of a container may be retried, or
// zero.
func (r *Reconciler) retryWait(uid, key string) time.Time {
	var next time.Time
	r.withPod(uid, func(s *podState) { next = s.hold(key).retry.next })
	if !next.After(r.now()) {
		return time.Time{}
	}
	return next
}

// failed records why a container could not be pulled, created or started
// and backs off its next attempt.
func (r *Reconciler) failed(uid, key, reason string, err error) {
	now := r.now()
	r.withPod(uid, func(s *podState) {
		h := s.hold(key)
		h.retry.failures++
		h.retry.next = now.Add(backoffDelay(h.retry.failures))
		h.wait = waitState{reason: reason, message: err.Error()}
	})
}

// holdPull makes a container (or pre-pull) wait for image's pull
// back-off f.
func (r *Reconciler) holdPull(uid, key, image string, f pullFailure) {
	r.withPod(uid, func(s *podState) {
		h := s.hold(key)
		h.retry.next = f.Next
		h.wait = waitState{reason: reasonErrImagePull, message: f.Message, image: image}
	})
}

// announce records that a container's (or pre-pull's) wait for the pull
// back-off step ending at next is reported, and says whether it was not
// yet.
func (r *Reconciler) announce(uid, key string, next time.Time) (first bool) {
	r.withPod(uid, func(s *podState) {
		h := s.hold(key)
		first = !h.announced.Equal(next)
		h.announced = next
	})
	return first
}

// setRestarting marks (or clears) a container's exit as handed to its
// pod's worker.
func (r *Reconciler) setRestarting(uid, key string, on bool) {
	r.withContainer(uid, key, func(c *containerState) { c.restarting = on })
}

// restartUnderway says whether a container's exit is handed to its pod's
// worker, and whether that pod has a worker running.
func (r *Reconciler) restartUnderway(uid, key string) (underway, busy bool) {
	r.withPod(uid, func(s *podState) {
		underway, busy = s.container(key).restarting, s.workers[podWorker]
	})
	return underway, busy
}

func (r *Reconciler) setRevision(rev uint64) {
	r.mu.Lock()
	r.revision = rev
	r.mu.Unlock()
}

// currentRevision is the revision of the snapshot the current pass works
// from, which new containers are labelled with.
func (r *Reconciler) currentRevision() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.revision
}

// forget drops the waits, back-offs and announcements of containers (and
// pre-pulls) that are neither desired nor on the board any more, and the
// state of pods left with nothing in it.
func (r *Reconciler) forget(raw, snap wire.Snapshot, containers []Container) {
	keep := map[string]bool{}        // container keys
	keepPrePull := map[string]bool{} // pod UIDs
	for _, s := range []wire.Snapshot{raw, snap} {
		for i := range s.Pods {
			p := &s.Pods[i]
			keepPrePull[p.UID] = true
			for j := range p.Spec.Containers {
				keep[ContainerID(p, p.Spec.Containers[j].Name)] = true
			}
		}
	}
	for _, c := range containers {
		if c.Labels[LabelPodUID] != "" {
			keep[containerKey(c)] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for owner, s := range r.pods {
		if !keepPrePull[owner] {
			s.prePull = hold{}
		}
		for key, c := range s.containers {
			if !keep[key] {
				c.hold, c.deviceWait = hold{}, ""
			}
			if *c == (containerState{}) {
				delete(s.containers, key)
			}
		}
		if s.empty() {
			delete(r.pods, owner)
		}
	}
}

// forgetHealth drops the probe states of runs that are not live.
func (r *Reconciler) forgetHealth(live map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.pods {
		for _, c := range s.containers {
			if c.healthRun != "" && !live[c.healthRun] {
				c.healthRun, c.health = "", probe.Status{}
			}
		}
	}
}

// forgetJudgements drops the trial and the good spec of pods that are
// not planned any more.
func (r *Reconciler) forgetJudgements(plans map[string]*podPlan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for uid, s := range r.pods {
		if plans[uid] == nil {
			s.goodHash, s.trial, s.etcIP = "", trial{}, netip.Addr{}
		}
	}
}

// newReport records rep as the last report and says whether it differs
// from the one before.
func (r *Reconciler) newReport(rep wire.PodStatusReport) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastReport != nil && reflect.DeepEqual(*r.lastReport, rep) {
		return false
	}
	r.lastReport = &rep
	return true
}
