package reconcile

// Secrets and ConfigMaps on the board: the environment of a container
// that uses them (env valueFrom, envFrom) and the files of a secret or
// configMap volume, both resolved from the node's snapshot as kubelet
// resolves them from the API. Not yet called by the reconciler; see the
// security work's wiring plan.

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// ConfigSource finds the Secrets and ConfigMaps of the node's pods;
// *wire.Snapshot satisfies it.
type ConfigSource interface {
	Secret(namespace, name string) (map[string][]byte, bool)
	ConfigMap(namespace, name string) (map[string][]byte, bool)
}

// ErrConfigMissing: a container needs a Secret, a ConfigMap or a key of
// one that the node does not have, and the reference is not optional.
// Kubernetes reports it as CreateContainerConfigError.
var ErrConfigMissing = errors.New("referenced secret or configmap is missing")

// ContainerEnv resolves a container's environment as kubelet does: every
// envFrom source in order (each key, with the prefix, as a variable; keys
// that are not valid variable names are skipped and returned), then env
// in order, a later variable replacing an earlier one of the same name.
// $(VAR) references are not expanded.
func ContainerEnv(namespace string, c *api.Container, src ConfigSource) (env, skipped []string, err error) {
	index := map[string]int{}
	set := func(name, value string) {
		if i, ok := index[name]; ok {
			env[i] = name + "=" + value
			return
		}
		index[name] = len(env)
		env = append(env, name+"="+value)
	}
	for i, ef := range c.EnvFrom {
		var data map[string][]byte
		var ok, optional bool
		var what string
		switch {
		case ef.SecretRef != nil:
			data, ok = src.Secret(namespace, ef.SecretRef.Name)
			optional, what = isTrue(ef.SecretRef.Optional), "secret "+ef.SecretRef.Name
		case ef.ConfigMapRef != nil:
			data, ok = src.ConfigMap(namespace, ef.ConfigMapRef.Name)
			optional, what = isTrue(ef.ConfigMapRef.Optional), "configmap "+ef.ConfigMapRef.Name
		default:
			return nil, nil, fmt.Errorf("envFrom[%d]: no source", i)
		}
		if !ok {
			if optional {
				continue
			}
			return nil, nil, fmt.Errorf("container %s: envFrom %s: %w", c.Name, what, ErrConfigMissing)
		}
		for _, k := range sortedKeys(data) {
			name := ef.Prefix + k
			if api.ValidateEnvVarName(name) != nil {
				skipped = append(skipped, name)
				continue
			}
			set(name, string(data[k]))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, e.Value)
			continue
		}
		var data map[string][]byte
		var ok, optional bool
		var key, what string
		switch vf := e.ValueFrom; {
		case vf.SecretKeyRef != nil:
			data, ok = src.Secret(namespace, vf.SecretKeyRef.Name)
			key, optional, what = vf.SecretKeyRef.Key, isTrue(vf.SecretKeyRef.Optional), "secret "+vf.SecretKeyRef.Name
		case vf.ConfigMapKeyRef != nil:
			data, ok = src.ConfigMap(namespace, vf.ConfigMapKeyRef.Name)
			key, optional, what = vf.ConfigMapKeyRef.Key, isTrue(vf.ConfigMapKeyRef.Optional), "configmap "+vf.ConfigMapKeyRef.Name
		default:
			return nil, nil, fmt.Errorf("container %s: env %s: valueFrom has no source", c.Name, e.Name)
		}
		v, has := data[key]
		if !ok || !has {
			if optional {
				continue
			}
			return nil, nil, fmt.Errorf("container %s: env %s: %s key %q: %w", c.Name, e.Name, what, key, ErrConfigMissing)
		}
		set(e.Name, string(v))
	}
	return env, skipped, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The layout WriteConfigVolume makes, kubelet's: the files live in a
// timestamped directory, "..data" is a symbolic link to it, and each
// top-level name is a link through "..data". An update writes a new
// directory and swaps "..data" with one rename, so a container never sees
// half of an update.
const (
	dataLink = "..data"
	tmpLink  = "..data_tmp"
)

// WriteConfigVolume writes the files of a secret or configMap volume into
// dir: every key of data, or only the keys items lists at the paths it
// gives, with the item's mode or defaultMode. A missing key an item asks
// for is an error wrapping ErrConfigMissing. For a Secret, dir should be
// on a tmpfs, so that the values never reach the board's disk.
func WriteConfigVolume(dir string, data map[string][]byte, items []api.KeyToPath, defaultMode int32) error {
	type file struct {
		path string
		data []byte
		mode os.FileMode
	}
	var files []file
	if len(items) == 0 {
		for _, k := range sortedKeys(data) {
			files = append(files, file{k, data[k], os.FileMode(defaultMode)})
		}
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("volume item %q: %w", it.Key, ErrConfigMissing)
		}
		mode := defaultMode
		if it.Mode != nil {
			mode = *it.Mode
		}
		files = append(files, file{it.Path, v, os.FileMode(mode)})
	}
	tops := map[string]bool{}
	for _, f := range files {
		clean := path.Clean(f.path)
		// ".." also covers "../x" and the names the layout reserves.
		if f.path == "" || clean == "." || path.IsAbs(clean) || strings.HasPrefix(clean, "..") {
			return fmt.Errorf("volume file path %q leaves the volume or is reserved", f.path)
		}
		tops[strings.SplitN(clean, "/", 2)[0]] = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stamp := fmt.Sprintf("..%s", time.Now().UTC().Format("2006_01_02_15_04_05.000000000"))
	payload := filepath.Join(dir, stamp)
	if err := os.Mkdir(payload, 0o755); err != nil {
		return fmt.Errorf("volume payload: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(payload, filepath.FromSlash(path.Clean(f.path)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode.Perm()); err != nil {
			return fmt.Errorf("volume file %s: %w", f.path, err)
		}
		if err := os.Chmod(p, f.mode.Perm()); err != nil { // past the umask
			return err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, dataLink))
	tmp := filepath.Join(dir, tmpLink)
	_ = os.Remove(tmp)
	if err := os.Symlink(stamp, tmp); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	// Top-level links through ..data; stale ones from the last payload go.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") {
			continue
		}
		if !tops[name] {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	for top := range tops {
		link := filepath.Join(dir, top)
		if target, err := os.Readlink(link); err == nil && target == filepath.Join(dataLink, top) {
			continue
		}
		_ = os.Remove(link)
		if err := os.Symlink(filepath.Join(dataLink, top), link); err != nil {
			return fmt.Errorf("volume: %w", err)
		}
	}
	if old != "" && old != stamp {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			return fmt.Errorf("volume: remove the previous payload: %w", err)
		}
	}
	return nil
}
