package metrics

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/diskguard"
	"github.com/flotilla-edge/flotilla/pkg/diskguard/tmpfstest"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// TestSeriesDiskFull fills a 12 MiB tmpfs with samples (in a child
// process, since a full disk under Badger's memory maps is a SIGBUS): the
// store refuses the batch that does not fit with diskguard.ErrFull, serves
// what it wrote, opens read-only on a disk with no byte left and takes
// samples again once space returns.
func TestSeriesDiskFull(t *testing.T) {
	if mnt, ok := tmpfstest.Child(); ok {
		seriesDiskFullChild(t, mnt)
		return
	}
	mnt := tmpfstest.Mount(t, 12<<20)
	t.Logf("child:\n%s", tmpfstest.RunChild(t, "TestSeriesDiskFull", mnt))
}

func seriesDiskFullChild(t *testing.T, mnt string) {
	dir := filepath.Join(mnt, "metrics")
	b, err := OpenBadger(dir, 24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	written := 0
	var full error
	for i := 0; full == nil; i++ {
		if i > 100000 {
			t.Fatal("100,000 batches went into a 12 MiB disk")
		}
		batch := make([]Entry, 0, 50)
		for n := range 50 {
			s := wire.MetricSample{Time: start.Add(time.Duration(i) * 10 * time.Millisecond), WindowSeconds: 10,
				Node: wire.NodeSample{CPU: wire.CPUSample{Cores: 4, UsageCores: float64(i%97) / 7}}}
			s.Node.Processes = i*50 + n // incompressible enough
			batch = append(batch, Entry{Node: fmt.Sprintf("node-%02d", n), Sample: s})
		}
		switch err := b.Append(batch); {
		case err == nil:
			written = i + 1
		case errors.Is(err, diskguard.ErrFull):
			full = err
		default:
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	t.Logf("%d batches of 50 written, then: %v", written, full)
	if !strings.HasPrefix(full.Error(), "metrics store: disk full, ") {
		t.Fatalf("refusal = %v", full)
	}
	check := func(b *BadgerSeries) {
		t.Helper()
		got, err := b.Range("node-07", start, start.Add(time.Duration(written)*10*time.Millisecond))
		if err != nil || len(got) != written {
			t.Fatalf("node-07 has %d samples, %d were written: %v", len(got), written, err)
		}
	}
	check(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	filler := filepath.Join(mnt, "filler")
	if _, err := tmpfstest.Fill(filler); err != nil {
		t.Fatal(err)
	}
	b, err = OpenBadger(dir, 24*time.Hour, nil)
	if err != nil {
		t.Fatalf("open on a disk with no byte free: %v", err)
	}
	defer b.Close()
	if !b.readOnly {
		t.Fatal("opened for writing on a disk with no byte free")
	}
	check(b)
	one := []Entry{{Node: "node-07", Sample: wire.MetricSample{Time: time.Now(), WindowSeconds: 10}}}
	if err := b.Append(one); !errors.Is(err, diskguard.ErrFull) {
		t.Fatalf("append to the read-only store: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if !b.reopen() {
		t.Fatal("not reopened for writing after space returned")
	}
	if err := b.Append(one); err != nil {
		t.Fatalf("append after space returned: %v", err)
	}
	check(b)
}
