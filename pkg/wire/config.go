package wire

import (
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// SnapshotSecret is a Secret one of the node's pods uses. The hub puts in
// a node's snapshot only the Secrets its pods refer to (env valueFrom,
// envFrom, volumes), so a node never receives another node's secrets; the
// snapshot is signed, and travels only on the node's own desired topic.
type SnapshotSecret struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Type      string            `json:"type,omitempty"`
	Data      map[string][]byte `json:"data,omitempty"`
}

// SnapshotConfigMap is a ConfigMap one of the node's pods uses.
type SnapshotConfigMap struct {
	Namespace  string            `json:"namespace"`
	Name       string            `json:"name"`
	Data       map[string]string `json:"data,omitempty"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
}

// Secret returns the data of the snapshot's Secret namespace/name.
func (s *Snapshot) Secret(namespace, name string) (map[string][]byte, bool) {
	for i := range s.Secrets {
		if sec := &s.Secrets[i]; sec.Namespace == namespace && sec.Name == name {
			return sec.Data, true
		}
	}
	return nil, false
}

// ConfigMap returns the data and binary data of the snapshot's ConfigMap
// namespace/name, merged (a valid ConfigMap has no key in both).
func (s *Snapshot) ConfigMap(namespace, name string) (map[string][]byte, bool) {
	for i := range s.ConfigMaps {
		cm := &s.ConfigMaps[i]
		if cm.Namespace != namespace || cm.Name != name {
			continue
		}
		out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
		for k, v := range cm.Data {
			out[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			out[k] = v
		}
		return out, true
	}
	return nil, false
}

// PodConfigRefs lists the Secrets and ConfigMaps (by name, in the pod's
// namespace) that spec refers to, each once, in order of first mention:
// what the hub must put in the snapshot of the pod's node.
func PodConfigRefs(spec *api.PodSpec) (secrets, configMaps []string) {
	seen := map[string]bool{}
	add := func(list *[]string, kind, name string) {
		if name != "" && !seen[kind+"/"+name] {
			seen[kind+"/"+name] = true
			*list = append(*list, name)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				add(&secrets, "s", e.SecretRef.Name)
			}
			if e.ConfigMapRef != nil {
				add(&configMaps, "c", e.ConfigMapRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add(&secrets, "s", r.Name)
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add(&configMaps, "c", r.Name)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			add(&secrets, "s", v.Secret.SecretName)
		}
		if v.ConfigMap != nil {
			add(&configMaps, "c", v.ConfigMap.Name)
		}
	}
	return secrets, configMaps
}
