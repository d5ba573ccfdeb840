package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/diskguard/tmpfstest"
)

// TestBadgerDiskFull fills a 20 MiB tmpfs with the store (in a child
// process: Badger writes through memory maps, and a full disk under one
// was a SIGBUS that killed the hub) and checks that the store refuses the
// write that would not fit with ErrDiskFull and the free bytes, serves
// every acknowledged object, opens again on the full disk (read-only when
// nothing is left at all) and takes writes again once space returns.
func TestBadgerDiskFull(t *testing.T) {
	if dir, ok := tmpfstest.Child(); ok {
		diskFullChild(t, dir)
		return
	}
	mnt := tmpfstest.Mount(t, 20<<20)
	out := tmpfstest.RunChild(t, "TestBadgerDiskFull", mnt)
	if !strings.Contains(out, "PASS") {
		t.Fatalf("the child did not pass:\n%s", out)
	}
	t.Logf("child:\n%s", out)
}

// diskFullTuning makes memtables small, so that filling 20 MiB flushes and
// compacts many times over.
func diskFullTuning(o badger.Options) badger.Options {
	return o.WithMemTableSize(1 << 20).WithBaseTableSize(512 << 10).WithValueLogFileSize(1 << 20).WithValueThreshold(64 << 10)
}

func diskFullChild(t *testing.T, mnt string) {
	dir := filepath.Join(mnt, "store")
	s, err := OpenBadger(dir, WithTuning(diskFullTuning), WithIndexedKinds("Indexed"))
	if err != nil {
		t.Fatal(err)
	}
	acked := map[Key]string{}
	full := fillStore(t, s, acked, "a")
	var fe *diskguard.FullError
	if !errors.As(full, &fe) || !strings.HasPrefix(full.Error(), "hub store: disk full, ") || fe.Free <= 0 {
		t.Fatalf("refusal = %v, want a *diskguard.FullError saying the free bytes", full)
	}
	t.Logf("refused after %d objects: %v", len(acked), full)
	checkAcked(t, s, acked)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Open again on the same disk: the room the guard kept lets it open
	// for writing, and it still refuses what does not fit.
	s, err = OpenBadger(dir, WithTuning(diskFullTuning), WithIndexedKinds("Indexed"))
	if err != nil {
		t.Fatalf("reopen on the full disk: %v", err)
	}
	checkAcked(t, s, acked)
	t.Logf("after reopening: %v", fillStore(t, s, acked, "b"))
	checkAcked(t, s, acked)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Something else takes every byte left: the store opens read-only,
	// serves reads and refuses writes.
	filler := filepath.Join(mnt, "filler")
	if _, err := tmpfstest.Fill(filler); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBadger(dir, WithTuning(diskFullTuning), WithIndexedKinds("Indexed"))
	if err != nil {
		t.Fatalf("open on a disk with no byte free: %v", err)
	}
	if !s.readOnly.Load() {
		t.Fatal("the store opened for writing on a disk with no byte free")
	}
	checkAcked(t, s, acked)
	small := newThing("Thing", "default", "after")
	small.Spec.Data = "x"
	if err := s.Update(func(tx Tx) error { return tx.Put(small) }); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("write to the read-only store: %v, want ErrDiskFull", err)
	}
	if s.checkSpace(true) != true || !s.readOnly.Load() {
		t.Fatal("the space check reopened the store for writing on a full disk")
	}

	// Space returns: the next check reopens it for writing.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if s.checkSpace(true) || s.readOnly.Load() {
		t.Fatal("the store is still read-only after space returned")
	}
	if err := s.Update(func(tx Tx) error { return tx.Put(small) }); err != nil {
		t.Fatalf("write after space returned: %v", err)
	}
	acked[KeyOf(small)] = "x"
	checkAcked(t, s, acked)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBadger(dir, WithTuning(diskFullTuning), WithIndexedKinds("Indexed"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkAcked(t, s, acked)
}

// fillStore writes incompressible objects, in both read paths (indexed
// and from Badger), until the store refuses one for a full disk, and
// returns that refusal.
func fillStore(t *testing.T, s *Badger, acked map[Key]string, prefix string) error {
	t.Helper()
	for i := 0; ; i++ {
		kind := "Thing"
		if i%2 == 1 {
			kind = "Indexed"
		}
		obj := newThing(kind, "default", fmt.Sprintf("%s-%05d", prefix, i))
		obj.Spec.Data = randomText(6 << 10)
		err := s.Update(func(tx Tx) error { return tx.Put(obj) })
		switch {
		case err == nil:
			acked[KeyOf(obj)] = obj.Spec.Data
		case errors.Is(err, ErrDiskFull):
			return err
		default:
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

// checkAcked reads back every acknowledged object through both List and
// Get.
func checkAcked(t *testing.T, s *Badger, acked map[Key]string) {
	t.Helper()
	err := s.View(func(tx Tx) error {
		n := 0
		for _, kind := range []string{"Thing", "Indexed"} {
			recs, err := tx.List(kind, "")
			if err != nil {
				return err
			}
			n += len(recs)
		}
		if n != len(acked) {
			return fmt.Errorf("the store holds %d objects, %d were acknowledged", n, len(acked))
		}
		for k, data := range acked {
			rec, err := tx.Get(k)
			if err != nil {
				return err
			}
			obj, err := Decode[thing](rec)
			if err != nil {
				return err
			}
			if obj.Spec.Data != data {
				return fmt.Errorf("%s holds other data than was written", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func randomText(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
