// Package agent wires one edge agent together: the local state, the
// outbox, the containerd runtime, the reconciler and the MQTT link to the
// hub. The persisted snapshot is the agent's only source of truth for what
// to run, and every report goes through the on-disk outbox, so the agent
// keeps its node right and remembers what happened while the hub is
// unreachable, for as long as it is unreachable.
package agent

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/ingress"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/metrics"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/probe"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/services"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/state"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Config is the agent's configuration.
type Config struct {
	NodeName string
	Labels   map[string]string
	Broker   string
	StateDir string
	// HeartbeatInterval is how often the agent says it is alive (default 10 s).
	HeartbeatInterval time.Duration
	// KeepAlive is the MQTT keep-alive: how fast a dead link is noticed
	// (default 30 s).
	KeepAlive time.Duration
	// Resync is the reconciler's full-resync period (default 10 s).
	Resync time.Duration
	// Outbox bounds the queue of undelivered reports.
	Outbox outbox.Limits
	// InMemory keeps the local state and the outbox in memory instead of
	// in StateDir: for the fleet simulator only, a board loses nothing.
	InMemory bool
	Version  string
	Logger   *slog.Logger
	// ConnectRuntime opens the container runtime; the agent retries it
	// with back-off until it succeeds, so the agent may start before
	// containerd does.
	ConnectRuntime func(ctx context.Context) (Runtime, error)
	// MetricsInterval is the sampling period of node and pod metrics (0
	// disables them); MetricsOfflineResolution is what samples taken
	// offline are merged to (default 1 min).
	MetricsInterval          time.Duration
	MetricsOfflineResolution time.Duration
	// NodeSource reads the board's usage for metrics (nil: gopsutil on
	// this machine); the fleet simulator gives each agent a synthetic one.
	NodeSource metrics.NodeSource
	// ContainerLogMaxSize bounds one container's log files (default 10 MiB).
	ContainerLogMaxSize int64
	// ContainerLogCheckInterval is how often container logs are checked for
	// rotation (default 1 s); the fleet simulator, whose containers write
	// nothing, checks rarely.
	ContainerLogCheckInterval time.Duration
	// TLS, if set, is the MQTT connection's configuration: the node's
	// client certificate and the hub CA (enrol.Identity.TLSConfig).
	TLS *tls.Config
	// Verifier, if set, checks every snapshot's signature, node and
	// revision before the agent keeps or acts on it. Without one
	// (--insecure, the fleet simulator) unsigned snapshots are accepted.
	Verifier *wire.Verifier
	// Now is the clock of the agent and its reconciler (default time.Now).
	Now func() time.Time
	// NodeIP is the node's address on its site's LAN (--node-ip): its
	// InternalIP, which the hub routes the node's pod CIDR through; empty
	// takes the first IPv4 address of an interface that is up.
	NodeIP string
	// Network gives pods off the host network their own namespaces and
	// addresses (package network); nil keeps every pod on the host's
	// network (the fleet simulator).
	Network reconcile.PodNetwork
	// ServiceProxy and ClusterDNS turn on the node's Service rules (the
	// kernel's nftables table inet flotilla) and its cluster DNS server on
	// the pod bridge, programmed from the snapshot's Network and Services
	// and the node's own pods (package services). main turns both on; the
	// fleet simulator, whose agents share one host, leaves them off.
	ServiceProxy, ClusterDNS bool
	// ServiceBackends, if set, replaces the kernel's rules, the DNS server
	// and the node's preparation (tests); its NewRules and NewDNS are used
	// only where ServiceProxy and ClusterDNS say.
	ServiceBackends *services.Backends
	// ResolvConf is the node's resolv.conf, whose resolvers the cluster
	// DNS server forwards other names to (default /etc/resolv.conf).
	ResolvConf string
	// Devices, if set, are the board's device classes and dev root: the
	// agent counts the devices in the node's capacity and gives pods
	// theirs (devices.go). Its StateFile defaults to
	// STATE-DIR/devices.json; its Changed and Logger are the agent's.
	Devices *devices.Config
	// Ingress serves the Ingresses the hub sends the node (package
	// ingress) on IngressHTTPAddr and IngressHTTPSAddr (":80", ":443";
	// "" serves none on that protocol), opened only while there are
	// Ingresses to serve.
	Ingress                           bool
	IngressHTTPAddr, IngressHTTPSAddr string
}

