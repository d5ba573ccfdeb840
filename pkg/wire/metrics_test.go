package wire

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func sampleBatch() MetricsBatch {
	cpu := 0.25
	return MetricsBatch{Samples: []MetricSample{{
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), WindowSeconds: 10,
		Node: NodeSample{
			CPU:           CPUSample{Cores: 2, UsageCores: 0.5, PerCore: []float64{0.2, 0.3}},
			Load:          &LoadSample{Load1: 0.5, Load5: 0.4, Load15: 0.3},
			Memory:        MemorySample{TotalBytes: 4 << 30, AvailableBytes: 1 << 30},
			Filesystems:   []FilesystemSample{{Mount: "/", Device: "/dev/mmcblk0p2", Type: "ext4", TotalBytes: 100, UsedBytes: 40, AvailableBytes: 55, State: true}},
			Networks:      []NetworkSample{{Interface: "eth0", RxBytesPerSecond: 10, RxBytes: 1000, RxErrors: 1}},
			UptimeSeconds: 100, Processes: 90,
		},
		Pods: []PodSample{{Namespace: "default", Name: "web", UID: "u1", Containers: []ContainerSample{{Name: "main", CPUUsageCores: &cpu, MemoryWorkingSetBytes: 1 << 20, Restarts: 1}}}},
	}}}
}

func TestMetricsAndLogMessagesRoundTrip(t *testing.T) {
	at := time.Unix(0, 0)
	for _, tc := range []struct {
		kind, typ string
		in, out   any
	}{
		{TopicMetrics, TypeMetrics, sampleBatch(), &MetricsBatch{}},
		{TopicRequests, TypeLogRequest, LogRequest{ID: "a", Namespace: "default", Pod: "web", UID: "u1", Container: "main", Cursor: &LogCursor{Run: 2, Offset: 7}, WaitSeconds: 5}, &LogRequest{}},
		{TopicReplies, TypeLogReply, LogReply{ID: "a", Data: []byte("hello\n\x00\xff"), Cursor: LogCursor{Run: 2, Offset: 15}, More: true}, &LogReply{}},
	} {
		b, err := Encode(tc.typ, "n1", 1, at, tc.in)
		if err != nil {
			t.Fatal(err)
		}
		topic := NodeTopic("n1", tc.kind)
		env, err := Decode(topic, b)
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if err := DecodePayload(env, topic, tc.out); err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		want, _ := json.Marshal(tc.in)
		got, _ := json.Marshal(tc.out)
		if !bytes.Equal(want, got) {
			t.Errorf("%s: round trip changed it:\n%s\n%s", tc.typ, want, got)
		}
		// Each type is allowed on its own topic only.
		if _, err := Decode(NodeTopic("n1", TopicStatus), b); err == nil {
			t.Errorf("%s accepted on the status topic", tc.typ)
		}
	}
}

// TestAbsentIsNotZero checks that readings a board does not have (sensors,
// a container's first CPU rate) are left out, not sent as zeros.
func TestAbsentIsNotZero(t *testing.T) {
	b, _ := json.Marshal(MetricSample{Pods: []PodSample{{Containers: []ContainerSample{{Name: "c"}}}}})
	for _, absent := range []string{`"temperatures"`, `"load"`, `{"name":"c","cpu":`} {
		if bytes.Contains(b, []byte(absent)) {
			t.Errorf("absent %s encoded: %s", absent, b)
		}
	}
}

// FuzzTelemetryDecode feeds the metrics, requests and replies topics: no
// input makes decoding panic, and whatever decodes re-encodes to the same
// bytes after a second round (decoding is a function of the value).
func FuzzTelemetryDecode(f *testing.F) {
	at := time.Unix(0, 0)
	seed, _ := Encode(TypeMetrics, "n1", 1, at, sampleBatch())
	f.Add("flotilla/v1/nodes/n1/metrics", seed)
	req, _ := Encode(TypeLogRequest, "n1", 2, at, LogRequest{ID: "x", Namespace: "d", Pod: "p", UID: "u", Container: "c", TailLines: new(int64)})
	f.Add("flotilla/v1/nodes/n1/requests", req)
	rep, _ := Encode(TypeLogReply, "n1", 3, at, LogReply{ID: "x", Data: []byte("line\n"), Ended: true})
	f.Add("flotilla/v1/nodes/n1/replies", rep)
	f.Add("flotilla/v1/nodes/n1/metrics", []byte(`{"v":1,"type":"Metrics","node":"n1","seq":1,"payload":{"samples":[{"time":"2026-01-01T00:00:00Z","window":1e308,"node":{"cpu":{"cores":-1}}}]}}`))
	f.Add("flotilla/v1/nodes/n1/replies", []byte(`{"v":1,"type":"LogReply","node":"n1","seq":1,"payload":{"id":"x","data":"not base64!"}}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		env, err := Decode(topic, payload)
		if err != nil {
			return
		}
		for _, newTarget := range []func() any{
			func() any { return &MetricsBatch{} },
			func() any { return &LogRequest{} },
			func() any { return &LogReply{} },
		} {
			v1 := newTarget()
			if DecodePayload(env, topic, v1) != nil {
				continue
			}
			enc1, err := json.Marshal(v1)
			if err != nil {
				continue // e.g. a time outside what JSON can carry
			}
			v2 := newTarget()
			if err := json.Unmarshal(enc1, v2); err != nil {
				t.Fatalf("re-decoding our own encoding failed: %v\n%s", err, enc1)
			}
			enc2, _ := json.Marshal(v2)
			if !bytes.Equal(enc1, enc2) {
				t.Fatalf("encoding not stable:\n%s\n%s", enc1, enc2)
			}
		}
	})
}
