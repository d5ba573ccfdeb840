package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	eventsapi "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl/v2"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
	"github.com/flotilla-edge/flotilla/test/images"
)

// The site of issue 15's end-to-end tests:
//
//	host        the hub (embedded broker on every address), the registry,
//	            containerd; the end of the site's uplink (harness.Site,
//	            a /30 of 198.18.0.0/15)
//	router      the site's namespace: its uplink, and the LAN's bridge
//	            192.168.77.1/24; it masquerades the LAN towards the host
//	board1..n   a namespace each on the LAN, 192.168.77.11.., each with
//	            its own agent (--node-ip its LAN address, the site's
//	            zone label), started with nsenter --net so that the pod
//	            namespaces it binds under its state directory are the
//	            host's mounts, which containerd and runc see
//	laptop      a namespace on the LAN, 192.168.77.100, with no agent
//
// One containerd, on the host, serves every board, each agent in its own
// containerd namespace, as the other end-to-end tests share it: a
// container joins its pod's namespace by the path of its bind mount, in
// whichever network namespace the shim runs. Cutting the uplink (taking
// its host end down) cuts every board off the hub and the registry
// while the LAN, and everything on it, keeps working.
const (
	lanPrefix = "192.168.77.0/24"
	// webNodePort is the manifest pair's NodePort.
	webNodePort = 30080
)

// netSite is that site.
type netSite struct {
	t      *testing.T
	hub    *hubProc
	uplink *harness.Site
	lan    *harness.LAN
	zone   string
	boards []*board
	laptop *harness.LANHost
	// image serves HTTP on port 80, its page the pod's hostname (its
	// name), as seen from the boards.
	image string
}

// board is one board of the site.
type board struct {
	host  *harness.LANHost
	agent *agentProc
	name  string // its node name
}

// startNetSite makes the site with n boards, their nodes Ready with a pod
// CIDR each.
func startNetSite(t *testing.T, n int) *netSite {
	t.Helper()
	s := &netSite{t: t, hub: offlineHub(t), uplink: startSite(t)}
	s.zone = s.uplink.Name
	var err error
	if s.lan, err = harness.NewLAN(s.uplink, lanPrefix); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.lan.Close() })
	s.image = webImage(t, s.uplink)
	lan := netip.MustParsePrefix(lanPrefix).Addr()
	for i := range n {
		host, err := s.lan.Join(fmt.Sprintf("%s-b%d", s.uplink.Name, i+1), addrAdd(lan, 11+i))
		if err != nil {
			t.Fatal(err)
		}
		s.boards = append(s.boards, s.startBoard(host))
	}
	if s.laptop, err = s.lan.Join(s.uplink.Name+"-lap", addrAdd(lan, 100)); err != nil {
		t.Fatal(err)
	}
	for _, b := range s.boards {
		eventually(t, 20*time.Second, "node "+b.name+" has a pod CIDR and its address", func() error {
			nd := s.hub.node(b.name)
			if nd.Spec.PodCIDR == "" || !slices.ContainsFunc(nd.Status.Addresses, func(a api.NodeAddress) bool {
				return a.Type == "InternalIP" && a.Address == b.host.IP.String()
			}) {
				return fmt.Errorf("spec %+v, addresses %+v", nd.Spec, nd.Status.Addresses)
			}
			return nil
		})
	}
	return s
}

func addrAdd(a netip.Addr, n int) netip.Addr {
	for range n {
		a = a.Next()
	}
	return a
}

