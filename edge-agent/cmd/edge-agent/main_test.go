package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flotilla-edge/flotilla/pkg/config"
)

// pflag turns a back-quoted word in a flag's usage into the placeholder
// of its value: "--token hub token create" instead of "--token string".
func TestFlagPlaceholdersAreOneWord(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if name, _ := pflag.UnquoteUsage(f); strings.ContainsAny(name, " \t") {
				t.Errorf("%s --%s: the help shows %q as its value's placeholder", c.CommandPath(), f.Name, name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())

	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--token string", "--ca-fingerprint string"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("edge-agent --help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	token := func(flags map[string]string) (string, error) {
		cmd := newRootCommand()
		for k, v := range flags {
			if err := cmd.Flags().Set(k, v); err != nil {
				t.Fatalf("--%s: %v", k, err)
			}
		}
		v, err := config.Load(cmd.Flags(), "")
		if err != nil {
			t.Fatal(err)
		}
		return bootstrapToken(v, log)
	}
	good := write("token", "abc123.0123456789abcdefghijklmnopqrstuv\n", 0o600)
	if got, err := token(map[string]string{"token-file": good}); err != nil || got != "abc123.0123456789abcdefghijklmnopqrstuv" {
		t.Fatalf("--token-file: %q, %v", got, err)
	}
	if logs.Len() != 0 {
		t.Errorf("a 0600 file was warned about: %s", logs.String())
	}
	if got, err := token(map[string]string{"token": "on.cmdline"}); err != nil || got != "on.cmdline" {
		t.Fatalf("--token: %q, %v", got, err)
	}
	t.Setenv("FLOTILLA_TOKEN", "from.env")
	if got, err := token(nil); err != nil || got != "from.env" {
		t.Fatalf("FLOTILLA_TOKEN: %q, %v", got, err)
	}
	if _, err := token(map[string]string{"token-file": good}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("FLOTILLA_TOKEN and --token-file: %v", err)
	}
	os.Unsetenv("FLOTILLA_TOKEN")
	for name, content := range map[string]string{"empty": "\n", "two": "a.b\nc.d\n"} {
		p := write(name, content, 0o600)
		if _, err := token(map[string]string{"token-file": p}); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s token file: %v", name, err)
		}
	}
	if _, err := token(map[string]string{"token-file": filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing token file: %v", err)
	}
	open := write("open", "abc123.x\n", 0o644)
	if _, err := token(map[string]string{"token-file": open}); err != nil || !strings.Contains(logs.String(), "chmod 600") {
		t.Errorf("a file others can read: %v, log %q", err, logs.String())
	}
}

func TestParseNodeIP(t *testing.T) {
	if a, err := parseNodeIP("192.168.1.20"); err != nil || a.String() != "192.168.1.20" {
		t.Fatalf("parseNodeIP(192.168.1.20) = %v, %v", a, err)
	}
	if a, err := parseNodeIP(""); err != nil || a.IsValid() {
		t.Fatalf("parseNodeIP(\"\") = %v, %v; want none", a, err)
	}
	for _, bad := range []string{"board-1", "fe80::1", "127.0.0.1", "0.0.0.0", "239.1.1.1", "10.0.0.1/24"} {
		if _, err := parseNodeIP(bad); err == nil || !strings.Contains(err.Error(), "--node-ip") {
			t.Errorf("parseNodeIP(%q) = %v, want an error naming --node-ip", bad, err)
		}
	}
}
