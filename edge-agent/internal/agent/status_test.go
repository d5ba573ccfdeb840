package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/state"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestStatusIsDeliveredFirstWhateverTheQueueHolds: the agent's outbox is
// full of events (a long outage's crash loops) when its pods' status
// changes. The status is neither dropped for the events nor queued behind
// them: the drain delivers it first, then the events.
func TestStatusIsDeliveredFirstWhateverTheQueueHolds(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: quiet})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var mu sync.Mutex
	var got []string // the message types, in the order the broker took them
	if err := srv.Subscribe(wire.AllNodesTopic("+"), 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		env, err := wire.Decode(pk.TopicName, pk.Payload)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			got = append(got, "bad: "+err.Error())
			return
		}
		got = append(got, env.Type)
	}); err != nil {
		t.Fatal(err)
	}

	const bound = 10
	a := &Agent{cfg: Config{NodeName: "n1"}, log: quiet, state: state.NewMemory(),
		outbox: outbox.NewMemory(outbox.Limits{MaxEntries: bound}), connected: make(chan struct{}, 1)}
	for range bound + 5 {
		a.nodeEvent(api.EventWarning, "BackOff", "Back-off restarting failed container")
	}
	a.queueReport(wire.PodStatusReport{ObservedRevision: 3, Pods: []wire.PodReport{{UID: "u1", Name: "p", Namespace: "default",
		Status: api.PodStatus{Phase: api.PodRunning}}}})

	a.link = link.New(link.Options{Broker: "tcp://" + ln.Address(), ClientID: "status", Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { _ = a.link.Run(ctx) })
	for deadline := time.Now().Add(10 * time.Second); !a.link.Connected(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no connection to the broker")
		}
	}
	wg.Go(func() { a.drain(ctx) })
	want := bound + 1
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the broker took %v; want the pod status and %d events", got, bound)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got[0] != wire.TypePodStatus || strings.Count(strings.Join(got, " "), wire.TypeEvent) != bound {
		t.Fatalf("the broker took %v; want the pod status first, then %d events", got, bound)
	}
}

// TestResentStatusNeverOvertakesANewerReport: a resend of the last pod
// status (after a reconnect, or when the hub asks) racing with the
// reconciler's new reports must never leave an older report to deliver
// under a number above a newer one's, or the hub would keep the older
// status for good.
func TestResentStatusNeverOvertakesANewerReport(t *testing.T) {
	a := &Agent{cfg: Config{NodeName: "n1"}, log: slog.New(slog.DiscardHandler),
		state: slowSeq{state.NewMemory()}, outbox: outbox.NewMemory(outbox.DefaultLimits)}
	const reports = 200
	var wg sync.WaitGroup
	var newest sync.Mutex // held while checking that the slot only moves forward
	lastSeq, lastGen := uint64(0), uint64(0)
	check := func() error {
		newest.Lock()
		defer newest.Unlock()
		e, ok := a.outbox.Status()
		if !ok {
			return nil
		}
		rep := decodeReport(t, e)
		if e.Seq < lastSeq {
			return errors.New("the slot went back to an older sequence number")
		}
		if e.Seq > lastSeq && rep.ObservedRevision < lastGen {
			return errors.New("a newer sequence number carries an older report")
		}
		lastSeq, lastGen = e.Seq, rep.ObservedRevision
		return nil
	}
	errs := make(chan error, 1)
	wg.Go(func() {
		for gen := uint64(1); gen <= reports; gen++ {
			a.queueReport(wire.PodStatusReport{ObservedRevision: gen})
		}
	})
	for range 2 {
		wg.Go(func() {
			for range reports {
				a.resendStatus()
				if err := check(); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	e, ok := a.outbox.Status()
	if !ok {
		t.Fatal("no report in the slot")
	}
	if gen := decodeReport(t, e).ObservedRevision; gen != reports {
		t.Fatalf("the slot holds generation %d, want %d", gen, reports)
	}
	if n, _ := a.outbox.Len(); n != 0 {
		t.Fatalf("%d pod status reports queued; they belong in the slot", n)
	}
}

func decodeReport(t *testing.T, e outbox.Entry) wire.PodStatusReport {
	t.Helper()
	var rep wire.PodStatusReport
	env, err := wire.Decode(wire.NodeTopic("n1", e.Topic), e.Payload)
	if err == nil {
		err = wire.DecodePayload(env, e.Topic, &rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestOutageCountsFromTheLastReportThatGotThrough: the keep-alive notices
// a dead link well after it died; the Offline event and the outage the
// agent reports on its return count from the last report the broker
// acknowledged.
func TestOutageCountsFromTheLastReportThatGotThrough(t *testing.T) {
	a := &Agent{cfg: Config{NodeName: "n1"}, log: slog.New(slog.DiscardHandler),
		state: state.NewMemory(), outbox: outbox.NewMemory(outbox.DefaultLimits)}
	last := time.Now().Add(-40 * time.Second)
	a.lastAck.Store(last.UnixNano())
	a.onDisconnect(errors.New("pingresp not received"))
	if !a.offlineSince.Equal(time.Unix(0, last.UnixNano())) {
		t.Fatalf("offline since %v, want the last acknowledgement at %v", a.offlineSince, last)
	}
	entries, err := a.outbox.Peek(10)
	if err != nil || len(entries) != 1 {
		t.Fatalf("queued %v, %v", entries, err)
	}
	env, err := wire.Decode(wire.NodeTopic("n1", entries[0].Topic), entries[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	var ev wire.Event
	if err := wire.DecodePayload(env, entries[0].Topic, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Reason != "Offline" || !strings.Contains(ev.Message, "pingresp not received") || !strings.Contains(ev.Message, "got through 40s before") {
		t.Fatalf("Offline event: %+v", ev)
	}
}

func TestNodeIPIsTheInternalIP(t *testing.T) {
	f := gatherFacts(context.Background(), Config{NodeName: "n1", NodeIP: "198.51.100.7"})
	if f.InternalIP != "198.51.100.7" || len(f.Addresses) == 0 || f.Addresses[0] != (api.NodeAddress{Type: "InternalIP", Address: "198.51.100.7"}) {
		t.Fatalf("facts with --node-ip: InternalIP %q, addresses %v", f.InternalIP, f.Addresses)
	}
}
