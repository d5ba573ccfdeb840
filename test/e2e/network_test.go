package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// issuePair is issue 15's manifest pair as the issue gives it, with only
// its image swapped.
func issuePair(image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  replicas: 3
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: ` + image + `
          ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  ports:
    - {port: 8099, targetPort: 80, protocol: TCP, nodePort: 30080}
  selector: {app: web}
`
}

// startWeb applies the pair and waits for its three pods, which must be
// spread over both boards.
func (s *netSite) startWeb() []sitePod {
	s.t.Helper()
	s.hub.applyYAML(issuePair(s.image))
	pods := s.waitPods("web", 3, 60*time.Second)
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.Node] = true
	}
	if len(nodes) < 2 {
		s.t.Fatalf("the web pods are not spread over the boards: %+v", pods)
	}
	return pods
}

// TestSitePodNetworkAndServices: two boards of one site and a laptop on
// its LAN, the hub online. The issue's manifest pair runs three pods over
// both boards; pods reach each other across boards by pod IP; the laptop
// reaches pods of both boards through every board's NodePort; a pod
// reaches the Service by its full and its short name; a pod failing its
// readiness probe leaves the Endpoints and the traffic, and comes back;
// ClientIP affinity, externalTrafficPolicy Local (the board's own pods,
// the client's address kept), internalTrafficPolicy Local, a headless
// Service's name, a hostPort and a pod reaching itself through its
// Service work.
// It prints how long a pod takes from Ready to reachable from the other
// board.
func TestSitePodNetworkAndServices(t *testing.T) {
	s := startNetSite(t, 2)
	pods := s.startWeb()
	t.Logf("web pods: %+v", pods)
	t.Logf("hub get svc,ep:\n%s", s.hub.mustCLI("get", "svc,ep"))

	t.Run("pod to pod across boards", func(t *testing.T) {
		for _, from := range pods {
			for _, to := range pods {
				if to.Node == from.Node {
					continue
				}
				out, code := s.boardOf(from.Node).exec(t, from.UID, "timeout", "5", "wget", "-q", "-O", "-", "http://"+to.IP+":80/")
				if code != 0 || out != to.Name {
					t.Errorf("from %s (%s) to %s (%s) by pod IP: exit %d, %q", from.Name, from.Node, to.Name, to.IP, code, out)
				}
			}
		}
	})

	t.Run("NodePort from the laptop", func(t *testing.T) {
		node := map[string]string{} // pod name -> its board
		for _, p := range pods {
			node[p.Name] = p.Node
		}
		for _, b := range s.boards {
			url := fmt.Sprintf("http://%s:%d/", b.host.IP, webNodePort)
			counts, errs := tally(s.laptop.Dial, url, 100)
			t.Logf("laptop -> %s (%s) x100: %v, %d failed", url, b.name, counts, len(errs))
			if len(errs) > 0 {
				t.Errorf("%d of 100 requests to %s failed, the first: %v", len(errs), url, errs[0])
			}
			boards := map[string]bool{}
			for name := range counts {
				n, ok := node[name]
				if !ok {
					t.Errorf("%s answered %q, which is no web pod", url, name)
				}
				boards[n] = true
			}
			if len(boards) != 2 || len(counts) != len(pods) {
				t.Errorf("%s: want every pod of both boards to answer 100 requests, got %v", url, counts)
			}
		}
	})

	t.Run("Service by name from a pod", func(t *testing.T) {
		names := map[string]bool{}
		for _, p := range pods {
			names[p.Name] = true
		}
		seen := map[string]bool{}
		for _, p := range pods {
			if seen[p.Node] {
				continue
			}
			seen[p.Node] = true
			for _, url := range []string{"http://web.default.svc.cluster.local:8099", "http://web:8099"} {
				out, code := s.boardOf(p.Node).exec(t, p.UID, "timeout", "5", "wget", "-q", "-O", "-", url)
				if code != 0 || !names[out] {
					resolv, _ := s.boardOf(p.Node).exec(t, p.UID, "cat", "/etc/resolv.conf")
					t.Errorf("wget %s in %s on %s: exit %d, %q; its resolv.conf:\n%s", url, p.Name, p.Node, code, out, resolv)
				}
			}
		}
	})

	t.Run("session affinity", func(t *testing.T) {
		s.hub.applyYAML(`apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  type: NodePort
  sessionAffinity: ClientIP
  ports: [{port: 8099, targetPort: 80}]
  selector: {app: web}
`)
		nodePort := s.service("sticky").Spec.Ports[0].NodePort
		for _, b := range s.boards {
			url := fmt.Sprintf("http://%s:%d/", b.host.IP, nodePort)
			eventually(t, 15*time.Second, url+" answering", func() error {
				_, err := fetch(s.laptop.Dial, url, 2*time.Second)
				return err
			})
			if counts, errs := tally(s.laptop.Dial, url, 30); len(counts) != 1 || len(errs) > 0 {
				t.Errorf("ClientIP affinity: the laptop's 30 requests to %s went to %v, %d failed %v", url, counts, len(errs), errs)
			}
		}
	})

	t.Run("headless Service by name from a pod", func(t *testing.T) {
		s.hub.applyYAML(`apiVersion: v1
kind: Service
metadata: {name: peers}
spec:
  clusterIP: None
  ports: [{port: 80}]
  selector: {app: web}
`)
		var want []string
		for _, p := range pods {
			want = append(want, p.IP)
		}
		slices.Sort(want)
		p := pods[0]
		eventually(t, 15*time.Second, "peers.default.svc.cluster.local naming every web pod", func() error {
			out, code := s.boardOf(p.Node).exec(t, p.UID, "nslookup", "-type=a", "peers.default.svc.cluster.local")
			var got []string
			for _, line := range strings.Split(out, "\n") {
				if a, ok := strings.CutPrefix(strings.TrimSpace(line), "Address: "); ok {
					got = append(got, strings.TrimSpace(a))
				}
			}
			slices.Sort(got)
			if code != 0 || !slices.Equal(got, want) {
				return fmt.Errorf("exit %d, addresses %v, want %v:\n%s", code, got, want, out)
			}
			return nil
		})
	})

	t.Run("externalTrafficPolicy Local", func(t *testing.T) {
		s.hub.applyYAML(`apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  ports: [{port: 8099, targetPort: 80}]
  selector: {app: web}
`)
		nodePort := s.service("local").Spec.Ports[0].NodePort
		for _, b := range s.boards {
			base := fmt.Sprintf("http://%s:%d/", b.host.IP, nodePort)
			eventually(t, 15*time.Second, base+" answering", func() error {
				_, err := fetch(s.laptop.Dial, base, 2*time.Second)
				return err
			})
			counts, errs := tally(s.laptop.Dial, base, 30)
			for name := range counts {
				if i := slices.IndexFunc(pods, func(p sitePod) bool { return p.Name == name }); i < 0 || pods[i].Node != b.name {
					t.Errorf("%s answered by %s, not a pod of %s", base, name, b.name)
				}
			}
			if len(errs) > 0 {
				t.Errorf("%s: %d failed %v", base, len(errs), errs)
			}
			// busybox httpd listens on IPv6 and IPv4 and names an IPv4
			// client as [::ffff:A.B.C.D].
			client, err := fetch(s.laptop.Dial, base+"cgi-bin/client", 5*time.Second)
			if a, perr := netip.ParseAddr(strings.Trim(client, "[]")); err != nil || perr != nil || a.Unmap() != s.laptop.IP {
				t.Errorf("%scgi-bin/client: the pod saw the client as %q (%v), want the laptop's %s", base, client, err, s.laptop.IP)
			}
		}
	})

	t.Run("internalTrafficPolicy Local", func(t *testing.T) {
		s.hub.applyYAML(`apiVersion: v1
kind: Service
metadata: {name: internal}
spec:
  internalTrafficPolicy: Local
  ports: [{port: 8099, targetPort: 80}]
  selector: {app: web}
`)
		url := fmt.Sprintf("http://%s:8099/", s.service("internal").Spec.ClusterIP)
		for _, b := range s.boards {
			eventually(t, 15*time.Second, url+" answering on "+b.name, func() error {
				_, err := fetch(b.host.Dial, url, 2*time.Second)
				return err
			})
			counts, errs := tally(b.host.Dial, url, 30)
			for name := range counts {
				if i := slices.IndexFunc(pods, func(p sitePod) bool { return p.Name == name }); i < 0 || pods[i].Node != b.name {
					t.Errorf("%s from %s answered by %s, not a pod of the board", url, b.name, name)
				}
			}
			if len(errs) > 0 {
				t.Errorf("%s from %s: %d failed %v", url, b.name, len(errs), errs)
			}
		}
	})

	t.Run("hostPort", func(t *testing.T) { testHostPort(t, s) })
	t.Run("readiness", func(t *testing.T) { testReadinessGatesTraffic(t, s) })
	t.Run("ready to reachable from another board", func(t *testing.T) { measureReadyToReachable(t, s) })
}

// gatePair is a Deployment of two pods whose readiness the test sets by
// a file per pod in ctl, a hostPath directory: a pod is ready while no
// file has its name. Its Service is a NodePort.
func gatePair(image, ctl string, period int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: gate}
spec:
  selector: {matchLabels: {app: gate}}
  replicas: 2
  template:
    metadata: {labels: {app: gate}}
    spec:
      volumes: [{name: ctl, hostPath: {path: %s}}]
      containers:
        - name: web
          image: %s
          ports: [{containerPort: 80}]
          volumeMounts: [{name: ctl, mountPath: /ctl}]
          readinessProbe:
            exec: {command: [sh, -c, 'test ! -e /ctl/$(hostname)']}
            periodSeconds: %d
            failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: gate}
spec:
  type: NodePort
  ports: [{port: 8099, targetPort: 80}]
  selector: {app: gate}
`, ctl, image, period)
}

