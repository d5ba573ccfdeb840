package outbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).WithMemTableSize(4 << 20).WithValueThreshold(64 << 10))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func entry(seq uint64, class Class) Entry {
	return Entry{Seq: seq, Class: class, Topic: "status", Payload: []byte(fmt.Sprintf(`{"seq":%d}`, seq))}
}

func seqs(es []Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

// both runs a test against the Badger and the memory backends.
func both(t *testing.T, limits Limits, test func(t *testing.T, o *Outbox)) {
	t.Run("badger", func(t *testing.T) {
		db := openDB(t, t.TempDir())
		defer db.Close()
		o, err := Open(Unguarded(db), limits)
		if err != nil {
			t.Fatal(err)
		}
		test(t, o)
	})
	t.Run("memory", func(t *testing.T) { test(t, NewMemory(limits)) })
}

func TestOrderAndAck(t *testing.T) {
	both(t, Limits{MaxEntries: 100, MaxBytes: 1 << 20}, testOrderAndAck)
}

func testOrderAndAck(t *testing.T, o *Outbox) {
	for i := uint64(1); i <= 10; i++ {
		if err := o.Append(entry(i, Class(i%3))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := o.Peek(4)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs(got)) != "[1 2 3 4]" || got[0].Topic != "status" || string(got[0].Payload) != `{"seq":1}` {
		t.Fatalf("peek = %+v", got)
	}
	if err := o.Ack(1, 2, 3); err != nil {
		t.Fatal(err)
	}
	got, _ = o.Peek(100)
	if fmt.Sprint(seqs(got)) != "[4 5 6 7 8 9 10]" {
		t.Fatalf("after ack: %v", seqs(got))
	}
	if n, _ := o.Len(); n != 7 {
		t.Fatalf("len = %d", n)
	}
	select {
	case <-o.Ready():
	default:
		t.Fatal("Append did not signal Ready")
	}
}

func TestBoundsDropLowestClassOldestFirst(t *testing.T) {
	both(t, Limits{MaxEntries: 5, MaxBytes: 1 << 20}, testBounds)
}

func testBounds(t *testing.T, o *Outbox) {
	// 1,2 telemetry; 3,4 status; 5 event.
	for i, c := range []Class{Telemetry, Telemetry, Status, Status, Event} {
		if err := o.Append(entry(uint64(i+1), c)); err != nil {
			t.Fatal(err)
		}
	}
	must := func(e Entry) {
		t.Helper()
		if err := o.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	must(entry(6, Event)) // drops 1 (oldest telemetry)
	must(entry(7, Event)) // drops 2
	must(entry(8, Event)) // drops 3 (no telemetry left: oldest status)
	got, _ := o.Peek(10)
	if fmt.Sprint(seqs(got)) != "[4 5 6 7 8]" {
		t.Fatalf("queue = %v", seqs(got))
	}
	if o.Dropped() != 3 {
		t.Fatalf("dropped = %d", o.Dropped())
	}
	// A low-class entry never pushes out higher classes: it is dropped itself.
	if err := o.Append(entry(9, Telemetry)); !errors.Is(err, ErrDropped) {
		t.Fatalf("a telemetry entry outranked by everything queued: %v, want ErrDropped", err)
	}
	must(entry(10, Status)) // drops 4, the only status entry
	got, _ = o.Peek(10)
	if fmt.Sprint(seqs(got)) != "[5 6 7 8 10]" || o.Dropped() != 5 {
		t.Fatalf("queue = %v, dropped = %d", seqs(got), o.Dropped())
	}
	if by := o.DroppedByClass(); by["telemetry"] != 3 || by["status"] != 2 || by["event"] != 0 {
		t.Fatalf("dropped by class = %v", by)
	}
	if by := o.AppendedByClass(); by["telemetry"] != 3 || by["status"] != 3 || by["event"] != 4 {
		t.Fatalf("appended by class = %v", by)
	}
}

func TestByteBound(t *testing.T) {
	both(t, Limits{MaxEntries: 1000, MaxBytes: 1000}, testByteBound)
}

func testByteBound(t *testing.T, o *Outbox) {
	big := make([]byte, 300)
	for i := uint64(1); i <= 5; i++ {
		if err := o.Append(Entry{Seq: i, Class: Status, Topic: "status", Payload: big}); err != nil {
			t.Fatal(err)
		}
	}
	n, b := o.Len()
	if b > 1000 || n != 3 || o.Dropped() != 2 {
		t.Fatalf("len %d bytes %d dropped %d", n, b, o.Dropped())
	}
	if err := o.Append(Entry{Seq: 6, Class: Event, Payload: make([]byte, 2000)}); err == nil {
		t.Fatal("an entry over the byte bound was accepted")
	}
}

func TestReopenKeepsQueueAndDropCount(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	o, _ := Open(Unguarded(db), Limits{MaxEntries: 3, MaxBytes: 1 << 20})
	for i := uint64(1); i <= 5; i++ {
		if err := o.Append(entry(i, Status)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	o, err := Open(Unguarded(db), Limits{MaxEntries: 3, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := o.Peek(10)
	if fmt.Sprint(seqs(got)) != "[3 4 5]" || o.Dropped() != 2 {
		t.Fatalf("after reopen: %v dropped %d", seqs(got), o.Dropped())
	}
	// Bounds still hold after the reopen.
	if err := o.Append(entry(6, Status)); err != nil {
		t.Fatal(err)
	}
	if n, _ := o.Len(); n != 3 || o.Dropped() != 3 {
		t.Fatalf("len %d dropped %d", n, o.Dropped())
	}
}

// TestCrashMidWriteLosesNothingAppended runs a child that appends as fast
// as it can and prints each seq once Append returned; the parent kills it
// with SIGKILL mid-run, reopens the store and finds every printed seq.
func TestCrashMidWriteLosesNothingAppended(t *testing.T) {
	if dir := os.Getenv("OUTBOX_CRASH_CHILD"); dir != "" {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		o, err := Open(Unguarded(db), Limits{MaxEntries: 1 << 20, MaxBytes: 1 << 30})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := uint64(1); ; i++ {
			if err := o.Append(entry(i, Event)); err != nil {
				fmt.Println("append:", err)
				os.Exit(1)
			}
			fmt.Println(i)
		}
	}
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidWriteLosesNothingAppended$")
		cmd.Env = append(os.Environ(), "OUTBOX_CRASH_CHILD="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var last uint64
		deadline := time.Now().Add(20 * time.Second)
		for sc.Scan() {
			n, err := strconv.ParseUint(strings.TrimSpace(sc.Text()), 10, 64)
			if err != nil {
				t.Fatalf("child: %s", sc.Text())
			}
			last = n
			if last >= uint64(100+round*150) || time.Now().After(deadline) {
				break
			}
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		db := openDB(t, dir)
		o, err := Open(Unguarded(db), Limits{MaxEntries: 1 << 20, MaxBytes: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := o.Peek(1 << 20)
		if uint64(len(got)) < last {
			t.Fatalf("round %d: %d entries after the crash, %d were acknowledged", round, len(got), last)
		}
		for i, e := range got {
			if e.Seq != uint64(i+1) {
				t.Fatalf("round %d: entry %d has seq %d: order broken", round, i, e.Seq)
			}
		}
		db.Close()
	}
}

func BenchmarkAppendAck(b *testing.B) {
	db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	o, _ := Open(Unguarded(db), DefaultLimits)
	payload := make([]byte, 400)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := o.Append(Entry{Seq: uint64(i + 1), Class: Status, Topic: "status", Payload: payload}); err != nil {
			b.Fatal(err)
		}
		if err := o.Ack(uint64(i + 1)); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLargeEntryEvictsThousands(t *testing.T) {
	// More victims than one Badger transaction takes (about 6,500 with a
	// 4 MiB memtable).
	const n = 8000
	both(t, Limits{MaxEntries: 1 << 20, MaxBytes: n * 40}, func(t *testing.T, o *Outbox) {
		for i := uint64(1); i <= n; i++ {
			if err := o.Append(Entry{Seq: i, Class: Telemetry, Topic: "metrics", Payload: make([]byte, 30)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Append(Entry{Seq: n + 1, Class: Status, Topic: "status", Payload: make([]byte, n*40-100)}); err != nil {
			t.Fatal(err)
		}
		count, bytes := o.Len()
		if count != 3 || bytes > n*40 || o.Dropped() != n-2 {
			t.Fatalf("len %d, %d bytes, dropped %d", count, bytes, o.Dropped())
		}
		got, err := o.Peek(10)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(seqs(got)) != fmt.Sprint([]uint64{n - 1, n, n + 1}) {
			t.Fatalf("queue %v", seqs(got))
		}
	})
}
