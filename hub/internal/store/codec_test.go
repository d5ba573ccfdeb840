package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/flotilla-edge/flotilla/hub/internal/secrets"
	"github.com/flotilla-edge/flotilla/pkg/api"
)

// With a codec, Secret records reach Badger's files sealed and read back
// in clear; other kinds are untouched.
func TestBadgerSealsSecrets(t *testing.T) {
	dir := t.TempDir()
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, secrets.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenBadger(dir, WithCodec(secrets.NewRecordCodec(box, api.KindSecret)))
	if err != nil {
		t.Fatal(err)
	}
	value := []byte("very-secret-password-4711")
	sec := &api.Secret{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindSecret},
		ObjectMeta: api.ObjectMeta{Name: "db", Namespace: "default"}, Data: map[string][]byte{"password": value}}
	cm := &api.ConfigMap{TypeMeta: api.TypeMeta{APIVersion: "v1", Kind: api.KindConfigMap},
		ObjectMeta: api.ObjectMeta{Name: "plain", Namespace: "default"}, Data: map[string]string{"k": "visible-config-value"}}
	if err := st.Update(func(tx Tx) error {
		if err := tx.Put(sec); err != nil {
			return err
		}
		return tx.Put(cm)
	}); err != nil {
		t.Fatal(err)
	}
	err = st.View(func(tx Tx) error {
		got, err := Get[api.Secret](tx, "default", "db")
		if err != nil {
			return err
		}
		if !bytes.Equal(got.Data["password"], value) {
			t.Errorf("read back %q", got.Data["password"])
		}
		list, err := List[api.Secret](tx, "")
		if err != nil || len(list) != 1 || !bytes.Equal(list[0].Data["password"], value) {
			t.Errorf("list: %v %+v", err, list)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The write-ahead log of the open store holds every entry as written.
	var all []byte
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all = append(all, b...)
	}
	// Base64 is what JSON makes of []byte; look for both forms.
	for _, needle := range [][]byte{value, []byte("dmVyeS1zZWNyZXQtcGFzc3dvcmQtNDcxMQ")} {
		if bytes.Contains(all, needle) {
			t.Fatalf("%q is in clear in the store's files", needle)
		}
	}
	if !bytes.Contains(all, []byte("visible-config-value")) {
		t.Fatal("the ConfigMap is not in the files either: the test reads the wrong files")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Without the key, the record does not open.
	other, _ := secrets.NewBox(bytes.Repeat([]byte{8}, secrets.KeySize))
	st2, err := OpenBadger(dir, WithCodec(secrets.NewRecordCodec(other, api.KindSecret)))
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if err := st2.View(func(tx Tx) error { _, err := tx.Get(KeyOf(sec)); return err }); err == nil {
		t.Fatal("a Secret opened with another key")
	}
}
