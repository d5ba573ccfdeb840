package wire

import (
	"reflect"
	"testing"
	"time"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// payloadFor is what the hub's ingest decodes each type into.
func payloadFor(typ string) any {
	switch typ {
	case TypeHello:
		return new(Hello)
	case TypeHeartbeat:
		return new(Heartbeat)
	case TypePodStatus:
		return new(PodStatusReport)
	case TypeOnline:
		return new(Online)
	case TypeEvent:
		return new(Event)
	case TypeMetrics:
		return new(MetricsBatch)
	}
	return nil
}

// twoPass is the reference: Decode, then DecodePayload.
func twoPass(topic string, b []byte) (Envelope, any, error) {
	env, err := Decode(topic, b)
	if err != nil {
		return Envelope{}, nil, err
	}
	target := payloadFor(env.Type)
	if target != nil {
		if err := DecodePayload(env, topic, target); err != nil {
			return Envelope{}, nil, err
		}
	}
	env.Payload = nil
	return env, target, nil
}

// onePass is DecodeMessage with the payload it decoded.
func onePass(topic string, b []byte) (Envelope, any, error) {
	var target any
	env, err := DecodeMessage(topic, b, func(typ string) any { target = payloadFor(typ); return target })
	env.Payload = nil
	return env, target, err
}

func TestDecodeMessageIsDecodeThenDecodePayload(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	enc := func(typ string, payload any) []byte {
		b, err := Encode(typ, "n1", 7, at, payload)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	status, metrics := NodeTopic("n1", TopicStatus), NodeTopic("n1", TopicMetrics)
	cases := []struct {
		name, topic string
		b           []byte
	}{
		{"heartbeat", status, enc(TypeHeartbeat, Heartbeat{ObservedRevision: 3, StatusSeq: 5, Outbox: OutboxState{Queued: 2}})},
		{"hello", status, enc(TypeHello, Hello{Labels: map[string]string{"a": "b"}, Capacity: api.ResourceList{"cpu": "2"}})},
		{"metrics with a heartbeat", metrics, enc(TypeMetrics, MetricsBatch{Samples: []MetricSample{{Time: at, WindowSeconds: 10}}, Heartbeat: &Heartbeat{ObservedRevision: 1}})},
		{"pod status", status, enc(TypePodStatus, PodStatusReport{ObservedRevision: 2, Pods: []PodReport{{UID: "u", Name: "p", Namespace: "d"}}})},
		{"wrong node", status, func() []byte { b, _ := Encode(TypeHeartbeat, "n2", 1, at, Heartbeat{}); return b }()},
		{"type not allowed", metrics, enc(TypeHeartbeat, Heartbeat{})},
		{"payload of the wrong shape", status, []byte(`{"v":1,"type":"Heartbeat","node":"n1","seq":1,"payload":{"observedRevision":"x"}}`)},
		{"payload missing", status, []byte(`{"v":1,"type":"Heartbeat","node":"n1","seq":1}`)},
		{"payload null", status, []byte(`{"v":1,"type":"Heartbeat","node":"n1","seq":1,"payload":null}`)},
		{"two payloads", status, []byte(`{"v":1,"type":"Heartbeat","node":"n1","seq":1,"payload":{"observedRevision":1},"payload":{"statusSeq":2}}`)},
		{"two types", status, []byte(`{"v":1,"type":"Heartbeat","node":"n1","type":"Hello","seq":1,"payload":{}}`)},
		{"other field order", status, []byte(`{"payload":{"observedRevision":4},"seq":1,"node":"n1","type":"Heartbeat","v":1}`)},
		{"version 2", status, []byte(`{"v":2,"type":"Heartbeat","node":"n1","seq":1,"payload":{}}`)},
		{"trailing data", status, []byte(`{"v":1,"type":"Heartbeat","node":"n1","seq":1,"payload":{}} x`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { compareDecoders(t, c.topic, c.b) })
	}
}

func compareDecoders(t *testing.T, topic string, b []byte) {
	t.Helper()
	wantEnv, wantPayload, wantErr := twoPass(topic, b)
	gotEnv, gotPayload, gotErr := onePass(topic, b)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: two passes: %v; one pass: %v", b, wantErr, gotErr)
	}
	if wantErr != nil {
		if wantErr.Error() != gotErr.Error() {
			t.Fatalf("%q: errors differ:\n two passes: %v\n one pass:   %v", b, wantErr, gotErr)
		}
		return
	}
	if !reflect.DeepEqual(wantEnv, gotEnv) || !reflect.DeepEqual(wantPayload, gotPayload) {
		t.Fatalf("%q: decoded differently:\n two passes: %+v %+v\n one pass:   %+v %+v", b, wantEnv, wantPayload, gotEnv, gotPayload)
	}
}

// FuzzDecodeMessage: on any input, the one-pass decoder says what the
// two-pass one says.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"Heartbeat","node":"n1","seq":1,"time":"2026-01-01T00:00:00Z","payload":{"observedRevision":2,"outbox":{"queued":1}}}`,
		`{"v":1,"type":"Metrics","node":"n1","seq":1,"payload":{"samples":[{"time":"2026-01-01T00:00:00Z","window":10}],"heartbeat":{"statusSeq":3}}}`,
		`{"v":1,"type":"PodStatus","node":"n1","seq":9,"payload":{"observedRevision":1,"pods":[]}}`,
		`{"payload":{},"type":"Heartbeat","v":1,"node":"n1"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, kind := range []string{TopicStatus, TopicMetrics} {
			compareDecoders(t, NodeTopic("n1", kind), []byte(s))
		}
	})
}
