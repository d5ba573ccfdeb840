// Package reconcile keeps a board's containers matching the desired snapshot
// the agent last persisted. Its loop is level-triggered: read the desired
// pods, read the actual containers, act on the difference, report what it
// sees. Task exits and new snapshots only wake the loop early; a periodic
// resync catches anything an event missed. Each pod's slow work (pulls,
// graceful stops) runs in that pod's own worker, so one pod never holds up
// another.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/probe"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// History persists restart records across agent restarts.
type History interface {
	// Restarts returns the record for a container ID (zero if none).
	Restarts(id string) (RestartRecord, error)
	SaveRestarts(id string, rec RestartRecord) error
	DeleteRestarts(id string) error
}

// Config wires a Reconciler.
type Config struct {
	Runtime Runtime
	History History
	// Desired returns the persisted desired snapshot, the only source of
	// truth for what to run.
	Desired func() (wire.Snapshot, error)
	// Report receives the node's pod status whenever it changes. It is
	// called from the reconcile loop and must not block for long.
	Report func(wire.PodStatusReport)
	// Event receives events (container started, exited, restarted, image
	// pulled or failed, back-off). It may be called from pod workers
	// concurrently and must not block for long.
	Event func(wire.Event)
	// Prober runs the containers' probes; nil means no probes (every
	// running container is Ready).
	Prober Prober
	// Rollbacks lets the agent revert a pod whose new spec fails under a
	// progress deadline; nil disables agent-side reverts.
	Rollbacks Rollbacks
	// DataDir holds container logs (logs/) and pod volumes (pods/).
	DataDir string
	// HostIP is reported as each pod's hostIP.
	HostIP string
	// Resync is the period of the full resync (default 10 s).
	Resync time.Duration
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Prober runs liveness, readiness and startup probes; package probe's
// Manager satisfies it.
type Prober interface {
	// Update sets the running containers to probe (the full set).
	Update(containers []probe.Container)
	// Status returns a container's probe state.
	Status(containerID string) probe.Status
}

// Reconciler drives a Runtime towards the desired snapshot.
type Reconciler struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	wake chan struct{}

	mu   sync.Mutex
	busy map[string]bool // pod UID (or orphan key) → worker running
	// restarting holds the container keys whose exit a worker records
	// along with their restart (see exitedPlan).
	restarting map[string]bool
	waiting    map[string]waitState  // container key (ContainerID) → why it is not running
	retries    map[string]retryState // container key → back-off after a failed pull, create or start
	// announced is, per container key (or pre-pull key), the end of the
	// pull back-off step last reported with a BackOff event.
	announced map[string]time.Time
	wg        sync.WaitGroup
	// pulls is the back-off of failed pulls, per image.
	pulls *pullBackoff

	lastReport *wire.PodStatusReport
	revision   uint64 // of the snapshot the current pass works from; guarded by mu
	// health remembers each container's last probe state, to report
	// changes as events; used only by the loop goroutine.
	health map[string]probe.Status
	// trials, goodHash: the loop goroutine's view of specs under trial and
	// the last good spec saved per pod uid.
	trials   map[string]trial
	goodHash map[string]string
	// prepulled maps a pod uid to the pre-pull list staged for it;
	// guarded by mu.
	prepulled map[string]string
}

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

// Waiting reasons, as kubelet reports them.
const (
	reasonCreating       = "ContainerCreating"
	reasonCrashLoop      = "CrashLoopBackOff"
	reasonErrImagePull   = "ErrImagePull"
	reasonImagePullBack  = "ImagePullBackOff"
	reasonErrNeverPull   = "ErrImageNeverPull"
	reasonImageInspect   = "ImageInspectError"
	reasonConfigError    = "CreateContainerConfigError"
	reasonCreateError    = "CreateContainerError"
	reasonRunError       = "RunContainerError"
	reasonCompleted      = "Completed"
	reasonError          = "Error"
	defaultResync        = 10 * time.Second
	defaultGracePeriod   = 30 * time.Second
	labelGracePeriodSecs = "io.flotilla.pod.grace-seconds"
)

