package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/agent"
	"github.com/flotilla-edge/flotilla/edge-agent/sim"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// These tests run agent.Run as main does, through its seams: a broker in
// the test process in place of the hub's, the simulated runtime in place
// of containerd (Config.ConnectRuntime), the local state in memory.

const node = "n1"

// holdHello is a broker hook that, once armed, holds the agent's next
// hello in the broker (its PUBACK never comes) until released, so that
// the agent is mid-publish when the test ends its context.
type holdHello struct {
	mqtt.HookBase
	armed   atomic.Bool
	held    chan struct{} // closed when a hello is held
	release chan struct{}
	once    sync.Once
}

func (h *holdHello) ID() string           { return "hold-hello" }
func (h *holdHello) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *holdHello) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !h.armed.Load() || pk.TopicName != wire.NodeTopic(node, wire.TopicStatus) {
		return pk, nil
	}
	if env, err := wire.Decode(pk.TopicName, pk.Payload); err != nil || env.Type != wire.TypeHello {
		return pk, nil
	}
	h.once.Do(func() { close(h.held) })
	<-h.release
	return pk, nil
}

// heard is what reached the broker from the agent.
type heard struct {
	mu       sync.Mutex
	statuses []wire.PodStatusReport
	events   []wire.Event
	changed  chan struct{} // ticks on every message
}

func (h *heard) note(topic string, payload []byte) {
	env, err := wire.Decode(topic, payload)
	if err != nil {
		return
	}
	h.mu.Lock()
	switch env.Type {
	case wire.TypePodStatus:
		var r wire.PodStatusReport
		if json.Unmarshal(env.Payload, &r) == nil {
			h.statuses = append(h.statuses, r)
		}
	case wire.TypeEvent:
		var e wire.Event
		if json.Unmarshal(env.Payload, &e) == nil {
			h.events = append(h.events, e)
		}
	}
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// waitUntil waits for cond over what the broker heard, for at most 20 s.
func (h *heard) waitUntil(t *testing.T, what string, cond func(statuses []wire.PodStatusReport, events []wire.Event) bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ok := cond(h.statuses, h.events)
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.changed:
		case <-deadline.C:
			t.Fatalf("the broker never heard %s", what)
		}
	}
}

// blockAfter is a log handler that, once its gate is set, holds every
// goroutine that logs until the gate opens (or 10 s pass): a goroutine
// still at work when the agent's context ends stays at work, and Run
// must wait for it.
type blockAfter struct {
	slog.Handler
	gate atomic.Pointer[chan struct{}]
}

func (b *blockAfter) hold() {
	g := b.gate.Load()
	if g == nil {
		return
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-*g:
	case <-t.C:
	}
}

func (b *blockAfter) Handle(ctx context.Context, r slog.Record) error {
	b.hold()
	return b.Handler.Handle(ctx, r)
}

func (b *blockAfter) WithAttrs(as []slog.Attr) slog.Handler {
	return &derived{b, b.Handler.WithAttrs(as)}
}

func (b *blockAfter) WithGroup(name string) slog.Handler {
	return &derived{b, b.Handler.WithGroup(name)}
}

// derived is a logger derived from a blockAfter: its own attributes, the
// root's gate.
type derived struct {
	root *blockAfter
	slog.Handler
}

func (d *derived) Handle(ctx context.Context, r slog.Record) error {
	d.root.hold()
	return d.Handler.Handle(ctx, r)
}

func (d *derived) WithAttrs(as []slog.Attr) slog.Handler {
	return &derived{d.root, d.Handler.WithAttrs(as)}
}

func (d *derived) WithGroup(name string) slog.Handler {
	return &derived{d.root, d.Handler.WithGroup(name)}
}

// rig is a broker, a simulated runtime and an agent.Run on them.
type rig struct {
	srv   *mqtt.Server
	hold  *holdHello
	heard *heard
	rt    *sim.Runtime
	logs  *blockAfter
	svc   *fakeServices

	cancel context.CancelFunc
	done   chan error
}

func newRig(t *testing.T, options ...func(*agent.Config)) *rig {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &rig{
		srv:   mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet}),
		hold:  &holdHello{held: make(chan struct{}), release: make(chan struct{})},
		heard: &heard{changed: make(chan struct{}, 1)},
		rt:    sim.NewRuntime(sim.RuntimeOptions{}),
		logs:  &blockAfter{Handler: slog.NewTextHandler(io.Discard, nil)},
		svc:   newFakeServices(),
		done:  make(chan error, 1),
	}
	if err := r.srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.AddHook(r.hold, nil); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := r.srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.hold.once.Do(func() { close(r.hold.held) })
		select {
		case <-r.hold.release:
		default:
			close(r.hold.release)
		}
		r.srv.Close()
	})
	if err := r.srv.Subscribe(wire.AllNodesTopic("+"), 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		r.heard.note(pk.TopicName, pk.Payload)
	}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	t.Cleanup(cancel)
	cfg := agent.Config{
		NodeName: node,
		Broker:   "tcp://" + ln.Address(),
		StateDir: t.TempDir(),
		InMemory: true,
		Version:  "test",
		Logger:   slog.New(r.logs),
		// Only a snapshot's wake-up can start a pass after the first.
		Resync:                    time.Hour,
		HeartbeatInterval:         time.Hour,
		ContainerLogCheckInterval: time.Hour,
		ConnectRuntime: func(context.Context) (agent.Runtime, error) {
			return r.rt, nil
		},
		// Services and DNS on, on fakes: no kernel is touched.
		ServiceProxy:    true,
		ClusterDNS:      true,
		ServiceBackends: r.svc.backends(),
	}
	for _, o := range options {
		o(&cfg)
	}
	go func() { r.done <- agent.Run(ctx, cfg) }()
	return r
}

