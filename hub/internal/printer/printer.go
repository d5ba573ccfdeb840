// Package printer renders API objects for the hub CLI the way kubectl does:
// aligned tables for `get` (with -o wide, -A, --show-labels, --no-headers),
// yaml, json and name output for `-o`, and the "Field:  value" sections of
// `describe`. It only formats; fetching objects is the CLI's job.
package printer

import (
	"errors"
	"fmt"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Options select the table variant, like kubectl get's flags.
type Options struct {
	// Wide adds the -o wide columns.
	Wide bool
	// AllNamespaces adds a leading NAMESPACE column for namespaced kinds.
	AllNamespaces bool
	// ShowLabels adds a trailing LABELS column.
	ShowLabels bool
	// NoHeaders leaves out the header row.
	NoHeaders bool
	// WithKind prints names as kubectl does when a get lists several
	// kinds: "service/web", "deployment.apps/web".
	WithKind bool
	// Now is the time ages are measured from; zero means time.Now().
	Now time.Time
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// ErrNoResources is returned by PrintTable for an empty list. The CLI prints
// NoResourcesMessage on stderr and exits 0, as kubectl does.
var ErrNoResources = errors.New("no resources found")

// NoResourcesMessage is kubectl's message for an empty `get`. Pass the
// namespace that was listed, or "" for cluster-scoped kinds (nodes,
// namespaces).
func NoResourcesMessage(namespace string, allNamespaces bool) string {
	if allNamespaces || namespace == "" {
		return "No resources found"
	}
	return fmt.Sprintf("No resources found in %s namespace.", namespace)
}

// HumanDuration renders d the way kubectl renders AGE columns (the rules of
// k8s.io/apimachinery/pkg/util/duration.HumanDuration): exact seconds below
// two minutes, minutes and seconds below ten minutes, whole minutes below
// three hours, hours and minutes below eight hours, whole hours below two
// days, days and hours below eight days, whole days below two years, years
// and days below eight years, then whole years. Up to a second in the future
// counts as "0s" (clock skew); anything further is "<invalid>".
func HumanDuration(d time.Duration) string {
	secs := int64(d.Seconds()) // truncates towards zero, like the original
	switch {
	case secs < -1:
		return "<invalid>"
	case secs < 0:
		return "0s"
	case secs < 120:
		return fmt.Sprintf("%ds", secs)
	}

	mins := int64(d / time.Minute)
	if mins < 10 {
		return joinUnits(mins, "m", secs%60, "s")
	}
	if mins < 180 {
		return fmt.Sprintf("%dm", mins)
	}

	hours := int64(d / time.Hour)
	const day, year = 24, 24 * 365
	switch {
	case hours < 8:
		return joinUnits(hours, "h", mins%60, "m")
	case hours < 2*day:
		return fmt.Sprintf("%dh", hours)
	case hours < 8*day:
		return joinUnits(hours/day, "d", hours%day, "h")
	case hours < 2*year:
		return fmt.Sprintf("%dd", hours/day)
	case hours < 8*year:
		return joinUnits(hours/year, "y", (hours/day)%365, "d")
	}
	return fmt.Sprintf("%dy", hours/year)
}

// joinUnits writes "3m10s", or just "3m" when the smaller unit is zero.
func joinUnits(big int64, bigUnit string, small int64, smallUnit string) string {
	if small == 0 {
		return fmt.Sprintf("%d%s", big, bigUnit)
	}
	return fmt.Sprintf("%d%s%d%s", big, bigUnit, small, smallUnit)
}

// age is kubectl's translateTimestampSince: the HumanDuration since t, or
// "<unknown>" when t is not set.
func age(now time.Time, t api.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return HumanDuration(now.Sub(t.Time))
}
