package reconcile

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// pullBackoff is the node's back-off of failed image pulls, as kubelet's
// image back-off: after a failed pull of an image, the next waits 10 s,
// then 20 s, doubling up to 5 minutes; a pull that succeeds, or 10 minutes
// without a failure, starts it over. It is kept per image, not per
// container, so that every pod and every path that needs the image (first
// start, replacement by a new spec, restart, pre-pull, revert) waits on
// the same clock, and a new snapshot or a new spec with the same image
// does not start it over. Each wait is cut by up to a quarter at random,
// so that a fleet that failed together does not retry together.
//
// It is kept in memory only: an agent restart grants each failing image
// one early attempt (one request to its registry), which is cheaper than
// a write per failure on a board's flash, and a restarted agent may have
// been given the credentials or the route it lacked.
type pullBackoff struct {
	mu     sync.Mutex
	images map[string]*pullFailure
	// jitter shortens a wait (default: by up to a quarter, at random).
	jitter func(time.Duration) time.Duration
}

// pullFailure is one image's run of failed pulls.
type pullFailure struct {
	Message string // the registry's (or the runtime's) error
	// Permanent: the registry said not found or denied access, or the
	// reference is malformed (PermanentPullError).
	Permanent bool
	Since     time.Time // first failure of this run
	Last      time.Time // newest failure
	Next      time.Time // earliest next attempt
	Attempts  int32
	// absent: the image was not on the board at the newest attempt (or
	// check). When only pulls by policy Always failed, the image may be
	// on the board, and a container that takes it if present need not
	// wait.
	absent bool
}

func newPullBackoff() *pullBackoff {
	return &pullBackoff{images: map[string]*pullFailure{}, jitter: jitterDown}
}

// jitterDown returns d less a random part of up to a quarter of d.
func jitterDown(d time.Duration) time.Duration {
	return d - rand.N(d/4+1)
}

// pullBackoffReset is how long without a failure starts an image's
// back-off over (kubelet: twice the longest wait).
const pullBackoffReset = 2 * backoffMax

// failed records a failed attempt to pull image by policy at now, and
// returns the image's back-off. stepped is false when the image was
// already backing off: the failure is of an attempt made before the
// back-off began (two pods pulling one image at once share one pull), and
// is the same step, not a new one.
func (b *pullBackoff) failed(image string, policy api.PullPolicy, err error, now time.Time) (f pullFailure, stepped bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.images[image]
	if p != nil && now.Before(p.Next) {
		return *p, false
	}
	if p == nil || now.Sub(p.Last) > pullBackoffReset {
		p = &pullFailure{Since: now}
		b.images[image] = p
	}
	p.Attempts++
	p.Message = err.Error()
	p.Permanent = PermanentPullError(err)
	p.Last = now
	p.Next = now.Add(b.jitter(backoffDelay(int(p.Attempts))))
	p.absent = p.absent || policy != api.PullAlways
	return *p, true
}

// holding reports whether a container (or pre-pull) that takes image by
// policy must wait at now, and the image's back-off.
func (b *pullBackoff) holding(image string, policy api.PullPolicy, now time.Time) (pullFailure, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.images[image]
	if p == nil || !now.Before(p.Next) {
		return pullFailure{}, false
	}
	return *p, policy == api.PullAlways || p.absent
}

// markAbsent records that image, backing off, is not on the board.
func (b *pullBackoff) markAbsent(image string) (pullFailure, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.images[image]
	if p == nil {
		return pullFailure{}, false
	}
	p.absent = true
	return *p, true
}

// pulled forgets image's back-off: the image is on the board.
func (b *pullBackoff) pulled(image string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.images, image)
}

// get returns image's back-off, if it has one.
func (b *pullBackoff) get(image string) (pullFailure, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.images[image]
	if p == nil {
		return pullFailure{}, false
	}
	return *p, true
}

