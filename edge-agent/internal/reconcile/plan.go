package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/probe"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// podPlan is what one pass found for one desired pod.
type podPlan struct {
	pod     *wire.SnapshotPod
	current map[string]Container // container name → its newest run at the current spec
	stale   []Container          // containers of this pod at an older spec
	// superseded are earlier runs of current containers, left by a
	// restart that had not removed them yet (or an agent killed before it
	// could).
	superseded []Container
}

// Sync runs one reconcile pass: it starts workers for pods that need work,
// reports status, and returns the earliest time it must run again to honour
// a back-off (zero if none).
func (r *Reconciler) Sync(ctx context.Context) time.Time {
	raw, err := r.cfg.Desired()
	if err != nil {
		r.log.Error("read desired snapshot", "err", err)
		return r.now().Add(time.Second)
	}
	snap, reverts := r.effective(raw)
	r.setRevision(snap.Revision)
	r.configureNetwork(ctx, snap)
	containers, err := r.cfg.Runtime.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("list containers", "err", err)
		}
		return r.now().Add(time.Second)
	}
	for i := range containers {
		r.taskGone(&containers[i])
	}
	plans, orphans := classify(snap, containers)
	r.pulls.gc(r.now())
	r.forget(raw, snap, containers)

	next := r.assignDevices(snap, orphans)
	for owner, cs := range orphans {
		r.spawn(ctx, owner, removeWorker, func(ctx context.Context) { r.removePod(ctx, cs) })
	}
	r.collectNetworks(ctx, plans, orphans)
	r.updateProbes(plans)
	for _, plan := range plans {
		next = earliest(next, r.planPod(ctx, plan))
	}
	for i := range raw.Pods {
		next = earliest(next, r.prePull(ctx, &raw.Pods[i]))
	}
	r.judge(plans, reverts)
	if !r.report(raw, snap, plans, reverts) {
		next = earliest(next, r.now().Add(time.Second))
	}
	return next
}

// classify sorts the board's containers against the pods the node should
// run: for each desired pod, the newest run of each of its containers at
// its current spec, the earlier runs, and its containers at an older spec;
// and, by owner, the containers of pods no longer desired and those that
// are not Flotilla's.
func classify(snap wire.Snapshot, containers []Container) (map[string]*podPlan, map[string][]Container) {
	plans := make(map[string]*podPlan, len(snap.Pods))
	for i := range snap.Pods {
		p := &snap.Pods[i]
		plans[p.UID] = &podPlan{pod: p, current: map[string]Container{}}
	}
	orphans := map[string][]Container{}
	for _, c := range containers {
		uid := c.Labels[LabelPodUID]
		plan, desired := plans[uid]
		switch {
		case uid == "":
			orphans[foreignOwner(c)] = append(orphans[foreignOwner(c)], c)
		case !desired:
			orphans[uid] = append(orphans[uid], c)
		case c.Labels[LabelSpecHash] != plan.pod.SpecHash:
			plan.stale = append(plan.stale, c)
		default:
			name := c.Labels[LabelContainer]
			cur, ok := plan.current[name]
			switch {
			case !ok:
				plan.current[name] = c
			case runOf(c) > runOf(cur):
				plan.superseded = append(plan.superseded, cur)
				plan.current[name] = c
			default:
				plan.superseded = append(plan.superseded, c)
			}
		}
	}
	return plans, orphans
}

// taskGone treats a container that has run before but has no task now
// (it was stopped, or the board rebooted and containerd lost its tasks) as
// exited: it restarts by its restart policy, counted and with back-off,
// rather than getting a free "first" start.
func (r *Reconciler) taskGone(c *Container) {
	if c.State != TaskNone || c.StartedAt.IsZero() || c.Labels[LabelPodUID] == "" {
		return
	}
	c.State, c.ExitCode, c.FinishedAt = TaskExited, 137, r.now()
	rec, err := r.cfg.History.Restarts(containerKey(*c))
	if err != nil {
		r.log.Warn("read restart history of a container whose task is gone; taking it as killed", "container", c.ID, "err", err)
		return
	}
	if rec.Last != nil && rec.Last.StartedAt.Equal(c.StartedAt) {
		c.ExitCode, c.FinishedAt = rec.Last.ExitCode, rec.Last.FinishedAt
	}
}

