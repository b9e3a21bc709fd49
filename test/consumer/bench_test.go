package consumer_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/audit"
	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/migrations"
	"github.com/atlas-platform/atlas-operator/test/infra"
)

// BenchmarkAuditMillion is the audit consumer's throughput benchmark (`make bench`):
// 1,000,000 events through the real broker into the real Postgres, compared in the same
// run with COPY of the same rows into an identical table (the physical reference), with
// the naive one-INSERT-one-commit-per-message consumer (on 20,000 events), and with a
// replay of the same million (all duplicates). It runs once whatever b.N is.
func BenchmarkAuditMillion(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("ATLAS_BENCH_EVENTS"); v != "" {
		total, _ = strconv.Atoi(v)
	}
	const naiveEvents = 20_000
	s := newSetup(b, 6)

	start := time.Now()
	produceGenerated(b, s, 1, total)
	b.Logf("produced %d events in %s", total, time.Since(start).Round(time.Millisecond))

	// 1. Ours, from a backlog of `total` events.
	writers := cmp.Or(os.Getenv("ATLAS_BENCH_POSTGRES_WRITERS"), "2")
	c := s.startConsumer(b, "audit", infra.NewGroup(b), "--batch-size", strconv.Itoa(connectBatchSize), "--postgres-writers", writers)
	start = time.Now()
	c.waitMetric("atlas_consumer_events_inserted_total", float64(total), 20*time.Minute)
	ours := run{name: "ours (atlas consume audit), " + writers + " Postgres writers", events: total, duration: time.Since(start),
		cpu: infra.ProcessCPU(b, c.cmd.Process.Pid), rss: peakRSS(b, c)}
	c.stop()
	if got := s.rowCount(b); got != total {
		b.Fatalf("audit_events has %d rows, want %d", got, total)
	}

	// 2. The physical reference: COPY of the same rows into an identical table.
	copyDur := copyReference(b, s)

	// 3. The replay: the same events again with a new group, all duplicates.
	r := s.startConsumer(b, "replay", infra.NewGroup(b), "--batch-size", strconv.Itoa(connectBatchSize), "--postgres-writers", writers)
	start = time.Now()
	r.waitMetric("atlas_consumer_events_duplicate_total", float64(total), 20*time.Minute)
	replay := time.Since(start)
	r.stop()

	// 4. The naive peer, on a fresh topic and table.
	naive := naiveConsumer(b, naiveEvents)

	// 5. The peer users would deploy: Kafka Connect with the Debezium JDBC sink, from the same
	// events as JSON with schemas, with our parallelism and then one task per partition.
	ctopic := connectTopic(b, s, total)
	nWriters, _ := strconv.Atoi(writers)
	var peers []run
	for i, tasks := range []int{nWriters, 6} {
		table := fmt.Sprintf("audit_events_connect_%d", i)
		peers = append(peers, kafkaConnect(b, s, ctopic, table, tasks, total))
		onlyOurs, onlyTheirs := sameRows(b, s, "audit_events", table)
		if onlyOurs != 0 || onlyTheirs != 0 {
			b.Errorf("%s and audit_events differ: %d rows only in ours, %d only in the connector's", table, onlyOurs, onlyTheirs)
		} else {
			b.Logf("%s holds the same %d rows as audit_events (event columns compared with EXCEPT both ways)", table, total)
		}
	}

	oursRate := ours.rate()
	copyRate := float64(total) / copyDur.Seconds()
	replayRate := float64(total) / replay.Seconds()
	naiveRate := float64(naiveEvents) / naive.Seconds()
	b.ReportMetric(oursRate, "events/s")
	b.ReportMetric(copyRate, "copy_rows/s")
	b.ReportMetric(naiveRate, "naive_events/s")
	b.ReportMetric(replayRate, "replay_events/s")
	b.ReportMetric(float64(ours.rss)/(1<<20), "peak_rss_MiB")
	fmt.Printf("\naudit benchmark, %d events (one run, same machine; Postgres %s):\n", total, infra.PostgresSettings(b))
	fmt.Printf("  %s\n", ours)
	for _, p := range peers {
		fmt.Printf("  %s\n", p)
	}
	fmt.Printf("  COPY into an identical table:          %8.0f rows/s    (%s)\n", copyRate, copyDur.Round(time.Millisecond))
	fmt.Printf("  naive INSERT+commit per message:       %8.0f events/s  (%d events, %s)\n", naiveRate, naiveEvents, naive.Round(time.Millisecond))
	fmt.Printf("  replay, all duplicates:                %8.0f events/s  (%s)\n", replayRate, replay.Round(time.Millisecond))
	fmt.Printf("  connector: JSON with schemas (JsonConverter), insert.mode=upsert on audit_events' primary key (%s), batch.size=%d, consumer max.poll.records=%d\n\n",
		primaryKey(b, s.pool), connectBatchSize, connectBatchSize)
	work := fmt.Sprintf("audit, %s events", humanCount(total))
	rows := []infra.BenchRow{
		{Work: work + ": events/s vs COPY", Ours: oursRate, Other: copyRate, OtherName: "COPY", Unit: "/s", Goal: "ratio >= 0.7", Met: oursRate/copyRate >= 0.7},
		{Work: work + ": events/s vs naive", Ours: oursRate, Other: naiveRate, OtherName: "naive", Unit: "/s", Goal: "ratio >= 20", Met: oursRate/naiveRate >= 20},
	}
	oursMiB := float64(ours.rss) / (1 << 20)
	for _, p := range peers {
		peer := "Connect " + strings.TrimPrefix(p.name, "Kafka Connect + Debezium JDBC sink, ")
		peerMiB := float64(p.rss) / (1 << 20)
		rows = append(rows,
			infra.BenchRow{Work: work + ": events/s vs Connect", Ours: oursRate, Other: p.rate(), OtherName: peer, Unit: "/s", Goal: "ratio >= 2", Met: oursRate/p.rate() >= 2},
			infra.BenchRow{Work: work + ": peak RSS vs Connect", Ours: oursMiB, Other: peerMiB, OtherName: peer, Unit: "MiB", Goal: "ratio <= 0.25", Met: oursMiB/peerMiB <= 0.25},
			infra.BenchRow{Work: work + ": CPU s per M events vs Connect", Ours: ours.cpu / float64(total) * 1e6, Other: p.cpu / float64(total) * 1e6, OtherName: peer, Unit: "s"})
	}
	rows = append(rows, infra.BenchRow{Work: work + ": consumer peak RSS", Ours: oursMiB, Unit: "MiB", Goal: "< 150 MiB", Met: oursMiB < 150})
	infra.ReportBench(b, rows...)
}

