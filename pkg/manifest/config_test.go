package manifest

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestDecodeSecretsAndConfigMaps(t *testing.T) {
	data, err := os.ReadFile("testdata/config-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Decode("config.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 3 {
		t.Fatalf("got %d documents, want 3", len(docs))
	}
	for _, d := range docs {
		Default(d.Object, "")
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
	}

	s := docs[0].Object.(*api.Secret)
	if got := string(s.Data["api-key"]); got != "secret-key" {
		t.Errorf("data.api-key = %q, want the base64-decoded value", got)
	}
	if got := string(s.Data["password"]); got != "hunter2" || s.StringData != nil {
		t.Errorf("stringData not merged into data: data.password = %q, stringData = %v", got, s.StringData)
	}
	if s.Type != api.SecretTypeOpaque {
		t.Errorf("type = %q", s.Type)
	}

	cm := docs[1].Object.(*api.ConfigMap)
	if cm.Data["LOG_LEVEL"] != "debug" || !bytes.HasPrefix(cm.BinaryData["logo.png"], []byte("\x89PNG")) {
		t.Errorf("configmap = %+v", cm)
	}

	ds := docs[2].Object.(*api.DaemonSet)
	c := ds.Spec.Template.Spec.Containers[0]
	if r := c.Env[0].ValueFrom.SecretKeyRef; r == nil || r.Name != "gateway-credentials" || r.Key != "api-key" || r.Optional != nil {
		t.Errorf("env[0].valueFrom = %+v", c.Env[0].ValueFrom)
	}
	if r := c.Env[1].ValueFrom.ConfigMapKeyRef; r == nil || r.Name != "site-config" || r.Optional == nil || !*r.Optional {
		t.Errorf("env[1].valueFrom = %+v", c.Env[1].ValueFrom)
	}
	if len(c.EnvFrom) != 2 || c.EnvFrom[0].ConfigMapRef.Name != "gateway-config" || c.EnvFrom[1].Prefix != "DB_" || c.EnvFrom[1].SecretRef.Name != "database" {
		t.Errorf("envFrom = %+v", c.EnvFrom)
	}
	vols := ds.Spec.Template.Spec.Volumes
	if v := vols[0].ConfigMap; v == nil || v.Name != "gateway-config" || *v.DefaultMode != 0o644 || v.Items[0].Path != "gateway.conf" {
		t.Errorf("configMap volume = %+v", vols[0])
	}
	// YAML 1.1 reads 0400 as octal, as kubectl does.
	if v := vols[1].Secret; v == nil || v.SecretName != "gateway-credentials" || *v.DefaultMode != 0o400 || *v.Items[0].Mode != 0o440 {
		t.Errorf("secret volume = %+v", vols[1])
	}
}

func TestDecodeSecretBase64(t *testing.T) {
	const doc = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  k: %s\n"
	for _, tc := range []struct{ value, msg string }{
		{"not base64!", "must be a base64-encoded string"},
		{"12", "must be a base64-encoded string"},
		{"[a]", "must be a base64-encoded string"},
		{"YWJj", ""},
		{`""`, ""},
	} {
		_, err := Decode("s.yaml", []byte(strings.Replace(doc, "%s", tc.value, 1)))
		if tc.msg == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.value, err)
			}
			continue
		}
		list := errorsOf(t, err)
		if len(list) != 1 || list[0].Field != "data.k" || list[0].Msg != tc.msg {
			t.Errorf("%s: got %v", tc.value, err)
		}
	}
	_, err := Decode("s.yaml", []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: true\n"))
	if list := errorsOf(t, err); len(list) != 1 || list[0].Field != "immutable" || list[0].Msg != "not supported by Flotilla" {
		t.Errorf("immutable: got %v", err)
	}
}

func validSecret() *api.Secret {
	return &api.Secret{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindSecret},
		ObjectMeta: api.ObjectMeta{Name: "creds", Namespace: "edge"},
		Data:       map[string][]byte{"a.b_c-D": []byte("x")},
		StringData: map[string]string{"token": "y"},
	}
}

