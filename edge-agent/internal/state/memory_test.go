package state

import (
	"testing"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func TestMemoryBehavesLikeStore(t *testing.T) {
	m := NewMemory()
	for _, tc := range []struct {
		rev    uint64
		accept bool
	}{{2, true}, {2, false}, {1, false}, {3, true}} {
		if ok, _ := m.AcceptSnapshot(wire.Snapshot{Revision: tc.rev}); ok != tc.accept {
			t.Fatalf("revision %d accepted = %v", tc.rev, ok)
		}
	}
	a, _ := m.NextSeq()
	b, _ := m.NextSeq()
	if b <= a {
		t.Fatalf("seq %d after %d", b, a)
	}
	_ = m.SaveRestarts("c", reconcile.RestartRecord{Restarts: 2})
	if r, _ := m.Restarts("c"); r.Restarts != 2 {
		t.Fatal("restarts lost")
	}
	_ = m.SaveGood(wire.SnapshotPod{UID: "u", SpecHash: "h"})
	_ = m.SaveRejection("u", reconcile.Rejection{SpecHash: "x"})
	_ = m.Forget("u")
	if _, ok, _ := m.LastGood("u"); ok {
		t.Fatal("forgotten good spec still there")
	}
	if _, ok, _ := m.Rejection("u"); ok {
		t.Fatal("forgotten rejection still there")
	}
}
