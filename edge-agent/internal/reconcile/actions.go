package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// What the workers do. An action that reports events on a restart's path
// (fetchImage, createRun, runTask) returns them instead, and its caller
// reports them in the order it decides.

// createAndStart pulls, creates and starts one container.
func (r *Reconciler) createAndStart(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container) {
	if r.pull(ctx, pod, spec) && r.stillDesired(pod) && r.create(ctx, pod, spec, 0) {
		key := ContainerID(pod, spec.Name)
		r.start(ctx, pod, key, key)
	}
}

// pull makes a container's image present (fetchImage) and reports it.
func (r *Reconciler) pull(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container) bool {
	ok, ev := r.fetchImage(ctx, pod, spec)
	r.emitAll(ev)
	return ok
}

// fetchImage makes a container's image present, through the image's pull
// back-off; a failure is recorded for the status, and logged and reported
// once per back-off step. It returns the event to report.
func (r *Reconciler) fetchImage(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container) (bool, *podEvent) {
	key := ContainerID(pod, spec.Name)
	if spec.ImagePullPolicy == api.PullNever {
		// No registry is asked: the container backs off on its own.
		if _, err := r.cfg.Runtime.EnsureImage(ctx, spec.Image, spec.ImagePullPolicy); err != nil {
			if ctx.Err() != nil {
				return false, nil
			}
			reason, msg := reasonImageInspect, fmt.Sprintf("Failed to inspect image %q: %v", spec.Image, err)
			if errors.Is(err, ErrImageNeverPull) {
				reason, msg = reasonErrNeverPull, fmt.Sprintf("Container image %q is not present with pull policy of Never", spec.Image)
			}
			r.failed(pod.UID, key, reason, errors.New(msg))
			return false, newEvent(pod, spec.Name, api.EventWarning, reason, msg)
		}
	} else {
		present, f, tried := r.fetch(ctx, spec.Image, spec.ImagePullPolicy)
		if !present {
			if f.Attempts == 0 {
				return false, nil // ctx ended
			}
			r.holdPull(pod.UID, key, spec.Image, f)
			if !tried {
				return false, r.announcement(pod, spec.Name, key, spec.Image, f)
			}
			r.log.Warn("pull image failed; backing off", "pod", pod.Namespace+"/"+pod.Name, "container", spec.Name, "image", spec.Image,
				"attempt", f.Attempts, "permanent", f.Permanent, "retryIn", f.Next.Sub(r.now()).Round(time.Second), "err", f.Message)
			return false, newEvent(pod, spec.Name, api.EventWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", spec.Image, f.Message))
		}
	}
	return true, newEvent(pod, spec.Name, api.EventNormal, "Pulled", fmt.Sprintf("Image %q is present (pull policy %s)", spec.Image, spec.ImagePullPolicy))
}

// create creates run `run` of a container (not started) for spec, and
// reports it; a run that already exists is taken as created.
func (r *Reconciler) create(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container, run int32) bool {
	ev, err := r.createRun(ctx, pod, spec, run)
	r.emitAll(ev)
	if err != nil {
		return false
	}
	r.emit(pod, spec.Name, api.EventNormal, "Created", "Created container "+spec.Name)
	return true
}

// createRun is create without its events: a failure is recorded for the
// status and back-off, and returned with the event that reports it.
func (r *Reconciler) createRun(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container, run int32) (*podEvent, error) {
	key := ContainerID(pod, spec.Name)
	log := r.log.With("pod", pod.Namespace+"/"+pod.Name, "container", spec.Name)
	r.setWaiting(pod.UID, key, reasonCreating, "")
	if _, ok := r.ensureNetwork(ctx, pod, key); !ok {
		return nil, errNetwork
	}
	cs, err := r.containerSpec(pod, spec, run)
	if errors.Is(err, errDeviceUnavailable) {
		r.setWaiting(pod.UID, key, reasonDeviceUnavailable, err.Error())
		return nil, err // the next pass says why, once
	}
	if err != nil {
		log.Warn("container config", "err", err)
		r.failed(pod.UID, key, reasonConfigError, err)
		return nil, err
	}
	if err := r.cfg.Runtime.Create(ctx, cs); err != nil && !errors.Is(err, ErrAlreadyExists) {
		if ctx.Err() != nil {
			return nil, err
		}
		if ce := (*ConfigError)(nil); errors.As(err, &ce) {
			log.Warn("container config", "err", err)
			r.failed(pod.UID, key, reasonConfigError, ce)
			return newEvent(pod, spec.Name, api.EventWarning, "Failed", "Error: "+ce.Error()), err
		}
		log.Warn("create container", "err", err)
		r.failed(pod.UID, key, reasonCreateError, err)
		return newEvent(pod, spec.Name, api.EventWarning, "Failed", fmt.Sprintf("Error creating container %s: %v", spec.Name, err)), err
	}
	return nil, nil
}

// errNetwork: the pod's network could not be set up (ensureNetwork
// recorded why).
var errNetwork = errors.New("the pod's network is not set up")

// start starts the task of container id, a run of the container key that
// has no task running, and reports it.
func (r *Reconciler) start(ctx context.Context, pod *wire.SnapshotPod, key, id string) {
	if _, ok := r.ensureNetwork(ctx, pod, key); !ok {
		return
	}
	rec, err := r.cfg.History.Restarts(key)
	if err != nil {
		r.log.Error("read restart history", "pod", pod.Namespace+"/"+pod.Name, "container", key, "err", err)
		return
	}
	_, ev := r.runTask(ctx, pod, key, id, rec, false)
	r.emitAll(ev)
}

// restart replaces old, an exited run of a container, by a new run: it
// counts the restart, creates the run's container (in the pod's shim
// group), starts it, and only then removes old. The old run's task keeps
// the pod's shim alive for the new one, and its deletion, which costs as
// much as the start, is off the restart's path. exit, if not nil, is old's
// exit, not yet recorded (see planExited): it is saved with the count, and
// reported before the restart's own events, after the start (or before a
// pull, if the image must be fetched again), so that neither its report
// nor a write of its own is on the restart's path.
func (r *Reconciler) restart(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container, old Container, exit *RestartRecord) {
	key := ContainerID(pod, spec.Name)
	if exit != nil {
		defer r.setRestarting(pod.UID, key, false)
	}
	// The pod's namespace is there (no CNI call), unless the node
	// rebooted: then it is made again, before the restart is counted.
	if _, ok := r.ensureNetwork(ctx, pod, key); !ok {
		return
	}
	rec, ok := r.countRestart(pod, key, exit)
	if !ok {
		return
	}
	var exited *podEvent
	if exit != nil {
		exited = exitedEvent(pod, old)
	}
	// The run is the restart count, unless a lost history would make it
	// collide with a run that exists.
	run := max(rec.Restarts, runOf(old)+1)
	id, ev, err := r.nextRun(ctx, pod, spec, old, run)
	if errors.Is(err, ErrNotFound) && ctx.Err() == nil {
		// The image went away since the last run: fetch it by the pod's
		// pull policy, as a first start would.
		r.emitAll(exited)
		exited = nil
		if !r.pull(ctx, pod, spec) {
			return
		}
		ev, err = r.createRun(ctx, pod, spec, run)
	}
	if err != nil {
		r.emitAll(exited, ev)
		return
	}
	started, ev := r.runTask(ctx, pod, key, id, rec, true)
	r.emitAll(exited, ev)
	if started {
		r.removeRuns(ctx, []Container{old})
	}
}

// countRestart counts a restart of container key in its history before
// the restart is made, so that an agent killed right after cannot grant a
// free quick restart. exit, if not nil, is the history with the exit the
// restart follows (see planExited), saved with the count in one write.
func (r *Reconciler) countRestart(pod *wire.SnapshotPod, key string, exit *RestartRecord) (RestartRecord, bool) {
	log := r.log.With("pod", pod.Namespace+"/"+pod.Name, "container", key)
	var rec RestartRecord
	if exit != nil {
		rec = *exit
	} else {
		var err error
		if rec, err = r.cfg.History.Restarts(key); err != nil {
			log.Error("read restart history", "err", err)
			return rec, false
		}
	}
	rec = rec.counted()
	if err := r.cfg.History.SaveRestarts(key, rec); err != nil {
		log.Error("save restart history", "err", err)
		return rec, false
	}
	return rec, true
}

// nextRun creates the container of run `run` of a container: as a copy of
// old, its exited run, which is quick; failing that (an old run without
// its writable layer), from the pod's spec, as a first start would. It
// returns the run's ID, and a failure with the event that reports it.
func (r *Reconciler) nextRun(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container, old Container, run int32) (string, *podEvent, error) {
	id := RunID(pod, spec.Name, run)
	if r.holdsDevices(pod, spec) {
		ev, err := r.createRun(ctx, pod, spec, run)
		return id, ev, err
	}
	labels := maps.Clone(old.Labels)
	delete(labels, LabelStartedAt)
	labels[LabelRun] = strconv.FormatInt(int64(run), 10)
	labels[LabelRevision] = strconv.FormatUint(r.currentRevision(), 10)
	err := r.cfg.Runtime.CreateNextRun(ctx, old.ID, id, labels, pod.UID)
	switch {
	case err == nil || errors.Is(err, ErrAlreadyExists):
		return id, nil, nil
	case ctx.Err() != nil:
		return id, nil, err
	}
	r.log.Warn("create the next run from the exited one; creating it from the pod's spec",
		"pod", pod.Namespace+"/"+pod.Name, "container", spec.Name, "err", err)
	ev, err := r.createRun(ctx, pod, spec, run)
	return id, ev, err
}

// runTask starts container id's task (a run of the container key),
// logging to the file of the run that rec counts. It reports whether the
// task runs, and returns the event that says so, or why not.
func (r *Reconciler) runTask(ctx context.Context, pod *wire.SnapshotPod, key, id string, rec RestartRecord, restart bool) (bool, *podEvent) {
	log := r.log.With("pod", pod.Namespace+"/"+pod.Name, "container", id)
	name := containerName(pod, key)
	if err := r.cfg.Runtime.Start(ctx, id, r.logPath(pod, key, rec.Restarts)); err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		if errors.Is(err, ErrAlreadyExists) {
			// Its task runs: a pass planned from a listing taken just
			// before another start finished. That is what this start
			// wanted; it is neither a failure nor a restart.
			if restart {
				if err := r.cfg.History.SaveRestarts(key, rec.uncounted()); err != nil {
					log.Error("save restart history", "err", err)
				}
			}
			log.Debug("container already running", "err", err)
			r.clearWaiting(pod.UID, key)
			return true, nil
		}
		log.Warn("start container", "err", err)
		r.failed(pod.UID, key, reasonRunError, err)
		return false, newEvent(pod, name, api.EventWarning, "Failed", fmt.Sprintf("Error starting container %s: %v", name, err))
	}
	r.clearWaiting(pod.UID, key)
	if restart {
		log.Info("restarted container", "restarts", rec.Restarts)
		return true, newEvent(pod, name, api.EventNormal, "Restarted", fmt.Sprintf("Restarted container %s (restart %d)", name, rec.Restarts))
	}
	log.Info("started container")
	return true, newEvent(pod, name, api.EventNormal, "Started", "Started container "+name)
}