// testReadinessGatesTraffic: a pod that fails its readiness probe leaves
// the Service's Endpoints (the hub's API) about one probe period after it
// starts failing, and then gets none of the Service's traffic, through
// either board's NodePort; once it passes again it is back in the
// Endpoints and gets traffic again.
func testReadinessGatesTraffic(t *testing.T, s *netSite) {
	const period = 2
	ctl := hostPathDir(t)
	s.hub.applyYAML(gatePair(s.image, ctl, period))
	pods := s.waitPods("gate", 2, 60*time.Second)
	if pods[0].Node == pods[1].Node {
		t.Fatalf("the gate pods are not spread over the boards: %+v", pods)
	}
	nodePort := s.service("gate").Spec.Ports[0].NodePort
	out, in := pods[0], pods[1]
	inRules := func() []string {
		var on []string
		for _, b := range s.boards {
			if strings.Contains(b.rules(t), out.IP+":80") {
				on = append(on, b.name)
			}
		}
		return on
	}

	failing := time.Now()
	if err := os.WriteFile(filepath.Join(ctl, out.Name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, out.Name+" out of the Endpoints", func() error {
		ready, notReady, err := s.endpoints("gate")
		if err != nil {
			return err
		}
		if slices.Contains(ready, out.IP) || !slices.Contains(notReady, out.IP) || !slices.Contains(ready, in.IP) {
			return fmt.Errorf("ready %v, not ready %v", ready, notReady)
		}
		return nil
	})
	t.Logf("%s left the Endpoints %s after its probe began failing (probe period %ds)", out.Name, time.Since(failing).Round(time.Millisecond), period)
	eventually(t, 15*time.Second, out.Name+" out of both boards' rules", func() error {
		if on := inRules(); len(on) > 0 {
			return fmt.Errorf("still in the rules of %v", on)
		}
		return nil
	})
	for _, b := range s.boards {
		url := fmt.Sprintf("http://%s:%d/", b.host.IP, nodePort)
		counts, errs := tally(s.laptop.Dial, url, 50)
		if counts[out.Name] > 0 || counts[in.Name] != 50 || len(errs) > 0 {
			t.Errorf("with %s not ready, %s answered %v, %d failed %v", out.Name, url, counts, len(errs), errs)
		}
	}

	passing := time.Now()
	if err := os.Remove(filepath.Join(ctl, out.Name)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, out.Name+" back in the Endpoints", func() error {
		ready, _, err := s.endpoints("gate")
		if err != nil {
			return err
		}
		if !slices.Contains(ready, out.IP) || !slices.Contains(ready, in.IP) {
			return fmt.Errorf("ready %v", ready)
		}
		return nil
	})
	t.Logf("%s back in the Endpoints %s after its probe passed again (probe period %ds)", out.Name, time.Since(passing).Round(time.Millisecond), period)
	for _, b := range s.boards {
		url := fmt.Sprintf("http://%s:%d/", b.host.IP, nodePort)
		eventually(t, 15*time.Second, out.Name+" answering through "+url+" again", func() error {
			counts, errs := tally(s.laptop.Dial, url, 20)
			if counts[out.Name] == 0 || len(errs) > 0 {
				return fmt.Errorf("%v, %d failed %v", counts, len(errs), errs)
			}
			return nil
		})
	}
}

// measureReadyToReachable prints how long a pod of one board takes, from
// the start of its container (a pod without a readiness probe is Ready
// once it runs), to answer through its Service's ClusterIP from the other
// board, the hub online: the agent reports the pod, the hub updates the
// Endpoints and sends the site's snapshots, the other board's agent
// programs its rules. The Service has no other endpoint, so every
// request before that is refused at once.
func measureReadyToReachable(t *testing.T, s *netSite) {
	on, from := s.boards[0], s.boards[1]
	s.hub.applyYAML(`apiVersion: v1
kind: Service
metadata: {name: solo}
spec:
  ports: [{port: 8099, targetPort: 80}]
  selector: {app: solo}
`)
	clusterIP := s.service("solo").Spec.ClusterIP
	url := fmt.Sprintf("http://%s:8099/", clusterIP)
	eventually(t, 15*time.Second, "the Service in "+from.name+"'s rules", func() error {
		if !strings.Contains(from.rules(t), clusterIP) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	deployment := fmt.Sprintf(`apiVersion: apps/v1
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
`, on.name, s.image)
	started, stop := taskStarts(t, on.agent.ns)
	defer stop()
	var samples []time.Duration
	for i := range 3 {
		// No endpoint: refused at once, not left to time out.
		if _, err := fetch(from.host.Dial, url, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("sample %d: %s before its pod exists: %v, want the connection refused", i, url, err)
		}
		s.hub.applyYAML(deployment)
		var page string
		var reached time.Time
		deadline := time.Now().Add(60 * time.Second)
		for {
			p, err := fetch(from.host.Dial, url, time.Second)
			if err == nil {
				page, reached = p, time.Now()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sample %d: %s from %s: %v", i, url, from.name, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		pods := s.podsOf("solo")
		if len(pods) != 1 || pods[0].Name != page || pods[0].Node != on.name {
			t.Fatalf("sample %d: %s answered %q; solo pods %+v", i, url, page, pods)
		}
		start := started(pods[0].UID)
		if start.IsZero() {
			t.Fatalf("sample %d: no start of %s's container seen", i, page)
		}
		samples = append(samples, reached.Sub(start))
		if i == 0 {
			// The pod reaches itself through its own Service (hairpin).
			if out, code := on.exec(t, pods[0].UID, "timeout", "5", "wget", "-q", "-O", "-", "http://solo:8099"); code != 0 || out != page {
				t.Errorf("%s through its own Service: exit %d, %q", page, code, out)
			}
		}
		s.hub.mustCLI("delete", "deployment", "solo")
		eventually(t, 60*time.Second, "solo gone", func() error {
			if _, err := fetch(from.host.Dial, url, time.Second); err == nil {
				return fmt.Errorf("%s still answers", url)
			}
			if len(running(t, on.agent.ns)) > 0 && slices.ContainsFunc(running(t, on.agent.ns), func(c container) bool {
				return c.Labels["io.flotilla.pod.uid"] == pods[0].UID
			}) {
				return fmt.Errorf("its container still runs")
			}
			return nil
		})
	}
	slices.Sort(samples)
	t.Logf("pod Ready (its container started) on %s to reachable through its ClusterIP from %s, hub online: %v (median %s)",
		on.name, from.name, samples, samples[len(samples)/2].Round(time.Millisecond))
	figure("ready to reachable from another board, hub online: median %s of %v", samples[len(samples)/2].Round(time.Millisecond), samples)
}

// churnPair is a Deployment of n pods over the site's boards behind a
// ClusterIP Service.
func churnPair(image string, n int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: churn}
spec:
  selector: {matchLabels: {app: churn}}
  replicas: %d
  template:
    metadata: {labels: {app: churn}}
    spec:
      containers:
        - name: web
          image: %s
          ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: churn}
spec:
  ports: [{port: 8099, targetPort: 80}]
  selector: {app: churn}
`, n, image)
}

// TestPodChurnLeavesNoTrace: 200 pods created and deleted through the
// hub, 20 at a time over two boards, one board's agent killed with
// SIGKILL and restarted while a round starts, leave no address allocated
// in host-local's store, no pod namespace or network record, and no
// endpoint in either board's Service rules; once the Service is deleted
// too, no rule of it is left.
func TestPodChurnLeavesNoTrace(t *testing.T) {
	const perRound, rounds = 20, 10
	s := startNetSite(t, 2)
	s.hub.applyYAML(churnPair(s.image, 0))
	clusterIP := s.service("churn").Spec.ClusterIP
	seen := map[string]bool{} // pod UIDs
	for round := range rounds {
		s.hub.applyYAML(churnPair(s.image, perRound))
		if round == rounds/2 {
			b := s.boards[0]
			b.agent.kill9()
			b.agent.start()
		}
		pods := s.waitPods("churn", perRound, 90*time.Second)
		for _, p := range pods {
			seen[p.UID] = true
		}
		if round == 0 {
			// The rules hold every pod: their absence at the end means
			// something.
			eventually(t, 15*time.Second, "every churn pod in both boards' rules", func() error {
				for _, b := range s.boards {
					r := b.rules(t)
					for _, p := range pods {
						if !strings.Contains(r, "dnat ip to "+p.IP+":80") {
							return fmt.Errorf("%s's rules lack %s", b.name, p.IP)
						}
					}
				}
				return nil
			})
			for _, b := range s.boards {
				if err := leftovers(b, clusterIP, t); err == nil {
					t.Fatalf("the check of what is left sees nothing on %s while pods run there", b.name)
				}
			}
		}
		s.hub.applyYAML(churnPair(s.image, 0))
		eventually(t, 90*time.Second, fmt.Sprintf("round %d's pods gone", round), func() error {
			for _, p := range s.hub.pods() {
				if p.Labels["app"] == "churn" {
					return fmt.Errorf("pod %s is still there (%s)", p.Name, p.Status.Phase)
				}
			}
			for _, b := range s.boards {
				if n := len(containers(t, b.agent.ns)); n > 0 {
					return fmt.Errorf("%d containers still on %s", n, b.name)
				}
			}
			return nil
		})
	}
	if len(seen) != perRound*rounds {
		t.Fatalf("%d pods were created, want %d", len(seen), perRound*rounds)
	}
	for _, b := range s.boards {
		eventually(t, 30*time.Second, b.name+" holds nothing of the churned pods", func() error {
			return leftovers(b, clusterIP, t)
		})
	}
	s.hub.mustCLI("delete", "service", "churn")
	for _, b := range s.boards {
		eventually(t, 30*time.Second, b.name+"'s rules without the deleted Service", func() error {
			if r := b.rules(t); strings.Contains(r, clusterIP) || strings.Contains(r, "default/churn") {
				return fmt.Errorf("table inet flotilla still has it:\n%s", r)
			}
			return nil
		})
	}
}

// leftovers lists what a board still holds of pods that are gone: an
// address in host-local's store, a pod namespace or network record, an
// endpoint of the Service at clusterIP in its rules.
func leftovers(b *board, clusterIP string, t *testing.T) error {
	var left []string
	netDir := filepath.Join(b.agent.stateDir, "network")
	entries, err := os.ReadDir(filepath.Join(netDir, "ipam", "flotilla"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			left = append(left, "address "+e.Name())
		}
	}
	for _, dir := range []string{"netns", "pods"} {
		entries, err := os.ReadDir(filepath.Join(netDir, dir))
		if err != nil {
			return err
		}
		for _, e := range entries {
			left = append(left, dir+"/"+e.Name())
		}
	}
	r := b.rules(t)
	if !strings.Contains(r, clusterIP) {
		left = append(left, "no rule for the Service's "+clusterIP+" (it still exists)")
	}
	for _, line := range strings.Split(r, "\n") {
		if strings.Contains(line, "dnat") || strings.Contains(line, "chain ep-") {
			left = append(left, "rule "+strings.TrimSpace(line))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("%d left: %v", len(left), left)
	}
	return nil
}

// testHostPort: a DaemonSet's pods with a hostPort answer on that port of
// their own board, from the laptop, through portmap; once they are gone,
// no rule of portmap's names the port.
func testHostPort(t *testing.T, s *netSite) {
	s.hub.applyYAML(fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: edge}
spec:
  selector: {matchLabels: {app: edge}}
  template:
    metadata: {labels: {app: edge}}
    spec:
      containers:
        - name: web
          image: %s
          ports: [{containerPort: 80, hostPort: 8080}]
`, s.image))
	pods := s.waitPods("edge", len(s.boards), 60*time.Second)
	for _, b := range s.boards {
		i := slices.IndexFunc(pods, func(p sitePod) bool { return p.Node == b.name })
		if i < 0 {
			t.Fatalf("no edge pod on %s: %+v", b.name, pods)
		}
		url := fmt.Sprintf("http://%s:8080/", b.host.IP)
		if page, err := fetch(s.laptop.Dial, url, 5*time.Second); err != nil || page != pods[i].Name {
			t.Errorf("%s: %q, %v; want %s", url, page, err, pods[i].Name)
		}
	}
	portRules := func(b *board) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := b.host.Output(ctx, "iptables-save")
		if err != nil {
			return nil, err
		}
		var rules []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "8080") {
				rules = append(rules, line)
			}
		}
		return rules, nil
	}
	for _, b := range s.boards {
		// The check below would see nothing if the rules were elsewhere.
		if rules, err := portRules(b); err != nil || len(rules) == 0 {
			t.Fatalf("%s: iptables-save shows no rule of hostPort 8080 while its pod runs (%v)", b.name, err)
		}
	}
	s.hub.mustCLI("delete", "ds", "edge")
	for _, b := range s.boards {
		eventually(t, 30*time.Second, b.name+" without the edge pod and its port's rules", func() error {
			for _, c := range containers(t, b.agent.ns) {
				if slices.ContainsFunc(pods, func(p sitePod) bool { return p.UID == c.Labels["io.flotilla.pod.uid"] }) {
					return fmt.Errorf("container %s still there", c.ID)
				}
			}
			rules, err := portRules(b)
			if err != nil {
				return err
			}
			if len(rules) > 0 {
				return fmt.Errorf("rules left: %v", rules)
			}
			return nil
		})
	}
}
