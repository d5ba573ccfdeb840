// Package harness starts the real daemons Flotilla's end-to-end tests and
// quick start need (containerd, an OCI registry, Mosquitto) as child
// processes with their files under one directory, waits until each is
// really serving (by dialling or asking it, within a bounded deadline), and
// stops them cleanly. It does not depend on package testing, so a command can
// use it as well as TestMain.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts for starting and stopping daemons.
const (
	// ReadyTimeout bounds the wait for a daemon to serve.
	ReadyTimeout = 30 * time.Second
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout = 10 * time.Second
	// pollInterval spaces readiness checks.
	pollInterval = 25 * time.Millisecond
	// logTail is how much of a log Logs returns.
	logTail = 16 << 10
)

// ErrMissingBinary is wrapped by FindBinary when a daemon is not installed.
var ErrMissingBinary = errors.New("binary not found")

// aptPackage names the Debian package that ships each binary the harness
// runs.
func aptPackage(name string) string {
	switch name {
	case "containerd", "containerd-shim-runc-v2", "ctr":
		return "containerd"
	case "busybox":
		return "busybox-static"
	case "ip":
		return "iproute2"
	case "nft":
		return "nftables"
	case "nsenter":
		return "util-linux"
	}
	return name // runc, docker-registry, mosquitto
}

// FindBinary returns the path of an executable, looking in PATH and then in
// the sbin directories (which a non-login PATH may lack). The error names
// the Debian package to install.
func FindBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH: apt-get install %s: %w", name, aptPackage(name), ErrMissingBinary)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Process is a daemon started by the harness, in its own process group, with
// stdout and stderr appended to its log file.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *os.File

	done    chan struct{} // closed when the process has been reaped
	waitErr error         // valid after done

	stopOnce sync.Once
	stopErr  error
}

// startProcess starts bin with args in a new process group, appending its
// output to logPath.
func StartProcess(name, logPath, bin string, args ...string) (*Process, error) {
	return startProcess(false, nil, name, logPath, bin, args...)
}

// StartProcessEnv is StartProcess with env (KEY=value) added to the
// caller's environment, for settings meant for this process only (such as
// GODEBUG or GOMEMLIMIT for one Go daemon).
func StartProcessEnv(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	return startProcess(false, env, name, logPath, bin, args...)
}

// StartTiedProcess is StartProcess for a process that must not outlive
// the caller: the kernel kills it if the caller dies (a test binary killed
// by its timeout leaves no hub or agent behind).
func StartTiedProcess(name, logPath, bin string, args ...string) (*Process, error) {
	return startProcess(true, nil, name, logPath, bin, args...)
}

func startProcess(tied bool, env []string, name, logPath, bin string, args ...string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", name, err)
	}
	fmt.Fprintf(logFile, "=== harness: %s %s\n", strings.Join(append(env[:len(env):len(env)], bin), " "), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(withSbinPath(os.Environ()), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if tied {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, log: logFile, done: make(chan struct{})}
	// The reaper is owned by the Process: it ends when the child exits,
	// which Stop guarantees.
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// withSbinPath makes sure PATH holds the sbin directories, where runc and
// mosquitto live on Debian.
func withSbinPath(env []string) []string {
	const sbin = "/usr/local/sbin:/usr/sbin:/sbin"
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			found = true
			kv = "PATH=" + v + ":" + sbin
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "PATH=/usr/local/bin:/usr/bin:/bin:"+sbin)
	}
	return out
}

// Pid is the daemon's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// LogPath is the file the daemon's output goes to.
func (p *Process) LogPath() string { return p.logPath }

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Logs returns the tail of the daemon's log, for printing when a test fails.
func (p *Process) Logs() string { return tailFile(p.logPath, logTail) }

// Stop sends SIGTERM to the process group, waits up to StopTimeout, then
// sends SIGKILL and waits. It returns nil for a daemon that stopped on
// signal; calling it again returns the first result.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *Process) stop() error {
	select {
	case <-p.done:
		return p.exitError()
	default:
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: SIGTERM: %w", p.name, err)
	}
	timer := time.NewTimer(StopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: SIGKILL: %w", p.name, err)
	}
	timer.Reset(StopTimeout)
	select {
	case <-p.done:
		return fmt.Errorf("stop %s: ignored SIGTERM for %s, killed", p.name, StopTimeout)
	case <-timer.C:
		return fmt.Errorf("stop %s: still running %s after SIGKILL", p.name, StopTimeout)
	}
}

// exitError describes an exit that happened before Stop was asked for.
func (p *Process) exitError() error {
	if p.waitErr != nil {
		return fmt.Errorf("%s exited on its own: %w", p.name, p.waitErr)
	}
	return fmt.Errorf("%s exited on its own", p.name)
}

// WaitReady polls check until it succeeds, the process exits, ctx ends or
// ReadyTimeout passes. The error carries the last check error and the tail
// of the daemon's log.
func (p *Process) WaitReady(ctx context.Context, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s: %w before it was ready (last check: %v)\n%s", p.name, p.exitError(), last, p.Logs())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last check: %v)\n%s", p.name, ctx.Err(), last, p.Logs())
		case <-ticker.C:
		}
	}
}

// tailFile returns at most n bytes from the end of path.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	off := max(fi.Size()-n, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	s := string(b)
	if off > 0 {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		s = "...\n" + s
	}
	return s
}

// DialCheck succeeds once network/addr accepts a connection.
func DialCheck(network, addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
}

// Kill sends SIGKILL to the process group at once and waits for the exit,
// as a power cut or an OOM kill would end a daemon.
func (p *Process) Kill() error {
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(StopTimeout):
		return fmt.Errorf("kill %s: still running %s after SIGKILL", p.name, StopTimeout)
	}
}