// startBoard runs an agent on host, reaching the hub through the uplink.
func (s *netSite) startBoard(host *harness.LANHost) *board {
	t := s.t
	t.Helper()
	_, port, _ := strings.Cut(strings.TrimPrefix(s.hub.MQTT, "tcp://127.0.0.1"), ":")
	node := uniq("board-")
	a := &agentProc{t: t, hub: s.hub, node: node, ns: "e2e-" + node, stateDir: filepath.Join(env.dir, node)}
	a.logPath = filepath.Join(env.dir, node+".log")
	a.bin, a.args = host.Wrap(env.agentBin,
		"--broker", "tcp://"+s.uplink.HostIP+":"+port, "--node-name", node,
		"--label", "topology.kubernetes.io/zone="+s.zone,
		"--node-ip", host.IP.String(),
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", siteRegistry(s.uplink),
		"--heartbeat-interval", "1s", "--resync-interval", "2s", "--mqtt-keepalive", "2s",
	)
	a.start()
	b := &board{host: host, agent: a, name: node}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", a.node, a.proc.Logs())
		}
		_ = a.proc.Stop()
		removeAll(t, a.ns)
		// The pods' network namespaces, bound under the state directory.
		if err := harness.UnmountUnder(a.stateDir); err != nil {
			t.Errorf("board %s: %v", node, err)
		}
	})
	eventually(t, 30*time.Second, "node "+node+" Ready", func() error {
		if !s.hub.node(node).IsReady() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return b
}

// boardOf is the board that runs node.
func (s *netSite) boardOf(node string) *board {
	for _, b := range s.boards {
		if b.name == node {
			return b
		}
	}
	s.t.Fatalf("no board runs node %q", node)
	return nil
}

var webImageOnce struct {
	sync.Once
	err error
}

// webImage is the test image that serves HTTP on port 80 as the manifest
// pair's pods do (busybox httpd), its page the pod's hostname and
// /cgi-bin/client the client's address as the pod sees it: the
// busybox image with another command, so that a manifest needs nothing
// but its image swapped. It leaves on SIGTERM (busybox httpd as a
// container's first process would not).
func webImage(t *testing.T, site *harness.Site) string {
	t.Helper()
	webImageOnce.Do(func() {
		img, err := images.BuildBusybox("amd64")
		if err != nil {
			webImageOnce.err = err
			return
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			webImageOnce.err = err
			return
		}
		cfg = cfg.DeepCopy()
		cfg.Config.Cmd = []string{"sh", "-c",
			"mkdir -p /tmp/www/cgi-bin && hostname > /tmp/www/index.html && " +
				`printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$REMOTE_ADDR"\n' > /tmp/www/cgi-bin/client && ` +
				"chmod +x /tmp/www/cgi-bin/client && trap 'exit 0' TERM; httpd -f -p 80 -h /tmp/www & wait"}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			webImageOnce.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, webImageOnce.err = images.Push(ctx, img, env.reg.Addr+"/e2e/web:v1")
	})
	if webImageOnce.err != nil {
		t.Fatalf("web image: %v", webImageOnce.err)
	}
	return siteRegistry(site) + "/e2e/web:v1"
}

// sitePod is a pod as the hub shows it, with what the tests need.
type sitePod struct {
	Name, UID, Node, IP string
	Ready               bool
}

// podsOf lists the pods labelled app=app, Running with an address.
func (s *netSite) podsOf(app string) []sitePod {
	var out []sitePod
	for _, p := range s.hub.pods() {
		if p.Labels["app"] != app || p.Status.Phase != api.PodRunning || p.Status.PodIP == "" {
			continue
		}
		out = append(out, sitePod{Name: p.Name, UID: string(p.UID), Node: p.Spec.NodeName, IP: p.Status.PodIP, Ready: podReady(&p) == nil})
	}
	slices.SortFunc(out, func(a, b sitePod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// waitPods waits until n pods of app are Running and Ready with an
// address, and no other pod of app is left.
func (s *netSite) waitPods(app string, n int, timeout time.Duration) []sitePod {
	s.t.Helper()
	var pods []sitePod
	eventually(s.t, timeout, fmt.Sprintf("%d pods of %s Ready with addresses", n, app), func() error {
		all := 0
		for _, p := range s.hub.pods() {
			if p.Labels["app"] == app {
				all++
			}
		}
		pods = s.podsOf(app)
		ready := 0
		for _, p := range pods {
			if p.Ready {
				ready++
			}
		}
		if ready != n || all != n {
			return fmt.Errorf("%d ready of %d pods: %+v", ready, all, pods)
		}
		return nil
	})
	return pods
}

// service returns a Service as the hub shows it.
func (s *netSite) service(name string) *api.Service {
	s.t.Helper()
	var svc api.Service
	s.hub.getJSON(&svc, "get", "svc", name, "-o", "json")
	return &svc
}

// endpoints reads a Service's Endpoints through the API: its ready and
// not-ready addresses.
func (s *netSite) endpoints(name string) (ready, notReady []string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.hub.URL+"/api/v1/namespaces/default/endpoints/"+name, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, nil, fmt.Errorf("get endpoints %s: %s: %s", name, resp.Status, b)
	}
	var ep api.Endpoints
	if err := json.NewDecoder(resp.Body).Decode(&ep); err != nil {
		return nil, nil, fmt.Errorf("get endpoints %s: %w", name, err)
	}
	for _, ss := range ep.Subsets {
		for _, a := range ss.Addresses {
			ready = append(ready, a.IP)
		}
		for _, a := range ss.NotReadyAddresses {
			notReady = append(notReady, a.IP)
		}
	}
	slices.Sort(ready)
	slices.Sort(notReady)
	return ready, notReady, nil
}

// cut takes the site's uplink down and waits until the hub sees every
// board gone: from then on only local knowledge moves the boards.
func (s *netSite) cut() {
	s.t.Helper()
	if err := s.uplink.Cut(); err != nil {
		s.t.Fatal(err)
	}
	for _, b := range s.boards {
		eventually(s.t, 20*time.Second, "hub sees "+b.name+" NotReady", func() error {
			if s.hub.node(b.name).IsReady() {
				return fmt.Errorf("still Ready")
			}
			return nil
		})
	}
}

// restore brings the uplink back and waits until the hub sees every
// board Ready.
func (s *netSite) restore() {
	s.t.Helper()
	if err := s.uplink.Restore(); err != nil {
		s.t.Fatal(err)
	}
	for _, b := range s.boards {
		eventually(s.t, 30*time.Second, "hub sees "+b.name+" Ready", func() error {
			if !s.hub.node(b.name).IsReady() {
				return fmt.Errorf("not Ready")
			}
			return nil
		})
	}
}

// dialer connects from a network namespace.
type dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// fetch GETs url over a new connection made by dial (so that every
// request is balanced anew) and returns the page, trimmed.
func fetch(dial dialer, url string, timeout time.Duration) (string, error) {
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// tally sends n requests to url through dial and counts the pages (pod
// names) that answered, and the failures.
func tally(dial dialer, url string, n int) (map[string]int, []error) {
	counts := map[string]int{}
	var errs []error
	for range n {
		page, err := fetch(dial, url, 3*time.Second)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		counts[page]++
	}
	return counts, errs
}

// podContainer is the ID of the running container of pod uid on board b.
func (b *board) podContainer(t *testing.T, uid string) container {
	t.Helper()
	var c container
	eventually(t, 20*time.Second, "pod "+uid+"'s container running on "+b.name, func() error {
		for _, r := range running(t, b.agent.ns) {
			if r.Labels["io.flotilla.pod.uid"] == uid {
				c = r
				return nil
			}
		}
		return fmt.Errorf("not running")
	})
	return c
}

// exec runs argv in a pod's container, as kubectl exec does (containerd
// runs it in the container's namespaces, its files and resolv.conf
// included), and returns its standard output and exit code; what it
// wrote to its standard error is in the test's log.
func (b *board) exec(t *testing.T, uid string, argv ...string) (string, int) {
	t.Helper()
	c := b.podContainer(t, uid)
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), b.agent.ns), 30*time.Second)
	defer cancel()
	ctr, err := client.LoadContainer(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pspec := *spec.Process
	pspec.Args = argv
	pspec.Terminal = false
	// Two buffers: containerd copies the two streams concurrently.
	var out, errOut bytes.Buffer
	proc, err := task.Exec(ctx, uniq("exec"), &pspec, cio.NewCreator(cio.WithStreams(nil, &out, &errOut)))
	if err != nil {
		t.Fatalf("exec %v in %s: %v", argv, c.ID, err)
	}
	defer proc.Delete(context.WithoutCancel(ctx))
	statusC, err := proc.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Start(ctx); err != nil {
		t.Fatalf("exec %v in %s: %v", argv, c.ID, err)
	}
	var st containerd.ExitStatus
	select {
	case st = <-statusC:
	case <-ctx.Done():
		t.Fatalf("exec %v in %s: %v", argv, c.ID, ctx.Err())
	}
	proc.IO().Wait()
	if e := strings.TrimSpace(errOut.String()); e != "" {
		t.Logf("%s in %s: %s", strings.Join(argv, " "), c.ID, e)
	}
	return strings.TrimSpace(out.String()), int(st.ExitCode())
}

// rules is the board's nftables table inet flotilla, as nft lists it
// ("" when there is none).
func (b *board) rules(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := b.host.Output(ctx, "nft", "list", "table", "inet", "flotilla")
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return ""
		}
		t.Fatal(err)
	}
	return out
}