// New returns a Reconciler; call Run to start it.
func New(cfg Config) *Reconciler {
	if cfg.Resync <= 0 {
		cfg.Resync = defaultResync
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{
		cfg:        cfg,
		log:        cfg.Logger,
		now:        cfg.Now,
		wake:       make(chan struct{}, 1),
		busy:       map[string]bool{},
		restarting: map[string]bool{},
		waiting:    map[string]waitState{},
		retries:    map[string]retryState{},
		announced:  map[string]time.Time{},
		pulls:      newPullBackoff(),
		health:     map[string]probe.Status{},
		trials:     map[string]trial{},
		goodHash:   map[string]string{},
		prepulled:  map[string]string{},
	}
}

// Wake asks the loop to run soon (a new snapshot arrived).
func (r *Reconciler) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends, then waits for its pod workers.
func (r *Reconciler) Run(ctx context.Context) error {
	exits := r.cfg.Runtime.Exits(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	defer r.wg.Wait()
	for {
		next := r.Sync(ctx)
		wait := r.cfg.Resync
		if !next.IsZero() {
			if d := next.Sub(r.now()); d < wait {
				wait = max(d, time.Millisecond)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case _, ok := <-exits:
			if !ok {
				exits = nil
			}
		case <-timer.C:
		}
	}
}

// podPlan is what one pass decided for one desired pod.
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
	r.mu.Lock()
	r.revision = snap.Revision
	r.mu.Unlock()
	containers, err := r.cfg.Runtime.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("list containers", "err", err)
		}
		return r.now().Add(time.Second)
	}

	plans := make(map[string]*podPlan, len(snap.Pods))
	for i := range snap.Pods {
		p := &snap.Pods[i]
		plans[p.UID] = &podPlan{pod: p, current: map[string]Container{}}
	}
	orphans := map[string][]Container{}
	for i := range containers {
		r.taskGone(&containers[i])
	}
	for _, c := range containers {
		uid := c.Labels[LabelPodUID]
		plan, desired := plans[uid]
		switch {
		case uid == "":
			orphans["foreign:"+c.ID] = append(orphans["foreign:"+c.ID], c)
		case !desired:
			orphans["orphan:"+uid] = append(orphans["orphan:"+uid], c)
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

	r.pulls.gc(r.now())
	r.forgetWaits(raw, snap, containers)

	var next time.Time
	soon := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for key, cs := range orphans {
		cs := cs
		r.spawn(ctx, key, func(ctx context.Context) { r.removePod(ctx, cs) })
	}
	r.updateProbes(plans)
	for _, plan := range plans {
		soon(r.planPod(ctx, plan))
	}
	for i := range raw.Pods {
		soon(r.prePull(ctx, &raw.Pods[i]))
	}
	r.judge(plans, reverts)
	r.report(raw, snap, plans, reverts)
	return next
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
			st := r.cfg.Prober.Status(c.ID)
			prev, seen := r.health[c.ID]
			r.health[c.ID] = st
			switch {
			case st.LivenessFailed && !prev.LivenessFailed:
				r.emit(plan.pod, spec.Name, api.EventWarning, "Unhealthy", st.Message)
			case seen && prev.Ready && !st.Ready && spec.ReadinessProbe != nil:
				r.emit(plan.pod, spec.Name, api.EventWarning, "Unhealthy", st.Message)
			}
		}
	}
	for id := range r.health {
		if !live[id] {
			delete(r.health, id)
		}
	}
	r.cfg.Prober.Update(list)
}

// probeStatus returns a running container's probe state; without a prober
// every running container is started and ready.
func (r *Reconciler) probeStatus(id string) probe.Status {
	if r.cfg.Prober == nil {
		return probe.Status{Started: true, Ready: true}
	}
	return r.cfg.Prober.Status(id)
}

