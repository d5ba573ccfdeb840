package controller

import (
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/lease"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// UnheardRecheck is how soon a controller's pass runs again while nodes
// are unheard: their reports wake it, their leases (renewed by heartbeats
// alone) do not.
const UnheardRecheck = 2 * time.Second

// Unheard finds the nodes the hub has not heard from since its controller
// started. What the store says of such a node is from before, possibly
// from before a crash: a rollout neither moves it nor counts on its pods
// until its agent reports again. The zero value finds none; Start starts
// looking.
type Unheard struct {
	// since is when the controller started; zero once every node has
	// been heard from.
	since time.Time
}

// Start looks, from now on, for the nodes not heard from since t.
func (u *Unheard) Start(t time.Time) { u.since = t.UTC() }

// Looking reports whether it still looks: it started, and has not heard
// from every node since.
func (u *Unheard) Looking() bool { return !u.since.IsZero() }

// Read returns the Ready nodes among nodes that the hub has not heard
// from since Start (lease.Unheard), reading their leases in tx; nil if
// none. Once every node has been heard from it stops looking, and reads
// nothing more.
func (u *Unheard) Read(tx store.Tx, nodes []*api.Node) (map[string]bool, error) {
	if u.since.IsZero() {
		return nil, nil
	}
	leases, err := store.ListShared[lease.Lease](tx, "")
	if err != nil {
		return nil, err
	}
	unheard := lease.Unheard(nodes, leases, u.since)
	if len(unheard) == 0 {
		u.since = time.Time{}
	}
	return unheard, nil
}
