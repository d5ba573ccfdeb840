package broker

// Topic names and filters (MQTT 3.1.1 section 4.7): levels separated by
// '/', '+' matching one level and '#' the rest (and the parent), filters
// starting with a wildcard not matching topics starting with '$', and
// shared subscriptions spelled $share/{group}/{filter}.

import (
	"strings"
	"unicode/utf8"
)

// maxTopicLen is the longest topic or filter an MQTT string can hold.
const maxTopicLen = 65535

// validString reports whether s is a well-formed MQTT string: UTF-8,
// without U+0000, at most 65,535 bytes.
func validString(s string) bool {
	return len(s) <= maxTopicLen && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// validTopic reports whether topic may be published to: a non-empty
// string without wildcards.
func validTopic(topic string) bool {
	return topic != "" && validString(topic) && !strings.ContainsAny(topic, "+#")
}

// validFilter reports whether filter is a well-formed topic filter
// (shared or not).
func validFilter(filter string) bool {
	if filter == "" || !validString(filter) {
		return false
	}
	if _, f, shared := splitShared(filter); shared {
		filter = f
	} else if strings.HasPrefix(filter, "$share/") {
		return false
	}
	for rest, more := filter, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		switch {
		case level == "#":
			if more {
				return false
			}
		case level == "+":
		case strings.ContainsAny(level, "+#"):
			return false
		}
	}
	return true
}

// splitShared splits $share/{group}/{filter} into its group and filter;
// shared is false for any other filter, or a malformed shared one.
func splitShared(filter string) (group, f string, shared bool) {
	rest, ok := strings.CutPrefix(filter, "$share/")
	if !ok {
		return "", filter, false
	}
	group, f, ok = strings.Cut(rest, "/")
	if !ok || group == "" || f == "" || strings.ContainsAny(group, "+#") {
		return "", filter, false
	}
	return group, f, true
}

// wild reports whether filter holds a wildcard.
func wild(filter string) bool { return strings.ContainsAny(filter, "+#") }

// match reports whether the (unshared) filter matches topic.
func match(filter, topic string) bool {
	if topic != "" && topic[0] == '$' && filter != "" && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			return frest == "#" // "a/#" matches "a"
		}
		filter, topic = frest, trest
	}
}
