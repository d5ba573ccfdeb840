package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/reconcile"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSnapshotOnlyMovesForward(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	for _, tc := range []struct {
		rev    uint64
		accept bool
	}{{5, true}, {5, false}, {3, false}, {6, true}} {
		ok, err := s.AcceptSnapshot(wire.Snapshot{Node: "n1", Revision: tc.rev, Pods: []wire.SnapshotPod{{UID: "u", Name: "p"}}})
		if err != nil {
			t.Fatal(err)
		}
		if ok != tc.accept {
			t.Fatalf("revision %d accepted = %v, want %v", tc.rev, ok, tc.accept)
		}
	}
	s.Close()

	s = open(t, dir)
	defer s.Close()
	snap, _ := s.Snapshot()
	if snap.Revision != 6 || len(snap.Pods) != 1 || snap.Pods[0].Name != "p" {
		t.Fatalf("after reopen snapshot = %+v", snap)
	}
	if ok, _ := s.AcceptSnapshot(wire.Snapshot{Revision: 6}); ok {
		t.Fatalf("reopened store accepted an old revision")
	}
}

func TestSequenceIncreasesAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	var last uint64
	for i := 0; i < 10; i++ {
		n, err := s.NextSeq()
		if err != nil {
			t.Fatal(err)
		}
		if n <= last {
			t.Fatalf("seq %d after %d", n, last)
		}
		last = n
	}
	s.Close() // a crash loses the unused part of the reserved block, never goes back
	s = open(t, dir)
	defer s.Close()
	n, err := s.NextSeq()
	if err != nil {
		t.Fatal(err)
	}
	if n <= last {
		t.Fatalf("seq after reopen %d, not above %d", n, last)
	}
}

func TestRestartHistory(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if rec, err := s.Restarts("c1"); err != nil || rec.Restarts != 0 {
		t.Fatalf("missing record = %+v, %v", rec, err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := reconcile.RestartRecord{Restarts: 4, Backoffs: 2, NextRestart: at, Last: &reconcile.Termination{ExitCode: 2, FinishedAt: at}}
	if err := s.SaveRestarts("c1", want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	got, err := s.Restarts("c1")
	if err != nil || got.Restarts != 4 || got.Backoffs != 2 || !got.NextRestart.Equal(at) || got.Last.ExitCode != 2 {
		t.Fatalf("after reopen = %+v, %v", got, err)
	}
	if err := s.DeleteRestarts("c1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Restarts("c1"); got.Restarts != 0 {
		t.Fatalf("deleted record still there")
	}
}

// A snapshot as large as the wire allows fits one of the store's
// transactions: values of ValueThreshold and more go to the value log, and
// a transaction counts only a pointer for them.
func TestLargestSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	snap := wire.Snapshot{Node: "n1", Revision: 1}
	label := strings.Repeat("x", 4000)
	for size := 0; size < wire.MaxPayload-8<<10; size += 4100 {
		i := len(snap.Pods)
		snap.Pods = append(snap.Pods, wire.SnapshotPod{UID: fmt.Sprintf("u%d", i), Name: fmt.Sprintf("p%d", i), Labels: map[string]string{"l": label}})
	}
	if b, _ := json.Marshal(snap); len(b) < wire.MaxPayload-64<<10 || len(b) > wire.MaxPayload {
		t.Fatalf("snapshot of %d bytes, want just under %d", len(b), wire.MaxPayload)
	}
	if ok, err := s.AcceptSnapshot(snap); err != nil || !ok {
		t.Fatalf("accept: %v %v", ok, err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	got, _ := s.Snapshot()
	if got.Revision != 1 || len(got.Pods) != len(snap.Pods) || got.Pods[len(got.Pods)-1].Labels["l"] != label {
		t.Fatalf("after reopen: revision %d, %d pods", got.Revision, len(got.Pods))
	}
}

// TestOpensAfterAKillLeftAnEmptyLogFile: an agent killed after Badger
// created its next value-log or write-ahead-log file, and before it wrote
// the file's header, left it empty; Badger then refused the directory and
// the agent moved its whole state aside (TestAgentKill9LoopWhileWriting
// saw it). The store opens with what it held.
func TestOpensAfterAKillLeftAnEmptyLogFile(t *testing.T) {
	for _, name := range []string{"000099.vlog", "00099.mem"} {
		dir := t.TempDir()
		s := open(t, dir)
		if _, err := s.AcceptSnapshot(wire.Snapshot{Node: "n1", Revision: 7}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		s = open(t, dir)
		snap, _ := s.Snapshot()
		s.Close()
		if snap.Revision != 7 {
			t.Fatalf("%s: snapshot revision %d after reopening, want 7", name, snap.Revision)
		}
	}
}
