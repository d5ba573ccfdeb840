package devices

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Request is what one container of a pod asks for: a number of devices
// of each class (its devices.flotilla.io/CLASS limits).
type Request struct {
	PodUID, Namespace, Pod, Container string
	Counts                            map[string]int64
}

// Key names one container of one pod.
type Key struct{ PodUID, Container string }

// Grant is what a container holds, and whether it can run with it.
type Grant struct {
	// Devices are the devices the container holds, by class and path:
	// present, or unplugged since (then as they were last seen).
	Devices []Device
	// Waiting says why the container cannot run yet: fewer devices free
	// than it asks for, or one it holds is not on the board. Empty: it
	// can.
	Waiting string
}

// Ready reports whether the container has every device it asks for, and
// every one is on the board.
func (g Grant) Ready() bool { return g.Waiting == "" }

// Config configures an Inventory.
type Config struct {
	// Root is the dev root: where device nodes are looked for (/dev; a
	// test gives a directory of its own).
	Root    string
	Classes []Class
	// StateFile is where who holds which device is kept across restarts
	// (the agent's state directory); "" keeps it in memory only.
	StateFile string
	// Rescan is the period of the rescan behind inotify (default 10 s).
	Rescan time.Duration
	// Changed, if set, is called whenever what Capacity or Devices
	// report changes: a device came or went, or changed hands. It is
	// called without the inventory's lock, from Run or from Assign's
	// caller, and must not block for long.
	Changed func()
	Logger  *slog.Logger
}

// DefaultRescan is the period of the rescan behind inotify.
const DefaultRescan = 10 * time.Second

// Inventory is the board's devices: which are present, and which
// container holds which.
type Inventory struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// present holds the devices found by the last scan, by path.
	present map[string]Device
	// holds holds who holds each held device, by path, as saved in
	// StateFile.
	holds map[string]holding
}

// holding is one device held by one container, as saved.
type holding struct {
	Device    Device `json:"device"`
	PodUID    string `json:"podUID"`
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
}

func (h holding) key() Key { return Key{PodUID: h.PodUID, Container: h.Container} }

// stateFile is StateFile's content.
type stateFile struct {
	Version int       `json:"version"`
	Holds   []holding `json:"holds"`
}

const stateVersion = 1

// Open reads who holds what from StateFile and scans the dev root once.
// It starts nothing: Run follows hot-plug. A state file that does not
// decode is moved aside (FILE.broken-TIME) and logged, and the board
// starts with no device held: its pods get devices afresh.
func Open(cfg Config) (*Inventory, error) {
	if cfg.Rescan <= 0 {
		cfg.Rescan = DefaultRescan
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, c := range cfg.Classes {
		if err := checkClass(c); err != nil {
			return nil, err
		}
	}
	inv := &Inventory{cfg: cfg, log: cfg.Logger.With("component", "devices"), present: map[string]Device{}, holds: map[string]holding{}}
	if err := inv.load(); err != nil {
		return nil, err
	}
	found, err := Scan(cfg.Root, cfg.Classes)
	if err != nil {
		return nil, err
	}
	for _, d := range found {
		inv.present[d.Path] = d
	}
	inv.log.Info("devices found", "root", cfg.Root, "devices", describe(found), "held", len(inv.holds))
	return inv, nil
}

// load reads StateFile into holds.
func (inv *Inventory) load() error {
	if inv.cfg.StateFile == "" {
		return nil
	}
	raw, err := os.ReadFile(inv.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read device holdings: %w", err)
	}
	holds, err := parseState(raw)
	if err != nil {
		aside := fmt.Sprintf("%s.broken-%d", inv.cfg.StateFile, time.Now().Unix())
		if rerr := os.Rename(inv.cfg.StateFile, aside); rerr != nil {
			return fmt.Errorf("device holdings %s do not decode (%v), and cannot be moved aside: %w", inv.cfg.StateFile, err, rerr)
		}
		inv.log.Warn("device holdings do not decode; moved aside, every device is free", "file", aside, "err", err)
		return nil
	}
	inv.holds = holds
	return nil
}

// parseState decodes StateFile's content: holdings by device path.
func parseState(raw []byte) (map[string]holding, error) {
	var st stateFile
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, err
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("version %d, want %d", st.Version, stateVersion)
	}
	holds := make(map[string]holding, len(st.Holds))
	for _, h := range st.Holds {
		if h.Device.Path == "" || h.PodUID == "" || api.ValidateDeviceClass(h.Device.Class) != nil {
			return nil, fmt.Errorf("a holding without a device, a class or a pod: %+v", h)
		}
		if _, twice := holds[h.Device.Path]; twice {
			return nil, fmt.Errorf("device %s held twice", h.Device.Path)
		}
		holds[h.Device.Path] = h
	}
	return holds, nil
}

