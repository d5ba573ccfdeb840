package broker

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a//c", true},
		{"+/+", "/b", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"#", "a/b", true},
		{"#", "$SYS/a", false},
		{"+/a", "$SYS/a", false},
		{"$SYS/#", "$SYS/a", true},
		{"flotilla/v1/nodes/+/status", "flotilla/v1/nodes/n1/status", true},
		{"flotilla/v1/nodes/+/status", "flotilla/v1/nodes/n1/metrics", false},
	} {
		if got := match(tc.filter, tc.topic); got != tc.want {
			t.Errorf("match(%q, %q) = %v", tc.filter, tc.topic, got)
		}
	}
	for f, want := range map[string]bool{
		"a/b": true, "a/+/c": true, "#": true, "a/#": true, "+": true, "$share/g/a/+": true,
		"": false, "a/#/b": false, "a+": false, "a/b#": false, "$share/g": false, "$share//a": false, "$share/g+/a": false, "a\x00": false,
	} {
		if got := validFilter(f); got != want {
			t.Errorf("validFilter(%q) = %v", f, got)
		}
	}
	for topic, want := range map[string]bool{"a/b": true, "/": true, "": false, "a/+": false, "#": false, "\xff": false} {
		if got := validTopic(topic); got != want {
			t.Errorf("validTopic(%q) = %v", topic, got)
		}
	}
}