func validConfigMap() *api.ConfigMap {
	return &api.ConfigMap{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindConfigMap},
		ObjectMeta: api.ObjectMeta{Name: "cfg", Namespace: "edge"},
		Data:       map[string]string{"app.conf": "x=1"},
		BinaryData: map[string][]byte{"blob": {0, 1, 2}},
	}
}

func TestValidateSecret(t *testing.T) {
	if err := Validate(validSecret()); err != nil {
		t.Fatalf("the valid Secret fails: %v", err)
	}
	big := strings.Repeat("x", api.MaxSecretSize/2+1)
	for _, tc := range []struct {
		name       string
		mutate     func(*api.Secret)
		field, msg string
	}{
		{"bad data key", func(s *api.Secret) { s.Data["a/b"] = nil }, "data", `key "a/b" is not valid`},
		{"dot key", func(s *api.Secret) { s.Data["."] = nil }, "data", `may not be '.' or '..'`},
		{"dotdot prefix", func(s *api.Secret) { s.Data["..data"] = nil }, "data", `may not start with '..'`},
		{"long key", func(s *api.Secret) { s.Data[strings.Repeat("k", 254)] = nil }, "data", "longer than 253"},
		{"bad stringData key", func(s *api.Secret) { s.StringData["a b"] = "" }, "stringData", `key "a b" is not valid`},
		{"too big", func(s *api.Secret) { s.Data["one"] = []byte(big); s.StringData["two"] = big }, "data", "must be at most 1048576 bytes in total"},
		{"unknown type", func(s *api.Secret) { s.Type = "kubernetes.io/dockerconfigjson" }, "type", "kubernetes.io/dockerconfigjson"},
		{"tls without key", func(s *api.Secret) { s.Type = api.SecretTypeTLS; s.Data["tls.crt"] = []byte("c") }, "data", `must have the key "tls.key"`},
		{"basic-auth without either", func(s *api.Secret) { s.Type = api.SecretTypeBasicAuth }, "data", `must have the key "username" or "password"`},
		{"ssh-auth without key", func(s *api.Secret) { s.Type = api.SecretTypeSSHAuth }, "data", `"ssh-privatekey"`},
		{"namespace", func(s *api.Secret) { s.Namespace = "" }, "metadata.namespace", "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSecret()
			tc.mutate(s)
			// Validate before Default: data and stringData are checked as
			// they will be merged.
			list := errorsOf(t, Validate(s))
			for _, e := range list {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("want %s: …%s…, got:\n%v", tc.field, tc.msg, list)
		})
	}
	// A stringData value replaces a data value of the same key in the
	// size count, as it does when merged.
	s := validSecret()
	s.Data["k"] = []byte(big)
	s.StringData["k"] = "small"
	if err := Validate(s); err != nil {
		t.Errorf("stringData overriding a large data key: %v", err)
	}
	// Typed secrets with their keys pass, from data or stringData.
	s = validSecret()
	s.Type, s.StringData = api.SecretTypeBasicAuth, map[string]string{"password": "p"}
	if err := Validate(s); err != nil {
		t.Errorf("basic-auth with a password: %v", err)
	}
}

func TestValidateConfigMap(t *testing.T) {
	if err := Validate(validConfigMap()); err != nil {
		t.Fatalf("the valid ConfigMap fails: %v", err)
	}
	for _, tc := range []struct {
		name       string
		mutate     func(*api.ConfigMap)
		field, msg string
	}{
		{"bad data key", func(c *api.ConfigMap) { c.Data["a:b"] = "" }, "data", `key "a:b" is not valid`},
		{"bad binaryData key", func(c *api.ConfigMap) { c.BinaryData[".."] = nil }, "binaryData", `may not be '.' or '..'`},
		{"key in both", func(c *api.ConfigMap) { c.BinaryData["app.conf"] = nil }, "binaryData[app.conf]", "duplicate of key"},
		{"too big", func(c *api.ConfigMap) {
			c.Data["a"] = strings.Repeat("x", 600<<10)
			c.BinaryData["b"] = bytes.Repeat([]byte("x"), 600<<10)
		}, "data", "must be at most 1048576 bytes in total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfigMap()
			tc.mutate(c)
			checkCase(t, c, tc.field, tc.msg)
		})
	}
}

