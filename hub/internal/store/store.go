// Package store keeps the hub's objects: every API object and the hub's own
// bookkeeping records, each with a resource version drawn from one
// monotonically increasing counter. Writes are atomic transactions; readers
// and controllers see committed state only, and can watch for changes to
// wake early. There are two implementations with one contract: Badger on
// disk (the hub) and memory (unit tests).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Key addresses one object. Namespace is empty for cluster-scoped kinds.
type Key struct {
	Kind      string
	Namespace string
	Name      string
}

func (k Key) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// KeyOf returns the key of obj, from its kind, namespace and name.
func KeyOf(obj api.Object) Key {
	m := obj.GetObjectMeta()
	return Key{Kind: obj.GetTypeMeta().Kind, Namespace: m.Namespace, Name: m.Name}
}

// Record is one stored object: its key, its resource version and its JSON.
// Value may be shared with the store and with other readers: it must not
// be modified.
type Record struct {
	Key     Key
	Version uint64
	Value   []byte
	// entry, if set, is the in-memory record this one was read from,
	// which keeps its decoded object (see index).
	entry *entry
}

// Errors.
var (
	ErrNotFound = errors.New("not found")
	// ErrReadOnly is returned by writes inside View.
	ErrReadOnly = errors.New("write in a read-only transaction")
	ErrClosed   = errors.New("store is closed")
)

// Reader reads committed objects.
type Reader interface {
	// Get returns the object at key, or an error wrapping ErrNotFound.
	Get(key Key) (Record, error)
	// List returns the objects of kind in namespace (all namespaces when
	// namespace is ""), sorted by namespace, then name.
	List(kind, namespace string) ([]Record, error)
}

// Tx is a transaction: reads see the transaction's own writes.
type Tx interface {
	Reader
	// Put stores obj under KeyOf(obj). It sets obj's resourceVersion to the
	// next version before encoding it.
	Put(obj api.Object) error
	// PutTTL is Put for records that expire on their own (events,
	// telemetry): after ttl they are gone from Get, List and disk.
	PutTTL(obj api.Object, ttl time.Duration) error
	// Delete removes key; the deletion takes the next version, like a Put.
	// Deleting a missing key wraps ErrNotFound.
	Delete(key Key) error
}

// Store is the hub's object store.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction and commits it atomically
	// when fn returns nil; nothing is written when it returns an error.
	// Writers are serialized. The commit is durable before Update returns.
	Update(fn func(Tx) error) error
	// Watch delivers an Event for every committed change to one of kinds
	// (all kinds when none are given) until ctx ends. A watcher that falls
	// behind loses events and then receives one Event with Type Overflow;
	// it should then re-read everything it cares about.
	Watch(ctx context.Context, kinds ...string) <-chan Event
	// Version returns the latest committed resource version. A View
	// begun after Version returned v sees every commit up to v (and maybe
	// later ones): a list read that way, with v as its version, misses
	// nothing that a watch from v will not deliver.
	Version() uint64
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// EventType says what happened to a key.
type EventType int

// Event types.
const (
	Put EventType = iota + 1
	Deleted
	Overflow
)

