package agent

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// The board's devices (package devices): the agent counts each class in
// the node's capacity (devices.flotilla.io/CLASS) and lists the devices
// with their holders in its facts; a device plugged in or pulled out, or
// one changing hands, sends the hello again at once (online; offline the
// facts wait for the next connect), and wakes the reconciler, which
// gives containers their devices.

// openDevices opens the board's device inventory, if the agent has
// device classes; its holdings are kept in the state directory.
func (a *Agent) openDevices() (*devices.Inventory, error) {
	if a.cfg.Devices == nil {
		return nil, nil
	}
	cfg := *a.cfg.Devices
	if cfg.StateFile == "" && !a.cfg.InMemory {
		cfg.StateFile = filepath.Join(a.cfg.StateDir, "devices.json")
	}
	cfg.Logger = a.log
	cfg.Changed = a.devicesChanged
	return devices.Open(cfg)
}

// devicesChanged is the inventory's word that its devices or holders
// changed: announceDevices takes it from there.
func (a *Agent) devicesChanged() {
	select {
	case a.devicesMoved <- struct{}{}:
	default:
	}
}

// startDevices runs the inventory's hot-plug watch and the announcer of
// its changes in g.
func (a *Agent) startDevices(ctx context.Context, g *errgroup.Group) {
	if a.devices == nil {
		return
	}
	g.Go(func() error { return a.devices.Run(ctx) })
	g.Go(func() error { a.announceDevices(ctx); return nil })
}

// announceDevices puts each change of the devices in the node's facts,
// wakes the reconciler (a device back lets a container run; one gone
// stops it), and sends the hello with the new facts while the link is
// up.
func (a *Agent) announceDevices(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.devicesMoved:
		}
		changed := a.setDeviceFacts()
		if rec := a.rec.Load(); rec != nil {
			rec.Wake()
		}
		if changed && a.link.Connected() {
			hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			a.sendHello(hctx)
			cancel()
		}
	}
}

// setDeviceFacts puts the inventory's capacity and devices in the facts
// and says whether they changed.
func (a *Agent) setDeviceFacts() bool {
	if a.devices == nil {
		return false
	}
	capacity, devs := a.devices.Capacity(), a.devices.Devices()
	a.mu.Lock()
	defer a.mu.Unlock()
	f := &a.facts
	next := maps.Clone(f.Capacity)
	if next == nil {
		next = api.ResourceList{}
	}
	for name := range next {
		if _, ok := api.DeviceClassOf(name); ok {
			delete(next, name)
		}
	}
	maps.Copy(next, capacity)
	if maps.Equal(next, f.Capacity) && slices.Equal(devs, f.Devices) {
		return false
	}
	f.Capacity, f.Devices = next, devs
	return true
}

// reconcileDevices is the inventory as the reconciler's Devices, nil
// (an interface without a value) when there is none.
func (a *Agent) reconcileDevices() reconcile.Devices {
	if a.devices == nil {
		return nil
	}
	return a.devices
}
