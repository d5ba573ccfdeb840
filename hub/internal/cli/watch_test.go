package cli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/hub/internal/events"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// TestWatchEventsReplaysOnlyTheNewest: `get events -w` on a busy fleet
// prints the newest events, then follows; it does not scroll through an
// hour of them first.
func TestWatchEventsReplaysOnlyTheNewest(t *testing.T) {
	h := newHub(t)
	at := time.Now().Add(-time.Hour)
	if err := h.st.Update(func(tx store.Tx) error {
		for i := range 250 {
			if err := events.Put(tx, events.Record{Object: api.ObjectReference{Kind: api.KindPod, Namespace: "default", Name: fmt.Sprintf("p%03d", i)},
				Type: api.EventNormal, Reason: "Started", Message: "started", Time: at.Add(time.Duration(i) * time.Second)}, time.Hour); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithOptions(h.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	e := &env{out: &out, errOut: &errOut, namespace: "default"}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	targets, err := parseTargets([]string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	if err := watchGet(ctx, e, c, &getOptions{watch: true}, targets); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != eventReplay+1 || !strings.Contains(lines[len(lines)-1], "pod/p249") || !strings.Contains(lines[1], "pod/p150") {
		t.Fatalf("printed %d lines (want the header and the newest %d), first %q, last %q", len(lines), eventReplay, lines[1], lines[len(lines)-1])
	}
	if !strings.Contains(errOut.String(), "150 older events not shown") {
		t.Fatalf("stderr = %q", errOut.String())
	}
}
