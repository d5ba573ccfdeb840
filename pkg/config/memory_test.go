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
