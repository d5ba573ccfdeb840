package printer

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestEventTableCountsRepeats(t *testing.T) {
	ev := func(name string, count int32, first, last time.Duration) api.Object {
		return &api.Event{ObjectMeta: api.ObjectMeta{Name: name}, Type: api.EventWarning, Reason: "Failed",
			InvolvedObject: api.ObjectReference{Kind: api.KindPod, Name: "web-1"}, Message: "pull failed",
			FirstTimestamp: api.NewTime(testNow.Add(-first)), LastTimestamp: api.NewTime(testNow.Add(-last)), Count: count}
	}
	var b bytes.Buffer
	if err := PrintTable(&b, api.KindEvent, []api.Object{ev("a", 1, time.Minute, time.Minute), ev("b", 30, 10*time.Minute, 5*time.Second)}, Options{Now: testNow}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "60s ") || !strings.HasPrefix(lines[2], "5s (x30 over 10m) ") {
		t.Fatalf("table:\n%s", b.String())
	}
}
