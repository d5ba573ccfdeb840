package metrics

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// clock is a settable time for the contract: both implementations judge
// retention by it (Badger's own TTL, which uses the wall clock, is checked
// separately).
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var base = time.Now().UTC().Truncate(time.Second)

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func smp(t time.Time, cpu float64) wire.MetricSample {
	return wire.MetricSample{Time: t, WindowSeconds: 10, Node: wire.NodeSample{CPU: wire.CPUSample{Cores: 4, UsageCores: cpu}}}
}

// runContract checks one Series implementation. open returns a fresh
// store with retention of one hour whose clock the test controls.
func runContract(t *testing.T, open func(t *testing.T, c *clock) Series) {
	t.Run("AppendRangeLatest", func(t *testing.T) {
		c := &clock{t: at(0)}
		s := open(t, c)
		err := s.Append([]Entry{
			{Node: "n1", Sample: smp(at(-30), 1)},
			{Node: "n1", Sample: smp(at(-10), 3)},
			{Node: "n1", Sample: smp(at(-20), 2)}, // out of order
			{Node: "n10", Sample: smp(at(-5), 9)}, // "n1" must not see it
			{Node: "n2", Sample: smp(at(-15), 5)},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Range("n1", at(-3600), at(0))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].Node.CPU.UsageCores != 1 || got[2].Node.CPU.UsageCores != 3 {
			t.Fatalf("range n1 = %+v; want 3 samples oldest first", got)
		}
		got, _ = s.Range("n1", at(-20), at(-10))
		if len(got) != 2 {
			t.Errorf("range [-20, -10] has %d samples, want 2 (bounds inclusive)", len(got))
		}
		latest, err := s.Latest()
		if err != nil {
			t.Fatal(err)
		}
		if len(latest) != 3 || latest["n1"].Node.CPU.UsageCores != 3 || latest["n10"].Node.CPU.UsageCores != 9 || latest["n2"].Node.CPU.UsageCores != 5 {
			t.Fatalf("latest = %+v", latest)
		}
		if s.Size() <= 0 {
			t.Errorf("size %d", s.Size())
		}
	})
	t.Run("SameTimeReplaces", func(t *testing.T) {
		c := &clock{t: at(0)}
		s := open(t, c)
		_ = s.Append([]Entry{{Node: "n1", Sample: smp(at(-10), 1)}})
		_ = s.Append([]Entry{{Node: "n1", Sample: smp(at(-10), 2)}})
		got, _ := s.Range("n1", at(-60), at(0))
		if len(got) != 1 || got[0].Node.CPU.UsageCores != 2 {
			t.Fatalf("redelivered sample: %+v; want one, the last written", got)
		}
	})
	t.Run("Retention", func(t *testing.T) {
		c := &clock{t: at(0)}
		s := open(t, c)
		err := s.Append([]Entry{
			{Node: "n1", Sample: smp(at(-3600), 1)}, // exactly at retention: expired
			{Node: "n1", Sample: smp(at(-3599), 2)},
			{Node: "n1", Sample: smp(at(-10), 3)},
			{Node: "n2", Sample: smp(at(-4000), 4)},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := s.Range("n1", at(-7200), at(0))
		if len(got) != 2 || got[0].Node.CPU.UsageCores != 2 {
			t.Fatalf("range %+v; want the 2 samples younger than retention", got)
		}
		latest, _ := s.Latest()
		if _, ok := latest["n2"]; ok {
			t.Error("a node with only expired samples has a latest one")
		}
		c.t = at(1800) // half an hour later the -3599 sample has gone
		got, _ = s.Range("n1", at(-7200), at(7200))
		if len(got) != 1 || got[0].Node.CPU.UsageCores != 3 {
			t.Fatalf("after time passed: %+v", got)
		}
		c.t = at(3600)
		if latest, _ := s.Latest(); len(latest) != 0 {
			t.Errorf("all expired, latest = %+v", latest)
		}
	})
	t.Run("BadNodesSkipped", func(t *testing.T) {
		c := &clock{t: at(0)}
		s := open(t, c)
		if err := s.Append([]Entry{{Node: "", Sample: smp(at(-1), 1)}, {Node: "a/b", Sample: smp(at(-1), 1)}}); err != nil {
			t.Fatal(err)
		}
		if latest, _ := s.Latest(); len(latest) != 0 {
			t.Errorf("latest = %+v", latest)
		}
	})
	t.Run("Closed", func(t *testing.T) {
		c := &clock{t: at(0)}
		s := open(t, c)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Append([]Entry{{Node: "n", Sample: smp(at(-1), 1)}}); !errors.Is(err, ErrClosed) {
			t.Errorf("append after close: %v", err)
		}
		if _, err := s.Range("n", at(-1), at(0)); !errors.Is(err, ErrClosed) {
			t.Errorf("range after close: %v", err)
		}
		if _, err := s.Latest(); !errors.Is(err, ErrClosed) {
			t.Errorf("latest after close: %v", err)
		}
	})
}

func openBadgerSeries(t *testing.T, c *clock) *BadgerSeries {
	t.Helper()
	b, err := OpenBadger(filepath.Join(t.TempDir(), "metrics"), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c != nil {
		b.now = c.now
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestSeriesContractBadger(t *testing.T) {
	runContract(t, func(t *testing.T, c *clock) Series { return openBadgerSeries(t, c) })
}

func TestSeriesContractMemory(t *testing.T) {
	runContract(t, func(t *testing.T, c *clock) Series { return NewMemory(time.Hour, c.now) })
}

// TestBadgerSamplesCarryTheirExpiry checks the TTL Badger enforces on its
// own: a sample expires retention after its own time (rounded up to the
// second), not after its write.
func TestBadgerSamplesCarryTheirExpiry(t *testing.T) {
	b := openBadgerSeries(t, nil)
	now := time.Now()
	old := now.Add(-30 * time.Minute).Truncate(time.Second)
	if err := b.Append([]Entry{{Node: "n1", Sample: smp(old, 1)}}); err != nil {
		t.Fatal(err)
	}
	err := b.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(sampleKey("n1", old))
		if err != nil {
			return err
		}
		want := old.Add(time.Hour).Unix()
		if exp := int64(item.ExpiresAt()); exp < want || exp > want+2 {
			t.Errorf("expires at %d, want %d (the sample's time plus retention)", exp, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSampleKeysRoundTrip(t *testing.T) {
	tm := time.Date(2026, 5, 4, 3, 2, 1, 123456789, time.UTC)
	node, got, ok := parseSampleKey(sampleKey("edge-1.site", tm))
	if !ok || node != "edge-1.site" || !got.Equal(tm) {
		t.Fatalf("parse = %q %s %v", node, got, ok)
	}
	if _, _, ok := parseSampleKey([]byte("s/x")); ok {
		t.Error("short key parsed")
	}
}
