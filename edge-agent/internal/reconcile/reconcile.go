// Package reconcile keeps a board's containers matching the desired snapshot
// the agent last persisted. Its loop is level-triggered: read the desired
// pods, read the actual containers, act on the difference, report what it
// sees. Task exits and new snapshots only wake the loop early; a periodic
// resync catches anything an event missed. Each pod's slow work (pulls,
// graceful stops) runs in that pod's own worker, so one pod never holds up
// another.
//
// The files: this one is the loop and its workers; plan.go plans a pass
// (which container needs what); actions.go holds what workers do (pull,
// create, start, restart, replace, remove); restarts.go the restart
// decision and back-off; status.go the pod status reported; state.go what
// the reconciler remembers between passes, and its one locking rule;
// devices.go the board's devices its containers hold.
package reconcile

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/probe"
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
	// Network gives pods that are not on the host network their network
	// namespaces (package network); nil runs every pod on the host's.
	Network PodNetwork
	// ResolvConf is the node's resolv.conf, which pods' are made from
	// (default /etc/resolv.conf).
	ResolvConf string
	// Devices hands containers the board's device nodes (devices.go);
	// nil: a container that asks for devices waits.
	Devices Devices
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
	wg   sync.WaitGroup // the workers
	// pulls is the back-off of failed pulls, per image: a node-wide table
	// with a lock of its own.
	pulls *pullBackoff

	// mu guards what follows (see state.go).
	mu sync.Mutex
	// pods is the state of each pod, by UID, and of each container that
	// is not Flotilla's (foreignOwner).
	pods map[string]*podState
	// revision is that of the snapshot the current pass works from.
	revision uint64
	// lastReport is the pod status last handed on.
	lastReport *wire.PodStatusReport
	// netOn: the snapshot the current pass works from has a network;
	// netErr is the last error configuring it, logged when it changes;
	// nextNetGC is when collectNetworks looks next.
	netOn     bool
	netErr    string
	nextNetGC time.Time
	// grants are this pass's devices of the containers that ask for
	// some, by container key (devices.go).
	grants map[string]devices.Grant
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
		cfg:   cfg,
		log:   cfg.Logger,
		now:   cfg.Now,
		wake:  make(chan struct{}, 1),
		pulls: newPullBackoff(),
		pods:  map[string]*podState{},
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

// spawn runs fn as owner's worker of kind unless one is running already.
// The loop is woken when it ends.
func (r *Reconciler) spawn(ctx context.Context, owner string, kind workerKind, fn func(context.Context)) {
	started := false
	r.withPod(owner, func(s *podState) {
		if !s.workers[kind] {
			s.workers[kind], started = true, true
		}
	})
	if !started {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(ctx)
		r.withPod(owner, func(s *podState) { s.workers[kind] = false })
		r.Wake()
	}()
}
