package harness_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/remotes/docker"

	"github.com/flotilla-edge/flotilla/test/harness"
	"github.com/flotilla-edge/flotilla/test/images"
)

func TestFindBinary(t *testing.T) {
	if _, err := harness.FindBinary("sh"); err != nil {
		t.Errorf("sh: %v", err)
	}
	_, err := harness.FindBinary("flotilla-no-such-daemon")
	if !errors.Is(err, harness.ErrMissingBinary) || !strings.Contains(err.Error(), "apt-get install") {
		t.Errorf("missing binary: %v", err)
	}
	_, err = harness.FindBinary("containerd-shim-runc-v2")
	if err != nil && !strings.Contains(err.Error(), "apt-get install containerd") {
		t.Errorf("shim error does not name the package: %v", err)
	}
}

func TestRegistryPush(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	reg, err := harness.StartRegistry(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, reg.Process)

	img, err := images.BuildBusybox(goruntime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := images.Push(ctx, img, reg.Addr+"/test/busybox:v1")
	if err != nil {
		t.Fatal(err)
	}
	if got := manifestDigest(t, reg.Addr, "test/busybox", "v1"); got != digest {
		t.Errorf("registry has %s, pushed %s", got, digest)
	}
	// The same busybox gives the same digest: the image is reproducible.
	img2, _ := images.BuildBusybox(goruntime.GOARCH)
	if d2, _ := img2.Digest(); d2.String() != digest {
		t.Errorf("rebuild digest %s, want %s", d2, digest)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.Architecture != goruntime.GOARCH || cfg.Config.Cmd[0] != "sh" || cfg.Config.Env[0] != images.DefaultPath {
		t.Errorf("config %+v", cfg)
	}

	// A multi-arch index; the foreign arch reuses the host binary, which is
	// enough to test the index's shape.
	arm, err := images.BuildBusybox("arm/v7", images.WithBusybox(images.HostBusybox))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := images.Index(img, arm)
	if err != nil {
		t.Fatal(err)
	}
	idxDigest, err := images.PushIndex(ctx, idx, reg.Addr+"/test/multi:v1")
	if err != nil {
		t.Fatal(err)
	}
	if got := manifestDigest(t, reg.Addr, "test/multi", "v1"); got != idxDigest {
		t.Errorf("registry has index %s, pushed %s", got, idxDigest)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 || im.Manifests[1].Platform.Variant != "v7" {
		t.Errorf("index manifests %+v", im.Manifests)
	}
	if _, err := images.BuildBusybox("arm64"); err == nil && goruntime.GOARCH != "arm64" {
		t.Error("a foreign arch without a busybox path was accepted")
	}

	if err := reg.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	assertGone(t, reg.Pid())
}

func TestMosquitto(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	m, err := harness.StartMosquitto(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, m.Process)
	if !strings.HasPrefix(m.URL, "tcp://127.0.0.1:") {
		t.Errorf("URL %q", m.URL)
	}
	// An MQTT 3.1.1 CONNECT must get a CONNACK accepting it.
	conn, err := net.DialTimeout("tcp", m.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	clientID := "harness-test"
	var payload []byte
	payload = append(payload, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 30) // protocol, level 4, clean session, keepalive 30
	payload = append(payload, 0, byte(len(clientID)))
	payload = append(payload, clientID...)
	packet := append([]byte{0x10, byte(len(payload))}, payload...)
	if _, err := conn.Write(packet); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		t.Errorf("CONNACK % x, want 20 02 00 00", ack)
	}
	conn.Close()

	if err := m.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	assertGone(t, m.Pid())
}

func TestContainerd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: containerd runs as root")
	}
	ctx := ctxFor(t, 2*time.Minute)
	dir, err := os.MkdirTemp("", "flotilla-h-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	ctd, err := harness.StartContainerd(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd ready in %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerd log (%s):\n%s", ctd.LogPath(), ctd.Logs())
		}
	})
	defer func() {
		if err := ctd.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	version := func() string {
		t.Helper()
		c, err := containerd.New(ctd.Socket, containerd.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		v, err := c.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v.Version
	}
	t.Logf("containerd %s", version())
	if !strings.Contains(readFile(t, ctd.Config), "io.containerd.grpc.v1.cri") {
		t.Error("config does not disable CRI")
	}
	first := ctd.Pid()
	start = time.Now()
	if err := ctd.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd restarted in %s", time.Since(start).Round(time.Millisecond))
	if ctd.Pid() == first {
		t.Error("same pid after Restart")
	}
	assertGone(t, first)
	version()
	if err := ctd.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	assertGone(t, ctd.Pid())
	if _, err := os.Stat(filepath.Join(dir, "containerd.log")); err != nil {
		t.Error(err)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// stopOnCleanup stops p when the test ends and prints its log if the test
// failed.
func stopOnCleanup(t *testing.T, p *harness.Process) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log (%s):\n%s", p.LogPath(), p.Logs())
		}
		p.Stop()
	})
}

