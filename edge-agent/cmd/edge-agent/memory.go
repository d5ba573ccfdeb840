package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// defaultMemoryLimit is the agent's default soft memory limit. At idle with
// five pods and metrics on, the Go heap then stays near its live size: the
// agent's anonymous memory drops from about 12 MiB to about 7 MiB (see
// docs/benchmarks.md). It is a target for the garbage collector, not a cap:
// when the agent needs more (compacting a full outbox after a long outage),
// it takes it, and collects more often while it does.
const defaultMemoryLimit = "16Mi"

// applyMemoryLimit sets the Go runtime's soft memory limit from
// --memory-limit ("0" turns it off). GOMEMLIMIT in the environment, the Go
// runtime's own setting, wins over the flag. It returns the limit in force
// in bytes, or 0 when there is none.
func applyMemoryLimit(value string) (int64, error) {
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
