// Package devices finds the board's device nodes (serial adapters,
// cameras, GPIO chips, I²C and SPI buses) by name patterns under the dev
// root, keeps the list current as devices are plugged in and pulled out
// (inotify on the dev root, and a periodic rescan behind it), and hands
// them to pods' containers: the first free ones, kept by a container for
// as long as its pod is on the node, and written to the agent's state
// directory before any container gets them, so that a reboot without the
// hub gives the same pod the same devices.
//
// classes.go is the classes and their patterns (defaults, a board
// profile, --device-class); scan.go finds the nodes; inventory.go keeps
// what is present and who holds what; watch.go follows hot-plug.
package devices

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Class is a kind of device and the patterns that find its nodes: globs
// (filepath.Match syntax) relative to the dev root, such as "ttyUSB*" or
// "serial/by-id/*". A node matched by the patterns of several classes
// belongs to the first by name.
type Class struct {
	Name     string
	Patterns []string
}

// DefaultClasses are the classes an agent looks for unless told
// otherwise. Serial ports are only the USB adapters and the SoC UARTs
// (ttyAMA*): ttyS* nodes exist on most PCs whether or not a port is
// wired, so a board profile names the ones it has.
func DefaultClasses() []Class {
	return []Class{
		{Name: "gpio", Patterns: []string{"gpiochip*"}},
		{Name: "i2c", Patterns: []string{"i2c-*"}},
		{Name: "serial", Patterns: []string{"ttyUSB*", "ttyACM*", "ttyAMA*"}},
		{Name: "spi", Patterns: []string{"spidev*"}},
		{Name: "video", Patterns: []string{"video*"}},
	}
}

// checkPattern says what is wrong with a pattern, if anything: it must be
// a well-formed glob under the dev root.
func checkPattern(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty pattern")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("pattern %q must be relative to the dev root (ttyUSB*, not /dev/ttyUSB*)", p)
	case path.Clean(p) != p || p == "." || slices.Contains(strings.Split(p, "/"), ".."):
		return fmt.Errorf("pattern %q must be a clean path under the dev root, without . or ..", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("pattern %q: %w", p, err)
	}
	return nil
}

// checkClass checks a class's name and patterns; a class without
// patterns is one that is turned off.
func checkClass(c Class) error {
	if err := api.ValidateDeviceClass(c.Name); err != nil {
		return err
	}
	for _, p := range c.Patterns {
		if err := checkPattern(p); err != nil {
			return fmt.Errorf("device class %s: %w", c.Name, err)
		}
	}
	return nil
}

// ParseClassFlags reads --device-class values: NAME=GLOB[,GLOB...], each
// replacing the class of that name (NAME= with no glob turns it off).
// The values may come split at their commas (a configuration list, an
// environment variable): an item without "=" adds a glob to the class
// before it.
func ParseClassFlags(items []string) ([]Class, error) {
	var out []Class
	seen := map[string]bool{}
	for _, item := range items {
		item = strings.TrimSpace(item)
		name, globs, hasName := strings.Cut(item, "=")
		if !hasName {
			if len(out) == 0 {
				return nil, fmt.Errorf("--device-class %q: want NAME=GLOB[,GLOB...], such as serial=ttyUSB*,ttyACM*", item)
			}
			globs, name = item, out[len(out)-1].Name
		} else {
			name = strings.TrimSpace(name)
			if seen[name] {
				return nil, fmt.Errorf("--device-class %s is given twice", name)
			}
			seen[name] = true
			out = append(out, Class{Name: name})
		}
		c := &out[len(out)-1]
		for _, g := range strings.Split(globs, ",") {
			if g = strings.TrimSpace(g); g != "" {
				c.Patterns = append(c.Patterns, g)
			}
		}
	}
	for _, c := range out {
		if err := checkClass(c); err != nil {
			return nil, fmt.Errorf("--device-class: %w", err)
		}
	}
	return out, nil
}

// LoadProfile reads the device classes of a board profile
// (arm/boards/*.yaml): its "devices" map of class names to pattern
// lists. The profile's other keys describe the board for people and are
// not read; a profile without a devices map is an error, so that a
// misspelt key does not go unnoticed.
func LoadProfile(file string) ([]Class, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("board profile: %w", err)
	}
	return parseProfile(file, raw)
}

// parseProfile is LoadProfile on the content raw of file.
func parseProfile(file string, raw []byte) ([]Class, error) {
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("board profile %s: %w", file, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, fmt.Errorf("board profile %s: want a YAML mapping: %w", file, err)
	}
	section, ok := top["devices"]
	if !ok || bytes.Equal(bytes.TrimSpace(section), []byte("null")) {
		return nil, fmt.Errorf("board profile %s: no devices map (class: [glob, ...])", file)
	}
	var byName map[string][]string
	if err := json.Unmarshal(section, &byName); err != nil {
		return nil, fmt.Errorf("board profile %s: devices: want a map of class names to lists of globs: %w", file, err)
	}
	out := make([]Class, 0, len(byName))
	for _, name := range sortedKeys(byName) {
		c := Class{Name: name, Patterns: byName[name]}
		if err := checkClass(c); err != nil {
			return nil, fmt.Errorf("board profile %s: devices.%s: %w", file, name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Merge lays each list of classes over the ones before: a class replaces
// the one of its name, a class without patterns removes it. The result is
// sorted by name.
func Merge(layers ...[]Class) []Class {
	byName := map[string][]string{}
	for _, layer := range layers {
		for _, c := range layer {
			if len(c.Patterns) == 0 {
				delete(byName, c.Name)
				continue
			}
			byName[c.Name] = slices.Clone(c.Patterns)
		}
	}
	out := make([]Class, 0, len(byName))
	for _, name := range sortedKeys(byName) {
		out = append(out, Class{Name: name, Patterns: byName[name]})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// hostPath is where a device of the dev root root is on the board.
func hostPath(root, rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
