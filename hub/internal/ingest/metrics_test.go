package ingest

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

type sink struct {
	mu  sync.Mutex
	got map[string][]wire.MetricSample
}

func (s *sink) Add(node string, b wire.MetricsBatch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got[node] = append(s.got[node], b.Samples...)
}

// TestMetricsGoToTheSinkAndCountAsLife: a metrics batch is handed to the
// metrics sink whole, and like any agent message it shows the node is
// alive; flushes are reported to OnFlush.
func TestMetricsGoToTheSinkAndCountAsLife(t *testing.T) {
	st := store.NewMemory()
	s := &sink{got: map[string][]wire.MetricSample{}}
	var flushes int
	in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 },
		Metrics: s, OnFlush: func(_ time.Duration, nodes int) { flushes += nodes }})
	in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypeHello, 1, wire.Hello{}))
	batch := wire.MetricsBatch{Samples: []wire.MetricSample{{Time: t0, WindowSeconds: 10}, {Time: t0.Add(10 * time.Second), WindowSeconds: 10}}}
	in.Handle(wire.NodeTopic("n1", wire.TopicMetrics), msg(t, "n1", wire.TypeMetrics, 2, batch))
	// A metrics payload on the status topic is refused before the sink.
	in.Handle(wire.NodeTopic("n1", wire.TopicStatus), msg(t, "n1", wire.TypeMetrics, 3, batch))
	in.Flush()
	if got := s.got["n1"]; len(got) != 2 || !got[1].Time.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("sink got %+v", got)
	}
	if _, dropped := in.Stats(); dropped != 1 {
		t.Errorf("dropped %d, want the misplaced one", dropped)
	}
	if flushes != 1 {
		t.Errorf("OnFlush saw %d nodes", flushes)
	}
	if n := getNode(t, st, "n1"); !n.Status.LastSeen.Equal(t0) || !n.IsReady() {
		t.Errorf("node %+v", n.Status)
	}
}
