package ingress

import (
	"slices"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

func put(t *testing.T, st store.Store, objs ...api.Object) {
	t.Helper()
	if err := st.Update(func(tx store.Tx) error {
		for _, o := range objs {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func typed(o api.Object, kind, version string) api.Object {
	tm := o.GetTypeMeta()
	tm.Kind, tm.APIVersion = kind, version
	return o
}

// TestControllerWritesStatusAndEventsOnce: the status lists the serving
// nodes' addresses and follows their labels; a problem becomes one
// Warning event while it lasts, and a new one when it comes back.
func TestControllerWritesStatusAndEventsOnce(t *testing.T) {
	st := store.NewMemory()
	c := New(Options{Store: st, Now: func() time.Time { return t0 }})
	in := ing(t, "gw", 0, `{"rules":[{"host":"gateway.local","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}`)
	gw1 := node("gw-1", "192.168.1.20", map[string]string{api.LabelIngressNode: "true"})
	gw2 := node("gw-2", "192.168.1.21", nil)
	put(t, st, typed(in, api.KindIngress, "networking.k8s.io/v1"), typed(gw1, api.KindNode, "v1"), typed(gw2, api.KindNode, "v1"))
	sync := func() {
		t.Helper()
		if err := c.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	status := func() []string {
		t.Helper()
		var out []string
		_ = st.View(func(tx store.Tx) error {
			got, err := store.Get[api.Ingress](tx, "default", "gw")
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range got.Status.LoadBalancer.Ingress {
				out = append(out, i.IP)
			}
			return nil
		})
		return out
	}
	warnings := func() map[string]int32 {
		t.Helper()
		out := map[string]int32{}
		_ = st.View(func(tx store.Tx) error {
			evs, err := store.List[api.Event](tx, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				if e.InvolvedObject.Kind == api.KindIngress && e.InvolvedObject.Name == "gw" && e.Type == api.EventWarning {
					out[e.Reason+": "+e.Message] += e.Count
				}
			}
			return nil
		})
		return out
	}
	missing := `BackendNotFound: Service "default/web" not found: requests to it are answered 503`

	sync()
	if got := status(); !slices.Equal(got, []string{"192.168.1.20"}) {
		t.Fatalf("status %v", got)
	}
	sync()
	sync()
	if w := warnings(); len(w) != 1 || w[missing] != 1 {
		t.Fatalf("after three passes: %v", w)
	}

	// The Service appears: the problem is gone. A second node is labelled.
	web := &api.Service{ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "web"}, Spec: api.ServiceSpec{Ports: []api.ServicePort{{Port: 80, Protocol: api.ProtocolTCP}}}}
	gw2.Labels = map[string]string{api.LabelIngressNode: "true"}
	put(t, st, typed(web, api.KindService, "v1"), typed(gw2, api.KindNode, "v1"))
	sync()
	if got := status(); !slices.Equal(got, []string{"192.168.1.20", "192.168.1.21"}) {
		t.Fatalf("status %v", got)
	}
	// It goes again: the problem is told again.
	if err := st.Update(func(tx store.Tx) error { return tx.Delete(store.KeyOf(web)) }); err != nil {
		t.Fatal(err)
	}
	sync()
	sync()
	if w := warnings(); w[missing] != 2 {
		t.Fatalf("after the Service went again: %v", w)
	}

	// A class Flotilla does not serve takes the status away.
	other := "nginx"
	in.Spec.IngressClassName = &other
	put(t, st, typed(in, api.KindIngress, "networking.k8s.io/v1"), typed(class("nginx", 0, "k8s.io/ingress-nginx", nil), api.KindIngressClass, "networking.k8s.io/v1"))
	sync()
	if got := status(); len(got) != 0 {
		t.Fatalf("status of an Ingress Flotilla does not serve: %v", got)
	}
}
