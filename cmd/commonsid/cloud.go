package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

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
}

func (cl *cloud) Close() error { return cl.db.Close() }

const kekCheckKey = "kek_check"

// openCloud validates the configuration, prepares the data folder, loads the
// key-encryption key, opens and migrates the database and checks that the
// key belongs to it. On any error nothing is left changed.
func openCloud(ctx context.Context, cfg *Config, log *slog.Logger, migrate bool) (*cloud, error) {
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
	}
	db, err := sqlstore.Open(ctx, cfg.DSN())
	if err != nil {
		undoKEK()
		return nil, err
	}
	fail := func(err error) (*cloud, error) {
		db.Close()
		undoKEK()
		return nil, err
	}
	// Check the key before anything is written with it. A database that
	// is not migrated yet has no check value.
	if check, err := db.GetMeta(ctx, kekCheckKey); err == nil {
		if kek.Verify(check) != nil {
			return fail(errors.New("the key-encryption key does not match this database: restore the data folder's kek file or the COMMONSID_SECRET it was created with"))
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
	}
	km := &keys.Manager{Store: db, KEK: kek}
	accounts := identity.NewService(db, kek, cfg.Issuer)
	accounts.Log = log
	return &cloud{
		cfg: cfg, log: log, db: db, kek: kek, keys: km,
		accounts: accounts,
	}, nil
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