// localState is what the agent keeps on the board: the newest snapshot,
// report sequence numbers, restart history and rollback memory. A board
// keeps it in Badger (state.Store); the fleet simulator in memory.
type localState interface {
	Snapshot() (wire.Snapshot, error)
	AcceptSnapshot(wire.Snapshot) (bool, error)
	NextSeq() (uint64, error)
	reconcile.History
	reconcile.Rollbacks
}

// Runtime is the container runtime as the agent needs it: the reconciler's
// interface, exec for probes, and facts for the hello.
type Runtime interface {
	reconcile.Runtime
	metrics.Runtime
	probe.Execer
	Version(ctx context.Context) (string, error)
	Close() error
}

// Agent is a running edge agent.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	state  localState
	outbox *outbox.Outbox
	link   *link.Session
	// rec is set once the runtime is reachable; snapshots may arrive before.
	rec atomic.Pointer[reconcile.Reconciler]
	// services programs the node's Services and DNS (nil: both off).
	services *services.Programmer
	// ingress serves the node's Ingresses (nil: off).
	ingress *ingress.Server

	mu    sync.Mutex
	facts Facts
	// reportMu orders the pod status reports: whoever queues one (the
	// reconciler, or a resend of the last one) holds it from reading
	// lastReport to taking the report's sequence number, so a resend of
	// an older report never gets a number above a newer one's.
	reportMu   sync.Mutex
	lastReport *wire.PodStatusReport
	// statusSeq is the sequence number of the newest report the broker
	// acknowledged (wire.Heartbeat.StatusSeq).
	statusSeq atomic.Uint64
	// lastAck is when the broker last acknowledged a publish (UnixNano; 0:
	// never): the last report the hub had before the link went down.
	lastAck      atomic.Int64
	offlineSince time.Time // when the last report got through before the link went down; zero while up
	started      time.Time
	everOnline   bool
	connected    chan struct{}
	tel          telemetry

	// secrets are the Secrets of the accepted snapshot. They are kept
	// only in memory (and, for secret volumes, on a tmpfs), never in the
	// local state: after a restart they come back with the hub's retained
	// snapshot, whose same revision is then accepted for its Secrets.
	secretsMu sync.Mutex
	secrets   []wire.SnapshotSecret

	// helloAgain is when a HelloRequest was last answered (UnixNano).
	helloAgain atomic.Int64
	// helloAsked wakes answerHellos: the hub asked for the node's hello.
	helloAsked chan struct{}
	// beatQueued is when a metrics batch carrying the heartbeat was last
	// queued (UnixNano; 0: never).
	beatQueued atomic.Int64
	// diskFull reports whether the local state refuses writes for a full
	// disk (nil: it never does, in memory).
	diskFull func() bool
	// devices are the board's device nodes (nil: none handed out);
	// devicesMoved wakes announceDevices (devices.go).
	devices      *devices.Inventory
	devicesMoved chan struct{}
}

// Run runs the agent until ctx ends, and returns once every goroutine it
// started has stopped (with the error of the first that failed, if one
// did: the others are then stopped).
func Run(ctx context.Context, cfg Config) error {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeName),
		connected: make(chan struct{}, 1), helloAsked: make(chan struct{}, 1), devicesMoved: make(chan struct{}, 1)}
	if cfg.Verifier == nil && !cfg.InMemory {
		a.log.Warn("no pinned hub signing key: accepting unsigned snapshots (insecure mode)")
	}
	gc, closeState, err := a.openState()
	if err != nil {
		return err
	}
	defer closeState()
	if a.devices, err = a.openDevices(); err != nil {
		return err
	}
	a.setFacts(gatherFacts(ctx, cfg))
	a.setDeviceFacts()
	if a.services, err = a.newServices(); err != nil {
		return err
	}
	if a.ingress, err = a.newIngress(); err != nil {
		return err
	}
	a.link = a.newLink()

	g, ctx := errgroup.WithContext(ctx)
	if gc != nil {
		g.Go(func() error { gc(ctx); return nil })
	}
	if a.services != nil {
		g.Go(func() error { return a.services.Run(ctx) })
	}
	if a.ingress != nil {
		g.Go(func() error { return a.ingress.Run(ctx) })
	}
	// Reporting runs from the first second, so a board that boots without
	// the hub queues what happens for later.
	a.startTelemetry(ctx, g)
	g.Go(func() error { return a.link.Run(ctx) })
	g.Go(func() error { a.drain(ctx); return nil })
	g.Go(func() error { a.heartbeats(ctx); return nil })
	g.Go(func() error { a.answerHellos(ctx); return nil })
	a.startDevices(ctx, g)

	rt, err := a.connectRuntime(ctx)
	if err != nil {
		return g.Wait() // ctx ended while waiting for the runtime
	}
	// Closed once nothing uses it any more: after g.Wait.
	defer rt.Close()
	a.startPods(ctx, g, rt)
	return g.Wait()
}

