package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// The Ingress end-to-end test runs one board as a site: a network
// namespace joined to the host by the site's uplink (harness.Site), in
// which the agent runs with the pod network on (its pods get addresses on
// the board's bridge, so the Ingress proxies to pod IPs), and a "laptop":
// a namespace of its own on a link to the board (192.168.77.0/30, inside
// the namespaces only), from which the test's HTTP client dials. Cutting
// the uplink cuts the board off the hub, not off the laptop.
//
// The agent runs under nsenter --net rather than ip netns exec, so that
// it keeps the host's mounts: the network namespaces it bind-mounts for
// its pods must be the ones containerd and runc see.

// laptop is a namespace on a link of its own to a site's board.
type laptop struct {
	name    string
	fd      int
	boardIP string // the board's address on the link
}

func newLaptop(t *testing.T, site *harness.Site) *laptop {
	t.Helper()
	l := &laptop{name: site.Name + "-lap", boardIP: "192.168.77.1"}
	_ = runIP("ip", "netns", "del", l.name) // a crashed run's leftover
	for _, argv := range [][]string{
		{"ip", "netns", "add", l.name},
		{"ip", "-n", site.Name, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", l.name},
		{"ip", "-n", site.Name, "addr", "add", l.boardIP + "/30", "dev", "lan0"},
		{"ip", "-n", site.Name, "link", "set", "lan0", "up"},
		{"ip", "-n", l.name, "addr", "add", "192.168.77.2/30", "dev", "eth0"},
		{"ip", "-n", l.name, "link", "set", "eth0", "up"},
		{"ip", "-n", l.name, "link", "set", "lo", "up"},
	} {
		if err := runIP(argv...); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Open("/run/netns/"+l.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.fd = fd
	t.Cleanup(func() {
		unix.Close(fd)
		_ = runIP("ip", "netns", "del", l.name)
	})
	return l
}

func runIP(argv ...string) error {
	bin, err := harness.FindBinary(argv[0])
	if err != nil {
		return err
	}
	out, err := exec.Command(bin, argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dial connects from the laptop: the socket is made on a thread that is
// in the laptop's namespace, which then goes back to its own (a thread
// left to die would take the processes it started with it).
func (l *laptop) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer unix.Close(own)
	if err := unix.Setns(l.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter the laptop's namespace: %w", err)
	}
	conn, derr := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
	if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
		panic("cannot leave the laptop's namespace: " + err.Error()) // the thread must not run anything else there
	}
	runtime.UnlockOSThread()
	return conn, derr
}

// client is an HTTP client on the laptop that sends every request to the
// board, at the URL's port: URLs name the Ingress's hosts, so the Host
// header and the TLS server name are theirs. roots are the CAs it trusts.
func (l *laptop) client(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				return l.dial(ctx, network, net.JoinHostPort(l.boardIP, port))
			},
			TLSClientConfig: &tls.Config{RootCAs: roots},
		},
	}
}

// ingressFetch GETs url and returns the status, the body's first line and the
// common name of the certificate served (HTTPS).
func ingressFetch(c *http.Client, url string) (int, string, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", "", err
	}
	cn := ""
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		cn = resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return resp.StatusCode, line, cn, nil
}

