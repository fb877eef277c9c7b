// Package sqlstore implements every store interface over database/sql, for
// SQLite (modernc.org/sqlite, the embedded default) and PostgreSQL (pgx).
// DML is shared ($N placeholders work in both); DDL lives per dialect in
// migrations/.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/onecommons/commonsid/migrations"
	"github.com/onecommons/commonsid/oidc"
	"github.com/onecommons/commonsid/store"
)

// Dialect is the SQL dialect of a DB.
type Dialect int

// Dialects.
const (
	SQLite Dialect = iota + 1
	Postgres
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "unknown"
}

// DB is a store over one SQL database.
type DB struct {
	db      *sql.DB
	dialect Dialect
	where   string // printable location, without secrets
	// pg is the parsed PostgreSQL configuration, for LISTEN/NOTIFY and bulk
	// work through pgx's native API.
	pg *pgx.ConnConfig
	// wmu serialises writes on SQLite (nil on PostgreSQL).
	wmu *sync.Mutex

	revoked  hooks // called when access tokens may have been revoked
	appended hooks // called when events were appended

	activity writeGroup[*pendingActivity]   // activity entries being written together
	requests writeGroup[*oidc.OAuthRequest] // tokens and codes stored outside a transaction
}

// ParseDSN checks a --db value: "sqlite:PATH" or a postgres:// URL.
func ParseDSN(dsn string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
		if p == "" {
			return 0, "", errors.New("sqlite: DSN needs a file path, as in sqlite:./commonsid-data/commonsid.db")
		}
		if strings.ContainsAny(p, "?#") {
			return 0, "", fmt.Errorf("sqlite path %q must not contain '?' or '#'", p)
		}
		return SQLite, p, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if _, err := pgx.ParseConfig(dsn); err != nil {
			return 0, "", fmt.Errorf("malformed PostgreSQL URL: %s", redactPG(err.Error()))
		}
		return Postgres, dsn, nil
	}
	return 0, "", fmt.Errorf("unsupported database %q: use sqlite:PATH or a postgres:// URL", redactDSN(dsn))
}

// redactDSN hides a password in a URL-shaped string.
func redactDSN(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
			if c := strings.Index(rest[:at], ":"); c >= 0 {
				return s[:i+3] + rest[:c] + ":xxxxx" + rest[at:]
			}
		}
	}
	return s
}

func redactPG(msg string) string { return redactDSN(msg) }

// Open connects to the database named by dsn and checks that it answers.
func Open(ctx context.Context, dsn string) (*DB, error) {
	dialect, target, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	switch dialect {
	case SQLite:
		return openSQLite(ctx, target)
	default:
		return openPostgres(ctx, target)
	}
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("SQLite database folder %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("SQLite database folder %s is not a folder", dir)
	}
	if err := checkWritable(dir); err != nil {
		return nil, fmt.Errorf("SQLite database folder %s is not writable: %w", dir, err)
	}
	// The file holds sealed secrets and password hashes: create it private.
	// SQLite gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	f.Close()
	q := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", "file:"+path+q)
	if err != nil {
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	// Connections are kept, not closed after use: database/sql keeps two
	// idle by default, so under concurrent requests it opened and closed
	// connections all the time, and each new one applies the pragmas and
	// parses the whole schema again (measured: over a third of the CPU of
	// complete sign-in flows at 64 clients). Readers are not limited (WAL
	// lets them run beside the one writer); the pool keeps what a busy
	// moment needed and lets connections go after five idle minutes.
	db.SetMaxIdleConns(sqliteIdleConns())
	db.SetConnMaxIdleTime(5 * time.Minute)
	d := &DB{db: db, dialect: SQLite, where: "sqlite:" + path, wmu: &sync.Mutex{}}
	if err := d.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open SQLite %s: %w", path, err)
	}
	return d, nil
}

