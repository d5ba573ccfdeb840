// Package manifest turns the bytes of a manifest file (YAML documents or JSON)
// into typed API objects, strictly: an unknown field, a Kubernetes field that
// Flotilla does not support or a value of the wrong type is an error naming
// the source, the document and the field path. It also validates objects and
// fills in their defaults with Kubernetes' rules, so that the hub CLI and the
// hub's HTTP API accept and reject exactly the same things.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Bounds on what Decode accepts.
const (
	// MaxSize is the largest input Decode reads, in bytes.
	MaxSize = 8 << 20
	// MaxDepth is how deeply objects and lists may nest in one document.
	MaxDepth = 64
)

// Document is one object decoded from a source.
type Document struct {
	// Source is the name passed to Decode.
	Source string
	// Index is the 1-based number of the document in the source, counting
	// only documents with content. Items of one List document share its
	// index.
	Index int
	// Path is "items[N]" for an object that came from a List document and
	// empty otherwise; error field paths for the object start with it.
	Path string
	// Object is the decoded object, with its TypeMeta set.
	Object api.Object
}

// Validate runs Validate on the document's object and locates any errors in
// the document: source, document number and, for List items, the item path.
func (d Document) Validate() error {
	err := Validate(d.Object)
	var list ErrorList
	if !errors.As(err, &list) {
		return err
	}
	out := make(ErrorList, 0, len(list))
	for _, e := range list {
		if e == nil {
			continue
		}
		located := *e
		located.Source, located.Document = d.Source, d.Index
		if d.Path != "" {
			located.Field = field(d.Path, e.Field)
		}
		out = append(out, &located)
	}
	return out
}

// Decode reads every object in data, which holds YAML documents separated by
// "---" lines or one or more JSON objects. Documents that are empty or hold
// only comments are skipped. A "kind: List" document expands into its items.
// Each object's apiVersion and kind must name a Flotilla kind, and every
// field must be one Flotilla knows, with a value of the right type. YAML
// aliases may add at most MaxAliasExpansion bytes to the input.
//
// On failure Decode returns no documents and an ErrorList with every problem
// found, each naming source (which may be empty), document, field path and,
// for syntax errors, the line.
func Decode(source string, data []byte) ([]Document, error) {
	return read(source, data, nil)
}

// LoadOptions say how Load treats the objects it reads.
type LoadOptions struct {
	// Namespace is the namespace the caller asked for, as with kubectl's
	// -n: namespaced objects that name none are put in it, and one that
	// names another is an error. When it is empty, objects that name no
	// namespace go to "default".
	Namespace string
	// Apply refuses the kinds that only the hub and the agents write
	// (Pods, ControllerRevisions, Events, CertificateSigningRequests), as
	// apply does.
	Apply bool
}

// Load reads a manifest file as apply does: it decodes data as Decode does,
// puts each namespaced object in its namespace, fills in defaults (Default)
// and validates every object (Validate).
//
// It returns the objects, or no objects and an ErrorList with every problem
// of every document, in document order: syntax errors, unknown and
// unsupported fields, values of the wrong type, missing required fields and
// invalid values, each once. A document with a field the decoder could not
// read is still validated without that field, but a validation problem at
// that field, inside it or around it (a "required" for a value of the wrong
// type, say) is left out as a consequence of the first.
func Load(source string, data []byte, opts LoadOptions) ([]Document, error) {
	return read(source, data, &opts)
}

