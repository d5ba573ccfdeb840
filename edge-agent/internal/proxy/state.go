package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// The names of the table and of its fixed objects. Chains and sets made for
// one Service port carry a prefix (svc-, ext-, ep-, aff-) and a hash.
const (
	tableName = "flotilla"

	mapServiceIPs         = "service-ips"           // ClusterIP . proto . port : goto svc chain
	mapServiceNodePorts   = "service-nodeports"     // proto . nodePort : goto ext chain
	mapNoEndpointServices = "no-endpoint-services"  // ClusterIP . proto . port : goto reject-chain
	mapNoEndpointNodePort = "no-endpoint-nodeports" // proto . nodePort : goto reject-chain
	setNodePortIPs        = "nodeport-ips"          // the node addresses NodePorts answer on

	chainServices         = "services"
	chainMarkMasq         = "mark-for-masquerade"
	chainMasquerading     = "masquerading"
	chainReject           = "reject-chain"
	chainServiceCheck     = "service-endpoints-check"
	chainNodePortCheck    = "nodeport-endpoints-check"
	chainNatPrerouting    = "nat-prerouting"
	chainNatOutput        = "nat-output"
	chainNatPostrouting   = "nat-postrouting"
	chainFilterPrerouting = "filter-prerouting"
	chainFilterOutput     = "filter-output"

	// masqMark is the packet mark bit that asks the postrouting chain to
	// masquerade a connection's first packet (the bit kube-proxy uses).
	masqMark = 0x4000

	// digestPrefix starts the comment on a chain's first rule that records
	// the digest of all its rules, so that a restarted agent can tell
	// which chains it must rewrite without parsing rules back.
	digestPrefix = "flotilla:"
)

// setKind is the shape of one of the table's sets or maps.
type setKind int

const (
	kindServiceIPs setKind = iota + 1 // ipv4_addr . inet_proto . inet_service : verdict
	kindNodePorts                     // inet_proto . inet_service : verdict
	kindAddrs                         // ipv4_addr
	kindAffinity                      // ipv4_addr, dynamic, with a timeout
)

// setSpec is a named set of the table.
type setSpec struct {
	name    string
	kind    setKind
	timeout uint32 // seconds, kindAffinity only
}

// hook makes a chain a base chain: the netfilter hook it hangs on.
type hook struct {
	typ      nftables.ChainType
	num      nftables.ChainHook
	priority nftables.ChainPriority
}

// chain is one chain of the desired table with its rules.
type chain struct {
	name  string
	hook  *hook
	rules []rule
}

// element is one element of a set or map: its key as nft would print it
// (for diffs, tests and logs), the key's bytes, and for a verdict map the
// chain the verdict goes to.
type element struct {
	key    string
	raw    []byte
	target string
}

// state is a table's content: what the agent wants (built from Services)
// or what the kernel has (read back, or remembered from the last
// successful Sync). Chains are compared by digest only, so a remembered
// state need not keep rules.
type state struct {
	exists  bool
	sets    map[string]setSpec
	chains  map[string]string             // name → digest of its rules
	elems   map[string]map[string]element // set name → key → element
	content map[string]*chain             // desired only: the chains' rules
}

func newState() *state {
	return &state{
		sets:    map[string]setSpec{},
		chains:  map[string]string{},
		elems:   map[string]map[string]element{},
		content: map[string]*chain{},
	}
}

// addChain adds c to a desired state.
func (s *state) addChain(c *chain) {
	s.chains[c.name] = c.digest()
	s.content[c.name] = c
}

func (s *state) addElem(set string, e element) {
	m := s.elems[set]
	if m == nil {
		m = map[string]element{}
		s.elems[set] = m
	}
	m[e.key] = e
}

// forget drops the rules of a desired state once they are in the kernel:
// only digests are needed to compute the next diff.
func (s *state) forget() *state {
	c := *s
	c.content = nil
	return &c
}

// digest identifies a chain's rules; "" for an empty chain.
func (c *chain) digest() string {
	if len(c.rules) == 0 {
		return ""
	}
	h := sha256.New()
	for _, r := range c.rules {
		h.Write([]byte(r.text))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// rule is one rule of a chain: its text in nft syntax (what is compared,
// shown in tests and logs), the expressions the kernel runs (made only
// for the chains a Sync writes), and, for a balancing rule, the endpoint
// chains of the anonymous numgen map that follows those expressions.
type rule struct {
	text  string
	exprs func() []expr.Any
	vmap  []string
}

// String renders a state as nft-like text, sorted, for tests and logs.
func (s *state) String() string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(s.sets)) {
		b.WriteString("set " + name + "\n")
		for _, k := range slices.Sorted(maps.Keys(s.elems[name])) {
			e := s.elems[name][k]
			b.WriteString("  " + k)
			if e.target != "" {
				b.WriteString(" : goto " + e.target)
			}
			b.WriteString("\n")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.chains)) {
		b.WriteString("chain " + name + "\n")
		if c := s.content[name]; c != nil {
			for _, r := range c.rules {
				b.WriteString("  " + r.text + "\n")
			}
		}
	}
	return b.String()
}
