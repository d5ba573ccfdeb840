package badgerlog

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The cache monitor's minute-by-minute advice goes to debug; every other
// warning and error keeps its level (issue 13, item 12).
func TestCacheAdviceIsDebugOtherWarningsAreNot(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	// What Badger v4's monitorCache logs, with its own format strings.
	l.Warningf("%s might be too small. Metrics: %s\n", "Block cache", "hit: 1 miss: 99\nkeys-added: 3")
	l.Warningf("Cache life expectancy (in seconds): %+v\n", "\n -- Histogram:\nMin value: 0")
	l.Warningf("Block cache might be too small. Metrics: %s\n", "x") // not Badger's format: kept
	l.Warningf("Truncate Needed. File %s size: %d Endoffset: %d", "000001.vlog", 10, 5)
	l.Errorf("Failure while flushing memtable to disk: %v. Retrying...\n", "disk full")
	l.Infof("L0 was stalled for %s", "1s")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	level := func(msg string) string {
		for _, line := range lines {
			if strings.Contains(line, msg) {
				_, rest, _ := strings.Cut(line, "level=")
				lvl, _, _ := strings.Cut(rest, " ")
				return lvl
			}
		}
		return "absent"
	}
	for msg, want := range map[string]string{
		"Block cache might be too small. Metrics: hit": "DEBUG",
		"Cache life expectancy (in seconds)":           "DEBUG",
		"Block cache might be too small. Metrics: x":   "WARN",
		"Truncate Needed":                              "WARN",
		"Failure while flushing memtable to disk":      "ERROR",
		"L0 was stalled":                               "absent",
	} {
		if got := level(msg); got != want {
			t.Errorf("%q logged at %s, want %s\n%s", msg, got, want, buf.String())
		}
	}

	// At the hub's default level the advice is not written at all.
	buf.Reset()
	l = New(slog.New(slog.NewTextHandler(&buf, nil)))
	l.Warningf("%s might be too small. Metrics: %s\n", "Index cache", "m")
	if buf.Len() != 0 {
		t.Errorf("advice written at info level: %s", buf.String())
	}
}

// The format strings above are Badger's: an upgrade that rewords them
// must update cacheAdvice, or the warning is back.
func TestCacheAdviceFormatsAreBadgers(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dgraph-io/badger/v4").Output()
	if err != nil {
		t.Fatalf("find Badger's source: go list: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "db.go"))
	if err != nil {
		t.Fatal(err)
	}
	for format := range cacheAdvice {
		quoted := strings.ReplaceAll(format, "\n", `\n`)
		if !strings.Contains(string(src), `Warningf("`+quoted+`"`) {
			t.Errorf("Badger's db.go no longer logs Warningf(%q)", quoted)
		}
	}
}
