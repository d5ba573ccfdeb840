package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// HashPodSpec returns a short, stable hash of a pod spec. Agents label
// containers with it and replace a pod whose hash changed; the hub uses the
// same function, so both sides agree on what "changed" means.
func HashPodSpec(spec *PodSpec) string {
	return hashJSON(spec)
}

// HashTemplate returns a short, stable hash of a pod template (labels and
// spec), the equivalent of Kubernetes' controller-revision-hash.
func HashTemplate(t *PodTemplateSpec) string {
	return hashJSON(struct {
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Spec        *PodSpec          `json:"spec"`
	}{t.Labels, t.Annotations, &t.Spec})
}

func hashJSON(v any) string {
	// encoding/json sorts map keys, so equal values hash equally.
	b, err := json.Marshal(v)
	if err != nil {
		panic("api: hash of unencodable value: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}
