package wire

import (
	"slices"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func TestPodConfigRefs(t *testing.T) {
	ref := func(n string) api.LocalObjectReference { return api.LocalObjectReference{Name: n} }
	spec := &api.PodSpec{
		Containers: []api.Container{{
			Name: "a",
			Env: []api.EnvVar{
				{Name: "PLAIN", Value: "x"},
				{Name: "K", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: ref("db"), Key: "k"}}},
				{Name: "C", ValueFrom: &api.EnvVarSource{ConfigMapKeyRef: &api.ConfigMapKeySelector{LocalObjectReference: ref("cfg"), Key: "k"}}},
			},
			EnvFrom: []api.EnvFromSource{{SecretRef: &api.SecretEnvSource{LocalObjectReference: ref("api")}}},
		}, {
			Name:    "b",
			EnvFrom: []api.EnvFromSource{{ConfigMapRef: &api.ConfigMapEnvSource{LocalObjectReference: ref("cfg")}}, {SecretRef: &api.SecretEnvSource{LocalObjectReference: ref("db")}}},
		}},
		Volumes: []api.Volume{
			{Name: "v1", Secret: &api.SecretVolumeSource{SecretName: "tls"}},
			{Name: "v2", ConfigMap: &api.ConfigMapVolumeSource{LocalObjectReference: ref("files")}},
			{Name: "v3", EmptyDir: &api.EmptyDirVolumeSource{}},
		},
	}
	secrets, cms := PodConfigRefs(spec)
	if !slices.Equal(secrets, []string{"api", "db", "tls"}) || !slices.Equal(cms, []string{"cfg", "files"}) {
		t.Fatalf("secrets %v, configMaps %v", secrets, cms)
	}
	if s, c := PodConfigRefs(&api.PodSpec{Containers: []api.Container{{Name: "x"}}}); s != nil || c != nil {
		t.Fatalf("a pod without references: %v %v", s, c)
	}
}

func TestSnapshotLookups(t *testing.T) {
	s := &Snapshot{
		Secrets:    []SnapshotSecret{{Namespace: "a", Name: "db", Data: map[string][]byte{"k": []byte("v")}}},
		ConfigMaps: []SnapshotConfigMap{{Namespace: "a", Name: "cfg", Data: map[string]string{"x": "1"}, BinaryData: map[string][]byte{"b": {0}}}},
	}
	if d, ok := s.Secret("a", "db"); !ok || string(d["k"]) != "v" {
		t.Fatal("Secret")
	}
	if _, ok := s.Secret("b", "db"); ok {
		t.Fatal("a Secret of another namespace was found")
	}
	if d, ok := s.ConfigMap("a", "cfg"); !ok || string(d["x"]) != "1" || len(d["b"]) != 1 {
		t.Fatalf("ConfigMap %v", d)
	}
	if _, ok := s.ConfigMap("a", "nope"); ok {
		t.Fatal("a missing ConfigMap was found")
	}
}
