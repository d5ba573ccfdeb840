package controller

import "maps"

// WithAnnotation returns m with k set to v. It copies m when that changes
// it, and returns m itself otherwise: m may be a store's shared object's.
func WithAnnotation(m map[string]string, k, v string) map[string]string {
	if old, ok := m[k]; ok && old == v {
		return m
	}
	out := maps.Clone(m)
	if out == nil {
		out = make(map[string]string, 1)
	}
	out[k] = v
	return out
}

// WithoutAnnotation returns m without k, copying m when that changes it;
// nil when nothing is left.
func WithoutAnnotation(m map[string]string, k string) map[string]string {
	if _, ok := m[k]; !ok {
		return m
	}
	if len(m) == 1 {
		return nil
	}
	out := maps.Clone(m)
	delete(out, k)
	return out
}
