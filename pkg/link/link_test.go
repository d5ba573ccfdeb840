package link

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func TestBackoffIsCappedAndJittered(t *testing.T) {
	min, max := 100*time.Millisecond, 2*time.Second
	for n := 1; n < 20; n++ {
		ceiling := min << (n - 1)
		if ceiling > max || ceiling <= 0 {
			ceiling = max
		}
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			d := Backoff(n, min, max)
			if d < 0 || d > ceiling {
				t.Fatalf("Backoff(%d) = %s, outside [0, %s]", n, d, ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Fatalf("Backoff(%d) is not jittered: %d distinct values in 200", n, len(seen))
		}
	}
}

// startBroker runs a mochi broker on addr ("127.0.0.1:0" for any port).
func startBroker(t *testing.T, addr string) (*mqtt.Server, string) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: addr})
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	return srv, ln.Address()
}

func TestSessionReconnectsAndResubscribes(t *testing.T) {
	srv, addr := startBroker(t, "127.0.0.1:0")
	var mu sync.Mutex
	var got []string
	connected := make(chan struct{}, 4)
	s := New(Options{
		Broker: "tcp://" + addr, ClientID: "test", BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		KeepAlive: 2 * time.Second, ConnectTimeout: time.Second, AckTimeout: time.Second,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnConnect: func(context.Context) { connected <- struct{}{} },
	})
	s.Subscribe("t/+", 1, func(topic string, payload []byte) {
		mu.Lock()
		got = append(got, topic+"="+string(payload))
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	<-connected
	if err := s.Publish(ctx, "t/a", 1, false, []byte("1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })

	// The broker goes away: publishing fails fast, then the session comes
	// back by itself once the broker is back, with its subscription.
	srv.Close()
	waitFor(t, func() bool { return !s.Connected() })
	if err := s.Publish(ctx, "t/b", 1, false, []byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publish while down: %v", err)
	}
	srv2, _ := startBroker(t, addr)
	defer srv2.Close()
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnect")
	}
	if s.Connects() != 2 {
		t.Fatalf("connects = %d", s.Connects())
	}
	if err := s.Publish(ctx, "t/c", 1, false, []byte("2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 && got[1] == "t/c=2" })
}

func TestConnectFailureKeepsRetrying(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := New(Options{Broker: "tcp://" + addr, ClientID: "t2", BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		ConnectTimeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	time.Sleep(100 * time.Millisecond)
	srv, _ := startBroker(t, addr)
	defer srv.Close()
	waitFor(t, s.Connected)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
