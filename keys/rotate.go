package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// KEKNewFile is the name of the next key-encryption key while a rotation
// is under way: written (and synced) before the database is re-sealed, and
// renamed over KEKFile once the database has committed.
const KEKNewFile = "kek.new"

// KEKOldPrefix starts the name of a replaced key-encryption key file,
// kek.old.<UTC time>: kept until the operator deletes it, as it still opens
// database backups taken before the rotation.
const KEKOldPrefix = "kek.old."

// Fingerprint names the key without revealing it: the first 8 bytes of a
// SHA-256 over a fixed label and the key, in hex.
func (k *KEK) Fingerprint() string {
	h := sha256.New()
	h.Write([]byte("commonsid/kek-fingerprint/v1\x00"))
	h.Write(k.root)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Equal reports whether two KEKs hold the same key.
func (k *KEK) Equal(o *KEK) bool { return o != nil && string(k.root) == string(o.root) }

// Reseal opens a value sealed with from and seals it again with to, under
// the same associated data.
func Reseal(from, to *KEK, sealed, aad []byte) ([]byte, error) {
	pt, err := from.Open(sealed, aad)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return to.Seal(pt, aad)
}

// SigningKeyAAD is the associated data a signing key's private part is
// sealed under.
func SigningKeyAAD(kid string) []byte { return aadSigning(kid) }

// WriteKEKNewFile writes s (a key in the form ParseKEK reads) to
// dir/kek.new with mode 0600 and syncs the file and the folder, so that the
// key survives a crash once the database is re-sealed under it. An earlier
// kek.new is replaced.
func WriteKEKNewFile(dir, s string) error {
	if _, err := ParseKEK(s); err != nil {
		return err
	}
	path := filepath.Join(dir, KEKNewFile)
	tmp, err := os.CreateTemp(dir, ".kek.new-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	fail := func(err error) error {
		tmp.Close()
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := tmp.WriteString(s + "\n"); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(dir)
}

// ReadKEKNewFile reads dir/kek.new; fs.ErrNotExist when there is none.
func ReadKEKNewFile(dir string) (*KEK, error) {
	path := filepath.Join(dir, KEKNewFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	k, err := ParseKEK(string(b))
	if err != nil {
		return nil, fmt.Errorf("key-encryption key file %s is corrupt: %w", path, err)
	}
	return k, nil
}

// InstallKEKNewFile ends a rotation once the database is sealed under
// kek.new: the current kek file is kept as kek.old.<UTC time> (mode 0600)
// and kek.new is renamed over kek, atomically. It returns the name of the
// kept old file ("" when there was no kek file). Running it again after a
// crash part-way is safe.
func InstallKEKNewFile(dir string, now time.Time) (string, error) {
	cur := filepath.Join(dir, KEKFile)
	next := filepath.Join(dir, KEKNewFile)
	if _, err := os.Stat(next); err != nil {
		return "", fmt.Errorf("install the new key-encryption key: %w", err)
	}
	old := ""
	if _, err := os.Stat(cur); err == nil {
		old = filepath.Join(dir, KEKOldPrefix+now.UTC().Format("20060102T150405.000000000Z"))
		if err := copyPrivate(cur, old); err != nil {
			return "", fmt.Errorf("keep the previous key-encryption key as %s: %w", old, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.Rename(next, cur); err != nil {
		return old, fmt.Errorf("install the new key-encryption key: %w", err)
	}
	return old, syncDir(dir)
}

// copyPrivate copies src to the new file dst (mode 0600), synced.
func copyPrivate(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(dst)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(dst)
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
