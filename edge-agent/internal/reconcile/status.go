package reconcile

import (
	"fmt"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/probe"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// report builds the node's pod status and hands it on if it changed. It
// returns false if the status could not be built (a restart count could
// not be read): the last report then stands, rather than one that says
// the containers never restarted, and the caller tries again soon.
func (r *Reconciler) report(raw, snap wire.Snapshot, plans map[string]*podPlan, reverts map[string]*wire.Revert) bool {
	rep := wire.PodStatusReport{ObservedRevision: snap.Revision, Pods: make([]wire.PodReport, 0, len(snap.Pods))}
	for i := range snap.Pods {
		pod := &snap.Pods[i]
		st, err := r.podStatus(pod, plans[pod.UID])
		if err != nil {
			r.log.Error("pod status; keeping the last one reported", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			return false
		}
		prePulled := r.isPrePulled(&raw.Pods[i])
		if st.PullFailure == nil && !prePulled {
			st.PullFailure = r.prePullFailure(&raw.Pods[i], pod)
		}
		rep.Pods = append(rep.Pods, wire.PodReport{
			UID: pod.UID, Name: pod.Name, Namespace: pod.Namespace, SpecHash: pod.SpecHash,
			Status:    st,
			PrePulled: prePulled,
			Reverted:  reverts[pod.UID],
		})
	}
	if r.newReport(rep) && r.cfg.Report != nil {
		r.cfg.Report(rep)
	}
	return true
}

// tally counts a pod's containers by state, for its phase and its Ready
// condition.
type tally struct {
	containers, running, succeeded, failed, ready int
}

// phase is the pod's phase, as kubelet derives it. started: a container
// of the pod has started.
func (n tally) phase(started bool) api.PodPhase {
	switch {
	case n.succeeded == n.containers:
		return api.PodSucceeded
	case n.succeeded+n.failed == n.containers:
		return api.PodFailed
	case n.running > 0 || started:
		// A pod whose containers have started stays Running while one
		// restarts, as in Kubernetes.
		return api.PodRunning
	}
	return api.PodPending
}

// podStatus derives a pod's status, as kubelet would show it.
func (r *Reconciler) podStatus(pod *wire.SnapshotPod, plan *podPlan) (api.PodStatus, error) {
	st := api.PodStatus{HostIP: r.cfg.HostIP, SpecHash: pod.SpecHash}
	st.PodIP, st.PodIPs = r.podIPs(pod)
	n := tally{containers: len(pod.Spec.Containers)}
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		c, exists := plan.current[spec.Name]
		if exists && !c.StartedAt.IsZero() && (st.StartTime.IsZero() || c.StartedAt.Before(st.StartTime.Time)) {
			st.StartTime = api.NewTime(c.StartedAt)
		}
		cst, pull, err := r.containerStatus(pod, spec, c, exists, &n)
		if err != nil {
			return st, err
		}
		if pull != nil && st.PullFailure == nil {
			st.PullFailure = pull
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cst)
	}
	st.Phase = n.phase(!st.StartTime.IsZero())
	readyStatus := api.ConditionFalse
	if n.ready == n.containers {
		readyStatus = api.ConditionTrue
	}
	st.Conditions = []api.PodCondition{{Type: api.PodReady, Status: readyStatus}}
	return st, nil
}

// containerStatus derives one container's status (c, if it exists, is its
// newest run) and counts it in n; pull is the failure of the pull it
// waits for, if that fails.
func (r *Reconciler) containerStatus(pod *wire.SnapshotPod, spec *api.Container, c Container, exists bool, n *tally) (
	cst api.ContainerStatus, pull *api.ImagePullFailure, err error,
) {
	key := ContainerID(pod, spec.Name)
	cst = api.ContainerStatus{Name: spec.Name, Image: spec.Image}
	rec, err := r.cfg.History.Restarts(key)
	if err != nil {
		return cst, nil, fmt.Errorf("read the restart history of container %s: %w", spec.Name, err)
	}
	cst.RestartCount = rec.Restarts
	if rec.Last != nil {
		cst.LastState.Terminated = terminated(*rec.Last)
	}
	if exists {
		cst.ContainerID = "containerd://" + c.ID
	}
	w, isWaiting := r.waiting(pod.UID, key)
	switch {
	case exists && c.State == TaskRunning:
		cst.State.Running = &api.ContainerStateRunning{StartedAt: api.NewTime(c.StartedAt)}
		health := r.probeStatus(c.ID)
		cst.Ready = health.Ready
		started := health.Started
		cst.Started = &started
		n.running++
		if health.Ready {
			n.ready++
		}
	case isWaiting && w.reason == reasonErrImagePull:
		wait, f, failing := r.pullWaiting(w.image)
		cst.State.Waiting = &wait
		if failing {
			pull = f.status(w.image, pod.SpecHash, false)
		}
	case isWaiting:
		cst.State.Waiting = &api.ContainerStateWaiting{Reason: w.reason, Message: w.message}
	case exists && c.State == TaskExited:
		t := Termination{ExitCode: c.ExitCode, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt}
		if shouldRestart(pod.Spec.RestartPolicy, c.ExitCode) {
			wait := rec.NextRestart.Sub(r.now()).Round(time.Second)
			cst.State.Waiting = &api.ContainerStateWaiting{Reason: reasonCrashLoop,
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", max(wait, 0), spec.Name, pod.Name)}
			cst.LastState.Terminated = terminated(t)
			break
		}
		cst.State.Terminated = terminated(t)
		if rec.Last != nil && rec.Last.StartedAt.Equal(c.StartedAt) {
			cst.LastState = api.ContainerState{} // the current termination is not a previous one
		}
		if c.ExitCode == 0 {
			n.succeeded++
		} else {
			n.failed++
		}
	default:
		cst.State.Waiting = &api.ContainerStateWaiting{Reason: reasonCreating}
	}
	return cst, pull, nil
}

// probeStatus returns a running container's probe state; without a prober
// every running container is started and ready.
func (r *Reconciler) probeStatus(id string) probe.Status {
	if r.cfg.Prober == nil {
		return probe.Status{Started: true, Ready: true}
	}
	return r.cfg.Prober.Status(id)
}

func terminated(t Termination) *api.ContainerStateTerminated {
	reason := reasonError
	if t.ExitCode == 0 {
		reason = reasonCompleted
	}
	return &api.ContainerStateTerminated{
		ExitCode: t.ExitCode, Reason: reason,
		StartedAt: api.NewTime(t.StartedAt), FinishedAt: api.NewTime(t.FinishedAt),
	}
}
