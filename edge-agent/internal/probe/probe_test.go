package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func execProbe(cmd ...string) *api.Probe {
	return &api.Probe{ProbeHandler: api.ProbeHandler{Exec: &api.ExecAction{Command: cmd}}}
}

func httpProbe(a api.HTTPGetAction) *api.Probe {
	return &api.Probe{ProbeHandler: api.ProbeHandler{HTTPGet: &a}}
}

func tcpProbe(a api.TCPSocketAction) *api.Probe {
	return &api.Probe{ProbeHandler: api.ProbeHandler{TCPSocket: &a}}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	t.Cleanup(cancel)
	return ctx
}

// serverPort returns the port an httptest server listens on.
func serverPort(t *testing.T, s *httptest.Server) int32 {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return int32(p)
}

// freePort returns a local port nothing listens on.
func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return int32(port)
}

func TestRunExec(t *testing.T) {
	ex := newFakeExec()
	target := Target{ContainerID: "c1", Exec: ex}
	ctx := ctxFor(t)

	if r := Run(ctx, execProbe("ok", "arg"), target); !r.Success || r.Message != "" {
		t.Errorf("exit 0: %+v, want success", r)
	}
	if c := ex.last(); c.containerID != "c1" || strings.Join(c.argv, " ") != "ok arg" || c.timeout != DefaultTimeout {
		t.Errorf("Execer called with %+v, want c1, [ok arg], default timeout", c)
	}

	ex.set("bad", 2)
	r := Run(ctx, execProbe("bad"), target)
	if r.Success || !strings.Contains(r.Message, "exited with code 2") || !strings.Contains(r.Message, "output of bad") {
		t.Errorf("exit 2: %+v, want a failure naming the code and the output", r)
	}

	p := execProbe("slow")
	p.TimeoutSeconds = 7
	ex.errs["slow"] = fmt.Errorf("exec in c1: timed out: %w", context.DeadlineExceeded)
	r = Run(ctx, p, target)
	if r.Success || !strings.Contains(r.Message, "command timed out") {
		t.Errorf("timeout: %+v, want failure \"command timed out\"", r)
	}
	if got := ex.last().timeout; got != 7*time.Second {
		t.Errorf("Execer timeout %s, want timeoutSeconds 7s", got)
	}

	ex.errs["gone"] = errors.New("container has no running task")
	if r := Run(ctx, execProbe("gone"), target); r.Success || !strings.Contains(r.Message, "no running task") {
		t.Errorf("exec error: %+v, want a failure with the error", r)
	}
	if r := Run(ctx, execProbe("x"), Target{ContainerID: "c1"}); r.Success {
		t.Errorf("no Execer: %+v, want failure", r)
	}
	if r := Run(ctx, execProbe(), target); r.Success {
		t.Errorf("no command: %+v, want failure", r)
	}
}

func TestRunWithoutProbeOrHandler(t *testing.T) {
	if r := Run(ctxFor(t), nil, Target{}); !r.Success {
		t.Errorf("nil probe: %+v, want success", r)
	}
	if r := Run(ctxFor(t), &api.Probe{}, Target{}); r.Success || !strings.Contains(r.Message, "no handler") {
		t.Errorf("empty probe: %+v, want failure", r)
	}
}

