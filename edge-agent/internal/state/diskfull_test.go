package state

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/diskguard/tmpfstest"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestStateDiskFull fills an 8 MiB tmpfs with the agent's outbox, as a
// board with its link cut does (in a child process: a full disk under
// Badger's memory maps was a SIGBUS at the write, and again at every
// start). The outbox must stop growing with every refused report counted
// as dropped, sequence numbers and restart history must go on, the store
// must open again on the full disk (read-only when nothing at all is
// left) with every acknowledged entry, and take writes once space returns.
func TestStateDiskFull(t *testing.T) {
	if mnt, ok := tmpfstest.Child(); ok {
		stateDiskFullChild(t, mnt)
		return
	}
	mnt := tmpfstest.Mount(t, 8<<20)
	t.Logf("child:\n%s", tmpfstest.RunChild(t, "TestStateDiskFull", mnt))
}

func stateDiskFullChild(t *testing.T, mnt string) {
	dir := filepath.Join(mnt, "state")
	s, ob := openFull(t, dir)
	if _, err := s.AcceptSnapshot(wire.Snapshot{Node: "n", Revision: 7}); err != nil {
		t.Fatal(err)
	}
	// Status reports under the value threshold, metric batches over it.
	var queued, refused int
	for i := 0; refused < 200; i++ {
		seq, err := s.NextSeq()
		if err != nil {
			t.Fatalf("sequence number %d: %v", i, err)
		}
		class, size := outbox.Status, 1<<10
		if i%3 == 0 {
			class, size = outbox.Telemetry, 6<<10
		}
		err = ob.Append(outbox.Entry{Seq: seq, Class: class, Topic: "status", Payload: random(size)})
		switch {
		case err == nil:
			queued++
		case errors.Is(err, outbox.ErrDropped):
			refused++ // by the disk, or by the bound the disk set
		default:
			t.Fatalf("append %d: %v", i, err)
		}
	}
	n, bytes := ob.Len()
	t.Logf("queued %d (%d now, %d bytes), refused %d, dropped %v", queued, n, bytes, refused, ob.DroppedByClass())
	if dropped := ob.Dropped(); dropped < uint64(refused) {
		t.Fatalf("%d appends refused but %d counted as dropped", refused, dropped)
	}
	if !s.Full() {
		t.Fatal("the store refuses appends but does not say it is full")
	}
	// Sequence numbers still increase, and restart history is kept.
	last, _ := s.NextSeq()
	for range 3 * seqBlock {
		seq, err := s.NextSeq()
		if err != nil || seq <= last {
			t.Fatalf("sequence number on a full disk: %d after %d, %v", seq, last, err)
		}
		last = seq
	}
	rec := reconcile.RestartRecord{Restarts: 4, Backoffs: 2, NextRestart: time.Now().Add(time.Minute).UTC()}
	if err := s.SaveRestarts("c1", rec); err != nil {
		t.Fatalf("save restart history on a full disk: %v", err)
	}
	if got, err := s.Restarts("c1"); err != nil || got.Restarts != 4 {
		t.Fatalf("restart history on a full disk: %+v, %v", got, err)
	}
	entries := peekAll(t, ob)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The agent restarts on the full disk: everything queued is there.
	s, ob = openFull(t, dir)
	checkQueue(t, s, ob, entries)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Something else takes every byte left: read-only, still whole.
	filler := filepath.Join(mnt, "filler")
	if _, err := tmpfstest.Fill(filler); err != nil {
		t.Fatal(err)
	}
	s, ob = openFull(t, dir)
	if !s.readOnly {
		t.Fatal("the store opened for writing on a disk with no byte free")
	}
	checkQueue(t, s, ob, entries)
	if seq, err := s.NextSeq(); err != nil || seq <= last {
		t.Fatalf("sequence number on a read-only store: %d after %d, %v", seq, last, err)
	}
	seq, _ := s.NextSeq()
	if err := ob.Append(outbox.Entry{Seq: seq, Class: outbox.Event, Topic: "events", Payload: []byte("x")}); !errors.Is(err, diskguard.ErrFull) {
		t.Fatalf("append to a read-only store: %v, want diskguard.ErrFull", err)
	}

	// Space returns: the next check reopens it, and appends are taken.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.checkSpace()
	if s.readOnly {
		t.Fatal("still read-only after space returned")
	}
	// Delivering everything is what makes room for new reports.
	for _, e := range entries {
		if err := ob.Ack(e.Seq); err != nil {
			t.Fatalf("ack %d: %v", e.Seq, err)
		}
	}
	seq, _ = s.NextSeq()
	if err := ob.Append(outbox.Entry{Seq: seq, Class: outbox.Event, Topic: "events", Payload: []byte("x")}); err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func openFull(t *testing.T, dir string) (*Store, *outbox.Outbox) {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("open on the full disk: %v", err)
	}
	ob, err := outbox.Open(s, outbox.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	return s, ob
}

func peekAll(t *testing.T, ob *outbox.Outbox) []outbox.Entry {
	t.Helper()
	n, _ := ob.Len()
	entries, err := ob.Peek(n + 1)
	if err != nil || len(entries) != n {
		t.Fatalf("peek: %d of %d, %v", len(entries), n, err)
	}
	return entries
}

func checkQueue(t *testing.T, s *Store, ob *outbox.Outbox, want []outbox.Entry) {
	t.Helper()
	got := peekAll(t, ob)
	if len(got) != len(want) {
		t.Fatalf("%d entries queued after reopening, %d were acknowledged", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || string(got[i].Payload) != string(want[i].Payload) {
			t.Fatalf("entry %d differs after reopening", i)
		}
	}
	if snap, _ := s.Snapshot(); snap.Revision != 7 {
		t.Fatalf("snapshot revision %d after reopening, want 7", snap.Revision)
	}
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
