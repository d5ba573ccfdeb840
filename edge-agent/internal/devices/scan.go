package devices

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Device is one device node of the board.
type Device struct {
	Class string
	// Path is the node's path under the dev root, slash-separated
	// ("ttyUSB0", "serial/by-id/usb-FTDI…"). It names the device: the
	// same path is the same device, after an unplug or a reboot too.
	Path string
	// Type is "c" (character) or "b" (block); Major and Minor are the
	// node's numbers (of the node a symlink leads to).
	Type         string
	Major, Minor int64
}

// Scan finds the device nodes under root that the classes' patterns
// match: character and block devices only (a symlink counts as the node
// it leads to; a dangling one, a directory, a file or a socket does not).
// A node matched by several classes is the first's, by name. Devices come
// sorted by class, then path in natural order (ttyUSB2 before ttyUSB10).
// Only an unreadable root is an error.
func Scan(root string, classes []Class) ([]Device, error) {
	if _, err := os.ReadDir(root); err != nil {
		return nil, fmt.Errorf("scan devices: %w", err)
	}
	classes = slices.Clone(classes)
	slices.SortFunc(classes, func(a, b Class) int { return cmp.Compare(a.Name, b.Name) })
	base := escapeGlob(filepath.Clean(root))
	taken := map[string]bool{}
	var out []Device
	for _, c := range classes {
		for _, p := range c.Patterns {
			// Only malformed patterns make Glob fail, and checkPattern
			// refused those.
			matches, _ := filepath.Glob(base + string(filepath.Separator) + filepath.FromSlash(p))
			for _, m := range matches {
				rel, err := filepath.Rel(root, m)
				if err != nil {
					continue
				}
				rel = filepath.ToSlash(rel)
				if taken[rel] {
					continue
				}
				d, ok := stat(m)
				if !ok {
					continue
				}
				taken[rel] = true
				d.Class, d.Path = c.Name, rel
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, compareDevices)
	return out, nil
}

// stat reads a node's type and numbers, following symlinks; ok is false
// for anything but a character or block device.
func stat(file string) (Device, bool) {
	fi, err := os.Stat(file)
	if err != nil || fi.Mode()&os.ModeDevice == 0 {
		return Device{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Device{}, false
	}
	d := Device{Type: "b", Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev)))}
	if fi.Mode()&os.ModeCharDevice != 0 {
		d.Type = "c"
	}
	return d, true
}

// compareDevices orders devices by class, then path in natural order.
func compareDevices(a, b Device) int {
	return cmp.Or(cmp.Compare(a.Class, b.Class), naturalCompare(a.Path, b.Path))
}

// naturalCompare compares strings with runs of digits compared as
// numbers: ttyUSB2 < ttyUSB10 (and ttyUSB2 < ttyUSB02, as strings, when
// the numbers are equal).
func naturalCompare(a, b string) int {
	if c := naturalOrder(a, b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func naturalOrder(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// escapeGlob quotes the glob metacharacters of a literal path.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
