package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimiter(t *testing.T, rate, burst float64, maxKeys int) (*Limiter, *clock) {
	t.Helper()
	clk := &clock{t: time.Unix(1_000_000, 0)}
	l, err := New(Options{Rate: rate, Burst: burst, MaxKeys: maxKeys, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

func count(l *Limiter, key string, tries int) int {
	n := 0
	for range tries {
		if l.Allow(key) {
			n++
		}
	}
	return n
}

func TestBurstThenRate(t *testing.T) {
	l, clk := newLimiter(t, 10, 5, 0)
	if n := count(l, "n1", 100); n != 5 {
		t.Fatalf("burst: %d allowed, want 5", n)
	}
	clk.advance(100 * time.Millisecond) // one token
	if n := count(l, "n1", 10); n != 1 {
		t.Fatalf("after 100 ms: %d allowed, want 1", n)
	}
	clk.advance(250 * time.Millisecond) // two and a half
	if n := count(l, "n1", 10); n != 2 {
		t.Fatalf("after 250 ms: %d allowed, want 2", n)
	}
	clk.advance(50 * time.Millisecond) // the half left plus a half
	if n := count(l, "n1", 10); n != 1 {
		t.Fatalf("fractions are kept: %d allowed, want 1", n)
	}
	clk.advance(time.Hour) // never more than the burst
	if n := count(l, "n1", 100); n != 5 {
		t.Fatalf("after an hour: %d allowed, want 5", n)
	}
	// Over a long run the rate holds: 10/s for 60 s plus the burst.
	total := 0
	for range 600 {
		clk.advance(100 * time.Millisecond)
		total += count(l, "n1", 5)
	}
	if total != 600 {
		t.Fatalf("60 s at 10/s: %d allowed, want 600", total)
	}
	st := l.Stats()
	if st.Allowed != uint64(5+1+2+1+5+600) || st.Refused == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l, _ := newLimiter(t, 1, 3, 0)
	if n := count(l, "noisy", 50); n != 3 {
		t.Fatalf("noisy: %d", n)
	}
	if n := count(l, "quiet", 3); n != 3 {
		t.Fatalf("a noisy node took a quiet one's tokens: %d", n)
	}
}

func TestAllowN(t *testing.T) {
	l, clk := newLimiter(t, 100, 1000, 0) // bytes, say
	if !l.AllowN("n1", 600) || l.AllowN("n1", 600) || !l.AllowN("n1", 400) {
		t.Fatal("costs")
	}
	clk.advance(time.Hour)
	if l.AllowN("n1", 1001) {
		t.Fatal("a cost above the burst was allowed")
	}
	if !l.AllowN("n1", 1000) {
		t.Fatal("the refused cost spent tokens")
	}
}

func TestBoundedKeys(t *testing.T) {
	l, clk := newLimiter(t, 1, 2, 3)
	for i := range 3 {
		if !l.Allow(fmt.Sprint("k", i)) {
			t.Fatal("first keys")
		}
	}
	// The table is full and every bucket is busy: a new key waits.
	if l.Allow("k9") {
		t.Fatal("a new key got in past MaxKeys")
	}
	if st := l.Stats(); st.RefusedNoRoom != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Known keys carry on.
	if !l.Allow("k0") {
		t.Fatal("a known key was refused")
	}
	// Once idle buckets have refilled they are dropped and make room.
	clk.advance(3 * time.Second)
	if !l.Allow("k9") {
		t.Fatal("no room after the buckets went idle")
	}
	if l.Len() != 1 {
		t.Fatalf("%d buckets kept; the idle ones should be gone", l.Len())
	}
	// A dropped key starts again with a full bucket: nothing was lost.
	if n := count(l, "k1", 5); n != 2 {
		t.Fatalf("a dropped key: %d allowed, want the burst", n)
	}
	l.Forget("k1")
	if l.Len() != 1 {
		t.Fatalf("Forget: %d buckets", l.Len())
	}
}

func TestConcurrentUse(t *testing.T) {
	l, err := New(Options{Rate: 1e-9, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := count(l, "n1", 50)
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("%d allowed from a burst of 100", allowed)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{Rate: 0, Burst: 1}, {Rate: 1, Burst: 0}, {Rate: -1, Burst: 1}} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// A caller that waits out each reservation is paced at the rate once its
// burst is spent, never refused; one that does not wait runs up a debt
// that makes the next caller wait longer.
func TestReservePacesInsteadOfRefusing(t *testing.T) {
	l, clk := newLimiter(t, 10, 5, 0)
	for i := range 5 {
		if d := l.Reserve("n1"); d != 0 {
			t.Fatalf("reservation %d of the burst waits %s", i, d)
		}
	}
	if d := l.Reserve("n1"); d != 100*time.Millisecond {
		t.Fatalf("past the burst: wait %s, want 100ms", d)
	}
	if d := l.Reserve("n1"); d != 200*time.Millisecond {
		t.Fatalf("a second reservation behind the first: wait %s, want 200ms", d)
	}
	clk.advance(200 * time.Millisecond) // both waits served
	// Over a minute a caller that waits its turn gets exactly the rate.
	start := clk.now()
	n := 0
	for clk.now().Sub(start) < time.Minute {
		d := l.Reserve("n1")
		if d > 100*time.Millisecond {
			t.Fatalf("reservation %d waits %s, more than 1/rate", n, d)
		}
		clk.advance(d)
		n++
	}
	if n < 600 || n > 601 {
		t.Fatalf("%d reservations in a minute at 10/s", n)
	}
	// Another key is not held up by n1's debt.
	if d := l.Reserve("n2"); d != 0 {
		t.Fatalf("n2 waits %s behind n1", d)
	}
	if st := l.Stats(); st.Refused != 0 || st.Delayed == 0 || st.Delay == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A key that finds no room shares the overflow bucket: paced with every
// other such key, never refused; a bucket in debt is not dropped for
// room until it has repaid its debt and refilled.
func TestReserveWithoutRoomSharesTheOverflowBucket(t *testing.T) {
	l, clk := newLimiter(t, 1, 2, 1)
	for range 5 { // the burst of 2, then a debt of 3 tokens
		l.Reserve("busy")
	}
	clk.advance(2 * time.Second) // a full bucket's refill time; busy still owes one
	for i, key := range []string{"new1", "new2"} {
		if d := l.Reserve(key); d != 0 {
			t.Fatalf("%s: wait %s; the overflow bucket holds a burst", key, d)
		}
		if st := l.Stats(); st.Shared != uint64(i+1) {
			t.Fatalf("%s did not share the overflow bucket: %+v", key, st)
		}
	}
	if d := l.Reserve("new3"); d != time.Second {
		t.Fatalf("a third key without room: wait %s, want the overflow bucket's 1s", d)
	}
	clk.advance(3 * time.Second) // busy has repaid and refilled: its bucket goes
	if d := l.Reserve("new4"); d != 0 || l.Len() != 1 {
		t.Fatalf("new4: wait %s, %d buckets; busy's full bucket should have made room", d, l.Len())
	}
	if st := l.Stats(); st.Shared != 3 || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConcurrentReservations(t *testing.T) {
	l, err := New(Options{Rate: 1000, Burst: 10})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total time.Duration
	for range 8 {
		wg.Go(func() {
			var mine time.Duration
			for range 50 {
				mine += l.Reserve("n1")
			}
			mu.Lock()
			total += mine
			mu.Unlock()
		})
	}
	wg.Wait()
	// 400 reservations, 10 from the burst: the debts handed out grow by
	// 1 ms each (less what the clock refilled meanwhile).
	if st := l.Stats(); st.Allowed+st.Delayed != 400 || st.Refused != 0 || total <= 0 {
		t.Fatalf("stats %+v, total wait %s", st, total)
	}
}
