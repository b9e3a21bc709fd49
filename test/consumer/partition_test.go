package consumer_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/atlas-platform/atlas-operator/consumer/audit"
	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// audit_events is partitioned by UTC day of occurred_at (migration 00005): the consumer
// creates the partition of every day its events occurred on, an old day or a day ahead
// alike, stores every event once, and counts a redelivered one as a duplicate (the key is
// (event_id, occurred_at), which the tolerant insert's ON CONFLICT must not name as
// event_id alone).
func TestAuditCreatesTheDayPartitionsItNeeds(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 6)
	envs := generate(t, 7, 5_000)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	days := []time.Time{today.AddDate(-1, 0, -3), today.AddDate(0, 0, -1), today, today.AddDate(0, 0, 10)}
	for i, e := range envs {
		e.OccurredAt = days[i%len(days)].Add(time.Duration(i) * time.Second)
	}
	s.produce(t, envs)
	s.produce(t, envs)

	c := s.startConsumer(t, "audit", infra.NewGroup(t))
	s.waitRows(t, len(envs), 2*time.Minute, c)
	c.waitMetric("atlas_consumer_events_duplicate_total", float64(len(envs)), time.Minute)
	s.assertExactly(t, envs)
	if ins, _ := c.metric("atlas_consumer_events_inserted_total"); ins != float64(len(envs)) {
		t.Fatalf("inserted metric = %v, want %d", ins, len(envs))
	}
	c.stop()
	rows, err := s.pool.Query(context.Background(), `SELECT tableoid::regclass::text, min(occurred_at), max(occurred_at) FROM audit_events GROUP BY 1 ORDER BY 2`)
	if err != nil {
		t.Fatal(err)
	}
	type partition struct {
		Name     string
		Min, Max time.Time
	}
	parts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[partition])
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != len(days) {
		t.Fatalf("rows in %d partitions %v, want one for each of the %d days", len(parts), parts, len(days))
	}
	for i, p := range parts {
		want := "audit_events_p" + days[i].Format("20060102")
		if p.Name != want || p.Min.Before(days[i]) || !p.Max.Before(days[i].AddDate(0, 0, 1)) {
			t.Errorf("partition %d: %s holds %s..%s, want %s holding the day %s", i, p.Name, p.Min, p.Max, want, days[i].Format(time.DateOnly))
		}
	}
}

// With --audit-create-partitions=false (a DBA's partition manager owns them), an event
// whose day has no partition waits for it: retried, not dead-lettered, stored once the
// partition exists.
func TestAuditWaitsForAPartitionItMayNotCreate(t *testing.T) {
	t.Parallel()
	s := newSetup(t, 1)
	envs := generate(t, 8, 100)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 10)
	for _, e := range envs {
		e.OccurredAt = day.Add(time.Hour)
	}
	c := s.startConsumer(t, "audit", infra.NewGroup(t), "--"+names.FlagAuditCreatePartitions+"=false")
	s.produce(t, envs)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if n, _ := c.metricWith("atlas_consumer_dead_lettered_total", `reason="unstorable"`); n != 0 {
			t.Fatalf("%v events dead-lettered as unstorable: an event without its partition must wait for it; log:\n%s", n, c.tail())
		}
		if n, _ := c.metricWith("atlas_consumer_retries_total", `dependency="postgres"`); n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the events without their partition were not retried within a minute; log:\n%s", c.tail())
		}
	}
	if rows := s.rowCount(t); rows != 0 {
		t.Fatalf("%d rows while the partition is missing, want none", rows)
	}
	if _, err := s.pool.Exec(context.Background(), audit.DayPartition("audit_events", day)); err != nil {
		t.Fatal(err)
	}
	s.waitRows(t, len(envs), time.Minute, c)
	s.assertExactly(t, envs)
	c.stop()
}
