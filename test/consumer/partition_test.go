package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/atlas-platform/atlas-operator/migrations"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// A DBA may partition audit_events by time: the consumer still stores every event once,
// and a redelivered one is a counted duplicate (its key is then (event_id, occurred_at),
// which the tolerant insert's ON CONFLICT must not name as event_id alone).
func TestAuditIntoATablePartitionedByTime(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 6)
	envs := generate(t, 7, 5_000)
	// the generator stamps events with the time now: a partition each side of today too
	partitionByDay(t, s, time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1), 3)
	s.produce(t, envs)
	s.produce(t, envs)

	c := s.startConsumer(t, "audit", infra.NewGroup(t))
	s.waitRows(t, len(envs), 2*time.Minute, c)
	c.waitMetric("atlas_consumer_events_duplicate_total", float64(len(envs)), time.Minute)
	s.assertExactly(t, envs)
	if ins, _ := c.metric("atlas_consumer_events_inserted_total"); ins != float64(len(envs)) {
		t.Fatalf("inserted metric = %v, want %d", ins, len(envs))
	}
	var partitions int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(DISTINCT tableoid) FROM audit_events`).Scan(&partitions); err != nil || partitions == 0 {
		t.Fatalf("rows in %d partitions (%v): want the partitioned table", partitions, err)
	}

	// An event whose day has no partition yet waits for it: retried, not dead-lettered.
	late := generate(t, 8, 1)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 10)
	late[0].OccurredAt = day.Add(time.Hour)
	retriesBefore, _ := c.metricWith("atlas_consumer_retries_total", `dependency="postgres"`)
	s.produce(t, late)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if n, _ := c.metricWith("atlas_consumer_dead_lettered_total", `reason="unstorable"`); n != 0 {
			t.Fatalf("%v events dead-lettered as unstorable: an event without its partition must wait for it; log:\n%s", n, c.tail())
		}
		if n, _ := c.metricWith("atlas_consumer_retries_total", `dependency="postgres"`); n >= retriesBefore+3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event without its partition was not retried within a minute; log:\n%s", c.tail())
		}
	}
	if rows := s.rowCount(t); rows != len(envs) {
		t.Fatalf("%d rows while the partition is missing, want %d", rows, len(envs))
	}
	if _, err := s.pool.Exec(context.Background(), dayPartition(day)); err != nil {
		t.Fatal(err)
	}
	s.waitRows(t, len(envs)+1, time.Minute, c)
	s.assertExactly(t, append(envs, late...))
	c.stop()
}

// partitionByDay replaces the migrations' audit_events with the same columns and indexes
// partitioned by day of occurred_at, as a DBA would for retention (drop a day) or to keep
// each insert's indexes small, with a partition for each of days days from day0. A
// partitioned table cannot have a unique index on event_id alone, so its primary key is
// (event_id, occurred_at): a redelivered event (the same envelope, so the same
// occurred_at) still hits it.
func partitionByDay(b testing.TB, s *setup, day0 time.Time, days int) {
	b.Helper()
	ctx := context.Background()
	m, err := migrations.Open(s.dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		b.Fatalf("migrate: %v", err)
	}
	var indexes []string
	rows, err := s.pool.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_events' AND indexname <> 'audit_events_pkey' ORDER BY indexname`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			b.Fatal(err)
		}
		indexes = append(indexes, def)
	}
	if err := rows.Err(); err != nil || len(indexes) == 0 {
		b.Fatalf("read audit_events' indexes: %v (%d found)", err, len(indexes))
	}
	stmts := []string{
		`CREATE TABLE audit_events_by_day (LIKE audit_events INCLUDING DEFAULTS) PARTITION BY RANGE (occurred_at)`,
		`DROP TABLE audit_events`,
		`ALTER TABLE audit_events_by_day RENAME TO audit_events`,
		`ALTER TABLE audit_events ADD PRIMARY KEY (event_id, occurred_at)`,
	}
	stmts = append(stmts, indexes...)
	for d := range days {
		stmts = append(stmts, dayPartition(day0.AddDate(0, 0, d)))
	}
	for _, stmt := range stmts {
		if _, err := s.pool.Exec(ctx, stmt); err != nil {
			b.Fatalf("partition audit_events by day: %s: %v", stmt, err)
		}
	}
}

// dayPartition is the statement creating audit_events' partition for the day from.
func dayPartition(from time.Time) string {
	return fmt.Sprintf(`CREATE TABLE audit_events_%s PARTITION OF audit_events FOR VALUES FROM ('%s') TO ('%s')`,
		from.Format("20060102"), from.Format(time.RFC3339), from.AddDate(0, 0, 1).Format(time.RFC3339))
}