// sqliteIdleConns is how many idle SQLite connections a process keeps.
// Measured on two cores at 64 clients: 8 kept fewer sign-in flows a
// second than 16, and 16 no more memory.
func sqliteIdleConns() int { return max(8, 8*runtime.GOMAXPROCS(0)) }

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".commonsid-write-check-*")
	if err != nil {
		if u := errors.Unwrap(err); u != nil {
			return u
		}
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// poolSize is how many connections to PostgreSQL a process keeps by
// default: a few per core of this process. More only add backends that
// compete for the database's CPU (snapshots, locks, context switches):
// measured on two cores, complete sign-in flows went from about 440 to 600
// a second when the pool went from 32 to 8.
func poolSize() int { return max(4, 4*runtime.GOMAXPROCS(0)) }

// poolParam is the URL parameter that sets the pool size, as pgxpool
// spells it; it is not passed on to the server.
const poolParam = "pool_max_conns"

// splitPoolSize takes pool_max_conns out of a PostgreSQL URL.
func splitPoolSize(dsn string) (string, int, error) {
	u, err := url.Parse(dsn)
	if err != nil || !u.Query().Has(poolParam) {
		return dsn, poolSize(), nil
	}
	q := u.Query()
	n, err := strconv.Atoi(q.Get(poolParam))
	if err != nil || n < 1 || n > 1000 {
		return "", 0, fmt.Errorf("%s=%q: want a number of connections from 1 to 1000", poolParam, q.Get(poolParam))
	}
	q.Del(poolParam)
	u.RawQuery = q.Encode()
	return u.String(), n, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	dsn, pool, err := splitPoolSize(dsn)
	if err != nil {
		return nil, fmt.Errorf("malformed PostgreSQL URL: %s", err)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("malformed PostgreSQL URL: %s", redactPG(err.Error()))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(pool)
	db.SetMaxIdleConns(pool)
	db.SetConnMaxIdleTime(5 * time.Minute)
	where := "postgres://" + net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)) + "/" + cfg.Database
	d := &DB{db: db, dialect: Postgres, where: where, pg: cfg}
	if err := d.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL at %s: %s", where, redactPG(rootCause(err).Error()))
	}
	return d, nil
}

// rootCause follows wrapped errors to the innermost one, which for a failed
// connection says why ("connection refused", "password authentication
// failed …") without repeating the address several times.
func rootCause(err error) error {
	for {
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			if n := u.Unwrap(); n != nil {
				err = n
				continue
			}
		case interface{ Unwrap() []error }:
			if ns := u.Unwrap(); len(ns) > 0 {
				err = ns[0]
				continue
			}
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe
		}
		return err
	}
}

// Ping checks that the database answers, within 5 s.
func (d *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if d.dialect == SQLite {
		// A query, not just a ping: opening the file happens lazily.
		var n int
		return d.db.QueryRowContext(ctx, "SELECT 1").Scan(&n)
	}
	return d.db.PingContext(ctx)
}

// Autovacuum reports whether PostgreSQL's autovacuum is on (always true on
// SQLite, which reuses the pages of deleted rows by itself). Without it the
// purge still removes expired rows, but their space is never reused: the
// token tables grow on disk without end, and the planner's statistics go
// stale.
func (d *DB) Autovacuum(ctx context.Context) (bool, error) {
	if d.dialect != Postgres {
		return true, nil
	}
	var v string
	if err := d.db.QueryRowContext(ctx, `SHOW autovacuum`).Scan(&v); err != nil {
		return false, fmt.Errorf("read autovacuum: %w", err)
	}
	return v == "on", nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Dialect returns the database's dialect.
func (d *DB) Dialect() Dialect { return d.dialect }

// String names the database without secrets.
func (d *DB) String() string { return d.where }

// SQL returns the underlying *sql.DB, for tests and maintenance.
func (d *DB) SQL() *sql.DB { return d.db }

func (d *DB) provider() (*goose.Provider, error) {
	var (
		dialect goose.Dialect
		fsys    fs.FS
		opts    []goose.ProviderOption
	)
	switch d.dialect {
	case SQLite:
		dialect, fsys = goose.DialectSQLite3, migrations.SQLite()
	default:
		dialect, fsys = goose.DialectPostgres, migrations.Postgres()
		// Several replicas may start at once: one migrates, the others wait.
		l, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(l))
	}
	return goose.NewProvider(dialect, d.db, fsys, opts...)
}

// Migration is one migration's state.
type Migration struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time
}

// Migrate applies pending migrations and returns those it applied.
func (d *DB) Migrate(ctx context.Context) ([]Migration, error) {
	p, err := d.provider()
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("apply migrations to %s: %w", d.where, err)
	}
	var out []Migration
	for _, r := range res {
		out = append(out, Migration{Version: r.Source.Version, Name: filepath.Base(r.Source.Path), Applied: true})
	}
	return out, nil
}

