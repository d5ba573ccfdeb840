package devices

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// devRoot makes a dev root for tests: each name is a symlink to a real
// character device of the machine (/dev/null, 1:3), which is what a
// device node looks like to Scan without needing mknod; the directories
// of names are made.
func devRoot(t *testing.T, names ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, n := range names {
		plug(t, root, n)
	}
	return root
}

// plug makes name under root a device node (a symlink to /dev/null).
func plug(t *testing.T, root, name string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", p); err != nil {
		t.Fatal(err)
	}
}

// unplug removes name under root.
func unplug(t *testing.T, root, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(root, name)); err != nil {
		t.Fatal(err)
	}
}

func paths(ds []Device) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Class+":"+d.Path)
	}
	return out
}

func TestScanFindsDeviceNodesByPattern(t *testing.T) {
	root := devRoot(t, "ttyUSB10", "ttyUSB2", "ttyACM0", "video0", "gpiochip0", "i2c-1", "spidev0.0", "serial/by-id/usb-FTDI_1", "ttyS0")
	// Not devices: a file, a directory, a dangling link, a socket-less name.
	if err := os.WriteFile(filepath.Join(root, "ttyUSB7"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "video1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "nothing"), filepath.Join(root, "ttyUSB8")); err != nil {
		t.Fatal(err)
	}
	classes := Merge(DefaultClasses(), []Class{{"by-id", []string{"serial/by-id/*"}}})
	got, err := Scan(root, classes)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"by-id:serial/by-id/usb-FTDI_1", "gpio:gpiochip0", "i2c:i2c-1", "serial:ttyACM0", "serial:ttyUSB2", "serial:ttyUSB10",
		"spi:spidev0.0", "video:video0"}
	if !slices.Equal(paths(got), want) {
		t.Fatalf("Scan = %v\nwant %v", paths(got), want)
	}
	if d := got[0]; d.Type != "c" || d.Major != 1 || d.Minor != 3 {
		t.Errorf("device %+v: want the numbers of /dev/null (c 1:3)", d)
	}

	// A node two classes match is the first's, by name; no node twice.
	got, err = Scan(root, []Class{{"tty", []string{"tty*"}}, {"serial", []string{"ttyUSB*", "ttyUSB2"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"serial:ttyUSB2", "serial:ttyUSB10", "tty:ttyACM0", "tty:ttyS0"}; !slices.Equal(paths(got), want) {
		t.Fatalf("Scan = %v, want %v", paths(got), want)
	}
}

func TestScanRootWithGlobCharacters(t *testing.T) {
	root := filepath.Join(t.TempDir(), "dev[1]*")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	plug(t, root, "ttyUSB0")
	got, err := Scan(root, DefaultClasses())
	if err != nil || !slices.Equal(paths(got), []string{"serial:ttyUSB0"}) {
		t.Fatalf("Scan = %v, %v", paths(got), err)
	}
}

func TestScanWithoutRoot(t *testing.T) {
	if _, err := Scan(filepath.Join(t.TempDir(), "missing"), DefaultClasses()); err == nil {
		t.Fatal("scanned a dev root that does not exist")
	}
}

func TestNaturalCompare(t *testing.T) {
	in := []string{"ttyUSB10", "ttyUSB2", "ttyACM1", "ttyUSB02", "ttyUSB1", "a", "spidev0.10", "spidev0.9"}
	slices.SortFunc(in, naturalCompare)
	want := []string{"a", "spidev0.9", "spidev0.10", "ttyACM1", "ttyUSB1", "ttyUSB02", "ttyUSB2", "ttyUSB10"}
	if !slices.Equal(in, want) {
		t.Fatalf("sorted %v, want %v", in, want)
	}
}
