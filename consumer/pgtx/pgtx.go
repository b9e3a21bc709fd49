// Package pgtx runs the consumers' write transactions so that a commit that returned is
// durable, whatever the server's default: the consumers commit Kafka offsets right after
// their Postgres commit, so a commit Postgres could still lose (synchronous_commit = off,
// a common tuning, returns before the WAL is written) would lose events for good.
package pgtx

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Beginner starts transactions (a *pgxpool.Pool or a *pgx.Conn).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// durableCommit raises synchronous_commit to on for the transaction when it is off, and
// leaves stronger settings (remote_write, remote_apply) as the server has them. It is
// local to the transaction (SET LOCAL), so it also holds behind a transaction-pooling
// PgBouncer, where a session setting would leak to other clients and a startup parameter
// is refused.
const durableCommit = `SELECT set_config('synchronous_commit', 'on', true) WHERE current_setting('synchronous_commit') = 'off'`

// Durable runs fn in a transaction whose commit, once it returns, survives a crash of
// the server, and commits it.
func Durable(ctx context.Context, db Beginner, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, durableCommit); err != nil {
			return fmt.Errorf("make the commit durable: %w", err)
		}
		return fn(tx)
	})
}
