package proxy

import (
	"maps"
	"slices"
)

// plan is what one transaction changes to turn the table from one state
// into another. It touches only what differs: an unchanged chain, set or
// element is not in it, and the table is never deleted and made again
// while Services remain.
type plan struct {
	createTable bool
	deleteTable bool
	addSets     []setSpec
	delSets     []string
	addChains   []*chain // new chains: made, then filled
	fillChains  []*chain // changed chains: flushed, then filled again
	delChains   []string // chains no longer wanted: flushed, then deleted
	addElems    map[string][]element
	delElems    map[string][]element
}

// Summary counts what a Sync changed.
type Summary struct {
	TableCreated, TableDeleted                bool
	ChainsAdded, ChainsChanged, ChainsRemoved int
	SetsAdded, SetsRemoved                    int
	ElementsAdded, ElementsRemoved            int
}

// Empty reports whether the Sync changed nothing.
func (s Summary) Empty() bool { return s == Summary{} }

func (p *plan) summary() Summary {
	s := Summary{
		TableCreated: p.createTable, TableDeleted: p.deleteTable,
		ChainsAdded: len(p.addChains), ChainsChanged: len(p.fillChains), ChainsRemoved: len(p.delChains),
		SetsAdded: len(p.addSets), SetsRemoved: len(p.delSets),
	}
	for _, es := range p.addElems {
		s.ElementsAdded += len(es)
	}
	for _, es := range p.delElems {
		s.ElementsRemoved += len(es)
	}
	return s
}

// diff computes the plan from have (what the kernel holds) to want (built
// from the Services; it must carry its chains' rules). It is a pure
// function: tests check it without a kernel.
func diff(have, want *state) *plan {
	p := &plan{addElems: map[string][]element{}, delElems: map[string][]element{}}
	if !want.exists {
		p.deleteTable = have.exists
		return p
	}
	p.createTable = !have.exists

	for _, name := range slices.Sorted(maps.Keys(want.sets)) {
		if _, ok := have.sets[name]; !ok {
			p.addSets = append(p.addSets, want.sets[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(have.sets)) {
		if _, ok := want.sets[name]; !ok {
			p.delSets = append(p.delSets, name)
		}
	}

	for _, name := range slices.Sorted(maps.Keys(want.chains)) {
		d, ok := have.chains[name]
		switch {
		case !ok:
			p.addChains = append(p.addChains, want.content[name])
		case d != want.chains[name]:
			p.fillChains = append(p.fillChains, want.content[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(have.chains)) {
		if _, ok := want.chains[name]; !ok {
			p.delChains = append(p.delChains, name)
		}
	}

	for _, set := range slices.Sorted(maps.Keys(want.sets)) {
		w, h := want.elems[set], have.elems[set]
		for _, k := range slices.Sorted(maps.Keys(w)) {
			old, ok := h[k]
			if ok && old.target == w[k].target {
				continue
			}
			if ok {
				// Same key, another verdict: the kernel replaces an
				// element only by deleting it first.
				p.delElems[set] = append(p.delElems[set], old)
			}
			p.addElems[set] = append(p.addElems[set], w[k])
		}
		for _, k := range slices.Sorted(maps.Keys(h)) {
			if _, ok := w[k]; !ok {
				p.delElems[set] = append(p.delElems[set], h[k])
			}
		}
	}
	return p
}
