// Command kubemeasure measures what `kubectl get pods -A` costs against a
// hub holding many pods (issue 19): the installed kubectl's wall time and
// the bytes the hub sends, with the Table kubectl asks for by default and
// without it (--server-print=false: the pods' JSON, printed by kubectl).
//
//	go run ./test/tools/kubemeasure -pods 10000 -runs 5
//
// It builds the hub, starts `hub serve --insecure` on free loopback
// ports, and fills the store through the API: Deployments (in 10
// namespaces) whose replicas add up to -pods; with no node the hub keeps
// their pods Pending and unschedulable, which is what `get pods` lists.
// Besides wall time (at the mercy of a shared machine's load) it prints
// the CPU time kubectl and the hub spent per run, which load changes
// less.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/test/harness"
)

func main() {
	pods := flag.Int("pods", 10000, "pods to store")
	runs := flag.Int("runs", 5, "runs of each command (the median is printed)")
	flag.Parse()
	if err := run(*pods, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "kubemeasure:", err)
		os.Exit(1)
	}
}

func run(pods, runs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		return fmt.Errorf("kubectl is not installed: %w", err)
	}
	dir, err := os.MkdirTemp("", "kubemeasure-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, err := harness.ModuleRoot()
	if err != nil {
		return err
	}
	hubBin := filepath.Join(dir, "hub")
	build := exec.CommandContext(ctx, "go", "build", "-o", hubBin, "./hub/cmd/hub")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the hub: %w\n%s", err, out)
	}
	httpPort, err := harness.FreePort()
	if err != nil {
		return err
	}
	mqttPort, err := harness.FreePort()
	if err != nil {
		return err
	}
	server := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	hub, err := harness.StartTiedProcess("hub", filepath.Join(dir, "hub.log"), hubBin, "serve", "--insecure",
		"--data-dir", filepath.Join(dir, "data"), "--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", mqttPort))
	if err != nil {
		return err
	}
	defer hub.Stop()
	if err := hub.WaitReady(ctx, harness.DialCheck("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))); err != nil {
		return err
	}

	// Fill: 10 namespaces, a Deployment each.
	const namespaces = 10
	var manifest strings.Builder
	for i := range namespaces {
		replicas := pods / namespaces
		if i < pods%namespaces {
			replicas++
		}
		fmt.Fprintf(&manifest, `apiVersion: v1
kind: Namespace
metadata: {name: team-%d}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team-%d}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: frontend}}
    spec:
      containers:
        - name: web
          image: registry.example/web:1.4.2
          command: [httpd, -f, -p, "80"]
          ports: [{containerPort: 80, name: http}]
          resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {memory: 64Mi}}
---
`, i, i, replicas)
	}
	apply := exec.CommandContext(ctx, hubBin, "--server", server, "apply", "-f", "-")
	apply.Stdin = strings.NewReader(manifest.String())
	if out, err := apply.CombinedOutput(); err != nil {
		return fmt.Errorf("apply: %w\n%s", err, out)
	}
	start := time.Now()
	for {
		n, err := countPods(ctx, server)
		if err != nil {
			return err
		}
		if n >= pods {
			break
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("%d pods after 10 minutes, want %d", n, pods)
		}
		time.Sleep(time.Second)
	}
	fmt.Printf("%d pods stored in %s\n\n", pods, time.Since(start).Round(time.Millisecond))

	home := filepath.Join(dir, "home")
	// kubectlRun runs kubectl: its wall time, CPU time, the bytes it
	// printed and the hub's CPU time meanwhile.
	kubectlRun := func(args ...string) (wall, cpu time.Duration, printed int, hubCPU time.Duration, err error) {
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--server", server, "--cache-dir", filepath.Join(home, "cache")}, args...)...)
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
		var out bytes.Buffer
		cmd.Stdout = &out
		before, err := harness.ReadProc(hub.Pid())
		if err != nil {
			return 0, 0, 0, 0, err
		}
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, 0, 0, 0, err
		}
		wall = time.Since(t0)
		after, err := harness.ReadProc(hub.Pid())
		if err != nil {
			return 0, 0, 0, 0, err
		}
		return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), out.Len(), after.CPU - before.CPU, nil
	}
	if _, _, _, _, err := kubectlRun("get", "ns"); err != nil { // fills the discovery cache
		return err
	}
	const table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
	fmt.Printf("%-44s %10s %12s %10s %14s %14s\n", "command", "wall (med)", "kubectl CPU", "hub CPU", "bytes from hub", "bytes printed")
	for _, c := range []struct {
		name   string
		args   []string
		accept string
		limit  int
	}{
		{"kubectl get pods -A", []string{"get", "pods", "-A"}, table, 500},
		{"kubectl get pods -A --chunk-size 0", []string{"get", "pods", "-A", "--chunk-size", "0"}, table, 0},
		{"kubectl get pods -A --server-print=false", []string{"get", "pods", "-A", "--server-print=false"}, "application/json", 500},
		{"kubectl get pods -A -o json", []string{"get", "pods", "-A", "-o", "json"}, "application/json", 500},
	} {
		var walls, cpus, hubs []time.Duration
		var printed int
		for range runs {
			wall, cpu, n, hubCPU, err := kubectlRun(c.args...)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			walls, cpus, hubs = append(walls, wall), append(cpus, cpu), append(hubs, hubCPU)
			printed = n
		}
		sent, err := bytesSent(ctx, server, c.accept, c.limit)
		if err != nil {
			return err
		}
		fmt.Printf("%-44s %10s %12s %10s %14d %14d\n", c.name, median(walls), median(cpus), median(hubs), sent, printed)
	}
	return nil
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2].Round(time.Millisecond)
}

// countPods is how many pods the hub holds.
func countPods(ctx context.Context, server string) (int, error) {
	var list struct {
		Metadata struct {
			Continue           string `json:"continue"`
			RemainingItemCount *int   `json:"remainingItemCount"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := getJSON(ctx, server+"/api/v1/pods?limit=1", &list); err != nil {
		return 0, err
	}
	n := len(list.Items)
	if list.Metadata.RemainingItemCount != nil {
		n += *list.Metadata.RemainingItemCount
	}
	return n, nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// bytesSent is what the hub sends for every pod, as kubectl asks for
// them (pages of limit, or one answer when 0).
func bytesSent(ctx context.Context, server, accept string, limit int) (int64, error) {
	var total int64
	cont := ""
	for {
		url := server + "/api/v1/pods"
		if limit > 0 {
			url += fmt.Sprintf("?limit=%d&continue=%s", limit, cont)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		total += int64(len(b))
		var page struct {
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return 0, err
		}
		if cont = page.Metadata.Continue; cont == "" {
			return total, nil
		}
	}
}
