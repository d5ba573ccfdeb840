package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// record is what the package keeps of one attached pod, in
// pods/{uid}.json: written (synced, then renamed into place) once its
// namespace is attached, before the pod's address is handed out, so that
// a restarted agent knows it, and deleted only after the pod's address is
// released.
type record struct {
	UID       string        `json:"uid"`
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	IP        netip.Addr    `json:"ip"`
	PodCIDR   netip.Prefix  `json:"podCIDR"`
	Ports     []PortMapping `json:"ports,omitempty"`
}

// PortMapping is a container's hostPort, as portmap takes it.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp or udp
	HostIP        string `json:"hostIP,omitempty"`
}

// validUID says whether uid can name files: the package's file names
// are pod UIDs, which come from the hub.
func validUID(uid string) error {
	if uid == "" || len(uid) > 128 || strings.ContainsAny(uid, "/\\\x00") || uid == "." || uid == ".." ||
		strings.ContainsFunc(uid, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return fmt.Errorf("pod uid %q cannot name a network namespace", uid)
	}
	return nil
}

func writeRecord(dir string, rec record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode network record of pod %s: %w", rec.UID, err)
	}
	path := filepath.Join(dir, rec.UID+".json")
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write network record of pod %s: %w", rec.UID, err)
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write network record of pod %s: %w", rec.UID, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write network record of pod %s: %w", rec.UID, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func removeRecord(dir, uid string) error {
	if err := os.Remove(filepath.Join(dir, uid+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network record of pod %s: %w", uid, err)
	}
	return nil
}

// readRecords reads every record in dir. A record that does not decode is
// left out and named in the error; its pod is then found by its other
// traces (namespace, allocation) and cleaned up as a stale one.
func readRecords(dir string) (map[string]record, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read network records: %w", err)
	}
	out := map[string]record{}
	var errs []error
	for _, e := range entries {
		uid, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			if strings.HasSuffix(e.Name(), ".tmp") {
				os.Remove(filepath.Join(dir, e.Name())) // a write cut short
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("network record %s: %w", e.Name(), err))
			continue
		}
		var rec record
		if err := json.Unmarshal(b, &rec); err != nil || rec.UID != uid || !rec.IP.IsValid() {
			errs = append(errs, fmt.Errorf("network record %s: not a record of pod %s", e.Name(), uid))
			continue
		}
		out[uid] = rec
	}
	return out, errors.Join(errs...)
}

// allocatedIDs returns the container IDs (pod UIDs) that hold an address
// in host-local's directory for the network: a file per address, whose
// first line is the ID.
func allocatedIDs(ipamDir string) (map[string][]netip.Addr, error) {
	dir := filepath.Join(ipamDir, NetworkName)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host-local's allocations: %w", err)
	}
	out := map[string][]netip.Addr{}
	for _, e := range entries {
		ip, err := netip.ParseAddr(e.Name())
		if err != nil {
			continue // last_reserved_ip.0, lock
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		id, _, _ := strings.Cut(strings.ReplaceAll(string(b), "\r", ""), "\n")
		if id = strings.TrimSpace(id); id != "" {
			out[id] = append(out[id], ip)
		}
	}
	for _, ips := range out {
		slices.SortFunc(ips, netip.Addr.Compare)
	}
	return out, nil
}
