package devices

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseClassFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		items []string
		want  []Class
		err   string
	}{
		{name: "one flag per class", items: []string{"serial=ttyUSB*,ttyACM*", "npu=accel*"},
			want: []Class{{"serial", []string{"ttyUSB*", "ttyACM*"}}, {"npu", []string{"accel*"}}}},
		{name: "split at commas, as a config list or env var comes", items: []string{"serial=ttyUSB*", "ttyACM*", "gpio=gpiochip*"},
			want: []Class{{"serial", []string{"ttyUSB*", "ttyACM*"}}, {"gpio", []string{"gpiochip*"}}}},
		{name: "off", items: []string{"video="}, want: []Class{{Name: "video"}}},
		{name: "subdirectory", items: []string{"serial=serial/by-id/*"}, want: []Class{{"serial", []string{"serial/by-id/*"}}}},
		{name: "no name", items: []string{"ttyUSB*"}, err: `--device-class "ttyUSB*": want NAME=GLOB`},
		{name: "bad name", items: []string{"Serial=ttyUSB*"}, err: `device class "Serial" must be lower-case`},
		{name: "twice", items: []string{"serial=a*", "serial=b*"}, err: "--device-class serial is given twice"},
		{name: "absolute", items: []string{"serial=/dev/ttyUSB*"}, err: "must be relative to the dev root"},
		{name: "escapes the root", items: []string{"serial=../etc/*"}, err: "clean path under the dev root"},
		{name: "malformed glob", items: []string{"serial=tty[USB"}, err: "syntax error in pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseClassFlags(tc.items)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want …%s…", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	profile := []Class{{"serial", []string{"ttyAMA0", "ttyS0"}}, {"camera", []string{"media*"}}}
	flags := []Class{{Name: "video"}, {"gpio", []string{"gpiochip0"}}}
	got := Merge(DefaultClasses(), profile, flags)
	want := []Class{
		{"camera", []string{"media*"}},
		{"gpio", []string{"gpiochip0"}},
		{"i2c", []string{"i2c-*"}},
		{"serial", []string{"ttyAMA0", "ttyS0"}},
		{"spi", []string{"spidev*"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge = %v\nwant %v", got, want)
	}
}

func TestLoadProfile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := LoadProfile(write("pi.yaml", "board: a Pi\ngotchas: [x]\ndevices:\n  serial: [ttyAMA0, ttyUSB*]\n  gpio: [gpiochip*]\n  video: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Class{{"gpio", []string{"gpiochip*"}}, {"serial", []string{"ttyAMA0", "ttyUSB*"}}, {Name: "video", Patterns: []string{}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadProfile = %#v, want %#v", got, want)
	}
	for _, tc := range []struct{ name, text, err string }{
		{"no devices", "board: a Pi\ndevice:\n  serial: [ttyAMA0]\n", "no devices map"},
		{"not a map", "devices: [ttyAMA0]\n", "want a map of class names to lists of globs"},
		{"bad pattern", "devices:\n  serial: [/dev/ttyAMA0]\n", "devices.serial: device class serial: pattern \"/dev/ttyAMA0\" must be relative"},
		{"bad class", "devices:\n  Serial: [ttyAMA0]\n", "devices.Serial"},
		{"not yaml", "devices: [\n", "board profile"},
	} {
		if _, err := LoadProfile(write(tc.name+".yaml", tc.text)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want …%s…", tc.name, err, tc.err)
		}
	}
	if _, err := LoadProfile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing profile loaded")
	}
}

// TestBoardProfilesInARMLoad: every board profile of the repository that
// lists devices is one the agent takes.
func TestBoardProfilesInARMLoad(t *testing.T) {
	files, err := filepath.Glob("../../../arm/boards/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no board profiles: %v", err)
	}
	loaded := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), "\ndevices:") {
			continue
		}
		classes, err := LoadProfile(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(classes) == 0 {
			t.Errorf("%s: no device classes", f)
		}
		loaded++
	}
	if loaded == 0 {
		t.Errorf("no board profile in arm/boards lists devices")
	}
}