// startIngressAgent runs an agent on site's board with the pod network,
// Services and cluster DNS on, labelled to serve Ingresses on the default
// ports 80 and 443 of the board.
func startIngressAgent(t *testing.T, h *hubProc, site *harness.Site) *agentProc {
	t.Helper()
	_, port, _ := strings.Cut(strings.TrimPrefix(h.MQTT, "tcp://127.0.0.1"), ":")
	node := uniq("ing-")
	a := &agentProc{t: t, hub: h, node: node, ns: "e2e-" + node, stateDir: filepath.Join(env.dir, node)}
	a.logPath = filepath.Join(env.dir, node+".log")
	nsenter, err := harness.FindBinary("nsenter")
	if err != nil {
		t.Fatal(err)
	}
	a.bin = nsenter
	a.args = []string{"--net=/run/netns/" + site.Name, "--", env.agentBin,
		"--broker", "tcp://" + site.HostIP + ":" + port, "--node-name", node,
		"--containerd-socket", env.ctd.Socket, "--containerd-namespace", a.ns,
		"--state-dir", a.stateDir, "--insecure-registry", siteRegistry(site),
		"--heartbeat-interval", "1s", "--resync-interval", "2s", "--mqtt-keepalive", "2s",
		"--node-ip", site.SiteIP, "--label", api.LabelIngressNode + "=true",
		"--resolv-conf", "/dev/null",
	}
	a.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- agent %s log (tail)\n%s", a.node, a.proc.Logs())
		}
		_ = a.proc.Stop()
		removeAll(t, a.ns)
		unmountUnder(t, a.stateDir)
	})
	eventually(t, 30*time.Second, "node "+node+" Ready", func() error {
		if !h.node(node).IsReady() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return a
}

// gatewayApp is issue 17's gateway: Deployments dashboard and sensors
// (two pods each, busybox httpd on 8080, answering "APP VERSION
// HOSTNAME"), their Services, the hosts' TLS Secrets and one Ingress:
// gateway.local's / to the dashboard and /api to the sensors,
// sensors.local to the sensors, TLS for both. A pod is ready while
// ctl/down-HOSTNAME does not exist and its httpd answers.
func gatewayApp(image, ctl, version string, gw, sensors *testCert) string {
	deploy := func(app string) string {
		script := fmt.Sprintf(`mkdir -p /www/api && echo "%s $VERSION $(cat /etc/hostname)" > /www/index.html && cp /www/index.html /www/api/index.html && exec httpd -f -p 8080 -h /www`, app)
		return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: 2
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 2
      volumes: [{name: ctl, hostPath: {path: %[2]s}}]
      containers:
        - name: web
          image: %[3]s
          env: [{name: VERSION, value: %[4]s}]
          command: ["sh", "-c", %[5]q]
          ports: [{name: http, containerPort: 8080}]
          volumeMounts: [{name: ctl, mountPath: /ctl}]
          readinessProbe:
            exec: {command: ["sh", "-c", "test ! -e /ctl/down-$(cat /etc/hostname) && wget -q -O /dev/null http://127.0.0.1:8080/"]}
            periodSeconds: 1
            failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  selector: {app: %[1]s}
  ports: [{name: web, port: 80, targetPort: http}]
---
`, app, ctl, image, version, script)
	}
	return deploy("dashboard") + deploy("sensors") + gw.secretYAML("gateway-tls") + "---\n" + sensors.secretYAML("sensors-tls") + `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: gateway}
spec:
  tls:
    - {hosts: [gateway.local], secretName: gateway-tls}
    - {hosts: [sensors.local], secretName: sensors-tls}
  rules:
    - host: gateway.local
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: dashboard, port: {number: 80}}}}
          - {path: /api, pathType: Prefix, backend: {service: {name: sensors, port: {name: web}}}}
    - host: sensors.local
      http:
        paths:
          - {path: /, pathType: ImplementationSpecific, backend: {service: {name: sensors, port: {number: 80}}}}