// removeRuns removes earlier runs of containers whose newer run exists.
// Their history is the newer run's, and stays.
func (r *Reconciler) removeRuns(ctx context.Context, runs []Container) {
	r.stopAndRemove(ctx, runs, false)
}

// containerName returns the pod's container name for a container key
// (ContainerID).
func containerName(pod *wire.SnapshotPod, key string) string {
	for i := range pod.Spec.Containers {
		if ContainerID(pod, pod.Spec.Containers[i].Name) == key {
			return pod.Spec.Containers[i].Name
		}
	}
	return key
}

// killUnhealthy stops a container whose liveness (or startup) probe
// failed.
func (r *Reconciler) killUnhealthy(ctx context.Context, pod *wire.SnapshotPod, c Container, why string) {
	grace := defaultGracePeriod
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	name := c.Labels[LabelContainer]
	r.log.Info("container failed its liveness probe; restarting it", "pod", pod.Namespace+"/"+pod.Name, "container", name, "reason", why)
	r.emit(pod, name, api.EventNormal, "Killing", fmt.Sprintf("Container %s failed liveness probe, will be restarted", name))
	if err := r.cfg.Runtime.Stop(ctx, c.ID, grace); err != nil && ctx.Err() == nil {
		r.log.Warn("stop unhealthy container", "container", c.ID, "err", err)
	}
}

