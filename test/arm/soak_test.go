package arm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// soakDay and soakSummary are statesoak's JSON lines.
type soakDay struct {
	Day         int     `json:"day"`
	Offline     bool    `json:"offline"`
	Snapshots   int     `json:"snapshots"`
	Appended    int     `json:"outboxAppended"`
	Queued      int     `json:"outboxQueued"`
	Mapped      mapping `json:"mappedAtEndOfDay"`
	Reopened    mapping `json:"mappedAfterReopen"`
	HeapLiveMiB float64 `json:"heapLiveMiB"`
	DiskKiB     int64   `json:"diskKiB"`
	Seconds     float64 `json:"seconds"`
}

type soakSummary struct {
	Summary    bool    `json:"summary"`
	GOARCH     string  `json:"goarch"`
	Days       int     `json:"days"`
	Writes     int     `json:"writes"`
	Peak       mapping `json:"peak"`
	First      mapping `json:"firstDay"`
	Last       mapping `json:"lastDay"`
	PeakRSSMiB float64 `json:"peakRSSMiB"`
	Seconds    float64 `json:"seconds"`
	Samples    int     `json:"samples"`
}

type mapping struct {
	TotalMiB  float64 `json:"totalMiB"`
	StoreMiB  float64 `json:"storeMiB"`
	StoreMaps int     `json:"storeMaps"`
}

// Bounds of the 32-bit soak. A 32-bit ARM process has 3 GiB of address
// space (2 GiB with some kernels' split); Go reserves 512 MiB of it for
// its heap up front.
const (
	maxTotalMiB = 1024 // the whole process, reservations included
	maxStoreMiB = 128  // Badger's mapped files
	maxGrowMiB  = 32   // last day's store mappings over the first day's
	maxLiveMiB  = 96   // Go heap in use after a collection, at the end of any day
)

// TestBadgerSoak32 runs the agent's state store through a week under
// qemu-arm-static, as a GOARCH=arm GOARM=7 program
// (edge-agent/cmd/statesoak): desired snapshots every 10
// minutes, restart records of three crash-looping containers, report
// sequence numbers, and the outbox's metric samples, status reports and
// events, with two days offline while the outbox fills and a drain after;
// the store is closed, reopened and read back at the end of every day.
// Its mapped address space, read from /proc/self/maps (which qemu-user
// shows as the guest's), must stay bounded and not grow with time.
func TestBadgerSoak32(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "statesoak-armv7")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./edge-agent/cmd/statesoak")
	build.Dir = env.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build statesoak for arm: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-arm-static", bin, "-dir", t.TempDir(), "-days", "7")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("statesoak under qemu-arm-static: %s\n%s", time.Since(start).Round(time.Second), stdout.String())
	if err != nil {
		t.Fatalf("statesoak: %v\n%s", err, stderr.String())
	}

	var days []soakDay
	var sum soakSummary
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.Contains(line, []byte(`"summary":true`)) {
			if err := json.Unmarshal(line, &sum); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var d soakDay
		if err := json.Unmarshal(line, &d); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		days = append(days, d)
	}
	if !sum.Summary || sum.GOARCH != "arm" || len(days) != 7 || sum.Samples < 50 {
		t.Fatalf("incomplete soak: summary %+v, %d days", sum, len(days))
	}
	offline := 0
	for _, d := range days {
		if d.Offline {
			offline++
			if d.Queued == 0 {
				t.Errorf("day %d offline but nothing queued", d.Day)
			}
		}
		if d.HeapLiveMiB > maxLiveMiB {
			t.Errorf("day %d: %.1f MiB of live heap, over %d MiB", d.Day, d.HeapLiveMiB, maxLiveMiB)
		}
	}
	if offline == 0 {
		t.Error("the soak had no offline day")
	}
	if sum.Peak.TotalMiB > maxTotalMiB {
		t.Errorf("peak mapped address space %.1f MiB, over %d MiB", sum.Peak.TotalMiB, maxTotalMiB)
	}
	if sum.Peak.StoreMiB > maxStoreMiB {
		t.Errorf("peak mapped store files %.1f MiB, over %d MiB", sum.Peak.StoreMiB, maxStoreMiB)
	}
	if grow := sum.Last.StoreMiB - sum.First.StoreMiB; grow > maxGrowMiB {
		t.Errorf("store mappings grew %.1f MiB over the week (%.1f → %.1f): not bounded", grow, sum.First.StoreMiB, sum.Last.StoreMiB)
	}
	var table strings.Builder
	table.WriteString("day  offline  mapped MiB  store MiB  store maps  live heap MiB  disk MiB  seconds\n")
	for _, d := range days {
		table.WriteString(strings.TrimRight(strings.Join([]string{
			itoa(d.Day), boolStr(d.Offline), ftoa(d.Mapped.TotalMiB), ftoa(d.Mapped.StoreMiB), itoa(d.Mapped.StoreMaps),
			ftoa(d.HeapLiveMiB), ftoa(float64(d.DiskKiB) / 1024), ftoa(d.Seconds)}, "  "), " ") + "\n")
	}
	t.Logf("32-bit Badger soak (%d writes): peak mapped %.1f MiB (store files %.1f MiB in %d maps), emulator peak RSS %.1f MiB\n%s",
		sum.Writes, sum.Peak.TotalMiB, sum.Peak.StoreMiB, sum.Peak.StoreMaps, sum.PeakRSSMiB, table.String())
}

func itoa(n int) string { return strconv.Itoa(n) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func boolStr(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
