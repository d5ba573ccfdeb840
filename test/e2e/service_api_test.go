package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// webPair is issue 15's manifest pair with the test image (busybox's
// httpd serving port 80).
func webPair(image string) string {
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
          command: [httpd, -f, -p, "80"]
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

// TestServiceAllocationThroughTheCLI applies the pair to a real
// hub: both objects are created, the Service shows its allocated cluster
// IP and node port 30080 in hub get svc; another Service asking for
// 30080 is refused at its file, document and field, and nothing of that
// file is stored.
func TestServiceAllocationThroughTheCLI(t *testing.T) {
	h := startHub(t, hubOptions{})
	dir := t.TempDir()
	file := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(file, []byte(webPair(env.image)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := h.mustCLI("apply", "-f", file); out != "deployment.apps/web created\nservice/web created\n" {
		t.Fatalf("apply printed %q", out)
	}
	svc := h.mustCLI("get", "svc")
	m := regexp.MustCompile(`(?m)^web +NodePort +(\S+) +<none> +8099:30080/TCP +\S+$`).FindStringSubmatch(svc)
	if m == nil {
		t.Fatalf("hub get svc:\n%s", svc)
	}
	if ip, err := netip.ParseAddr(m[1]); err != nil || !netip.MustParsePrefix("10.43.0.0/16").Contains(ip) {
		t.Fatalf("cluster IP %q is not from the default service CIDR:\n%s", m[1], svc)
	}
	var s api.Service
	if err := json.Unmarshal([]byte(h.mustCLI("get", "svc", "web", "-o", "json")), &s); err != nil || s.Spec.ClusterIPs[0] != m[1] {
		t.Fatalf("get svc -o json: %v %+v", err, s.Spec)
	}
	t.Logf("hub get svc:\n%s", svc)

	clash := filepath.Join(dir, "clash.yaml")
	if err := os.WriteFile(clash, []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n"+
		"apiVersion: v1\nkind: Service\nmetadata: {name: admin, namespace: other}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30080}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := h.cli("", "apply", "-f", clash)
	if want := clash + ": document 2: spec.ports[0].nodePort: 30080/TCP is already allocated to Service default/web"; err == nil || !strings.Contains(errOut, want) {
		t.Fatalf("apply of a clashing Service: %v\n%s\nwant %q", err, errOut, want)
	}
	if out, _, _ := h.cli("", "get", "ns", "other", "-o", "name"); strings.TrimSpace(out) != "" {
		t.Fatalf("the clashing file's namespace was stored: %q", out)
	}
}

// TestHubRefusesOverlappingCIDRs: hub serve with a service CIDR inside
// the cluster CIDR does not start, and says which flags clash.
func TestHubRefusesOverlappingCIDRs(t *testing.T) {
	cmd := exec.Command(env.hubBin, "serve", "--insecure", "--data-dir", filepath.Join(t.TempDir(), "data"),
		"--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0",
		"--cluster-cidr", "10.42.0.0/16", "--service-cidr", "10.42.200.0/24")
	out, err := cmd.CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "--service-cidr 10.42.200.0/24 overlaps --cluster-cidr 10.42.0.0/16") {
		t.Fatalf("hub serve: exit %d\n%s", code, out)
	}
}
