package apiserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/diskguard"
)

// fullStore refuses every write as the Badger store does on a full disk.
type fullStore struct{ store.Store }

func (f fullStore) Update(fn func(store.Tx) error) error {
	return fmt.Errorf("hub store: %w", &diskguard.FullError{Free: 4096, Reserve: 1 << 20, Need: 2048})
}

// TestDiskFullIs507 checks that a write the store refuses for a full disk
// is answered 507 Insufficient Storage with the free bytes, and that reads
// go on being served.
func TestDiskFullIs507(t *testing.T) {
	seed, st := newServer(t)
	applyActions(t, seed, ds("v1"))
	srv := httptest.NewServer(New(fullStore{st}, nil).Handler())
	t.Cleanup(srv.Close)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/apply", applyBody(ds("v2"))},
		{"DELETE", "/apis/apps/v1/namespaces/default/daemonsets/hello", ""},
	} {
		code, body := call(t, srv, c.method, c.path, c.body)
		var status api.Status
		_ = json.Unmarshal(body, &status)
		if code != http.StatusInsufficientStorage || status.Reason != ReasonInsufficientStorage ||
			!strings.HasPrefix(status.Message, "hub store: disk full, 4096 bytes free") {
			t.Errorf("%s %s: %d %s, want 507 InsufficientStorage saying the free bytes", c.method, c.path, code, body)
		}
	}
	if code, body := call(t, srv, "GET", "/apis/apps/v1/namespaces/default/daemonsets/hello", ""); code != http.StatusOK {
		t.Errorf("read on a full disk: %d %s", code, body)
	}
}
