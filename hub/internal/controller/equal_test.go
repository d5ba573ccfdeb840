package controller

import (
	"encoding/json"
	"maps"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func jsonEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

func TestEqual(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	two := int32(2)
	otherTwo := int32(2)
	three := int32(3)
	now := time.Now() // with the monotonic clock's reading, which a stored time lacks
	for _, tc := range []struct {
		name string
		a, b api.DaemonSetStatus
		want bool
	}{
		{"zero", api.DaemonSetStatus{}, api.DaemonSetStatus{}, true},
		{"a count", api.DaemonSetStatus{NumberReady: 1}, api.DaemonSetStatus{NumberReady: 2}, false},
		{"nil and empty node lists",
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{Updating: nil, FailedNodes: nil}},
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{Updating: []string{}, FailedNodes: []api.NodeReason{}}}, true},
		{"no rollout and a zero one", api.DaemonSetStatus{}, api.DaemonSetStatus{Rollout: &api.RolloutStatus{}}, false},
		{"the same collision count, apart", api.DaemonSetStatus{CollisionCount: &two}, api.DaemonSetStatus{CollisionCount: &otherTwo}, true},
		{"another collision count", api.DaemonSetStatus{CollisionCount: &two}, api.DaemonSetStatus{CollisionCount: &three}, false},
		{"one instant in two zones",
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{StartedAt: api.NewTime(at)}},
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{StartedAt: api.NewTime(at.In(paris))}}, true},
		{"a clock reading and its record",
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{StartedAt: api.NewTime(now)}},
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{StartedAt: api.NewTime(now.Round(0))}}, true},
		{"a nanosecond apart",
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{StartedAt: api.NewTime(at)}},
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{StartedAt: api.NewTime(at.Add(time.Nanosecond))}}, false},
		{"a failed node's reason",
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{Failure: &api.RolloutFailure{Nodes: []api.NodeReason{{Node: "a", Reason: "x"}}}}},
			api.DaemonSetStatus{Rollout: &api.RolloutStatus{Failure: &api.RolloutFailure{Nodes: []api.NodeReason{{Node: "a", Reason: "y"}}}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Equal(tc.a, tc.b); got != tc.want {
				t.Fatalf("Equal = %v, want %v", got, tc.want)
			}
			if jsonEqual(tc.a, tc.b) != tc.want {
				t.Fatalf("the case is wrong: their JSON says %v", !tc.want)
			}
		})
	}
}

// TestEqualAgreesWithJSON: over random statuses of both kinds, Equal says
// what comparing their JSON said (the controllers compared statuses so
// before), for a status and its stored copy, and for one differing in a
// single field.
func TestEqualAgreesWithJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 1))
	var same, differ int
	for range 2000 {
		for _, typ := range []reflect.Type{reflect.TypeFor[api.DaemonSetStatus](), reflect.TypeFor[api.DeploymentStatus]()} {
			a := reflect.New(typ)
			fill(r, a.Elem(), 0)
			stored := reflect.New(typ)
			b, err := json.Marshal(a.Interface())
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, stored.Interface()); err != nil {
				t.Fatal(err)
			}
			if !equalAny(a.Elem(), stored.Elem()) {
				t.Fatalf("a status and its stored copy differ:\n%s", b)
			}
			other := reflect.New(typ)
			_ = json.Unmarshal(b, other.Interface())
			mutate(r, other.Elem())
			if got, want := equalAny(a.Elem(), other.Elem()), jsonEqual(a.Interface(), other.Interface()); got != want {
				ob, _ := json.Marshal(other.Interface())
				t.Fatalf("Equal = %v, JSON says %v:\n%s\n%s", got, want, b, ob)
			} else if got {
				same++
			} else {
				differ++
			}
		}
	}
	if same < 200 || differ < 200 {
		t.Fatalf("the pairs were %d equal, %d not: too few of one kind to tell", same, differ)
	}
}

func equalAny(a, b reflect.Value) bool { return equalValues(a, b) }

