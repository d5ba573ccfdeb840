package api

import (
	"strconv"
	"strings"
	"time"
)

// Pod annotations through which the hub's controllers give a node's agent
// instructions about a pod. The hub's dispatch reads them (with the
// accessors below) into each pod of a node's desired snapshot; the agent
// sees them as fields of the snapshot, never as annotations.
const (
	// AnnotationPrePull lists, comma-separated, the images of the coming
	// revision that the node should pull while the pod keeps running.
	AnnotationPrePull = "flotilla.io/prepull"
	// AnnotationProgressDeadline is the rollout's progress deadline in
	// whole seconds, so that the agent can revert a pod that does not
	// become Ready in time, even while it cannot reach the hub.
	AnnotationProgressDeadline = "flotilla.io/progress-deadline-seconds"
)

// PrePullImages returns the images pod's AnnotationPrePull lists, in order,
// without blanks; nil when there are none.
func PrePullImages(pod *Pod) []string {
	v := pod.Annotations[AnnotationPrePull]
	if v == "" {
		return nil
	}
	var images []string
	for _, img := range strings.Split(v, ",") {
		if img = strings.TrimSpace(img); img != "" {
			images = append(images, img)
		}
	}
	return images
}

// ProgressDeadline returns pod's AnnotationProgressDeadline, and whether it
// holds one: a positive whole number of seconds that fits an int32 (the
// snapshot's field). Anything else reads as no deadline.
func ProgressDeadline(pod *Pod) (time.Duration, bool) {
	v, err := strconv.ParseInt(pod.Annotations[AnnotationProgressDeadline], 10, 32)
	if err != nil || v <= 0 {
		return 0, false
	}
	return time.Duration(v) * time.Second, true
}
