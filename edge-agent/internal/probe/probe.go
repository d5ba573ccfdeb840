// Package probe runs Kubernetes container probes (exec, httpGet, tcpSocket)
// on the edge agent's board, and tracks for each running container the state
// the kubelet derives from them: Started (startup probe), Ready (readiness
// probe) and LivenessFailed (liveness or startup probe past its failure
// threshold). It never talks to containerd itself: exec probes go through
// the small Execer interface, which the runtime adapter satisfies.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Kubernetes' defaults for a probe's zero fields, and the host probed when
// neither the probe nor the target names one (pods use the host network).
const (
	DefaultTimeout          = time.Second
	DefaultPeriod           = 10 * time.Second
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
	DefaultHost             = "127.0.0.1"
)

const (
	// execGrace is how long past the probe's timeout an Execer may take to
	// kill the command and clean up before Run gives up on it.
	execGrace = 10 * time.Second
	// maxMessage bounds the command output quoted in a failure message.
	maxMessage = 1024
	// maxRedirects is how many same-host redirects an HTTP probe follows.
	maxRedirects = 10
	userAgent    = "flotilla-probe/1"
)

// Execer runs a command in a running container, as the runtime adapter
// does. It must kill the command once timeout has passed and then return
// an error wrapping context.DeadlineExceeded.
type Execer interface {
	Exec(ctx context.Context, containerID string, argv []string, timeout time.Duration) (exitCode int, output []byte, err error)
}

// Target is what a probe is run against.
type Target struct {
	ContainerID string
	// Host is probed by httpGet and tcpSocket probes that name no host;
	// empty means DefaultHost, since pods use the host network.
	Host string
	// Ports maps the container's named ports to their numbers, for probes
	// whose port is a name.
	Ports map[string]int32
	// Exec runs exec probes; without it they fail.
	Exec Execer
}

// Result is the outcome of one probe attempt. Message says why it failed
// (or, rarely, warns about a success).
type Result struct {
	Success bool
	Message string
}

// Run makes one attempt of p against t, bounded by p's timeoutSeconds:
//   - exec: the command exits with 0;
//   - httpGet: GET {scheme}://{host}:{port}{path} answers with a status from
//     200 to 399. Redirects are followed on the same host only; a redirect
//     to another host is itself the (successful) answer. HTTPS
//     certificates are not verified, as the kubelet does not.
//   - tcpSocket: a TCP connection opens.
//
// A nil probe succeeds. Run never returns an error: every problem,
// including a cancelled ctx, is a failed Result whose Message says why.
func Run(ctx context.Context, p *api.Probe, t Target) Result {
	if p == nil {
		return Result{Success: true}
	}
	timeout := seconds(p.TimeoutSeconds, DefaultTimeout)
	switch {
	case p.Exec != nil:
		return runExec(ctx, p.Exec, t, timeout)
	case p.HTTPGet != nil:
		return runHTTP(ctx, p.HTTPGet, t, timeout)
	case p.TCPSocket != nil:
		return runTCP(ctx, p.TCPSocket, t, timeout)
	}
	return failure("probe has no handler: set exec, httpGet or tcpSocket")
}

func failure(format string, args ...any) Result {
	return Result{Message: fmt.Sprintf(format, args...)}
}

// seconds turns a probe's seconds field into a duration, def if not set.
func seconds(n int32, def time.Duration) time.Duration {
	if n <= 0 {
		return def
	}
	return time.Duration(n) * time.Second
}

func runExec(ctx context.Context, a *api.ExecAction, t Target, timeout time.Duration) Result {
	if len(a.Command) == 0 {
		return failure("exec probe has no command")
	}
	if t.Exec == nil {
		return failure("exec probe %q: no runtime to exec in", a.Command)
	}
	// The Execer enforces timeout itself; this bound only covers an Execer
	// that hangs.
	ctx, cancel := context.WithTimeout(ctx, timeout+execGrace)
	defer cancel()
	code, out, err := t.Exec.Exec(ctx, t.ContainerID, a.Command, timeout)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return failure("command timed out after %s: %q", timeout, a.Command)
	case errors.Is(err, context.Canceled):
		return failure("exec probe %q cancelled", a.Command)
	case err != nil:
		return failure("exec probe %q: %v", a.Command, err)
	case code != 0:
		return failure("command %q exited with code %d%s", a.Command, code, quoteOutput(out))
	}
	return Result{Success: true}
}