func manifestDigest(t *testing.T, addr, repo, tag string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, fmt.Sprintf("http://%s/v2/%s/manifests/%s", addr, repo, tag), nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD manifest %s:%s: %s", repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// assertGone checks that pid no longer runs (it may linger as a zombie
// only if nobody reaped it, which the harness does).
func assertGone(t *testing.T, pid int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "State:") && !strings.Contains(sc.Text(), "Z") {
			t.Errorf("process %d still running: %s", pid, sc.Text())
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestContainerdShimsSurviveStop runs a container, stops containerd (its
// shim and container must live on, as on a board), then Close must leave no
// shim, container process or mount behind.
func TestContainerdShimsSurviveStop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: containerd runs as root")
	}
	ctx := ctxFor(t, 2*time.Minute)
	reg, err := harness.StartRegistry(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, reg.Process)
	img, err := images.BuildBusybox(goruntime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Addr + "/test/busybox:v1"
	if _, err := images.Push(ctx, img, ref); err != nil {
		t.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "flotilla-h-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctd, err := harness.StartContainerd(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			ctd.Close(context.Background())
		}
	}()

	client, err := containerd.New(ctd.Socket, containerd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// runc state lives under /run/containerd/runc/<namespace>/<id> for
	// every containerd on the host: keep this test's names unique.
	ns, id := fmt.Sprintf("harness-test-%d", os.Getpid()), "sleeper"
	nctx := namespaces.WithNamespace(ctx, ns)
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts)),
	})
	image, err := client.Pull(nctx, ref, containerd.WithPullUnpack, containerd.WithResolver(resolver))
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := client.NewContainer(nctx, id,
		containerd.WithNewSnapshot(id, image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "1000")))
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.NewTask(nctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(nctx); err != nil {
		t.Fatal(err)
	}
	containerPid := int(task.Pid())

	if err := ctd.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	shims, err := ctd.Shims()
	if err != nil || len(shims) != 1 {
		t.Fatalf("shims after containerd Stop: %v, %v; want one", shims, err)
	}
	if !alive(containerPid) {
		t.Fatal("container died with containerd")
	}

	closed = true
	if err := ctd.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if shims, _ := ctd.Shims(); len(shims) != 0 {
		t.Errorf("shims after Close: %v", shims)
	}
	if alive(containerPid) {
		t.Errorf("container process %d alive after Close", containerPid)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir+"/") {
		t.Errorf("mounts left under %s", dir)
	}
	if _, err := os.Stat(filepath.Join("/run/containerd/runc", ns, id)); !os.IsNotExist(err) {
		t.Errorf("runc state left for %s/%s: %v", ns, id, err)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", ns)); err == nil {
		t.Errorf("cgroup left for namespace %s", ns)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func TestReadProc(t *testing.T) {
	st, err := harness.ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS <= 0 || st.Peak < st.RSS || st.Anon <= 0 || st.File <= 0 || st.Anon+st.File > st.RSS+st.RSS/10 || st.Threads < 1 {
		t.Fatalf("implausible figures for this process: %+v", st)
	}
	// Spinning must show up as CPU time (in ticks of 10 ms), however busy
	// the machine is.
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, err := harness.ReadProc(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after.CPU > st.CPU {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning left CPU time at %s", after.CPU)
		}
		for spin := time.Now(); time.Since(spin) < 20*time.Millisecond; {
		}
	}
	if _, err := harness.ReadProc(-1); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
