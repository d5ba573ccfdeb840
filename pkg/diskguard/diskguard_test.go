package diskguard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTallyCost(t *testing.T) {
	tl := Tally{Threshold: 1000}
	tl.Entry(10, 100)  // in the LSM tree
	tl.Entry(10, 5000) // in the value log, a pointer in the tree
	if tl.LSM != txnOverhead+10+100+entryOverhead+10+pointerSize+entryOverhead || tl.VLog != 10+5000+entryOverhead {
		t.Fatalf("tally = %+v", tl)
	}
	if got, want := tl.Cost(), tl.VLog+int64(float64(tl.LSM)*3.5); got != want {
		t.Fatalf("cost = %d, want %d", got, want)
	}
}

// TestReserveCountsTablesAndLogs checks the reserve against files of
// known sizes: the tables once, the logs 2.5 times, plus the slack.
func TestReserveCountsTablesAndLogs(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("000001.sst", 1<<20)
	write("000002.sst", 1<<20)
	write("00003.mem", 400<<10)
	write("000001.vlog", 64<<10)
	write("MANIFEST", 100)
	u, err := Measure(dir)
	if err != nil {
		t.Fatal(err)
	}
	if u.Tables != 2<<20 || u.Logs < 400<<10 || u.LogFiles != 1 || u.ValueLog < 64<<10 {
		t.Fatalf("usage = %+v", u)
	}
	if got, want := u.Reserve(DefaultSlack), 2<<20+int64(float64(u.Logs)*2.5)+DefaultSlack; got != want {
		t.Fatalf("reserve = %d, want %d", got, want)
	}
}

// TestGuardRefusesPastTheReserve admits writes while the free space
// covers the reserve and refuses the first one that does not fit, with a
// FullError that says the free bytes.
func TestGuardRefusesPastTheReserve(t *testing.T) {
	dir := t.TempDir()
	g := New(0, dir)
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
	room := g.Room()
	if room <= 0 {
		t.Skipf("the test filesystem has no room: %d", room)
	}
	if err := g.Admit(room / 2); err != nil {
		t.Fatalf("half the room: %v", err)
	}
	// Ask for more than the filesystem has: refused whatever it holds.
	free, _ := g.State()
	err := g.Admit(free + room)
	var fe *FullError
	if !errors.As(err, &fe) || !errors.Is(err, ErrFull) || !strings.HasPrefix(err.Error(), "disk full, ") || fe.Free <= 0 {
		t.Fatalf("a write larger than the disk: %v", err)
	}
}