func (t EventType) String() string {
	switch t {
	case Put:
		return "Put"
	case Deleted:
		return "Deleted"
	case Overflow:
		return "Overflow"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is one committed change. Within one transaction only the last
// change to a key is announced.
type Event struct {
	Type    EventType
	Key     Key
	Version uint64
	// Value is the object's JSON as this change committed it (nil for
	// Deleted), so that a watcher can serve the change as it was without
	// reading the store again, when the key may have changed since.
	Value []byte
	// Old is the object's JSON before the transaction: always set for
	// Deleted (what was deleted); for Put, set when the store had it
	// without a read (the kinds it keeps in memory) and the object
	// existed, nil otherwise. Value and Old are shared: never modify them.
	Old []byte
}

// Decode unmarshals a record into a new object of type T, which the
// caller owns: a record the store holds in memory decodes to a deep copy
// of the object its JSON decoded to before.
func Decode[T any, PT interface {
	*T
	api.Object
}](r Record) (PT, error) {
	if r.entry != nil {
		shared, err := sharedObject[T, PT](r.entry)
		if err != nil {
			return nil, err
		}
		return clone(shared), nil
	}
	obj := PT(new(T))
	if err := json.Unmarshal(r.Value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", r.Key, err)
	}
	return obj, nil
}

// DecodeInto decodes r into obj, a new zero object of r's kind, as Decode
// does for a type known only at run time (the HTTP API's).
func DecodeInto(r Record, obj api.Object) error {
	if r.entry != nil {
		return r.entry.decodeInto(obj)
	}
	if err := json.Unmarshal(r.Value, obj); err != nil {
		return fmt.Errorf("decode %s: %w", r.Key, err)
	}
	return nil
}

// DecodeShared is DecodeInto for a caller that only reads what it gets:
// for a record the store keeps decoded as obj's type, it returns that
// shared object, which must not be modified; otherwise it decodes into
// obj and returns it.
func DecodeShared(r Record, obj api.Object) (api.Object, error) {
	if r.entry != nil {
		if d := r.entry.obj.Load(); d != nil {
			if shared, ok := d.v.(api.Object); ok && reflect.TypeOf(shared) == reflect.TypeOf(obj) {
				return shared, nil
			}
		}
	}
	if err := DecodeInto(r, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// Kinded is a record kept in the store that is not an API object (a
// lease, a snapshot, a token): it names its kind itself.
type Kinded interface{ StoreKind() string }

// KindOf is the store kind of the object type T: its own, if it is
// Kinded, else the API kind of its type. A type that is neither is a
// programming error, and panics at the first read.
func KindOf[T any, PT interface {
	*T
	api.Object
}]() string {
	var zero T
	if k, ok := any(PT(&zero)).(Kinded); ok {
		return k.StoreKind()
	}
	if k, ok := api.KindOfType(reflect.TypeFor[T]()); ok {
		return k
	}
	panic(fmt.Sprintf("store: %T has no kind: make it Kinded or an API kind", &zero))
}

// Get reads and decodes one object; its type says its kind.
func Get[T any, PT interface {
	*T
	api.Object
}](r Reader, namespace, name string) (PT, error) {
	rec, err := r.Get(Key{Kind: KindOf[T, PT](), Namespace: namespace, Name: name})
	if err != nil {
		return nil, err
	}
	return Decode[T, PT](rec)
}

// List reads and decodes every object of its type in namespace ("" for
// all).
func List[T any, PT interface {
	*T
	api.Object
}](r Reader, namespace string) ([]PT, error) {
	recs, err := r.List(KindOf[T, PT](), namespace)
	if err != nil {
		return nil, err
	}
	out := make([]PT, 0, len(recs))
	for _, rec := range recs {
		obj, err := Decode[T, PT](rec)
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// ListShared is List for a caller that only reads what it gets: objects
// the store holds in memory are returned as the store keeps them, not
// copied, so they must not be modified (nor kept past the pass that read
// them). It is what lets a controller read a fleet of 10,000 nodes in a
// few milliseconds.
func ListShared[T any, PT interface {
	*T
	api.Object
}](r Reader, namespace string) ([]PT, error) {
	recs, err := r.List(KindOf[T, PT](), namespace)
	if err != nil {
		return nil, err
	}
	out := make([]PT, 0, len(recs))
	for _, rec := range recs {
		var obj PT
		if rec.entry != nil {
			obj, err = sharedObject[T, PT](rec.entry)
		} else {
			obj, err = Decode[T, PT](rec)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// GetShared is Get for a caller that only reads what it gets (see
// ListShared).
func GetShared[T any, PT interface {
	*T
	api.Object
}](r Reader, namespace, name string) (PT, error) {
	rec, err := r.Get(Key{Kind: KindOf[T, PT](), Namespace: namespace, Name: name})
	if err != nil {
		return nil, err
	}
	if rec.entry != nil {
		return sharedObject[T, PT](rec.entry)
	}
	return Decode[T, PT](rec)
}

// IsNotFound reports whether err wraps ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
