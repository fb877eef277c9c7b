package sqlstore

import (
	"context"
	"fmt"

	"github.com/onecommons/commonsid/store"
)

// GetMeta returns a cloud-wide value, or store.ErrNotFound.
func (d *DB) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := d.q(ctx).QueryRowContext(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	if err != nil {
		return nil, fmt.Errorf("meta %s: %w", key, mapErr(err))
	}
	return v, nil
}

// PutMetaIfAbsent stores value under key unless the key exists; it returns
// the value that is stored afterwards.
func (d *DB) PutMetaIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error) {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, value)
	if err != nil {
		return nil, fmt.Errorf("meta %s: %w", key, err)
	}
	v, err := d.GetMeta(ctx, key)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fmt.Errorf("meta %s: %w", key, store.ErrNotFound)
	}
	return v, nil
}

// PutMeta stores value under key, replacing any earlier value.
func (d *DB) PutMeta(ctx context.Context, key string, value []byte) error {
	_, err := d.q(ctx).ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, value)
	if err != nil {
		return fmt.Errorf("meta %s: %w", key, err)
	}
	return nil
}
