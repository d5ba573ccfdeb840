package controller

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestOwned(t *testing.T) {
	yes := true
	owner := func(ns, name string) *api.DaemonSet {
		return &api.DaemonSet{TypeMeta: api.TypeMeta{Kind: api.KindDaemonSet}, ObjectMeta: api.ObjectMeta{Namespace: ns, Name: name, UID: "uid-" + name}}
	}
	owned := func(name, ns, kind, uid string, controller bool) *api.Pod {
		p := &api.Pod{TypeMeta: api.TypeMeta{Kind: api.KindPod}, ObjectMeta: api.ObjectMeta{Namespace: ns, Name: name}}
		if kind != "" {
			ref := api.OwnerReference{Kind: kind, UID: uid}
			if controller {
				ref.Controller = &yes
			}
			p.OwnerReferences = []api.OwnerReference{ref}
		}
		return p
	}
	owners := []*api.DaemonSet{owner("default", "a"), owner("default", "b")}
	pods := []*api.Pod{
		owned("a-1", "default", api.KindDaemonSet, "uid-a", true),
		owned("b-1", "default", api.KindDaemonSet, "uid-b", true),
		owned("a-2", "default", api.KindDaemonSet, "uid-a", true),
		owned("gone-1", "default", api.KindDaemonSet, "uid-gone", true), // its owner is gone
		owned("elsewhere", "other", api.KindDaemonSet, "uid-a", true),   // a uid of another namespace
		owned("deployed", "default", api.KindDeployment, "uid-a", true), // another kind's
		owned("referred", "default", api.KindDaemonSet, "uid-a", false), // not its controller
		owned("mine", "default", "", "", false),                         // nobody's
	}
	got, orphans := Owned(api.KindDaemonSet, owners, pods)
	names := map[string][]string{}
	for uid, ps := range got {
		for _, p := range ps {
			names[uid] = append(names[uid], p.Name)
		}
	}
	want := map[string][]string{"uid-a": {"a-1", "a-2"}, "uid-b": {"b-1"}}
	if !maps.EqualFunc(names, want, slices.Equal) {
		t.Fatalf("owned %v, want %v", names, want)
	}
	if want := []store.Key{{Kind: api.KindPod, Namespace: "default", Name: "gone-1"}, {Kind: api.KindPod, Namespace: "other", Name: "elsewhere"}}; !slices.Equal(orphans, want) {
		t.Fatalf("orphans %v, want %v", orphans, want)
	}
}

func TestSooner(t *testing.T) {
	t1 := time.Date(2030, 1, 1, 0, 0, 1, 0, time.UTC)
	t2 := t1.Add(time.Second)
	var zero time.Time
	for _, tc := range []struct{ a, b, want time.Time }{
		{zero, zero, zero}, {t1, zero, t1}, {zero, t1, t1}, {t1, t2, t1}, {t2, t1, t1},
	} {
		if got := Sooner(tc.a, tc.b); !got.Equal(tc.want) {
			t.Errorf("Sooner(%s, %s) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
}
