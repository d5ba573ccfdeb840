package e2e

import (
	"fmt"
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
// reaches the Service by its full and its short name.
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
}
