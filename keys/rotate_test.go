package keys_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onecommons/commonsid/internal/testdb"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store/sqlstore"
)

func mustKEK(t *testing.T, b byte) *keys.KEK {
	t.Helper()
	k, err := keys.NewKEK(bytes.Repeat([]byte{b}, keys.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestFingerprint(t *testing.T) {
	a, a2, b := mustKEK(t, 1), mustKEK(t, 1), mustKEK(t, 2)
	if a.Fingerprint() != a2.Fingerprint() || a.Fingerprint() == b.Fingerprint() || len(a.Fingerprint()) != 16 {
		t.Fatalf("fingerprints %s %s %s", a.Fingerprint(), a2.Fingerprint(), b.Fingerprint())
	}
	if !a.Equal(a2) || a.Equal(b) {
		t.Fatal("Equal")
	}
}

func TestReseal(t *testing.T) {
	old, next := mustKEK(t, 1), mustKEK(t, 2)
	aad := []byte("commonsid/test/owner")
	sealed, _ := old.Seal([]byte("secret"), aad)
	out, err := keys.Reseal(old, next, sealed, aad)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := next.Open(out, aad); err != nil || string(pt) != "secret" {
		t.Fatalf("new key opens %q, %v", pt, err)
	}
	if _, err := old.Open(out, aad); !errors.Is(err, keys.ErrWrongKEK) {
		t.Fatal("old key opens the re-sealed value")
	}
	if _, err := next.Open(out, []byte("commonsid/test/other")); err == nil {
		t.Fatal("associated data not kept")
	}
	if _, err := keys.Reseal(next, old, sealed, aad); !errors.Is(err, keys.ErrWrongKEK) {
		t.Fatalf("resealing with the wrong source key: %v", err)
	}
}

// The witness seed is derived at first use, stored, and survives a new KEK
// once stored and re-sealed.
func TestWitnessSeedStable(t *testing.T) {
	db, _ := testdb.SQLite(t)
	ctx := context.Background()
	old := mustKEK(t, 1)
	derived, err := old.Derive(keys.WitnessKeyInfo, ed25519.SeedSize)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := old.WitnessSeed(); !bytes.Equal(s, derived) {
		t.Fatal("before loading, the seed is not the derived one")
	}
	// Read-only: nothing stored.
	if err := old.LoadWitnessSeed(ctx, db, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetMeta(ctx, keys.WitnessSeedMeta); err == nil {
		t.Fatal("read-only load stored the seed")
	}
	if err := old.LoadWitnessSeed(ctx, db, true); err != nil {
		t.Fatal(err)
	}
	if s, _ := old.WitnessSeed(); !bytes.Equal(s, derived) {
		t.Fatal("stored seed differs from the derived one: existing clouds would change witness id")
	}
	next := mustKEK(t, 2)
	if err := next.LoadWitnessSeed(ctx, db, true); err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("another KEK opens the stored seed: %v", err)
	}
	if _, err := db.ResealAll(ctx, func(v sqlstore.SealedValue) ([]byte, error) {
		if v.Table == "meta" && v.Owner == keys.WitnessSeedMeta {
			return keys.Reseal(old, next, v.Sealed, keys.WitnessSeedAAD)
		}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := next.LoadWitnessSeed(ctx, db, true); err != nil {
		t.Fatal(err)
	}
	if s, _ := next.WitnessSeed(); !bytes.Equal(s, derived) {
		t.Fatal("witness seed changed with the KEK")
	}
	if d, _ := next.Derive(keys.WitnessKeyInfo, ed25519.SeedSize); bytes.Equal(d, derived) {
		t.Fatal("test is vacuous: both KEKs derive the same seed")
	}
}

func TestKEKFiles(t *testing.T) {
	dir := t.TempDir()
	old, _, err := keys.LoadOrCreateKEKFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	oldBytes, _ := os.ReadFile(filepath.Join(dir, keys.KEKFile))
	if _, err := keys.InstallKEKNewFile(dir, time.Now()); err == nil {
		t.Fatal("installed a kek.new that does not exist")
	}
	if err := keys.WriteKEKNewFile(dir, "not a key"); err == nil {
		t.Fatal("wrote a malformed key")
	}
	s, _ := keys.GenerateKEKString()
	if err := keys.WriteKEKNewFile(dir, s); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, keys.KEKNewFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kek.new: %v %v", fi, err)
	}
	next, err := keys.ReadKEKNewFile(dir)
	if err != nil || next.Equal(old) {
		t.Fatalf("ReadKEKNewFile: %v", err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	kept, err := keys.InstallKEKNewFile(dir, at)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(kept) != "kek.old.20260102T030405.000000006Z" {
		t.Fatalf("kept as %s", kept)
	}
	if b, _ := os.ReadFile(kept); !bytes.Equal(b, oldBytes) {
		t.Fatal("kek.old does not hold the old key")
	}
	if fi, _ := os.Stat(kept); fi.Mode().Perm() != 0o600 {
		t.Fatalf("kek.old mode %v", fi.Mode().Perm())
	}
	cur, created, err := keys.LoadOrCreateKEKFile(dir)
	if err != nil || created || !cur.Equal(next) {
		t.Fatalf("kek after install: created %v, %v", created, err)
	}
	if _, err := os.Stat(filepath.Join(dir, keys.KEKNewFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("kek.new still there")
	}
	// A kek.new others can read is refused.
	keys.WriteKEKNewFile(dir, s)
	os.Chmod(filepath.Join(dir, keys.KEKNewFile), 0o644)
	if _, err := keys.ReadKEKNewFile(dir); err == nil {
		t.Fatal("read a kek.new open to others")
	}
}
