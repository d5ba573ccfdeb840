// Package api holds Flotilla's resource types: Kubernetes-shaped objects
// (apiVersion, kind, metadata, spec, status) that use Kubernetes' field names
// for the subset Flotilla supports, so real manifests in that subset decode
// unchanged. It also holds the small value types they share: quantities,
// label selectors and times.
package api

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// TypeMeta names an object's schema, as in every Kubernetes manifest.
type TypeMeta struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
}

// ObjectMeta is the metadata every stored object carries. Users set name,
// namespace, labels and annotations; the hub sets the rest.
type ObjectMeta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp Time              `json:"creationTimestamp,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	OwnerReferences   []OwnerReference  `json:"ownerReferences,omitempty"`
}

// OwnerReference points from a dependent object (a Pod) to the controller
// object that made it (a DaemonSet).
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Controller *bool  `json:"controller,omitempty"`
}

// Object is implemented by every top-level resource type.
type Object interface {
	GetTypeMeta() *TypeMeta
	GetObjectMeta() *ObjectMeta
}

// GetTypeMeta returns the object's type metadata.
func (t *TypeMeta) GetTypeMeta() *TypeMeta { return t }

// GetObjectMeta returns the object's metadata.
func (m *ObjectMeta) GetObjectMeta() *ObjectMeta { return m }

// Time is a timestamp that encodes as RFC 3339 and as null when zero, as
// Kubernetes' metav1.Time does, so `creationTimestamp: null` in exported
// manifests decodes.
type Time struct {
	time.Time
}

// Now returns the current time truncated to whole seconds, the resolution
// Kubernetes stores.
func Now() Time { return Time{time.Now().UTC().Truncate(time.Second)} }

// NewTime wraps t.
func NewTime(t time.Time) Time { return Time{t} }

// MarshalJSON encodes t as an RFC 3339 string, or null when zero.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339Nano))
}

// UnmarshalJSON accepts null or an RFC 3339 string.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = parsed
	return nil
}

// IsControlledBy reports whether meta names owner as its controller.
func (m *ObjectMeta) IsControlledBy(uid string) bool {
	for _, ref := range m.OwnerReferences {
		if ref.UID == uid && ref.Controller != nil && *ref.Controller {
			return true
		}
	}
	return false
}

// ControllerRef returns the owner reference marked as controller, if any.
func (m *ObjectMeta) ControllerRef() *OwnerReference {
	for i := range m.OwnerReferences {
		if c := m.OwnerReferences[i].Controller; c != nil && *c {
			return &m.OwnerReferences[i]
		}
	}
	return nil
}

// NewUID returns a random RFC 4122 version 4 UUID for metadata.uid.
func NewUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("api: crypto/rand failed: " + err.Error()) // the kernel's RNG does not fail
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
