package audit

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/atlas-platform/atlas-operator/consumer/event"
	"github.com/atlas-platform/atlas-operator/consumer/runner"
)

func message(t *testing.T, withOptional bool) runner.Message {
	t.Helper()
	coll := uuid.New()
	opts := []event.Option{event.WithOccurredAt(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
	if withOptional {
		opts = append(opts, event.WithActor(uuid.New()), event.WithTrace("trace-1"))
	}
	e, err := event.New(event.ItemCreated, event.Entity{Type: event.EntityItem, ID: uuid.New(), CollectionID: &coll}, map[string]any{"title": "t"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if !withOptional {
		e.Entity.CollectionID = nil // a family whose collection is optional
	}
	return runner.Message{Event: e, Record: &kgo.Record{Topic: "atlas.domain-events.v1", Partition: 3, Offset: 42, Value: []byte(`{"raw":true}`)}}
}

// Both write paths store the same columns: the COPY row and the unnest arrays map each
// envelope field, the received bytes and the record's position; absent optional fields
// are NULL, never zero values.
func TestRowMapping(t *testing.T) {
	for _, optional := range []bool{true, false} {
		m := message(t, optional)
		e := m.Event
		src := &copySource{msgs: []runner.Message{m}, i: -1}
		if !src.Next() {
			t.Fatal("no row")
		}
		row, err := src.Values()
		if err != nil || len(row) != len(columnNames) {
			t.Fatalf("%d values for %d columns (%v)", len(row), len(columnNames), err)
		}
		c := columnsOf([]runner.Message{m})
		want := map[string][2]any{
			"event_id":        {row[0], c.eventID[0]},
			"event_type":      {row[1], c.eventType[0]},
			"version":         {row[2], c.version[0]},
			"occurred_at":     {row[3], c.occurredAt[0]},
			"actor_user_id":   {row[4], c.actor[0]},
			"trace_id":        {row[5], c.traceID[0]},
			"entity_type":     {row[6], c.entityType[0]},
			"entity_id":       {row[7], c.entityID[0]},
			"collection_id":   {row[8], c.collectionID[0]},
			"kafka_topic":     {row[11], c.topic[0]},
			"kafka_partition": {row[12], c.partition[0]},
			"kafka_offset":    {row[13], c.offset[0]},
		}
		for col, v := range want {
			if fmt.Sprint(v[0]) != fmt.Sprint(v[1]) {
				t.Errorf("optional=%v %s: COPY row %v, insert arrays %v", optional, col, v[0], v[1])
			}
		}
		if got := row[0].(pgtype.UUID); got.Bytes != e.EventID || !got.Valid {
			t.Errorf("event_id %v", got)
		}
		if string(row[9].([]byte)) != string(e.Data) || string(row[10].([]byte)) != `{"raw":true}` || string(c.envelope[0]) != `{"raw":true}` {
			t.Errorf("data %s / envelope %s: want the event's data and the record's bytes as received", row[9], row[10])
		}
		actor, trace, coll := row[4].(pgtype.UUID), row[5].(pgtype.Text), row[8].(pgtype.UUID)
		if actor.Valid != optional || trace.Valid != optional || coll.Valid != optional {
			t.Errorf("optional=%v: actor %v trace %v collection %v valid, want NULL exactly when absent", optional, actor.Valid, trace.Valid, coll.Valid)
		}
		if row[2].(int32) != 1 || row[12].(int32) != 3 || row[13].(int64) != 42 || row[1].(string) != "ItemCreated" {
			t.Errorf("version %v partition %v offset %v type %v", row[2], row[12], row[13], row[1])
		}
	}
}

// Which Postgres errors mean the values themselves are refused (the event is
// dead-lettered as unstorable) and which mean the batch is retried.
func TestPostgresErrorClasses(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("copy: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		name              string
		err               error
		duplicate, refuse bool
	}{
		{"unique violation: already audited", pg("23505"), true, true},
		{"a \\u0000 escape jsonb does not take (22P05)", pg("22P05"), false, true},
		{"invalid text representation", pg("22P02"), false, true},
		{"value too long for an index row (54000)", pg("54000"), false, true},
		{"connection lost (08006): retry", pg("08006"), false, false},
		{"serialization failure (40001): retry", pg("40001"), false, false},
		{"admin shutdown (57P01): retry", pg("57P01"), false, false},
		{"not a Postgres error", errors.New("dial tcp: connection refused"), false, false},
		{"a CHECK constraint refuses the row (23514): dead-lettered", &pgconn.PgError{Code: "23514", ConstraintName: "audit_events_version_check", TableName: "audit_events"}, false, true},
		{"no partition holds the row (23514, no constraint): retry until one exists",
			fmt.Errorf("copy: %w", &pgconn.PgError{Code: "23514", Message: `no partition of relation "audit_events" found for row`, TableName: "audit_events"}), false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := isDuplicate(c.err); got != c.duplicate {
				t.Errorf("isDuplicate = %v, want %v", got, c.duplicate)
			}
			if got := rejectsData(c.err); got != c.refuse {
				t.Errorf("rejectsData = %v, want %v", got, c.refuse)
			}
		})
	}
}

// Creating a day partition someone else created at the same moment, or whose day another
// partition already covers, leaves the day covered; anything else is an error to report.
func TestPartitionCreationErrors(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("create: %w", &pgconn.PgError{Code: code}) }
	for _, c := range []struct {
		name    string
		err     error
		covered bool
	}{
		{"created by another writer a moment earlier (42P07)", pg("42P07"), true},
		{"created by another writer at the same moment (23505 in the catalog)", pg("23505"), true},
		{"another partition holds the day (42P17, would overlap)", pg("42P17"), true},
		{"no right to create it (42501)", pg("42501"), false},
		{"the table is not partitioned (42P16)", pg("42P16"), false},
		{"connection lost (08006)", pg("08006"), false},
		{"not a Postgres error", errors.New("dial tcp: connection refused"), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := coveredAlready(c.err); got != c.covered {
				t.Errorf("coveredAlready = %v, want %v", got, c.covered)
			}
		})
	}
}

func TestDayPartition(t *testing.T) {
	// a time late in a day east of UTC is still the UTC day it falls in
	at := dayOf(time.Date(2026, 12, 2, 1, 30, 0, 0, time.FixedZone("UTC+3", 3*3600)))
	want := `CREATE TABLE IF NOT EXISTS "audit_events_p20261201" PARTITION OF "audit_events" FOR VALUES FROM ('2026-12-01T00:00:00Z') TO ('2026-12-02T00:00:00Z')`
	if got := DayPartition("audit_events", at); got != want {
		t.Errorf("DayPartition =\n%s\nwant\n%s", got, want)
	}
}
