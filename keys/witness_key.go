package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/onecommons/commonsid/store"
)

// Derive returns n bytes derived from the key-encryption key with
// HKDF-SHA256 for the purpose named by info. Distinct infos give
// independent keys; the same KEK and info always give the same bytes.
// info must name its purpose and version (e.g. "commonsid/witness-key/v1").
// A derived key changes when the KEK is rotated: a key that must outlive a
// rotation is stored sealed instead (as the witness seed is).
func (k *KEK) Derive(info string, n int) ([]byte, error) {
	if info == "" {
		return nil, errors.New("key derivation needs a purpose (info)")
	}
	return hkdf.Key(sha256.New, k.root, nil, info, n)
}

// WitnessKeyInfo is the HKDF info from which the witness seed was first
// derived.
const WitnessKeyInfo = "commonsid/witness-key/v1"

// WitnessSeedMeta is the meta key under which the witness seed is stored,
// sealed with the KEK (associated data WitnessSeedAAD).
const WitnessSeedMeta = "witness_seed"

// WitnessSeedAAD binds the stored witness seed to its purpose.
var WitnessSeedAAD = []byte("commonsid/witness-seed/v1")

// MetaStore holds cloud-wide values.
type MetaStore interface {
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMetaIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
}

// WitnessSeed returns the Ed25519 seed of the cloud's federation witness
// key: the stored one once LoadWitnessSeed has run, otherwise derived from
// the KEK (which is what LoadWitnessSeed stores at first use, so a cloud
// keeps the witness id it had before the seed was stored).
func (k *KEK) WitnessSeed() ([]byte, error) {
	if k.witness != nil {
		return append([]byte(nil), k.witness...), nil
	}
	return k.Derive(WitnessKeyInfo, ed25519.SeedSize)
}

// LoadWitnessSeed reads the stored witness seed from st and makes this KEK
// use it. When none is stored it derives the seed from the KEK and, with
// write, stores it sealed, so that rotating the KEK later does not change
// the witness id peers know this cloud by. Call it before the KEK is shared
// with other goroutines.
func (k *KEK) LoadWitnessSeed(ctx context.Context, st MetaStore, write bool) error {
	sealed, err := st.GetMeta(ctx, WitnessSeedMeta)
	if errors.Is(err, store.ErrNotFound) {
		if !write {
			return nil // derived, as before the seed was stored
		}
		seed, err := k.Derive(WitnessKeyInfo, ed25519.SeedSize)
		if err != nil {
			return err
		}
		fresh, err := k.Seal(seed, WitnessSeedAAD)
		if err != nil {
			return err
		}
		if sealed, err = st.PutMetaIfAbsent(ctx, WitnessSeedMeta, fresh); err != nil {
			return fmt.Errorf("store the witness seed: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("read the witness seed: %w", err)
	}
	seed, err := k.Open(sealed, WitnessSeedAAD)
	if err != nil {
		return fmt.Errorf("the stored witness seed does not open with this key-encryption key: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return fmt.Errorf("the stored witness seed has %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	k.witness = seed
	return nil
}