`
}

// TestIngress is issue 17 end to end on a real hub, agent, containerd and
// pod network: two Deployments behind two Services, one Ingress with two
// hosts and a path split, over HTTP and HTTPS (each host's certificate by
// SNI), a pod failing readiness leaving the rotation, a newer Ingress's
// conflicting route and missing backend, a rolling update under a steady
// stream of requests, and the board cut off from the hub still routing and
// following its pods' readiness.
func TestIngress(t *testing.T) {
	h := startHub(t, hubOptions{mqttHost: "0.0.0.0", grace: 4 * time.Second})
	site := startSite(t)
	t.Cleanup(func() { _ = site.Restore() })
	lap := newLaptop(t, site)
	a := startIngressAgent(t, h, site)
	ctl := t.TempDir()
	gwCert, sensorsCert := newTestCert(t, "gateway.local"), newTestCert(t, "sensors.local")
	roots := x509.NewCertPool()
	roots.AddCert(gwCert.leaf)
	roots.AddCert(sensorsCert.leaf)
	c := lap.client(roots)
	image := siteImage(site, "v1")
	h.applyYAML(gatewayApp(image, ctl, "v1", gwCert, sensorsCert))

	// Served: status names the board; each host and path reaches its app.
	eventually(t, 120*time.Second, "both apps answer through the Ingress", func() error {
		for url, app := range map[string]string{"http://gateway.local/": "dashboard", "http://gateway.local/api/": "sensors", "http://sensors.local/": "sensors"} {
			code, line, _, err := ingressFetch(c, url)
			if err != nil || code != 200 || !strings.HasPrefix(line, app+" v1 ") {
				return fmt.Errorf("%s: %d %q %v", url, code, line, err)
			}
		}
		return nil
	})
	eventually(t, 30*time.Second, "hub get ing shows the board", func() error {
		out := h.mustCLI("get", "ing")
		want := fmt.Sprintf(`(?m)^gateway +<none> +gateway\.local,sensors\.local +%s +80, 443 +\S+$`, regexp.QuoteMeta(site.SiteIP))
		if !regexp.MustCompile(want).MatchString(out) {
			return fmt.Errorf("hub get ing:\n%s", out)
		}
		return nil
	})
	desc := h.mustCLI("describe", "ing", "gateway")
	for _, want := range []string{"Address:          " + site.SiteIP, "gateway-tls terminates gateway.local", "/api   sensors:web (10.42."} {
		if !strings.Contains(desc, want) {
			t.Errorf("hub describe ing lacks %q:\n%s", want, desc)
		}
	}
	t.Logf("hub get ing:\n%s\nhub describe ing gateway:\n%s", h.mustCLI("get", "ing"), desc)
	pods := answering(t, c, "http://gateway.local/", 40)
	if len(pods) != 2 {
		t.Fatalf("40 requests reached %v, want both dashboard pods", pods)
	}
	if code, _, _, err := ingressFetch(c, "http://other.local/"); err != nil || code != 404 {
		t.Errorf("a host no rule names: %d %v", code, err)
	}

	t.Logf("served over HTTP by %v", pods)

	// HTTPS: each host gets its own certificate.
	for url, want := range map[string]string{"https://gateway.local/": "gateway.local", "https://sensors.local/": "sensors.local"} {
		code, line, cn, err := ingressFetch(c, url)
		if err != nil || code != 200 || cn != want {
			t.Errorf("%s: %d %q, certificate %q, %v; want %s's", url, code, line, cn, err, want)
		}
	}

	// A pod failing readiness stops receiving requests; back, it gets them again.
	down := firstKey(pods)
	t.Logf("failing the readiness of %q", down)
	failReadiness(t, ctl, down, true)
	eventually(t, 15*time.Second, down+" out of the rotation", func() error {
		if got := answering(t, c, "http://gateway.local/", 20); got[down] > 0 || len(got) != 1 {
			return fmt.Errorf("answered by %v", got)
		}
		return nil
	})
	failReadiness(t, ctl, down, false)
	eventually(t, 15*time.Second, down+" back in the rotation", func() error {
		if got := answering(t, c, "http://gateway.local/", 20); got[down] == 0 {
			return fmt.Errorf("answered by %v", got)
		}
		return nil
	})

	t.Log("a newer Ingress with a conflicting route and a missing backend")
	// A newer Ingress claiming gateway.local's / keeps nothing of it, and
	// its backend that does not exist is answered 503; both are told.
	h.applyYAML(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: late}
spec:
  rules:
    - host: gateway.local
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: sensors, port: {number: 80}}}}
          - {path: /nope, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}
`)
	eventually(t, 20*time.Second, "the late Ingress's missing backend is 503", func() error {
		if code, _, _, err := ingressFetch(c, "http://gateway.local/nope/x"); err != nil || code != 503 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	if code, line, _, err := ingressFetch(c, "http://gateway.local/"); err != nil || code != 200 || !strings.HasPrefix(line, "dashboard ") {
		t.Errorf("gateway.local/ after the late Ingress: %d %q %v", code, line, err)
	}
	eventually(t, 10*time.Second, "the late Ingress's events", func() error {
		got := ingressEvents(t, h, "late")
		for _, want := range []string{
			`Warning RouteConflict: host "gateway.local" path "/" (Prefix) is routed by the older Ingress default/gateway: this one's route is not served`,
			`Warning BackendNotFound: Service "default/nope" not found: requests to it are answered 503`,
		} {
			if !got[want] {
				return fmt.Errorf("no %q among %v", want, got)
			}
		}
		return nil
	})
	h.mustCLI("delete", "ingress", "late")

	t.Log("a rolling update under a steady stream of requests")
	// A rolling update of the dashboard under a steady stream of requests.
	stream := startIngressStream(c, "http://gateway.local/", 4)
	h.applyYAML(gatewayApp(image, ctl, "v2", gwCert, sensorsCert))
	if out, errOut, err := h.cli("", "rollout", "status", "deploy/dashboard", "--timeout", "180s"); err != nil {
		t.Fatalf("rollout status: %v\n%s%s", err, out, errOut)
	}
	eventually(t, 30*time.Second, "every answer from v2", func() error {
		if got := answering(t, c, "http://gateway.local/", 20); len(got) != 2 || !allPrefixed(got, "dashboard v2 ") {
			return fmt.Errorf("answered by %v", got)
		}
		return nil
	})
	ok, failed, errs := stream.stop()
	t.Logf("rolling update under load: %d requests, %d failed %v", ok+failed, failed, errs)
	if failed > 0 || ok < 100 {
		t.Errorf("rolling update: %d of %d requests failed (%v)", failed, ok+failed, errs)
	}

	// Cut off from the hub, the board keeps routing, over HTTP and HTTPS,
	// and follows its pods' readiness on its own.
	pods = answering(t, c, "http://gateway.local/", 40)
	t.Log("cutting the site off the hub")
	if err := site.Cut(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the hub sees the node gone", func() error {
		if h.node(a.node).IsReady() {
			return fmt.Errorf("still Ready")
		}
		return nil
	})
	for url, want := range map[string]string{"http://gateway.local/api/": "sensors v2 ", "https://gateway.local/": "dashboard v2 ", "https://sensors.local/": "sensors v2 "} {
		if code, line, _, err := ingressFetch(c, url); err != nil || code != 200 || !strings.HasPrefix(line, want) {
			t.Errorf("offline %s: %d %q %v", url, code, line, err)
		}
	}
	down = firstKey(pods)
	t.Logf("offline: failing the readiness of %q", down)
	failReadiness(t, ctl, down, true)
	eventually(t, 15*time.Second, "offline: "+down+" out of the rotation", func() error {
		if got := answering(t, c, "http://gateway.local/", 20); got[down] > 0 || len(got) != 1 {
			return fmt.Errorf("answered by %v", got)
		}
		return nil
	})
	failReadiness(t, ctl, down, false)
	eventually(t, 15*time.Second, "offline: "+down+" back", func() error {
		if got := answering(t, c, "http://gateway.local/", 20); got[down] == 0 {
			return fmt.Errorf("answered by %v", got)
		}
		return nil
	})
}