// planPod decides what one desired pod needs and starts its worker if it
// needs anything. It returns when it must be looked at again.
func (r *Reconciler) planPod(ctx context.Context, plan *podPlan) time.Time {
	pod := plan.pod
	if len(plan.stale) > 0 {
		// The replacement waits while any new container backs off (its
		// image's pull, or its create), as a first start would.
		var wait time.Time
		for i := range pod.Spec.Containers {
			spec := &pod.Spec.Containers[i]
			if _, ok := plan.current[spec.Name]; ok {
				continue
			}
			wait = latest(wait, latest(r.retryWait(ContainerID(pod, spec.Name)), r.pullHeld(pod, spec)))
		}
		if !wait.IsZero() {
			return wait
		}
		stale := plan.stale
		r.spawn(ctx, pod.UID, func(ctx context.Context) { r.replacePod(ctx, pod, stale) })
		return time.Time{}
	}
	var next time.Time
	var todo []func(context.Context)
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		key := ContainerID(pod, spec.Name)
		c, exists := plan.current[spec.Name]
		switch {
		case !exists:
			if wait := latest(r.retryWait(key), r.pullHeld(pod, spec)); !wait.IsZero() {
				next = earliest(next, wait)
				continue
			}
			todo = append(todo, func(ctx context.Context) { r.createAndStart(ctx, pod, spec) })
		case c.State == TaskNone || c.State == TaskCreated:
			if wait := r.retryWait(key); !wait.IsZero() {
				next = earliest(next, wait)
				continue
			}
			todo = append(todo, func(ctx context.Context) { r.start(ctx, pod, key, c.ID) })
		case c.State == TaskExited:
			at, restart, exit := r.exitedPlan(pod, key, c)
			if !restart {
				continue
			}
			if wait := r.retryWait(key); wait.After(at) {
				at = wait
			}
			if now := r.now(); at.After(now) {
				next = earliest(next, at)
				continue
			}
			todo = append(todo, func(ctx context.Context) { r.restart(ctx, pod, spec, c, exit) })
		case c.State == TaskRunning:
			if st := r.probeStatus(c.ID); st.LivenessFailed {
				// As kubelet: kill it; the exit is then handled (and the
				// container restarted) per restartPolicy, with back-off.
				todo = append(todo, func(ctx context.Context) { r.killUnhealthy(ctx, pod, c, st.Message) })
				continue
			}
			r.maybeResetBackoff(key, c)
		}
	}
	if superseded := plan.superseded; len(superseded) > 0 {
		// After any restart above: removing them is not urgent.
		todo = append(todo, func(ctx context.Context) { r.removeRuns(ctx, superseded) })
	}
	if len(todo) > 0 {
		r.spawn(ctx, pod.UID, func(ctx context.Context) {
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

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// spawn runs fn as the worker for key unless one is already running.
func (r *Reconciler) spawn(ctx context.Context, key string, fn func(context.Context)) {
	r.mu.Lock()
	if r.busy[key] {
		r.mu.Unlock()
		return
	}
	r.busy[key] = true
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(ctx)
		r.mu.Lock()
		delete(r.busy, key)
		r.mu.Unlock()
		r.Wake()
	}()
}

// shouldRestart applies the pod's restartPolicy to an exit code.
func shouldRestart(policy api.RestartPolicy, exitCode int32) bool {
	switch policy {
	case api.RestartNever:
		return false
	case api.RestartOnFailure:
		return exitCode != 0
	}
	return true
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
	if rec, err := r.cfg.History.Restarts(containerKey(*c)); err == nil && rec.Last != nil && rec.Last.StartedAt.Equal(c.StartedAt) {
		c.ExitCode, c.FinishedAt = rec.Last.ExitCode, rec.Last.FinishedAt
	}
}

// exitedPlan records a new exit in the container's history (and reports
// it), and says whether and when the container restarts. An exit whose
// restart is due at once (the first after a crash) is not recorded here:
// it is returned, and the restart's worker records it along with the
// restart's count in one write, and reports it, so that the restart waits
// for neither. The container is then skipped until that worker ends.
func (r *Reconciler) exitedPlan(pod *wire.SnapshotPod, key string, c Container) (at time.Time, restart bool, exit *RestartRecord) {
	r.mu.Lock()
	underway, busy := r.restarting[key], r.busy[pod.UID]
	r.mu.Unlock()
	if underway {
		return time.Time{}, false, nil
	}
	restart = shouldRestart(pod.Spec.RestartPolicy, c.ExitCode)
	rec, err := r.cfg.History.Restarts(key)
	if err != nil {
		r.log.Error("read restart history", "container", c.ID, "err", err)
		return r.now().Add(time.Second), restart, nil
	}
	if rec.Last == nil || !rec.Last.StartedAt.Equal(c.StartedAt) {
		finished := c.FinishedAt
		if finished.IsZero() {
			finished = r.now()
		}
		rec.recordExit(Termination{ExitCode: c.ExitCode, StartedAt: c.StartedAt, FinishedAt: finished})
		due := rec.NextRestart
		if w := r.retryWait(key); w.After(due) {
			due = w
		}
		if restart && !busy && !due.After(r.now()) {
			// The pod has no worker, so the one planPod spawns for it
			// will run this restart.
			r.mu.Lock()
			r.restarting[key] = true
			r.mu.Unlock()
			return rec.NextRestart, true, &rec
		}
		if err := r.cfg.History.SaveRestarts(key, rec); err != nil {
			r.log.Error("save restart history", "container", c.ID, "err", err)
		}
		r.emitExited(pod, c)
		if wait := rec.NextRestart.Sub(r.now()); restart && wait > 0 {
			name := c.Labels[LabelContainer]
			r.emit(pod, name, api.EventWarning, "BackOff",
				fmt.Sprintf("Back-off %s restarting failed container %s in pod %s", wait.Round(time.Second), name, pod.Name))
		}
	}
	if !restart {
		return time.Time{}, false, nil
	}
	return rec.NextRestart, true, nil
}

// emitExited reports the exit of container c.
func (r *Reconciler) emitExited(pod *wire.SnapshotPod, c Container) {
	name := c.Labels[LabelContainer]
	typ := api.EventNormal
	if c.ExitCode != 0 {
		typ = api.EventWarning
	}
	r.emit(pod, name, typ, "Exited", fmt.Sprintf("Container %s exited with code %d", name, c.ExitCode))
}

// call calls f unless it is nil.
func call(f func()) {
	if f != nil {
		f()
	}
}

// emit reports an event about a pod (and one of its containers).
func (r *Reconciler) emit(pod *wire.SnapshotPod, container string, typ api.EventType, reason, message string) {
	if r.cfg.Event == nil {
		return
	}
	ref := api.ObjectReference{Kind: api.KindPod, Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	if container != "" {
		ref.FieldPath = "spec.containers{" + container + "}"
	}
	r.cfg.Event(wire.Event{Object: ref, Type: typ, Reason: reason, Message: message, Time: r.now().UTC()})
}

// maybeResetBackoff forgets the back-off of a container that has now run
// cleanly for long enough.
func (r *Reconciler) maybeResetBackoff(key string, c Container) {
	if c.StartedAt.IsZero() || r.now().Sub(c.StartedAt) < backoffReset {
		return
	}
	rec, err := r.cfg.History.Restarts(key)
	if err != nil || rec.Backoffs == 0 {
		return
	}
	rec.Backoffs = 0
	if err := r.cfg.History.SaveRestarts(key, rec); err != nil {
		r.log.Error("save restart history", "container", key, "err", err)
	}
}

func (r *Reconciler) setWaiting(id, reason, message string) {
	r.mu.Lock()
	r.waiting[id] = waitState{reason: reason, message: message}
	r.mu.Unlock()
}

func (r *Reconciler) clearWaiting(id string) {
	r.mu.Lock()
	delete(r.waiting, id)
	delete(r.retries, id)
	r.mu.Unlock()
}

// retryWait returns when a failed step for id may be retried, or zero.
func (r *Reconciler) retryWait(id string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.retries[id]
	if !ok || !p.next.After(r.now()) {
		return time.Time{}
	}
	return p.next
}

// failed records why a container could not be pulled, created or started
// and backs off its next attempt.
func (r *Reconciler) failed(id, reason string, err error) {
	r.mu.Lock()
	p := r.retries[id]
	p.failures++
	p.next = r.now().Add(backoffDelay(p.failures))
	r.retries[id] = p
	r.waiting[id] = waitState{reason: reason, message: err.Error()}
	r.mu.Unlock()
}

// createAndStart pulls, creates and starts one container.
func (r *Reconciler) createAndStart(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container) {
	if r.pull(ctx, pod, spec) && r.stillDesired(pod) && r.create(ctx, pod, spec, 0) {
		key := ContainerID(pod, spec.Name)
		r.start(ctx, pod, key, key)
	}
}

// pull makes a container's image present, through the image's pull
// back-off; a failure is recorded for the status, and logged and reported
// once per back-off step.
func (r *Reconciler) pull(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container) bool {
	id := ContainerID(pod, spec.Name)
	if spec.ImagePullPolicy == api.PullNever {
		// No registry is asked: the container backs off on its own.
		if _, err := r.cfg.Runtime.EnsureImage(ctx, spec.Image, spec.ImagePullPolicy); err != nil {
			if ctx.Err() != nil {
				return false
			}
			reason, msg := reasonImageInspect, fmt.Sprintf("Failed to inspect image %q: %v", spec.Image, err)
			if errors.Is(err, ErrImageNeverPull) {
				reason, msg = reasonErrNeverPull, fmt.Sprintf("Container image %q is not present with pull policy of Never", spec.Image)
			}
			r.failed(id, reason, errors.New(msg))
			r.emit(pod, spec.Name, api.EventWarning, reason, msg)
			return false
		}
	} else {
		present, f, tried := r.fetch(ctx, spec.Image, spec.ImagePullPolicy)
		if !present {
			if f.Attempts == 0 {
				return false // ctx ended
			}
			r.holdPull(id, spec.Image, f)
			if !tried {
				r.announceBackOff(pod, spec.Name, id, spec.Image, f)
				return false
			}
			r.log.Warn("pull image failed; backing off", "pod", pod.Namespace+"/"+pod.Name, "container", spec.Name, "image", spec.Image,
				"attempt", f.Attempts, "permanent", f.Permanent, "retryIn", f.Next.Sub(r.now()).Round(time.Second), "err", f.Message)
			r.emit(pod, spec.Name, api.EventWarning, "Failed", fmt.Sprintf("Failed to pull image %q: %s", spec.Image, f.Message))
			return false
		}
	}
	r.emit(pod, spec.Name, api.EventNormal, "Pulled", fmt.Sprintf("Image %q is present (pull policy %s)", spec.Image, spec.ImagePullPolicy))
	return true
}

// forgetWaits drops the waits, back-offs and announcements of containers
// (and pre-pulls) that are neither desired nor on the board any more.
func (r *Reconciler) forgetWaits(raw, snap wire.Snapshot, containers []Container) {
	keep := map[string]bool{}
	for _, s := range []wire.Snapshot{raw, snap} {
		for i := range s.Pods {
			p := &s.Pods[i]
			keep["prepull:"+p.UID] = true
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
	for k := range r.waiting {
		if !keep[k] {
			delete(r.waiting, k)
		}
	}
	for k := range r.retries {
		if !keep[k] {
			delete(r.retries, k)
		}
	}
	for k := range r.announced {
		if !keep[k] {
			delete(r.announced, k)
		}
	}
}

// create creates run `run` of a container (not started) for spec; a run
// that already exists is taken as created.
func (r *Reconciler) create(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container, run int32) bool {
	if err := r.createRun(ctx, pod, spec, run, nil); err != nil {
		return false
	}
	r.emit(pod, spec.Name, api.EventNormal, "Created", "Created container "+spec.Name)
	return true
}

// createRun is create without the event; a failure is recorded for the
// status and back-off, and returned. before, if not nil, is called before
// any event is reported.
func (r *Reconciler) createRun(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container, run int32, before func()) error {
	key := ContainerID(pod, spec.Name)
	log := r.log.With("pod", pod.Namespace+"/"+pod.Name, "container", spec.Name)
	r.setWaiting(key, reasonCreating, "")
	cs, err := r.containerSpec(pod, spec, run)
	if err != nil {
		log.Warn("container config", "err", err)
		r.failed(key, reasonConfigError, err)
		return err
	}
	if err := r.cfg.Runtime.Create(ctx, cs); err != nil && !errors.Is(err, ErrAlreadyExists) {
		if ctx.Err() == nil {
			log.Warn("create container", "err", err)
			r.failed(key, reasonCreateError, err)
			call(before)
			r.emit(pod, spec.Name, api.EventWarning, "Failed", fmt.Sprintf("Error creating container %s: %v", spec.Name, err))
		}
		return err
	}
	return nil
}

// start starts the task of container id, a run of the container key that
// has no task running.
func (r *Reconciler) start(ctx context.Context, pod *wire.SnapshotPod, key, id string) {
	rec, err := r.cfg.History.Restarts(key)
	if err != nil {
		r.log.Error("read restart history", "pod", pod.Namespace+"/"+pod.Name, "container", key, "err", err)
		return
	}
	r.runTask(ctx, pod, key, id, rec, false, nil)
}

// restart replaces old, an exited run of a container, by a new run: it
// counts the restart, creates the run's container (in the pod's shim
// group), starts it, and only then removes old. The old run's task keeps
// the pod's shim alive for the new one, and its deletion, which costs as
// much as the start, is off the restart's path. exit, if not nil, is old's
// exit, not yet recorded (see exitedPlan): it is saved with the count and
// reported before the restart's own events.
func (r *Reconciler) restart(ctx context.Context, pod *wire.SnapshotPod, spec *api.Container, old Container, exit *RestartRecord) {
	key := ContainerID(pod, spec.Name)
	log := r.log.With("pod", pod.Namespace+"/"+pod.Name, "container", spec.Name)
	var rec RestartRecord
	exited := func() {}
	if exit != nil {
		defer func() {
			r.mu.Lock()
			delete(r.restarting, key)
			r.mu.Unlock()
		}()
		rec = *exit
		exited = sync.OnceFunc(func() { r.emitExited(pod, old) })
	} else {
		var err error
		if rec, err = r.cfg.History.Restarts(key); err != nil {
			log.Error("read restart history", "err", err)
			return
		}
	}
	// Count the restart before doing it, so a crash of the agent right
	// after cannot grant a free quick restart.
	rec.Restarts++
	rec.Backoffs++
	if err := r.cfg.History.SaveRestarts(key, rec); err != nil {
		log.Error("save restart history", "err", err)
		return
	}
	defer exited() // reported even if the restart fails without an event
	// The run is the restart count, unless a lost history would make it
	// collide with a run that exists.
	run := max(rec.Restarts, runOf(old)+1)
	id := RunID(pod, spec.Name, run)
	// The new run is made like the exited one, which is quick; failing
	// that (an old run without its writable layer), from the pod's spec,
	// as a first start would.
	labels := maps.Clone(old.Labels)
	delete(labels, LabelStartedAt)
	labels[LabelRun] = strconv.FormatInt(int64(run), 10)
	r.mu.Lock()
	labels[LabelRevision] = strconv.FormatUint(r.revision, 10)
	r.mu.Unlock()
	err := r.cfg.Runtime.CreateNextRun(ctx, old.ID, id, labels, pod.UID)
	if err != nil && !errors.Is(err, ErrAlreadyExists) && ctx.Err() == nil {
		log.Warn("create the next run from the exited one; creating it from the pod's spec", "err", err)
		err = r.createRun(ctx, pod, spec, run, exited)
	} else if errors.Is(err, ErrAlreadyExists) {
		err = nil
	}
	if errors.Is(err, ErrNotFound) && ctx.Err() == nil {
		// The image went away since the last run: fetch it by the pod's
		// pull policy, as a first start would.
		exited()
		if !r.pull(ctx, pod, spec) {
			return
		}
		err = r.createRun(ctx, pod, spec, run, nil)
	}
	if err != nil {
		return
	}
	if !r.runTask(ctx, pod, key, id, rec, true, exited) {
		return
	}
	r.removeRuns(ctx, []Container{old})
}

// runTask starts container id's task, logging to the file of the run that
// rec counts, and reports it (calling before, if not nil, before any
// event). It reports whether the task runs.
func (r *Reconciler) runTask(ctx context.Context, pod *wire.SnapshotPod, key, id string, rec RestartRecord, restart bool, before func()) bool {
	log := r.log.With("pod", pod.Namespace+"/"+pod.Name, "container", id)
	name := containerName(pod, key)
	if err := r.cfg.Runtime.Start(ctx, id, r.logPath(pod, key, rec.Restarts)); err != nil {
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, ErrAlreadyExists) {
			// Its task runs: a pass planned from a listing taken just
			// before another start finished. That is what this start
			// wanted; it is neither a failure nor a restart.
			if restart {
				rec.Restarts--
				rec.Backoffs--
				if err := r.cfg.History.SaveRestarts(key, rec); err != nil {
					log.Error("save restart history", "err", err)
				}
			}
			log.Debug("container already running", "err", err)
			r.clearWaiting(key)
			return true
		}
		log.Warn("start container", "err", err)
		r.failed(key, reasonRunError, err)
		call(before)
		r.emit(pod, name, api.EventWarning, "Failed", fmt.Sprintf("Error starting container %s: %v", name, err))
		return false
	}
	r.clearWaiting(key)
	call(before)
	if restart {
		log.Info("restarted container", "restarts", rec.Restarts)
		r.emit(pod, name, api.EventNormal, "Restarted", fmt.Sprintf("Restarted container %s (restart %d)", name, rec.Restarts))
	} else {
		log.Info("started container")
		r.emit(pod, name, api.EventNormal, "Started", "Started container "+name)
	}
	return true
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
	r.stopAndRemove(ctx, cs, true)
	if ctx.Err() != nil {
		return
	}
	if uid := cs[0].Labels[LabelPodUID]; uid != "" {
		if err := removePodVolumes(r.podDir(uid)); err != nil {
			r.log.Warn("remove pod volumes", "uid", uid, "err", err)
		}
		if r.cfg.Rollbacks != nil {
			if err := r.cfg.Rollbacks.Forget(uid); err != nil {
				r.log.Warn("forget pod's good spec", "uid", uid, "err", err)
			}
		}
		r.mu.Lock()
		delete(r.prepulled, uid)
		r.mu.Unlock()
	}
}

// stopAndRemove stops (gracefully) and removes containers, and with
// forget their restart history too.
func (r *Reconciler) stopAndRemove(ctx context.Context, cs []Container, forget bool) {
	var wg sync.WaitGroup
	for _, c := range cs {
		c := c
		wg.Add(1)
		go func() {
			defer wg.Done()
			log := r.log.With("container", c.ID, "pod", c.Labels[LabelPodNamespace]+"/"+c.Labels[LabelPodName])
			grace := defaultGracePeriod
			if s, err := strconv.ParseInt(c.Labels[labelGracePeriodSecs], 10, 64); err == nil && s >= 0 {
				grace = time.Duration(s) * time.Second
			}
			if c.State == TaskRunning || c.State == TaskCreated || c.State == TaskUnknown {
				r.emitFor(c, api.EventNormal, "Killing", fmt.Sprintf("Stopping container %s (grace period %s)", c.Labels[LabelContainer], grace))
				if err := r.cfg.Runtime.Stop(ctx, c.ID, grace); err != nil {
					log.Warn("stop container", "err", err)
					return
				}
			}
			if err := r.cfg.Runtime.Remove(ctx, c.ID); err != nil {
				log.Warn("remove container", "err", err)
				return
			}
			if forget && c.Labels[LabelPodUID] != "" {
				key := containerKey(c)
				if err := r.cfg.History.DeleteRestarts(key); err != nil {
					log.Warn("delete restart history", "err", err)
				}
				r.clearWaiting(key)
			}
			log.Info("removed container")
		}()
	}
	wg.Wait()
}

// emitFor reports an event about a container known only from its labels
// (its pod may no longer be desired).
func (r *Reconciler) emitFor(c Container, typ api.EventType, reason, message string) {
	if c.Labels[LabelPodUID] == "" {
		return
	}
	pod := &wire.SnapshotPod{UID: c.Labels[LabelPodUID], Name: c.Labels[LabelPodName], Namespace: c.Labels[LabelPodNamespace]}
	r.emit(pod, c.Labels[LabelContainer], typ, reason, message)
}

// containerSpec turns a pod container into a runtime ContainerSpec.
func (r *Reconciler) containerSpec(pod *wire.SnapshotPod, c *api.Container, run int32) (ContainerSpec, error) {
	grace := int64(defaultGracePeriod / time.Second)
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	r.mu.Lock()
	revision := r.revision
	r.mu.Unlock()
	cs := ContainerSpec{
		ID: RunID(pod, c.Name, run),
		Labels: map[string]string{
			LabelRun:             strconv.FormatInt(int64(run), 10),
			LabelPodUID:          pod.UID,
			LabelPodName:         pod.Name,
			LabelPodNamespace:    pod.Namespace,
			LabelSpecHash:        pod.SpecHash,
			LabelContainer:       c.Name,
			LabelRevision:        strconv.FormatUint(revision, 10),
			labelGracePeriodSecs: strconv.FormatInt(grace, 10),
		},
		Image:      c.Image,
		Command:    c.Command,
		Args:       c.Args,
		WorkingDir: c.WorkingDir,
		// Pods share the board's network until pod networking lands.
		HostNetwork: true,
		// One shim process serves the pod: a restart's new run joins the
		// shim that the exited run keeps alive, and needs no new one.
		ShimGroup: pod.UID,
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

// report builds the node's pod status and hands it on if it changed.
func (r *Reconciler) report(raw, snap wire.Snapshot, plans map[string]*podPlan, reverts map[string]*wire.Revert) {
	rep := wire.PodStatusReport{ObservedRevision: snap.Revision, Pods: make([]wire.PodReport, 0, len(snap.Pods))}
	for i := range snap.Pods {
		pod := &snap.Pods[i]
		st := r.podStatus(pod, plans[pod.UID])
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
	if r.lastReport != nil && reflect.DeepEqual(*r.lastReport, rep) {
		return
	}
	r.lastReport = &rep
	if r.cfg.Report != nil {
		r.cfg.Report(rep)
	}
}

// podStatus derives a pod's status, as kubelet would show it.
func (r *Reconciler) podStatus(pod *wire.SnapshotPod, plan *podPlan) api.PodStatus {
	st := api.PodStatus{HostIP: r.cfg.HostIP, SpecHash: pod.SpecHash}
	var running, succeeded, failed, ready int
	for i := range pod.Spec.Containers {
		spec := &pod.Spec.Containers[i]
		id := ContainerID(pod, spec.Name)
		cst := api.ContainerStatus{Name: spec.Name, Image: spec.Image}
		rec, _ := r.cfg.History.Restarts(id)
		cst.RestartCount = rec.Restarts
		if rec.Last != nil {
			cst.LastState.Terminated = terminated(*rec.Last)
		}
		c, exists := plan.current[spec.Name]
		if exists {
			cst.ContainerID = "containerd://" + c.ID
			if !c.StartedAt.IsZero() && (st.StartTime.IsZero() || c.StartedAt.Before(st.StartTime.Time)) {
				st.StartTime = api.NewTime(c.StartedAt)
			}
		}
		r.mu.Lock()
		w, isWaiting := r.waiting[id]
		r.mu.Unlock()
		switch {
		case exists && c.State == TaskRunning:
			cst.State.Running = &api.ContainerStateRunning{StartedAt: api.NewTime(c.StartedAt)}
			health := r.probeStatus(c.ID)
			cst.Ready = health.Ready
			started := health.Started
			cst.Started = &started
			running++
			if health.Ready {
				ready++
			}
		case isWaiting && w.reason == reasonErrImagePull:
			wait, f, failing := r.pullWaiting(w.image)
			cst.State.Waiting = &wait
			if failing && st.PullFailure == nil {
				st.PullFailure = f.status(w.image, pod.SpecHash, false)
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
			} else {
				cst.State.Terminated = terminated(t)
				if rec.Last != nil && rec.Last.StartedAt.Equal(c.StartedAt) {
					cst.LastState = api.ContainerState{} // the current termination is not a previous one
				}
				if c.ExitCode == 0 {
					succeeded++
				} else {
					failed++
				}
			}
		default:
			cst.State.Waiting = &api.ContainerStateWaiting{Reason: reasonCreating}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cst)
	}
	n := len(pod.Spec.Containers)
	switch {
	case succeeded == n:
		st.Phase = api.PodSucceeded
	case succeeded+failed == n:
		st.Phase = api.PodFailed
	case running > 0 || !st.StartTime.IsZero():
		// A pod whose containers have started stays Running while one
		// restarts, as in Kubernetes.
		st.Phase = api.PodRunning
	default:
		st.Phase = api.PodPending
	}

	readyStatus := api.ConditionFalse
	if ready == n {
		readyStatus = api.ConditionTrue
	}
	st.Conditions = []api.PodCondition{{Type: api.PodReady, Status: readyStatus}}
	return st
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
