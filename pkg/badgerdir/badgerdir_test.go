package badgerdir

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// TestReopenAfterAnUnbornLogFile: a process killed after Badger created a
// log file and before it wrote its header leaves the file empty, and
// Badger refuses the whole directory; removed first, it opens with
// everything that was written.
func TestReopenAfterAnUnbornLogFile(t *testing.T) {
	for _, name := range []string{"000002.vlog", "00009.mem"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "db")
			db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			// The fault, on a copy (a failed open fills the empty file).
			faulty := t.TempDir()
			if err := os.CopyFS(faulty, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			if db, err := badger.Open(badger.DefaultOptions(faulty).WithLogger(nil)); err == nil {
				db.Close()
				t.Fatalf("Badger opened a directory with an empty %s; this test no longer shows the fault", name)
			}
			removed, err := RemoveUnborn(dir)
			if err != nil || !slices.Equal(removed, []string{name}) {
				t.Fatalf("removed %v, %v", removed, err)
			}
			db, err = badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
			if err != nil {
				t.Fatalf("open after removing %s: %v", name, err)
			}
			defer db.Close()
			if err := db.View(func(txn *badger.Txn) error {
				_, err := txn.Get([]byte("k"))
				return err
			}); err != nil {
				t.Fatalf("the key written before: %v", err)
			}
		})
	}
	if removed, err := RemoveUnborn(filepath.Join(t.TempDir(), "none")); err != nil || removed != nil {
		t.Fatalf("a missing directory: %v, %v", removed, err)
	}
}
