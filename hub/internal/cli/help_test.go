package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// isolate gives the test a home without a client config and no FLOTILLA_*
// settings, whatever the machine it runs on has.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "FLOTILLA_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	return home
}

// run executes the hub command tree with args and returns its output and
// the error main would print.
func run(root *cobra.Command, args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errb.String(), err
}

// pflag turns a back-quoted word in a flag's usage into the placeholder
// of its value ("--token hub token create"); every placeholder must be
// one word.
func TestFlagPlaceholdersAreOneWord(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if name, _ := pflag.UnquoteUsage(f); strings.ContainsAny(name, " \t") {
					t.Errorf("hub %s --%s: the help shows %q as its value's placeholder", c.CommandPath(), f.Name, name)
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCommand(BuildInfo{}))
}

func TestHelpShowsTheServerOfTheConfig(t *testing.T) {
	home := isolate(t)
	out, _, err := run(NewRootCommand(BuildInfo{}), "--help")
	if err != nil || !strings.Contains(out, defaultServer) {
		t.Fatalf("without a config the help should show the built-in default %s (%v):\n%s", defaultServer, err, out)
	}
	cfg := filepath.Join(home, ".flotilla", "config")
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte("server: https://hub.example.internal:8443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--help"}, {"get", "--help"}} {
		out, _, err := run(NewRootCommand(BuildInfo{}), args...)
		if err != nil {
			t.Fatal(err)
		}
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "--server") {
				line = l
			}
		}
		if !strings.Contains(line, "https://hub.example.internal:8443") || !strings.Contains(line, cfg) || strings.Contains(line, defaultServer) {
			t.Errorf("hub %s: --server line %q, want the config's server and where it comes from", strings.Join(args, " "), line)
		}
	}
	// --config names another file: that one's server.
	other := filepath.Join(t.TempDir(), "admin.conf")
	if err := os.WriteFile(other, []byte("server: https://10.0.0.9:8443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, _ = run(NewRootCommand(BuildInfo{}), "--config", other, "--help")
	if !strings.Contains(out, "https://10.0.0.9:8443") {
		t.Errorf("--config %s --help:\n%s", other, out)
	}
}

// closedPort returns a loopback URL nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestUnreachableHubWithoutConfigSaysSo(t *testing.T) {
	isolate(t)
	url := closedPort(t)
	_, _, err := run(newRoot(BuildInfo{}, url), "get", "nodes")
	if err == nil {
		t.Fatal("no error without a hub")
	}
	msg := err.Error()
	if !strings.Contains(msg, "cannot reach the hub at "+url) || !strings.Contains(msg, filepath.Join("~", ".flotilla", "config")) ||
		!strings.Contains(msg, "admin.conf") {
		t.Fatalf("error %q should say the config file is missing and how to give one", msg)
	}
	// A server the user gave is theirs: no hint about the config then.
	_, _, err = run(newRoot(BuildInfo{}, defaultServer), "get", "nodes", "--server", url)
	if err == nil || strings.Contains(err.Error(), ".flotilla") {
		t.Fatalf("with --server: %v", err)
	}
}

func TestUntrustedHubCertificateIsNotUnreachable(t *testing.T) {
	isolate(t)
	hub := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"apiVersion":"v1","kind":"NodeList","metadata":{},"items":[]}`)
	}))
	hub.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	hub.StartTLS()
	defer hub.Close()
	// Another CA (every httptest server has the same certificate).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(otherCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"another CA": {"get", "nodes", "--server", hub.URL, "--certificate-authority", otherCA},
		"no CA":      {"get", "nodes", "--server", hub.URL},
	} {
		_, _, err := run(NewRootCommand(BuildInfo{}), args...)
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		msg := err.Error()
		if strings.Contains(msg, "cannot reach") || !strings.Contains(msg, "answered") || !strings.Contains(msg, "not trusted") ||
			!strings.Contains(msg, "certificate-authority") {
			t.Errorf("%s: %q should say the hub answered with a certificate the configured CA does not vouch for, and how to fix it", name, msg)
		}
	}
	// The right CA works, so the test's hub is a good one.
	goodCA := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(goodCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hub.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(NewRootCommand(BuildInfo{}), "get", "nodes", "--server", hub.URL, "--certificate-authority", goodCA); err != nil {
		t.Fatalf("the hub's own CA: %v", err)
	}
}

func TestErrorsFromTheHubArePrintedOnce(t *testing.T) {
	se := &client.StatusError{Status: api.Status{Code: 404, Reason: api.ReasonNotFound, Message: `pods "x" not found`}}
	if got := ErrorText(se); got != `Error from server (NotFound): pods "x" not found` {
		t.Errorf("server error printed as %q", got)
	}
	if got := ErrorText(fmt.Errorf("rollout status: %w", se)); got != `rollout status: Error from server (NotFound): pods "x" not found` {
		t.Errorf("wrapped server error printed as %q", got)
	}
	if got := ErrorText(fmt.Errorf("must specify -f")); got != "error: must specify -f" {
		t.Errorf("local error printed as %q", got)
	}
}