// humanCount writes 1000000 as "1M" and 20000 as "20k".
func humanCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// produceGenerated publishes n synthetic events without holding them all in memory.
func produceGenerated(b testing.TB, s *setup, seed uint64, n int) {
	b.Helper()
	newGeneratedStream(b, s, seed, func(*event.Envelope) {}).publish(n)
}

// peakRSS reads the consumer's peak resident set size (VmHWM) in bytes.
func peakRSS(b testing.TB, p *consumerProc) int64 {
	b.Helper()
	_, peak := infra.ProcessMemory(b, p.cmd.Process.Pid)
	return peak
}

// copyReference exports audit_events in COPY's binary format on the server and times
// COPY of it into an identical table with the same indexes.
func copyReference(b testing.TB, s *setup) time.Duration {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var dataDir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		b.Fatal(err)
	}
	file := dataDir + "/atlas_bench_" + strconv.FormatInt(time.Now().UnixNano(), 10) + ".copy"
	defer func() {
		if _, err := conn.Exec(ctx, "COPY (SELECT 1) TO PROGRAM 'rm -f "+file+"'"); err != nil {
			b.Logf("remove %s: %v", file, err)
		}
	}()
	for _, q := range append(auditEventsLike(b, conn, "audit_events_copy_reference"),
		"COPY (SELECT * FROM audit_events) TO '"+file+"' WITH (FORMAT binary)",
		"CHECKPOINT",
	) {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	start := time.Now()
	if _, err := conn.Exec(ctx, "COPY audit_events_copy_reference FROM '"+file+"' WITH (FORMAT binary)"); err != nil {
		b.Fatalf("COPY: %v", err)
	}
	d := time.Since(start)
	if _, err := conn.Exec(ctx, "DROP TABLE audit_events_copy_reference"); err != nil {
		b.Fatal(err)
	}
	return d
}

