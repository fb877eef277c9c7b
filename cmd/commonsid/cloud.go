package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/onecommons/commonsid/identity"
	"github.com/onecommons/commonsid/keys"
	"github.com/onecommons/commonsid/store"
	"github.com/onecommons/commonsid/store/sqlstore"
)

// cloud is the opened state every command works on.
type cloud struct {
	cfg      *Config
	log      *slog.Logger
	db       *sqlstore.DB
	kek      *keys.KEK
	keys     *keys.Manager
	accounts *identity.Service
	// issuerKnown is set when the issuer is recorded in the database or
	// was given: commands that tell others who this cloud is (export,
	// import, peer add) need it.
	issuerKnown bool
	// unlock gives back the cloud's lock (sqlstore.DB.LockCloud).
	unlock func()
}

func (cl *cloud) Close() error {
	err := cl.db.Close()
	if cl.unlock != nil {
		cl.unlock()
	}
	return err
}

const kekCheckKey = "kek_check"

// kekFingerprintKey is the meta key of the fingerprint of the
// key-encryption key the database is sealed under (keys.KEK.Fingerprint),
// so that a mismatch says which key is needed.
const kekFingerprintKey = "kek_fingerprint"

// openCloud validates the configuration, prepares the data folder, loads the
// key-encryption key, opens and migrates the database and checks that the
// key belongs to it. On any error nothing is left changed.
func openCloud(ctx context.Context, cfg *Config, log *slog.Logger, migrate bool) (*cloud, error) {
	// A read-only command leaves no trace where it found no cloud: not
	// even the data folder it would have made.
	dirMade := false
	if cfg.mustExist {
		if err := cloudExists(cfg); err != nil {
			return nil, err
		}
		if _, err := os.Stat(cfg.DataDir); os.IsNotExist(err) {
			dirMade = cfg.needsDataDir()
		}
	}
	if cfg.needsDataDir() {
		if err := prepareDataDir(cfg.DataDir, log); err != nil {
			return nil, err
		}
	}
	var (
		kek        *keys.KEK
		kekCreated bool
		err        error
	)
	if cfg.Secret != "" {
		if kek, err = keys.ParseKEK(cfg.Secret); err != nil {
			return nil, fmt.Errorf("COMMONSID_SECRET: %w", err)
		}
	} else if kek, kekCreated, err = keys.LoadOrCreateKEKFile(cfg.DataDir); err != nil {
		return nil, err
	}
	undoKEK := func() {
		if kekCreated {
			os.Remove(filepath.Join(cfg.DataDir, keys.KEKFile))
		}
		if dirMade {
			os.Remove(cfg.DataDir) // only if empty
		}
	}
	db, err := sqlstore.Open(ctx, cfg.DSN())
	if err != nil {
		undoKEK()
		return nil, err
	}
	// Every process holds the cloud's lock while it runs, shared; keys
	// rotate-kek holds it alone.
	unlock, err := db.LockCloud(ctx, cfg.exclusive)
	if err != nil {
		db.Close()
		undoKEK()
		if errors.Is(err, sqlstore.ErrLocked) {
			if cfg.exclusive {
				return nil, fmt.Errorf("this cloud is in use (%s is open in another commonsid process, serve or a command): stop every serve of this cloud and let running commands finish, then run keys rotate-kek again", db.String())
			}
			return nil, fmt.Errorf("the key-encryption key of this cloud is being rotated (keys rotate-kek is running on %s): try again once it has finished", db.String())
		}
		return nil, err
	}
	fail := func(err error) (*cloud, error) {
		db.Close()
		unlock()
		undoKEK()
		return nil, err
	}
	// Check the key before anything is written with it. A database that
	// is not migrated yet has no check value.
	if check, err := db.GetMeta(ctx, kekCheckKey); err == nil {
		if kek.Verify(check) != nil {
			if kek, err = adoptRotatedKEK(ctx, cfg, db, log, check); err != nil {
				return fail(err)
			}
		} else if cfg.Secret == "" {
			if _, err := os.Stat(filepath.Join(cfg.DataDir, keys.KEKNewFile)); err == nil {
				log.Warn("the data folder holds a kek.new from a key-encryption key rotation that did not complete; the database is sealed under kek, so kek.new is not needed (the next keys rotate-kek replaces it)", "path", filepath.Join(cfg.DataDir, keys.KEKNewFile))
			}
		}
	}
	if cfg.mustExist {
		if _, err := db.GetMeta(ctx, kekCheckKey); err != nil {
			return fail(fmt.Errorf("no cloud in database %s (looked for its tables and found none): give the --db or --data of an existing cloud", db.String()))
		}
	}
	if migrate {
		applied, err := db.Migrate(ctx)
		if err != nil {
			return fail(err)
		}
		for _, m := range applied {
			log.Info("migration applied", "version", m.Version, "name", m.Name, "db", db.String())
		}
		check, err := kek.CheckValue()
		if err != nil {
			return fail(err)
		}
		stored, err := db.PutMetaIfAbsent(ctx, kekCheckKey, check)
		if err != nil {
			return fail(err)
		}
		if kek.Verify(stored) != nil {
			return fail(errors.New("the key-encryption key does not match this database"))
		}
		if _, err := db.PutMetaIfAbsent(ctx, kekFingerprintKey, []byte(kek.Fingerprint())); err != nil {
			return fail(err)
		}
	}
	// The witness key outlives key-encryption key rotations: its seed is
	// stored sealed at first use.
	if err := kek.LoadWitnessSeed(ctx, db, migrate); err != nil && migrate {
		return fail(err)
	}
	known, err := resolveIssuer(ctx, cfg, db, log, migrate)
	if err != nil {
		return fail(err)
	}
	km := &keys.Manager{Store: db, KEK: kek}
	accounts := identity.NewService(db, kek, cfg.Issuer)
	accounts.Log = log
	cl := &cloud{
		cfg: cfg, log: log, db: db, kek: kek, keys: km,
		accounts: accounts, issuerKnown: known, unlock: unlock,
	}
	if err := cl.useAccountDID(); err != nil {
		return fail(err)
	}
	return cl, nil
}