// read is Decode, and Load when load is set.
func read(source string, data []byte, load *LoadOptions) ([]Document, error) {
	if len(data) > MaxSize {
		c := &collector{source: source}
		c.addf("", "input is %d bytes, more than the limit of %d", len(data), MaxSize)
		return nil, c.err()
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark

	newDecoder := func(c *collector) *decoder {
		c.source = source
		c.apply = load != nil && load.Apply
		return &decoder{c: c, load: load, aliases: newAliasBudget()}
	}
	var d *decoder
	if looksLikeJSON(data) {
		d = newDecoder(&collector{})
		if syntaxErr := readJSON(d, data); syntaxErr != nil {
			// Not JSON after all; it may still be YAML (flow style, or JSON
			// objects separated by "---"). If it is not, the JSON error is
			// the better report.
			d = newDecoder(&collector{yaml: true})
			if !readYAML(d, data) {
				d = newDecoder(&collector{list: ErrorList{syntaxErr}})
			}
		}
	} else {
		d = newDecoder(&collector{yaml: true})
		readYAML(d, data)
	}
	d.c.doc = 0
	if err := d.c.err(); err != nil {
		return nil, err
	}
	return d.docs, nil
}

// decoder collects the documents of one source and the problems found in
// them. The readers hand it each document as soon as it is parsed, so that
// it can stop early once there are more errors than anyone will read.
type decoder struct {
	c    *collector
	docs []Document
	// aliases is what YAML aliases may still add to the input.
	aliases *aliasBudget
	// load is set by Load, which also defaults and validates each object.
	load *LoadOptions
}

// add checks one parsed document, given as generic values (map[string]any,
// []any, string, json.Number, bool and nil), and keeps its objects. The
// document's errors start at index first of the collector's list: reading
// it may have found some already (a duplicate field, nesting too deep).
func (d *decoder) add(index int, v any, first int) {
	d.c.doc = index
	docs := decodeDocument(d.c, v)
	if d.load != nil {
		var unread []string
		for _, e := range d.c.list[first:] {
			if e.Field != "" {
				unread = append(unread, e.Field)
			}
		}
		for _, doc := range docs {
			d.check(doc, unread)
		}
	}
	d.docs = append(d.docs, docs...)
}

// check puts a decoded object in its namespace, defaults and validates it
// for Load. unread are the paths of the fields in its document that the
// decoder reported; validation problems at, inside or around them are not
// reported again.
func (d *decoder) check(doc Document, unread []string) {
	c, obj := d.c, doc.Object
	info, _ := api.LookupKind(obj.GetTypeMeta().Kind)
	ns := d.load.Namespace
	if m := obj.GetObjectMeta(); info.Namespaced && ns != "" && m.Namespace != "" && m.Namespace != ns {
		p := field(doc.Path, "metadata.namespace")
		c.addf(p, "the namespace from the provided object %q does not match the namespace %q: remove it from the manifest or from -n", clip(m.Namespace, 64), ns)
		unread = append(unread, p)
	}
	if ns == "" {
		ns = api.DefaultNamespace
	}
	Default(obj, ns)
	var list ErrorList
	errors.As(Validate(obj), &list)
	for _, e := range list {
		p := e.Field
		if doc.Path != "" {
			p = field(doc.Path, e.Field)
		}
		if !overlaps(p, unread) {
			c.add(p, e.Msg)
		}
	}
}

// overlaps reports whether path is one of paths, inside one or around one.
func overlaps(path string, paths []string) bool {
	for _, p := range paths {
		if within(path, p) || within(p, path) {
			return true
		}
	}
	return false
}

// within reports whether path is outer or a path inside it.
func within(path, outer string) bool {
	if !strings.HasPrefix(path, outer) {
		return false
	}
	rest := path[len(outer):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// stop reports whether to stop reading: enough errors were found.
func (d *decoder) stop() bool {
	if d.c.full() {
		d.c.stopped = true
	}
	return d.c.stopped
}

func looksLikeJSON(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{'
}

// readJSON reads a stream of JSON values and hands each to d. Problems
// inside a value (too deep, duplicate fields) go to d's collector; a syntax
// error stops the stream and is returned instead.
func readJSON(d *decoder, data []byte) *Error {
	c := d.c
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return jsonSyntaxError(c.source, n+1, data, dec, err)
		}
		if d.stop() {
			return nil
		}
		before, first := c.count(), len(c.list)
		c.doc = n + 1
		v, err := readValue(c, dec, tok, "", 1)
		if err != nil {
			return jsonSyntaxError(c.source, n+1, data, dec, err)
		}
		if v == nil && c.count() == before {
			continue // a JSON null is an empty document
		}
		n++
		d.add(n, v, first)
	}
}

func jsonSyntaxError(source string, doc int, data []byte, dec *json.Decoder, err error) *Error {
	offset := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		offset = se.Offset
	}
	if err == io.ErrUnexpectedEOF {
		offset = int64(len(data))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if err == io.ErrUnexpectedEOF {
		msg = "unexpected end of JSON input"
	}
	return &Error{Source: source, Document: doc, Line: lineAt(data, offset), Msg: "invalid JSON: " + msg}
}

func lineAt(data []byte, offset int64) int {
	if offset < 0 {
		offset = 0
	}
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	return 1 + bytes.Count(data[:offset], []byte("\n"))
}

var tooDeep = fmt.Sprintf("nested deeper than %d levels", MaxDepth)

// readValue reads the rest of the JSON value that starts with tok. It builds
// generic values up to MaxDepth, then only skips tokens, so the stream stays
// in step and recursion stays shallow. Only syntax errors are returned; the
// rest go to c.
func readValue(c *collector, dec *json.Decoder, tok json.Token, path string, depth int) (any, error) {
	v, err := readValueOrEOF(c, dec, tok, path, depth)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF // the value was cut short
	}
	return v, err
}

func readValueOrEOF(c *collector, dec *json.Decoder, tok json.Token, path string, depth int) (any, error) {
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth > MaxDepth {
		c.add(path, tooDeep)
		return nil, skipValue(dec)
	}
	switch delim {
	case '{':
		obj := map[string]any{}
		for {
			t, err := dec.Token()
			if err != nil {
				return nil, err
			}
			if d, ok := t.(json.Delim); ok && d == '}' {
				return obj, nil
			}
			name, ok := t.(string)
			if !ok {
				return nil, fmt.Errorf("object key is not a string")
			}
			t, err = dec.Token()
			if err != nil {
				return nil, err
			}
			p := key(path, name)
			v, err := readValue(c, dec, t, p, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := obj[name]; dup {
				c.add(p, "duplicate field")
			}
			obj[name] = v
		}
	case '[':
		list := []any{}
		for i := 0; ; i++ {
			t, err := dec.Token()
			if err != nil {
				return nil, err
			}
			if d, ok := t.(json.Delim); ok && d == ']' {
				return list, nil
			}
			v, err := readValue(c, dec, t, index(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
	}
	return nil, fmt.Errorf("unexpected %q", delim.String())
}

// skipValue consumes tokens until the value whose opening delimiter was just
// read is closed.
func skipValue(dec *json.Decoder) error {
	open := 1
	for open > 0 {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			switch d {
			case '{', '[':
				open++
			case '}', ']':
				open--
			}
		}
	}
	return nil
}

// readYAML splits data into documents, parses each and hands it to d. It
// reports whether every document it read parsed (problems other than
// syntax, such as nesting too deep, do not count).
func readYAML(d *decoder, data []byte) bool {
	c := d.c
	ok := true
	n := 0
	for _, ch := range splitYAML(data) {
		if blank(ch.text) {
			continue // empty or only comments: not a document
		}
		if d.stop() {
			break
		}
		c.doc = n + 1
		// Aliases are measured before anything expands them.
		line, problem, err := d.aliases.check(ch.text)
		var j []byte
		if err == nil && problem == "" {
			j, err = yaml.YAMLToJSONStrict(ch.text)
		}
		switch {
		case err != nil:
			n++
			ok = false
			addYAMLError(c, ch.line, err)
			continue
		case problem != "":
			n++
			c.addLine(ch.line+line-1, "", problem)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.UseNumber()
		before, first := c.count(), len(c.list)
		tok, err := dec.Token()
		var v any
		if err == nil {
			v, err = readValue(c, dec, tok, "", 1)
		}
		if err != nil {
			// The YAML library produced JSON that encoding/json cannot read;
			// report it rather than trust it.
			n++
			c.addf("", "cannot convert YAML to JSON: %v", err)
			continue
		}
		if v == nil && c.count() == before {
			continue // a bare null
		}
		n++
		d.add(n, v, first)
	}
	return ok
}

// blank reports whether text has only blank lines and comments, which the
// YAML parser would turn into nothing; skipping them early keeps a file of a
// million "---" lines cheap.
func blank(text []byte) bool {
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		line = bytes.TrimLeft(line, " \t\r")
		if len(line) > 0 && line[0] != '#' {
			return false
		}
	}
	return true
}

// yamlLine matches the "line N: " the YAML library puts in front of its
// messages when it knows the line.
var yamlLine = regexp.MustCompile(`^line (\d+): `)

// addYAMLError records a YAML syntax error, moving the library's
// document-relative line numbers to lines of the source.
func addYAMLError(c *collector, firstLine int, err error) {
	var te *yamlv2.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, msg := range msgs {
		msg = strings.TrimSpace(msg)
		msg = strings.TrimPrefix(msg, "yaml: ")
		msg = strings.TrimPrefix(msg, "json: ")
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
				line = firstLine + n - 1
				msg = msg[len(m[0]):]
			}
		}
		c.addLine(line, "", "invalid YAML: "+clip(msg, 200))
	}
}

// chunk is the text of one YAML document and the line of the source it
// starts on.
type chunk struct {
	text []byte
	line int
}

// splitYAML cuts data into documents at "---" lines, as kubectl does, and at
// "..." document end lines. A "---" line may carry content ("--- {a: 1}");
// that content starts the next document, with the marker blanked so line
// numbers stay right. A "---" that follows only directives (%YAML) belongs
// to its document.
func splitYAML(data []byte) []chunk {
	var chunks []chunk
	var cur []byte
	curLine := 1
	directivesOnly := true // cur has only directives, comments and blank lines
	hasDirective := false
	line := 1
	for pos := 0; pos < len(data); line++ {
		end := bytes.IndexByte(data[pos:], '\n')
		next := len(data)
		if end >= 0 {
			end += pos
			next = end + 1
		} else {
			end = len(data)
		}
		text := bytes.TrimSuffix(data[pos:end], []byte("\r"))
		raw := data[pos:next]
		pos = next

		rest, isStart := docMarker(text, "---")
		endRest, isEnd := docMarker(text, "...")
		if t := bytes.TrimSpace(endRest); len(t) > 0 && t[0] != '#' {
			isEnd = false // not a marker; let the parser complain
		}
		switch {
		case isStart && !(directivesOnly && hasDirective):
			chunks = append(chunks, chunk{text: cur, line: curLine})
			cur, curLine = nil, line+1
			directivesOnly, hasDirective = true, false
			if trimmed := bytes.TrimSpace(rest); len(trimmed) > 0 && trimmed[0] != '#' {
				// Content on the marker line starts the next document.
				cur = append([]byte("   "), raw[3:]...)
				curLine = line
				directivesOnly = false
			}
			continue
		case isEnd:
			chunks = append(chunks, chunk{text: cur, line: curLine})
			cur, curLine = nil, line+1
			directivesOnly, hasDirective = true, false
			continue
		case isStart:
			// "---" after directives: the start of this same document.
			directivesOnly = false
		}
		trimmed := bytes.TrimSpace(text)
		switch {
		case len(trimmed) == 0 || trimmed[0] == '#':
		case text[0] == '%':
			hasDirective = true
		default:
			directivesOnly = false
		}
		cur = append(cur, raw...)
	}
	return append(chunks, chunk{text: cur, line: curLine})
}

// docMarker reports whether line is the marker ("---" or "...") alone or
// followed by whitespace, and returns what follows it.
func docMarker(line []byte, marker string) ([]byte, bool) {
	if !bytes.HasPrefix(line, []byte(marker)) {
		return nil, false
	}
	rest := line[len(marker):]
	if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' {
		return nil, false
	}
	return rest, true
}
