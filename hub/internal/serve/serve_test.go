package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/link"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// startTimeout bounds a hub's start and stop in these tests: generous,
// for a loaded machine; a hub that takes longer is broken, not slow.
const startTimeout = 60 * time.Second

// records is a slog handler that keeps every record's message and
// attributes, to read the addresses a hub on port 0 bound.
type records struct {
	mu   sync.Mutex
	recs []map[string]string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	m := map[string]string{"msg": rec.Message}
	rec.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, m)
	r.mu.Unlock()
	return nil
}

// attr returns attribute key of the last record logged as msg.
func (r *records) attr(t *testing.T, msg, key string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.recs) - 1; i >= 0; i-- {
		if r.recs[i]["msg"] == msg {
			return r.recs[i][key]
		}
	}
	t.Fatalf("nothing logged as %q", msg)
	return ""
}

// running is a hub Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

// startHub runs a hub with cfg (its Logger and Ready set here) and waits
// until it serves.
func startHub(t *testing.T, cfg Config) (*running, *records) {
	t.Helper()
	rec := &records{}
	ready := make(chan struct{})
	cfg.Logger, cfg.Ready = slog.New(rec), ready
	ctx, cancel := context.WithCancel(context.Background())
	h := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- Run(ctx, cfg) }()
	select {
	case <-ready:
	case err := <-h.done:
		cancel()
		t.Fatalf("Run returned before it served: %v", err)
	case <-time.After(startTimeout):
		cancel()
		t.Fatal("the hub did not serve")
	}
	return h, rec
}

// stop ends the hub and returns Run's error; it fails the test if Run
// does not return.
func (h *running) stop(t *testing.T) error {
	t.Helper()
	h.cancel()
	return h.wait(t)
}

func (h *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(startTimeout):
		t.Fatal("Run did not return")
		return nil
	}
}