// MigrationStatus lists every migration and whether it is applied.
func (d *DB) MigrationStatus(ctx context.Context) ([]Migration, error) {
	p, err := d.provider()
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status of %s: %w", d.where, err)
	}
	var out []Migration
	for _, s := range st {
		out = append(out, Migration{Version: s.Source.Version, Name: filepath.Base(s.Source.Path),
			Applied: s.State == goose.StateApplied, AppliedAt: s.AppliedAt})
	}
	return out, nil
}

type txKey struct{}

// txState is the transaction a context carries, with the release of the
// SQLite writer lock it holds.
type txState struct {
	tx      *sql.Tx
	release func()
	after   []func() // run once the transaction has committed
}

// afterCommit runs fn when the transaction ctx carries commits, or at once
// outside a transaction.
func (d *DB) afterCommit(ctx context.Context, fn func()) {
	if ts, ok := txOf(ctx); ok {
		ts.after = append(ts.after, fn)
		return
	}
	fn()
}

func txOf(ctx context.Context) (*txState, bool) {
	ts, ok := ctx.Value(txKey{}).(*txState)
	return ts, ok
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// q returns the transaction carried by ctx, or the database. On SQLite,
// statements outside a transaction that write take the writer lock.
func (d *DB) q(ctx context.Context) querier {
	if ts, ok := txOf(ctx); ok {
		return ts.tx
	}
	if d.wmu != nil {
		return lockedExec{d.db, d.wmu}
	}
	return d.db
}

// lockedExec serialises SQLite writes in this process: one writer at a time
// in arrival order, instead of SQLite's sleep-and-retry on a busy database,
// which gives long latency tails under load. (Other processes, such as the
// CLI, still meet the busy timeout.)
type lockedExec struct {
	db *sql.DB
	mu *sync.Mutex
}

func (l lockedExec) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.db.ExecContext(ctx, query, args...)
}

func (l lockedExec) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return l.db.QueryContext(ctx, query, args...)
}

func (l lockedExec) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return l.db.QueryRowContext(ctx, query, args...)
}

// lockWriter takes the SQLite writer lock; it returns the release.
func (d *DB) lockWriter() func() {
	if d.wmu == nil {
		return func() {}
	}
	d.wmu.Lock()
	return d.wmu.Unlock
}

// BeginTx starts a transaction carried by the returned context; every store
// method called with that context runs inside it.
func (d *DB) BeginTx(ctx context.Context) (context.Context, error) {
	if _, ok := txOf(ctx); ok {
		return ctx, errors.New("transaction already open")
	}
	release := d.lockWriter()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		release()
		return ctx, err
	}
	var once sync.Once
	return context.WithValue(ctx, txKey{}, &txState{tx: tx, release: func() { once.Do(release) }}), nil
}

// Commit commits the transaction carried by ctx.
func (d *DB) Commit(ctx context.Context) error {
	ts, ok := txOf(ctx)
	if !ok {
		return errors.New("no transaction to commit")
	}
	err := ts.tx.Commit()
	ts.release()
	if err == nil {
		for _, fn := range ts.after {
			fn()
		}
	}
	return err
}

// Rollback rolls back the transaction carried by ctx.
func (d *DB) Rollback(ctx context.Context) error {
	ts, ok := txOf(ctx)
	if !ok {
		return errors.New("no transaction to roll back")
	}
	defer ts.release()
	err := ts.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// InTx runs fn inside one transaction (joining one ctx already carries).
func (d *DB) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if _, ok := txOf(ctx); ok {
		return fn(ctx)
	}
	tctx, err := d.BeginTx(ctx)
	if err != nil {
		return err
	}
	if err := fn(tctx); err != nil {
		d.Rollback(tctx)
		return err
	}
	return d.Commit(tctx)
}

// tx runs fn in a transaction, committing when it returns nil. Inside a
// transaction carried by ctx it joins that one.
func (d *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return d.InTx(ctx, func(ctx context.Context) error {
		ts, _ := txOf(ctx)
		return fn(ts.tx)
	})
}

// forUpdate locks selected rows in PostgreSQL; SQLite's write transactions
// (BEGIN IMMEDIATE) already hold the database lock.
func (d *DB) forUpdate() string {
	if d.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// uniqueViolation returns the column of a unique-constraint violation, or "".
func uniqueViolation(err error) (string, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return pe.ConstraintName, true
	}
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY) {
		return se.Error(), true
	}
	return "", false
}

func mapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// Times are stored as microseconds since the epoch, UTC.
func toMicros(t time.Time) int64 { return t.UTC().UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func toMicrosPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return toMicros(*t)
}

func fromMicrosPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}
