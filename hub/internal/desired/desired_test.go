package desired

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// The records hubs already stored must still read: the kind and the JSON
// layout are the ones dispatch has always written.
func TestRecordLayoutIsStable(t *testing.T) {
	at := api.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	b, err := json.Marshal(New("n1", 7, "abc", at))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"kind":"NodeSnapshot","metadata":{"name":"n1","creationTimestamp":null},"revision":7,"hash":"abc","published":"2026-01-02T03:04:05Z"}`
	if string(b) != want {
		t.Fatalf("record JSON\n got %s\nwant %s", b, want)
	}
	var r Record
	if err := json.Unmarshal([]byte(want), &r); err != nil || r.Revision != 7 || r.Hash != "abc" || r.Name != "n1" || !r.Published.Equal(at.Time) {
		t.Fatalf("decoded %+v, %v", r, err)
	}
	if r.StoreKind() != "NodeSnapshot" {
		t.Fatalf("store kind %q", r.StoreKind())
	}
}

func TestJoin(t *testing.T) {
	n := &api.Node{}
	Join(n, nil)
	if n.Status.DesiredRevision != 0 {
		t.Fatalf("no record: desired revision %d", n.Status.DesiredRevision)
	}
	Join(n, New("n1", 9, "h", api.Time{}))
	if n.Status.DesiredRevision != 9 {
		t.Fatalf("desired revision %d, want 9", n.Status.DesiredRevision)
	}
}