// save writes holds to StateFile, replacing it whole (a new file synced,
// then renamed over the old one).
func (inv *Inventory) save(holds map[string]holding) error {
	if inv.cfg.StateFile == "" {
		return nil
	}
	st := stateFile{Version: stateVersion, Holds: slices.SortedFunc(maps.Values(holds), func(a, b holding) int {
		return naturalCompare(a.Device.Path, b.Device.Path)
	})}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode device holdings: %w", err)
	}
	dir := filepath.Dir(inv.cfg.StateFile)
	tmp, err := os.CreateTemp(dir, filepath.Base(inv.cfg.StateFile)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save device holdings: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return fmt.Errorf("save device holdings: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save device holdings: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save device holdings: %w", err)
	}
	if err := os.Rename(tmp.Name(), inv.cfg.StateFile); err != nil {
		return fmt.Errorf("save device holdings: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename itself; a filesystem that cannot sync a directory keeps it anyway
		d.Close()
	}
	return nil
}

// Rescan scans the dev root again and records what came and went (and
// logs it); it reports whether anything did. Run calls it; a caller that
// knows a device changed may too.
func (inv *Inventory) Rescan() (bool, error) {
	found, err := Scan(inv.cfg.Root, inv.cfg.Classes)
	if err != nil {
		return false, err
	}
	now := make(map[string]Device, len(found))
	for _, d := range found {
		now[d.Path] = d
	}
	inv.mu.Lock()
	var added, removed []Device
	for p, d := range now {
		if old, ok := inv.present[p]; !ok || old != d {
			added = append(added, d)
		}
	}
	for p, d := range inv.present {
		if nd, ok := now[p]; !ok || nd != d {
			removed = append(removed, d)
		}
	}
	inv.present = now
	inv.mu.Unlock()
	if len(added)+len(removed) == 0 {
		return false, nil
	}
	slices.SortFunc(added, compareDevices)
	slices.SortFunc(removed, compareDevices)
	inv.log.Info("devices changed", "added", describe(added), "removed", describe(removed))
	if inv.cfg.Changed != nil {
		inv.cfg.Changed()
	}
	return true, nil
}

// Assign gives each container of reqs the devices it asks for, and
// returns what each holds. A container keeps what it held (present or
// not); one that lacks some gets the first free ones of the class (by
// path, in natural order), all it lacks or none, in the order of
// namespace, pod name, pod UID and container. Devices held by containers
// not in reqs are released, unless their pod is in keep (its containers
// are still on the board, stopping). A change is saved before Assign
// returns; if it cannot be saved, nothing changes, and the grants are
// those of the holdings in force, with the error.
func (inv *Inventory) Assign(reqs []Request, keep map[string]bool) (map[Key]Grant, error) {
	inv.mu.Lock()
	want := make(map[Key]*Request, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		want[Key{PodUID: r.PodUID, Container: r.Container}] = r
	}
	next := inv.release(want, keep)
	inv.take(next, reqs)
	var saveErr error
	changed := !maps.Equal(next, inv.holds)
	if changed {
		if saveErr = inv.save(next); saveErr == nil {
			inv.holds = next
		} else {
			changed = false
		}
	}
	grants := inv.grants(reqs)
	inv.mu.Unlock()
	if changed && inv.cfg.Changed != nil {
		inv.cfg.Changed()
	}
	return grants, saveErr
}

// release returns the holdings with what no container wants any more let
// go: devices of containers not wanted (but for pods in keep), of classes
// a container no longer asks for, and beyond the count it asks for (those
// not on the board first, then the last by path). The caller holds mu.
func (inv *Inventory) release(want map[Key]*Request, keep map[string]bool) map[string]holding {
	next := maps.Clone(inv.holds)
	type kc struct {
		key   Key
		class string
	}
	held := map[kc][]string{}
	for p, h := range next {
		r := want[h.key()]
		switch {
		case r == nil && keep[h.PodUID]:
		case r == nil || r.Counts[h.Device.Class] <= 0:
			delete(next, p)
		default:
			k := kc{h.key(), h.Device.Class}
			held[k] = append(held[k], p)
		}
	}
	for k, paths := range held {
		n := int(want[k.key].Counts[k.class])
		if len(paths) <= n {
			continue
		}
		slices.SortFunc(paths, func(a, b string) int {
			_, pa := inv.presentAs(next[a])
			_, pb := inv.presentAs(next[b])
			if pa != pb {
				if pa {
					return -1
				}
				return 1
			}
			return naturalCompare(a, b)
		})
		for _, p := range paths[n:] {
			delete(next, p)
		}
	}
	return next
}

