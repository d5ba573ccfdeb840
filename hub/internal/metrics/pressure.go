package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Condition reasons, in the kubelet's style.
const (
	ReasonSufficientMemory   = "AgentHasSufficientMemory"
	ReasonInsufficientMemory = "AgentHasInsufficientMemory"
	ReasonNoDiskPressure     = "AgentHasNoDiskPressure"
	ReasonDiskPressure       = "AgentHasDiskPressure"
)

// Default thresholds, in percent of memory in use and of the fullest
// watched filesystem.
const (
	DefaultMemoryPressure = 90.0
	DefaultDiskPressure   = 90.0
	// hysteresis is how far below its threshold usage must fall for a
	// pressure condition to clear, so a node hovering at the line does not
	// flap.
	hysteresis = 2.0
)

// PressureOptions configure the pressure controller.
type PressureOptions struct {
	Store store.Store
	Fleet *Fleet
	// MemoryThreshold and DiskThreshold are percentages (default 90).
	MemoryThreshold, DiskThreshold float64
	EventTTL                       time.Duration
	Logger                         *slog.Logger
}

// Pressure sets nodes' MemoryPressure and DiskPressure conditions from
// their latest samples. It writes a node only when a condition changes
// (or is missing), so steady usage costs no store writes, and records an
// event for each change.
type Pressure struct {
	opts PressureOptions
	log  *slog.Logger
	// known is the condition status last written or read per node, so
	// that unchanged nodes are not read at all.
	known map[string][2]api.ConditionStatus
}

// NewPressure returns the controller; call Run.
func NewPressure(opts PressureOptions) *Pressure {
	if opts.MemoryThreshold <= 0 {
		opts.MemoryThreshold = DefaultMemoryPressure
	}
	if opts.DiskThreshold <= 0 {
		opts.DiskThreshold = DefaultDiskPressure
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Pressure{opts: opts, log: opts.Logger.With("component", "pressure"), known: map[string][2]api.ConditionStatus{}}
}

// Run evaluates nodes whose latest sample changed, until ctx ends.
func (p *Pressure) Run(ctx context.Context) error {
	// Batch the bursts of a fleet's samples into one pass a second.
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		select {
		case <-p.opts.Fleet.Changed():
		default:
			continue
		}
		if err := p.Sync(p.opts.Fleet.TakeChanged()); err != nil {
			p.log.Error("set node pressure conditions", "err", err)
		}
	}
}

// above applies the threshold with hysteresis: over the threshold is
// pressure; once under pressure, it clears only below threshold-hysteresis.
func above(value, threshold float64, was api.ConditionStatus) bool {
	if was == api.ConditionTrue {
		return value >= threshold-hysteresis
	}
	return value >= threshold
}

// Sync evaluates the given nodes now.
func (p *Pressure) Sync(nodes []string) error {
	sort.Strings(nodes)
	type change struct {
		node   string
		sample wire.MetricSample
	}
	var todo []change
	for _, n := range nodes {
		s, ok := p.opts.Fleet.Latest(n)
		if !ok || !p.opts.Fleet.IsCurrent(s) {
			continue
		}
		was, seen := p.known[n]
		mem := above(MemoryPercent(s.Node), p.opts.MemoryThreshold, was[0])
		disk := above(DiskPercent(s.Node), p.opts.DiskThreshold, was[1]) || s.Node.StateStoreFull
		if seen && was == [2]api.ConditionStatus{status(mem), status(disk)} {
			continue
		}
		todo = append(todo, change{n, s})
	}
	const perTx = 200
	for start := 0; start < len(todo); start += perTx {
		part := todo[start:min(start+perTx, len(todo))]
		written := map[string][2]api.ConditionStatus{}
		err := p.opts.Store.Update(func(tx store.Tx) error {
			for _, c := range part {
				st, err := p.apply(tx, c.node, c.sample)
				if err != nil {
					return err
				}
				written[c.node] = st
			}
			return nil
		})
		if err != nil {
			return err
		}
		for n, st := range written {
			p.known[n] = st
		}
	}
	return nil
}

func status(b bool) api.ConditionStatus {
	if b {
		return api.ConditionTrue
	}
	return api.ConditionFalse
}

// apply sets one node's conditions from s and returns their statuses.
func (p *Pressure) apply(tx store.Tx, name string, s wire.MetricSample) ([2]api.ConditionStatus, error) {
	node, err := store.Get[api.Node](tx, "", name)
	if store.IsNotFound(err) {
		return [2]api.ConditionStatus{}, nil // not announced yet; the next sample retries
	}
	if err != nil {
		return [2]api.ConditionStatus{}, err
	}
	at := api.NewTime(s.Time.UTC().Truncate(time.Second))
	memPct, diskPct := MemoryPercent(s.Node), DiskPercent(s.Node)
	var prevMem, prevDisk api.ConditionStatus
	if c := node.Status.Condition(api.NodeMemoryPressure); c != nil {
		prevMem = c.Status
	}
	if c := node.Status.Condition(api.NodeDiskPressure); c != nil {
		prevDisk = c.Status
	}
	mem := above(memPct, p.opts.MemoryThreshold, prevMem)
	disk := above(diskPct, p.opts.DiskThreshold, prevDisk) || s.Node.StateStoreFull
	changed := false
	var evs []events.Record
	set := func(typ string, on bool, onReason, offReason, what string, pct, threshold float64) {
		reason, msg := offReason, fmt.Sprintf("%s use %.1f%% is under the %.0f%% threshold", what, pct, threshold)
		switch {
		case on && typ == api.NodeDiskPressure && s.Node.StateStoreFull:
			reason, msg = onReason, fmt.Sprintf("the agent's state store is full: it refuses writes and its outbox drops reports (disk use %.1f%%)", pct)
		case on:
			reason, msg = onReason, fmt.Sprintf("%s use %.1f%% is at or over the %.0f%% threshold", what, pct, threshold)
		}
		c := node.Status.Condition(typ)
		if c == nil {
			node.Status.Conditions = append(node.Status.Conditions, api.NodeCondition{Type: typ})
			c = &node.Status.Conditions[len(node.Status.Conditions)-1]
		}
		if c.Status == status(on) {
			return
		}
		if c.Status != "" || on {
			evType := api.EventNormal
			if on {
				evType = api.EventWarning
			}
			evs = append(evs, events.Record{
				Object: api.ObjectReference{Kind: api.KindNode, Name: name, UID: node.UID},
				Type:   evType, Reason: "Node" + reason[len("Agent"):], Message: fmt.Sprintf("Node %s: %s", name, msg),
				Time: s.Time, Source: api.EventSource{Component: "hub"},
			})
		}
		c.Status, c.Reason, c.Message = status(on), reason, msg
		c.LastTransitionTime, c.LastHeartbeatTime = at, at
		changed = true
	}
	set(api.NodeMemoryPressure, mem, ReasonInsufficientMemory, ReasonSufficientMemory, "memory", memPct, p.opts.MemoryThreshold)
	set(api.NodeDiskPressure, disk, ReasonDiskPressure, ReasonNoDiskPressure, "disk", diskPct, p.opts.DiskThreshold)
	st := [2]api.ConditionStatus{status(mem), status(disk)}
	if !changed {
		return st, nil
	}
	if err := tx.Put(node); err != nil {
		return st, err
	}
	for _, e := range evs {
		if err := events.Put(tx, e, p.opts.EventTTL); err != nil {
			return st, err
		}
	}
	return st, nil
}