// replacePod moves a pod whose spec changed to the new spec: it pulls the
// new images while the old containers keep running, creates the new
// containers, and only then stops and removes the old ones and starts the
// new ones.
func (r *Reconciler) replacePod(ctx context.Context, pod *wire.SnapshotPod, stale []Container) {
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		if !r.pull(ctx, pod, spec) || !r.stillDesired(pod) || !r.create(ctx, pod, spec, 0) {
			return // the old containers keep running
		}
	}
	if !r.stillDesired(pod) {
		// A newer spec arrived while this one was being prepared: do not
		// cut over to it; the next pass removes what was created for it.
		return
	}
	r.log.Info("replacing pod with new spec", "pod", pod.Namespace+"/"+pod.Name, "specHash", pod.SpecHash, "old", len(stale))
	r.stopAndRemove(ctx, stale, true)
	if r.onPodNetwork(pod) {
		// portmap takes hostPorts only when a pod is attached: a changed
		// set attaches it again, now that no container of it runs.
		if _, err := r.cfg.Network.UpdatePorts(ctx, podRef(pod)); err != nil && ctx.Err() == nil {
			r.log.Warn("update the pod's hostPorts", "pod", pod.Namespace+"/"+pod.Name, "err", err)
			r.emit(pod, "", api.EventWarning, reasonSandboxFailed, "Failed to update the pod's hostPorts: "+err.Error())
		}
	}
	for i := range pod.Spec.Containers {
		key := ContainerID(pod, pod.Spec.Containers[i].Name)
		r.start(ctx, pod, key, key)
	}
}

