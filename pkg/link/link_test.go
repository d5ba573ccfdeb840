package link

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
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

// logLines is a slog handler's output, safe to read while it is written.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count counts the lines that hold every one of subs.
func (l *logLines) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func debugLogger(out *logLines) *slog.Logger {
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// refuseAll is a broker hook that refuses every client, as the hub's
// broker refuses a revoked certificate: CONNACK "not authorised".
type refuseAll struct {
	mqtt.HookBase
	attempts atomic.Int32
}

func (h *refuseAll) ID() string { return "refuse-all" }
func (h *refuseAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate
}
func (h *refuseAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool {
	h.attempts.Add(1)
	return false
}

// runFor runs s until stop returns true (checked every 5 ms), at most 10 s.
func runFor(t *testing.T, s *Session, stop func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	waitFor(t, stop)
	cancel()
	<-done
}

// TestRefusalIsLoggedAndBacksOffFurther: a refused session (a revoked
// agent) says so at warn once per back-off step, and backs off to
// RefusedBackoffMax, not to BackoffMax.
func TestRefusalIsLoggedAndBacksOffFurther(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	hook := &refuseAll{}
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	var out logLines
	s := New(Options{Broker: "tcp://" + ln.Address(), ClientID: "revoked", ConnectTimeout: time.Second,
		BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond, RefusedBackoffMax: time.Hour, Logger: debugLogger(&out)})
	// Stop once the session has logged its sixth refusal: the broker
	// counts an attempt before the session hears the answer.
	runFor(t, s, func() bool { return out.count("level=WARN", "broker refused the connection") >= 6 })
	// With BackoffMax's 2 ms the broker would have seen an attempt every
	// millisecond; refused, the ceilings double (1, 2, 4 … ms), so a run of
	// 6 attempts takes tens of milliseconds and stops short of 30 soon after.
	time.Sleep(50 * time.Millisecond)
	if n := hook.attempts.Load(); n > 30 {
		t.Errorf("%d refused attempts: the refusal did not back off beyond BackoffMax", n)
	}
	warned := out.count("level=WARN", "broker refused the connection", "not Authorized")
	if warned < 6 || out.count("level=WARN") != warned {
		t.Fatalf("%d refusal warnings for at least 6 refusals, each a step of its own:\n%s", warned, out.String())
	}
	if out.count("protocol version") != 0 {
		t.Fatalf("the refusal was retried as MQTT 3.1:\n%s", out.String())
	}
}

// TestUnreachableBrokerIsLoggedOncePerStep: a broker that is down is
// logged at warn while the delay grows, then at debug.
func TestUnreachableBrokerIsLoggedOncePerStep(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out logLines
	s := New(Options{Broker: "tcp://" + addr, ClientID: "t3", ConnectTimeout: time.Second,
		BackoffMin: time.Millisecond, BackoffMax: 4 * time.Millisecond, Logger: debugLogger(&out)})
	runFor(t, s, func() bool { return out.count("connect failed") >= 10 })
	// Ceilings 1, 2 and 4 ms: three steps, then the same step again.
	if n := out.count("level=WARN", "cannot connect to the broker", "connection refused"); n != 3 {
		t.Fatalf("%d warnings, want one per step (3):\n%s", n, out.String())
	}
	if out.count("refused the connection") != 0 {
		t.Fatalf("an unreachable broker was taken for a refusal:\n%s", out.String())
	}
}

// TestTLSAlertIsARefusal: a broker that refuses the client's certificate
// in the TLS handshake (an external broker with a CRL) is a refusal.
func TestTLSAlertIsARefusal(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake() // fails: no client certificate; the alert goes out
				_ = c.SetReadDeadline(time.Now().Add(time.Second))
				_, _ = io.Copy(io.Discard, c) // close after the client, not under its CONNECT
			}()
		}
	}()
	var out logLines
	s := New(Options{Broker: "ssl://" + ln.Addr().String(), ClientID: "t4", ConnectTimeout: 2 * time.Second,
		TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond,
		RefusedBackoffMax: time.Millisecond, Logger: debugLogger(&out)})
	runFor(t, s, func() bool { return out.count("broker refused the connection") >= 1 })
	if n := out.count("level=WARN", "broker refused the connection", "tls: certificate required"); n != 1 {
		t.Fatalf("the TLS alert was not logged as a refusal:\n%s", out.String())
	}
}

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
