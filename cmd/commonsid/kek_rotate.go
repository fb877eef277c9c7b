package main

// Rotating the key-encryption key.
//
// keys rotate-kek, with every other process of the cloud stopped (it takes
// the cloud's lock alone):
//
//  1. writes a new random key to <data>/kek.new (0600, synced);
//  2. in one database transaction, opens every value sealed with the
//     current key and seals it again with the new one under the same
//     associated data, and stores the new check value and fingerprint;
//  3. keeps the current kek file as kek.old.<UTC time> (0600) and renames
//     kek.new over kek.
//
// A crash before 2 commits leaves the database sealed under kek (kek.new is
// not needed and the next rotation replaces it). A crash after it leaves
// the database sealed under kek.new: the next start of any command finds
// that kek does not open the check value and kek.new does, and finishes
// step 3 (adoptRotatedKEK). No state loses a key.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store/sqlstore"
)

const rotateKEKUsage = "usage: commonsid keys rotate-kek [--data DIR] [--db DSN]"

// sealedMeta lists the meta values sealed with the key-encryption key and
// the associated data of each. (kek_check is replaced by a new check value.)
var sealedMeta = map[string][]byte{
	globalSecretKey:      globalSecretAAD,
	"demo_client":        demoAAD,
	keys.WitnessSeedMeta: keys.WitnessSeedAAD,
}

// sealedAAD returns the associated data of a sealed value; ok false for a
// meta value that is not sealed.
func sealedAAD(v sqlstore.SealedValue) (aad []byte, ok bool, err error) {
	switch v.Table + "." + v.Column {
	case "accounts.did_key_sealed":
		return identity.DIDKeyAAD(v.Owner), true, nil
	case "accounts.pairwise_secret_sealed":
		return identity.PairwiseAAD(v.Owner), true, nil
	case "signing_keys.private_sealed":
		return keys.SigningKeyAAD(v.Owner), true, nil
	case "mfa_totp.secret_sealed":
		return identity.TOTPAAD(v.Owner), true, nil
	case "meta.value":
		aad, ok := sealedMeta[v.Owner]
		return aad, ok, nil
	}
	return nil, false, fmt.Errorf("no associated data known for %s", v)
}

