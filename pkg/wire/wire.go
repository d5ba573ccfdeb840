// Package wire is the protocol between the hub and its edge agents: the MQTT
// topic names under flotilla/v1/, the versioned envelope every payload
// travels in, and the messages themselves. Decoding is strict and bounded,
// and every error names the topic and node it came from.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Version is the envelope version this code writes and accepts.
const Version = 1

// TopicRoot prefixes every Flotilla topic.
const TopicRoot = "flotilla/v1"

// Topic kinds: the last element of a per-node topic.
const (
	TopicDesired = "desired" // hub → agent, QoS 1, retained: the full desired snapshot
	TopicStatus  = "status"  // agent → hub, QoS 1: hello, heartbeats, pod status
	TopicMetrics = "metrics" // agent → hub, QoS 1: metric samples
	TopicEvents  = "events"  // agent → hub, QoS 1: events
	TopicOnline  = "online"  // agent → hub, QoS 1, retained: online flag; the last will clears it
)

// MaxPayload bounds any single message. A snapshot of a few hundred pods fits
// comfortably; anything larger is refused before it is parsed.
const MaxPayload = 4 << 20

// NodeTopic returns flotilla/v1/nodes/{node}/{kind}.
func NodeTopic(node, kind string) string {
	return TopicRoot + "/nodes/" + node + "/" + kind
}

// AllNodesTopic returns the filter that matches kind for every node.
func AllNodesTopic(kind string) string {
	return TopicRoot + "/nodes/+/" + kind
}

// SharedTopic wraps a filter in an MQTT shared subscription for group, so
// that several hub ingest workers can split the load.
func SharedTopic(group, filter string) string {
	return "$share/" + group + "/" + filter
}

// ParseNodeTopic splits a per-node topic into its node name and kind.
func ParseNodeTopic(topic string) (node, kind string, err error) {
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/nodes/")
	if !ok {
		return "", "", fmt.Errorf("topic %q is not under %s/nodes/", topic, TopicRoot)
	}
	node, kind, ok = strings.Cut(rest, "/")
	if !ok || node == "" || kind == "" || strings.Contains(kind, "/") {
		return "", "", fmt.Errorf("topic %q is not %s/nodes/{node}/{kind}", topic, TopicRoot)
	}
	return node, kind, nil
}

// Message types carried in Envelope.Type.
const (
	TypeSnapshot  = "Snapshot"
	TypeHello     = "Hello"
	TypeHeartbeat = "Heartbeat"
	TypePodStatus = "PodStatus"
	TypeOnline    = "Online"
	TypeEvent     = "Event"
)

// Envelope wraps every payload. Seq increases with every message a sender
// publishes, so a receiver can keep the newest and drop what is older.
type Envelope struct {
	V       int             `json:"v"`
	Type    string          `json:"type"`
	Node    string          `json:"node"`
	Seq     uint64          `json:"seq"`
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
	// Sig is the hub's signature of a Snapshot (see sign.go); other types
	// carry none.
	Sig *Signature `json:"sig,omitempty"`
}

// Encode wraps payload in an envelope.
func Encode(typ, node string, seq uint64, at time.Time, payload any) ([]byte, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload for node %s: %w", typ, node, err)
	}
	return json.Marshal(Envelope{V: Version, Type: typ, Node: node, Seq: seq, Time: at.UTC(), Payload: raw})
}

