package agent

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// drainRig is an agent with a filled outbox, a real MQTT broker and a
// counter of what reaches the broker's subscribers.
type drainRig struct {
	agent    *Agent
	received atomic.Int64
	start    func()
	stop     func()
}

func newDrainRig(tb testing.TB, entries int) *drainRig {
	tb.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		tb.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(ln); err != nil {
		tb.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		tb.Fatal(err)
	}
	rig := &drainRig{}
	if err := srv.Subscribe(wire.AllNodesTopic("+"), 1, func(*mqtt.Client, packets.Subscription, packets.Packet) {
		rig.received.Add(1)
	}); err != nil {
		tb.Fatal(err)
	}

	db, err := badger.Open(badger.DefaultOptions(tb.TempDir()).WithLogger(nil).WithSyncWrites(true).
		WithMemTableSize(8 << 20).WithValueThreshold(64 << 10))
	if err != nil {
		tb.Fatal(err)
	}
	ob, err := outbox.Open(outbox.Unguarded(db), outbox.DefaultLimits)
	if err != nil {
		tb.Fatal(err)
	}
	// An hour of a typical board's reports: pod status (~1.5 KiB) and
	// events (~300 B), as real envelopes.
	status := wire.PodStatusReport{ObservedRevision: 7, Pods: make([]wire.PodReport, 3)}
	event := wire.Event{Type: "Normal", Reason: "Restarted", Message: "Restarted container main (restart 3)", Time: time.Now()}
	for i := 1; i <= entries; i++ {
		var payload any = event
		typ, topic, class := wire.TypeEvent, wire.TopicEvents, outbox.Event
		if i%3 == 0 {
			payload, typ, topic, class = status, wire.TypePodStatus, wire.TopicStatus, outbox.Status
		}
		b, err := wire.Encode(typ, "bench-node", uint64(i), time.Now(), payload)
		if err != nil {
			tb.Fatal(err)
		}
		if err := ob.Append(outbox.Entry{Seq: uint64(i), Class: class, Topic: topic, Payload: b}); err != nil {
			tb.Fatal(err)
		}
	}
	a := &Agent{cfg: Config{NodeName: "bench-node"}, log: quiet, outbox: ob, connected: make(chan struct{}, 1)}
	a.link = link.New(link.Options{Broker: "tcp://" + ln.Address(), ClientID: "drain", Logger: quiet,
		OnConnect: func(context.Context) {
			select {
			case a.connected <- struct{}{}:
			default:
			}
		}})
	rig.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = a.link.Run(ctx); done <- struct{}{} }()
	deadline := time.Now().Add(10 * time.Second)
	for !a.link.Connected() {
		if time.Now().After(deadline) {
			tb.Fatal("no connection to the broker")
		}
		time.Sleep(time.Millisecond)
	}
	started := false
	rig.start = func() {
		started = true
		go func() { a.drain(ctx); done <- struct{}{} }()
	}
	rig.stop = func() {
		cancel()
		<-done
		if started {
			<-done
		}
		db.Close()
		srv.Close()
	}
	return rig
}

func (r *drainRig) waitDrained(tb testing.TB, entries int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, _ := r.agent.outbox.Len()
		if n == 0 && r.received.Load() >= int64(entries) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not drained: %d queued, %d received of %d", n, r.received.Load(), entries)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDrainDeliversEverythingInOrderOnce(t *testing.T) {
	const entries = 500
	rig := newDrainRig(t, entries)
	defer rig.stop()
	rig.start()
	rig.waitDrained(t, entries)
	if got := rig.received.Load(); got != entries {
		t.Fatalf("broker received %d messages, want %d", got, entries)
	}
	// Every third entry is a pod status report; the heartbeat names the
	// newest one the broker acknowledged.
	if got, want := rig.agent.statusSeq.Load(), uint64(entries-entries%3); got != want {
		t.Fatalf("statusSeq %d after the drain, want %d", got, want)
	}
}

// BenchmarkDrain measures how fast a board delivers its queued reports
// after an outage, through a real MQTT broker with QoS 1 acknowledgements.
func BenchmarkDrain(b *testing.B) {
	const entries = 3600 // an hour at one report a second, more than a board makes
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		rig := newDrainRig(b, entries)
		b.StartTimer()
		start := time.Now()
		rig.start()
		rig.waitDrained(b, entries)
		elapsed := time.Since(start)
		b.StopTimer()
		rig.stop()
		b.ReportMetric(float64(entries)/elapsed.Seconds(), "entries/s")
	}
}