// updateProbes hands the prober every running container of a desired pod
// with its probes, and reports probe failures as events.
func (r *Reconciler) updateProbes(plans map[string]*podPlan) {
	if r.cfg.Prober == nil {
		return
	}
	var list []probe.Container
	live := map[string]bool{}
	for _, plan := range plans {
		for i := range plan.pod.Spec.Containers {
			spec := &plan.pod.Spec.Containers[i]
			c, ok := plan.current[spec.Name]
			if !ok || c.State != TaskRunning {
				continue
			}
			ports := map[string]int32{}
			for _, p := range spec.Ports {
				if p.Name != "" {
					ports[p.Name] = p.ContainerPort
				}
			}
			list = append(list, probe.Container{
				ID: c.ID, StartedAt: c.StartedAt, Ports: ports,
				Liveness: spec.LivenessProbe, Readiness: spec.ReadinessProbe, Startup: spec.StartupProbe,
			})
			live[c.ID] = true
			r.noteHealth(plan.pod, spec, c.ID)
		}
	}
	r.forgetHealth(live)
	r.cfg.Prober.Update(list)
}

// noteHealth reads the probe state of run id of a container, and reports
// a liveness failure, or a readiness lost, as an event.
func (r *Reconciler) noteHealth(pod *wire.SnapshotPod, spec *api.Container, id string) {
	st := r.cfg.Prober.Status(id)
	var prev probe.Status
	var seen bool
	r.withContainer(pod.UID, ContainerID(pod, spec.Name), func(c *containerState) {
		prev, seen = c.health, c.healthRun == id
		c.healthRun, c.health = id, st
	})
	switch {
	case st.LivenessFailed && !prev.LivenessFailed:
		r.emit(pod, spec.Name, api.EventWarning, "Unhealthy", st.Message)
	case seen && prev.Ready && !st.Ready && spec.ReadinessProbe != nil:
		r.emit(pod, spec.Name, api.EventWarning, "Unhealthy", st.Message)
	}
}

// planPod decides what one desired pod needs and starts its worker if it
// needs anything. It returns when it must be looked at again.
func (r *Reconciler) planPod(ctx context.Context, plan *podPlan) time.Time {
	pod := plan.pod
	if len(plan.stale) > 0 {
		return r.planReplacement(ctx, plan)
	}
	var next time.Time
	var todo []func(context.Context)
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		c, exists := plan.current[spec.Name]
		step, wait := r.planContainer(pod, spec, c, exists)
		next = earliest(next, wait)
		if step != nil {
			todo = append(todo, step)
		}
	}
	if superseded := plan.superseded; len(superseded) > 0 {
		// After any restart above: removing them is not urgent.
		todo = append(todo, func(ctx context.Context) { r.removeRuns(ctx, superseded) })
	}
	if len(todo) > 0 {
		r.spawn(ctx, pod.UID, podWorker, func(ctx context.Context) {
			for _, f := range todo {
				if ctx.Err() != nil {
					return
				}
				f(ctx)
			}
		})
	}
	return next
}

// planReplacement starts the move of a pod whose spec changed to the new
// spec, unless a new container backs off (its image's pull, or its
// create), as a first start would wait; it returns until when.
func (r *Reconciler) planReplacement(ctx context.Context, plan *podPlan) time.Time {
	pod := plan.pod
	var wait time.Time
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		if _, ok := plan.current[spec.Name]; ok {
			continue
		}
		wait = latest(wait, latest(r.retryWait(pod.UID, ContainerID(pod, spec.Name)), r.pullHeld(pod, spec)))
	}
	if !wait.IsZero() {
		return wait
	}
	stale := plan.stale
	r.spawn(ctx, pod.UID, podWorker, func(ctx context.Context) { r.replacePod(ctx, pod, stale) })
	return time.Time{}
}