// take gives each request what it lacks of each class, if enough are
// free. The caller holds mu.
func (inv *Inventory) take(next map[string]holding, reqs []Request) {
	order := slices.Clone(reqs)
	slices.SortFunc(order, func(a, b Request) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.PodUID, b.PodUID), cmp.Compare(a.Container, b.Container))
	})
	present := slices.SortedFunc(maps.Values(inv.present), compareDevices)
	for _, r := range order {
		for _, class := range sortedKeys(r.Counts) {
			need := int(r.Counts[class])
			for _, h := range next {
				if h.key() == (Key{r.PodUID, r.Container}) && h.Device.Class == class {
					need--
				}
			}
			if need <= 0 {
				continue
			}
			var free []Device
			for _, d := range present {
				if _, held := next[d.Path]; !held && d.Class == class {
					free = append(free, d)
				}
			}
			if len(free) < need {
				continue // all or nothing: the container waits (grants says why)
			}
			for _, d := range free[:need] {
				next[d.Path] = holding{Device: d, PodUID: r.PodUID, Namespace: r.Namespace, Pod: r.Pod, Container: r.Container}
			}
		}
	}
}

// grants says what each request holds and whether it can run. The caller
// holds mu.
func (inv *Inventory) grants(reqs []Request) map[Key]Grant {
	byKey := map[Key][]holding{}
	for _, h := range inv.holds {
		byKey[h.key()] = append(byKey[h.key()], h)
	}
	out := make(map[Key]Grant, len(reqs))
	for _, r := range reqs {
		k := Key{PodUID: r.PodUID, Container: r.Container}
		hs := byKey[k]
		slices.SortFunc(hs, func(a, b holding) int { return compareDevices(a.Device, b.Device) })
		var g Grant
		var why []string
		for _, h := range hs {
			d, ok := inv.presentAs(h)
			if !ok {
				why = append(why, fmt.Sprintf("device %s (%s) is not on the node", h.Device.Path, api.DeviceResource(h.Device.Class)))
			}
			g.Devices = append(g.Devices, d)
		}
		for _, class := range sortedKeys(r.Counts) {
			have := 0
			for _, h := range hs {
				if h.Device.Class == class {
					have++
				}
			}
			if lack := int(r.Counts[class]) - have; lack > 0 {
				why = append(why, fmt.Sprintf("%d %s asked for, %d free on the node", r.Counts[class], api.DeviceResource(class), inv.free(class)))
			}
		}
		g.Waiting = strings.Join(why, "; ")
		out[k] = g
	}
	return out
}

// presentAs returns held's device as it is now, and whether it is on the
// board (of the same class); if not, as last seen.
func (inv *Inventory) presentAs(h holding) (Device, bool) {
	if d, ok := inv.present[h.Device.Path]; ok && d.Class == h.Device.Class {
		return d, true
	}
	return h.Device, false
}

// free counts the devices of class on the board that nobody holds. The
// caller holds mu.
func (inv *Inventory) free(class string) int {
	n := 0
	for p, d := range inv.present {
		if _, held := inv.holds[p]; !held && d.Class == class {
			n++
		}
	}
	return n
}

// Capacity is the number of devices of each class on the board, every
// configured class included (0: the agent looks for them and has none),
// as the node's capacity lists them.
func (inv *Inventory) Capacity() api.ResourceList {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	count := map[string]int{}
	for _, d := range inv.present {
		count[d.Class]++
	}
	out := api.ResourceList{}
	for _, c := range inv.cfg.Classes {
		out[api.DeviceResource(c.Name)] = api.Quantity(fmt.Sprint(count[c.Name]))
	}
	return out
}

// Devices lists the board's devices with their holders, as the node's
// status shows them: every device present, then every one held and not
// present (Absent), by class and path.
func (inv *Inventory) Devices() []api.NodeDevice {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var out []api.NodeDevice
	add := func(d Device, h holding, held, absent bool) {
		nd := api.NodeDevice{Class: d.Class, Path: d.Path, Type: d.Type, Major: d.Major, Minor: d.Minor, Absent: absent}
		if held {
			nd.Pod, nd.Container = h.Namespace+"/"+h.Pod, h.Container
		}
		out = append(out, nd)
	}
	for _, d := range slices.SortedFunc(maps.Values(inv.present), compareDevices) {
		h, held := inv.holds[d.Path]
		add(d, h, held && h.Device.Class == d.Class, false)
	}
	for _, h := range slices.SortedFunc(maps.Values(inv.holds), func(a, b holding) int { return compareDevices(a.Device, b.Device) }) {
		if _, ok := inv.presentAs(h); !ok {
			add(h.Device, h, true, true)
		}
	}
	return out
}

// HostPath is where a device is on the board.
func (inv *Inventory) HostPath(d Device) string { return hostPath(inv.cfg.Root, d.Path) }

// describe lists devices for a log line: "serial:ttyUSB0 video:video0".
func describe(ds []Device) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Class + ":" + d.Path
	}
	return strings.Join(parts, " ")
}