// gc forgets the images whose back-off is over and that have not failed
// for pullBackoffReset: they would start over anyway.
func (b *pullBackoff) gc(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for image, p := range b.images {
		if !now.Before(p.Next) && now.Sub(p.Last) > pullBackoffReset {
			delete(b.images, image)
		}
	}
}

// status returns f as reported in a pod's status.
func (f pullFailure) status(image, specHash string, prePull bool) *api.ImagePullFailure {
	return &api.ImagePullFailure{
		Image: image, Message: f.Message, Permanent: f.Permanent, PrePull: prePull, SpecHash: specHash,
		Since: api.NewTime(f.Since), Attempts: f.Attempts,
	}
}

// fetch makes image present by policy (not Never) through the image's
// pull back-off: while it backs off, the registry is not asked. When the
// image is not present, f is its back-off (zero if ctx ended) and tried
// says whether this call's own attempt failed: one per back-off step, to
// log and report.
func (r *Reconciler) fetch(ctx context.Context, image string, policy api.PullPolicy) (present bool, f pullFailure, tried bool) {
	f, held := r.pulls.holding(image, policy, r.now())
	if held {
		return false, f, false
	}
	if f.Attempts > 0 {
		// Backing off, but only pulls by policy Always failed: the image
		// may be on the board, and this container takes it if so.
		if _, err := r.cfg.Runtime.EnsureImage(ctx, image, api.PullNever); err == nil {
			return true, pullFailure{}, false
		} else if ctx.Err() != nil {
			return false, pullFailure{}, false
		}
		f, held = r.pulls.markAbsent(image)
		if held {
			return false, f, false
		}
	}
	if _, err := r.cfg.Runtime.EnsureImage(ctx, image, policy); err != nil {
		if ctx.Err() != nil {
			return false, pullFailure{}, false
		}
		f, tried = r.pulls.failed(image, policy, err, r.now())
		return false, f, tried
	}
	r.pulls.pulled(image)
	return true, pullFailure{}, false
}

// pullHeld returns until when a container must wait for its image's pull
// back-off before it is started (zero: it need not wait), and records and
// announces the wait.
func (r *Reconciler) pullHeld(pod *wire.SnapshotPod, spec *api.Container) time.Time {
	if spec.ImagePullPolicy == api.PullNever {
		return time.Time{}
	}
	f, held := r.pulls.holding(spec.Image, spec.ImagePullPolicy, r.now())
	if !held {
		return time.Time{}
	}
	key := ContainerID(pod, spec.Name)
	r.holdPull(pod.UID, key, spec.Image, f)
	r.emitAll(r.announcement(pod, spec.Name, key, spec.Image, f))
	return f.Next
}

// announcement is the report, once per back-off step of image, that the
// pull of a container of pod (key; "" for the pod's pre-pull) waits for
// it (kubelet's BackOff event); nil if that step was reported already.
func (r *Reconciler) announcement(pod *wire.SnapshotPod, container, key, image string, f pullFailure) *podEvent {
	if !r.announce(pod.UID, key, f.Next) {
		return nil
	}
	return newEvent(pod, container, api.EventNormal, "BackOff", fmt.Sprintf("Back-off pulling image %q", image))
}

// pullWaiting returns the waiting state of a container (or pre-pull) that
// waits for image's pull, and the image's back-off: ImagePullBackOff
// while it backs off, ErrImagePull while the next attempt is due, both
// with the registry's error, as kubelet words them. ok is false once the
// image is pulled.
func (r *Reconciler) pullWaiting(image string) (w api.ContainerStateWaiting, f pullFailure, ok bool) {
	f, ok = r.pulls.get(image)
	if !ok {
		return api.ContainerStateWaiting{Reason: reasonCreating}, f, false
	}
	if r.now().Before(f.Next) {
		return api.ContainerStateWaiting{Reason: reasonImagePullBack,
			Message: fmt.Sprintf("Back-off pulling image %q: %s: %s", image, reasonErrImagePull, f.Message)}, f, true
	}
	return api.ContainerStateWaiting{Reason: reasonErrImagePull, Message: f.Message}, f, true
}
