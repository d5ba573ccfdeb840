package wire

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTopics(t *testing.T) {
	if got := NodeTopic("n1", TopicDesired); got != "flotilla/v1/nodes/n1/desired" {
		t.Fatalf("NodeTopic = %s", got)
	}
	if got := SharedTopic("g", AllNodesTopic(TopicStatus)); got != "$share/g/flotilla/v1/nodes/+/status" {
		t.Fatalf("SharedTopic = %s", got)
	}
	for _, tc := range []struct {
		topic, node, kind string
		ok                bool
	}{
		{"flotilla/v1/nodes/n1/status", "n1", "status", true},
		{"flotilla/v1/nodes/n1/status/x", "", "", false},
		{"flotilla/v1/nodes//status", "", "", false},
		{"flotilla/v2/nodes/n1/status", "", "", false},
		{"flotilla/v1/nodes/n1", "", "", false},
	} {
		node, kind, err := ParseNodeTopic(tc.topic)
		if (err == nil) != tc.ok || node != tc.node || kind != tc.kind {
			t.Errorf("ParseNodeTopic(%q) = %q, %q, %v", tc.topic, node, kind, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := Encode(TypeHeartbeat, "n1", 7, at, Heartbeat{ObservedRevision: 3})
	if err != nil {
		t.Fatal(err)
	}
	topic := NodeTopic("n1", TopicStatus)
	env, err := Decode(topic, b)
	if err != nil {
		t.Fatal(err)
	}
	var hb Heartbeat
	if err := DecodePayload(env, topic, &hb); err != nil {
		t.Fatal(err)
	}
	if env.Seq != 7 || !env.Time.Equal(at) || hb.ObservedRevision != 3 {
		t.Fatalf("env = %+v, hb = %+v", env, hb)
	}
}

func TestDecodeErrorsNameTopicAndNode(t *testing.T) {
	topic := NodeTopic("n1", TopicStatus)
	for _, tc := range []struct {
		name    string
		payload string
		want    string
	}{
		{"garbage", "nope", "envelope"},
		{"trailing data", `{"v":1,"type":"Heartbeat","node":"n1","seq":1,"payload":{}} x`, "after top-level value"},
		{"no payload", `{"v":1,"type":"Heartbeat","node":"n1","seq":1}`, "payload is missing"},
		{"wrong version", `{"v":2,"type":"Heartbeat","node":"n1","seq":1,"payload":{}}`, "version 2"},
		{"spoofed node", `{"v":1,"type":"Heartbeat","node":"n2","seq":1,"payload":{}}`, `names node "n2"`},
		{"type not for topic", `{"v":1,"type":"Snapshot","node":"n1","seq":1,"payload":{}}`, "not allowed"},
		{"seq of wrong type", `{"v":1,"type":"Heartbeat","node":"n1","seq":"1","payload":{}}`, "envelope"},
	} {
		_, err := Decode(topic, []byte(tc.payload))
		var we *Error
		if !errors.As(err, &we) || we.Node != "n1" || we.Topic != topic || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want a wire.Error for n1 mentioning %q", tc.name, err, tc.want)
		}
	}
	_, err := Decode(topic, make([]byte, MaxPayload+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
}

// FuzzDecode checks that no payload on any topic makes the decoder panic,
// and that whatever it accepts is consistent with the topic.
func FuzzDecode(f *testing.F) {
	seed, _ := Encode(TypeSnapshot, "n1", 1, time.Unix(0, 0), Snapshot{Node: "n1", Revision: 1})
	f.Add("flotilla/v1/nodes/n1/desired", seed)
	f.Add("flotilla/v1/nodes/n1/status", []byte(`{"v":1,"type":"PodStatus","node":"n1","seq":2,"payload":{"pods":[{"uid":"u","status":{"phase":"Running"}}]}}`))
	f.Add("flotilla/v1/nodes/n1/online", []byte(`{"v":1,"type":"Online","node":"n1","seq":0,"payload":{"online":false}}`))
	f.Add("flotilla/v1/nodes/x/status", []byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		env, err := Decode(topic, payload)
		if err != nil {
			return
		}
		node, kind, perr := ParseNodeTopic(topic)
		if perr != nil || env.Node != node || !allowed(kind, env.Type) {
			t.Fatalf("accepted an inconsistent message: topic %q env %+v", topic, env)
		}
		var v struct{}
		_ = DecodePayload(env, topic, &v)
		for _, target := range []any{&Snapshot{}, &Hello{}, &PodStatusReport{}, &Online{}, &Heartbeat{}} {
			_ = DecodePayload(env, topic, target)
		}
	})
}