// quoteOutput renders a command's output for a message, trimmed and
// bounded.
func quoteOutput(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	if len(s) > maxMessage {
		s = s[:maxMessage] + "…"
	}
	return ": " + s
}

func runHTTP(ctx context.Context, a *api.HTTPGetAction, t Target, timeout time.Duration) Result {
	port, err := resolvePort(a.Port, t.Ports)
	if err != nil {
		return failure("HTTP probe: %v", err)
	}
	scheme := strings.ToLower(a.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	if scheme != "http" && scheme != "https" {
		return failure("HTTP probe: scheme %q is not HTTP or HTTPS", a.Scheme)
	}
	target := probeURL(scheme, host(a.Host, t.Host), port, a.Path)

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return failure("HTTP probe: %v", err)
	}
	headers := http.Header{}
	for _, h := range a.HTTPHeaders {
		headers.Add(h.Name, h.Value)
	}
	if _, ok := headers["User-Agent"]; !ok {
		headers.Set("User-Agent", userAgent)
	}
	if _, ok := headers["Accept"]; !ok {
		headers.Set("Accept", "*/*")
	}
	if h := headers.Get("Host"); h != "" {
		req.Host = h
		headers.Del("Host")
	}
	req.Header = headers

	transport := &http.Transport{
		Proxy:       nil, // probes go straight to the container
		DialContext: (&net.Dialer{Timeout: timeout}).DialContext,
		// The kubelet does not verify the certificates of the containers
		// it probes: they are usually self-signed.
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, CheckRedirect: sameHostRedirects}
	resp, err := client.Do(req)
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return failure("HTTP probe timed out after %s: GET %s", timeout, target)
		case errors.Is(err, context.Canceled):
			return failure("HTTP probe cancelled: GET %s", target)
		}
		return failure("HTTP probe failed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return failure("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	if resp.StatusCode >= 300 {
		return Result{Success: true, Message: fmt.Sprintf("HTTP probe stopped at a redirect to another host (statuscode: %d)", resp.StatusCode)}
	}
	return Result{Success: true}
}

// probeURL builds the probe's URL as the kubelet does: path may carry a
// query.
func probeURL(scheme, host string, port int, path string) *url.URL {
	u, err := url.Parse(path)
	if err != nil {
		u = &url.URL{Path: path}
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	if u.Path != "" && !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	return u
}

// sameHostRedirects follows redirects on the probed host only, as the
// kubelet does; a redirect elsewhere ends the probe with the redirect's
// status.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	return nil
}

func runTCP(ctx context.Context, a *api.TCPSocketAction, t Target, timeout time.Duration) Result {
	port, err := resolvePort(a.Port, t.Ports)
	if err != nil {
		return failure("TCP probe: %v", err)
	}
	addr := net.JoinHostPort(host(a.Host, t.Host), strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return failure("TCP probe timed out after %s: %s", timeout, addr)
		case errors.Is(err, context.Canceled):
			return failure("TCP probe cancelled: %s", addr)
		}
		return failure("TCP probe failed: %v", err)
	}
	conn.Close()
	return Result{Success: true}
}

// host picks the probe's own host, else the target's, else DefaultHost.
func host(probeHost, targetHost string) string {
	switch {
	case probeHost != "":
		return probeHost
	case targetHost != "":
		return targetHost
	}
	return DefaultHost
}

// resolvePort turns a probe's port into a number: an integer is itself; a
// string is one of the container's named ports or, as the kubelet allows,
// a number written as a string.
func resolvePort(p api.IntOrString, named map[string]int32) (int, error) {
	port := int(p.IntVal)
	if p.IsString {
		if n, ok := named[p.StrVal]; ok {
			port = int(n)
		} else if n, err := strconv.Atoi(p.StrVal); err == nil {
			port = n
		} else {
			names := make([]string, 0, len(named))
			for name := range named {
				names = append(names, name)
			}
			slices.Sort(names)
			known := "the container has no named ports"
			if len(names) > 0 {
				known = "its named ports are " + strings.Join(names, ", ")
			}
			return 0, fmt.Errorf("port %q is not a named port of the container (%s)", p.StrVal, known)
		}
	}
	if port < 1 || port > 65535 {
		return 0, fmt.Errorf("port %d is out of range 1-65535", port)
	}
	return port, nil
}