// publish sends the agent a message on one of its topics, as the hub does.
func (r *rig) publish(t *testing.T, kind, typ string, payload any) {
	t.Helper()
	b, err := wire.Encode(typ, node, 1, time.Now(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Publish(wire.NodeTopic(node, kind), b, false, 1); err != nil {
		t.Fatal(err)
	}
}

// stop ends the agent's context and waits for Run to return.
func (r *rig) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of its context ending")
	}
}

func webPod() wire.SnapshotPod {
	spec := api.PodSpec{
		RestartPolicy: api.RestartAlways,
		Containers:    []api.Container{{Name: "main", Image: "reg/web:v1", ImagePullPolicy: api.PullIfNotPresent}},
	}
	return wire.SnapshotPod{UID: "uid-web", Name: "web", Namespace: "default", Spec: spec, SpecHash: api.HashPodSpec(&spec)}
}

// TestRunWiring: a snapshot from the hub wakes the reconciler (its resync
// is an hour away), which starts the pod on the runtime; the pod's status
// and events reach the hub through the outbox and the link.
func TestRunWiring(t *testing.T) {
	r := newRig(t)
	defer r.stop(t)
	// The reconciler's first pass reports the empty node.
	r.heard.waitUntil(t, "the first (empty) pod status", func(s []wire.PodStatusReport, _ []wire.Event) bool {
		return len(s) > 0
	})
	r.publish(t, wire.TopicDesired, wire.TypeSnapshot, wire.Snapshot{Node: node, Revision: 1, Pods: []wire.SnapshotPod{webPod()}})
	r.heard.waitUntil(t, "the pod Running at revision 1", func(s []wire.PodStatusReport, _ []wire.Event) bool {
		if len(s) == 0 {
			return false
		}
		last := s[len(s)-1]
		return last.ObservedRevision == 1 && len(last.Pods) == 1 && last.Pods[0].Status.Phase == api.PodRunning
	})
	if n := r.rt.Running(); n != 1 {
		t.Fatalf("%d containers running, want 1", n)
	}
	r.heard.waitUntil(t, "the Started event", func(_ []wire.PodStatusReport, events []wire.Event) bool {
		for _, e := range events {
			if e.Reason == "Started" && e.Object.Name == "web" {
				return true
			}
		}
		return false
	})
}

// TestRunJoinsItsGoroutines: when its context ends, Run returns only once
// every goroutine it started has stopped, including one that was
// answering the hub (a hello held in the broker) at that moment: none of
// the agent's goroutines is left behind.
func TestRunJoinsItsGoroutines(t *testing.T) {
	r := newRig(t)
	r.heard.waitUntil(t, "the first pod status", func(s []wire.PodStatusReport, _ []wire.Event) bool {
		return len(s) > 0
	})
	r.hold.armed.Store(true)
	r.publish(t, wire.TopicRequests, wire.TypeHelloRequest, wire.HelloRequest{})
	select {
	case <-r.hold.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not answer the HelloRequest")
	}
	// From now on whatever logs is held until Run has returned.
	gate := make(chan struct{})
	r.logs.gate.Store(&gate)
	r.stop(t)
	left := agentGoroutines()
	close(gate)
	if len(left) > 0 {
		t.Fatalf("%d of the agent's goroutines outlived Run:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// agentGoroutines returns the stacks of the goroutines, other than the
// caller, that run the agent's code or its MQTT client's, once those that
// were ending when Run returned have ended (at most 2 s).
func agentGoroutines() []string {
	deadline := time.Now().Add(2 * time.Second)
	for {
		var left []string
		buf := make([]byte, 1<<20)
		buf = buf[:goruntime.Stack(buf, true)]
		for i, g := range strings.Split(string(buf), "\n\n") {
			if i == 0 || strings.Contains(g, "mochi-mqtt") {
				continue // the caller; the test's broker
			}
			if strings.Contains(g, "flotilla/edge-agent/") || strings.Contains(g, "flotilla/pkg/") || strings.Contains(g, "paho.mqtt") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}
