package printer

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// eventRow is kubectl get events' row: LAST SEEN, TYPE, REASON, OBJECT,
// MESSAGE.
func eventRow(e *api.Event, now time.Time) ([]string, []string) {
	headers := []string{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}
	last := e.LastTimestamp.Time
	if last.IsZero() {
		last = e.CreationTimestamp.Time
	}
	seen := unknown
	if !last.IsZero() {
		seen = HumanDuration(now.Sub(last))
	}
	if e.Count > 1 {
		// As kubectl prints a repeated event: "5m (x3 over 10m)".
		first := unknown
		if !e.FirstTimestamp.IsZero() {
			first = HumanDuration(now.Sub(e.FirstTimestamp.Time))
		}
		seen = fmt.Sprintf("%s (x%d over %s)", seen, e.Count, first)
	}
	return headers, []string{seen, string(e.Type), e.Reason, EventObject(e), strings.TrimSpace(e.Message)}
}

// EventObject is kubectl's OBJECT column: "pod/web-1", "node/edge-1".
func EventObject(e *api.Event) string {
	return strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
}

// SortEvents orders events as they happened: by last timestamp, then by
// name.
func SortEvents(evs []*api.Event) {
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i].LastTimestamp.Time, evs[j].LastTimestamp.Time
		if !a.Equal(b) {
			return a.Before(b)
		}
		return evs[i].Name < evs[j].Name
	})
}