// stillDesired reports whether pod, at its spec, is still in the newest
// persisted snapshot: a worker started for an older snapshot must not act
// on a spec that a newer one replaced (a node back from an outage may
// receive several snapshots in a burst and must run only the newest).
func (r *Reconciler) stillDesired(pod *wire.SnapshotPod) bool {
	raw, err := r.cfg.Desired()
	if err != nil {
		return false
	}
	snap, _ := r.effective(raw)
	for i := range snap.Pods {
		if snap.Pods[i].UID == pod.UID {
			return snap.Pods[i].SpecHash == pod.SpecHash
		}
	}
	return false
}

// removePod stops and removes the containers of a pod that is no longer
// desired, then its volumes and history.
func (r *Reconciler) removePod(ctx context.Context, cs []Container) {
	if !r.stopAndRemove(ctx, cs, true) || ctx.Err() != nil {
		return // the next pass tries again
	}
	if uid := cs[0].Labels[LabelPodUID]; uid != "" {
		if r.cfg.Network != nil {
			if err := r.cfg.Network.Detach(ctx, uid); err != nil {
				// Its directory stays with the network; the collection of
				// pods' networks tries again.
				r.log.Warn("release the pod's network", "uid", uid, "err", err)
				return
			}
		}
		if err := removePodVolumes(r.podDir(uid)); err != nil {
			r.log.Warn("remove pod volumes", "uid", uid, "err", err)
		}
		if r.cfg.Rollbacks != nil {
			if err := r.cfg.Rollbacks.Forget(uid); err != nil {
				r.log.Warn("forget pod's good spec", "uid", uid, "err", err)
			}
		}
		r.withPod(uid, func(s *podState) { s.prepulled = "" })
	}
}

