// Package scale drives a real hub for the scale benchmarks and the fleet
// simulator's smoke test: it builds and starts `hub serve` in its own
// process (plaintext MQTT, with --insecure where the hub has that flag),
// reads the hub's own view of nodes and DaemonSets over its HTTP API, and
// measures the hub process's CPU time and peak memory from /proc.
package scale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/test/harness"
)

// Build compiles the packages into dir and returns each binary's path by
// its base name. Run from the repository root.
func Build(ctx context.Context, dir string, pkgs ...string) (map[string]string, error) {
	return BuildTagged(ctx, dir, "", pkgs...)
}

// BuildTagged is Build with build tags (comma separated; "" for none),
// such as "pprof" for a hub that serves its profiles.
func BuildTagged(ctx context.Context, dir, tags string, pkgs ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, pkg := range pkgs {
		bin := filepath.Join(dir, filepath.Base(pkg))
		args := []string{"build", "-o", bin}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s (run from the repository root): %w\n%s", pkg, err, b)
		}
		out[filepath.Base(pkg)] = bin
	}
	return out, nil
}

// HubOptions start a hub.
type HubOptions struct {
	Bin     string // the hub binary
	DataDir string
	LogPath string
	// HTTPPort and MQTTPort (0: a free one).
	HTTPPort int
	MQTTPort int
	// Broker, if set, is an external broker URL (the embedded one is off).
	Broker string
	// Extra flags for `hub serve`.
	Extra []string
}

// Hub is a running `hub serve`.
type Hub struct {
	Opts   HubOptions
	Server string // http://127.0.0.1:port
	// BrokerURL is where agents connect.
	BrokerURL string
	Proc      *harness.Process
	client    *http.Client
}

// StartHub starts `hub serve` and waits until its API answers. The
// embedded broker listens on every address, plaintext: with --insecure
// where the hub knows that flag (it then defaults to TLS), as is where it
// does not.
func StartHub(ctx context.Context, o HubOptions) (*Hub, error) {
	var err error
	if o.HTTPPort == 0 {
		if o.HTTPPort, err = harness.FreePort(); err != nil {
			return nil, err
		}
	}
	if o.MQTTPort == 0 && o.Broker == "" {
		if o.MQTTPort, err = harness.FreePort(); err != nil {
			return nil, err
		}
	}
	h := &Hub{Opts: o, Server: fmt.Sprintf("http://127.0.0.1:%d", o.HTTPPort), client: &http.Client{Timeout: 30 * time.Second}}
	if err := h.Start(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// Start (re)starts the hub process with the same options.
func (h *Hub) Start(ctx context.Context) error {
	o := h.Opts
	args := []string{"serve", "--data-dir", o.DataDir, "--http-listen", fmt.Sprintf("127.0.0.1:%d", o.HTTPPort), "--log-level", "warn"}
	if o.Broker != "" {
		args = append(args, "--broker", o.Broker)
		h.BrokerURL = o.Broker
	} else {
		args = append(args, "--mqtt-listen", fmt.Sprintf("0.0.0.0:%d", o.MQTTPort))
		h.BrokerURL = fmt.Sprintf("tcp://127.0.0.1:%d", o.MQTTPort)
	}
	insecure, err := hasFlag(ctx, o.Bin, "--insecure")
	if err != nil {
		return err
	}
	if insecure {
		args = append(args, "--insecure")
	}
	args = append(args, o.Extra...)
	p, err := harness.StartTiedProcess("hub", o.LogPath, o.Bin, args...)
	if err != nil {
		return err
	}
	h.Proc = p
	// Ready is the API answering its health check: a list of 10,000 nodes
	// would measure the list, not the start.
	if err := p.WaitReady(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Server+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := h.client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	}); err != nil {
		_ = p.Stop()
		return err
	}
	if o.Broker == "" {
		if err := p.WaitReady(ctx, harness.DialCheck("tcp", fmt.Sprintf("127.0.0.1:%d", o.MQTTPort))); err != nil {
			_ = p.Stop()
			return err
		}
	}
	return nil
}

// hasFlag reports whether `hub serve --help` lists flag.
func hasFlag(ctx context.Context, bin, flag string) (bool, error) {
	out, err := exec.CommandContext(ctx, bin, "serve", "--help").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("%s serve --help: %w: %s", bin, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if f == flag || strings.HasPrefix(f, flag+"=") {
				return true, nil
			}
		}
	}
	return false, nil
}

// Stop stops the hub process.
func (h *Hub) Stop() error {
	if h.Proc == nil {
		return nil
	}
	return h.Proc.Stop()
}

// CLI runs a hub CLI command against the hub, with stdin if not empty.
func (h *Hub) CLI(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, h.Opts.Bin, append(args, "--server", h.Server)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("hub %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// GetJSON GETs path from the hub's API into out.
func (h *Hub) GetJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.Server+path, nil)
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(buf.Bytes()))
	}
	return json.Unmarshal(buf.Bytes(), out)
}

