package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// TestMeasureIngress is a measurement, not a check. On the gateway of
// TestIngress it measures, from the laptop: requests per second and
// latency through the Ingress against the same pods reached directly (the
// laptop routes the pod subnet through the board); the agent's memory
// with the gateway's Ingress and with 100 more, one host each; and the
// time from applying a change to an Ingress (a new host) to its answer.
// The figures go in docs/benchmarks.md:
//
//	FLOTILLA_MEASURE=1 go test -v -count=1 -run TestMeasureIngress ./test/e2e/
func TestMeasureIngress(t *testing.T) {
	if os.Getenv("FLOTILLA_MEASURE") == "" {
		t.Skip("a measurement, not a check: set FLOTILLA_MEASURE=1 to run it")
	}
	h := startHub(t, hubOptions{mqttHost: "0.0.0.0", grace: 10 * time.Second})
	site := startSite(t)
	lap := newLaptop(t, site)
	if err := runIP("ip", "-n", lap.name, "route", "add", "10.42.0.0/16", "via", lap.boardIP); err != nil {
		t.Fatal(err)
	}
	a := startIngressAgent(t, h, site)
	ctl := t.TempDir()
	gwCert, sensorsCert := newTestCert(t, "gateway.local"), newTestCert(t, "sensors.local")
	roots := x509.NewCertPool()
	roots.AddCert(gwCert.leaf)
	c := lap.client(roots)
	// The agent's resident set, settled.
	rss := func() int64 {
		time.Sleep(5 * time.Second)
		st, err := harness.ReadProc(a.proc.Pid())
		if err != nil {
			t.Fatal(err)
		}
		return st.RSS >> 10
	}
	app, ingress, ok := strings.Cut(gatewayApp(siteImage(site, "v1"), ctl, "v1", gwCert, sensorsCert), "apiVersion: networking.k8s.io/v1\nkind: Ingress\n")
	if !ok {
		t.Fatal("no Ingress in the gateway's manifest")
	}
	h.applyYAML(app)
	eventually(t, 120*time.Second, "four pods Ready", func() error {
		var pods struct{ Items []api.Pod }
		h.getJSON(&pods, "get", "pods", "-o", "json")
		ready := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == api.PodReady && c.Status == api.ConditionTrue {
					ready++
				}
			}
		}
		if ready != 4 {
			return fmt.Errorf("%d Ready", ready)
		}
		return nil
	})
	rssNone := rss()
	h.applyYAML("apiVersion: networking.k8s.io/v1\nkind: Ingress\n" + ingress)
	eventually(t, 120*time.Second, "the gateway answers", func() error {
		if got := answering(t, c, "http://gateway.local/", 10); len(got) != 2 || !allPrefixed(got, "dashboard v1 ") {
			return fmt.Errorf("answered by %v", got)
		}
		return nil
	})
	var pods struct{ Items []api.Pod }
	h.getJSON(&pods, "get", "pods", "-o", "json")
	var podIP string
	for _, p := range pods.Items {
		if p.Labels["app"] == "dashboard" && p.Status.PodIP != "" {
			podIP = p.Status.PodIP
			break
		}
	}
	if podIP == "" {
		t.Fatal("no dashboard pod address")
	}

	rssOne := rss()

	// Throughput and latency: the same pod's httpd, directly and through
	// the Ingress (which also balances over both pods), 8 clients each,
	// 10 s each, keeping their connections alive where the server does
	// (busybox httpd closes each after its response; the Ingress keeps
	// the laptop's).
	const clients, window = 8, 10 * time.Second
	direct := load(t, lap, "http://"+podIP+":8080/", true, clients, window)
	viaHTTP := load(t, lap, "http://gateway.local/", false, clients, window)
	viaHTTPS := load(t, lap, "https://gateway.local/", false, clients, window)
	t.Logf("direct to pod %s: %s", podIP, direct)
	t.Logf("through the Ingress, HTTP:  %s", viaHTTP)
	t.Logf("through the Ingress, HTTPS: %s", viaHTTPS)
	t.Logf("ratio Ingress/direct (HTTP): throughput %.2fx, p50 %.2fx, p99 %.2fx",
		viaHTTP.rps/direct.rps, float64(viaHTTP.p50)/float64(direct.p50), float64(viaHTTP.p99)/float64(direct.p99))

	// Memory: the agent's resident set after the load, then with 100
	// more Ingresses (one host each, to the dashboard), after each has
	// answered.
	rssLoaded := rss()
	var many strings.Builder
	for i := range 100 {
		fmt.Fprintf(&many, `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: host-%[1]d}
spec:
  rules:
    - host: h%[1]d.local
      http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: dashboard, port: {number: 80}}}}]}
`, i)
	}
	h.applyYAML(many.String())
	eventually(t, 60*time.Second, "the 100th Ingress answers", func() error {
		for _, i := range []int{0, 50, 99} {
			if code, _, _, err := ingressFetch(c, fmt.Sprintf("http://h%d.local/", i)); err != nil || code != 200 {
				return fmt.Errorf("h%d.local: %d %v", i, code, err)
			}
		}
		return nil
	})
	for i := range 100 {
		_, _, _, _ = ingressFetch(c, fmt.Sprintf("http://h%d.local/", i))
	}
	rssMany := rss()
	t.Logf("agent RSS: %d KiB with no Ingress, %d KiB with the gateway's (+%d KiB), %d KiB after the load, %d KiB with 100 more (+%d KiB)",
		rssNone, rssOne, rssOne-rssNone, rssLoaded, rssMany, rssMany-rssLoaded)

	// Change to serving: a new host on an Ingress, applied through the
	// CLI; the laptop asks every 5 ms until it answers from the sensors.
	var took []time.Duration
	for i := range 10 {
		host := fmt.Sprintf("new-%d.local", i)
		ing := fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: change}
spec:
  rules:
    - host: %s
      http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: sensors, port: {number: 80}}}}]}
`, host)
		start := time.Now()
		h.applyYAML(ing)
		deadline := start.Add(30 * time.Second)
		for {
			if _, line, _, err := ingressFetch(c, "http://"+host+"/"); err == nil && strings.HasPrefix(line, "sensors ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not served within 30 s", host)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	t.Logf("Ingress change to serving (a new host, applied through the CLI, 10 changes): min %s, median %s, max %s",
		took[0].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
}

// loadResult is what load measured.
type loadResult struct {
	n, failed int
	rps       float64
	p50, p99  time.Duration
}

func (r loadResult) String() string {
	return fmt.Sprintf("%d requests (%d failed), %.0f/s, p50 %s, p99 %s", r.n, r.failed, r.rps,
		r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
}

// load sends GETs to url from the laptop with clients clients back to
// back for window, and measures them: to the board at the URL's port, or
// (direct) to the URL's own address.
func load(t *testing.T, lap *laptop, url string, direct bool, clients int, window time.Duration) loadResult {
	t.Helper()
	c := lap.client(x509.NewCertPool())
	tr := c.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = clients
	if strings.HasPrefix(url, "https:") {
		tr.TLSClientConfig.InsecureSkipVerify = true // the handshake is measured, not the name
	}
	if direct {
		tr.DialContext = lap.dial // to the address of the URL itself
	}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	failed := 0
	var firstErr error
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				start := time.Now()
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					if ctx.Err() == nil {
						bad++
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			failed += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	if len(lat) == 0 {
		t.Fatalf("%s: no request succeeded (%d failed; the first: %v)", url, failed, firstErr)
	}
	return loadResult{n: len(lat), failed: failed, rps: float64(len(lat)) / window.Seconds(),
		p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
}
