package store

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// errInvalidKey is wrapped by every error about a malformed key.
var errInvalidKey = errors.New("invalid key")

// validate refuses keys that could not be stored unambiguously: Kind and
// Name are required and no part may contain '/', so that a prefix scan of
// one kind or namespace can never match another.
func (k Key) validate() error {
	if k.Kind == "" || k.Name == "" {
		return fmt.Errorf("%w %q: kind and name are required", errInvalidKey, k)
	}
	if strings.Contains(k.Kind, "/") || strings.Contains(k.Namespace, "/") || strings.Contains(k.Name, "/") {
		return fmt.Errorf("%w %q: kind, namespace and name must not contain '/'", errInvalidKey, k)
	}
	return nil
}

// validateScope checks the arguments of List.
func validateScope(kind, namespace string) error {
	if kind == "" {
		return fmt.Errorf("%w: list needs a kind", errInvalidKey)
	}
	if strings.Contains(kind, "/") || strings.Contains(namespace, "/") {
		return fmt.Errorf("%w: list %s in %q: kind and namespace must not contain '/'", errInvalidKey, kind, namespace)
	}
	return nil
}

// compareRecords orders records by namespace, then name: the order of List.
func compareRecords(a, b Record) int { return compareKeys(a.Key, b.Key) }

// compareKeys orders the keys of one kind by namespace, then name.
func compareKeys(a, b Key) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// writeLog is the bookkeeping both implementations share for one
// read-write transaction: the next version, the changes to announce after
// commit, the caller's objects to restore on rollback, and the first
// failed write, which makes the whole transaction fail.
type writeLog struct {
	version  uint64 // last version handed out; starts at the committed one
	changes  []Event
	restores []restore
	err      error
}

// restore remembers an object's resourceVersion before Put changed it.
type restore struct {
	meta *api.ObjectMeta
	rv   string
}

// encode validates obj's key, gives obj the next version and marshals it.
// It changes nothing in the log when it fails.
func (l *writeLog) encode(obj api.Object) (Key, uint64, []byte, error) {
	key := KeyOf(obj)
	if err := key.validate(); err != nil {
		return key, 0, nil, fmt.Errorf("put: %w", err)
	}
	meta := obj.GetObjectMeta()
	old := meta.ResourceVersion
	version := l.version + 1
	meta.ResourceVersion = strconv.FormatUint(version, 10)
	data, err := json.Marshal(obj)
	if err != nil {
		meta.ResourceVersion = old
		return key, 0, nil, fmt.Errorf("put %s: encode: %w", key, err)
	}
	l.version = version
	l.restores = append(l.restores, restore{meta: meta, rv: old})
	return key, version, data, nil
}

// put records a Put of key at version, which encode handed out, with
// the JSON it wrote and the one it replaced (nil when unknown or new).
func (l *writeLog) put(key Key, version uint64, value, old []byte) {
	l.changes = append(l.changes, Event{Type: Put, Key: key, Version: version, Value: value, Old: old})
}

// remove records a Delete of key, whose JSON was old, and returns its
// version: a delete takes a version too, so that event versions strictly
// increase.
func (l *writeLog) remove(key Key, old []byte) uint64 {
	l.version++
	l.changes = append(l.changes, Event{Type: Deleted, Key: key, Version: l.version, Old: old})
	return l.version
}

// fail remembers the first failed write; the transaction will not commit.
func (l *writeLog) fail(err error) error {
	if l.err == nil {
		l.err = err
	}
	return err
}

// rollback puts back the resourceVersions that Put changed.
func (l *writeLog) rollback() {
	for i := len(l.restores) - 1; i >= 0; i-- {
		l.restores[i].meta.ResourceVersion = l.restores[i].rv
	}
}

// events returns one event per changed key, the last change to each, in
// version order, with the Old of the first: what the key held before the
// transaction.
func (l *writeLog) events() []Event {
	first := make(map[Key][]byte, len(l.changes))
	for i := len(l.changes) - 1; i >= 0; i-- {
		first[l.changes[i].Key] = l.changes[i].Old
	}
	seen := make(map[Key]bool, len(l.changes))
	out := make([]Event, 0, len(l.changes))
	for i := len(l.changes) - 1; i >= 0; i-- {
		ev := l.changes[i]
		if seen[ev.Key] {
			continue
		}
		seen[ev.Key] = true
		ev.Old = first[ev.Key]
		out = append(out, ev)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// checkTTL refuses TTLs that would expire a record before it is written.
func checkTTL(key Key, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("put %s: ttl %v is not positive", key, ttl)
	}
	return nil
}
