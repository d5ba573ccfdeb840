package store

import (
	"reflect"
	"sync"
)

// clone returns a deep copy of *v: every pointer, slice, map and
// interface reached through exported fields is copied, so the copy shares
// no mutable memory with v. Unexported fields are copied by value (the
// API types have none but time.Time's, whose *Location is immutable).
func clone[T any](v *T) *T {
	out := new(T)
	src := reflect.ValueOf(v).Elem()
	planFor(src.Type()).copy(reflect.ValueOf(out).Elem(), src)
	return out
}

// copyPlan is how to deep-copy values of one type, worked out once.
type copyPlan struct {
	refs   bool // false: a plain assignment is a deep copy
	kind   reflect.Kind
	elem   *copyPlan // pointer, slice, array element; map value
	key    *copyPlan // map key
	fields []fieldPlan
}

type fieldPlan struct {
	index int
	plan  *copyPlan
}

var plans sync.Map // reflect.Type → *copyPlan

func planFor(t reflect.Type) *copyPlan {
	if p, ok := plans.Load(t); ok {
		return p.(*copyPlan)
	}
	p := buildPlan(t, map[reflect.Type]*copyPlan{})
	plans.Store(t, p)
	return p
}

func buildPlan(t reflect.Type, building map[reflect.Type]*copyPlan) *copyPlan {
	if p, ok := building[t]; ok {
		return p // recursive type: filled in below
	}
	p := &copyPlan{kind: t.Kind(), refs: true}
	building[t] = p
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		p.elem = buildPlan(t.Elem(), building)
		if t.Kind() == reflect.Array {
			p.refs = p.elem.refs
		}
	case reflect.Map:
		p.key, p.elem = buildPlan(t.Key(), building), buildPlan(t.Elem(), building)
	case reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if fp := buildPlan(f.Type, building); fp.refs {
				p.fields = append(p.fields, fieldPlan{index: i, plan: fp})
			}
		}
		p.refs = len(p.fields) > 0
	default:
		p.refs = false
	}
	return p
}

// copy sets dst, which is settable and zero, to a deep copy of src.
func (p *copyPlan) copy(dst, src reflect.Value) {
	if !p.refs {
		dst.Set(src)
		return
	}
	switch p.kind {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		n := reflect.New(src.Type().Elem())
		p.elem.copy(n.Elem(), src.Elem())
		dst.Set(n)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		l := src.Len()
		s := reflect.MakeSlice(src.Type(), l, l)
		if !p.elem.refs {
			reflect.Copy(s, src)
		} else {
			for i := range l {
				p.elem.copy(s.Index(i), src.Index(i))
			}
		}
		dst.Set(s)
	case reflect.Array:
		for i := range src.Len() {
			p.elem.copy(dst.Index(i), src.Index(i))
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		t := src.Type()
		m := reflect.MakeMapWithSize(t, src.Len())
		it := src.MapRange()
		if !p.key.refs && !p.elem.refs {
			k, v := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
			for it.Next() {
				k.SetIterKey(it)
				v.SetIterValue(it)
				m.SetMapIndex(k, v)
			}
		} else {
			for it.Next() {
				k, v := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
				p.key.copy(k, it.Key())
				p.elem.copy(v, it.Value())
				m.SetMapIndex(k, v)
			}
		}
		dst.Set(m)
	case reflect.Interface:
		if src.IsNil() {
			return
		}
		e := reflect.New(src.Elem().Type()).Elem()
		planFor(e.Type()).copy(e, src.Elem())
		dst.Set(e)
	case reflect.Struct:
		dst.Set(src) // scalars, strings and unexported fields
		for _, f := range p.fields {
			fd := dst.Field(f.index)
			fd.SetZero()
			f.plan.copy(fd, src.Field(f.index))
		}
	default: // channels and functions are shared
		dst.Set(src)
	}
}