// resealDB re-seals every sealed value of the database from old to next in
// one transaction and records next's check value and fingerprint. It
// returns how many values were re-sealed per table.
func resealDB(ctx context.Context, db *sqlstore.DB, old, next *keys.KEK) (map[string]int, error) {
	check, err := next.CheckValue()
	if err != nil {
		return nil, err
	}
	var counts map[string]int
	err = db.InTx(ctx, func(ctx context.Context) error {
		var err error
		counts, err = db.ResealAll(ctx, func(v sqlstore.SealedValue) ([]byte, error) {
			if v.Table == "meta" && v.Owner == kekCheckKey {
				if err := old.Verify(v.Sealed); err != nil {
					return nil, err
				}
				return check, nil
			}
			aad, ok, err := sealedAAD(v)
			if err != nil {
				return nil, err
			}
			if !ok {
				if looksSealed(v.Sealed) {
					return nil, errors.New("looks sealed with the key-encryption key, but no associated data is known for it (it would not open after the rotation); nothing was changed")
				}
				return nil, nil
			}
			out, err := keys.Reseal(old, next, v.Sealed, aad)
			if err != nil {
				return nil, fmt.Errorf("does not open with the current key-encryption key (%w); nothing was changed", err)
			}
			return out, nil
		})
		if err != nil {
			return err
		}
		return db.PutMeta(ctx, kekFingerprintKey, []byte(next.Fingerprint()))
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// looksSealed reports a value in the form keys.KEK.Seal makes (version 1,
// nonce, tag): a meta value like that which sealedMeta does not list would
// be left under the old key.
func looksSealed(b []byte) bool { return len(b) >= 1+12+16 && b[0] == 1 }

// rotateKEKHook, when set (tests), runs between the database commit and
// the kek file's replacement; an error stops the rotation there, as a crash
// would.
var rotateKEKHook func() error

func runRotateKEK(ctx context.Context, c *cli, args []string) error {
	cfg := &Config{mustExist: true, exclusive: true}
	fset := flag.NewFlagSet("keys rotate-kek", flag.ContinueOnError)
	cfg.storageFlags(fset, c.env)
	if err := c.parseFlags(fset, interleave(fset, args)); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return usagef("unexpected argument %q; %s", fset.Arg(0), rotateKEKUsage)
	}
	if err := cfg.Validate(false); err != nil {
		return usagef("%v", err)
	}
	if cfg.Secret != "" {
		return errors.New("keys rotate-kek replaces the data folder's kek file, and this cloud's key-encryption key comes from COMMONSID_SECRET: move the key into <data>/kek (mode 0600) and unset COMMONSID_SECRET, rotate, then set COMMONSID_SECRET to the new kek file's contents if you keep it in the environment")
	}
	log := newLogger(cfg, c.stderr)
	cl, err := openCloud(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer cl.Close()
	// The witness seed is stored (openCloud), so the witness id survives.
	next, old, counts, err := rotateKEK(ctx, cl, time.Now())
	if err != nil {
		return err
	}
	var parts []string
	names := make([]string, 0, len(counts))
	for t := range counts {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		parts = append(parts, fmt.Sprintf("%s %d", t, counts[t]))
	}
	if len(parts) == 0 {
		parts = append(parts, "every sealed value")
	}
	fmt.Fprintf(c.stdout, "key-encryption key rotated: %s replaced by %s; re-sealed %s\n", cl.kek.Fingerprint(), next.Fingerprint(), strings.Join(parts, ", "))
	if old != "" {
		fmt.Fprintf(c.stdout, "the previous key is kept in %s (mode 0600): it opens database backups taken before now and nothing else; delete it once those backups are gone or re-taken, and back up the new kek file\n", old)
	}
	return nil
}

// rotateKEK does the rotation on an open cloud that holds the lock alone.
// It returns the new key, the file the old one is kept in and the counts.
func rotateKEK(ctx context.Context, cl *cloud, now time.Time) (*keys.KEK, string, map[string]int, error) {
	dir := cl.cfg.DataDir
	s, err := keys.GenerateKEKString()
	if err != nil {
		return nil, "", nil, err
	}
	next, err := keys.ParseKEK(s)
	if err != nil {
		return nil, "", nil, err
	}
	// The new key is on disk before anything is sealed with it.
	if err := keys.WriteKEKNewFile(dir, s); err != nil {
		return nil, "", nil, err
	}
	counts, err := resealDB(ctx, cl.db, cl.kek, next)
	if err != nil {
		// A failed COMMIT may still have applied: kek.new goes only once
		// the database shows it is sealed under kek.
		check, cerr := cl.db.GetMeta(context.WithoutCancel(ctx), kekCheckKey)
		switch {
		case cerr == nil && cl.kek.Verify(check) == nil:
			os.Remove(filepath.Join(dir, keys.KEKNewFile))
			return nil, "", nil, fmt.Errorf("rotate the key-encryption key: %w", err)
		case cerr == nil && next.Verify(check) == nil:
			// Committed after all: finish.
		default:
			return nil, "", nil, fmt.Errorf("rotate the key-encryption key: %w; whether the database was re-sealed is not known, so %s is kept: the next start of commonsid uses it if the database needs it", err, filepath.Join(dir, keys.KEKNewFile))
		}
	}
	if rotateKEKHook != nil {
		if err := rotateKEKHook(); err != nil {
			return nil, "", nil, err
		}
	}
	old, err := keys.InstallKEKNewFile(dir, now)
	if err != nil {
		return nil, "", nil, fmt.Errorf("the database is re-sealed under the new key in %s, but it could not replace kek (%w): the next start of commonsid finishes this", filepath.Join(dir, keys.KEKNewFile), err)
	}
	return next, old, counts, nil
}

// adoptRotatedKEK is called when the kek file does not open the database's
// check value. When a rotation committed but did not replace the kek file,
// kek.new opens it: the rotation is finished now and the new key returned.
func adoptRotatedKEK(ctx context.Context, cfg *Config, db *sqlstore.DB, log *slog.Logger, check []byte) (*keys.KEK, error) {
	want := ""
	if fp, err := db.GetMeta(ctx, kekFingerprintKey); err == nil {
		want = " (the database is sealed under the key with fingerprint " + string(fp) + ")"
	}
	mismatch := errors.New("the key-encryption key does not match this database" + want + ": restore the data folder's kek file or the COMMONSID_SECRET it was created with")
	if cfg.Secret != "" {
		return nil, mismatch
	}
	next, err := keys.ReadKEKNewFile(cfg.DataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, mismatch
	}
	if err != nil {
		return nil, err
	}
	if next.Verify(check) != nil {
		return nil, mismatch
	}
	old, err := keys.InstallKEKNewFile(cfg.DataDir, time.Now())
	if err != nil {
		// Another process may have finished it first.
		b, rerr := os.ReadFile(filepath.Join(cfg.DataDir, keys.KEKFile))
		if rerr != nil {
			return nil, err
		}
		cur, perr := keys.ParseKEK(string(b))
		if perr != nil || !cur.Equal(next) {
			return nil, err
		}
	}
	log.Warn("finished an interrupted key-encryption key rotation: the database is sealed under kek.new, which is now the kek file", "fingerprint", next.Fingerprint(), "previous_key_kept_in", old)
	return next, nil
}
