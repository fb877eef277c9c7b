package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
)

// Derive returns n bytes derived from the key-encryption key with
// HKDF-SHA256 for the purpose named by info. Distinct infos give
// independent keys; the same KEK and info always give the same bytes, so a
// key derived this way is never stored. info must name its purpose and
// version (e.g. "commonsid/witness-key/v1").
func (k *KEK) Derive(info string, n int) ([]byte, error) {
	if info == "" {
		return nil, errors.New("key derivation needs a purpose (info)")
	}
	return hkdf.Key(sha256.New, k.root, nil, info, n)
}
