package proxy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The kernel side: queue a plan as one netlink batch (one nftables
// transaction: all of it applies or none), and read a table back.

func table() *nftables.Table {
	return &nftables.Table{Name: tableName, Family: nftables.TableFamilyINet}
}

// nftSet describes a set of the table for AddSet, or names it for element
// operations.
func nftSet(t *nftables.Table, sp setSpec) *nftables.Set {
	s := &nftables.Set{Table: t, Name: sp.name}
	switch sp.kind {
	case kindServiceIPs:
		s.IsMap, s.Concatenation = true, true
		s.KeyType = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
		s.DataType = nftables.TypeVerdict
	case kindNodePorts:
		s.IsMap, s.Concatenation = true, true
		s.KeyType = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
		s.DataType = nftables.TypeVerdict
	case kindAddrs:
		s.KeyType = nftables.TypeIPAddr
	case kindAffinity:
		s.KeyType = nftables.TypeIPAddr
		s.Dynamic, s.HasTimeout = true, true
		s.Timeout = time.Duration(sp.timeout) * time.Second
		s.Size = 65535 // the packet path may add elements only up to a size
	}
	return s
}

func nftElements(es []element) []nftables.SetElement {
	out := make([]nftables.SetElement, len(es))
	for i, e := range es {
		out[i] = nftables.SetElement{Key: e.raw}
		if e.target != "" {
			out[i].VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.target}
		}
	}
	return out
}

// elementsPerMessage bounds the elements of one netlink message: their
// list is one attribute, whose length is 16 bits. An element takes at
// most some 260 bytes (a 12-byte key, a verdict naming a chain of up to
// 200 bytes, and the attribute headers), so 200 stay under 64 KiB. The
// library does not split a longer list: the kernel would take a
// truncated one without a word.
const elementsPerMessage = 200