// stopAndRemove stops (gracefully) and removes containers, and with
// forget their restart history too. It says whether all went.
func (r *Reconciler) stopAndRemove(ctx context.Context, cs []Container, forget bool) bool {
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !r.stopAndRemoveOne(ctx, c, forget) {
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	return !failed.Load()
}

// stopAndRemoveOne is stopAndRemove for one container.
func (r *Reconciler) stopAndRemoveOne(ctx context.Context, c Container, forget bool) bool {
	log := r.log.With("container", c.ID, "pod", c.Labels[LabelPodNamespace]+"/"+c.Labels[LabelPodName])
	grace := defaultGracePeriod
	if s, err := strconv.ParseInt(c.Labels[labelGracePeriodSecs], 10, 64); err == nil && s >= 0 {
		grace = time.Duration(s) * time.Second
	}
	if c.State == TaskRunning || c.State == TaskCreated || c.State == TaskUnknown {
		r.emitFor(c, api.EventNormal, "Killing", fmt.Sprintf("Stopping container %s (grace period %s)", c.Labels[LabelContainer], grace))
		if err := r.cfg.Runtime.Stop(ctx, c.ID, grace); err != nil {
			log.Warn("stop container", "err", err)
			return false
		}
	}
	if err := r.cfg.Runtime.Remove(ctx, c.ID); err != nil {
		log.Warn("remove container", "err", err)
		return false
	}
	if uid := c.Labels[LabelPodUID]; forget && uid != "" {
		key := containerKey(c)
		if err := r.cfg.History.DeleteRestarts(key); err != nil {
			log.Warn("delete restart history", "err", err)
		}
		r.clearWaiting(uid, key)
	}
	log.Info("removed container")
	return true
}

// containerSpec turns a pod container into a runtime ContainerSpec.
func (r *Reconciler) containerSpec(pod *wire.SnapshotPod, c *api.Container, run int32) (ContainerSpec, error) {
	grace := int64(defaultGracePeriod / time.Second)
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	cs := ContainerSpec{
		ID: RunID(pod, c.Name, run),
		Labels: map[string]string{
			LabelRun:             strconv.FormatInt(int64(run), 10),
			LabelPodUID:          pod.UID,
			LabelPodName:         pod.Name,
			LabelPodNamespace:    pod.Namespace,
			LabelSpecHash:        pod.SpecHash,
			LabelContainer:       c.Name,
			LabelRevision:        strconv.FormatUint(r.currentRevision(), 10),
			labelGracePeriodSecs: strconv.FormatInt(grace, 10),
		},
		Image:      c.Image,
		Command:    c.Command,
		Args:       c.Args,
		WorkingDir: c.WorkingDir,
		// One shim process serves the pod: a restart's new run joins the
		// shim that the exited run keeps alive, and needs no new one.
		ShimGroup: pod.UID,
		Security:  EffectiveSecurity(&pod.Spec, c),
	}
	// Secrets and ConfigMaps come from the newest snapshot.
	snap, err := r.cfg.Desired()
	if err != nil {
		return ContainerSpec{}, fmt.Errorf("read desired snapshot: %w", err)
	}
	env, skipped, err := ContainerEnv(pod.Namespace, c, &snap)
	if err != nil {
		return ContainerSpec{}, err
	}
	if len(skipped) > 0 {
		r.emit(pod, c.Name, api.EventWarning, "InvalidEnvironmentVariableNames", fmt.Sprintf("Keys %v from envFrom were skipped since they are not valid environment variable names", skipped))
	}
	cs.Env = env
	if q, ok := c.Resources.Limits[api.ResourceCPU]; ok {
		cs.CPULimitMilli = q.MilliValue()
	}
	if q, ok := c.Resources.Requests[api.ResourceCPU]; ok {
		cs.CPURequestMilli = q.MilliValue()
	}
	if q, ok := c.Resources.Limits[api.ResourceMemory]; ok {
		cs.MemoryLimitBytes = q.Value()
	}
	mounts, err := r.mounts(pod, c, &snap)
	if err != nil {
		return ContainerSpec{}, err
	}
	cs.Mounts = mounts
	if cs.Devices, err = r.containerDevices(pod, c); err != nil {
		return ContainerSpec{}, err
	}
	if err := r.networkSpec(pod, &snap, &cs); err != nil {
		return ContainerSpec{}, err
	}
	return cs, nil
}

func (r *Reconciler) podDir(uid string) string {
	return filepath.Join(r.cfg.DataDir, "pods", uid)
}

// logPath is where one run of a container (key) writes its output:
// logs/{namespace}_{pod}_{uid}/{container}/{restarts}.log, as kubelet lays
// out /var/log/pods.
func (r *Reconciler) logPath(pod *wire.SnapshotPod, key string, restarts int32) string {
	return filepath.Join(r.cfg.DataDir, "logs", pod.Namespace+"_"+pod.Name+"_"+pod.UID, containerName(pod, key),
		strconv.Itoa(int(restarts))+".log")
}
