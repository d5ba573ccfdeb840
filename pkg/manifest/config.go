package manifest

import (
	"path"
	"strings"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

// Validation of Secrets, ConfigMaps and the pod fields that use them,
// with Kubernetes' rules.

// secretRequiredKeys lists, per typed Secret, the keys it must hold; a
// list of alternatives means at least one of them.
var secretRequiredKeys = map[string][][]string{
	api.SecretTypeOpaque:    nil,
	api.SecretTypeTLS:       {{api.TLSCertKey}, {api.TLSPrivateKeyKey}},
	api.SecretTypeBasicAuth: {{api.BasicAuthUsername, api.BasicAuthPassword}},
	api.SecretTypeSSHAuth:   {{api.SSHAuthPrivateKey}},
}

var secretTypes = []string{api.SecretTypeOpaque, api.SecretTypeTLS, api.SecretTypeBasicAuth, api.SecretTypeSSHAuth}

func validateSecret(c *collector, s *api.Secret) {
	// Validate may run before Default merged stringData into data: check
	// the Secret as it will be stored.
	merged := map[string]int{}
	for _, k := range sortedKeys(s.Data) {
		if err := api.ValidateConfigKey(k); err != nil {
			c.add("data", errText(err))
			continue
		}
		merged[k] = len(s.Data[k])
	}
	for _, k := range sortedKeys(s.StringData) {
		if err := api.ValidateConfigKey(k); err != nil {
			c.add("stringData", errText(err))
			continue
		}
		merged[k] = len(s.StringData[k])
	}
	total := 0
	for _, n := range merged {
		total += n
	}
	if total > api.MaxSecretSize {
		c.addf("data", "must be at most %d bytes in total, not %d", api.MaxSecretSize, total)
	}
	typ := s.Type
	if typ == "" {
		typ = api.SecretTypeOpaque
	}
	required, ok := secretRequiredKeys[typ]
	if !ok {
		c.add("type", notOneOf(s.Type, secretTypes))
		return
	}
	for _, alternatives := range required {
		found := false
		for _, k := range alternatives {
			if _, ok := merged[k]; ok {
				found = true
			}
		}
		if !found {
			c.addf("data", "a Secret of type %s must have the key %s", typ, strings.Join(quoteAll(alternatives), " or "))
		}
	}
	if typ == api.SecretTypeTLS {
		data, fields := mergedSecretData(s)
		validateTLSPair(c, data, fields)
	}
}

// mergedSecretData is the Secret's data as it will be stored (stringData
// wins), with the field each value comes from.
func mergedSecretData(s *api.Secret) (map[string][]byte, map[string]string) {
	data, fields := map[string][]byte{}, map[string]string{}
	for k, v := range s.Data {
		data[k], fields[k] = v, key("data", k)
	}
	for k, v := range s.StringData {
		data[k], fields[k] = []byte(v), key("stringData", k)
	}
	return data, fields
}

func validateConfigMap(c *collector, cm *api.ConfigMap) {
	total := 0
	for _, k := range sortedKeys(cm.Data) {
		if err := api.ValidateConfigKey(k); err != nil {
			c.add("data", errText(err))
		}
		total += len(cm.Data[k])
	}
	for _, k := range sortedKeys(cm.BinaryData) {
		if err := api.ValidateConfigKey(k); err != nil {
			c.add("binaryData", errText(err))
		} else if _, dup := cm.Data[k]; dup {
			c.addf(key("binaryData", k), "duplicate of key %q in data: a key may be in data or binaryData, not both", k)
		}
		total += len(cm.BinaryData[k])
	}
	if total > api.MaxConfigMapSize {
		c.addf("data", "data and binaryData must be at most %d bytes in total, not %d", api.MaxConfigMapSize, total)
	}
}

// validateObjectRef checks the name of a Secret or ConfigMap a pod refers to.
func validateObjectRef(c *collector, name, p string) {
	if err := api.ValidateDNSSubdomain(name); err != nil {
		c.add(p, errText(err))
	}
}

func validateEnvVar(c *collector, e *api.EnvVar, p string) {
	if err := api.ValidateEnvVarName(e.Name); err != nil {
		c.add(field(p, "name"), errText(err))
	}
	vf := e.ValueFrom
	if vf == nil {
		return
	}
	vfPath := field(p, "valueFrom")
	if e.Value != "" {
		c.add(vfPath, "may not be set when value is not empty")
	}
	switch {
	case vf.SecretKeyRef == nil && vf.ConfigMapKeyRef == nil:
		c.add(vfPath, "must set exactly one source: secretKeyRef or configMapKeyRef")
	case vf.SecretKeyRef != nil && vf.ConfigMapKeyRef != nil:
		c.add(vfPath, "may not set more than one source: secretKeyRef and configMapKeyRef are both set")
	}
	if r := vf.SecretKeyRef; r != nil {
		validateKeyRef(c, r.Name, r.Key, field(vfPath, "secretKeyRef"))
	}
	if r := vf.ConfigMapKeyRef; r != nil {
		validateKeyRef(c, r.Name, r.Key, field(vfPath, "configMapKeyRef"))
	}
}

func validateKeyRef(c *collector, name, k, p string) {
	validateObjectRef(c, name, field(p, "name"))
	if k == "" {
		c.add(field(p, "key"), "required")
	} else if err := api.ValidateConfigKey(k); err != nil {
		c.add(field(p, "key"), errText(err))
	}
}

func validateEnvFrom(c *collector, e *api.EnvFromSource, p string) {
	switch {
	case e.ConfigMapRef == nil && e.SecretRef == nil:
		c.add(p, "must set exactly one source: configMapRef or secretRef")
	case e.ConfigMapRef != nil && e.SecretRef != nil:
		c.add(p, "may not set more than one source: configMapRef and secretRef are both set")
	}
	if e.Prefix != "" {
		if err := api.ValidateEnvVarName(e.Prefix); err != nil {
			c.add(field(p, "prefix"), errText(err))
		}
	}
	if r := e.ConfigMapRef; r != nil {
		validateObjectRef(c, r.Name, field(field(p, "configMapRef"), "name"))
	}
	if r := e.SecretRef; r != nil {
		validateObjectRef(c, r.Name, field(field(p, "secretRef"), "name"))
	}
}

// validateVolumeItems checks a secret or configMap volume's items and
// modes: each path relative, without "..", and used once.
func validateVolumeItems(c *collector, items []api.KeyToPath, defaultMode *int32, p string) {
	if defaultMode != nil {
		validateFileMode(c, *defaultMode, field(p, "defaultMode"))
	}
	paths := map[string]bool{}
	for i := range items {
		it := &items[i]
		ip := index(field(p, "items"), i)
		if it.Key == "" {
			c.add(field(ip, "key"), "required")
		} else if err := api.ValidateConfigKey(it.Key); err != nil {
			c.add(field(ip, "key"), errText(err))
		}
		switch {
		case it.Path == "":
			c.add(field(ip, "path"), "required")
		case strings.HasPrefix(it.Path, "/"):
			c.addf(field(ip, "path"), "%q must be a relative path", clip(it.Path, 200))
		case hasDotDot(it.Path):
			c.addf(field(ip, "path"), "%q must not contain '..'", clip(it.Path, 200))
		case strings.HasPrefix(it.Path, ".."):
			c.addf(field(ip, "path"), "%q must not start with '..'", clip(it.Path, 200))
		case paths[path.Clean(it.Path)]:
			c.addf(field(ip, "path"), "duplicate path %q", clip(it.Path, 200))
		}
		paths[path.Clean(it.Path)] = true
		if it.Mode != nil {
			validateFileMode(c, *it.Mode, field(ip, "mode"))
		}
	}
}

func hasDotDot(p string) bool {
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

func validateFileMode(c *collector, mode int32, p string) {
	if mode < 0 || mode > api.MaxVolumeFileMode {
		c.addf(p, "must be a file mode between 0 and 0777 (octal), or 0 and 511 (decimal), not %d", mode)
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = `"` + s + `"`
	}
	return out
}
