package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/wire"
)

// maxIDPrefix keeps container IDs within containerd's 76-character limit.
const maxIDPrefix = 58

// ContainerID is the deterministic containerd ID of one container of one pod
// at one spec. Because it is deterministic, an agent restarted from scratch
// finds the container it created before instead of creating a duplicate, and
// a changed spec gets a new container beside the old one.
func ContainerID(pod *wire.SnapshotPod, container string) string {
	sum := sha256.Sum256([]byte(pod.UID + "\x00" + container + "\x00" + pod.SpecHash))
	prefix := pod.Namespace + "_" + pod.Name + "_" + container
	if len(prefix) > maxIDPrefix {
		prefix = prefix[:maxIDPrefix]
	}
	return sanitizeID(prefix) + "_" + hex.EncodeToString(sum[:])[:12]
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