// fill sets v to random data: slices nil, empty or filled, pointers nil
// or set, times zero or not, in UTC or not, with a clock reading or not.
func fill(r *rand.Rand, v reflect.Value, depth int) {
	if v.Type() == timeType {
		var t time.Time
		switch r.IntN(4) {
		case 1:
			t = time.Date(2030, 1, 1, 0, 0, r.IntN(3), 0, time.UTC)
		case 2:
			t = time.Date(2030, 1, 1, 0, 0, r.IntN(3), 0, time.FixedZone("X", 3600))
		case 3:
			t = time.Now()
		}
		v.Set(reflect.ValueOf(t))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(r, v.Field(i), depth)
			}
		}
	case reflect.Pointer:
		if depth < 3 && r.IntN(2) == 0 {
			v.Set(reflect.New(v.Type().Elem()))
			fill(r, v.Elem(), depth+1)
		}
	case reflect.Slice:
		switch n := r.IntN(4); {
		case n == 0:
		case n == 1 || depth >= 3:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			v.Set(reflect.MakeSlice(v.Type(), n-1, n-1))
			for i := range n - 1 {
				fill(r, v.Index(i), depth+1)
			}
		}
	case reflect.String:
		v.SetString([]string{"", "a", "b"}[r.IntN(3)])
	case reflect.Bool:
		v.SetBool(r.IntN(2) == 0)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(int64(r.IntN(3)))
	}
}

// mutate changes one random leaf of v, or none.
func mutate(r *rand.Rand, v reflect.Value) {
	var leaves []reflect.Value
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		if v.Type() == timeType {
			leaves = append(leaves, v)
			return
		}
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Pointer:
			leaves = append(leaves, v)
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Slice:
			leaves = append(leaves, v)
			for i := range v.Len() {
				walk(v.Index(i))
			}
		default:
			leaves = append(leaves, v)
		}
	}
	walk(v)
	if n := r.IntN(len(leaves) + 1); n < len(leaves) {
		fill(r, leaves[n], 2)
	}
}

func TestAnnotations(t *testing.T) {
	one := func() map[string]string { return map[string]string{"a": "1"} }
	for _, tc := range []struct {
		name string
		in   map[string]string
		op   func(map[string]string) map[string]string
		want map[string]string
		// same: the result is the map given (nothing changed, no copy).
		same bool
	}{
		{"set a new key", one(), func(m map[string]string) map[string]string { return WithAnnotation(m, "b", "2") },
			map[string]string{"a": "1", "b": "2"}, false},
		{"set what is there", one(), func(m map[string]string) map[string]string { return WithAnnotation(m, "a", "1") },
			map[string]string{"a": "1"}, true},
		{"change a value", one(), func(m map[string]string) map[string]string { return WithAnnotation(m, "a", "2") },
			map[string]string{"a": "2"}, false},
		{"set on nil", nil, func(m map[string]string) map[string]string { return WithAnnotation(m, "a", "1") },
			map[string]string{"a": "1"}, false},
		{"remove what is absent", one(), func(m map[string]string) map[string]string { return WithoutAnnotation(m, "b") },
			map[string]string{"a": "1"}, true},
		{"remove from nil", nil, func(m map[string]string) map[string]string { return WithoutAnnotation(m, "b") },
			nil, false},
		{"remove the last", one(), func(m map[string]string) map[string]string { return WithoutAnnotation(m, "a") },
			nil, false},
		{"remove one of two", map[string]string{"a": "1", "b": "2"}, func(m map[string]string) map[string]string { return WithoutAnnotation(m, "b") },
			map[string]string{"a": "1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.in)
			got := tc.op(tc.in)
			if (got == nil) != (tc.want == nil) || !maps.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if !maps.Equal(tc.in, before) {
				t.Fatalf("the map given changed: %v, was %v", tc.in, before)
			}
			same := got != nil && tc.in != nil && reflect.ValueOf(got).Pointer() == reflect.ValueOf(tc.in).Pointer()
			if same != tc.same {
				t.Fatalf("returned the map given: %v, want %v", same, tc.same)
			}
		})
	}
}
