package apiserver

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// benchServer is a hub API over the hub's Badger store (Services held in
// memory, as serve opens it) that holds n NodePort Services, each with an
// allocated cluster IP and node port.
func benchServer(b *testing.B, n int) (http.Handler, store.Store) {
	b.Helper()
	st, err := store.OpenBadger(b.TempDir(), store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	s := New(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := st.Update(func(tx store.Tx) error {
		return tx.Put(&api.Namespace{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindNamespace}, ObjectMeta: api.ObjectMeta{Name: "default"}})
	}); err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	const batch = 500
	for i := 0; i < n; i += batch {
		var docs []string
		for j := i; j < min(i+batch, n); j++ {
			docs = append(docs, service(fmt.Sprintf("s%d", j), "NodePort", "{port: 80}"))
		}
		if code, out := serve(h, "POST", "/api/v1/apply", strings.Join(docs, "---\n")); code != 200 {
			b.Fatalf("setup apply: %d %s", code, out)
		}
	}
	return h, st
}

func serve(h http.Handler, method, path, body string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

// BenchmarkApplyServiceAmong measures one apply of one new NodePort
// Service (decode, allocate a cluster IP and a node port from what the
// store holds, write) with n Services in the store, then deletes it.
func BenchmarkApplyServiceAmong(b *testing.B) {
	for _, n := range []int{0, 1000, 2700} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			h, _ := benchServer(b, n)
			body := service("new", "NodePort", "{port: 80}")
			b.ResetTimer()
			for range b.N {
				if code, out := serve(h, "POST", "/api/v1/apply", body); code != 200 {
					b.Fatalf("apply: %d %s", code, out)
				}
				b.StopTimer()
				if code, out := serve(h, "DELETE", "/api/v1/namespaces/default/services/new", ""); code != 200 {
					b.Fatalf("delete: %d %s", code, out)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkApplyManyServices measures one apply of 1,000 NodePort
// Services into an empty store: each allocation reads the store once per
// apply, not once per Service.
func BenchmarkApplyManyServices(b *testing.B) {
	var docs []string
	for i := range 1000 {
		docs = append(docs, service(fmt.Sprintf("s%d", i), "NodePort", "{port: 80}"))
	}
	body := strings.Join(docs, "---\n")
	for range b.N {
		b.StopTimer()
		h, _ := benchServer(b, 0)
		b.StartTimer()
		if code, out := serve(h, "POST", "/api/v1/apply", body); code != 200 {
			b.Fatalf("apply: %d %s", code, out)
		}
	}
}
