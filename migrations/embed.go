// Package migrations embeds the SQL migrations of each dialect. Files are
// named NNNN_name.sql; a version exists in both dialects with the same
// meaning (a test checks the pairing). They are applied with goose by
// `commonsid migrate up` and at `serve` start.
//
// Times are stored as BIGINT microseconds since the Unix epoch, UTC, in both
// dialects, so that DML and comparisons are identical.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed sqlite/*.sql postgres/*.sql
var files embed.FS

// SQLite returns the SQLite migrations.
func SQLite() fs.FS { return sub("sqlite") }

// Postgres returns the PostgreSQL migrations.
func Postgres() fs.FS { return sub("postgres") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return f
}
