package devices

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func open(t *testing.T, root, stateFile string, changed *atomic.Int32) *Inventory {
	t.Helper()
	cfg := Config{Root: root, Classes: DefaultClasses(), StateFile: stateFile}
	if changed != nil {
		cfg.Changed = func() { changed.Add(1) }
	}
	inv, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func req(uid, pod, container string, counts map[string]int64) Request {
	return Request{PodUID: uid, Namespace: "default", Pod: pod, Container: container, Counts: counts}
}

func held(g Grant) []string {
	var out []string
	for _, d := range g.Devices {
		out = append(out, d.Path)
	}
	return out
}

func TestAssignFirstFreeAndStable(t *testing.T) {
	root := devRoot(t, "ttyUSB0", "ttyUSB1", "ttyACM0", "video0")
	state := filepath.Join(t.TempDir(), "devices.json")
	var changed atomic.Int32
	inv := open(t, root, state, &changed)
	one := map[string]int64{"serial": 1}
	reqs := []Request{req("u-b", "b", "main", one), req("u-a", "a", "main", one)}
	g, err := inv.Assign(reqs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// By pod name: a takes the first free serial (ttyACM0 sorts before
	// ttyUSB0), b the next.
	if got := held(g[Key{"u-a", "main"}]); !slices.Equal(got, []string{"ttyACM0"}) || !g[Key{"u-a", "main"}].Ready() {
		t.Fatalf("a holds %v (%+v)", got, g[Key{"u-a", "main"}])
	}
	if got := held(g[Key{"u-b", "main"}]); !slices.Equal(got, []string{"ttyUSB0"}) {
		t.Fatalf("b holds %v", got)
	}
	if changed.Load() != 1 {
		t.Fatalf("Changed called %d times, want once", changed.Load())
	}

	// A pod that comes first by name later does not take a's device.
	reqs = append(reqs, req("u-0", "0-first", "main", one))
	g, _ = inv.Assign(reqs, nil)
	if got := held(g[Key{"u-a", "main"}]); !slices.Equal(got, []string{"ttyACM0"}) {
		t.Fatalf("a now holds %v: holdings must be stable", got)
	}
	if got := held(g[Key{"u-0", "main"}]); !slices.Equal(got, []string{"ttyUSB1"}) {
		t.Fatalf("0-first holds %v, want the last free one", got)
	}

	// A fourth finds none: it waits, with the reason, and holds nothing.
	reqs = append(reqs, req("u-d", "d", "main", one))
	g, _ = inv.Assign(reqs, nil)
	if gd := g[Key{"u-d", "main"}]; gd.Ready() || len(gd.Devices) != 0 || gd.Waiting != "1 devices.flotilla.io/serial asked for, 0 free on the node" {
		t.Fatalf("d = %+v", gd)
	}

	// The same again changes nothing, and says nothing.
	before := changed.Load()
	if _, err := inv.Assign(reqs, nil); err != nil || changed.Load() != before {
		t.Fatalf("an idle Assign: err %v, Changed %d → %d", err, before, changed.Load())
	}

	// A reboot: the same holdings come back from the state file.
	inv2 := open(t, root, state, nil)
	g2, _ := inv2.Assign(reqs, nil)
	for k, want := range g {
		if !slices.Equal(held(g2[k]), held(want)) {
			t.Fatalf("after reopening, %v holds %v, want %v", k, held(g2[k]), held(want))
		}
	}
}

func TestAssignAllOrNothingAndRelease(t *testing.T) {
	root := devRoot(t, "ttyUSB0", "ttyUSB1", "video0")
	inv := open(t, root, "", nil)
	two := req("u-two", "two", "main", map[string]int64{"serial": 2, "video": 1})
	g, _ := inv.Assign([]Request{req("u-one", "one", "main", map[string]int64{"serial": 1}), two}, nil)
	if got := g[Key{"u-two", "main"}]; len(got.Devices) != 1 || got.Devices[0].Path != "video0" ||
		got.Waiting != "2 devices.flotilla.io/serial asked for, 1 free on the node" {
		t.Fatalf("two = %+v: want the video device and a wait for two serial ones, none taken", got)
	}

	// one's pod is gone, but its containers are still on the board
	// (stopping): it keeps its device.
	g, _ = inv.Assign([]Request{two}, map[string]bool{"u-one": true})
	if got := g[Key{"u-two", "main"}]; got.Ready() {
		t.Fatalf("two = %+v: one's device is not free while its containers stop", got)
	}
	// Now they are gone: two gets both.
	g, _ = inv.Assign([]Request{two}, nil)
	if got := g[Key{"u-two", "main"}]; !got.Ready() || !slices.Equal(held(got), []string{"ttyUSB0", "ttyUSB1", "video0"}) {
		t.Fatalf("two = %+v", got)
	}

	// two asks for less (a new spec): it keeps the first and lets the
	// rest go.
	two.Counts = map[string]int64{"serial": 1}
	g, _ = inv.Assign([]Request{two}, nil)
	if got := held(g[Key{"u-two", "main"}]); !slices.Equal(got, []string{"ttyUSB0"}) {
		t.Fatalf("two holds %v after asking for one serial device", got)
	}
	if devs := inv.Devices(); len(devs) != 3 || devs[1].Pod != "" || devs[2].Pod != "" || devs[0].Pod != "default/two" || devs[0].Container != "main" {
		t.Fatalf("devices %+v", devs)
	}
}

// TestAssignKeepsAnUnpluggedDevice: a container keeps the device it holds
// while it is unplugged, waits for it (no other device of the class is
// handed over), and may run again once it is back.
func TestAssignKeepsAnUnpluggedDevice(t *testing.T) {
	root := devRoot(t, "ttyUSB0")
	var changed atomic.Int32
	inv := open(t, root, filepath.Join(t.TempDir(), "devices.json"), &changed)
	gw := []Request{req("u-gw", "gw", "main", map[string]int64{"serial": 1})}
	if g, _ := inv.Assign(gw, nil); !g[Key{"u-gw", "main"}].Ready() {
		t.Fatalf("gw = %+v", g)
	}

	unplug(t, root, "ttyUSB0")
	plug(t, root, "ttyUSB1") // another adapter: not gw's
	before := changed.Load()
	if ok, err := inv.Rescan(); !ok || err != nil || changed.Load() != before+1 {
		t.Fatalf("Rescan = %v, %v; Changed %d → %d", ok, err, before, changed.Load())
	}
	g, _ := inv.Assign(gw, nil)
	got := g[Key{"u-gw", "main"}]
	if got.Ready() || !slices.Equal(held(got), []string{"ttyUSB0"}) || got.Waiting != "device ttyUSB0 (devices.flotilla.io/serial) is not on the node" {
		t.Fatalf("gw = %+v: want it waiting for its own device", got)
	}
	if capacity := inv.Capacity(); capacity["devices.flotilla.io/serial"] != "1" || capacity["devices.flotilla.io/video"] != "0" {
		t.Fatalf("capacity %v", capacity)
	}
	want := []api.NodeDevice{
		{Class: "serial", Path: "ttyUSB1", Type: "c", Major: 1, Minor: 3},
		{Class: "serial", Path: "ttyUSB0", Type: "c", Major: 1, Minor: 3, Absent: true, Pod: "default/gw", Container: "main"},
	}
	if devs := inv.Devices(); !slices.Equal(devs, want) {
		t.Fatalf("devices %+v\nwant %+v", devs, want)
	}

	plug(t, root, "ttyUSB0")
	if _, err := inv.Rescan(); err != nil {
		t.Fatal(err)
	}
	if g, _ := inv.Assign(gw, nil); !g[Key{"u-gw", "main"}].Ready() || !slices.Equal(held(g[Key{"u-gw", "main"}]), []string{"ttyUSB0"}) {
		t.Fatalf("gw = %+v once its device is back", g[Key{"u-gw", "main"}])
	}
}

func TestAssignDoesNotChangeWhatItCannotSave(t *testing.T) {
	root := devRoot(t, "ttyUSB0")
	dir := t.TempDir()
	inv := open(t, root, filepath.Join(dir, "devices.json"), nil)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if os.Geteuid() == 0 {
		// root writes anyway: make the file's directory a file instead.
		inv.cfg.StateFile = filepath.Join(dir, "devices.json", "x")
	}
	gw := []Request{req("u-gw", "gw", "main", map[string]int64{"serial": 1})}
	g, err := inv.Assign(gw, nil)
	if err == nil || !strings.Contains(err.Error(), "save device holdings") {
		t.Fatalf("err = %v", err)
	}
	if got := g[Key{"u-gw", "main"}]; got.Ready() || len(got.Devices) != 0 {
		t.Fatalf("gw = %+v: nothing may be handed over unsaved", got)
	}
	if devs := inv.Devices(); devs[0].Pod != "" {
		t.Fatalf("devices %+v", devs)
	}
}

func TestOpenMovesABrokenStateFileAside(t *testing.T) {
	root := devRoot(t, "ttyUSB0")
	dir := t.TempDir()
	state := filepath.Join(dir, "devices.json")
	for _, bad := range []string{"{not json", `{"version":7,"holds":[]}`, `{"version":1,"holds":[{"device":{"path":"ttyUSB0"}}]}`} {
		if err := os.WriteFile(state, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		inv := open(t, root, state, nil)
		if devs := inv.Devices(); len(devs) != 1 || devs[0].Pod != "" {
			t.Fatalf("%s: devices %+v, want ttyUSB0 free", bad, devs)
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Fatalf("%s: the state file is still there: %v", bad, err)
		}
	}
	aside, _ := filepath.Glob(state + ".broken-*")
	if len(aside) == 0 {
		t.Fatal("nothing moved aside")
	}
}