func TestRunHTTP(t *testing.T) {
	var lastReq atomic.Pointer[http.Request]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastReq.Store(r.Clone(context.Background()))
		switch r.URL.Path {
		case "/same-host-redirect":
			http.Redirect(w, r, "/status/500", http.StatusFound)
			return
		}
		if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			n, _ := strconv.Atoi(code)
			w.WriteHeader(n)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	port := serverPort(t, srv)
	ports := map[string]int32{"http": port, "metrics": 9999}
	target := Target{ContainerID: "c1", Ports: ports} // Host empty: 127.0.0.1

	for _, tc := range []struct {
		name   string
		action api.HTTPGetAction
		ok     bool
		msg    string
	}{
		{"200", api.HTTPGetAction{Path: "/healthz", Port: api.FromInt(port)}, true, ""},
		{"399", api.HTTPGetAction{Path: "/status/399", Port: api.FromInt(port)}, true, ""},
		{"400", api.HTTPGetAction{Path: "/status/400", Port: api.FromInt(port)}, false, "statuscode: 400"},
		{"500", api.HTTPGetAction{Path: "/status/500", Port: api.FromInt(port)}, false, "statuscode: 500"},
		{"204", api.HTTPGetAction{Path: "/status/204", Port: api.FromInt(port)}, true, ""},
		{"named port", api.HTTPGetAction{Path: "/", Port: api.FromString("http")}, true, ""},
		{"number as string", api.HTTPGetAction{Path: "/", Port: api.FromString(strconv.Itoa(int(port)))}, true, ""},
		{"unknown named port", api.HTTPGetAction{Port: api.FromString("admin")}, false, `port "admin" is not a named port of the container (its named ports are http, metrics)`},
		{"port out of range", api.HTTPGetAction{Port: api.FromInt(70000)}, false, "out of range"},
		{"zero port", api.HTTPGetAction{}, false, "out of range"},
		{"bad scheme", api.HTTPGetAction{Port: api.FromInt(port), Scheme: "FTP"}, false, "scheme"},
		{"explicit host", api.HTTPGetAction{Host: "127.0.0.1", Port: api.FromInt(port), Scheme: "HTTP"}, true, ""},
		{"same-host redirect followed", api.HTTPGetAction{Path: "/same-host-redirect", Port: api.FromInt(port)}, false, "statuscode: 500"},
		{"nothing listening", api.HTTPGetAction{Port: api.FromInt(freePort(t))}, false, "connection refused"},
	} {
		r := Run(ctxFor(t), httpProbe(tc.action), target)
		if r.Success != tc.ok || (tc.msg != "" && !strings.Contains(r.Message, tc.msg)) {
			t.Errorf("%s: %+v, want success %v and a message with %q", tc.name, r, tc.ok, tc.msg)
		}
	}

	// Path with a query, headers, and a Host header.
	r := Run(ctxFor(t), httpProbe(api.HTTPGetAction{
		Path: "/ready?full=1",
		Port: api.FromInt(port),
		HTTPHeaders: []api.HTTPHeader{
			{Name: "X-Probe", Value: "yes"},
			{Name: "Host", Value: "app.example"},
		},
	}), target)
	req := lastReq.Load()
	if !r.Success || req.URL.Path != "/ready" || req.URL.RawQuery != "full=1" ||
		req.Header.Get("X-Probe") != "yes" || req.Host != "app.example" ||
		req.Header.Get("User-Agent") != userAgent || req.Header.Get("Accept") != "*/*" {
		t.Errorf("request with headers: result %+v, server saw %s %q host %q headers %v", r, req.Method, req.URL, req.Host, req.Header)
	}
	// A probe's own User-Agent wins.
	Run(ctxFor(t), httpProbe(api.HTTPGetAction{Port: api.FromInt(port), HTTPHeaders: []api.HTTPHeader{{Name: "user-agent", Value: "mine"}}}), target)
	if ua := lastReq.Load().Header.Get("User-Agent"); ua != "mine" {
		t.Errorf("User-Agent %q, want the probe's own", ua)
	}
}

func TestRunHTTPRedirectToAnotherHost(t *testing.T) {
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer other.Close()
	// Same port, other host name: "localhost" instead of 127.0.0.1.
	otherURL := "http://localhost:" + strconv.Itoa(int(serverPort(t, other))) + "/"
	srv := httptest.NewServer(http.RedirectHandler(otherURL, http.StatusFound))
	defer srv.Close()

	r := Run(ctxFor(t), httpProbe(api.HTTPGetAction{Port: api.FromInt(serverPort(t, srv))}), Target{})
	if !r.Success {
		t.Errorf("redirect to another host: %+v, want success (the redirect is the answer)", r)
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the redirect to another host was followed (%d requests)", n)
	}
}

func TestRunHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the plain HTTP attempt below
	srv.StartTLS()
	defer srv.Close()
	port := serverPort(t, srv)
	// The test server's certificate is self-signed: not verified.
	if r := Run(ctxFor(t), httpProbe(api.HTTPGetAction{Port: api.FromInt(port), Scheme: "HTTPS"}), Target{}); !r.Success {
		t.Errorf("HTTPS with a self-signed certificate: %+v, want success", r)
	}
	if r := Run(ctxFor(t), httpProbe(api.HTTPGetAction{Port: api.FromInt(port)}), Target{}); r.Success {
		t.Errorf("plain HTTP to an HTTPS server: %+v, want failure", r)
	}
}

func TestRunHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	r := Run(ctxFor(t), httpProbe(api.HTTPGetAction{Port: api.FromInt(serverPort(t, srv))}), Target{}) // timeoutSeconds 0: 1 s
	took := time.Since(start)
	if r.Success || !strings.Contains(r.Message, "timed out after 1s") {
		t.Errorf("hanging server: %+v, want a timeout failure", r)
	}
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("the probe took %s, want about the 1 s default timeout", took)
	}
}

func TestRunTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := int32(l.Addr().(*net.TCPAddr).Port)
	target := Target{Host: "127.0.0.1", Ports: map[string]int32{"db": port}}
	ctx := ctxFor(t)

	if r := Run(ctx, tcpProbe(api.TCPSocketAction{Port: api.FromInt(port)}), target); !r.Success {
		t.Errorf("listening port: %+v, want success", r)
	}
	if r := Run(ctx, tcpProbe(api.TCPSocketAction{Port: api.FromString("db")}), target); !r.Success {
		t.Errorf("named port: %+v, want success", r)
	}
	if r := Run(ctx, tcpProbe(api.TCPSocketAction{Port: api.FromString("web")}), Target{}); r.Success ||
		!strings.Contains(r.Message, `port "web" is not a named port`) || !strings.Contains(r.Message, "no named ports") {
		t.Errorf("unknown named port: %+v, want a failure naming it", r)
	}
	if r := Run(ctx, tcpProbe(api.TCPSocketAction{Port: api.FromInt(freePort(t))}), target); r.Success || !strings.Contains(r.Message, "connection refused") {
		t.Errorf("closed port: %+v, want failure", r)
	}
	// The probe's host wins over the target's.
	if r := Run(ctx, tcpProbe(api.TCPSocketAction{Host: "127.0.0.1", Port: api.FromInt(port)}), Target{Host: "localhost.invalid"}); !r.Success {
		t.Errorf("probe host: %+v, want success", r)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if r := Run(cctx, tcpProbe(api.TCPSocketAction{Port: api.FromInt(port)}), target); r.Success {
		t.Errorf("cancelled context: %+v, want failure", r)
	}
}

func TestResolvePort(t *testing.T) {
	named := map[string]int32{"web": 8080, "bad": 0}
	for _, tc := range []struct {
		port api.IntOrString
		want int
		err  string
	}{
		{api.FromInt(80), 80, ""},
		{api.FromString("web"), 8080, ""},
		{api.FromString("8081"), 8081, ""},
		{api.FromString("bad"), 0, "out of range"},
		{api.FromString("nope"), 0, `"nope" is not a named port`},
		{api.FromInt(-1), 0, "out of range"},
		{api.FromInt(65536), 0, "out of range"},
	} {
		got, err := resolvePort(tc.port, named)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("%v: %d, %v; want %d", tc.port, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: %d, %v; want an error with %q", tc.port, got, err, tc.err)
		}
	}
}

func TestProbeURL(t *testing.T) {
	for path, want := range map[string]string{
		"":             "http://127.0.0.1:80",
		"/healthz":     "http://127.0.0.1:80/healthz",
		"healthz":      "http://127.0.0.1:80/healthz",
		"/a?b=c&d=%2F": "http://127.0.0.1:80/a?b=c&d=%2F",
	} {
		if got := probeURL("http", "127.0.0.1", 80, path).String(); got != want {
			t.Errorf("path %q: %s, want %s", path, got, want)
		}
	}
	if got := probeURL("https", "::1", 443, "/x").String(); got != "https://[::1]:443/x" {
		t.Errorf("IPv6 host: %s", got)
	}
}
