package manifest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestExamplesApply loads every manifest in manifests/examples, as
// `hub apply -f` does: the examples the README and
// the CLI's help point at must stay valid.
func TestExamplesApply(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "manifests", "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d example manifests, want the hello, sensor and web examples at least", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := Load(filepath.Base(f), data, LoadOptions{Apply: true})
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(docs) == 0 {
			t.Errorf("%s: no objects", f)
		}
	}
}