// newServices makes what programs the node's Services and cluster DNS,
// if either is on (nil otherwise). NodePorts answer on the node's
// InternalIP, the address its hello reports.
func (a *Agent) newServices() (*services.Programmer, error) {
	if !a.cfg.ServiceProxy && !a.cfg.ClusterDNS {
		return nil, nil
	}
	b := services.Backends{
		NewRules: services.KernelRules(a.log.With("component", "proxy")),
		NewDNS:   services.ClusterDNS(cmp.Or(a.cfg.ResolvConf, "/etc/resolv.conf"), a.log),
		Prepare:  services.PrepareNode,
	}
	if a.cfg.ServiceBackends != nil {
		b = *a.cfg.ServiceBackends
	}
	if !a.cfg.ServiceProxy {
		b.NewRules, b.Prepare = nil, nil
	}
	if !a.cfg.ClusterDNS {
		b.NewDNS = nil
	}
	var nodeIPs []netip.Addr
	for _, addr := range a.getFacts().Addresses {
		if ip, err := netip.ParseAddr(addr.Address); err == nil && addr.Type == "InternalIP" {
			nodeIPs = append(nodeIPs, ip)
		}
	}
	p, err := services.New(services.Config{
		NodeName: a.cfg.NodeName,
		NodeIPs:  nodeIPs,
		Snapshot: a.state.Snapshot,
		Backends: b,
		Event: func(typ api.EventType, reason, message string) {
			a.nodeEvent(typ, reason, message)
		},
		Logger: a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return p, nil
}

// openState opens the local state and the outbox (in StateDir, or in
// memory). It returns the store's space and garbage-collection loop (nil
// in memory) and what closes the store.
func (a *Agent) openState() (gc func(ctx context.Context), closeState func(), err error) {
	var recovered bool
	closeState = func() {}
	if a.cfg.InMemory {
		a.state, a.outbox = state.NewMemory(), outbox.NewMemory(a.cfg.Outbox)
	} else {
		release, err := state.Lock(a.cfg.StateDir)
		if err != nil {
			return nil, nil, err
		}
		disk, rec, err := state.OpenOrRecover(filepath.Join(a.cfg.StateDir, "state"), a.log)
		if err != nil {
			release()
			return nil, nil, err
		}
		closeState = func() {
			if err := disk.Close(); err != nil {
				a.log.Error("close local state", "err", err)
			}
			release()
		}
		if a.outbox, err = outbox.Open(disk, a.cfg.Outbox); err != nil {
			closeState()
			return nil, nil, err
		}
		a.state, recovered = disk, rec
		a.diskFull = disk.Full
		gc = func(ctx context.Context) { disk.Run(ctx, 5*time.Second, 10*time.Minute) }
	}
	if snap, err := a.state.Snapshot(); err != nil {
		a.log.Error("read desired snapshot from local state", "err", err)
	} else if snap.Revision > 0 {
		queued, _ := a.outbox.Len()
		a.log.Info("loaded desired snapshot from local state", "revision", snap.Revision, "pods", len(snap.Pods), "queuedReports", queued)
	}
	// The agent is offline until its first connect.
	a.offlineSince = a.now()
	a.started = a.offlineSince
	if recovered {
		a.nodeEvent(api.EventWarning, "StateRecovered", "the agent's local state was damaged and has been rebuilt; restart counts were reset")
	}
	return gc, closeState, nil
}

// newLink makes the MQTT session to the hub's broker, subscribed to the
// node's desired snapshot and requests.
func (a *Agent) newLink() *link.Session {
	l := link.New(link.Options{
		Broker:   a.cfg.Broker,
		TLS:      a.cfg.TLS,
		ClientID: wire.AgentClientID(a.cfg.NodeName),
		Will: &link.Will{
			Topic:    wire.NodeTopic(a.cfg.NodeName, wire.TopicOnline),
			Payload:  a.mustEncodeOnline(false),
			Retained: true,
		},
		KeepAlive: a.cfg.KeepAlive,
		// Reconnects spread over at most 10 s: a fleet returning after a
		// broker outage arrives at about a thousand agents a second per
		// 10,000 rather than all at once, and a site back from a long
		// outage is seen within seconds.
		BackoffMax: 10 * time.Second,
		// A refused node (its certificate revoked) cannot mend that by
		// retrying: it asks at most every 5 minutes, so that it neither
		// fills its own log nor the hub's with a refusal every few
		// seconds, for as long as the board stays powered.
		RefusedBackoffMax: 5 * time.Minute,
		OnConnect:         a.onConnect,
		OnDisconnect:      a.onDisconnect,
		Logger:            a.log,
	})
	l.Subscribe(wire.NodeTopic(a.cfg.NodeName, wire.TopicDesired), 1, a.onDesired)
	l.Subscribe(wire.NodeTopic(a.cfg.NodeName, wire.TopicRequests), 1, a.onRequest)
	return l
}

// startPods starts the prober and the reconciler on the runtime, which is
// now reachable, in g.
func (a *Agent) startPods(ctx context.Context, g *errgroup.Group, rt Runtime) {
	a.tel.collector.SetRuntime(rt)
	if v, err := rt.Version(ctx); err == nil {
		a.mu.Lock()
		a.facts.Info.ContainerRuntimeVersion = "containerd://" + v
		a.mu.Unlock()
		if a.link.Connected() {
			a.sendHello(ctx)
		}
	} else if ctx.Err() == nil {
		a.log.Warn("read the container runtime's version", "err", err)
	}
	prober := probe.New(probe.Options{Exec: rt, OnChange: func(string) {
		if rec := a.rec.Load(); rec != nil {
			rec.Wake()
		}
	}})
	g.Go(func() error { return prober.Run(ctx) })
	rec := reconcile.New(reconcile.Config{
		Runtime:   rt,
		History:   a.state,
		Desired:   a.desired,
		Report:    a.queueReport,
		Event:     a.queueEvent,
		Prober:    prober,
		Rollbacks: a.state,
		DataDir:   a.cfg.StateDir,
		Network:   a.cfg.Network,
		Devices:   a.reconcileDevices(),
		HostIP:    a.getFacts().InternalIP,
		Resync:    a.cfg.Resync,
		Logger:    a.log,
		Now:       a.cfg.Now,
	})
	a.rec.Store(rec)
	g.Go(func() error { return rec.Run(ctx) })
}

// now is the agent's clock (Config.Now).
func (a *Agent) now() time.Time {
	if a.cfg.Now != nil {
		return a.cfg.Now()
	}
	return time.Now()
}

// connectRuntime retries the runtime connection with back-off until it
// works or ctx ends.
func (a *Agent) connectRuntime(ctx context.Context) (Runtime, error) {
	for attempt := 1; ; attempt++ {
		rt, err := a.cfg.ConnectRuntime(ctx)
		if err == nil {
			return rt, nil
		}
		a.log.Warn("container runtime not reachable; retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(link.Backoff(attempt, 500*time.Millisecond, 10*time.Second)):
		}
	}
}

// onDesired handles a snapshot from the hub: verify it (signature, node,
// revision) when the agent pinned the hub's key, persist it if it is
// newer, then wake the reconciler. A rejected snapshot is logged and
// reported as a SnapshotRejected event; the node keeps running what it
// had. It runs on the MQTT receive path.
func (a *Agent) onDesired(topic string, payload []byte) {
	env, err := wire.Decode(topic, payload)
	if err != nil {
		a.rejectSnapshot(err)
		return
	}
	current, err := a.state.Snapshot()
	if err != nil {
		a.log.Error("read local snapshot", "err", err)
		return
	}
	var snap wire.Snapshot
	if a.cfg.Verifier != nil {
		snap, err = a.cfg.Verifier.Verify(env, current.Revision)
		var replay *wire.ReplayError
		if errors.As(err, &replay) && replay.Duplicate() {
			// The snapshot the node runs, delivered again (retained, after
			// a reconnect or a restart): signed and verified, so its
			// Secrets, which the local state does not keep, are good.
			a.setSecrets(snap.Secrets, current.Revision, snap.Revision)
			return
		}
		if err != nil {
			a.rejectSnapshot(err)
			return
		}
	} else {
		if err := wire.DecodePayload(env, topic, &snap); err != nil {
			a.rejectSnapshot(err)
			return
		}
		if snap.Node != a.cfg.NodeName {
			a.rejectSnapshot(fmt.Errorf("%w: snapshot names node %q", wire.ErrWrongNode, snap.Node))
			return
		}
		if snap.Revision == current.Revision {
			a.setSecrets(snap.Secrets, current.Revision, snap.Revision)
			return
		}
	}
	secrets := snap.Secrets
	snap.Secrets = nil // never into the local state
	accepted, err := a.state.AcceptSnapshot(snap)
	if err != nil {
		a.log.Error("persist snapshot", "revision", snap.Revision, "err", err)
		return
	}
	if !accepted {
		return
	}
	a.setSecrets(secrets, snap.Revision, snap.Revision)
	a.log.Info("accepted desired snapshot", "revision", snap.Revision, "pods", len(snap.Pods), "signed", a.cfg.Verifier != nil)
	if rec := a.rec.Load(); rec != nil {
		rec.Wake()
	}
	if a.services != nil {
		a.services.Changed()
	}
	if a.ingress != nil {
		a.ingress.Changed()
	}
}

// rejectSnapshot logs a snapshot the agent will not act on and reports it.
func (a *Agent) rejectSnapshot(err error) {
	a.log.Warn("rejected desired snapshot; keeping the current one", "err", err)
	a.nodeEvent(api.EventWarning, "SnapshotRejected", "rejected a desired snapshot: "+err.Error())
}

// setSecrets keeps the Secrets of the snapshot at revision rev, if it is
// the one the node runs (current).
func (a *Agent) setSecrets(secrets []wire.SnapshotSecret, current, rev uint64) {
	if rev != current {
		return
	}
	a.secretsMu.Lock()
	a.secrets = secrets
	a.secretsMu.Unlock()
	if rec := a.rec.Load(); rec != nil && len(secrets) > 0 {
		rec.Wake()
	}
	if a.ingress != nil && len(secrets) > 0 {
		a.ingress.Changed() // a TLS Secret, perhaps
	}
}

// desired is the reconciler's snapshot: the persisted one, with the
// Secrets held in memory.
func (a *Agent) desired() (wire.Snapshot, error) {
	snap, err := a.state.Snapshot()
	if err != nil {
		return snap, err
	}
	a.secretsMu.Lock()
	snap.Secrets = a.secrets
	a.secretsMu.Unlock()
	return snap, nil
}

// onConnect announces the node, records that it is back, and queues its
// current status again: while it was away the hub may have shown its pods
// as Unknown.
func (a *Agent) onConnect(ctx context.Context) {
	if err := a.publishNow(ctx, wire.TopicOnline, wire.TypeOnline, wire.Online{Online: true}, true); err != nil {
		a.log.Warn("publish online", "err", err)
	}
	a.sendHello(ctx)
	a.mu.Lock()
	since, first := a.offlineSince, !a.everOnline
	a.offlineSince, a.everOnline = time.Time{}, true
	a.mu.Unlock()
	switch {
	case first:
		a.nodeEvent(api.EventNormal, "Online", fmt.Sprintf("agent %s connected to the hub, %s after it started", a.cfg.Version, a.now().Sub(a.started).Round(time.Millisecond)))
	case !since.IsZero():
		// The outage counts from the last report that got through, not
		// from when the keep-alive noticed the link gone.
		a.nodeEvent(api.EventNormal, "Online", fmt.Sprintf("reconnected to the hub after %s offline", a.now().Sub(since).Round(time.Second)))
	}
	a.resendStatus()
	select {
	case a.connected <- struct{}{}:
	default:
	}
}

func (a *Agent) setFacts(f Facts) {
	a.mu.Lock()
	a.facts = f
	a.mu.Unlock()
}

func (a *Agent) getFacts() Facts {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.facts
}

// sendHello announces the node's labels and facts.
func (a *Agent) sendHello(ctx context.Context) {
	f := a.getFacts()
	snap, err := a.state.Snapshot()
	if err != nil {
		a.log.Error("read desired snapshot for the hello", "err", err)
	}
	hello := wire.Hello{
		Labels:           f.Labels,
		Info:             f.Info,
		Capacity:         f.Capacity,
		Addresses:        f.Addresses,
		ObservedRevision: snap.Revision,
		Outbox:           a.outboxState(),
		Devices:          f.Devices,
	}
	if err := a.publishNow(ctx, wire.TopicStatus, wire.TypeHello, hello, false); err != nil && ctx.Err() == nil {
		a.log.Warn("publish hello", "err", err)
	}
}

// onDisconnect records when the link went down, as an event the hub gets
// when it comes back. The link was gone before the keep-alive noticed
// (up to 1.5 keep-alives): the outage is counted from the last report the
// broker acknowledged.
func (a *Agent) onDisconnect(err error) {
	now := a.now()
	since := now
	if last := a.lastAck.Load(); last != 0 && time.Unix(0, last).Before(now) {
		since = time.Unix(0, last)
	}
	a.mu.Lock()
	if a.offlineSince.IsZero() {
		a.offlineSince = since
	}
	a.mu.Unlock()
	a.nodeEvent(api.EventWarning, "Offline", fmt.Sprintf("lost the connection to the hub: %v (the last report got through %s before)", err, now.Sub(since).Round(time.Second)))
}

// acked notes that the broker acknowledged a publish now.
func (a *Agent) acked() { a.lastAck.Store(a.now().UnixNano()) }

// queueReport sets the node's pod status to deliver; it is called by the
// reconciler whenever the status changes.
func (a *Agent) queueReport(r wire.PodStatusReport) {
	if a.services != nil {
		// The node's own endpoints follow its pods at once, hub or not.
		a.services.SetReport(r)
	}
	if a.ingress != nil {
		a.ingress.SetReport(r)
	}
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	a.mu.Lock()
	a.lastReport = &r
	a.mu.Unlock()
	a.setStatus(r)
}

// resendStatus sets the last pod status report to deliver again, under a
// new sequence number: after a reconnect (the hub may have shown the pods
// as Unknown meanwhile) and when the hub asks for it.
func (a *Agent) resendStatus() {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	a.mu.Lock()
	last := a.lastReport
	a.mu.Unlock()
	if last == nil {
		return
	}
	a.setStatus(last)
}

// setStatus puts a pod status report in the outbox's status slot, which
// the drain sends before anything queued: the report replaces the one
// waiting there, and no bound drops it. A report that cannot be kept (the
// disk failed) is logged; the agent goes on keeping its node right.
// The caller holds reportMu, so slot reports take increasing numbers.
func (a *Agent) setStatus(r any) {
	seq, err := a.state.NextSeq()
	if err != nil {
		a.log.Error("set pod status", "err", err)
		return
	}
	b, err := wire.Encode(wire.TypePodStatus, a.cfg.NodeName, seq, a.now(), r)
	if err != nil {
		a.log.Error("set pod status", "err", err)
		return
	}
	if err := a.outbox.SetStatus(outbox.Entry{Seq: seq, Class: outbox.Status, Topic: wire.TopicStatus, Payload: b}); err != nil {
		a.log.Error("set pod status", "seq", seq, "err", err)
	}
}

// queueEvent queues an event from the reconciler.
func (a *Agent) queueEvent(e wire.Event) {
	a.enqueue(wire.TopicEvents, wire.TypeEvent, outbox.Event, e)
}

// nodeEvent queues an event about the node itself.
func (a *Agent) nodeEvent(typ api.EventType, reason, message string) {
	a.queueEvent(wire.Event{
		Object: api.ObjectReference{Kind: api.KindNode, Name: a.cfg.NodeName},
		Type:   typ, Reason: reason, Message: message, Time: a.now().UTC(),
	})
}

// enqueue puts one report in the outbox and returns its sequence number.
// A report that cannot be queued (the disk failed) is logged; the agent
// goes on keeping its node right. (Pod status does not come here: it
// takes the outbox's status slot, which no bound drops.)
func (a *Agent) enqueue(topic, typ string, class outbox.Class, payload any) (uint64, bool) {
	seq, err := a.enqueueErr(topic, typ, class, payload)
	switch {
	case errors.Is(err, outbox.ErrDropped):
		// Counted as dropped; the heartbeat says so, and DiskPressure when
		// the disk is why.
		a.log.Debug("report dropped", "type", typ, "err", err)
	case err != nil:
		a.log.Error("queue report", "type", typ, "err", err)
	}
	return seq, err == nil
}

// enqueueErr is enqueue, returning why a report was not queued.
func (a *Agent) enqueueErr(topic, typ string, class outbox.Class, payload any) (uint64, error) {
	seq, err := a.state.NextSeq()
	if err != nil {
		return 0, err
	}
	b, err := wire.Encode(typ, a.cfg.NodeName, seq, a.now(), payload)
	if err != nil {
		return 0, err
	}
	if err := a.outbox.Append(outbox.Entry{Seq: seq, Class: class, Topic: topic, Payload: b}); err != nil {
		return 0, fmt.Errorf("seq %d: %w", seq, err)
	}
	return seq, nil
}

// drainBatch is how many queued reports are published before waiting for
// the broker's acknowledgements. The drain goes no faster than those come:
// a hub that holds the node back (its ingest rate limit) paces it.
const drainBatch = 64

// drain publishes the pod status waiting in the status slot, then queued
// reports in order, whenever the link is up, and removes each only once
// the broker acknowledged it. The slot goes first before every batch, so
// a status change never waits behind more than one batch of a backlog.
func (a *Agent) drain(ctx context.Context) {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.outbox.Ready():
		case <-a.connected:
		case <-retry.C:
		}
		for ctx.Err() == nil && a.link.Connected() {
			if !a.drainStatus(ctx) {
				break
			}
			entries, err := a.outbox.Peek(drainBatch)
			if err != nil {
				a.log.Error("read outbox", "err", err)
				break
			}
			if len(entries) == 0 {
				break
			}
			msgs := make([]link.Message, len(entries))
			for i, e := range entries {
				msgs[i] = link.Message{Topic: wire.NodeTopic(a.cfg.NodeName, e.Topic), QoS: 1, Payload: e.Payload}
			}
			n, perr := a.link.PublishBatch(ctx, msgs)
			if n > 0 {
				a.acked()
			}
			seqs := make([]uint64, n)
			for i := range seqs {
				seqs[i] = entries[i].Seq
				if entries[i].Class == outbox.Status {
					a.noteStatusSeq(entries[i].Seq)
				}
			}
			if err := a.outbox.Ack(seqs...); err != nil {
				a.log.Error("ack outbox entries", "err", err)
				break
			}
			if perr != nil {
				if ctx.Err() == nil && !errors.Is(perr, link.ErrNotConnected) {
					a.log.Warn("deliver queued reports; will retry", "delivered", n, "err", perr)
				}
				break
			}
		}
	}
}

