package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func openBadger(t *testing.T, dir string, opts ...BadgerOption) *Badger {
	t.Helper()
	s, err := OpenBadger(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBadger(t *testing.T) {
	testStore(t, func(t *testing.T) Store {
		s := openBadger(t, t.TempDir())
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestBadgerIndexed runs the contract with the test kinds held in memory
// (all but Event, which the contract writes with TTLs), so both of the
// Badger store's read paths pass it.
func TestBadgerIndexed(t *testing.T) {
	testStore(t, func(t *testing.T) Store {
		s := openBadger(t, t.TempDir(), WithIndexedKinds("Thing", "ThingX", "Other", "Pair", "Cluster"))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestBadgerKeys(t *testing.T) {
	for _, c := range []struct {
		key  Key
		want string
	}{
		{Key{Kind: "Node", Name: "n1"}, "o/Node//n1"},
		{Key{Kind: "Pod", Namespace: "dev", Name: "web-0"}, "o/Pod/dev/web-0"},
	} {
		got, err := objectKey(c.key)
		if err != nil || string(got) != c.want {
			t.Errorf("objectKey(%v) = %q, %v; want %q", c.key, got, err, c.want)
		}
		back, err := parseObjectKey(got)
		if err != nil || back != c.key {
			t.Errorf("parseObjectKey(%q) = %v, %v", got, back, err)
		}
		if !bytes.HasPrefix(got, namespacePrefix(c.key.Kind, c.key.Namespace)) || !bytes.HasPrefix(got, kindPrefix(c.key.Kind)) {
			t.Errorf("%q lacks its prefixes", got)
		}
	}
	if bytes.HasPrefix([]byte("o/Pod/dev2/x"), namespacePrefix("Pod", "dev")) {
		t.Error("namespace prefix of dev matches dev2")
	}
	if _, err := objectKey(Key{Kind: "Pod", Namespace: "a/b", Name: "c"}); !errors.Is(err, errInvalidKey) {
		t.Errorf("key with '/': %v", err)
	}
	for _, bad := range []string{"x/Pod/a/b", "o/Pod/a", "o/Pod/a/b/c"} {
		if _, err := parseObjectKey([]byte(bad)); err == nil {
			t.Errorf("parseObjectKey(%q) accepted", bad)
		}
	}
}

func TestExpiresAtRoundsUp(t *testing.T) {
	now := time.Unix(100, 300_000_000)
	if got := expiresAt(now, time.Second); got != 102 {
		t.Errorf("expiresAt(100.3s, 1s) = %d, want 102", got)
	}
	if got := expiresAt(time.Unix(100, 0), time.Second); got != 101 {
		t.Errorf("expiresAt(100s, 1s) = %d, want 101", got)
	}
}

func TestBadgerReopen(t *testing.T) {
	dir := t.TempDir()
	s := openBadger(t, dir)
	a, b := newThing("Thing", "ns", "a"), newThing("Thing", "ns", "b")
	put(t, s, a, b)
	if err := s.Update(func(tx Tx) error { return tx.Delete(KeyOf(a)) }); err != nil {
		t.Fatal(err)
	}
	v := s.Version()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openBadger(t, dir)
	defer s.Close()
	if s.Version() != v {
		t.Fatalf("version after reopen %d, want %d", s.Version(), v)
	}
	rec, err := get(s, KeyOf(b))
	if err != nil || rec.Version != rv(b) {
		t.Fatalf("b after reopen: %v@%d, want @%d", err, rec.Version, rv(b))
	}
	if _, err := get(s, KeyOf(a)); !IsNotFound(err) {
		t.Fatalf("deleted a after reopen: %v", err)
	}
	c := newThing("Thing", "ns", "c")
	put(t, s, c)
	if rv(c) != v+1 {
		t.Fatalf("first version after reopen %d, want %d", rv(c), v+1)
	}
}

func TestBadgerTooBig(t *testing.T) {
	small := WithTuning(func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10) })
	s := openBadger(t, t.TempDir(), small)
	defer s.Close()
	put(t, s, newThing("Thing", "ns", "before"))
	v := s.Version()
	payload := strings.Repeat("x", 4<<10)
	err := s.Update(func(tx Tx) error {
		for i := range 1000 {
			th := newThing("Thing", "ns", "big"+strconv.Itoa(i))
			th.Spec.Data = payload
			if err := tx.Put(th); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, ErrTooBig) || !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("huge update: %v, want ErrTooBig", err)
	}
	t.Logf("error: %v", err)
	if got := names(list(t, s, "Thing", "")); len(got) != 1 || s.Version() != v {
		t.Fatalf("after too-big update: %d objects at version %d", len(got), s.Version())
	}
	after := newThing("Thing", "ns", "after")
	put(t, s, after)
	if rv(after) != v+1 {
		t.Fatalf("version after failed update %d, want %d", rv(after), v+1)
	}
}

func TestBadgerRunGC(t *testing.T) {
	s := openBadger(t, t.TempDir())
	put(t, s, newThing("Thing", "ns", "a"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunGC(ctx, time.Millisecond) }()
	time.Sleep(20 * time.Millisecond) // let a few rounds run
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunGC after cancel: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := s.RunGC(context.Background(), time.Millisecond)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("RunGC after Close: %v", err)
	}
}

// crashDirEnv makes TestBadgerSurvivesSIGKILL act as the child that writes
// until it is killed.
const crashDirEnv = "FLOTILLA_STORE_CRASH_DIR"

// TestBadgerSurvivesSIGKILL re-runs the test binary as a child that writes
// objects one Update at a time and prints each acknowledged version, kills
// it with SIGKILL mid-run, and checks that every acknowledged write is on
// disk.
func TestBadgerSurvivesSIGKILL(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBadgerSurvivesSIGKILL$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()

	const killAfter = 200
	acked := map[string]uint64{}
	var lastCount int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var name string
		var version uint64
		var count int
		if _, err := fmt.Sscanf(sc.Text(), "ack %s %d %d", &name, &version, &count); err != nil {
			continue // test framework output
		}
		acked[name] = version
		lastCount = count
		if len(acked) == killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v\n%s", err, stderr.String())
	}
	if len(acked) < killAfter {
		t.Fatalf("child acknowledged %d writes before it died, want %d\n%s", len(acked), killAfter, stderr.String())
	}

	s := openBadger(t, dir)
	defer s.Close()
	for name, version := range acked {
		rec, err := get(s, Key{Kind: "Thing", Namespace: "crash", Name: name})
		if err != nil || rec.Version != version {
			t.Fatalf("acknowledged %s@%d: %v@%d", name, version, err, rec.Version)
		}
	}
	var counter *thing
	err = s.View(func(tx Tx) error {
		rec, err := tx.Get(Key{Kind: "Counter", Namespace: "crash", Name: "c"})
		if err != nil {
			return err
		}
		counter, err = Decode[thing](rec)
		return err
	})
	if err != nil || counter.Spec.Count < lastCount {
		t.Fatalf("counter after kill: %v, %v; acknowledged %d", counter, err, lastCount)
	}
	t.Logf("%d writes acknowledged before SIGKILL, store at version %d, counter %d", len(acked), s.Version(), counter.Spec.Count)
}

// crashChild writes until the parent kills it (or gives up after a while,
// should the parent be gone).
func crashChild(t *testing.T, dir string) {
	s, err := OpenBadger(dir)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for i := 1; time.Now().Before(deadline); i++ {
		obj := newThing("Thing", "crash", "obj-"+strconv.Itoa(i))
		counter := newThing("Counter", "crash", "c")
		counter.Spec.Count = i
		if err := s.Update(func(tx Tx) error {
			if err := tx.Put(obj); err != nil {
				return err
			}
			return tx.Put(counter)
		}); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ack %s %d %d\n", obj.Name, rv(obj), i)
	}
	t.Fatal("parent never killed the child")
}

func BenchmarkBadgerUpdate(b *testing.B) {
	s, err := OpenBadger(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	benchUpdate(b, s)
}

func BenchmarkBadgerList10k(b *testing.B) {
	b.Run("disk", func(b *testing.B) {
		s, err := OpenBadger(b.TempDir(), WithIndexedKinds())
		if err != nil {
			b.Fatal(err)
		}
		benchList(b, s, 10_000)
	})
	b.Run("indexed", func(b *testing.B) {
		s, err := OpenBadger(b.TempDir(), WithIndexedKinds("Thing"))
		if err != nil {
			b.Fatal(err)
		}
		benchList(b, s, 10_000)
	})
}

// benchUpdate measures one Update holding one Put; it closes s.
func benchUpdate(b *testing.B, s Store) {
	defer s.Close()
	obj := newThing("Thing", "bench", "obj")
	obj.Labels = map[string]string{"app": "bench"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		obj.Spec.Count = i
		if err := s.Update(func(tx Tx) error { return tx.Put(obj) }); err != nil {
			b.Fatal(err)
		}
	}
}

// benchList measures listing n objects of one kind; it closes s.
func benchList(b *testing.B, s Store, n int) {
	defer s.Close()
	const batch = 1000
	for start := 0; start < n; start += batch {
		err := s.Update(func(tx Tx) error {
			for i := start; i < min(start+batch, n); i++ {
				obj := newThing("Thing", "ns"+strconv.Itoa(i%10), fmt.Sprintf("obj-%05d", i))
				obj.Labels = map[string]string{"app": "bench", "index": strconv.Itoa(i)}
				if err := tx.Put(obj); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		err := s.View(func(tx Tx) error {
			recs, err := tx.List("Thing", "")
			if err == nil && len(recs) != n {
				err = fmt.Errorf("listed %d, want %d", len(recs), n)
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpensAfterAKillLeftAnEmptyLogFile: a hub killed after Badger made
// its next log file and before it wrote the file's header left it empty,
// which Badger refuses to open; the store removes it and opens with what
// it held.
func TestOpensAfterAKillLeftAnEmptyLogFile(t *testing.T) {
	dir := t.TempDir()
	s := openBadger(t, dir)
	if err := s.Update(func(tx Tx) error { return tx.Put(newThing("Thing", "default", "kept")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, name := range []string{"000099.vlog", "00099.mem"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openBadger(t, dir)
	defer s.Close()
	if err := s.View(func(tx Tx) error {
		_, err := tx.Get(Key{Kind: "Thing", Namespace: "default", Name: "kept"})
		return err
	}); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
}