// auditEventsLike returns the statements creating table as an identical copy of
// audit_events: the same columns, keys and indexes and, when audit_events is partitioned by
// day (migration 00005), the same layout with a partition for each day it holds rows of.
func auditEventsLike(b testing.TB, conn *pgx.Conn, table string) []string {
	b.Helper()
	ctx := context.Background()
	var partitioned bool
	if err := conn.QueryRow(ctx, `SELECT relkind = 'p' FROM pg_class WHERE oid = 'audit_events'::regclass`).Scan(&partitioned); err != nil {
		b.Fatalf("read audit_events' layout: %v", err)
	}
	if !partitioned {
		return []string{"CREATE TABLE " + table + " (LIKE audit_events INCLUDING ALL)"}
	}
	stmts := []string{"CREATE TABLE " + table + " (LIKE audit_events INCLUDING ALL) PARTITION BY RANGE (occurred_at)"}
	rows, err := conn.Query(ctx, `SELECT DISTINCT date_trunc('day', occurred_at, 'UTC') FROM audit_events`)
	if err != nil {
		b.Fatalf("read audit_events' days: %v", err)
	}
	days, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		b.Fatalf("read audit_events' days: %v", err)
	}
	for _, day := range days {
		stmts = append(stmts, audit.DayPartition(table, day))
	}
	return stmts
}

// naiveConsumer times the consumer most tutorials write: for each message, decode it,
// INSERT it on its own, and commit its offset, on n events of a fresh topic and table.
func naiveConsumer(b testing.TB, n int) time.Duration {
	b.Helper()
	ctx := context.Background()
	s := newSetup(b, 6)
	m, err := migrations.Open(s.dsn, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		b.Fatal(err)
	}
	// the partitions of the days the events occur on (the generator stamps them now), made
	// ahead as a DBA would for a consumer that does not make its own
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, day := range []time.Time{today, today.AddDate(0, 0, 1)} {
		if _, err := s.pool.Exec(ctx, audit.DayPartition("audit_events", day)); err != nil {
			b.Fatal(err)
		}
	}
	produceGenerated(b, s, 2, n)
	cl := infra.KafkaClient(b, kgo.ConsumerGroup(infra.NewGroup(b)), kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	const insert = `INSERT INTO audit_events (event_id, event_type, version, occurred_at, actor_user_id, trace_id,
		entity_type, entity_id, collection_id, data, envelope, kafka_topic, kafka_partition, kafka_offset)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING`
	start := time.Now()
	done := 0
	for done < n {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			b.Fatalf("naive consumer: %v", err)
		}
		for _, rec := range fetches.Records() {
			e, err := event.Decode(rec.Value)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.pool.Exec(ctx, insert, e.EventID, string(e.EventType), e.Version, e.OccurredAt, e.ActorUserID, e.TraceID,
				string(e.Entity.Type), e.Entity.ID, e.Entity.CollectionID, []byte(e.Data), rec.Value, rec.Topic, rec.Partition, rec.Offset); err != nil {
				b.Fatalf("naive insert: %v", err)
			}
			if err := cl.CommitRecords(ctx, rec); err != nil {
				b.Fatalf("naive commit: %v", err)
			}
			done++
		}
	}
	d := time.Since(start)
	if got := s.rowCount(b); got != n {
		b.Fatalf("naive consumer stored %d rows, want %d", got, n)
	}
	return d
}