func TestValidatePodConfigSources(t *testing.T) {
	const base = "spec.template.spec."
	const ctr = base + "containers[0]."
	f := false
	for _, tc := range []struct {
		name       string
		mutate     func(*api.PodSpec)
		field, msg string
	}{
		{"value and valueFrom", func(ps *api.PodSpec) {
			ps.Containers[0].Env = []api.EnvVar{{Name: "A", Value: "x", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: api.LocalObjectReference{Name: "s"}, Key: "k"}}}}
		}, ctr + "env[0].valueFrom", "may not be set when value is not empty"},
		{"empty valueFrom", func(ps *api.PodSpec) {
			ps.Containers[0].Env = []api.EnvVar{{Name: "A", ValueFrom: &api.EnvVarSource{}}}
		}, ctr + "env[0].valueFrom", "must set exactly one source"},
		{"two sources", func(ps *api.PodSpec) {
			ref := api.LocalObjectReference{Name: "s"}
			ps.Containers[0].Env = []api.EnvVar{{Name: "A", ValueFrom: &api.EnvVarSource{
				SecretKeyRef:    &api.SecretKeySelector{LocalObjectReference: ref, Key: "k"},
				ConfigMapKeyRef: &api.ConfigMapKeySelector{LocalObjectReference: ref, Key: "k"},
			}}}
		}, ctr + "env[0].valueFrom", "secretKeyRef and configMapKeyRef are both set"},
		{"secretKeyRef without name", func(ps *api.PodSpec) {
			ps.Containers[0].Env = []api.EnvVar{{Name: "A", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{Key: "k"}}}}
		}, ctr + "env[0].valueFrom.secretKeyRef.name", "required"},
		{"configMapKeyRef without key", func(ps *api.PodSpec) {
			ps.Containers[0].Env = []api.EnvVar{{Name: "A", ValueFrom: &api.EnvVarSource{ConfigMapKeyRef: &api.ConfigMapKeySelector{LocalObjectReference: api.LocalObjectReference{Name: "c"}, Optional: &f}}}}
		}, ctr + "env[0].valueFrom.configMapKeyRef.key", "required"},
		{"bad key", func(ps *api.PodSpec) {
			ps.Containers[0].Env = []api.EnvVar{{Name: "A", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: api.LocalObjectReference{Name: "s"}, Key: "a/b"}}}}
		}, ctr + "env[0].valueFrom.secretKeyRef.key", "is not valid"},
		{"bad secret name", func(ps *api.PodSpec) {
			ps.Containers[0].Env = []api.EnvVar{{Name: "A", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: api.LocalObjectReference{Name: "Creds"}, Key: "k"}}}}
		}, ctr + "env[0].valueFrom.secretKeyRef.name", "is not a valid name"},
		{"envFrom without source", func(ps *api.PodSpec) {
			ps.Containers[0].EnvFrom = []api.EnvFromSource{{Prefix: "X_"}}
		}, ctr + "envFrom[0]", "must set exactly one source"},
		{"envFrom two sources", func(ps *api.PodSpec) {
			ref := api.LocalObjectReference{Name: "s"}
			ps.Containers[0].EnvFrom = []api.EnvFromSource{{ConfigMapRef: &api.ConfigMapEnvSource{LocalObjectReference: ref}, SecretRef: &api.SecretEnvSource{LocalObjectReference: ref}}}
		}, ctr + "envFrom[0]", "configMapRef and secretRef are both set"},
		{"envFrom bad prefix", func(ps *api.PodSpec) {
			ps.Containers[0].EnvFrom = []api.EnvFromSource{{Prefix: "1=", SecretRef: &api.SecretEnvSource{LocalObjectReference: api.LocalObjectReference{Name: "s"}}}}
		}, ctr + "envFrom[0].prefix", "not a valid environment variable name"},
		{"envFrom without name", func(ps *api.PodSpec) {
			ps.Containers[0].EnvFrom = []api.EnvFromSource{{ConfigMapRef: &api.ConfigMapEnvSource{}}}
		}, ctr + "envFrom[0].configMapRef.name", "required"},
		{"secret volume without name", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "s", Secret: &api.SecretVolumeSource{}})
		}, base + "volumes[2].secret.secretName", "required"},
		{"configMap volume without name", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "c", ConfigMap: &api.ConfigMapVolumeSource{}})
		}, base + "volumes[2].configMap.name", "required"},
		{"two volume sources", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "c", EmptyDir: &api.EmptyDirVolumeSource{}, Secret: &api.SecretVolumeSource{SecretName: "s"}})
		}, base + "volumes[2]", "emptyDir and secret are both set"},
		{"three volume sources", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "c", EmptyDir: &api.EmptyDirVolumeSource{}, Secret: &api.SecretVolumeSource{SecretName: "s"},
				ConfigMap: &api.ConfigMapVolumeSource{LocalObjectReference: api.LocalObjectReference{Name: "c"}}})
		}, base + "volumes[2]", "emptyDir, secret, configMap are all set"},
		{"no volume source", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "c"})
		}, base + "volumes[2]", "hostPath, emptyDir, secret or configMap"},
		{"default mode too large", func(ps *api.PodSpec) {
			m := int32(0o1000)
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "s", Secret: &api.SecretVolumeSource{SecretName: "s", DefaultMode: &m}})
		}, base + "volumes[2].secret.defaultMode", "must be a file mode"},
		{"negative item mode", func(ps *api.PodSpec) {
			m := int32(-1)
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "s", Secret: &api.SecretVolumeSource{SecretName: "s", Items: []api.KeyToPath{{Key: "k", Path: "p", Mode: &m}}}})
		}, base + "volumes[2].secret.items[0].mode", "must be a file mode"},
		{"absolute item path", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "s", Secret: &api.SecretVolumeSource{SecretName: "s", Items: []api.KeyToPath{{Key: "k", Path: "/etc/x"}}}})
		}, base + "volumes[2].secret.items[0].path", "must be a relative path"},
		{"dotdot item path", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "s", Secret: &api.SecretVolumeSource{SecretName: "s", Items: []api.KeyToPath{{Key: "k", Path: "a/../../x"}}}})
		}, base + "volumes[2].secret.items[0].path", "must not contain '..'"},
		{"dotdot prefix item path", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "s", ConfigMap: &api.ConfigMapVolumeSource{LocalObjectReference: api.LocalObjectReference{Name: "c"}, Items: []api.KeyToPath{{Key: "k", Path: "..data"}}}})
		}, base + "volumes[2].configMap.items[0].path", "must not start with '..'"},
		{"duplicate item path", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "s", Secret: &api.SecretVolumeSource{SecretName: "s", Items: []api.KeyToPath{{Key: "a", Path: "x"}, {Key: "b", Path: "./x"}}}})
		}, base + "volumes[2].secret.items[1].path", "duplicate path"},
		{"item without key", func(ps *api.PodSpec) {
			ps.Volumes = append(ps.Volumes, api.Volume{Name: "s", Secret: &api.SecretVolumeSource{SecretName: "s", Items: []api.KeyToPath{{Path: "x"}}}})
		}, base + "volumes[2].secret.items[0].key", "required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := validDaemonSet()
			tc.mutate(&ds.Spec.Template.Spec)
			checkCase(t, ds, tc.field, tc.msg)
		})
	}
}

func TestDefaultSecretIsIdempotent(t *testing.T) {
	s := validSecret()
	s.Data["token"] = []byte("old")
	Default(s, "")
	if string(s.Data["token"]) != "y" || s.StringData != nil || s.Type != api.SecretTypeOpaque {
		t.Fatalf("after Default: %+v", s)
	}
	once, _ := json.Marshal(s)
	Default(s, "")
	twice, _ := json.Marshal(s)
	if !bytes.Equal(once, twice) {
		t.Fatalf("Default twice differs:\n%s\n%s", once, twice)
	}
	// A Secret with stringData only gets a data map.
	s = &api.Secret{ObjectMeta: api.ObjectMeta{Name: "x"}, StringData: map[string]string{"a": "b"}}
	Default(s, "")
	if string(s.Data["a"]) != "b" || s.Namespace != api.DefaultNamespace {
		t.Fatalf("after Default: %+v", s)
	}
}
