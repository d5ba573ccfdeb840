package podcidr

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/ipam"
	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func node(name, cidr string, created time.Duration) *api.Node {
	n := &api.Node{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindNode},
		ObjectMeta: api.ObjectMeta{Name: name, UID: "uid-" + name, CreationTimestamp: api.NewTime(t0.Add(created))},
	}
	if cidr != "" {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = cidr, []string{cidr}
	}
	return n
}

// plan is a small cluster: 10.42.0.0/22 cut into four /24s.
func plan(t *testing.T) ipam.Config {
	t.Helper()
	f := ipam.DefaultFlags()
	f.ClusterCIDR = "10.42.0.0/22"
	cfg, err := ipam.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPlan(t *testing.T) {
	cfg := plan(t)
	for _, tc := range []struct {
		name    string
		nodes   []*api.Node
		warned  map[string]bool
		assign  string // "node=cidr ..."
		full    string // nodes to warn
		waiting int
	}{
		{name: "nothing to do", nodes: []*api.Node{node("a", "10.42.0.0/24", 0)}},
		{
			name:   "first free, oldest node first",
			nodes:  []*api.Node{node("a", "10.42.0.0/24", 0), node("b", "", 2*time.Second), node("c", "", time.Second), node("d", "10.42.2.0/24", 0)},
			assign: "c=10.42.1.0/24 b=10.42.3.0/24",
		},
		{
			name:   "same creation time: by name",
			nodes:  []*api.Node{node("b", "", 0), node("a", "", 0)},
			assign: "a=10.42.0.0/24 b=10.42.1.0/24",
		},
		{
			name:   "a subnet outside the cluster CIDR (the plan changed) is kept and takes nothing",
			nodes:  []*api.Node{node("a", "10.99.0.0/24", 0), node("b", "", time.Second)},
			assign: "b=10.42.0.0/24",
		},
		{
			name:   "a subnet of another size takes every subnet it covers",
			nodes:  []*api.Node{node("a", "10.42.0.0/23", 0), node("b", "", time.Second)},
			assign: "b=10.42.2.0/24",
		},
		{
			name: "full: the newest nodes wait, warned once",
			nodes: []*api.Node{node("a", "10.42.0.0/24", 0), node("b", "10.42.1.0/24", 0), node("c", "10.42.2.0/24", 0),
				node("d", "", time.Second), node("e", "", 2*time.Second), node("f", "", 3*time.Second)},
			warned: map[string]bool{"uid-f": true},
			assign: "d=10.42.3.0/24", full: "e", waiting: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Plan(cfg, Input{Nodes: tc.nodes, Warned: tc.warned})
			var got []string
			for _, a := range res.Assign {
				if a.UID != "uid-"+a.Node {
					t.Errorf("assignment %+v names another uid", a)
				}
				got = append(got, a.Node+"="+a.CIDR.String())
			}
			if g := strings.Join(got, " "); g != tc.assign {
				t.Errorf("assigned %q, want %q", g, tc.assign)
			}
			var full []string
			for _, n := range res.Full {
				full = append(full, n.Name)
			}
			if g := strings.Join(full, " "); g != tc.full {
				t.Errorf("full %q, want %q", g, tc.full)
			}
			if len(res.Waiting) != tc.waiting {
				t.Errorf("%d waiting, want %d", len(res.Waiting), tc.waiting)
			}
			if tc.waiting > 0 && !errors.Is(res.Err, ipam.ErrFull) {
				t.Errorf("error %v, want ipam.ErrFull", res.Err)
			}
		})
	}
}

type fixture struct {
	t  *testing.T
	st store.Store
	c  *Controller
}

func newFixture(t *testing.T, nodes ...*api.Node) *fixture {
	f := &fixture{t: t, st: store.NewMemory()}
	t.Cleanup(func() { f.st.Close() })
	f.put(nodes...)
	f.c = New(Options{Store: f.st, Network: plan(t), Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }})
	return f
}

