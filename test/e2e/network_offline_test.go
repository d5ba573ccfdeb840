package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"

	"github.com/flotilla-edge/flotilla/test/harness"
)

// stream sends requests to urls from the laptop, one at a time per URL,
// until stopped, counting what answered and what failed.
type stream struct {
	stopC chan struct{}
	wg    sync.WaitGroup

	mu     sync.Mutex
	ok     int
	failed []string // when and why, the first few
	nfail  int
}

func startStream(dial dialer, urls ...string) *stream {
	st := &stream{stopC: make(chan struct{})}
	for _, url := range urls {
		st.wg.Add(1)
		go func() {
			defer st.wg.Done()
			for {
				select {
				case <-st.stopC:
					return
				default:
				}
				_, err := fetch(dial, url, 2*time.Second)
				st.mu.Lock()
				if err != nil {
					st.nfail++
					if len(st.failed) < 5 {
						st.failed = append(st.failed, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
					}
				} else {
					st.ok++
				}
				st.mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return st
}

// stop ends the stream and returns its counts.
func (st *stream) stop() (ok, failed int, first []string) {
	close(st.stopC)
	st.wg.Wait()
	return st.ok, st.nfail, st.failed
}

// killAndRestartDuringStream kills b's agent with SIGKILL while requests
// stream from the laptop through both boards' NodePort, starts it again
// and keeps streaming until it has programmed its Services again (it
// starts its cluster DNS in the same pass) and a second more. The
// Service rules stay in the kernel without the agent, and the agent
// that comes back changes only what differs, so no request should fail;
// the failures are counted and printed, and the Service must answer
// after.
func killAndRestartDuringStream(t *testing.T, s *netSite, b *board, hub string) {
	var urls []string
	for _, bb := range s.boards {
		urls = append(urls, fmt.Sprintf("http://%s:%d/", bb.host.IP, webNodePort))
	}
	st := startStream(s.laptop.Dial, urls...)
	time.Sleep(500 * time.Millisecond) // requests before the kill
	passes := logCount(t, b.agent.logPath, "cluster DNS started")
	b.agent.kill9()
	killed := time.Now()
	time.Sleep(500 * time.Millisecond) // requests while no agent runs
	b.agent.start()
	eventually(t, 30*time.Second, "the restarted agent's first pass", func() error {
		if logCount(t, b.agent.logPath, "cluster DNS started") == passes {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	programmed := time.Since(killed)
	time.Sleep(time.Second) // requests after it
	ok, failed, first := st.stop()
	t.Logf("agent of %s killed with SIGKILL and restarted (%s), its Services programmed again %s after the kill: %d requests through the NodePorts answered, %d failed %v",
		b.name, hub, programmed.Round(time.Millisecond), ok, failed, first)
	figure("agent kill -9 and restart (%s) during a stream through the Service: %d answered, %d failed", hub, ok, failed)
	if failed > 0 {
		t.Errorf("%d of %d requests failed across the agent's kill and restart: %v", failed, ok+failed, first)
	}
	for _, url := range urls {
		if counts, errs := tally(s.laptop.Dial, url, 30); len(errs) > 0 || len(counts) != 3 {
			t.Errorf("after the agent's restart, %s answered %v, %d failed %v", url, counts, len(errs), errs)
		}
	}
}

// soloPair is a Deployment of one pod on node, behind a NodePort Service
// of its own.
func soloPair(image, node string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: solo}
spec:
  selector: {matchLabels: {app: solo}}
  replicas: 1
  template:
    metadata: {labels: {app: solo}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %s}
      containers:
        - name: web
          image: %s
          ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: solo}
spec:
  type: NodePort
  ports: [{port: 8099, targetPort: 80}]
  selector: {app: solo}
`, node, image)
}

// podIP asks a pod's container for the address of its eth0.
func (b *board) podIP(t *testing.T, uid string) string {
	t.Helper()
	out, code := b.exec(t, uid, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	f := strings.Fields(out)
	if code != 0 || len(f) < 4 {
		t.Fatalf("ip addr in pod %s: exit %d, %q", uid, code, out)
	}
	ip, _, _ := strings.Cut(f[3], "/")
	return ip
}

// TestSiteOfflineServices: the site of two boards runs the manifest pair
// and a one-pod Service, and its uplink is cut. On its own knowledge
// alone a board follows its pod that comes back with a new address; it
// keeps its Services through its agent's kill -9 and restart; and after
// an offline reboot (its kernel's network state lost, its containers
// gone) it restores its pods' networks and Services from its local state.
func TestSiteOfflineServices(t *testing.T) {
	s := startNetSite(t, 2)
	web := s.startWeb()
	a := s.boards[0]
	s.hub.applyYAML(soloPair(s.image, a.name))
	solo := s.waitPods("solo", 1, 60*time.Second)[0]
	soloURL := fmt.Sprintf("http://%s:%d/", a.host.IP, s.service("solo").Spec.Ports[0].NodePort)
	if page, err := fetch(s.laptop.Dial, soloURL, 5*time.Second); err != nil || page != solo.Name {
		t.Fatalf("%s: %q, %v", soloURL, page, err)
	}

	ctl := hostPathDir(t)
	s.hub.applyYAML(gatePair(s.image, ctl, 1))
	gates := s.waitPods("gate", 2, 60*time.Second)
	gateURL := fmt.Sprintf("http://%s:%d/", a.host.IP, s.service("gate").Spec.Ports[0].NodePort)

	t.Run("agent kill -9 during a stream, hub online", func(t *testing.T) {
		killAndRestartDuringStream(t, s, a, "hub online")
	})

	s.cut()

	t.Run("a local pod back with a new address", func(t *testing.T) {
		// Its restart must get another address: its namespace is gone
		// (unmounted) and the address it asks for again is held, in
		// host-local's store, by another pod of the board (a web pod,
		// which the agent keeps, where it would give back an address
		// that no pod of its holds; the web pod's release frees both).
		var holder string
		for _, p := range web {
			if p.Node == a.name {
				holder = p.UID
			}
		}
		ipamFile := filepath.Join(a.agent.stateDir, "network", "ipam", "flotilla", solo.IP)
		if _, err := os.Stat(ipamFile); err != nil || holder == "" {
			t.Fatalf("host-local holds no %s (%v), or no web pod runs on %s", solo.IP, err, a.name)
		}
		if err := os.WriteFile(ipamFile, []byte(holder+"\r\neth0"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := harness.UnmountUnder(filepath.Join(a.agent.stateDir, "network", "netns", solo.UID)); err != nil {
			t.Fatal(err)
		}
		started, stop := taskStarts(t, a.agent.ns)
		defer stop()
		c := a.podContainer(t, solo.UID)
		killed := time.Now()
		killTask(t, a.agent.ns, c.ID)
		var reached time.Time
		deadline := time.Now().Add(30 * time.Second)
		for {
			page, err := fetch(s.laptop.Dial, soloURL, 300*time.Millisecond)
			if err == nil {
				if page != solo.Name {
					t.Fatalf("%s answered %q", soloURL, page)
				}
				reached = time.Now()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not answer after its pod's restart: %v", soloURL, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		restarted := started(solo.UID)
		newIP := a.podIP(t, solo.UID)
		if newIP == solo.IP || restarted.IsZero() {
			t.Fatalf("the pod came back with address %s (had %s), restarted at %v", newIP, solo.IP, restarted)
		}
		t.Logf("hub cut off: %s restarted with a new address (%s, had %s) %s after its kill; reachable through its Service %s after its container started",
			solo.Name, newIP, solo.IP, restarted.Sub(killed).Round(time.Millisecond), reached.Sub(restarted).Round(time.Millisecond))
		figure("hub offline: local pod restarted with a new IP, container start to reachable through its NodePort: %s", reached.Sub(restarted).Round(time.Millisecond))
		if s.hub.node(a.name).IsReady() {
			t.Fatal("the hub reaches the board: the uplink was not cut")
		}
	})

	t.Run("a local pod failing readiness", func(t *testing.T) {
		var out, in sitePod
		for _, p := range gates {
			if p.Node == a.name {
				out = p
			} else {
				in = p
			}
		}
		if out.Name == "" || in.Name == "" {
			t.Fatalf("the gate pods are not spread over the boards: %+v", gates)
		}
		failing := time.Now()
		if err := os.WriteFile(filepath.Join(ctl, out.Name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, out.Name+" out of "+a.name+"'s rules", func() error {
			if strings.Contains(a.rules(t), out.IP+":80") {
				return fmt.Errorf("still there")
			}
			return nil
		})
		t.Logf("hub cut off: %s, failing its readiness probe (period 1s), left its board's rules %s after it began failing",
			out.Name, time.Since(failing).Round(time.Millisecond))
		if counts, errs := tally(s.laptop.Dial, gateURL, 40); counts[out.Name] > 0 || counts[in.Name] != 40 || len(errs) > 0 {
			t.Errorf("with %s not ready, %s answered %v, %d failed %v", out.Name, gateURL, counts, len(errs), errs)
		}
		if err := os.Remove(filepath.Join(ctl, out.Name)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, out.Name+" answering through "+gateURL+" again", func() error {
			counts, errs := tally(s.laptop.Dial, gateURL, 20)
			if counts[out.Name] == 0 || len(errs) > 0 {
				return fmt.Errorf("%v, %d failed %v", counts, len(errs), errs)
			}
			return nil
		})
	})

	t.Run("agent kill -9 during a stream, hub offline", func(t *testing.T) {
		killAndRestartDuringStream(t, s, a, "hub offline")
	})

	t.Run("offline reboot", func(t *testing.T) {
		before := map[string]string{} // pod UID -> address, on a
		for _, p := range web {
			if p.Node == a.name {
				before[p.UID] = a.podIP(t, p.UID)
			}
		}
		// What a power cycle loses: the agent, every container's process,
		// the pods' namespaces (their bind mounts) and the board's whole
		// network state (bridge, routes, packet rules, kernel settings),
		// while the state directory and containerd's records stay; and
		// containerd starts again (the other board's containers, in
		// their shims, go on).
		a.agent.kill9()
		deleteTasks(t, a.agent.ns)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := env.ctd.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if err := harness.UnmountUnder(filepath.Join(a.agent.stateDir, "network", "netns")); err != nil {
			t.Fatal(err)
		}
		if err := a.host.Reboot(); err != nil {
			t.Fatal(err)
		}
		if page, err := fetch(s.laptop.Dial, soloURL, time.Second); err == nil {
			t.Fatalf("%s answers (%q) before the agent is back", soloURL, page)
		}
		booted := time.Now()
		a.agent.start()
		url := fmt.Sprintf("http://%s:%d/", a.host.IP, webNodePort)
		eventually(t, 60*time.Second, "the web Service answering through the rebooted board from pods of both boards", func() error {
			counts, errs := tally(s.laptop.Dial, url, 30)
			if len(errs) > 0 || len(counts) != 3 {
				return fmt.Errorf("%v, %d failed %v", counts, len(errs), errs)
			}
			return nil
		})
		t.Logf("rebooted board %s offline: every web pod answers through its NodePort %s after the agent's start", a.name, time.Since(booted).Round(time.Millisecond))
		// solo restarted once already: its next start waits for its
		// back-off.
		eventually(t, 60*time.Second, "the solo Service answering through the rebooted board", func() error {
			if page, err := fetch(s.laptop.Dial, soloURL, 5*time.Second); err != nil || page != solo.Name {
				return fmt.Errorf("%q, %v", page, err)
			}
			return nil
		})
		for uid, ip := range before {
			if got := a.podIP(t, uid); got != ip {
				t.Errorf("pod %s had %s before the reboot, %s after", uid, ip, got)
			}
		}
		// The other board still reaches the rebooted board's pods at the
		// addresses it knows, and they reach it back.
		other := s.boards[1]
		url = fmt.Sprintf("http://%s:%d/", other.host.IP, webNodePort)
		if counts, errs := tally(s.laptop.Dial, url, 30); len(errs) > 0 || len(counts) != 3 {
			t.Errorf("after %s's reboot, %s answered %v, %d failed %v", a.name, url, counts, len(errs), errs)
		}
		// Cluster names resolve on the rebooted board with no hub.
		for _, p := range web {
			if p.Node != a.name {
				continue
			}
			if out, code := a.exec(t, p.UID, "timeout", "5", "wget", "-q", "-O", "-", "http://web:8099"); code != 0 || !strings.HasPrefix(out, "web-") {
				t.Errorf("wget http://web:8099 in %s after the reboot: exit %d, %q", p.Name, code, out)
			}
			break
		}
		if s.hub.node(a.name).IsReady() {
			t.Fatal("the hub reaches the board: the uplink was not cut")
		}
	})

	s.restore()
	pods := s.waitPods("web", 3, 30*time.Second)
	ready, _, err := s.endpoints("web")
	var ips []string
	for _, p := range pods {
		ips = append(ips, p.IP)
	}
	slices.Sort(ips)
	if err != nil || !slices.Equal(ready, ips) {
		t.Errorf("after the link came back: endpoints %v (%v), pods %v", ready, err, ips)
	}
	// solo's address changed while the hub was away: the hub learns it,
	// and the other board, which kept the old one meanwhile, reaches solo
	// through its own NodePort again.
	now := s.waitPods("solo", 1, 30*time.Second)[0]
	if got := a.podIP(t, solo.UID); now.IP != got {
		t.Errorf("the hub shows solo at %s, it has %s", now.IP, got)
	}
	url := fmt.Sprintf("http://%s:%d/", s.boards[1].host.IP, s.service("solo").Spec.Ports[0].NodePort)
	eventually(t, 30*time.Second, "solo through the other board's NodePort", func() error {
		if page, err := fetch(s.laptop.Dial, url, 2*time.Second); err != nil || page != solo.Name {
			return fmt.Errorf("%q, %v", page, err)
		}
		return nil
	})
	t.Logf("hub get pods -o wide:\n%s", s.hub.mustCLI("get", "pods", "-o", "wide"))
}

// deleteTasks kills and deletes the task of every container in ns,
// keeping the containers, as a reboot leaves containerd.
func deleteTasks(t *testing.T, ns string) {
	t.Helper()
	client, err := containerd.New(env.ctd.Socket, containerd.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), time.Minute)
	defer cancel()
	cs, err := client.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		task, err := c.Task(ctx, nil)
		if err != nil {
			continue
		}
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil {
			t.Fatalf("delete task of %s: %v", c.ID(), err)
		}
	}
}
