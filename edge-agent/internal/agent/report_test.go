package agent

import (
	"log/slog"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/state"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// slowSeq widens the window between reading the last report and taking a
// sequence number, as a board's disk does, so that interleavings that
// would reorder reports happen in the test.
type slowSeq struct{ *state.Memory }

func (s slowSeq) NextSeq() (uint64, error) {
	time.Sleep(20 * time.Microsecond)
	return s.Memory.NextSeq()
}

// With metrics on, a sample carries the heartbeat, and a heartbeat of its
// own is due only when no sample was queued within the interval or the
// outbox holds a backlog the sample waits behind.
func TestHeartbeatRidesOnMetrics(t *testing.T) {
	a := &Agent{cfg: Config{NodeName: "n1", HeartbeatInterval: 10 * time.Second}, log: slog.New(slog.DiscardHandler),
		state: state.NewMemory(), outbox: outbox.NewMemory(outbox.DefaultLimits)}
	now := time.Now()
	if !a.beatDue(now) {
		t.Fatal("no sample ever queued: a heartbeat is due")
	}
	a.beatQueued.Store(now.Add(-9 * time.Second).UnixNano())
	if a.beatDue(now) {
		t.Fatal("a sample queued 9 s ago carries the heartbeat")
	}
	if !a.beatDue(now.Add(4 * time.Second)) {
		t.Fatal("no sample for 13 s: a heartbeat is due")
	}
	for i := range 2 {
		if err := a.outbox.Append(outbox.Entry{Seq: uint64(i + 1), Class: outbox.Event, Topic: wire.TopicEvents, Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if !a.beatDue(now) {
		t.Fatal("a sample behind a backlog does not carry the heartbeat in time")
	}
}