// noteStatusSeq records that the broker acknowledged the pod status
// report seq, if it is the newest.
func (a *Agent) noteStatusSeq(seq uint64) {
	for {
		cur := a.statusSeq.Load()
		if seq <= cur || a.statusSeq.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// drainStatus publishes the report waiting in the status slot, if any,
// and empties the slot once the broker acknowledged it. It reports whether
// the drain may go on.
func (a *Agent) drainStatus(ctx context.Context) bool {
	e, ok := a.outbox.Status()
	if !ok {
		return true
	}
	if err := a.link.Publish(ctx, wire.NodeTopic(a.cfg.NodeName, e.Topic), 1, false, e.Payload); err != nil {
		if ctx.Err() == nil && !errors.Is(err, link.ErrNotConnected) {
			a.log.Warn("deliver pod status; will retry", "seq", e.Seq, "err", err)
		}
		return false
	}
	a.acked()
	a.noteStatusSeq(e.Seq)
	if err := a.outbox.AckStatus(e.Seq); err != nil {
		a.log.Error("ack pod status", "err", err)
		return false
	}
	return true
}

func (a *Agent) outboxState() wire.OutboxState {
	n, b := a.outbox.Len()
	return wire.OutboxState{Queued: n, Bytes: b, Dropped: a.outbox.Dropped(), DroppedByClass: a.outbox.DroppedByClass(), AppendedByClass: a.outbox.AppendedByClass()}
}

// heartbeat is what the node says of itself every heartbeat interval:
// the revision it runs, its outbox, and the newest pod status report the
// broker acknowledged.
func (a *Agent) heartbeat() wire.Heartbeat {
	snap, err := a.state.Snapshot()
	if err != nil {
		a.log.Error("read desired snapshot for the heartbeat", "err", err)
	}
	return wire.Heartbeat{ObservedRevision: snap.Revision, Outbox: a.outboxState(), StatusSeq: a.statusSeq.Load()}
}

// beatDue reports whether a heartbeat of its own is due at now: no
// metrics sample carrying one was queued within the interval (a quarter
// more, for the tickers' jitter), or the outbox holds a backlog the
// sample waits behind.
func (a *Agent) beatDue(now time.Time) bool {
	last := a.beatQueued.Load()
	if last == 0 || now.Sub(time.Unix(0, last)) >= a.cfg.HeartbeatInterval*5/4 {
		return true
	}
	queued, _ := a.outbox.Len()
	return queued > 1
}

// heartbeats tells the hub the node is alive, which revision it runs and
// how its outbox is doing. Heartbeats are not queued: a stale one is
// worthless. With metrics on, each sample carries the heartbeat, so a
// heartbeat of its own goes out only when beatDue says so.
func (a *Agent) heartbeats(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !a.link.Connected() {
			continue
		}
		if !a.beatDue(a.now()) {
			continue
		}
		if err := a.publishNow(ctx, wire.TopicStatus, wire.TypeHeartbeat, a.heartbeat(), false); err != nil &&
			!errors.Is(err, link.ErrNotConnected) && ctx.Err() == nil {
			a.log.Warn("publish heartbeat", "err", err)
		}
	}
}

// publishNow sends a message that is only worth sending now (online flag,
// hello, heartbeat), bypassing the outbox.
func (a *Agent) publishNow(ctx context.Context, kind, typ string, payload any, retained bool) error {
	_, err := a.publishNowSeq(ctx, kind, typ, payload, retained)
	return err
}

// publishNowSeq is publishNow, returning the message's sequence number.
func (a *Agent) publishNowSeq(ctx context.Context, kind, typ string, payload any, retained bool) (uint64, error) {
	seq, err := a.state.NextSeq()
	if err != nil {
		return 0, err
	}
	b, err := wire.Encode(typ, a.cfg.NodeName, seq, a.now(), payload)
	if err != nil {
		return 0, err
	}
	if err := a.link.Publish(ctx, wire.NodeTopic(a.cfg.NodeName, kind), 1, retained, b); err != nil {
		return seq, err
	}
	a.acked()
	return seq, nil
}

func (a *Agent) mustEncodeOnline(online bool) []byte {
	// The will's sequence number is 0: it is the broker speaking for the
	// agent, and the hub orders online flags by their arrival.
	b, err := wire.Encode(wire.TypeOnline, a.cfg.NodeName, 0, a.now(), wire.Online{Online: online})
	if err != nil {
		panic(fmt.Sprintf("encode online flag: %v", err)) // a fixed struct always encodes
	}
	return b
}

// EnsureDirs creates the agent's state directory.
func EnsureDirs(stateDir string) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("create state dir %s: %w", stateDir, err)
	}
	return nil
}