// DaemonSet returns the DaemonSet as the hub shows it.
func (h *Hub) DaemonSet(ctx context.Context, namespace, name string) (*api.DaemonSet, error) {
	var ds api.DaemonSet
	err := h.GetJSON(ctx, fmt.Sprintf("/apis/apps/v1/namespaces/%s/daemonsets/%s", namespace, name), &ds)
	return &ds, err
}

// Nodes returns every node as the hub shows it.
func (h *Hub) Nodes(ctx context.Context) ([]api.Node, error) {
	var list api.List
	if err := h.GetJSON(ctx, "/api/v1/nodes", &list); err != nil {
		return nil, err
	}
	out := make([]api.Node, len(list.Items))
	for i, raw := range list.Items {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("decode node: %w", err)
		}
	}
	return out, nil
}

// Pods returns the pods of namespace as the hub shows them.
func (h *Hub) Pods(ctx context.Context, namespace string) ([]api.Pod, error) {
	var list api.List
	if err := h.GetJSON(ctx, "/api/v1/namespaces/"+namespace+"/pods", &list); err != nil {
		return nil, err
	}
	out := make([]api.Pod, len(list.Items))
	for i, raw := range list.Items {
		if err := json.Unmarshal(raw, &out[i]); err != nil {
			return nil, fmt.Errorf("decode pod: %w", err)
		}
	}
	return out, nil
}

// WaitRollout polls the DaemonSet every interval until its rollout of a
// template with image is Complete over want nodes, and returns when it
// first saw that. It fails on a Failed or RolledBack rollout, or when ctx
// ends, with the last status. progress, if set, is given every status
// polled and whether it is of the template with image (until the
// controller's first pass over that template, the hub shows the previous
// rollout's).
func (h *Hub) WaitRollout(ctx context.Context, namespace, name, image string, want int, interval time.Duration, progress func(ro *api.RolloutStatus, current bool)) (time.Time, error) {
	var last *api.RolloutStatus
	for {
		ds, err := h.DaemonSet(ctx, namespace, name)
		if err == nil && ds.Status.Rollout != nil {
			ro := ds.Status.Rollout
			last = ro
			// The rollout status is of the template being applied, not
			// the previous one's completed rollout.
			current := len(ds.Spec.Template.Spec.Containers) > 0 && ds.Spec.Template.Spec.Containers[0].Image == image &&
				ro.TemplateHash == api.HashTemplate(&ds.Spec.Template)
			if progress != nil {
				progress(ro, current)
			}
			switch {
			case current && ro.Phase == api.RolloutComplete && int(ro.Updated) == want && int(ro.Ready) == want && int(ro.Total) == want:
				return time.Now(), nil
			case current && (ro.Phase == api.RolloutFailed || ro.Phase == api.RolloutRolledBack):
				return time.Time{}, fmt.Errorf("rollout of %s %s: %s", name, ro.Phase, ro.Message)
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("rollout of %s to %s not complete over %d nodes: %w (last: %+v)", name, image, want, ctx.Err(), summary(last))
		case <-time.After(interval):
		}
	}
}

func summary(ro *api.RolloutStatus) string {
	if ro == nil {
		return "no rollout status"
	}
	return fmt.Sprintf("phase %s revision %d: %d/%d updated, %d ready, %d unavailable, %d failed, %d offline-pending; %s",
		ro.Phase, ro.Revision, ro.Updated, ro.Total, ro.Ready, ro.Unavailable, ro.Failed, ro.OfflinePending, ro.Message)
}

// DaemonSetManifest is a DaemonSet over the nodes labelled selector, with
// image and maxUnavailable (a count or a percentage). With
// probeDelaySeconds ≥ 0 its container has an exec readiness probe (which
// the simulated runtime answers) starting that long after the container;
// below 0 it has none and is Ready once running.
func DaemonSetManifest(name, image, selector, maxUnavailable string, probeDelaySeconds int) string {
	probe := ""
	if probeDelaySeconds >= 0 {
		probe = fmt.Sprintf("\n          readinessProbe: {exec: {command: [\"true\"]}, initialDelaySeconds: %d, periodSeconds: 1}", probeDelaySeconds)
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: %s}
spec:
  selector: {matchLabels: {app: %s}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: %q}}
  template:
    metadata: {labels: {app: %s}}
    spec:
      nodeSelector: {%s}
      terminationGracePeriodSeconds: 0
      containers:
        - name: main
          image: %s%s
`, name, name, maxUnavailable, name, selector, image, probe)
}

// ProcStats is a process's CPU time and memory from /proc.
type ProcStats = harness.ProcStats

// ReadProc reads pid's CPU time and memory.
func ReadProc(pid int) (ProcStats, error) { return harness.ReadProc(pid) }

// LoadAverage returns /proc/loadavg's first three fields.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
