// Package smoke proves each test component is the real thing: a PostgreSQL server, an
// Apache Kafka broker, an Elasticsearch-compatible search engine and a Kubernetes API
// server. Each test logs what it talked to, so `make test` output shows it.
package smoke

import (
	"context"
	"strings"
	"testing"

	"github.com/atlas-platform/atlas-operator/test/infra"
)

func TestPostgresIsReal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := infra.NewPool(t)
	var version, db string
	if err := pool.QueryRow(ctx, "select version(), current_database()").Scan(&version, &db); err != nil {
		t.Fatalf("select version(): %v", err)
	}
	if !strings.HasPrefix(version, "PostgreSQL ") {
		t.Fatalf("not PostgreSQL: %q", version)
	}
	t.Logf("postgres: %s (database %s)", version, db)

	// Each test's database is its own: a table made here is absent from another.
	if _, err := pool.Exec(ctx, "create table marker (id int primary key)"); err != nil {
		t.Fatal(err)
	}
	other := infra.NewPool(t)
	var n int
	if err := other.QueryRow(ctx, "select count(*) from pg_tables where tablename = 'marker'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("databases of one test leak into another")
	}
}
