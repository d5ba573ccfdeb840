package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// parsePercent reads "90%" or "90" as 90, a percentage in (0, 100].
func parsePercent(flag, s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v <= 0 || v > 100 {
		return 0, fmt.Errorf("%s %q: want a percentage above 0 and up to 100, like 90%%", flag, s)
	}
	return v, nil
}
