package ingest

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// BenchmarkFlush is one flush of a message from each of 1,000 registered
// nodes: heartbeats (the lease renewed, no Node written), hellos (a
// reconnect: the same facts again, no Node written), and pod status
// reports (each node's pod written). Run with -benchtime 50x.
func BenchmarkFlush(b *testing.B) {
	const nodes = 1000
	for _, kind := range []string{"heartbeat", "hello", "podstatus"} {
		b.Run(kind, func(b *testing.B) {
			st := store.NewMemory()
			now := t0
			in := New(Options{Store: st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
			hello := wire.Hello{Labels: map[string]string{"site": "lab"}, Info: api.NodeSystemInfo{Architecture: "arm64"},
				Capacity: api.ResourceList{"cpu": "4", "memory": "1Gi"}}
			name := func(i int) string { return fmt.Sprintf("n%04d", i) }
			for i := range nodes {
				in.Handle(wire.NodeTopic(name(i), wire.TopicStatus), encode(b, name(i), wire.TypeHello, 1, hello))
				pod := &api.Pod{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
					ObjectMeta: api.ObjectMeta{Name: "p-" + name(i), Namespace: "default", UID: "u-" + name(i)},
					Spec:       api.PodSpec{NodeName: name(i), Containers: []api.Container{{Name: "c", Image: "i"}}}}
				if err := st.Update(func(tx store.Tx) error { return tx.Put(pod) }); err != nil {
					b.Fatal(err)
				}
			}
			in.Flush()
			msgs := make([][][]byte, b.N)
			for n := range b.N {
				seq := uint64(n + 2)
				for i := range nodes {
					var payload []byte
					switch kind {
					case "heartbeat":
						payload = encode(b, name(i), wire.TypeHeartbeat, seq, wire.Heartbeat{ObservedRevision: 1})
					case "hello":
						payload = encode(b, name(i), wire.TypeHello, seq, hello)
					case "podstatus":
						payload = encode(b, name(i), wire.TypePodStatus, seq, wire.PodStatusReport{ObservedRevision: 1,
							Pods: []wire.PodReport{{UID: "u-" + name(i), Name: "p-" + name(i), Namespace: "default",
								Status: api.PodStatus{Phase: api.PodRunning, Message: fmt.Sprint(n)}}}})
					}
					msgs[n] = append(msgs[n], payload)
				}
			}
			b.ResetTimer()
			for n := range b.N {
				now = now.Add(time.Second)
				for i, m := range msgs[n] {
					in.Handle(wire.NodeTopic(name(i), wire.TopicStatus), m)
				}
				in.Flush()
			}
		})
	}
}

func encode(b *testing.B, node, typ string, seq uint64, payload any) []byte {
	m, err := wire.Encode(typ, node, seq, t0, payload)
	if err != nil {
		b.Fatal(err)
	}
	return m
}
