package cli

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func writeAdminConf(t *testing.T, dir string) {
	t.Helper()
	ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	conf := "server: https://127.0.0.1:8443\ncertificate-authority-data: " + ca + "\ntoken: the-admin-token-of-this-hub-0123456789\n"
	if err := os.WriteFile(filepath.Join(dir, "admin.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKubeconfigFromTheDataDir(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	writeAdminConf(t, dir)
	out, _, err := run(newRoot(BuildInfo{}, defaultServer), "kubeconfig", "--data-dir", dir, "--server", "https://hub.example:8443")
	if err != nil {
		t.Fatal(err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal([]byte(out), &kc); err != nil {
		t.Fatal(err)
	}
	if kc.Kind != "Config" || kc.CurrentContext != "flotilla" || len(kc.Clusters) != 1 || len(kc.Users) != 1 || len(kc.Contexts) != 1 {
		t.Fatalf("kubeconfig %+v", kc)
	}
	c := kc.Clusters[0].Cluster
	ca, _ := base64.StdEncoding.DecodeString(c.CertificateAuthorityData)
	if c.Server != "https://hub.example:8443" || !strings.Contains(string(ca), "BEGIN CERTIFICATE") {
		t.Errorf("cluster %+v", c)
	}
	if kc.Users[0].User.Token != "the-admin-token-of-this-hub-0123456789" || kc.Contexts[0].Context.User != kc.Users[0].Name {
		t.Errorf("user %+v, context %+v", kc.Users[0], kc.Contexts[0])
	}

	// -o writes a file only its owner reads, and does not replace one.
	path := filepath.Join(dir, "kc")
	if _, _, err := run(newRoot(BuildInfo{}, defaultServer), "kubeconfig", "--data-dir", dir, "-o", path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", path, fi, err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "server: https://127.0.0.1:8443") {
		t.Errorf("written kubeconfig:\n%s", b)
	}
	if _, _, err := run(newRoot(BuildInfo{}, defaultServer), "kubeconfig", "--data-dir", dir, "-o", path); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Errorf("second -o: %v", err)
	}
}

func TestKubeconfigNeedsCredentials(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	_, _, err := run(newRoot(BuildInfo{}, defaultServer), "kubeconfig", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "admin.conf does not exist") {
		t.Errorf("no admin.conf: %v", err)
	}
	_, _, err = run(newRoot(BuildInfo{}, defaultServer), "kubeconfig", "--server", "https://hub:8443")
	if err == nil || !strings.Contains(err.Error(), "no administrator token") {
		t.Errorf("https without a token: %v", err)
	}
	// An --insecure hub needs none.
	out, _, err := run(newRoot(BuildInfo{}, defaultServer), "kubeconfig", "--server", "http://127.0.0.1:8080")
	if err != nil || !strings.Contains(out, "server: http://127.0.0.1:8080") {
		t.Errorf("insecure hub: %v\n%s", err, out)
	}
}
