package state

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/outbox"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
)

// TestDeliveredOutboxSpaceComesBack queues 24 MiB of reports of 6 KiB
// (over the value threshold, so in value-log files), delivers them all,
// and runs one round of garbage collection: the value log must shrink to
// at most the newest file and one file's worth more. Before, files of
// 16 MiB were never rewritten because no compaction had counted their
// garbage, so a state directory stayed at its high-water mark.
func TestDeliveredOutboxSpaceComesBack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ob, err := outbox.Open(s, outbox.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4096; i++ {
		seq, _ := s.NextSeq()
		if err := ob.Append(outbox.Entry{Seq: seq, Class: outbox.Telemetry, Topic: "metrics", Payload: random(6 << 10)}); err != nil {
			t.Fatal(err)
		}
	}
	full, _ := diskguard.Measure(dir)
	for {
		es, err := ob.Peek(64)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		seqs := make([]uint64, len(es))
		for i, e := range es {
			seqs[i] = e.Seq
		}
		if err := ob.Ack(seqs...); err != nil {
			t.Fatal(err)
		}
	}
	drained, _ := diskguard.Measure(dir)
	s.collect(context.Background())
	after, _ := diskguard.Measure(dir)
	t.Logf("value log: %d MiB queued, %d MiB delivered, %d MiB after one GC round",
		full.ValueLog>>20, drained.ValueLog>>20, after.ValueLog>>20)
	if limit := 2 * s.opts.ValueLogFileSize; after.ValueLog > limit {
		t.Fatalf("the value log holds %d bytes after delivering everything and one GC round, want at most %d", after.ValueLog, limit)
	}
}
