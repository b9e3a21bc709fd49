package infra

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresURL is the URL of the test server's maintenance database.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return Require(t, EnvPostgresURL, "PostgreSQL server",
		"start one with `hack/postgres.sh start DIR` (apt-get install -y postgresql provides the server) and export "+EnvPostgresURL+"=<its URL>")
}

// NewDatabase creates an empty database for the calling test and returns its URL. The
// database is dropped when the test ends, so tests can run in parallel.
func NewDatabase(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL at %s: %v", redact(base), err)
	}
	defer admin.Close(ctx)
	name := UniqueName(t, "t", 63)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvPostgresURL, err)
	}
	u.Path = "/" + name
	return u.String()
}

// NewPool creates a database for the test (see NewDatabase) and a pool connected to it.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return NewPoolFor(t, NewDatabase(t))
}

// NewPoolFor returns a pool on the given database, closed when the test ends.
func NewPoolFor(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pool for %s: %v", redact(dsn), err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// redact hides a password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	return u.Redacted()
}

// PostgresSettings reports the test server's durability settings and sizing, as the
// benchmarks print them ("fsync=on synchronous_commit=on full_page_writes=on" is
// PostgreSQL's default durability).
func PostgresSettings(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, PostgresURL(t))
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	var out []string
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes",
		"shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression", "track_wal_io_timing"} {
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatalf("SHOW %s: %v", name, err)
		}
		out = append(out, name+"="+v)
	}
	return strings.Join(out, " ")
}