// taskStarts watches containerd for tasks starting in ns: it returns a
// function that gives the time the first task of a container of pod uid
// started after the call (zero if none yet), and a stop function.
func taskStarts(t *testing.T, ns string) (started func(uid string) time.Time, stop func()) {
	t.Helper()
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), ns))
	envC, errC := client.Subscribe(ctx, `topic=="/tasks/start",namespace=="`+ns+`"`)
	var mu sync.Mutex
	starts := map[string]time.Time{} // container ID -> first start
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case e := <-envC:
				v, err := typeurl.UnmarshalAny(e.Event)
				if err != nil {
					continue
				}
				if st, ok := v.(*eventsapi.TaskStart); ok {
					mu.Lock()
					if _, seen := starts[st.ContainerID]; !seen {
						starts[st.ContainerID] = e.Timestamp
					}
					mu.Unlock()
				}
			case <-errC:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	started = func(uid string) time.Time {
		var first time.Time
		for _, c := range containers(t, ns) {
			if c.Labels["io.flotilla.pod.uid"] != uid {
				continue
			}
			mu.Lock()
			at, ok := starts[c.ID]
			mu.Unlock()
			if ok && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		return first
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			client.Close()
		})
	}
	t.Cleanup(stop)
	return started, stop
}

// hostPathDir makes a directory for a hostPath volume, removed when the
// test ends.
func hostPathDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(env.dir, "hostpath-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