// cloudExists reports a data folder without a SQLite database, before
// anything is created there. (A PostgreSQL database without a cloud is
// found once it is opened.)
func cloudExists(cfg *Config) error {
	dialect, path, err := sqlstore.ParseDSN(cfg.DSN())
	if err != nil {
		return err
	}
	if dialect == sqlstore.SQLite {
		// Only an absent file means "no cloud"; a folder that cannot be
		// read or made is reported as such by the ordinary checks.
		if _, err := os.Stat(path); os.IsNotExist(err) {
			return fmt.Errorf("no cloud in data folder %s: there is no database %s (give the --data or --db of an existing cloud; serve creates one)", cfg.DataDir, path)
		}
	}
	return nil
}

// issuerKey is the meta key of the issuer the cloud is known by.
const issuerKey = "issuer"

// resolveIssuer settles cfg.Issuer against the one recorded in the
// database and reports whether the issuer is known (recorded or given).
//
//   - Recorded and not given: the recorded one is used.
//   - Recorded and given differently: refused, except by `serve` when
//     nothing depends on the recorded name (no accounts homed here, no
//     peers, no live tokens) or with --change-issuer; the accounts homed
//     under the old name move to the new one.
//   - Not recorded: `serve`, or any command given an issuer, records it.
//     Accounts the command line made before then were homed under the
//     default name; they are this cloud's, so they move to the recorded
//     issuer. Commands without an issuer keep the default provisionally
//     and record nothing.
//
// With write false (migrate status) nothing is recorded.
func resolveIssuer(ctx context.Context, cfg *Config, db *sqlstore.DB, log *slog.Logger, write bool) (bool, error) {
	raw, err := db.GetMeta(ctx, issuerKey)
	if err != nil && !isNotFound(err) {
		if write {
			return false, err
		}
		raw = nil // not migrated yet: no meta table
	}
	recorded := string(raw)
	now := time.Now().UTC()
	switch {
	case recorded == "":
		if !write || (!cfg.serving && !cfg.issuerGiven) {
			return cfg.issuerGiven, nil
		}
		var adopted int64
		err := db.InTx(ctx, func(ctx context.Context) error {
			stored, err := db.PutMetaIfAbsent(ctx, issuerKey, []byte(cfg.Issuer))
			if err != nil {
				return err
			}
			if string(stored) != cfg.Issuer {
				return fmt.Errorf("this cloud's issuer was just recorded as %s by another process; --issuer %s contradicts it", stored, cfg.Issuer)
			}
			if cfg.Issuer != defaultIssuer {
				adopted, err = db.RehomeAccounts(ctx, defaultIssuer, cfg.Issuer, true, now)
			}
			return err
		})
		if err != nil {
			return false, fmt.Errorf("record the issuer: %w", err)
		}
		log.Info("issuer recorded", "issuer", cfg.Issuer, "accounts_adopted", adopted)
		return true, nil
	case !cfg.issuerGiven || cfg.Issuer == recorded:
		cfg.Issuer = recorded
		return true, nil
	case !cfg.serving:
		return false, fmt.Errorf("this cloud's issuer is %s (recorded by serve) but --issuer or COMMONSID_ISSUER says %s: leave it out to use the recorded one; to rename the cloud run serve --issuer %s --change-issuer", recorded, cfg.Issuer, cfg.Issuer)
	}
	use, err := db.IssuerUse(ctx, recorded, now)
	if err != nil {
		return false, err
	}
	if use.Any() && !cfg.ChangeIssuer {
		return false, fmt.Errorf("this cloud's issuer is %s (recorded) and --issuer says %s: renaming it would break %s; use the recorded issuer, or pass --change-issuer to rename the cloud anyway", recorded, cfg.Issuer, renameBreaks(use))
	}
	var moved int64
	err = db.InTx(ctx, func(ctx context.Context) error {
		if err := db.PutMeta(ctx, issuerKey, []byte(cfg.Issuer)); err != nil {
			return err
		}
		var err error
		moved, err = db.RehomeAccounts(ctx, recorded, cfg.Issuer, false, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("rename the cloud: %w", err)
	}
	log.Warn("cloud renamed", "from", recorded, "to", cfg.Issuer, "accounts_rehomed", moved, "peers", use.Peers, "live_tokens", use.Tokens)
	return true, nil
}

// renameBreaks says what renaming a cloud breaks.
func renameBreaks(u sqlstore.IssuerUse) string {
	var parts []string
	if u.Accounts > 0 {
		parts = append(parts, fmt.Sprintf("%d accounts homed here (their services and peers know them under the old name; exports and move statements name it)", u.Accounts))
	}
	if u.Peers > 0 {
		parts = append(parts, fmt.Sprintf("%d peers (they pinned this cloud under the old name and did:web, and would have to remove and add it again)", u.Peers))
	}
	if u.Tokens > 0 {
		parts = append(parts, fmt.Sprintf("%d live codes and tokens (their issuer no longer matches, so services reject them and people sign in again)", u.Tokens))
	}
	return strings.Join(parts, ", ")
}

// needIssuer refuses a command that tells others who this cloud is while
// its issuer is neither recorded nor given.
func (cl *cloud) needIssuer(what string) error {
	if cl.issuerKnown {
		return nil
	}
	return fmt.Errorf("%s needs this cloud's issuer, and none is recorded yet (serve records it at its first start): run serve once, or pass --issuer URL (or COMMONSID_ISSUER), the URL people and peers reach this cloud at", what)
}

// prepareDataDir creates the data folder (mode 0700) and checks that it can
// be written. The folder holds the key-encryption key and, on SQLite, every
// password hash and sealed secret: an existing folder or key file that group
// or others may use loses those permission bits (0755 becomes 0700, 0644
// becomes 0600), with an info line saying so.
func prepareDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data folder %s cannot be created: %w", dir, cause(err))
	}
	if err := tighten(dir, log, "data folder"); err != nil {
		return err
	}
	kekPath := filepath.Join(dir, keys.KEKFile)
	if _, err := os.Stat(kekPath); err == nil {
		if err := tighten(kekPath, log, "key-encryption key file"); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data folder %s is not writable: %w", dir, cause(err))
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

// tighten removes the group and other permission bits of path (a folder or
// file of ours). When that is not allowed (a folder owned by another user)
// it warns and leaves the mode: the key file's own check still refuses a key
// that others can read.
func tighten(path string, log *slog.Logger, what string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, cause(err))
	}
	was := fi.Mode().Perm()
	if was&0o077 == 0 {
		return nil
	}
	now := was &^ 0o077
	if err := os.Chmod(path, now); err != nil {
		log.Warn(what+" is open to other users and could not be tightened", "path", path, "mode", was.String(), "err", cause(err))
		return nil
	}
	log.Info(what+" permissions tightened", "path", path, "was", was.String(), "now", now.String())
	return nil
}

// isNotFound reports a missing account or key.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// cause returns the innermost error of a *os.PathError-style wrapper, for
// messages such as "permission denied" without repeating the path.
func cause(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

const globalSecretKey = "oauth_hmac_secret"

var globalSecretAAD = []byte("commonsid/oauth-hmac-secret")

// globalSecret returns the cloud-wide key of the HMAC on codes and refresh
// tokens, made on first use and stored sealed, so every replica shares it.
func (cl *cloud) globalSecret(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	sealed, err := cl.kek.Seal(fresh, globalSecretAAD)
	if err != nil {
		return nil, err
	}
	stored, err := cl.db.PutMetaIfAbsent(ctx, globalSecretKey, sealed)
	if err != nil {
		return nil, err
	}
	return cl.kek.Open(stored, globalSecretAAD)
}
