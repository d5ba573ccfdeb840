package dispatch

import (
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/store"
	"github.com/flotilla-edge/flotilla/pkg/api"
	"github.com/flotilla-edge/flotilla/pkg/wire"
)

func put(t *testing.T, st store.Store, obj api.Object) {
	t.Helper()
	if err := st.Update(func(tx store.Tx) error { return tx.Put(obj) }); err != nil {
		t.Fatal(err)
	}
}

// A node's snapshot carries the Secrets and ConfigMaps its pods use and
// no others; changing a used Secret gives that node, and only it, a new
// revision.
func TestSnapshotCarriesOnlyUsedConfig(t *testing.T) {
	st := store.NewMemory()
	pub := &fakePublisher{}
	_, stop := start(t, st, pub)
	defer stop()
	secret := func(name, v string) *api.Secret {
		return &api.Secret{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindSecret},
			ObjectMeta: api.ObjectMeta{Name: name, Namespace: "default"}, Data: map[string][]byte{"k": []byte(v)}}
	}
	put(t, st, secret("used", "one"))
	put(t, st, secret("unused", "x"))
	put(t, st, &api.ConfigMap{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindConfigMap},
		ObjectMeta: api.ObjectMeta{Name: "cm", Namespace: "default"}, Data: map[string]string{"a": "b"}})
	put(t, st, &api.Pod{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindPod},
		ObjectMeta: api.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-p"},
		Spec: api.PodSpec{NodeName: "n1", Containers: []api.Container{{Name: "c", Image: "i",
			Env:     []api.EnvVar{{Name: "X", ValueFrom: &api.EnvVarSource{SecretKeyRef: &api.SecretKeySelector{LocalObjectReference: api.LocalObjectReference{Name: "used"}, Key: "k"}}}},
			EnvFrom: []api.EnvFromSource{{ConfigMapRef: &api.ConfigMapEnvSource{LocalObjectReference: api.LocalObjectReference{Name: "cm"}}}},
		}}},
	})
	putPod(t, st, "q", "n2", "i", false)

	var n1, n2 *wire.Snapshot
	waitFor(t, "both snapshots", func() bool {
		for _, m := range pub.take() {
			s := m.snap
			switch s.Node {
			case "n1":
				n1 = &s
			case "n2":
				n2 = &s
			}
		}
		return n1 != nil && n2 != nil
	})
	if len(n1.Secrets) != 1 || n1.Secrets[0].Name != "used" || string(n1.Secrets[0].Data["k"]) != "one" {
		t.Fatalf("n1 secrets: %+v", n1.Secrets)
	}
	if len(n1.ConfigMaps) != 1 || n1.ConfigMaps[0].Name != "cm" {
		t.Fatalf("n1 configmaps: %+v", n1.ConfigMaps)
	}
	if len(n2.Secrets) != 0 || len(n2.ConfigMaps) != 0 {
		t.Fatalf("n2 got config it does not use: %+v %+v", n2.Secrets, n2.ConfigMaps)
	}

	put(t, st, secret("used", "two"))
	var next *wire.Snapshot
	waitFor(t, "n1's next snapshot", func() bool {
		for _, m := range pub.take() {
			if m.snap.Node == "n2" {
				t.Fatalf("n2 got a new snapshot for a secret it does not use")
			}
			s := m.snap
			next = &s
		}
		return next != nil
	})
	if next.Revision != n1.Revision+1 || string(next.Secrets[0].Data["k"]) != "two" {
		t.Fatalf("after the secret changed: revision %d (was %d), secrets %+v", next.Revision, n1.Revision, next.Secrets)
	}
}
