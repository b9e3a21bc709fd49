// Package audit is the audit consumer's sink: every event into Postgres audit_events,
// once, in one round trip per batch.
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/atlas-platform/atlas-operator/consumer/names"
	"github.com/atlas-platform/atlas-operator/consumer/observe"
	"github.com/atlas-platform/atlas-operator/consumer/pgtx"
	"github.com/atlas-platform/atlas-operator/consumer/runner"
)

// KindUnstorable is the dead-letter kind of a valid envelope Postgres refuses to store
// (for example a \u0000 escape, which jsonb does not accept).
const KindUnstorable = "unstorable"

// insertSQL inserts a whole batch from column arrays: one statement, fourteen
// parameters whatever the batch size (a multi-row VALUES list would hit Postgres's
// 65,535 bind-parameter limit). A duplicate event_id, already stored or repeated in the
// batch, is skipped by the unique key. The conflict names no columns, so the key may be
// the (event_id, occurred_at) of the table partitioned by day (migration 00005) or the
// (event_id) of an older install's single table: a redelivered event is the same
// envelope, so it hits either.
const insertSQL = `INSERT INTO audit_events (event_id, event_type, version, occurred_at, actor_user_id, trace_id,
	entity_type, entity_id, collection_id, data, envelope, kafka_topic, kafka_partition, kafka_offset)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::uuid[], $6::text[],
	$7::text[], $8::uuid[], $9::uuid[], $10::jsonb[], $11::bytea[], $12::text[], $13::int[], $14::bigint[])
ON CONFLICT DO NOTHING`

// columnNames are the columns both write paths fill, in order.
var columnNames = []string{"event_id", "event_type", "version", "occurred_at", "actor_user_id", "trace_id",
	"entity_type", "entity_id", "collection_id", "data", "envelope", "kafka_topic", "kafka_partition", "kafka_offset"}

// Sink writes events to audit_events.
//
// It has two write paths. The fast one is COPY straight into audit_events: the
// physical limit of Postgres, but all-or-nothing, so one already-audited event_id makes
// it fail. The tolerant one is a single INSERT ... SELECT FROM unnest(...) ON CONFLICT
// DO NOTHING. A batch goes the fast way unless the previous batch met
// duplicates (a redelivery or a replay is under way); a fast attempt that meets a
// duplicate is redone the tolerant way.
type Sink struct {
	pool       *pgxpool.Pool
	tolerant   atomic.Bool // the previous batch met duplicates: skip the COPY attempt
	cfg        Config
	log        *slog.Logger
	inserted   prometheus.Counter
	duplicates prometheus.Counter
}

// Config is how the sink writes.
type Config struct {
	// Writers is the number of concurrent COPY streams per batch.
	Writers int
	// CreatePartitions lets the sink create the day partition a row of a partitioned
	// audit_events needs (migration 00005's layout). Without it, such a row waits, retried,
	// until someone else (a DBA's partition manager) creates it.
	CreatePartitions bool
}

// NewSink returns a sink writing through pool, and registers its metrics.
func NewSink(pool *pgxpool.Pool, cfg Config, log *slog.Logger, m *observe.Metrics) *Sink {
	s := &Sink{
		pool: pool,
		cfg:  cfg,
		log:  log,
		inserted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atlas_consumer_events_inserted_total", ConstLabels: prometheus.Labels{"consumer": "audit"},
			Help: "Events inserted into audit_events.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atlas_consumer_events_duplicate_total", ConstLabels: prometheus.Labels{"consumer": "audit"},
			Help: "Events not inserted because their event_id was already audited (a redelivery or a duplicate publish).",
		}),
	}
	m.Registry.MustRegister(s.inserted, s.duplicates)
	return s
}

// Name implements runner.Sink.
func (s *Sink) Name() string { return "postgres" }

// KnownSeries: Postgres can refuse a value (runner.KnownSeries).
func (s *Sink) KnownSeries() (deadLetterReasons, dependencies []string) {
	return []string{KindUnstorable}, nil
}

