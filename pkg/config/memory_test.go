package config

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

func TestApplyMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(math.MaxInt64)
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "16Mi", want: 16 << 20},
		{in: "64M", want: 64_000_000},
		{in: "0", want: 0},
		{in: "1Mi", wantErr: "below 4Mi"},
		{in: "lots", wantErr: `--memory-limit "lots"`},
		{in: "-5Mi", wantErr: "negative"},
	} {
		debug.SetMemoryLimit(math.MaxInt64)
		got, err := ApplyMemoryLimit(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %d, %v; want %d", tc.in, got, err, tc.want)
		}
		if tc.want > 0 && debug.SetMemoryLimit(-1) != tc.want {
			t.Errorf("%q: runtime limit %d, want %d", tc.in, debug.SetMemoryLimit(-1), tc.want)
		}
	}
}

func TestApplyGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	for _, tc := range []struct {
		in      int
		wantErr string
	}{{in: 25}, {in: 100}, {in: 0, wantErr: "at least 1"}, {in: -1, wantErr: "--gc-percent -1"}} {
		debug.SetGCPercent(100)
		got, err := ApplyGCPercent(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%d: err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.in {
			t.Errorf("%d: got %d, %v", tc.in, got, err)
		}
		if p := debug.SetGCPercent(100); p != tc.in {
			t.Errorf("%d: runtime percent %d", tc.in, p)
		}
	}
	// GOGC in the environment wins: the runtime read it at start, so here
	// the percentage in force stands for it.
	t.Setenv("GOGC", "60")
	debug.SetGCPercent(60)
	if got, err := ApplyGCPercent(25); err != nil || got != 60 {
		t.Errorf("with GOGC set: got %d, %v; want 60", got, err)
	}
	if p := debug.SetGCPercent(100); p != 60 {
		t.Errorf("with GOGC set: runtime percent %d, want 60", p)
	}
}
