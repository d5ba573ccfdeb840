package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/edge-agent/internal/devices"
	"github.com/flotilla-edge/flotilla/pkg/config"
)

// TestDeviceConfig: the device flags as a board's command line, its
// --config file or its environment give them.
func TestDeviceConfig(t *testing.T) {
	dir := t.TempDir()
	profile := filepath.Join(dir, "board.yaml")
	if err := os.WriteFile(profile, []byte("board: test\ndevices:\n  serial: [ttyS0]\n  npu: [accel*]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(args []string, file string) (*devices.Config, error) {
		cmd := newRootCommand()
		if err := cmd.Flags().Parse(args); err != nil {
			t.Fatal(err)
		}
		v, err := config.Load(cmd.Flags(), file)
		if err != nil {
			t.Fatal(err)
		}
		return deviceConfig(v)
	}
	names := func(c *devices.Config) map[string][]string {
		out := map[string][]string{}
		for _, cl := range c.Classes {
			out[cl.Name] = cl.Patterns
		}
		return out
	}

	c, err := load(nil, "")
	if err != nil || c.Root != "/dev" || !reflect.DeepEqual(c.Classes, devices.DefaultClasses()) || c.Rescan != devices.DefaultRescan {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = load([]string{"--dev-root", dir, "--board-profile", profile, "--device-class", "serial=ttyUSB*,ttyACM*", "--device-class", "video="}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"gpio": {"gpiochip*"}, "i2c": {"i2c-*"}, "npu": {"accel*"}, "serial": {"ttyUSB*", "ttyACM*"}, "spi": {"spidev*"}}
	if c.Root != dir || !reflect.DeepEqual(names(c), want) {
		t.Fatalf("flags over the profile over the defaults: root %s, classes %v, want %v", c.Root, names(c), want)
	}
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte("device-class: [\"serial=ttyUSB*,ttyACM*\", \"gpio=gpiochip0\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = load(nil, file); err != nil || !reflect.DeepEqual(names(c)["serial"], []string{"ttyUSB*", "ttyACM*"}) ||
		!reflect.DeepEqual(names(c)["gpio"], []string{"gpiochip0"}) {
		t.Fatalf("from the config file: %v, %v", c, err)
	}

	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--device-class", "ttyUSB*"}, "want NAME=GLOB"},
		{[]string{"--board-profile", filepath.Join(dir, "missing.yaml")}, "--board-profile"},
		{[]string{"--device-rescan-interval", "0s"}, "--device-rescan-interval 0s"},
	} {
		if _, err := load(tc.args, ""); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: err = %v, want …%s…", tc.args, err, tc.err)
		}
	}
}
