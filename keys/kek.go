package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KEKSize is the size of the key-encryption key: AES-256.
const KEKSize = 32

// KEKFile is the name of the key-encryption key file in the data folder.
const KEKFile = "kek"

const sealVersion = 1

// ErrWrongKEK reports a sealed value that the KEK cannot open: the key is not
// the one it was sealed with, or the value was altered.
var ErrWrongKEK = errors.New("cannot decrypt: wrong key-encryption key or corrupted value")

// KEK seals secrets with AES-256-GCM.
type KEK struct {
	aead cipher.AEAD
	root []byte // for Derive
	// witness is the stored witness seed (witness_key.go), once loaded;
	// nil: derived from root.
	witness []byte
}

// NewKEK returns a KEK for a 32-byte key.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("key-encryption key must be %d bytes, got %d", KEKSize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &KEK{aead: aead, root: append([]byte(nil), key...)}, nil
}

// ParseKEK decodes a base64 (standard or URL alphabet, padded or not)
// 32-byte key, as given in COMMONSID_SECRET or the kek file.
func ParseKEK(s string) (*KEK, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return NewKEK(b)
		}
	}
	return nil, fmt.Errorf("key-encryption key is not base64 (make one with: head -c32 /dev/urandom | base64)")
}

// GenerateKEKString returns a new random key in the form ParseKEK reads.
func GenerateKEKString() (string, error) {
	b := make([]byte, KEKSize)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// LoadOrCreateKEKFile reads dir/kek, creating it (mode 0600) with a new random
// key when it does not exist. created reports whether it was made now.
func LoadOrCreateKEKFile(dir string) (k *KEK, created bool, err error) {
	path := filepath.Join(dir, KEKFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if fi, serr := os.Stat(path); serr == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("key-encryption key file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
		}
		k, err := ParseKEK(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("key-encryption key file %s is corrupt: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read key-encryption key: %w", err)
	}
	s, err := GenerateKEKString()
	if err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) { // another process made it first
			return LoadOrCreateKEKFile(dir)
		}
		return nil, false, fmt.Errorf("create key-encryption key: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("write key-encryption key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("write key-encryption key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("write key-encryption key: %w", err)
	}
	k, err = ParseKEK(s)
	return k, true, err
}

// Seal encrypts plaintext bound to aad. Output: version byte, nonce, ciphertext.
func (k *KEK) Seal(plaintext, aad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return k.aead.Seal(out, out[1:1+ns], plaintext, aad), nil
}

// Open decrypts a value made by Seal with the same aad.
func (k *KEK) Open(sealed, aad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrWrongKEK
	}
	pt, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad)
	if err != nil {
		return nil, ErrWrongKEK
	}
	return pt, nil
}

var checkAAD = []byte("commonsid/kek-check")

const checkPlain = "commonsid key-encryption key check v1"

// CheckValue returns a sealed constant that Verify later recognises; the
// store keeps it so that a wrong key is caught at start-up, before anything
// is written with it.
func (k *KEK) CheckValue() ([]byte, error) { return k.Seal([]byte(checkPlain), checkAAD) }

// Verify reports whether check was made by CheckValue with this key.
func (k *KEK) Verify(check []byte) error {
	pt, err := k.Open(check, checkAAD)
	if err != nil || string(pt) != checkPlain {
		return ErrWrongKEK
	}
	return nil
}
