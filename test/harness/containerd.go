package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
)

// runcRoot is where containerd's runc shim keeps runc state, per namespace,
// whatever the daemon's --state: every containerd on a host shares it.
const runcRoot = "/run/containerd/runc"

// containerdConfig is a minimal containerd configuration: no CRI plugin (it
// is slow to start and noisy), and the opt plugin kept inside the directory.
const containerdConfig = `version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`

// Containerd is a containerd daemon whose root, state and socket live under
// one directory. Its container shims are separate processes that survive
// Stop and Restart, as on a real board; Close removes everything.
type Containerd struct {
	Dir    string
	Socket string
	Root   string
	State  string
	Config string

	bin string

	mu         sync.Mutex
	proc       *Process
	namespaces map[string]bool // seen by Cleanup and KillShims
}

// StartContainerd starts containerd under dir and returns once it answers
// its health check.
func StartContainerd(ctx context.Context, dir string) (*Containerd, error) {
	bin, err := FindBinary("containerd")
	if err != nil {
		return nil, err
	}
	for _, b := range []string{"containerd-shim-runc-v2", "runc"} {
		if _, err := FindBinary(b); err != nil {
			return nil, err
		}
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("containerd dir: %w", err)
	}
	c := &Containerd{
		Dir:    dir,
		Socket: filepath.Join(dir, "containerd.sock"),
		Root:   filepath.Join(dir, "root"),
		State:  filepath.Join(dir, "state"),
		Config: filepath.Join(dir, "config.toml"),
		bin:    bin,
	}
	// A unix socket path is limited to 108 bytes.
	if len(c.Socket) >= 100 {
		return nil, fmt.Errorf("containerd socket path %s is too long for a unix socket; use a shorter dir", c.Socket)
	}
	for _, d := range []string{c.Root, c.State, filepath.Join(dir, "opt")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("containerd dir: %w", err)
		}
	}
	cfg := fmt.Sprintf(containerdConfig, filepath.Join(dir, "opt"))
	if err := os.WriteFile(c.Config, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("containerd config: %w", err)
	}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// start runs the daemon and waits for its health check.
func (c *Containerd) start(ctx context.Context) error {
	p, err := StartProcess("containerd", filepath.Join(c.Dir, "containerd.log"), c.bin,
		"--config", c.Config, "--root", c.Root, "--state", c.State, "--address", c.Socket)
	if err != nil {
		return err
	}
	if err := p.WaitReady(ctx, c.serving); err != nil {
		p.Stop()
		return err
	}
	c.mu.Lock()
	c.proc = p
	c.mu.Unlock()
	return nil
}

// serving asks containerd's health service.
func (c *Containerd) serving(ctx context.Context) error {
	if err := DialCheck("unix", c.Socket)(ctx); err != nil {
		return err
	}
	client, err := containerd.New(c.Socket, containerd.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	ok, err := client.IsServing(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("containerd health: not serving")
	}
	return nil
}

// Process is the current daemon process (it changes on Restart).
func (c *Containerd) Process() *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc
}

// Pid is the current daemon's process ID.
func (c *Containerd) Pid() int { return c.Process().Pid() }

// LogPath is the daemon's log file, shared by its restarts.
func (c *Containerd) LogPath() string { return filepath.Join(c.Dir, "containerd.log") }

// Logs returns the tail of the daemon's log.
func (c *Containerd) Logs() string { return tailFile(c.LogPath(), logTail) }

// Stop stops the daemon. Shims and their containers keep running.
func (c *Containerd) Stop() error {
	return c.Process().Stop()
}

// Restart stops the daemon and starts it again on the same directories, as
// a board does when containerd is upgraded or crashes.
func (c *Containerd) Restart(ctx context.Context) error {
	if err := c.Stop(); err != nil {
		return fmt.Errorf("restart containerd: %w", err)
	}
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("restart containerd: %w", err)
	}
	return nil
}

// Cleanup kills every task and deletes every container (with its snapshot)
// in every namespace. The daemon must be running.
func (c *Containerd) Cleanup(ctx context.Context) error {
	client, err := containerd.New(c.Socket, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("cleanup containerd: %w", err)
	}
	defer client.Close()
	nss, err := client.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("cleanup containerd: list namespaces: %w", err)
	}
	c.noteNamespaces(nss...)
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := client.Containers(nctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list containers in %s: %w", ns, err))
			continue
		}
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("delete task %s/%s: %w", ns, ctr.ID(), err))
				}
			}
			if err := ctr.Delete(nctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete container %s/%s: %w", ns, ctr.ID(), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cleanup containerd: %w", err)
	}
	return nil
}

