package apiserver

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// BenchmarkListPods10000 is the hub's side of kubectl get pods -A with
// 10,000 pods: one answer with every pod, as a Table and as JSON.
func BenchmarkListPods10000(b *testing.B) {
	st := store.NewMemory()
	err := st.Update(func(tx store.Tx) error {
		for i := range 10000 {
			p := testPod(fmt.Sprintf("team-%d", i%10), fmt.Sprintf("web-%05d", i), fmt.Sprintf("edge-%d", i%1000), api.PodRunning,
				map[string]string{"app": "web", "pod-template-hash": "c47cd7c5d8"})
			if err := tx.Put(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	h := New(st, nil).Handler()
	for _, c := range []struct{ name, accept string }{
		{"Table", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
		{"JSON", "application/json"},
	} {
		b.Run(c.name, func(b *testing.B) {
			var n int
			for range b.N {
				req := httptest.NewRequest(http.MethodGet, "/api/v1/pods", nil)
				req.Header.Set("Accept", c.accept)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				n = w.Body.Len()
			}
			b.ReportMetric(float64(n), "bytes/op-body")
		})
	}
}
