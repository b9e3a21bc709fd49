package consumer_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/eventgen"
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
	c := s.startConsumer(b, "audit", infra.NewGroup(b), "--batch-size", "4000", "--postgres-writers", writers)
	start = time.Now()
	c.waitMetric("atlas_consumer_events_inserted_total", float64(total), 20*time.Minute)
	ours := time.Since(start)
	rss := peakRSS(b, c)
	c.stop()
	if got := s.rowCount(b); got != total {
		b.Fatalf("audit_events has %d rows, want %d", got, total)
	}

	// 2. The physical reference: COPY of the same rows into an identical table.
	copyDur := copyReference(b, s)

	// 3. The replay: the same events again with a new group, all duplicates.
	r := s.startConsumer(b, "replay", infra.NewGroup(b), "--batch-size", "4000", "--postgres-writers", writers)
	start = time.Now()
	r.waitMetric("atlas_consumer_events_duplicate_total", float64(total), 20*time.Minute)
	replay := time.Since(start)
	r.stop()

	// 4. The naive peer, on a fresh topic and table.
	naive := naiveConsumer(b, naiveEvents)

	oursRate := float64(total) / ours.Seconds()
	copyRate := float64(total) / copyDur.Seconds()
	replayRate := float64(total) / replay.Seconds()
	naiveRate := float64(naiveEvents) / naive.Seconds()
	b.ReportMetric(oursRate, "events/s")
	b.ReportMetric(copyRate, "copy_rows/s")
	b.ReportMetric(naiveRate, "naive_events/s")
	b.ReportMetric(replayRate, "replay_events/s")
	b.ReportMetric(oursRate/copyRate, "x_copy")
	b.ReportMetric(oursRate/naiveRate, "x_naive")
	b.ReportMetric(float64(rss)/(1<<20), "peak_rss_MiB")
	fmt.Printf("\naudit benchmark, %d events (one run, same machine):\n", total)
	fmt.Printf("  ours (broker -> consumer -> Postgres): %8.0f events/s  (%s)\n", oursRate, ours.Round(time.Millisecond))
	fmt.Printf("  COPY into an identical table:          %8.0f rows/s    (%s)\n", copyRate, copyDur.Round(time.Millisecond))
	fmt.Printf("  naive INSERT+commit per message:       %8.0f events/s  (%d events, %s)\n", naiveRate, naiveEvents, naive.Round(time.Millisecond))
	fmt.Printf("  replay, all duplicates:                %8.0f events/s  (%s)\n", replayRate, replay.Round(time.Millisecond))
	fmt.Printf("  ours/COPY = %.2f (target >= 0.7)   ours/naive = %.1f (target >= 20)   consumer peak RSS = %.0f MiB (target < 150)\n\n",
		oursRate/copyRate, oursRate/naiveRate, float64(rss)/(1<<20))
}

// produceGenerated publishes n synthetic events without holding them all in memory.
func produceGenerated(b testing.TB, s *setup, seed uint64, n int) {
	b.Helper()
	cl := infra.KafkaClient(b, kgo.ProducerLinger(10*time.Millisecond), kgo.MaxBufferedRecords(50_000))
	gen := eventgen.New(seed)
	var failed atomic.Value
	ctx := context.Background()
	for i := 0; i < n; i++ {
		env, err := gen.Next()
		if err != nil {
			b.Fatal(err)
		}
		rec, err := event.Record(s.topic, env)
		if err != nil {
			b.Fatal(err)
		}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("produce: %v", err)
	}
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func peakRSS(b testing.TB, p *consumerProc) int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("read the consumer's memory use: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/PID/status")
	return 0
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
	for _, q := range []string{
		"CREATE TABLE audit_events_copy_reference (LIKE audit_events INCLUDING ALL)",
		"COPY audit_events TO '" + file + "' WITH (FORMAT binary)",
		"CHECKPOINT",
	} {
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
	produceGenerated(b, s, 2, n)
	cl := infra.KafkaClient(b, kgo.ConsumerGroup(infra.NewGroup(b)), kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	const insert = `INSERT INTO audit_events (event_id, event_type, version, occurred_at, actor_user_id, trace_id,
		entity_type, entity_id, collection_id, data, envelope, kafka_topic, kafka_partition, kafka_offset)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (event_id) DO NOTHING`
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
