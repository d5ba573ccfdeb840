package manifest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// AliasBomb returns a ConfigMap whose one scalar of size bytes is anchored
// once and aliased n times: about size bytes of YAML that stand for n+1
// times as many.
func aliasBomb(size, n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n  k0: &a \"")
	b.WriteString(strings.Repeat("x", size))
	b.WriteString("\"\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  k%d: *a\n", i)
	}
	return b.String()
}

// allocated returns how many bytes f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecodeBoundsAliasExpansion: a document whose aliases stand for far
// more than it holds is refused before anything expands them, naming the
// alias that went over the limit, at the cost of reading the text once.
// Before the bound, the 400-alias bomb allocated gigabytes.
func TestDecodeBoundsAliasExpansion(t *testing.T) {
	const mib = 1 << 20
	x := strings.Repeat("x", mib)
	tests := []struct {
		name, input, want string
		// maxAlloc bounds what Decode may allocate; 0 means 8 times the
		// input and 16 MiB.
		maxAlloc uint64
	}{
		{"a 1 MiB scalar aliased 400 times", aliasBomb(mib, 400),
			"bomb.yaml: document 1: line 14: alias *a: aliases would expand the input by more than the limit of 8388608 bytes", 0},
		{"a 1 MiB scalar aliased 200 times", aliasBomb(mib, 200),
			"bomb.yaml: document 1: line 14: alias *a: aliases would expand the input by more than the limit of 8388608 bytes", 0},
		{"characters that JSON escapes count as it writes them", strings.Replace(aliasBomb(256<<10, 8), strings.Repeat("x", 256<<10), strings.Repeat("<", 256<<10), 1),
			"bomb.yaml: document 1: line 12: alias *a: aliases would expand the input by more than the limit of 8388608 bytes", 0},
		{"lists of aliases of lists", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata: {k: &s \"" + x + "\"}\n" +
			"x:\n  l1: &l1 [*s, *s, *s]\n  l2: &l2 [*l1, *l1, *l1]\n  l3: [*l2, *l2]\n",
			"bomb.yaml: document 1: line 7: alias *l1: aliases would expand the input by more than the limit of 8388608 bytes", 0},
		{"nested mappings, a billion laughs", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx:\n" +
			"  a: &a {a: lol, b: lol, c: lol, d: lol, e: lol, f: lol, g: lol, h: lol, i: lol, j: lol}\n" +
			"  b: &b {a: *a, b: *a, c: *a, d: *a, e: *a, f: *a, g: *a, h: *a, i: *a, j: *a}\n" +
			"  c: &c {a: *b, b: *b, c: *b, d: *b, e: *b, f: *b, g: *b, h: *b, i: *b, j: *b}\n" +
			"  d: &d {a: *c, b: *c, c: *c, d: *c, e: *c, f: *c, g: *c, h: *c, i: *c, j: *c}\n" +
			"  e: &e {a: *d, b: *d, c: *d, d: *d, e: *d, f: *d, g: *d, h: *d, i: *d, j: *d}\n" +
			"  f: &f {a: *e, b: *e, c: *e, d: *e, e: *e, f: *e, g: *e, h: *e, i: *e, j: *e}\n" +
			"  g: &g {a: *f, b: *f, c: *f, d: *f, e: *f, f: *f, g: *f, h: *f, i: *f, j: *f}\n" +
			"  h: &h {a: *g, b: *g, c: *g, d: *g, e: *g, f: *g, g: *g, h: *g, i: *g, j: *g}\n" +
			"  i: &i {a: *h, b: *h, c: *h, d: *h, e: *h, f: *h, g: *h, h: *h, i: *h, j: *h}\n",
			"bomb.yaml: document 1: line 9: alias *d: aliases would expand the input by more than the limit of 8388608 bytes", 0},
		{"merge keys", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata: {k: &s \"" + x + "\"}\n" +
			"x:\n  m1: &m1 {a1: *s, a2: *s}\n  m2: &m2 {<<: *m1, b1: *s}\n  m3: {<<: *m2, c1: *s}\n",
			"bomb.yaml: document 1: line 8: alias *m2: aliases would expand the input by more than the limit of 8388608 bytes", 0},
		{"documents share one limit", aliasBomb(mib, 5) + "---\n" + strings.Replace(aliasBomb(mib, 5), "k0:", "k00:", 1),
			"bomb.yaml: document 2: line 21: alias *a: aliases would expand the input by more than the limit of 8388608 bytes",
			// The first document, 6 MiB expanded, is decoded in full.
			256 * mib},
		{"an anchor that contains its own alias", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx: &x [a, [*x]]\n",
			"bomb.yaml: document 1: line 4: alias *x: anchor 'x' value contains itself", 0},
		{"a later anchor of the same name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata: {a: &a small}\n" +
			"x: &a [\"" + x + "\"]\nz: [" + strings.TrimSuffix(strings.Repeat("*a, ", 9), ", ") + "]\n",
			"bomb.yaml: document 1: line 6: alias *a: aliases would expand the input by more than the limit of 8388608 bytes", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = Decode("bomb.yaml", []byte(tc.input)) })
			if err == nil || err.Error() != tc.want {
				t.Errorf("got\n%v\nwant\n%s", err, tc.want)
			}
			// Reading the text costs a few times its size; expanding it would
			// cost hundreds of megabytes.
			limit := tc.maxAlloc
			if limit == 0 {
				limit = uint64(8*len(tc.input) + 16*mib)
			}
			if n > limit {
				t.Errorf("Decode allocated %d MiB for %d KiB of YAML, more than %d MiB", n>>20, len(tc.input)>>10, limit>>20)
			}
		})
	}
}

