package secrets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/flotilla-edge/flotilla/pkg/api"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newBox(t *testing.T, key []byte, previous ...[]byte) *Box {
	t.Helper()
	b, err := NewBox(key, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secretJSON is a Secret as the store would hold it: its data appears in
// base64, so both forms of the value are looked for.
func secretJSON(t *testing.T, value string) []byte {
	t.Helper()
	b, err := json.Marshal(&api.Secret{
		TypeMeta:   api.TypeMeta{APIVersion: "v1", Kind: api.KindSecret},
		ObjectMeta: api.ObjectMeta{Name: "db", Namespace: "edge"},
		Data:       map[string][]byte{"password": []byte(value)},
		Type:       api.SecretTypeOpaque,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func leaks(sealed []byte, value string) bool {
	return bytes.Contains(sealed, []byte(value)) ||
		bytes.Contains(sealed, []byte(base64.StdEncoding.EncodeToString([]byte(value))))
}

func TestSealOpen(t *testing.T) {
	box := newBox(t, newKey(t))
	const value = "correct-horse-battery-staple"
	plain := secretJSON(t, value)
	ad := []byte("o/Secret/edge/db")
	sealed, err := box.Seal(plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealed(sealed) || IsSealed(plain) {
		t.Fatal("IsSealed")
	}
	if leaks(sealed, value) || bytes.Contains(sealed, []byte("password")) || bytes.Contains(sealed, []byte("edge")) {
		t.Fatalf("the sealed value shows the plaintext: %q", sealed)
	}
	if len(sealed) != len(plain)+headSize+tagSize {
		t.Fatalf("sealed %d bytes for %d", len(sealed), len(plain))
	}
	got, err := box.Open(sealed, ad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Random nonces: the same value seals differently every time.
	again, _ := box.Seal(plain, ad)
	if bytes.Equal(again, sealed) || bytes.Equal(again[8:20], sealed[8:20]) {
		t.Fatal("two seals of one value are the same")
	}

	for name, tc := range map[string]struct {
		b    []byte
		ad   []byte
		want error
	}{
		"moved to another record": {sealed, []byte("o/Secret/edge/other"), ErrDecrypt},
		"no additional data":      {sealed, nil, ErrDecrypt},
		"flipped ciphertext bit":  {flip(sealed, headSize+3), ad, ErrDecrypt},
		"flipped tag bit":         {flip(sealed, len(sealed)-1), ad, ErrDecrypt},
		"flipped nonce bit":       {flip(sealed, 9), ad, ErrDecrypt},
		"truncated":               {sealed[:headSize+tagSize-1], ad, ErrDecrypt},
		"other key id":            {flip(sealed, 5), ad, ErrUnknownKey},
		"plaintext":               {plain, ad, ErrNotSealed},
		"empty":                   {nil, ad, ErrNotSealed},
	} {
		if _, err := box.Open(tc.b, tc.ad); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := newBox(t, newKey(t)).Open(sealed, ad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("another key: %v", err)
	}
	if _, err := NewBox(make([]byte, 16)); err == nil {
		t.Error("a 128-bit key was accepted")
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

func TestKeyRotation(t *testing.T) {
	old, next := newKey(t), newKey(t)
	sealedOld, _ := newBox(t, old).Seal([]byte("v1"), nil)
	rotated := newBox(t, next, old)
	if got, err := rotated.Open(sealedOld, nil); err != nil || string(got) != "v1" {
		t.Fatalf("old value after rotation: %q %v", got, err)
	}
	sealedNew, _ := rotated.Seal([]byte("v2"), nil)
	if id := KeyID(next); !bytes.Equal(sealedNew[4:8], id[:]) {
		t.Fatal("the rotated box does not seal with the new key")
	}
	if _, err := newBox(t, old).Open(sealedNew, nil); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new value with the old key only: %v", err)
	}
}

func TestRecordCodec(t *testing.T) {
	c := NewRecordCodec(newBox(t, newKey(t)), api.KindSecret)
	key := []byte("o/Secret/edge/db")
	plain := secretJSON(t, "s3cr3t-value")
	stored, err := c.Seal(api.KindSecret, key, plain)
	if err != nil || !IsSealed(stored) || leaks(stored, "s3cr3t-value") {
		t.Fatalf("Seal: %q %v", stored, err)
	}
	if got, err := c.Open(api.KindSecret, key, stored); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open: %v", err)
	}
	// Other kinds pass through; so does a Secret written before sealing.
	cm := []byte(`{"kind":"ConfigMap"}`)
	if got, _ := c.Seal(api.KindConfigMap, key, cm); !bytes.Equal(got, cm) {
		t.Fatal("a ConfigMap was sealed")
	}
	if got, err := c.Open(api.KindSecret, key, plain); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("legacy plaintext Secret: %v", err)
	}
	if _, err := c.Open(api.KindSecret, []byte("o/Secret/edge/other"), stored); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("sealed Secret under another key: %v", err)
	}
	if !c.Seals(api.KindSecret) || c.Seals(api.KindPod) {
		t.Fatal("Seals")
	}
}

// TestBadgerFilesHoldNoPlaintext writes sealed Secrets through Badger, as
// the store will, and reads every file Badger left on disk: the values are
// not there. The same check on plaintext values finds them, so the check
// works. Compression is off, so that it cannot hide anything.
func TestBadgerFilesHoldNoPlaintext(t *testing.T) {
	c := NewRecordCodec(newBox(t, newKey(t)), api.KindSecret)
	write := func(dir string, seal bool) []string {
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).WithCompression(options.None))
		if err != nil {
			t.Fatal(err)
		}
		var values []string
		err = db.Update(func(txn *badger.Txn) error {
			for i := range 50 {
				v := "value-" + strings.Repeat(string(rune('a'+i%26)), 20) + "-" + string(rune('A'+i%26))
				values = append(values, v)
				key := []byte("o/Secret/edge/s" + string(rune('a'+i%26)) + string(rune('0'+i/26)))
				val := secretJSON(t, v)
				if seal {
					if val, err = c.Seal(api.KindSecret, key, val); err != nil {
						return err
					}
				}
				if err := txn.Set(key, val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return values
	}
	found := func(dir string, values []string) int {
		n := 0
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := os.ReadFile(path)
			for _, v := range values {
				if leaks(b, v) {
					n++
				}
			}
			return nil
		})
		return n
	}
	sealedDir, plainDir := t.TempDir(), t.TempDir()
	if n := found(sealedDir, write(sealedDir, true)); n != 0 {
		t.Fatalf("%d plaintext values in Badger's files", n)
	}
	if n := found(plainDir, write(plainDir, false)); n == 0 {
		t.Fatal("the check finds nothing even in plaintext files")
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub", "secrets.key")
	key, err := LoadOrCreateKey(path)
	if err != nil || len(key) != KeySize {
		t.Fatalf("create: %v", err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o", fi.Mode().Perm())
	}
	again, err := LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("reload: %v", err)
	}
	_ = os.Chmod(path, 0o644)
	if _, err := LoadOrCreateKey(path); !errors.Is(err, ErrInsecureKeyFile) {
		t.Fatalf("world-readable key: %v", err)
	}
	_ = os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600)
	_ = os.Chmod(path, 0o600)
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("a short key was accepted")
	}

	// Hubs starting at once agree on one key.
	path = filepath.Join(t.TempDir(), "secrets.key")
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], _ = LoadOrCreateKey(path)
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if !bytes.Equal(k, keys[0]) || k == nil {
			t.Fatal("concurrent creators got different keys")
		}
	}
}