// flotillaGoroutines returns the stacks of goroutines, other than the
// caller's, running the project's code (a test's own goroutine that is
// only returning from it does not count).
func flotillaGoroutines() []string {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.Split(g, "\n")
		if strings.Contains(lines[0], "[running]") {
			continue
		}
		// After the header, frames are pairs of lines: the function, then
		// its file and line; "created by" names the goroutine's creator.
		for i := 1; i+1 < len(lines); i += 2 {
			fn, file := lines[i], lines[i+1]
			if strings.HasPrefix(fn, "created by") {
				break
			}
			if (strings.Contains(fn, "flotilla-edge/flotilla/hub/") || strings.Contains(fn, "flotilla-edge/flotilla/pkg/")) &&
				!strings.Contains(file, "_test.go:") {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// noneLeft fails the test if any of the project's goroutines still runs.
func noneLeft(t *testing.T) {
	t.Helper()
	if gs := flotillaGoroutines(); len(gs) > 0 {
		t.Fatalf("%d goroutines still run the hub's code after Run returned:\n%s", len(gs), strings.Join(gs, "\n\n"))
	}
}

// storeIsClosed fails the test unless the hub's store can be opened again
// (Badger holds a lock on its directory while open).
func storeIsClosed(t *testing.T, dataDir string) {
	t.Helper()
	st, err := store.OpenBadger(filepath.Join(dataDir, "store"), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("the hub's store is still open: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

func kind(t *testing.T, name string) api.KindInfo {
	t.Helper()
	k, ok := api.LookupKind(name)
	if !ok {
		t.Fatalf("no kind %s", name)
	}
	return k
}

// TestRunInsecure: a hub on a temporary data directory serves HTTP and
// its embedded broker in plaintext on the ports it was given, lands what
// an agent publishes (broker → session → ingest → store → API), and when
// its context ends returns with everything it started ended and its
// store closed, so that it starts again on the same directory.
func TestRunInsecure(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, HTTPListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", Insecure: true}
	h, rec := startHub(t, cfg)
	httpAddr := rec.attr(t, "hub serving", "http")
	brokerAddr := rec.attr(t, "embedded MQTT broker listening", "addr")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	resp, err := http.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}
	c, err := client.New("http://" + httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, kind(t, api.KindNamespace), "", api.DefaultNamespace); err != nil {
		t.Fatalf("the default namespace: %v", err)
	}

	agent := link.New(link.Options{Broker: "tcp://" + brokerAddr, ClientID: "n1", Logger: slog.New(slog.DiscardHandler), BackoffMax: 100 * time.Millisecond})
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(agentCtx) }()
	hello, err := wire.Encode(wire.TypeHello, "n1", 1, time.Now(), wire.Hello{Info: api.NodeSystemInfo{Architecture: "riscv64"}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		err := agent.Publish(ctx, wire.NodeTopic("n1", wire.TopicStatus), 1, false, hello)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("publish a hello: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		obj, err := c.Get(ctx, kind(t, api.KindNode), "", "n1")
		if err == nil {
			if n := obj.(*api.Node); n.Status.NodeInfo.Architecture != "riscv64" || !n.IsReady() {
				t.Fatalf("node %+v", n.Status)
			}
			break
		}
		if !client.IsNotFound(err) || ctx.Err() != nil {
			t.Fatalf("the node the hello registers: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopAgent()
	if err := <-agentDone; err != nil {
		t.Fatal(err)
	}

	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	noneLeft(t)
	if _, err := net.DialTimeout("tcp", httpAddr, time.Second); err == nil {
		t.Fatal("the HTTP port still accepts connections")
	}
	if _, err := net.DialTimeout("tcp", brokerAddr, time.Second); err == nil {
		t.Fatal("the MQTT port still accepts connections")
	}
	h, _ = startHub(t, cfg)
	if err := h.stop(t); err != nil {
		t.Fatalf("Run again on the same directory: %v", err)
	}
}

// TestRunTLS: a secure hub serves its API over HTTPS and its broker over
// TLS, both with certificates of its CA; the client file it writes (0600)
// names the API and carries the CA and a token the API takes, and the API
// refuses a request without it.
func TestRunTLS(t *testing.T) {
	dir := t.TempDir()
	h, rec := startHub(t, Config{DataDir: dir, HTTPListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0"})
	httpAddr := rec.attr(t, "hub serving", "http")
	brokerAddr := rec.attr(t, "embedded MQTT broker listening", "addr")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	path := filepath.Join(dir, AdminConfigFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %04o, want 0600", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ac AdminConfig
	if err := yaml.Unmarshal(raw, &ac); err != nil {
		t.Fatal(err)
	}
	caPEM, err := base64.StdEncoding.DecodeString(ac.CertificateAuthorityData)
	if err != nil {
		t.Fatal(err)
	}
	if ac.Server != "https://"+httpAddr || len(ac.Token) < 32 {
		t.Fatalf("client file: server %q, token of %d characters", ac.Server, len(ac.Token))
	}

	c, err := client.NewWithOptions(ac.Server, client.Options{CAPEM: caPEM, Token: ac.Token})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, kind(t, api.KindNamespace), "", api.DefaultNamespace); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	anon, err := client.NewWithOptions(ac.Server, client.Options{CAPEM: caPEM})
	if err != nil {
		t.Fatal(err)
	}
	var se *client.StatusError
	if _, err := anon.Get(ctx, kind(t, api.KindNamespace), "", api.DefaultNamespace); !errors.As(err, &se) || se.Status.Code != http.StatusUnauthorized {
		t.Fatalf("without the token: %v, want 401", err)
	}
	if resp, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the API answered plaintext HTTP")
		}
	}

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA in the client file")
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", brokerAddr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS to the broker with the hub CA: %v", err)
	}
	conn.Close()

	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	noneLeft(t)
	storeIsClosed(t, dir)
}

// TestRunFailsWhole: a hub that cannot finish setting up returns the
// error that stopped it, naming what is wrong, with nothing left running
// and its store closed, whichever step failed.
func TestRunFailsWhole(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct {
		name  string
		cfg   Config
		setup func(t *testing.T, dir string)
		want  string
	}{
		{name: "the HTTP port is taken", cfg: Config{HTTPListen: busy.Addr().String(), MQTTListen: "127.0.0.1:0", Insecure: true},
			want: "listen for HTTP on " + busy.Addr().String()},
		{name: "the MQTT port is taken", cfg: Config{HTTPListen: "127.0.0.1:0", MQTTListen: busy.Addr().String(), Insecure: true},
			want: "broker listen on " + busy.Addr().String()},
		{name: "a plaintext external broker without --insecure", cfg: Config{HTTPListen: "127.0.0.1:0", BrokerURL: "tcp://127.0.0.1:1"},
			want: "broker tcp://127.0.0.1:1 is plaintext"},
		{name: "a client file other users can read", cfg: Config{HTTPListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0"},
			setup: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, AdminConfigFile), []byte("token: "+strings.Repeat("x", 40)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: "is accessible to other users"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			cfg := tc.cfg
			cfg.DataDir, cfg.Logger = dir, slog.New(slog.DiscardHandler)
			done := make(chan error, 1)
			go func() { done <- Run(context.Background(), cfg) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(startTimeout):
				t.Fatal("Run did not return")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error with %q", err, tc.want)
			}
			noneLeft(t)
			storeIsClosed(t, dir)
		})
	}
}

// TestHTTPShutdownClosesBusyConnections: a request still in flight when
// the hub stops (a watch, a followed log) does not keep Run from
// returning, nor outlive it: after the shutdown timeout its connection
// is closed, and the API's part returns only then.
func TestHTTPShutdownClosesBusyConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	a := &apiServer{ln: ln, log: slog.New(slog.DiscardHandler), shutdownTimeout: 100 * time.Millisecond, srv: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(entered)
		<-r.Context().Done() // a stream that never ends on its own
	})}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-entered
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(startTimeout):
		t.Fatal("run did not return with a request in flight")
	}
	read := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 1))
		read <- err
	}()
	select {
	case err := <-read:
		if err == nil {
			t.Fatal("the busy connection still delivers")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the busy connection is still open after run returned")
	}
}