// TestDecodeAcceptsAliasesWithinTheLimit: aliases that add less than the
// limit decode as before, into the values they stand for; so does a large
// document without aliases whose text has '&' and '*' in it.
func TestDecodeAcceptsAliasesWithinTheLimit(t *testing.T) {
	input := `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  labels: &labels {app: agent, tier: edge}
spec:
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels:
        <<: *labels
        extra: "yes"
    spec:
      containers:
      - name: main
        image: registry.local/agent:1.0
        env: &env
        - {name: MODE, value: edge}
        - {name: GLOB, value: "*.local & more"}
      - name: side
        image: registry.local/side:1.0
        env: *env
`
	docs, err := Decode("ok.yaml", []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	ds := docs[0].Object.(*api.DaemonSet)
	if got := ds.Spec.Selector.MatchLabels; len(got) != 2 || got["tier"] != "edge" {
		t.Errorf("selector = %v", got)
	}
	if got := ds.Spec.Template.Labels; len(got) != 3 || got["app"] != "agent" || got["extra"] != "yes" {
		t.Errorf("template labels = %v", got)
	}
	if env := ds.Spec.Template.Spec.Containers[1].Env; len(env) != 2 || env[1].Value != "*.local & more" {
		t.Errorf("second container's env = %v", env)
	}

	// Eight aliases of a scalar of 1 MiB less 100 bytes add just under the
	// limit (each counts its text and 64 bytes).
	if _, err := Decode("near.yaml", []byte(aliasBomb(1<<20-100, 8))); err != nil {
		t.Errorf("eight aliases of just under 1 MiB: %v", err)
	}

	// Large, no aliases, '*' and '&' in the text: two ConfigMaps of 1000 KiB.
	var big strings.Builder
	for _, name := range []string{"a", "b"} {
		fmt.Fprintf(&big, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  cron: \"*/5 * * * * &\"\n  v: \"", name)
		big.WriteString(strings.Repeat("*&", 500<<10))
		big.WriteString("\"\n")
	}
	docs, err = Decode("big.yaml", []byte(big.String()))
	if err != nil || len(docs) != 2 || len(docs[1].Object.(*api.ConfigMap).Data["v"]) != 1000<<10 {
		t.Fatalf("large manifest without aliases: %d documents, %v", len(docs), err)
	}
}

// BenchmarkDecodeAliasCheck prices the alias check on a large honest
// document: about 7 MiB of small annotations, decoded once as it is and
// once with one anchor and one alias, which makes Decode parse it into a
// node tree first.
func BenchmarkDecodeAliasCheck(b *testing.B) {
	var doc strings.Builder
	doc.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  labels: {a: b}\n  annotations:\n")
	for i := 0; doc.Len() < 7<<20; i++ {
		fmt.Fprintf(&doc, "    k%d: v\n", i)
	}
	plain := doc.String() + "data: {a: b}\n"
	aliased := strings.Replace(doc.String(), "labels: {a: b}", "labels: &l {a: b}", 1) + "data: *l\n"
	for _, bc := range []struct{ name, input string }{{"no aliases", plain}, {"one alias", aliased}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.input)))
			for b.Loop() {
				if _, err := Decode("big.yaml", []byte(bc.input)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