// answering sends n requests and counts the answers by their first line.
func answering(t *testing.T, c *http.Client, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		code, line, _, err := ingressFetch(c, url)
		if err != nil || code != 200 {
			got[fmt.Sprintf("error: %d %v", code, err)]++
			continue
		}
		got[line]++
	}
	return got
}

func firstKey(m map[string]int) string {
	for k := range m {
		return k
	}
	return ""
}

func allPrefixed(m map[string]int, prefix string) bool {
	for k := range m {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
	}
	return true
}

// failReadiness makes the pod that answered line ("APP VERSION HOSTNAME")
// fail its readiness probe, or pass it again.
func failReadiness(t *testing.T, ctl, line string, down bool) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 3 {
		t.Fatalf("not an answer: %q", line)
	}
	p := filepath.Join(ctl, "down-"+f[2])
	if down {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}

// ingressEvents are the events about Ingress name, as "TYPE REASON: MESSAGE".
func ingressEvents(t *testing.T, h *hubProc, name string) map[string]bool {
	t.Helper()
	var list struct{ Items []api.Event }
	h.getJSON(&list, "get", "events", "-A", "-o", "json")
	out := map[string]bool{}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == api.KindIngress && e.InvolvedObject.Name == name {
			out[string(e.Type)+" "+e.Reason+": "+e.Message] = true
		}
	}
	return out
}

// ingressStream is clients sending requests back to back, counting the answers.
type ingressStream struct {
	stopCh chan struct{}
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
	mu     sync.Mutex
	errs   map[string]int
}

func startIngressStream(c *http.Client, url string, clients int) *ingressStream {
	s := &ingressStream{stopCh: make(chan struct{}), errs: map[string]int{}}
	for range clients {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case <-s.stopCh:
					return
				default:
				}
				code, _, _, err := ingressFetch(c, url)
				if err == nil && code == 200 {
					s.ok.Add(1)
					continue
				}
				s.failed.Add(1)
				s.mu.Lock()
				if err != nil {
					s.errs[err.Error()]++
				} else {
					s.errs[fmt.Sprintf("status %d", code)]++
				}
				s.mu.Unlock()
			}
		}()
	}
	return s
}

func (s *ingressStream) stop() (ok, failed int64, errs map[string]int) {
	close(s.stopCh)
	s.wg.Wait()
	return s.ok.Load(), s.failed.Load(), s.errs
}

// testCert is a self-signed certificate and its key.
type testCert struct {
	leaf     *x509.Certificate
	crt, key []byte
}

func newTestCert(t *testing.T, host string) *testCert {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{leaf: leaf,
		crt: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}
}

// secretYAML is the kubernetes.io/tls Secret name holding the pair.
func (c *testCert) secretYAML(name string) string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: %s}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
		name, b64(c.crt), b64(c.key))
}
