package api

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func podWith(ann map[string]string) *Pod {
	return &Pod{ObjectMeta: ObjectMeta{Name: "p", Annotations: ann}}
}

func TestPrePullImages(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want []string
	}{
		{"no annotations", nil, nil},
		{"empty", map[string]string{AnnotationPrePull: ""}, nil},
		{"one", map[string]string{AnnotationPrePull: "reg/x:v2"}, []string{"reg/x:v2"}},
		{"several in order", map[string]string{AnnotationPrePull: "reg/b:v2,reg/a:v2"}, []string{"reg/b:v2", "reg/a:v2"}},
		{"blanks and spaces dropped", map[string]string{AnnotationPrePull: " reg/a:v2 ,, ,reg/b:v2,"}, []string{"reg/a:v2", "reg/b:v2"}},
		{"only separators", map[string]string{AnnotationPrePull: " , ,"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := PrePullImages(podWith(tc.ann)); !slices.Equal(got, tc.want) {
				t.Fatalf("PrePullImages = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProgressDeadline(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 0, false},
		{"600", 10 * time.Minute, true},
		{"1", time.Second, true},
		{"0", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"10m", 0, false},
		{" 600", 0, false},
		{strconv.Itoa(math.MaxInt32), math.MaxInt32 * time.Second, true},
		{strconv.Itoa(math.MaxInt32 + 1), 0, false}, // does not fit the snapshot's int32
	} {
		got, ok := ProgressDeadline(podWith(map[string]string{AnnotationProgressDeadline: tc.value}))
		if got != tc.want || ok != tc.ok {
			t.Errorf("ProgressDeadline(%q) = %v, %v; want %v, %v", tc.value, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := ProgressDeadline(podWith(nil)); ok {
		t.Errorf("a pod without annotations has a deadline")
	}
}

// FuzzHints: whatever an annotation holds, the accessors do not panic,
// images are trimmed and not empty, and a deadline is a positive whole
// number of seconds that fits an int32.
func FuzzHints(f *testing.F) {
	for _, s := range []string{"", "reg/x:v1", "a,,b", " , ", "600", "-1", "2147483648"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p := podWith(map[string]string{AnnotationPrePull: v, AnnotationProgressDeadline: v})
		for _, img := range PrePullImages(p) {
			if img == "" || img != strings.TrimSpace(img) || strings.Contains(img, ",") {
				t.Fatalf("%q: image %q", v, img)
			}
		}
		if d, ok := ProgressDeadline(p); ok && (d <= 0 || d%time.Second != 0 || d/time.Second > math.MaxInt32) {
			t.Fatalf("%q: deadline %v", v, d)
		} else if !ok && d != 0 {
			t.Fatalf("%q: deadline %v without ok", v, d)
		}
	})
}
