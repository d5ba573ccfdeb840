package manifest

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is one problem with a manifest, located as precisely as the decoder
// or validator could: the source it came from, the document in that source,
// the line (for syntax errors) and the field path.
type Error struct {
	// Source names the input, usually a file name; may be empty.
	Source string
	// Document is the 1-based number of the document in the source, counting
	// only documents with content; 0 when unknown or irrelevant.
	Document int
	// Line is the 1-based line in the source, set for syntax errors when the
	// parser reports one; 0 otherwise.
	Line int
	// Field is the path of the offending field, such as
	// spec.template.spec.containers[0].image; empty for whole-document
	// problems.
	Field string
	// Msg says what is wrong.
	Msg string
}

// Error renders the error as "source: document N: line L: field: msg",
// leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Document > 0 {
		fmt.Fprintf(&b, "document %d: ", e.Document)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one call of Decode or Validate. Its
// Error method prints them one per line.
type ErrorList []*Error

// Error joins the errors, one per line.
func (l ErrorList) Error() string {
	lines := make([]string, 0, len(l))
	for _, e := range l {
		if e != nil {
			lines = append(lines, e.Error())
		}
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the errors, so that errors.As finds an *Error in the list.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, 0, len(l))
	for _, e := range l {
		if e != nil {
			errs = append(errs, e)
		}
	}
	return errs
}

// maxErrors bounds how many errors one call reports; input made of a million
// bad fields should not produce a million lines.
const maxErrors = 100

// collector gathers errors for one call, stamping each with the current
// source and document.
type collector struct {
	source  string
	doc     int
	list    ErrorList
	dropped int
	// stopped is set when decoding gave up early because of too many errors.
	stopped bool
	// yaml is set while checking documents that were written in YAML, so
	// messages can explain YAML's surprises.
	yaml bool
	// apply is set while reading the manifests of an apply, which refuses
	// the kinds that only the hub and the agents write.
	apply bool
	// seen holds the errors reported, so that none is reported twice.
	seen map[Error]bool
}

func (c *collector) add(field, msg string) {
	c.addLine(0, field, msg)
}

func (c *collector) addf(field, format string, args ...any) {
	c.addLine(0, field, fmt.Sprintf(format, args...))
}

func (c *collector) addLine(line int, field, msg string) {
	e := Error{Source: c.source, Document: c.doc, Line: line, Field: field, Msg: msg}
	if c.seen[e] {
		return
	}
	if c.seen == nil {
		c.seen = map[Error]bool{}
	}
	c.seen[e] = true
	if len(c.list) >= maxErrors {
		c.dropped++
		return
	}
	c.list = append(c.list, &e)
}

// count is how many errors were found so far, including dropped ones.
func (c *collector) count() int { return len(c.list) + c.dropped }

// full reports whether no more errors will be shown, so that work to find
// them may stop.
func (c *collector) full() bool { return len(c.list) >= maxErrors }

// err returns the errors found, or nil.
func (c *collector) err() error {
	if c.count() == 0 {
		return nil
	}
	list := c.list
	switch {
	case c.stopped:
		list = append(list, &Error{Source: c.source, Msg: "too many errors; stopped looking for more"})
	case c.dropped > 0:
		list = append(list, &Error{Source: c.source, Msg: fmt.Sprintf("%d more errors not shown", c.dropped)})
	}
	return list
}

// Field paths are written the way kubectl prints them: fields joined by
// dots, list indexes in brackets, and map keys as fields when they are plain
// words (resources.limits.cpu) or in brackets when they are not
// (metadata.labels[app.kubernetes.io/name]).

func field(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// key renders a map key or a field name taken from the input, which may be
// anything a user typed.
func key(path, k string) string {
	k = clip(k, 64)
	plain := k != ""
	bracketOK := k != ""
	for _, r := range k {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
		case r == '[' || r == ']' || r == '"' || r < ' ' || r == 0x7f || r == '\uFFFD':
			plain, bracketOK = false, false
		default:
			plain = false
		}
	}
	switch {
	case plain:
		return field(path, k)
	case bracketOK:
		return path + "[" + k + "]"
	default:
		return path + "[" + strconv.Quote(k) + "]"
	}
}

// clip shortens s to at most n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
