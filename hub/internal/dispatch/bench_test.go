package dispatch

import (
	"context"
	"fmt"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, byte, bool, []byte) error { return nil }

// BenchmarkPassAllChanged is one dispatch pass after every node's pod
// changed (a DaemonSet update to the whole fleet): the cache updated,
// every snapshot built, hashed, numbered, stored and published (to a
// publisher that takes everything at once). Run with -benchtime 20x.
func BenchmarkPassAllChanged(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			d := New(Options{Store: store.NewMemory(), Publisher: nopPublisher{}})
			pods := make([]*api.Pod, nodes)
			for i := range pods {
				pods[i] = &api.Pod{
					TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
					ObjectMeta: api.ObjectMeta{Name: fmt.Sprintf("ds-%05d", i), Namespace: "default", UID: fmt.Sprintf("uid-%d", i), Labels: map[string]string{"app": "ds"}},
					Spec:       api.PodSpec{NodeName: fmt.Sprintf("n%05d", i), Containers: []api.Container{{Name: "c", Image: "reg/x:v0"}}},
				}
			}
			ctx := context.Background()
			b.ResetTimer()
			for n := range b.N {
				for _, p := range pods {
					next := *p
					next.Spec.Containers = []api.Container{{Name: "c", Image: fmt.Sprintf("reg/x:v%d", n+1)}}
					d.mu.Lock()
					d.setPod(store.KeyOf(&next), &next)
					d.mu.Unlock()
				}
				d.flush(ctx)
			}
		})
	}
}
