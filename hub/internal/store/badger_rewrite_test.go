package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkBadgerFleetRewrite rewrites 10,000 objects of about 2 KB (a
// fleet's pods through a rollout) in transactions of 350, as ingest
// writes them; one op is the whole fleet. cpu-ms/op is the process's CPU,
// Badger's memtable flushes and compactions included; disk-MiB is the
// directory after the run, gc-disk-MiB after one RunGC round, which took
// gc-cpu-ms.
func BenchmarkBadgerFleetRewrite(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []BadgerOption
	}{
		{"store", nil},
		// Badger's defaults for where values go: every value in the LSM
		// tree (the store's options before values moved to the value log).
		{"values-in-tree", []BadgerOption{WithTuning(func(o badger.Options) badger.Options {
			return o.WithValueThreshold(1 << 20).WithMemTableSize(16 << 20).WithNumLevelZeroTables(5)
		})}},
	} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			s, err := OpenBadger(dir, append([]BadgerOption{WithIndexedKinds("Thing")}, c.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			round := rewriter(b, s, fleetObjects(10_000))
			round(0)
			cpu0 := processCPU()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 1; i <= b.N; i++ {
				round(i)
			}
			b.StopTimer()
			time.Sleep(2 * time.Second) // flushes and compactions the writes started
			b.ReportMetric(float64((processCPU()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(dirSize(dir))/(1<<20), "disk-MiB")
			cpu0 = processCPU()
			if err := s.gcRound(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((processCPU() - cpu0).Milliseconds()), "gc-cpu-ms")
			b.ReportMetric(float64(dirSize(dir))/(1<<20), "gc-disk-MiB")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// fleetObjects makes n objects of about 1.7 KB of JSON, half-random so
// that they compress about as well as pod JSON.
func fleetObjects(n int) []*thing {
	objs := make([]*thing, n)
	for i := range objs {
		objs[i] = newThing("Thing", "default", fmt.Sprintf("pod-%05d", i))
		objs[i].Annotations = map[string]string{}
		for j := range 8 {
			buf := make([]byte, 90)
			rand.Read(buf[:45])
			copy(buf[45:], buf[:45])
			objs[i].Annotations[fmt.Sprint("a", j)] = hex.EncodeToString(buf)
		}
	}
	return objs
}

// rewriter returns a function that writes every object of objs, with
// Spec.Count set to its argument, in transactions of 350 (as ingest
// writes a fleet's status reports).
func rewriter(t testing.TB, s Store, objs []*thing) func(round int) {
	const batch = 350
	return func(round int) {
		for start := 0; start < len(objs); start += batch {
			if err := s.Update(func(tx Tx) error {
				for _, o := range objs[start:min(start+batch, len(objs))] {
					o.Spec.Count = round
					if err := tx.Put(o); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestBadgerCollectsRewrittenObjects checks that the store's options let
// value-log GC reclaim what rewrites leave: objects live in the value log,
// and compaction must see their stale versions for GC to find any.
func TestBadgerCollectsRewrittenObjects(t *testing.T) {
	dir := t.TempDir()
	s := openBadger(t, dir, WithIndexedKinds("Thing"))
	objs := fleetObjects(2_000)
	round := rewriter(t, s, objs)
	// Each phase writes 200,000 objects (340 MB) and runs one GC round,
	// as RunGC does every ten minutes.
	const rounds = 100
	var sizes []int64
	for phase := range 2 {
		for r := range rounds {
			round(phase*rounds + r)
		}
		time.Sleep(time.Second) // the flushes and compactions the writes started
		written := dirSize(dir)
		if err := s.gcRound(context.Background()); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, dirSize(dir))
		t.Logf("phase %d: %.1f MiB on disk, %.1f MiB after GC", phase, float64(written)/(1<<20), float64(sizes[phase])/(1<<20))
	}
	if sizes[1] > sizes[0]*5/4 {
		t.Errorf("the store grows with what is rewritten: %v bytes after each GC; value-log GC does not collect the rewrites' garbage", sizes)
	}
	// Nothing live went with the garbage: a reopened store reads every
	// object's last version back from the value log.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openBadger(t, dir, WithIndexedKinds("Thing"))
	defer s.Close()
	recs := list(t, s, "Thing", "default")
	if len(recs) != len(objs) {
		t.Fatalf("reopened store lists %d objects, want %d", len(recs), len(objs))
	}
	for _, rec := range recs {
		var got thing
		if err := json.Unmarshal(rec.Value, &got); err != nil {
			t.Fatalf("%s: %v", rec.Key, err)
		}
		if got.Spec.Count != 2*rounds-1 || len(got.Annotations) != 8 {
			t.Fatalf("%s after GC and reopen: count %d, %d annotations; want %d, 8", rec.Key, got.Spec.Count, len(got.Annotations), 2*rounds-1)
		}
	}
}
