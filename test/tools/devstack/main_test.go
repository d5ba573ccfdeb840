package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The quick start's agent gets its bootstrap token from a file only its
// owner reads, not on its command line, where every user sees it in ps
// (issue 13, item 13).
func TestAgentTokenIsNotOnTheCommandLine(t *testing.T) {
	const token = "abc123.0123456789abcdefghijklmnopqrstuv"
	file := filepath.Join(t.TempDir(), tokenFile)
	if err := os.WriteFile(file, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeTokenFile(file, token); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != token {
		t.Errorf("token file holds %q", b)
	}
	args := agentArgs("vm", "/run/containerd/containerd.sock", file, "sha256:00")
	if strings.Contains(strings.Join(args, " "), token) || slices.Contains(args, "--token") {
		t.Errorf("the token is on the agent's command line: %v", args)
	}
	if i := slices.Index(args, "--token-file"); i < 0 || i+1 >= len(args) || args[i+1] != file {
		t.Errorf("the agent is not given --token-file %s: %v", file, args)
	}
}
