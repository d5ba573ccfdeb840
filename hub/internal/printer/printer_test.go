package printer

import (
	"testing"
	"time"
)

// TestHumanDuration uses the values kubectl prints (the cases of
// k8s.io/apimachinery's duration tests plus the boundaries of each rule).
func TestHumanDuration(t *testing.T) {
	const day, year = 24 * time.Hour, 365 * 24 * time.Hour
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-2 * time.Second, "<invalid>"},
		{-1500 * time.Millisecond, "0s"}, // up to 1s of skew is "now"
		{-time.Second, "0s"},
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{time.Second, "1s"},
		{45 * time.Second, "45s"},
		{70 * time.Second, "70s"},
		{119 * time.Second, "119s"},
		{120 * time.Second, "2m"},
		{121 * time.Second, "2m1s"},
		{190 * time.Second, "3m10s"},
		{3*time.Minute + 20*time.Second, "3m20s"},
		{9*time.Minute + 59*time.Second, "9m59s"},
		{10 * time.Minute, "10m"},
		{10*time.Minute + 59*time.Second, "10m"},
		{15 * time.Minute, "15m"},
		{70 * time.Minute, "70m"},
		{179 * time.Minute, "179m"},
		{3 * time.Hour, "3h"},
		{3*time.Hour + 20*time.Minute, "3h20m"},
		{7*time.Hour + 59*time.Minute, "7h59m"},
		{8 * time.Hour, "8h"},
		{8*time.Hour + 59*time.Minute, "8h"},
		{10 * time.Hour, "10h"},
		{47 * time.Hour, "47h"},
		{48 * time.Hour, "2d"},
		{2 * day, "2d"},
		{49 * time.Hour, "2d1h"},
		{3*day + 5*time.Hour, "3d5h"},
		{8*day - time.Hour, "7d23h"},
		{8 * day, "8d"},
		{8*day + 2*time.Hour, "8d"},
		{year, "365d"}, // a year still counts in days
		{367 * day, "367d"},
		{2*year - time.Hour, "729d"},
		{2 * year, "2y"},
		{2*year + 25*time.Hour, "2y1d"},
		{8*year - day, "7y364d"},
		{8 * year, "8y"},
		{8*year + 2*time.Hour, "8y"},
		{20 * year, "20y"},
	}
	for _, tt := range tests {
		if got := HumanDuration(tt.d); got != tt.want {
			t.Errorf("HumanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
