package manifest

import (
	"bytes"
	"fmt"

	yamlv3 "go.yaml.in/yaml/v3"
)

// YAML anchors and aliases let a short document stand for a long one: a
// 1 MiB scalar anchored once and aliased 400 times is 1 MiB of text that
// decodes to 400 MiB, and lists of aliases of lists multiply. The library
// that turns manifests into JSON (go.yaml.in/yaml/v2, through
// sigs.k8s.io/yaml) guards only against documents made mostly of alias
// nodes, not against the bytes they stand for, and it expands them before
// it could tell. So before a YAML document that has both an anchor and an
// alias goes to it, Decode parses the document into a node tree with
// go.yaml.in/yaml/v3 (which keeps an alias as a pointer to its anchored
// node, not a copy) and adds up what the aliases stand for, measuring
// each anchored node once. That costs about as much as reading the text.

// MaxAliasExpansion is how many bytes YAML aliases may add to one input,
// over all its documents. Each alias adds the size of the node it names,
// with the aliases inside that node counted the same way; a node's size is
// the length of its scalars as JSON (where "<" takes six bytes) plus
// nodeBytes for each node. Input without aliases is never refused for its
// size here: MaxSize bounds it.
const MaxAliasExpansion = MaxSize

// nodeBytes is what each node counts for besides the text of its scalars,
// about what a node costs once decoded, so that a wide tree of small
// scalars counts too.
const nodeBytes = 64

// aliasBudget is what is left of MaxAliasExpansion while the documents of
// one input are read.
type aliasBudget struct {
	left int64
}

func newAliasBudget() *aliasBudget { return &aliasBudget{left: MaxAliasExpansion} }

// check measures the aliases of one YAML document against what is left of
// the budget and takes what they add from it. It returns the line in text
// and a description of the alias that goes over the budget (or that names
// a node containing itself), or an error if text does not parse. Text
// without both an anchor ('&') and an alias ('*') has no aliases and is
// not parsed here.
func (b *aliasBudget) check(text []byte) (line int, problem string, err error) {
	if bytes.IndexByte(text, '&') < 0 || bytes.IndexByte(text, '*') < 0 {
		return 0, "", nil
	}
	var doc yamlv3.Node
	if err := parseNodes(text, &doc); err != nil {
		return 0, "", err
	}
	m := aliasMeter{left: b.left, sizes: map[*yamlv3.Node]int64{}}
	if bad := m.walk(&doc); bad != nil {
		return bad.Line, m.problem, nil
	}
	b.left = m.left
	return 0, "", nil
}

// parseNodes parses the first document of text into a node tree, turning a
// panic of the parser into an error.
func parseNodes(text []byte, doc *yamlv3.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	return yamlv3.Unmarshal(text, doc)
}

// aliasMeter adds up the sizes that the aliases of one document stand for.
type aliasMeter struct {
	// left is the budget left; an alias that takes it below zero is refused.
	left int64
	// sizes holds the expanded size of each anchored node measured so far;
	// inProgress marks one being measured, so that an alias inside the
	// node it names is found rather than followed forever.
	sizes   map[*yamlv3.Node]int64
	problem string
}

const inProgress = -1

// walk visits the nodes of the tree in document order and charges each
// alias with the size of the node it names. It returns the first alias
// refused, with m.problem saying why, or nil. Since an alias can only name
// a node anchored before it, the aliases inside that node were met first
// and their sizes are known: measuring an alias goes no deeper than the
// nesting of the node it names.
func (m *aliasMeter) walk(n *yamlv3.Node) *yamlv3.Node {
	if n.Kind == yamlv3.AliasNode {
		size, ok := m.size(n.Alias)
		switch {
		case !ok:
			m.problem = fmt.Sprintf("alias *%s: anchor '%s' value contains itself", clip(n.Value, 64), clip(n.Value, 64))
			return n
		case size > m.left:
			m.problem = fmt.Sprintf("alias *%s: aliases would expand the input by more than the limit of %d bytes", clip(n.Value, 64), MaxAliasExpansion)
			return n
		}
		m.left -= size
		return nil
	}
	for _, c := range n.Content {
		if bad := m.walk(c); bad != nil {
			return bad
		}
	}
	return nil
}

// size returns the size n stands for, with aliases expanded, or false if n
// contains an alias of itself. Sizes stop growing past MaxAliasExpansion,
// which is more than any alias may add, so they cannot overflow.
func (m *aliasMeter) size(n *yamlv3.Node) (int64, bool) {
	if n.Anchor != "" {
		if s, ok := m.sizes[n]; ok {
			return s, s != inProgress
		}
		m.sizes[n] = inProgress
	}
	var s int64
	switch n.Kind {
	case yamlv3.AliasNode:
		target, ok := m.size(n.Alias)
		if !ok {
			return 0, false
		}
		s = target
	case yamlv3.ScalarNode:
		s = nodeBytes + jsonLen(n.Value)
	default:
		s = nodeBytes
		for _, c := range n.Content {
			cs, ok := m.size(c)
			if !ok {
				return 0, false
			}
			s = min(s+cs, MaxAliasExpansion+1)
		}
	}
	s = min(s, MaxAliasExpansion+1)
	if n.Anchor != "" {
		m.sizes[n] = s
	}
	return s, true
}

// jsonLen is the most that s can take once the YAML library writes it as a
// JSON string: encoding/json writes a control character or one of "<", ">"
// and "&" as six bytes (\u003c), U+2028 and U+2029 as six instead of three,
// and a quote or a backslash as two. (The parser has already refused
// invalid UTF-8.)
func jsonLen(s string) int64 {
	n := int64(len(s))
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b < 0x20 || b == '<' || b == '>' || b == '&':
			n += 5
		case b == '"' || b == '\\':
			n++
		case b == 0xe2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9):
			n += 3
		}
	}
	return n
}
