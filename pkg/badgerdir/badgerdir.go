// Package badgerdir readies a Badger directory for opening after a crash.
// Badger creates a write-ahead log (.mem) or value log (.vlog) file
// before it writes the file's header; a process killed in between leaves
// an empty file, and Badger v4 then refuses to open the directory at all
// ("Open existing file: … Create a new file"). An empty log file holds
// nothing, so removing it loses nothing; Badger creates it again. Both the
// hub's stores and the agent's state use it before badger.Open.
package badgerdir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// RemoveUnborn removes the empty .mem and .vlog files of the Badger
// directory dir and returns their names. A directory that does not exist
// yet is no error.
func RemoveUnborn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read badger directory %s: %w", dir, err)
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !(strings.HasSuffix(name, ".mem") || strings.HasSuffix(name, ".vlog")) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return removed, fmt.Errorf("stat %s: %w", filepath.Join(dir, name), err)
		}
		if info.Size() != 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return removed, fmt.Errorf("remove empty log file %s: %w", filepath.Join(dir, name), err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}
