package state

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func TestDamagedStoreIsMovedAsideAndRebuilt(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	s, recovered, err := OpenOrRecover(dir, nil)
	if err != nil || recovered {
		t.Fatalf("first open: %v %v", recovered, err)
	}
	if _, err := s.AcceptSnapshot(wire.Snapshot{Revision: 3}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A failing card: the manifest is garbage.
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("\x00\x01 not a manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, recovered, err = OpenOrRecover(dir, nil)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	defer s.Close()
	if !recovered {
		t.Fatal("damage not reported")
	}
	if snap, _ := s.Snapshot(); snap.Revision != 0 {
		t.Fatalf("fresh store has revision %d", snap.Revision)
	}
	entries, _ := os.ReadDir(root)
	found := false
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "state.broken-") {
			found = true
		}
	}
	if !found {
		t.Fatalf("damaged store not kept aside: %v", entries)
	}
}

func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	release, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	release()
	release2, err := Lock(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	release2()
}