// Apply implements runner.Sink. It inserts the batch in one statement. When Postgres
// rejects the data of some row (not the connection), it isolates the culprits by
// inserting row by row and returns them as rejections.
func (s *Sink) Apply(ctx context.Context, msgs []runner.Message) ([]runner.Rejection, error) {
	writers := s.cfg.Writers
	if writers < 2 || len(msgs) < 2*minChunk {
		return s.applyChunk(ctx, msgs)
	}
	// Split by event id, so a duplicate within the batch always meets itself in the
	// same chunk (two chunks waiting on each other's rows could deadlock).
	chunks := make([][]runner.Message, writers)
	for _, m := range msgs {
		i := int(m.Event.EventID[15]) % writers
		chunks[i] = append(chunks[i], m)
	}
	rejections := make([][]runner.Rejection, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i, chunk := range chunks {
		if len(chunk) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rejections[i], errs[i] = s.applyChunk(ctx, chunk)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []runner.Rejection
	for _, r := range rejections {
		out = append(out, r...)
	}
	return out, nil
}

// minChunk is the smallest part of a batch worth its own COPY stream.
const minChunk = 500

// applyChunk writes one part of a batch, and writes it again at once after creating the
// day partitions it lacked.
func (s *Sink) applyChunk(ctx context.Context, msgs []runner.Message) ([]runner.Rejection, error) {
	rejected, err := s.write(ctx, msgs)
	var pg *pgconn.PgError
	if !s.cfg.CreatePartitions || !errors.As(err, &pg) || !missingPartition(pg) {
		return rejected, err
	}
	if cerr := s.createPartitions(ctx, msgs); cerr != nil {
		return nil, errors.Join(err, cerr)
	}
	return s.write(ctx, msgs)
}

// write writes one part of a batch: COPY, or the conflict-tolerant INSERT.
func (s *Sink) write(ctx context.Context, msgs []runner.Message) ([]runner.Rejection, error) {
	if !s.tolerant.Load() {
		n, err := s.copy(ctx, msgs)
		if err == nil {
			s.count(len(msgs), n)
			s.logApplied(msgs)
			return nil, nil
		}
		if !isDuplicate(err) && !rejectsData(err) {
			return nil, fmt.Errorf("copy %d events into audit_events: %w", len(msgs), err)
		}
	}
	n, err := s.insert(ctx, columnsOf(msgs))
	if err == nil {
		s.tolerant.Store(n < int64(len(msgs)))
		s.count(len(msgs), n)
		s.logApplied(msgs)
		return nil, nil
	}
	if !rejectsData(err) {
		return nil, fmt.Errorf("insert %d events into audit_events: %w", len(msgs), err)
	}
	s.log.Warn("Postgres rejected a row of the batch; inserting row by row to find it", "batch", len(msgs), "error", err)
	var rejected []runner.Rejection
	for i := range msgs {
		one := msgs[i : i+1]
		n, err := s.insert(ctx, columnsOf(one))
		switch {
		case err == nil:
			s.count(1, n)
			s.logApplied(one)
		case rejectsData(err):
			rejected = append(rejected, runner.Rejection{Record: msgs[i].Record, Event: msgs[i].Event, Kind: KindUnstorable,
				Reason: "postgres refused the event: " + err.Error()})
		default:
			return nil, fmt.Errorf("insert event %s into audit_events: %w", msgs[i].Event.EventID, err)
		}
	}
	return rejected, nil
}

func (s *Sink) copy(ctx context.Context, msgs []runner.Message) (n int64, err error) {
	err = pgtx.Durable(ctx, s.pool, func(tx pgx.Tx) error {
		n, err = tx.CopyFrom(ctx, pgx.Identifier{"audit_events"}, columnNames, &copySource{msgs: msgs, i: -1})
		return err
	})
	return n, err
}

// copySource streams a batch to COPY without building an intermediate copy of it.
type copySource struct {
	msgs []runner.Message
	i    int
	row  [14]any
}

func (c *copySource) Next() bool { c.i++; return c.i < len(c.msgs) }
func (c *copySource) Err() error { return nil }
func (c *copySource) Values() ([]any, error) {
	m := c.msgs[c.i]
	e := m.Event
	var actor, collection pgtype.UUID
	var trace pgtype.Text
	if e.ActorUserID != nil {
		actor = pgtype.UUID{Bytes: *e.ActorUserID, Valid: true}
	}
	if e.Entity.CollectionID != nil {
		collection = pgtype.UUID{Bytes: *e.Entity.CollectionID, Valid: true}
	}
	if e.TraceID != nil {
		trace = pgtype.Text{String: *e.TraceID, Valid: true}
	}
	c.row = [14]any{
		pgtype.UUID{Bytes: e.EventID, Valid: true}, string(e.EventType), int32(e.Version),
		pgtype.Timestamptz{Time: e.OccurredAt, Valid: true}, actor, trace, string(e.Entity.Type),
		pgtype.UUID{Bytes: e.Entity.ID, Valid: true}, collection, []byte(e.Data), m.Record.Value,
		m.Record.Topic, m.Record.Partition, m.Record.Offset,
	}
	return c.row[:], nil
}

func (s *Sink) insert(ctx context.Context, c *columns) (n int64, err error) {
	err = pgtx.Durable(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, insertSQL, c.eventID, c.eventType, c.version, c.occurredAt, c.actor, c.traceID,
			c.entityType, c.entityID, c.collectionID, c.data, c.envelope, c.topic, c.partition, c.offset)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

func (s *Sink) count(total int, inserted int64) {
	s.inserted.Add(float64(inserted))
	s.duplicates.Add(float64(int64(total) - inserted))
}

func (s *Sink) logApplied(msgs []runner.Message) {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for _, m := range msgs {
		s.log.Debug("audited", "event_id", m.Event.EventID, "trace_id", m.Event.Trace(), "event_type", m.Event.EventType,
			"partition", m.Record.Partition, "offset", m.Record.Offset)
	}
}

// isDuplicate reports a unique violation: an event_id that is already audited.
func isDuplicate(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}

// rejectsData reports whether Postgres refused the values themselves (SQLSTATE class 22
// data exception, 23 integrity violation, or 54 program limit): retrying cannot help.
// A row no partition of a partitioned audit_events holds is not refused: its partition is
// missing, so the sink creates it, or the batch is retried until it exists.
func rejectsData(err error) bool {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || missingPartition(pg) {
		return false
	}
	return strings.HasPrefix(pg.Code, "22") || strings.HasPrefix(pg.Code, "23") || strings.HasPrefix(pg.Code, "54")
}

// missingPartition recognises "no partition of relation ... found for row": a check
// violation that names a table and no constraint (a CHECK constraint's always names
// itself). The message is not compared, as servers may translate it.
func missingPartition(pg *pgconn.PgError) bool {
	return pg.Code == "23514" && pg.ConstraintName == "" && pg.TableName != ""
}

// createPartitions creates the partition of each UTC day msgs' events occurred on, where
// none exists. Another writer (a second chunk, another pod) may create the same one at the
// same moment; losing that race, or finding the day already covered by a partition of
// another range (a DBA's monthly one), leaves the day covered, which is all that is needed.
func (s *Sink) createPartitions(ctx context.Context, msgs []runner.Message) error {
	days := map[time.Time]bool{}
	for _, m := range msgs {
		days[dayOf(m.Event.OccurredAt)] = true
	}
	for _, day := range slices.SortedFunc(maps.Keys(days), time.Time.Compare) {
		if _, err := s.pool.Exec(ctx, DayPartition("audit_events", day)); err != nil && !coveredAlready(err) {
			return fmt.Errorf("create the partition of audit_events for %s (grant the consumer's user the right to, or create it ahead, or run with --%s=false and manage partitions yourself): %w",
				day.Format(time.DateOnly), names.FlagAuditCreatePartitions, err)
		}
		s.log.Info("the day's partition of audit_events is in place", "day", day.Format(time.DateOnly))
	}
	return nil
}

// dayOf returns the start of the UTC day t falls in.
func dayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// DayPartition is the statement creating the partition of table (audit_events, or a copy
// of it) for the UTC day that starts at day, named <table>_pYYYYMMDD, unless a table of
// that name exists.
func DayPartition(table string, day time.Time) string {
	day = day.UTC()
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
		pgx.Identifier{table + "_p" + day.Format("20060102")}.Sanitize(), pgx.Identifier{table}.Sanitize(),
		day.Format(time.RFC3339), day.AddDate(0, 0, 1).Format(time.RFC3339))
}

// coveredAlready recognises the errors of a partition that someone else created: the same
// name a moment earlier (duplicate_table, or unique_violation in the catalog when both
// creations ran together), or another partition holding the day (invalid_object_definition:
// "would overlap").
func coveredAlready(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "42P07" || pg.Code == "23505" || pg.Code == "42P17")
}

// columns is a batch in column arrays, the shape unnest takes.
type columns struct {
	eventID, actor, entityID, collectionID []pgtype.UUID
	eventType, entityType, topic           []string
	traceID                                []pgtype.Text
	version, partition                     []int32
	occurredAt                             []pgtype.Timestamptz
	data, envelope                         [][]byte
	offset                                 []int64
}

func columnsOf(msgs []runner.Message) *columns {
	n := len(msgs)
	c := &columns{
		eventID: make([]pgtype.UUID, n), actor: make([]pgtype.UUID, n), entityID: make([]pgtype.UUID, n), collectionID: make([]pgtype.UUID, n),
		eventType: make([]string, n), entityType: make([]string, n), topic: make([]string, n),
		traceID: make([]pgtype.Text, n), version: make([]int32, n), partition: make([]int32, n),
		occurredAt: make([]pgtype.Timestamptz, n), data: make([][]byte, n), envelope: make([][]byte, n), offset: make([]int64, n),
	}
	for i, m := range msgs {
		e := m.Event
		c.eventID[i] = pgtype.UUID{Bytes: e.EventID, Valid: true}
		c.eventType[i] = string(e.EventType)
		c.version[i] = int32(e.Version)
		c.occurredAt[i] = pgtype.Timestamptz{Time: e.OccurredAt, Valid: true}
		if e.ActorUserID != nil {
			c.actor[i] = pgtype.UUID{Bytes: *e.ActorUserID, Valid: true}
		}
		if e.TraceID != nil {
			c.traceID[i] = pgtype.Text{String: *e.TraceID, Valid: true}
		}
		c.entityType[i] = string(e.Entity.Type)
		c.entityID[i] = pgtype.UUID{Bytes: e.Entity.ID, Valid: true}
		if e.Entity.CollectionID != nil {
			c.collectionID[i] = pgtype.UUID{Bytes: *e.Entity.CollectionID, Valid: true}
		}
		c.data[i] = e.Data
		c.envelope[i] = m.Record.Value
		c.topic[i] = m.Record.Topic
		c.partition[i] = m.Record.Partition
		c.offset[i] = m.Record.Offset
	}
	return c
}
