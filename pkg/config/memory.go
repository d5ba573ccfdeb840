package config

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// ApplyMemoryLimit sets the Go runtime's soft memory limit from a
// --memory-limit value, a size like 16Mi or 900Mi ("0" for none). It is a
// target for the garbage collector, not a cap: a process that needs more
// takes it and collects more often while it does; one below the limit
// keeps less idle heap and gives memory back to the system sooner.
// GOMEMLIMIT in the environment, the Go runtime's own setting, wins over
// the flag. It returns the limit in force in bytes, or 0 when there is
// none.
func ApplyMemoryLimit(value string) (int64, error) {
	if env := os.Getenv("GOMEMLIMIT"); env != "" {
		return debug.SetMemoryLimit(-1), nil // the runtime already applied it
	}
	q := api.Quantity(value)
	if err := q.Validate(); err != nil {
		return 0, fmt.Errorf("--memory-limit %q: want a size like 16Mi, or 0 for none: %w", value, err)
	}
	n := q.Value()
	if n < 0 {
		return 0, fmt.Errorf("--memory-limit %q: must not be negative", value)
	}
	if n == 0 {
		return 0, nil
	}
	if n < 4<<20 {
		return 0, fmt.Errorf("--memory-limit %q: below 4Mi the garbage collector would run without pause; use 0 for no limit", value)
	}
	debug.SetMemoryLimit(n)
	return n, nil
}

// ApplyGCPercent sets the garbage collector's target percentage (GOGC)
// from a --gc-percent value: the heap may grow by that percentage of what
// the last collection left live (plus stacks and globals) before the next
// collection starts. It must be at least 1. GOGC in the environment, the
// Go runtime's own setting (which can also turn collection off), wins over
// the flag. It returns the percentage in force.
func ApplyGCPercent(value int) (int, error) {
	if env := os.Getenv("GOGC"); env != "" {
		p := debug.SetGCPercent(100) // read what the runtime applied, and put it back
		debug.SetGCPercent(p)
		return p, nil
	}
	if value < 1 {
		return 0, fmt.Errorf("--gc-percent %d: want a percentage of at least 1 (GOGC=off in the environment turns collection off)", value)
	}
	debug.SetGCPercent(value)
	return value, nil
}
