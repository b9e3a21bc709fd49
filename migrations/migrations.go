// Package migrations holds the versioned SQL schema of the Atlas consumers, embedded in
// the atlas binary, and applies it with goose (github.com/pressly/goose/v3).
//
// goose was chosen because its Provider API takes an embedded fs.FS, holds a Postgres
// session advisory lock while it migrates (two replicas starting together are safe: the
// second waits, then finds nothing to do), and can tell whether migrations are pending
// without applying them, which is how a consumer refuses an out-of-date schema.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// lockID is the advisory lock key every atlas migrator takes ("atlasmig" in ASCII).
const lockID int64 = 0x61746c61736d6967

// Migrator applies and inspects the schema of one database.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// Open connects to the database at dsn. Close it when done.
func Open(dsn string, logger *slog.Logger) (*Migrator, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse Postgres DSN: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker)}
	if logger != nil {
		opts = append(opts, goose.WithSlog(logger))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files, opts...)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return &Migrator{db: db, provider: p}, nil
}

// Close releases the connection pool.
func (m *Migrator) Close() error { return m.db.Close() }

// Up applies every pending migration under the advisory lock and returns how many it applied.
func (m *Migrator) Up(ctx context.Context) (int, error) {
	res, err := m.provider.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("apply migrations: %w", err)
	}
	return len(res), nil
}

// UpTo applies the pending migrations up to and including version, under the advisory
// lock, and returns how many it applied.
func (m *Migrator) UpTo(ctx context.Context, version int64) (int, error) {
	res, err := m.provider.UpTo(ctx, version)
	if err != nil {
		return len(res), fmt.Errorf("apply migrations up to %d: %w", version, err)
	}
	return len(res), nil
}

// DownTo rolls back the migrations above version, newest first, under the advisory lock.
func (m *Migrator) DownTo(ctx context.Context, version int64) error {
	if _, err := m.provider.DownTo(ctx, version); err != nil {
		return fmt.Errorf("roll back migrations to %d: %w", version, err)
	}
	return nil
}

// Versions returns the database's schema version (0 when it was never migrated) and the
// newest version this binary knows.
func (m *Migrator) Versions(ctx context.Context) (current, target int64, err error) {
	sources := m.provider.ListSources()
	target = sources[len(sources)-1].Version
	var exists bool
	if err := m.db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", goose.DefaultTablename).Scan(&exists); err != nil {
		return 0, target, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, target, nil
	}
	current, err = m.provider.GetDBVersion(ctx)
	if err != nil {
		return 0, target, fmt.Errorf("read schema version: %w", err)
	}
	return current, target, nil
}

// ErrOutOfDate is returned by Check when migrations are pending.
var ErrOutOfDate = errors.New("database schema is out of date")

// Check returns nil when the schema is up to date, an error wrapping ErrOutOfDate that
// says what to do when it is not, or the error that kept it from finding out.
func (m *Migrator) Check(ctx context.Context) error {
	current, target, err := m.Versions(ctx)
	if err != nil {
		return err
	}
	pending := current < target
	if !pending && current > 0 {
		// Catches a migration added out of order below the current version, too.
		if pending, err = m.provider.HasPending(ctx); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
	}
	if pending {
		return fmt.Errorf("%w: it is at version %d, this binary needs %d; run `atlas migrate up` (or start the consumer with --migrate)",
			ErrOutOfDate, current, target)
	}
	return nil
}
