package pgtx_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/atlas-platform/atlas-operator/consumer/pgtx"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Against the real test server, whose default is synchronous_commit = off: a durable
// transaction runs with it on; a stronger session setting is kept; nothing outlives the
// transaction.
func TestDurableRaisesSynchronousCommitForTheTransactionOnly(t *testing.T) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, infra.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	show := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) string {
		var v string
		if err := q.QueryRow(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := show(conn); got != "off" {
		t.Fatalf("the test server's default is %q; this test needs a server whose default is off (hack/postgres.sh)", got)
	}
	for _, c := range []struct{ session, inside string }{{"off", "on"}, {"local", "local"}, {"remote_apply", "remote_apply"}} {
		if _, err := conn.Exec(ctx, "SET synchronous_commit = "+c.session); err != nil {
			t.Fatal(err)
		}
		var inside string
		if err := pgtx.Durable(ctx, conn, func(tx pgx.Tx) error { inside = show(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		if inside != c.inside || show(conn) != c.session {
			t.Errorf("session %s: %s inside the transaction (want %s), %s after it (want %s)", c.session, inside, c.inside, show(conn), c.session)
		}
	}
}
