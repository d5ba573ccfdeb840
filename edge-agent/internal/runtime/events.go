package runtime

import (
	"context"
	"fmt"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/events"
	"github.com/containerd/typeurl/v2"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
)

// Resubscription back-off after the event stream breaks.
const (
	resubscribeInitial = 100 * time.Millisecond
	resubscribeMax     = 5 * time.Second
)

// Exits delivers the exits of the containers' main processes (not of exec'd
// processes such as probes) until ctx ends, when the channel closes. If the
// event stream breaks, for instance because containerd restarted, it
// resubscribes with capped exponential back-off; exits that happen while
// unsubscribed are not delivered, which the reconciler's periodic resync
// covers.
func (c *Containerd) Exits(ctx context.Context) <-chan reconcile.Exit {
	out := make(chan reconcile.Exit, 64)
	go c.watchExits(c.ns(ctx), out)
	return out
}

// watchExits is Exits' goroutine; it returns, closing out, when ctx ends.
func (c *Containerd) watchExits(ctx context.Context, out chan<- reconcile.Exit) {
	defer close(out)
	filter := fmt.Sprintf(`topic=="/tasks/exit",namespace==%q`, c.opts.Namespace)
	delay := resubscribeInitial
	for {
		delivered, err := c.forwardExits(ctx, filter, out)
		if ctx.Err() != nil {
			return
		}
		if delivered {
			delay = resubscribeInitial
		}
		c.log.Warn("task exit subscription broke, resubscribing", "err", err, "after", delay)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		delay = min(delay*2, resubscribeMax)
	}
}

// forwardExits runs one subscription until it fails or ctx ends. delivered
// reports whether the subscription received anything, so the back-off can
// start over.
func (c *Containerd) forwardExits(ctx context.Context, filter string, out chan<- reconcile.Exit) (delivered bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the client's receive goroutine
	envelopes, errs := c.client.Subscribe(sctx, filter)
	for {
		select {
		case <-ctx.Done():
			return delivered, ctx.Err()
		case err := <-errs:
			if err == nil {
				err = fmt.Errorf("event stream closed")
			}
			return delivered, fmt.Errorf("subscribe task exits: %w", err)
		case env := <-envelopes:
			delivered = true
			exit, ok := decodeExit(env)
			if !ok {
				continue
			}
			select {
			case out <- exit:
			case <-ctx.Done():
				return delivered, ctx.Err()
			}
		}
	}
}

// decodeExit turns an event into an Exit if it is a main-process exit.
func decodeExit(env *events.Envelope) (reconcile.Exit, bool) {
	if env == nil || env.Event == nil {
		return reconcile.Exit{}, false
	}
	v, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		return reconcile.Exit{}, false
	}
	e, ok := v.(*apievents.TaskExit)
	// An exec'd process (a probe) has its own ID; the main process's ID is
	// the container's.
	if !ok || e.ID != e.ContainerID {
		return reconcile.Exit{}, false
	}
	exit := reconcile.Exit{ContainerID: e.ContainerID, ExitCode: int32(e.ExitStatus)}
	if e.ExitedAt != nil {
		exit.ExitedAt = e.ExitedAt.AsTime()
	}
	return exit, true
}