// Error is a message that could not be decoded, with where it came from.
type Error struct {
	Topic string
	Node  string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("topic %s (node %s): %v", e.Topic, e.Node, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrTooLarge marks a payload over MaxPayload.
var ErrTooLarge = errors.New("payload too large")

// ErrNodeMismatch marks an envelope that names another node than the
// topic it arrived on.
var ErrNodeMismatch = errors.New("wrong node")

// Decode parses an envelope received on topic. It checks the size, the
// version, that the node in the envelope is the node the topic names, and
// that the type is allowed on that topic kind.
func Decode(topic string, b []byte) (Envelope, error) {
	node, _, err := ParseNodeTopic(topic)
	if err != nil {
		return Envelope{}, &Error{Topic: topic, Node: "?", Err: err}
	}
	fail := func(format string, args ...any) (Envelope, error) {
		return Envelope{}, &Error{Topic: topic, Node: node, Err: fmt.Errorf(format, args...)}
	}
	if len(b) > MaxPayload {
		return Envelope{}, &Error{Topic: topic, Node: node, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxPayload)}
	}
	var env Envelope
	if err := decodeStrict(b, &env); err != nil {
		return fail("envelope: %v", err)
	}
	if err := check(topic, env, len(env.Payload) > 0 && string(env.Payload) != "null"); err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// check checks a decoded envelope against the topic it arrived on: its
// version, that it names the topic's node, that its type is allowed on
// the topic's kind, and that it had a payload.
func check(topic string, env Envelope, hasPayload bool) error {
	node, kind, err := ParseNodeTopic(topic)
	if err != nil {
		return &Error{Topic: topic, Node: "?", Err: err}
	}
	fail := func(format string, args ...any) error {
		return &Error{Topic: topic, Node: node, Err: fmt.Errorf(format, args...)}
	}
	if env.V != Version {
		return fail("envelope version %d, want %d", env.V, Version)
	}
	if env.Node != node {
		return fail("%w: envelope names node %q but arrived on node %q's topic", ErrNodeMismatch, env.Node, node)
	}
	if !allowed(kind, env.Type) {
		return fail("message type %q is not allowed on %s topics", env.Type, kind)
	}
	if !hasPayload {
		return fail("%s: payload is missing", env.Type)
	}
	return nil
}

func allowed(kind, typ string) bool {
	switch kind {
	case TopicDesired:
		return typ == TypeSnapshot
	case TopicStatus:
		return typ == TypeHello || typ == TypeHeartbeat || typ == TypePodStatus
	case TopicOnline:
		return typ == TypeOnline
	case TopicEvents:
		return typ == TypeEvent
	case TopicMetrics:
		return typ == TypeMetrics
	case TopicRequests:
		return typ == TypeLogRequest || typ == TypeHelloRequest
	case TopicReplies:
		return typ == TypeLogReply
	}
	return false
}

// DecodePayload decodes an envelope's payload into v.
func DecodePayload(env Envelope, topic string, v any) error {
	if err := decodeStrict(env.Payload, v); err != nil {
		return &Error{Topic: topic, Node: env.Node, Err: fmt.Errorf("%s payload: %v", env.Type, err)}
	}
	return nil
}

// decodeStrict decodes exactly one JSON value. Unknown fields are allowed,
// so that a v1 message can gain optional fields without breaking older
// peers; wrong types, trailing data and missing payloads are errors.
// json.Unmarshal refuses anything after the value itself, and reads its
// input in place, where a json.Decoder would copy it into a buffer first.
func decodeStrict(b []byte, v any) error {
	return json.Unmarshal(b, v)
}

// DecodeMessage decodes an envelope received on topic and its payload,
// with the checks of Decode. payloadFor returns the value a type's payload
// decodes into (a pointer), or nil to leave it undecoded. The payload is
// decoded in the same pass as the envelope where the message is laid out
// as Encode writes it; otherwise, and to name what is wrong with a bad
// message, it falls back to Decode and DecodePayload. The returned
// envelope's Payload is nil when the fast path decoded it.
func DecodeMessage(topic string, b []byte, payloadFor func(typ string) any) (Envelope, error) {
	if typ, ok := peekType(b); ok && len(b) <= MaxPayload {
		// One "payload" key, and the decoded type the peeked one: anything
		// else (duplicate keys, a payload field named in the payload's own
		// text) takes the two-pass path, whose result is the reference.
		if target := payloadFor(typ); target != nil && bytes.Count(b, []byte(`"payload"`)) == 1 {
			// The payload decodes into a new *T behind a **T, which stays
			// nil when the key is missing or null.
			holder := reflect.New(reflect.TypeOf(target))
			env := envelopeInto{Payload: holder.Interface()}
			if err := json.Unmarshal(b, &env); err == nil && env.Type == typ {
				e := Envelope{V: env.V, Type: env.Type, Node: env.Node, Seq: env.Seq, Time: env.Time, Sig: env.Sig}
				present := !holder.Elem().IsNil()
				if err := check(topic, e, present); err != nil {
					return Envelope{}, err
				}
				reflect.ValueOf(target).Elem().Set(holder.Elem().Elem())
				return e, nil
			}
		}
	}
	env, err := Decode(topic, b)
	if err != nil {
		return Envelope{}, err
	}
	if target := payloadFor(env.Type); target != nil {
		if err := DecodePayload(env, topic, target); err != nil {
			return Envelope{}, err
		}
	}
	return env, nil
}

// envelopeInto is an Envelope whose payload decodes straight into what
// Payload points to.
type envelopeInto struct {
	V       int        `json:"v"`
	Type    string     `json:"type"`
	Node    string     `json:"node"`
	Seq     uint64     `json:"seq"`
	Time    time.Time  `json:"time"`
	Payload any        `json:"payload"`
	Sig     *Signature `json:"sig,omitempty"`
}

// peekType finds the envelope's type where Encode writes it, near the
// start: `"type":"…"`.
func peekType(b []byte) (string, bool) {
	const key = `"type":"`
	head := b[:min(len(b), 64)]
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest[:min(len(rest), 32)], '"')
	if j <= 0 {
		return "", false
	}
	return string(rest[:j]), true
}
