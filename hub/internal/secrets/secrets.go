// Package secrets encrypts the hub's Secrets at rest: AES-256-GCM with a
// key kept in a file of the data directory, so that a copy of the store
// (a backup, a stolen disk image without the key file) does not give the
// fleet's passwords away. The store seals the value of every Secret
// record before it reaches Badger and opens it after reading.
package secrets

// Sealed format (every integer big-endian, no padding):
//
//	"FSE1"        4 bytes, magic and version
//	key id        4 bytes, the first 4 bytes of SHA-256("flotilla secrets
//	              key id\x00" ‖ key)
//	nonce         12 bytes, random per seal
//	ciphertext    AES-256-GCM of the plaintext, with its 16-byte tag
//
// The GCM additional data is the first 8 bytes (magic and key id) followed
// by the caller's additional data: the store passes the record's key, so
// a sealed value moved to another key (one Secret's ciphertext under
// another's name) does not open. A value that does not start with the
// magic is not sealed (a record written before encryption was on); JSON
// objects start with '{', so the two never mix up.
//
// Key file: the 32-byte key in standard base64 and a newline, mode 0600.
// Keep a copy apart from the store's backups: without it the Secrets in a
// backup are lost, with it they are not secret.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeySize is the size of a key: AES-256.
const KeySize = 32

const (
	magic     = "FSE1"
	idSize    = 4
	nonceSize = 12
	headSize  = len(magic) + idSize + nonceSize
	tagSize   = 16
)

// Errors.
var (
	// ErrNotSealed: the value is not in the sealed format.
	ErrNotSealed = errors.New("value is not sealed")
	// ErrUnknownKey: the value was sealed with a key the Box does not hold.
	ErrUnknownKey = errors.New("value was sealed with an unknown key")
	// ErrDecrypt: the value does not open: damaged, tampered with, or
	// moved from another record.
	ErrDecrypt = errors.New("sealed value does not decrypt")
	// ErrInsecureKeyFile: the key file is accessible to other users.
	ErrInsecureKeyFile = errors.New("key file is accessible to other users")
)

// IsSealed reports whether b is in the sealed format.
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, []byte(magic)) }

// Box seals with one key and opens with it or any of the previous keys it
// was given, so that the key can be rotated: records sealed with an old
// key open until they are written again.
type Box struct {
	primary keyAEAD
	keys    map[[idSize]byte]cipher.AEAD
}

type keyAEAD struct {
	id   [idSize]byte
	aead cipher.AEAD
}

// NewBox returns a Box that seals with key and opens with key or any of
// previous.
func NewBox(key []byte, previous ...[]byte) (*Box, error) {
	b := &Box{keys: map[[idSize]byte]cipher.AEAD{}}
	for i, k := range append([][]byte{key}, previous...) {
		ka, err := newKeyAEAD(k)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			b.primary = ka
		}
		if _, dup := b.keys[ka.id]; !dup {
			b.keys[ka.id] = ka.aead
		}
	}
	return b, nil
}

func newKeyAEAD(key []byte) (keyAEAD, error) {
	if len(key) != KeySize {
		return keyAEAD{}, fmt.Errorf("secrets key: %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return keyAEAD{}, fmt.Errorf("secrets key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return keyAEAD{}, fmt.Errorf("secrets key: %w", err)
	}
	return keyAEAD{id: KeyID(key), aead: aead}, nil
}

// KeyID identifies a key without revealing it.
func KeyID(key []byte) [idSize]byte {
	h := sha256.New()
	h.Write([]byte("flotilla secrets key id\x00"))
	h.Write(key)
	var id [idSize]byte
	copy(id[:], h.Sum(nil))
	return id
}

// Seal encrypts plaintext, bound to ad (the record's key).
func (b *Box) Seal(plaintext, ad []byte) ([]byte, error) {
	out := make([]byte, headSize, headSize+len(plaintext)+tagSize)
	copy(out, magic)
	copy(out[len(magic):], b.primary.id[:])
	if _, err := rand.Read(out[len(magic)+idSize : headSize]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	nonce := out[len(magic)+idSize : headSize]
	return b.primary.aead.Seal(out, nonce, plaintext, additional(out[:len(magic)+idSize], ad)), nil
}

// Open decrypts a sealed value, which must have been sealed with the same
// ad.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, ErrNotSealed
	}
	if len(sealed) < headSize+tagSize {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrDecrypt, len(sealed))
	}
	var id [idSize]byte
	copy(id[:], sealed[len(magic):])
	aead, ok := b.keys[id]
	if !ok {
		return nil, fmt.Errorf("%w (key id %x)", ErrUnknownKey, id)
	}
	nonce := sealed[len(magic)+idSize : headSize]
	plain, err := aead.Open(nil, nonce, sealed[headSize:], additional(sealed[:len(magic)+idSize], ad))
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

func additional(head, ad []byte) []byte {
	return append(append(make([]byte, 0, len(head)+len(ad)), head...), ad...)
}

// LoadOrCreateKey reads the key at path, or creates one (0600, never
// replacing one that appeared meanwhile) if there is none.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	// Written whole to a temporary file, then linked into place: link
	// fails if the name exists, so of hubs starting at once one key wins
	// and no one reads a half-written file.
	f, err := os.CreateTemp(filepath.Dir(path), ".secrets-key-*")
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path)
	}
	if errors.Is(err, fs.ErrExist) {
		return readKey(path) // another process made it first
	}
	if err != nil {
		return nil, fmt.Errorf("secrets key %s: %w", path, err)
	}
	return key, nil
}

func readKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s (mode %04o): %w; chmod 600 it", path, fi.Mode().Perm(), ErrInsecureKeyFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("secrets key %s: not %d bytes in base64", path, KeySize)
	}
	return key, nil
}