// KillShims kills the containerd-shim-runc-v2 processes serving this
// daemon's socket and the containers under them, then removes what runc
// keeps for those containers outside Dir: its state under
// /run/containerd/runc/<namespace> (shared by every containerd on the host)
// and their cgroups. It is the last resort of teardown, for shims that
// Cleanup could not reach.
func (c *Containerd) KillShims() error {
	shims, err := c.shims()
	if err != nil {
		return err
	}
	if len(shims) == 0 {
		return nil
	}
	var errs []error
	// runc delete --force kills the container and removes its state and
	// cgroups, as the shim would have.
	if runc, err := FindBinary("runc"); err == nil {
		for _, s := range shims {
			if s.namespace == "" || s.id == "" {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
			out, err := exec.CommandContext(ctx, runc, "--root", filepath.Join(runcRoot, s.namespace),
				"delete", "--force", s.id).CombinedOutput()
			cancel()
			if err != nil && !strings.Contains(string(out), "does not exist") {
				errs = append(errs, fmt.Errorf("runc delete %s/%s: %w: %s", s.namespace, s.id, err, out))
			}
		}
	}
	pids := make([]int, 0, len(shims))
	for _, s := range shims {
		pids = append(pids, s.pid)
	}
	children, err := childPids(pids)
	if err != nil {
		return err
	}
	var cgroups []string
	for _, pid := range children {
		cgroups = append(cgroups, processCgroups(pid)...)
	}
	all := append(children, pids...)
	for _, pid := range all {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill shim process %d: %w", pid, err))
		}
	}
	if err := waitGone(all, StopTimeout); err != nil {
		return errors.Join(append(errs, err)...)
	}
	errs = append(errs, removeCgroups(cgroups))
	return errors.Join(errs...)
}

// Close tears everything down: containers (if the daemon answers), the
// daemon, leftover shims, and mounts under Dir. It does not remove Dir.
func (c *Containerd) Close(ctx context.Context) error {
	var errs []error
	if p := c.Process(); p != nil {
		select {
		case <-p.Exited():
		default:
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := c.Cleanup(cctx); err != nil {
				errs = append(errs, err)
			}
			cancel()
		}
		if err := p.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.KillShims(); err != nil {
		errs = append(errs, err)
	}
	if err := unmountUnder(c.Dir); err != nil {
		errs = append(errs, err)
	}
	// runc leaves each namespace's parent cgroup behind; remove the empty
	// ones this daemon used.
	c.mu.Lock()
	var nsCgroups []string
	for ns := range c.namespaces {
		nsCgroups = append(nsCgroups, "/"+ns)
	}
	c.mu.Unlock()
	if err := removeCgroups(nsCgroups); err != nil {
		errs = append(errs, err)
	}
	for _, ns := range nsCgroups {
		// Empty runc state directories only; ENOTEMPTY means in use.
		if err := syscall.Rmdir(filepath.Join(runcRoot, ns)); err != nil &&
			!errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("remove runc state dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Shims returns the process IDs of the containerd-shim-runc-v2 processes
// whose -address is this daemon's socket.
func (c *Containerd) Shims() ([]int, error) {
	procs, err := c.shims()
	pids := make([]int, 0, len(procs))
	for _, p := range procs {
		pids = append(pids, p.pid)
	}
	return pids, err
}

// shimProc is one shim: its pid and the task it serves.
type shimProc struct {
	pid           int
	namespace, id string
}

func (c *Containerd) shims() ([]shimProc, error) {
	var out []shimProc
	err := eachProc(func(pid int) {
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil {
			return
		}
		argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(argv[0]) != "containerd-shim-runc-v2" {
			return
		}
		var address string
		sp := shimProc{pid: pid}
		for i := 0; i+1 < len(argv); i++ {
			switch strings.TrimLeft(argv[i], "-") {
			case "address":
				address = argv[i+1]
			case "namespace":
				sp.namespace = argv[i+1]
			case "id":
				sp.id = argv[i+1]
			}
		}
		if address == c.Socket {
			out = append(out, sp)
			if sp.namespace != "" {
				c.noteNamespaces(sp.namespace)
			}
		}
	})
	return out, err
}

// noteNamespaces remembers namespaces whose cgroups Close removes.
func (c *Containerd) noteNamespaces(nss ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.namespaces == nil {
		c.namespaces = map[string]bool{}
	}
	for _, ns := range nss {
		c.namespaces[ns] = true
	}
}

// eachProc calls fn for every process ID in /proc.
func eachProc(fn func(pid int)) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("read /proc: %w", err)
	}
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			fn(pid)
		}
	}
	return nil
}

// childPids returns the direct children of parents.
func childPids(parents []int) ([]int, error) {
	want := make(map[int]bool, len(parents))
	for _, p := range parents {
		want[p] = true
	}
	var out []int
	err := eachProc(func(pid int) {
		raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return
		}
		// The command name, in parentheses, may hold spaces: fields start
		// after the last ')'.
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 {
			return
		}
		fields := strings.Fields(string(raw[i+1:]))
		if len(fields) < 2 {
			return
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil && want[ppid] {
			out = append(out, pid)
		}
	})
	return out, err
}

// waitGone polls until none of pids is alive (or only zombies remain).
func waitGone(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		alive := 0
		for _, pid := range pids {
			if processAlive(pid) {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d killed processes still alive after %s", alive, len(pids), timeout)
		}
		time.Sleep(pollInterval)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 || i+2 >= len(raw) {
		return false
	}
	return raw[i+2] != 'Z'
}

// unmountUnder detaches every mount below dir, deepest first, so that the
// directory can be removed after a shim was killed with its rootfs mounted.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for space...).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
