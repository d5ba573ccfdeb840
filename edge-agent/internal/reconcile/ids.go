package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// Container IDs stay within containerd's 76-character limit: a prefix of
// at most maxIDPrefix characters, "_", 12 hex digits of hash, and for runs
// after the first "-" and the run number, for which the prefix gives way.
const (
	maxID       = 76
	hashLen     = 12
	maxIDPrefix = 58
)

// ContainerID is the deterministic containerd ID of one container of one pod
// at one spec, and the ID of its first run. Because it is deterministic, an
// agent restarted from scratch finds the container it created before
// instead of creating a duplicate, and a changed spec gets a new container
// beside the old one. It is also the key of the container's restart
// history, which all its runs share.
func ContainerID(pod *wire.SnapshotPod, container string) string {
	return RunID(pod, container, 0)
}

// RunID is the containerd ID of run n of a container: run 0 is
// ContainerID; every restart gets a container of its own, run n named
// ContainerID's hash followed by "-n", so that the replacement can be
// created and started while the exited run's task still exists (its
// deletion then happens after the start, off the restart's path).
func RunID(pod *wire.SnapshotPod, container string, run int32) string {
	sum := sha256.Sum256([]byte(pod.UID + "\x00" + container + "\x00" + pod.SpecHash))
	suffix := ""
	if run > 0 {
		suffix = "-" + strconv.FormatInt(int64(run), 10)
	}
	prefix := pod.Namespace + "_" + pod.Name + "_" + container
	if n := min(maxIDPrefix, maxID-1-hashLen-len(suffix)); len(prefix) > n {
		prefix = prefix[:n]
	}
	return sanitizeID(prefix) + "_" + hex.EncodeToString(sum[:])[:hashLen] + suffix
}

// containerKey is the ContainerID of the container that c is a run of,
// from c's labels.
func containerKey(c Container) string {
	l := c.Labels
	pod := wire.SnapshotPod{UID: l[LabelPodUID], Name: l[LabelPodName], Namespace: l[LabelPodNamespace], SpecHash: l[LabelSpecHash]}
	return ContainerID(&pod, l[LabelContainer])
}

// runOf is c's run number (LabelRun). A container without the label was
// created before runs had containers of their own, and is run 0.
func runOf(c Container) int32 {
	n, err := strconv.ParseInt(c.Labels[LabelRun], 10, 32)
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}

// sanitizeID makes s a valid containerd identifier prefix: runs of letters
// and digits joined by single '.', '_' or '-' ("a--b" is a valid DNS name
// but not a valid containerd ID).
func sanitizeID(s string) string {
	var b strings.Builder
	sep := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum {
			if sep == 0 {
				sep = c
			}
			continue
		}
		if sep != 0 && b.Len() > 0 {
			b.WriteByte(sep)
		}
		sep = 0
		b.WriteByte(c)
	}
	if b.Len() == 0 {
		return "pod"
	}
	return b.String()
}