func (f *fixture) put(nodes ...*api.Node) {
	f.t.Helper()
	if err := f.st.Update(func(tx store.Tx) error {
		for _, n := range nodes {
			if err := tx.Put(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
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

func (f *fixture) cidrs() map[string]string {
	f.t.Helper()
	got := map[string]string{}
	if err := f.st.View(func(tx store.Tx) error {
		nodes, err := store.List[api.Node](tx, "")
		for _, n := range nodes {
			got[n.Name] = n.Spec.PodCIDR
			if n.Spec.PodCIDR != "" && (len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR) {
				f.t.Errorf("node %s: podCIDRs %v, podCIDR %s", n.Name, n.Spec.PodCIDRs, n.Spec.PodCIDR)
			}
		}
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	return got
}

func (f *fixture) events() []api.Event {
	f.t.Helper()
	var evs []api.Event
	if err := f.st.View(func(tx store.Tx) error {
		list, err := store.List[api.Event](tx, "")
		for _, e := range list {
			evs = append(evs, *e)
		}
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	return evs
}

// TestControllerGivesKeepsAndWaits: nodes get subnets and keep them;
// with the cluster CIDR full the next node gets a Warning event (once)
// and none, and gets the subnet a deleted node frees.
func TestControllerGivesKeepsAndWaits(t *testing.T) {
	f := newFixture(t, node("a", "", 0), node("b", "", time.Second), node("c", "10.42.3.0/24", 0))
	f.sync()
	want := map[string]string{"a": "10.42.0.0/24", "b": "10.42.1.0/24", "c": "10.42.3.0/24"}
	if got := f.cidrs(); !equalMaps(got, want) {
		t.Fatalf("subnets %v, want %v", got, want)
	}
	// A pass changes nothing once every node has one.
	f.sync()
	if got := f.cidrs(); !equalMaps(got, want) {
		t.Fatalf("after a second pass: %v, want %v", got, want)
	}

	f.put(node("d", "", 2*time.Second), node("e", "", 3*time.Second))
	f.sync()
	f.sync() // e still waits: not warned again
	want["d"], want["e"] = "10.42.2.0/24", ""
	if got := f.cidrs(); !equalMaps(got, want) {
		t.Fatalf("subnets %v, want %v", got, want)
	}
	evs := f.events()
	if len(evs) != 1 {
		t.Fatalf("%d events, want one: %+v", len(evs), evs)
	}
	if e := evs[0]; e.InvolvedObject.Name != "e" || e.Type != api.EventWarning || e.Reason != ReasonCIDRNotAvailable || e.Count != 1 ||
		!strings.Contains(e.Message, "10.42.0.0/22 has no free /24") {
		t.Fatalf("event %+v", e)
	}

	// Deleting a node frees its subnet for the one waiting.
	if err := f.st.Update(func(tx store.Tx) error { return tx.Delete(store.Key{Kind: api.KindNode, Name: "a"}) }); err != nil {
		t.Fatal(err)
	}
	f.sync()
	delete(want, "a")
	want["e"] = "10.42.0.0/24"
	if got := f.cidrs(); !equalMaps(got, want) {
		t.Fatalf("after a node went: %v, want %v", got, want)
	}
}

// TestWriteChecksAgain: a subnet taken between the pass's read and its
// write (an operator's apply) is not given twice, nor is a node that got
// one meanwhile given another.
func TestWriteChecksAgain(t *testing.T) {
	f := newFixture(t, node("a", "", 0), node("b", "", 0))
	res := Plan(f.c.opts.Network, Input{Nodes: []*api.Node{node("a", "", 0), node("b", "", 0)}})
	// Meanwhile: a is given 10.42.2.0/24 by hand, and c takes b's subnet.
	a := node("a", "10.42.2.0/24", 0)
	f.put(a, node("c", "10.42.1.0/24", 0))
	if err := f.c.write(res); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "10.42.2.0/24", "b": "", "c": "10.42.1.0/24"}
	if got := f.cidrs(); !equalMaps(got, want) {
		t.Fatalf("subnets %v, want %v", got, want)
	}
	f.sync()
	want["b"] = "10.42.0.0/24"
	if got := f.cidrs(); !equalMaps(got, want) {
		t.Fatalf("after the next pass: %v, want %v", got, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
