package sqlstore

import (
	"context"
	"errors"
	"fmt"
)

// SealedValue is one value stored sealed with the key-encryption key.
type SealedValue struct {
	Table  string // accounts, signing_keys, mfa_totp or meta
	Column string
	Owner  string // the row's key: an account DID, a kid, a meta key
	Sealed []byte
}

func (v SealedValue) String() string {
	return fmt.Sprintf("%s.%s of %s", v.Table, v.Column, v.Owner)
}

// sealedColumn is a column of sealed values and the key of its table.
type sealedColumn struct {
	table, key string
	columns    []string
}

// sealedColumns lists every column that holds values sealed with the
// key-encryption key, besides meta. A new sealed column must be added here,
// or rotating the key would leave it sealed under a key that is then
// replaced.
var sealedColumns = []sealedColumn{
	{"accounts", "did", []string{"did_key_sealed", "pairwise_secret_sealed"}},
	{"signing_keys", "kid", []string{"private_sealed"}},
	{"mfa_totp", "account_did", []string{"secret_sealed"}},
}

// resealBatch is how many rows are read at a time.
const resealBatch = 500

// ResealAll passes every sealed value to reseal and stores what it returns
// in place of the value (nil: leave the value as it is), all in the
// transaction ctx carries (or one of its own). Meta values are all passed
// (Table "meta"); reseal knows which are sealed. Any error undoes
// everything. It returns how many values were replaced, per table.
func (d *DB) ResealAll(ctx context.Context, reseal func(SealedValue) ([]byte, error)) (map[string]int, error) {
	counts := map[string]int{}
	err := d.InTx(ctx, func(ctx context.Context) error {
		q := d.q(ctx)
		for _, sc := range sealedColumns {
			ok, err := d.tableExists(ctx, sc.table)
			if err != nil {
				return err
			}
			if !ok {
				continue // not migrated that far
			}
			after := ""
			for {
				cols := sc.key
				for _, c := range sc.columns {
					cols += ", " + c
				}
				rows, err := q.QueryContext(ctx, `SELECT `+cols+` FROM `+sc.table+` WHERE `+sc.key+` > $1 ORDER BY `+sc.key+` LIMIT $2`, after, resealBatch)
				if err != nil {
					return fmt.Errorf("read %s: %w", sc.table, err)
				}
				type row struct {
					key  string
					vals [][]byte
				}
				var batch []row
				for rows.Next() {
					r := row{vals: make([][]byte, len(sc.columns))}
					dest := []any{&r.key}
					for i := range r.vals {
						dest = append(dest, &r.vals[i])
					}
					if err := rows.Scan(dest...); err != nil {
						rows.Close()
						return fmt.Errorf("read %s: %w", sc.table, err)
					}
					batch = append(batch, r)
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return fmt.Errorf("read %s: %w", sc.table, err)
				}
				for _, r := range batch {
					for i, c := range sc.columns {
						if len(r.vals[i]) == 0 {
							continue
						}
						v := SealedValue{Table: sc.table, Column: c, Owner: r.key, Sealed: r.vals[i]}
						out, err := reseal(v)
						if err != nil {
							return fmt.Errorf("%s: %w", v, err)
						}
						if out == nil {
							continue
						}
						if _, err := q.ExecContext(ctx, `UPDATE `+sc.table+` SET `+c+` = $1 WHERE `+sc.key+` = $2`, out, r.key); err != nil {
							return fmt.Errorf("update %s: %w", v, err)
						}
						counts[sc.table]++
					}
				}
				if len(batch) < resealBatch {
					break
				}
				after = batch[len(batch)-1].key
			}
		}
		rows, err := q.QueryContext(ctx, `SELECT key, value FROM meta ORDER BY key`)
		if err != nil {
			return fmt.Errorf("read meta: %w", err)
		}
		var metas []SealedValue
		for rows.Next() {
			v := SealedValue{Table: "meta", Column: "value"}
			if err := rows.Scan(&v.Owner, &v.Sealed); err != nil {
				rows.Close()
				return fmt.Errorf("read meta: %w", err)
			}
			metas = append(metas, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read meta: %w", err)
		}
		for _, v := range metas {
			out, err := reseal(v)
			if err != nil {
				return fmt.Errorf("%s: %w", v, err)
			}
			if out == nil {
				continue
			}
			if _, err := q.ExecContext(ctx, `UPDATE meta SET value = $1 WHERE key = $2`, out, v.Owner); err != nil {
				return fmt.Errorf("update %s: %w", v, err)
			}
			counts["meta"]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// tableExists reports whether the database has the table.
func (d *DB) tableExists(ctx context.Context, table string) (bool, error) {
	var n int
	var err error
	if d.dialect == SQLite {
		err = d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1`, table).Scan(&n)
	} else {
		err = d.q(ctx).QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1`, table).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("look for table %s: %w", table, err)
	}
	return n > 0, nil
}

// ErrLocked reports a database another process holds the lock of.
var ErrLocked = errors.New("the database is in use by another commonsid process")
