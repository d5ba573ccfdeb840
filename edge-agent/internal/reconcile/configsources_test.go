package reconcile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func testSources() *wire.Snapshot {
	return &wire.Snapshot{
		Secrets: []wire.SnapshotSecret{
			{Namespace: "edge", Name: "db", Data: map[string][]byte{"password": []byte("s3cret"), "user": []byte("app")}},
			{Namespace: "other", Name: "db", Data: map[string][]byte{"password": []byte("theirs")}},
		},
		ConfigMaps: []wire.SnapshotConfigMap{
			{Namespace: "edge", Name: "cfg", Data: map[string]string{"LEVEL": "debug", "MODE": "cm", "bad-name!": "x", "1ST": "y"}},
		},
	}
}

func ref(n string) api.LocalObjectReference { return api.LocalObjectReference{Name: n} }

func TestContainerEnv(t *testing.T) {
	yes := true
	c := &api.Container{
		Name: "app",
		EnvFrom: []api.EnvFromSource{
			{ConfigMapRef: &api.ConfigMapEnvSource{LocalObjectReference: ref("cfg")}},
			{Prefix: "DB_", SecretRef: &api.SecretEnvSource{LocalObjectReference: ref("db")}},
			{SecretRef: &api.SecretEnvSource{LocalObjectReference: ref("absent"), Optional: &yes}},
		},
		Env: []api.EnvVar{
			{Name: "MODE", Value: "literal"}, // replaces the ConfigMap's MODE
			{Name: "PASSWORD", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: ref("db"), Key: "password"}}},
			{Name: "OPT", ValueFrom: &api.EnvVarSource{ConfigMapKeyRef: &api.ConfigMapKeySelector{LocalObjectReference: ref("cfg"), Key: "nope", Optional: &yes}}},
		},
	}
	env, skipped, err := ContainerEnv("edge", c, testSources())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"LEVEL=debug", "MODE=literal", "DB_password=s3cret", "DB_user=app", "PASSWORD=s3cret"}
	if !slices.Equal(env, want) {
		t.Fatalf("env\n%q\nwant\n%q", env, want)
	}
	if !slices.Equal(skipped, []string{"1ST", "bad-name!"}) {
		t.Fatalf("skipped %q", skipped)
	}

	// The namespace decides which Secret is meant.
	env, _, err = ContainerEnv("other", &api.Container{Env: []api.EnvVar{{Name: "P", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: ref("db"), Key: "password"}}}}}, testSources())
	if err != nil || !slices.Equal(env, []string{"P=theirs"}) {
		t.Fatalf("other namespace: %q %v", env, err)
	}

	for name, c := range map[string]*api.Container{
		"missing secret":    {Env: []api.EnvVar{{Name: "P", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: ref("nope"), Key: "k"}}}}},
		"missing key":       {Env: []api.EnvVar{{Name: "P", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: ref("db"), Key: "nope"}}}}},
		"missing configmap": {EnvFrom: []api.EnvFromSource{{ConfigMapRef: &api.ConfigMapEnvSource{LocalObjectReference: ref("nope")}}}},
	} {
		if _, _, err := ContainerEnv("edge", c, testSources()); !errors.Is(err, ErrConfigMissing) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// readVolume lists the files of the current payload and reads each one
// as a container would, through the top-level links.
func readVolume(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	payload := filepath.Join(dir, dataLink)
	err := filepath.Walk(payload+"/", func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(payload, p)
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		st, _ := os.Stat(filepath.Join(dir, rel))
		out[rel] = string(b) + " " + st.Mode().Perm().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteConfigVolume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	data := map[string][]byte{"a": []byte("1"), "b": []byte("2")}
	if err := WriteConfigVolume(dir, data, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, dir); len(got) != 2 || got["a"] != "1 -r--------" || got["b"] != "2 -r--------" {
		t.Fatalf("all keys: %v", got)
	}
	first, _ := os.Readlink(filepath.Join(dir, dataLink))

	// An update with items: only what they list, where they say, and the
	// old payload and links are gone.
	mode := int32(0o640)
	items := []api.KeyToPath{{Key: "b", Path: "conf/b.txt", Mode: &mode}, {Key: "a", Path: "a-copy"}}
	if err := WriteConfigVolume(dir, map[string][]byte{"a": []byte("10"), "b": []byte("20")}, items, 0o644); err != nil {
		t.Fatal(err)
	}
	got := readVolume(t, dir)
	want := map[string]string{"conf/b.txt": "20 -rw-r-----", "a-copy": "10 -rw-r--r--"}
	if len(got) != len(want) || got["conf/b.txt"] != want["conf/b.txt"] || got["a-copy"] != want["a-copy"] {
		t.Fatalf("items: %v", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Fatal("a stale top-level file stayed")
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Fatal("the previous payload stayed")
	}
	if target, _ := os.Readlink(filepath.Join(dir, "conf")); target != filepath.Join(dataLink, "conf") {
		t.Fatalf("conf links to %q", target)
	}

	if err := WriteConfigVolume(dir, data, []api.KeyToPath{{Key: "nope", Path: "x"}}, 0o644); !errors.Is(err, ErrConfigMissing) {
		t.Fatalf("missing key: %v", err)
	}
	for _, p := range []string{"../escape", "/etc/passwd", "a/../../x", "..data", ".", ""} {
		if err := WriteConfigVolume(dir, data, []api.KeyToPath{{Key: "a", Path: p}}, 0o644); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); !os.IsNotExist(err) {
		t.Fatal("a file escaped the volume")
	}
}
