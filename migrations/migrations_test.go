package migrations_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atlas-platform/atlas-operator/migrations"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// Two migrators starting together (two replicas) apply each migration once: the
// advisory lock serialises them and the second finds nothing to do.
func TestConcurrentUpAppliesOnce(t *testing.T) {
	dsn := infra.NewDatabase(t)
	ctx := context.Background()

	m, err := migrations.Open(dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Check(ctx)
	if !errors.Is(err, migrations.ErrOutOfDate) {
		t.Fatalf("Check on an empty database = %v, want ErrOutOfDate", err)
	}
	t.Logf("empty database: %v", err)

	const replicas = 4
	applied := make([]int, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mi, err := migrations.Open(dsn, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer mi.Close()
			applied[i], errs[i] = mi.Up(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		total += applied[i]
	}
	current, target, err := m.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if current != target || int64(total) != target {
		t.Fatalf("schema at %d of %d after %d applications by %d concurrent replicas, want each migration applied once", current, target, total, replicas)
	}
	if err := m.Check(ctx); err != nil {
		t.Fatalf("Check after Up: %v", err)
	}
}

// Migration 00005 partitions an empty audit_events by day, and leaves one that holds rows
// as it is (converting it means copying it under a lock the DBA times); its down step
// restores the single table when the partitions are empty and refuses otherwise.
func TestAuditEventsPartitionedOnlyWhenEmpty(t *testing.T) {
	ctx := context.Background()
	layout := func(t *testing.T, pool *pgxpool.Pool) (kind string, key string) {
		t.Helper()
		err := pool.QueryRow(ctx, `SELECT c.relkind::text, pg_get_constraintdef(k.oid) FROM pg_class c
			JOIN pg_constraint k ON k.conrelid = c.oid AND k.contype = 'p' WHERE c.oid = 'audit_events'::regclass`).Scan(&kind, &key)
		if err != nil {
			t.Fatal(err)
		}
		return kind, key
	}
	const insert = `INSERT INTO audit_events (event_id, event_type, version, occurred_at, entity_type, entity_id, data, envelope,
		kafka_topic, kafka_partition, kafka_offset) VALUES (gen_random_uuid(), 'ItemCreated', 1, now(), 'item', gen_random_uuid(), '{}', '\x7b7d', 't', 0, 0)`
	migrate := func(t *testing.T, dsn string, to int64) *migrations.Migrator {
		t.Helper()
		m, err := migrations.Open(dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		if _, err := m.UpTo(ctx, to); err != nil {
			t.Fatal(err)
		}
		return m
	}

	t.Run("empty: partitioned by day", func(t *testing.T) {
		dsn := infra.NewDatabase(t)
		m := migrate(t, dsn, 5)
		pool := infra.NewPoolFor(t, dsn)
		if kind, key := layout(t, pool); kind != "p" || key != "PRIMARY KEY (event_id, occurred_at)" {
			t.Fatalf("audit_events after 00005 on an empty table: relkind %q, key %q; want a partitioned table keyed by (event_id, occurred_at)", kind, key)
		}
		if _, err := pool.Exec(ctx, insert); err == nil {
			t.Fatal("a row with no day partition was stored: the table is not partitioned as it should be")
		}
		if err := m.DownTo(ctx, 4); err != nil {
			t.Fatalf("down from 00005 with empty partitions: %v", err)
		}
		if kind, key := layout(t, pool); kind != "r" || key != "PRIMARY KEY (event_id)" {
			t.Fatalf("audit_events after rolling 00005 back: relkind %q, key %q; want the single table keyed by event_id", kind, key)
		}
	})
	t.Run("holding rows: left as one table", func(t *testing.T) {
		dsn := infra.NewDatabase(t)
		migrate(t, dsn, 4)
		pool := infra.NewPoolFor(t, dsn)
		if _, err := pool.Exec(ctx, insert); err != nil {
			t.Fatal(err)
		}
		migrate(t, dsn, 5)
		if kind, key := layout(t, pool); kind != "r" || key != "PRIMARY KEY (event_id)" {
			t.Fatalf("audit_events holding a row after 00005: relkind %q, key %q; want it left as the single table", kind, key)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("audit_events holds %d rows after 00005 (%v), want its 1", n, err)
		}
	})
}