// planContainer decides the next step of one container of a desired pod
// (c, if it exists, is its newest run): the step for the pod's worker, or
// nil, and when to look again if it must wait.
func (r *Reconciler) planContainer(pod *wire.SnapshotPod, spec *api.Container, c Container, exists bool) (func(context.Context), time.Time) {
	key := ContainerID(pod, spec.Name)
	switch {
	case !exists:
		if wait := latest(r.retryWait(pod.UID, key), r.pullHeld(pod, spec)); !wait.IsZero() {
			return nil, wait
		}
		if !r.networkReady(pod) {
			// A new snapshot with the node's pod CIDR wakes the loop.
			r.setWaiting(pod.UID, key, reasonCreating, msgNoPodCIDR)
			return nil, time.Time{}
		}
		if !r.devicesReady(pod, spec) {
			return nil, time.Time{} // a device plugged in wakes the loop
		}
		return func(ctx context.Context) { r.createAndStart(ctx, pod, spec) }, time.Time{}
	case c.State == TaskNone || c.State == TaskCreated:
		if wait := r.retryWait(pod.UID, key); !wait.IsZero() {
			return nil, wait
		}
		if !r.devicesReady(pod, spec) {
			return nil, time.Time{}
		}
		return func(ctx context.Context) { r.start(ctx, pod, key, c.ID) }, time.Time{}
	case c.State == TaskExited:
		return r.planExited(pod, spec, c)
	case c.State == TaskRunning:
		if why := r.devicesGone(pod, spec); why != "" {
			return func(ctx context.Context) { r.stopForDevices(ctx, pod, c, why) }, time.Time{}
		}
		if st := r.probeStatus(c.ID); st.LivenessFailed {
			// As kubelet: kill it; the exit is then handled (and the
			// container restarted) per restartPolicy, with back-off.
			return func(ctx context.Context) { r.killUnhealthy(ctx, pod, c, st.Message) }, time.Time{}
		}
		r.maybeResetBackoff(key, c)
	}
	return nil, time.Time{}
}

// planExited applies the restart decision to c, an exited run, and
// returns the restart if it is due, or when it will be. A new exit is
// recorded in the container's history and reported, except the one whose
// restart is due at once (the first after a crash) while the pod has no
// worker: that exit goes to the restart's worker, which records it along
// with the restart's count in one write, and reports it, so that the
// restart waits for neither. The container is then left alone until that
// worker is done.
func (r *Reconciler) planExited(pod *wire.SnapshotPod, spec *api.Container, c Container) (func(context.Context), time.Time) {
	key := ContainerID(pod, spec.Name)
	underway, busy := r.restartUnderway(pod.UID, key)
	if underway {
		return nil, time.Time{}
	}
	rec, err := r.cfg.History.Restarts(key)
	if err != nil {
		r.log.Error("read restart history", "container", c.ID, "err", err)
		if shouldRestart(pod.Spec.RestartPolicy, c.ExitCode) {
			return nil, r.now().Add(time.Second)
		}
		return nil, time.Time{}
	}
	now := r.now()
	d := restartTracker{policy: pod.Spec.RestartPolicy, history: rec, retry: r.retryWait(pod.UID, key)}.decide(c, now)
	if d.restart && !r.devicesReady(pod, spec) {
		// It restarts once its devices are back, which wakes the loop;
		// until then it waits, out of the crash loop.
		if d.newExit {
			r.recordExit(pod, key, c, d)
		}
		return nil, time.Time{}
	}
	if d.newExit {
		if d.due(now) && !busy {
			r.setRestarting(pod.UID, key, true)
			exit := d.record
			return func(ctx context.Context) { r.restart(ctx, pod, spec, c, &exit) }, time.Time{}
		}
		r.recordExit(pod, key, c, d)
	}
	if !d.due(now) {
		return nil, d.at
	}
	return func(ctx context.Context) { r.restart(ctx, pod, spec, c, nil) }, time.Time{}
}

// recordExit saves the history with a new exit and reports the exit, and
// the back-off its restart waits for.
func (r *Reconciler) recordExit(pod *wire.SnapshotPod, key string, c Container, d restartDecision) {
	if err := r.cfg.History.SaveRestarts(key, d.record); err != nil {
		r.log.Error("save restart history", "container", c.ID, "err", err)
	}
	r.emitAll(exitedEvent(pod, c))
	if wait := d.record.NextRestart.Sub(r.now()); d.restart && wait > 0 {
		name := c.Labels[LabelContainer]
		r.emit(pod, name, api.EventWarning, "BackOff",
			fmt.Sprintf("Back-off %s restarting failed container %s in pod %s", wait.Round(time.Second), name, pod.Name))
	}
}

// maybeResetBackoff forgets the back-off of a container that has now run
// cleanly for long enough.
func (r *Reconciler) maybeResetBackoff(key string, c Container) {
	if c.StartedAt.IsZero() || r.now().Sub(c.StartedAt) < backoffReset {
		return
	}
	rec, err := r.cfg.History.Restarts(key)
	if err != nil {
		r.log.Error("read restart history", "container", key, "err", err)
		return
	}
	if rec.Backoffs == 0 {
		return
	}
	rec.Backoffs = 0
	if err := r.cfg.History.SaveRestarts(key, rec); err != nil {
		r.log.Error("save restart history", "container", key, "err", err)
	}
}

// earliest is the earlier of two times, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// latest is the later of two times.
func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
