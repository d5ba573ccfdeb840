package proxy

import (
	"slices"
	"strings"
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

// complete reports whether every chain the plan writes has its rules. A
// chain of a Service whose part came from the cache has none; it is
// written only if the table lost it, and then Sync builds afresh.
func (p *plan) complete() bool {
	for _, cs := range [][]*chain{p.addChains, p.fillChains} {
		for _, c := range cs {
			if c == nil {
				return false
			}
		}
	}
	return true
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

	// Iterate without sorting the (many) names; sort what changed.
	for name, sp := range want.sets {
		if _, ok := have.sets[name]; !ok {
			p.addSets = append(p.addSets, sp)
		}
	}
	for name := range have.sets {
		if _, ok := want.sets[name]; !ok {
			p.delSets = append(p.delSets, name)
		}
	}
	for name, d := range want.chains {
		hd, ok := have.chains[name]
		switch {
		case !ok:
			p.addChains = append(p.addChains, want.content[name])
		case hd != d:
			p.fillChains = append(p.fillChains, want.content[name])
		}
	}
	for name := range have.chains {
		if _, ok := want.chains[name]; !ok {
			p.delChains = append(p.delChains, name)
		}
	}
	for set := range want.sets {
		w, h := want.elems[set], have.elems[set]
		for k, e := range w {
			old, ok := h[k]
			if ok && old.target == e.target {
				continue
			}
			if ok {
				// Same key, another verdict: the kernel replaces an
				// element only by deleting it first.
				p.delElems[set] = append(p.delElems[set], old)
			}
			p.addElems[set] = append(p.addElems[set], e)
		}
		for k, e := range h {
			if _, ok := w[k]; !ok {
				p.delElems[set] = append(p.delElems[set], e)
			}
		}
	}
	slices.SortFunc(p.addSets, func(a, b setSpec) int { return strings.Compare(a.name, b.name) })
	slices.Sort(p.delSets)
	slices.Sort(p.delChains)
	byName := func(a, b *chain) int {
		if a == nil || b == nil { // no rules: Sync rebuilds, see complete
			return 0
		}
		return strings.Compare(a.name, b.name)
	}
	slices.SortFunc(p.addChains, byName)
	slices.SortFunc(p.fillChains, byName)
	byKey := func(a, b element) int { return strings.Compare(a.key, b.key) }
	for _, es := range p.addElems {
		slices.SortFunc(es, byKey)
	}
	for _, es := range p.delElems {
		slices.SortFunc(es, byKey)
	}
	return p
}