// queue adds the plan's messages to c, in an order the kernel accepts
// within one transaction: objects exist before anything refers to them,
// and nothing is deleted while something still refers to it.
func queue(c *nftables.Conn, p *plan, sets map[string]setSpec) error {
	t := table()
	if p.deleteTable {
		c.DelTable(t)
		return nil
	}
	if p.createTable {
		c.AddTable(t)
	}
	for _, sp := range p.addSets {
		if err := c.AddSet(nftSet(t, sp), nil); err != nil {
			return fmt.Errorf("set %s: %w", sp.name, err)
		}
	}
	for _, ch := range p.addChains {
		nc := &nftables.Chain{Name: ch.name, Table: t}
		if ch.hook != nil {
			num, prio := ch.hook.num, ch.hook.priority
			nc.Hooknum, nc.Priority, nc.Type = &num, &prio, ch.hook.typ
		}
		c.AddChain(nc)
	}
	for _, name := range sortedKeys(p.delElems) {
		for chunk := range slices.Chunk(nftElements(p.delElems[name]), elementsPerMessage) {
			if err := c.SetDeleteElements(nftSet(t, sets[name]), chunk); err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
		}
	}
	for _, ch := range p.fillChains {
		c.FlushChain(&nftables.Chain{Name: ch.name, Table: t})
	}
	for _, name := range p.delChains {
		c.FlushChain(&nftables.Chain{Name: name, Table: t})
	}
	for _, ch := range slices.Concat(p.addChains, p.fillChains) {
		if err := addRules(c, t, ch); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(p.addElems) {
		for chunk := range slices.Chunk(nftElements(p.addElems[name]), elementsPerMessage) {
			if err := c.SetAddElements(nftSet(t, sets[name]), chunk); err != nil {
				return fmt.Errorf("set %s: %w", name, err)
			}
		}
	}
	for _, name := range p.delChains {
		c.DelChain(&nftables.Chain{Name: name, Table: t})
	}
	for _, name := range p.delSets {
		c.DelSet(&nftables.Set{Name: name, Table: t})
	}
	return nil
}

// addRules queues ch's rules. The first carries the chain's digest as its
// comment.
func addRules(c *nftables.Conn, t *nftables.Table, ch *chain) error {
	nc := &nftables.Chain{Name: ch.name, Table: t}
	for i, r := range ch.rules {
		ex := r.exprs()
		if r.vmap != nil {
			// Size: a constant set's size is the elements of its first
			// message unless told otherwise.
			m := &nftables.Set{Table: t, Anonymous: true, Constant: true, IsMap: true,
				KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict, Size: uint32(len(r.vmap))}
			elems := make([]nftables.SetElement, len(r.vmap))
			for j, target := range r.vmap {
				elems[j] = nftables.SetElement{
					Key:         binaryutil.NativeEndian.PutUint32(uint32(j)),
					VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: target},
				}
			}
			first := elems[:min(len(elems), elementsPerMessage)]
			if err := c.AddSet(m, first); err != nil {
				return fmt.Errorf("chain %s: balancing map: %w", ch.name, err)
			}
			// The rest, by the map's ID, before the rule binds it (the
			// library refuses element messages for an anonymous set, the
			// kernel does not until it is bound).
			named := *m
			named.Anonymous = false
			for chunk := range slices.Chunk(elems[len(first):], elementsPerMessage) {
				if err := c.SetAddElements(&named, chunk); err != nil {
					return fmt.Errorf("chain %s: balancing map: %w", ch.name, err)
				}
			}
			ex = append(ex, &expr.Lookup{SourceRegister: reg1, SetName: m.Name, SetID: m.ID, IsDestRegSet: true, DestRegister: 0})
		}
		nr := &nftables.Rule{Table: t, Chain: nc, Exprs: ex}
		if i == 0 {
			nr.UserData = userdata.AppendString(nil, userdata.TypeComment, digestPrefix+ch.digest())
		}
		c.AddRule(nr)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// staticSets maps the fixed sets' names to their kinds.
var staticSets = map[string]setKind{
	mapServiceIPs:         kindServiceIPs,
	mapNoEndpointServices: kindServiceIPs,
	mapServiceNodePorts:   kindNodePorts,
	mapNoEndpointNodePort: kindNodePorts,
	setNodePortIPs:        kindAddrs,
}

// read reads the table back from the kernel: its sets with their elements
// (not those the packet path adds to affinity sets), and each chain's
// digest from its first rule's comment. A chain whose rules carry no
// digest (someone changed it) gets one no build produces, so the next
// Sync rewrites it.
func read(c *nftables.Conn) (*state, error) {
	s := newState()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == tableName }) {
		return s, nil
	}
	s.exists = true
	t := table()

	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != tableName {
			continue
		}
		rules, err := c.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		d := ""
		if len(rules) > 0 {
			d = "unknown"
			if comment, ok := userdata.GetString(rules[0].UserData, userdata.TypeComment); ok && strings.HasPrefix(comment, digestPrefix) {
				d = strings.TrimPrefix(comment, digestPrefix)
			}
		}
		s.chains[ch.Name] = d
	}

	sets, err := c.GetSets(t)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, set := range sets {
		if set.Anonymous || strings.HasPrefix(set.Name, "__") {
			continue
		}
		kind, static := staticSets[set.Name]
		if !static {
			// An affinity set (or a stranger, which the next diff deletes).
			s.sets[set.Name] = setSpec{name: set.Name, kind: kindAffinity}
			continue
		}
		s.sets[set.Name] = setSpec{name: set.Name, kind: kind}
		elems, err := c.GetSetElements(set)
		if err != nil {
			return nil, fmt.Errorf("list elements of set %s: %w", set.Name, err)
		}
		for _, e := range elems {
			key, err := decodeKey(kind, e.Key)
			if err != nil {
				return nil, fmt.Errorf("set %s: element %x: %w", set.Name, e.Key, err)
			}
			el := element{key: key, raw: e.Key}
			if set.IsMap {
				if el.target, err = verdictChain(e.Val); err != nil {
					return nil, fmt.Errorf("set %s: element %s: %w", set.Name, key, err)
				}
			}
			s.addElem(set.Name, el)
		}
	}
	return s, nil
}

// verdictChain reads the chain of a goto or jump verdict as the kernel
// returns it in a map element's data (NFTA_DATA_VERDICT's attributes).
func verdictChain(b []byte) (string, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return "", fmt.Errorf("verdict: %w", err)
	}
	chain := ""
	for ad.Next() {
		if ad.Type() == unix.NFTA_VERDICT_CHAIN {
			chain = ad.String()
		}
	}
	if err := ad.Err(); err != nil {
		return "", fmt.Errorf("verdict: %w", err)
	}
	if chain == "" {
		return "", errors.New("verdict without a chain")
	}
	return chain, nil
}
