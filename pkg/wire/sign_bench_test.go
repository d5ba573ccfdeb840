package wire

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// benchSnapshot is a snapshot of pods pods, each with one container.
func benchSnapshot(pods int) *Snapshot {
	s := &Snapshot{Node: "edge-1", Revision: 7}
	for i := 0; i < pods; i++ {
		s.Pods = append(s.Pods, SnapshotPod{
			UID: fmt.Sprintf("uid-%d", i), Name: fmt.Sprintf("pod-%d", i), Namespace: "default", SpecHash: "0123456789abcdef",
			Labels: map[string]string{"app": "bench"},
			Spec:   api.PodSpec{Containers: []api.Container{{Name: "main", Image: "registry.local/app:1.0", Command: []string{"sh", "-c", "sleep 3600"}}}},
		})
	}
	return s
}

// BenchmarkSignSnapshot measures what the hub adds per published
// snapshot (encode and sign), BenchmarkVerifySnapshot what the agent
// spends per received one (decode and verify), for 1 and 30 pods.
func BenchmarkSignSnapshot(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := NewSigner(key)
	for _, pods := range []int{1, 30} {
		snap := benchSnapshot(pods)
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := signer.EncodeSnapshot(snap, 7, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("unsigned/pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := Encode(TypeSnapshot, snap.Node, 7, time.Now(), snap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifySnapshot(b *testing.B) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := NewSigner(key)
	v, _ := NewVerifier("edge-1", pub)
	topic := NodeTopic("edge-1", TopicDesired)
	for _, pods := range []int{1, 30} {
		msg, err := signer.EncodeSnapshot(benchSnapshot(pods), 7, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for i := 0; i < b.N; i++ {
				if _, err := v.VerifyMessage(topic, msg, 6); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("unsigned-decode/pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				env, err := Decode(topic, msg)
				if err != nil {
					b.Fatal(err)
				}
				var s Snapshot
				if err := DecodePayload(env, topic, &s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
