package endpoints

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func readyNode(name string, ready bool) *api.Node {
	st := api.ConditionTrue
	if !ready {
		st = api.ConditionUnknown
	}
	return &api.Node{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
		ObjectMeta: api.ObjectMeta{Name: name, UID: "uid-" + name},
		Status:     api.NodeStatus{Conditions: []api.NodeCondition{{Type: api.NodeReady, Status: st}}},
	}
}

type fixture struct {
	t  *testing.T
	st store.Store
	c  *Controller
}

func newFixture(t *testing.T, objs ...api.Object) *fixture {
	f := &fixture{t: t, st: store.NewMemory()}
	t.Cleanup(func() { f.st.Close() })
	f.put(objs...)
	f.c = New(Options{Store: f.st, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }})
	return f
}

func (f *fixture) put(objs ...api.Object) {
	f.t.Helper()
	if err := f.st.Update(func(tx store.Tx) error {
		for _, o := range objs {
			if err := tx.Put(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) del(k store.Key) {
	f.t.Helper()
	if err := f.st.Update(func(tx store.Tx) error { return tx.Delete(k) }); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) sync() {
	f.t.Helper()
	if err := f.c.Sync(); err != nil {
		f.t.Fatal(err)
	}
	if err := store.VerifyShared(f.st); err != nil {
		f.t.Fatal(err)
	}
}

// endpoints returns the stored Endpoints of name, nil if none.
func (f *fixture) endpoints(name string) *api.Endpoints {
	f.t.Helper()
	var ep *api.Endpoints
	if err := f.st.View(func(tx store.Tx) error {
		var err error
		ep, err = store.Get[api.Endpoints](tx, "default", name)
		if store.IsNotFound(err) {
			ep, err = nil, nil
		}
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	return ep
}

func (f *fixture) want(name, subsets string) *api.Endpoints {
	f.t.Helper()
	ep := f.endpoints(name)
	if ep == nil {
		f.t.Fatalf("no Endpoints %s", name)
	}
	if got := render(ep.Subsets); got != subsets {
		f.t.Fatalf("Endpoints %s:\n%s\nwant\n%s", name, got, subsets)
	}
	return ep
}

// TestControllerKeepsEndpoints follows one Service's Endpoints through
// its pods' and nodes' changes, over the memory store: created owned by
// the Service with its labels, not written when nothing changed, moved
// to notReadyAddresses when a pod or its node is not Ready, deleted with
// the Service.
func TestControllerKeepsEndpoints(t *testing.T) {
	svc := service(func(s *api.Service) { s.Labels = map[string]string{"team": "edge"} })
	f := newFixture(t, svc, readyNode("n1", true), readyNode("n2", true),
		pod("a", "n1", "10.42.0.5"), pod("b", "n2", "10.42.1.5"), pod("c", "n2", ""),
		pod("other", "n1", "10.42.0.9", func(p *api.Pod) { p.Labels = map[string]string{"app": "db"} }))
	f.sync()
	ep := f.want("web", "10.42.0.5(n1/a) 10.42.1.5(n2/b) |  : :80/TCP")
	if ref := ep.ControllerRef(); ref == nil || ref.Kind != api.KindService || ref.Name != "web" || ref.UID != svc.UID || ref.APIVersion != "v1" {
		t.Fatalf("owner %+v", ep.OwnerReferences)
	}
	if ep.Labels["team"] != "edge" || len(ep.Labels) != 1 || ep.UID == "" || !ep.CreationTimestamp.Equal(t0) {
		t.Fatalf("metadata %+v", ep.ObjectMeta)
	}
	version := ep.ResourceVersion

	// Nothing changed: nothing written.
	f.sync()
	if v := f.endpoints("web").ResourceVersion; v != version {
		t.Fatalf("rewritten without a change: version %s, then %s", version, v)
	}

	// c gets its address; b fails readiness; n1 goes NotReady.
	f.put(pod("c", "n2", "10.42.1.6"), pod("b", "n2", "10.42.1.5", notReady))
	f.sync()
	again := f.want("web", "10.42.0.5(n1/a) 10.42.1.6(n2/c) | 10.42.1.5(n2/b) : :80/TCP")
	if again.UID != ep.UID || !again.CreationTimestamp.Equal(ep.CreationTimestamp.Time) {
		t.Fatalf("the object was replaced: %+v, was %+v", again.ObjectMeta, ep.ObjectMeta)
	}
	f.put(readyNode("n1", false))
	f.sync()
	f.want("web", "10.42.1.6(n2/c) | 10.42.0.5(n1/a) 10.42.1.5(n2/b) : :80/TCP")

	// The Service goes: so do its Endpoints.
	f.del(store.KeyOf(svc))
	f.sync()
	if ep := f.endpoints("web"); ep != nil {
		t.Fatalf("Endpoints outlive their Service: %+v", ep)
	}
}

// TestControllerSelectorsAndOwners: a Service without a selector has no
// Endpoints from the controller, and one that loses its selector loses
// them; a headless Service's are labelled so; Endpoints no Service owns
// are left alone; Endpoints planned for a Service replaced since are not
// written for the new one.
func TestControllerSelectorsAndOwners(t *testing.T) {
	manual := &api.Endpoints{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindEndpoints},
		ObjectMeta: api.ObjectMeta{Namespace: "default", Name: "external"},
		Subsets:    []api.EndpointSubset{{Addresses: []api.EndpointAddress{{IP: "192.0.2.7"}}, Ports: []api.EndpointPort{{Port: 443}}}}}
	noSelector := service(func(s *api.Service) { s.Name, s.UID, s.Spec.Selector = "external", "uid-external", nil })
	headless := service(func(s *api.Service) {
		s.Name, s.UID, s.Spec.ClusterIP, s.Spec.Type = "db", "uid-db", api.ClusterIPNone, api.ServiceTypeClusterIP
		s.Spec.Ports[0].NodePort = 0
	})
	f := newFixture(t, service(), noSelector, headless, manual, readyNode("n1", true), pod("a", "n1", "10.42.0.5"))
	f.sync()
	f.want("web", "10.42.0.5(n1/a) |  : :80/TCP")
	if db := f.want("db", "10.42.0.5(n1/a) |  : :80/TCP"); db.Labels[LabelHeadless] != "" || len(db.Labels) != 1 {
		t.Fatalf("headless labels %v", db.Labels)
	}
	if ep := f.endpoints("external"); ep == nil || render(ep.Subsets) != render(manual.Subsets) {
		t.Fatalf("Endpoints no Service owns were changed: %+v", ep)
	}

	// web loses its selector: its Endpoints go.
	f.put(service(func(s *api.Service) { s.Spec.Selector = nil }))
	f.sync()
	if ep := f.endpoints("web"); ep != nil {
		t.Fatalf("Endpoints of a Service without a selector: %+v", ep)
	}

	// A plan made for db, written after db was replaced by another of its
	// name: not written (the next pass computes the new one's).
	res := Plan(Input{Services: []*api.Service{headless}, Pods: []*api.Pod{pod("a", "n1", "10.42.0.6")}, Nodes: []*api.Node{readyNode("n1", true)}})
	if len(res.Put) != 1 {
		t.Fatalf("plan %+v", res)
	}
	f.put(service(func(s *api.Service) { s.Name, s.UID, s.Spec.ClusterIP = "db", "uid-db-2", api.ClusterIPNone }))
	if err := f.c.write(res); err != nil {
		t.Fatal(err)
	}
	f.want("db", "10.42.0.5(n1/a) |  : :80/TCP")
	f.sync()
	if ref := f.want("db", "10.42.0.5(n1/a) |  : :80/TCP").ControllerRef(); ref.UID != "uid-db-2" {
		t.Fatalf("owner %+v", ref)
	}
}

// TestControllerRuns: on the runtime, a Service applied after its pods
// gets its Endpoints, and a pod's readiness reaches them, by the store's
// watch alone.
func TestControllerRuns(t *testing.T) {
	f := newFixture(t, readyNode("n1", true), pod("a", "n1", "10.42.0.5"))
	f.c = New(Options{Store: f.st, Logger: slog.New(slog.DiscardHandler), Debounce: time.Millisecond, Resync: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor := func(subsets string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ep := f.endpoints("web")
			if ep != nil && render(ep.Subsets) == subsets {
				return
			}
			if time.Now().After(deadline) {
				got := "none"
				if ep != nil {
					got = render(ep.Subsets)
				}
				t.Fatalf("Endpoints %s, want %s", got, subsets)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	f.put(service())
	waitFor("10.42.0.5(n1/a) |  : :80/TCP")
	f.put(pod("a", "n1", "10.42.0.5", notReady))
	waitFor(" | 10.42.0.5(n1/a) : :80/TCP")
}
