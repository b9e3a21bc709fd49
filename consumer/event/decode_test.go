package event_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/atlas-platform/atlas-operator/consumer/event"
)

func asInvalid(err error, target **event.InvalidError) bool {
	return errors.As(err, target)
}

func TestDecodeNotJSON(t *testing.T) {
	for _, in := range []string{"", "   ", "not json", `{"event_id":`, "\x00\x01", `"a string"`, "42", "null"} {
		_, err := event.Decode([]byte(in))
		var inv *event.InvalidError
		if !asInvalid(err, &inv) {
			t.Fatalf("Decode(%q) error = %v, want *InvalidError", in, err)
		}
		if !inv.NotJSON() {
			t.Errorf("Decode(%q): NotJSON() = false: %v", in, err)
		}
		if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("Decode(%q): empty error", in)
		}
	}
}

func TestDecodeFields(t *testing.T) {
	raw := []byte(`{"event_id":"0192f0a4-7c3e-7b1a-9d2e-4f5a6b7c8d9e","event_type":"ItemUpdated","version":1,
		"occurred_at":"2025-01-15T12:30:00.5+02:00","actor_user_id":"3f8e2a1c-4b5d-4e6f-8a9b-0c1d2e3f4a5b",
		"trace_id":"abc","entity":{"type":"Item","id":"8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a",
		"collection_id":"1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"},"data":{"title":"x"}}`)
	env, err := event.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if env.EventID != uuid.MustParse("0192f0a4-7c3e-7b1a-9d2e-4f5a6b7c8d9e") || env.EventType != event.ItemUpdated ||
		env.Version != 1 || env.Trace() != "abc" || env.Entity.Type != event.EntityItem {
		t.Fatalf("unexpected envelope %+v", env)
	}
	if got := env.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"); got != "2025-01-15T10:30:00.500Z" {
		t.Fatalf("occurred_at = %s", got)
	}
	if env.PartitionKey() != "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d" {
		t.Fatalf("partition key = %s", env.PartitionKey())
	}
	if string(env.Data) != `{"title":"x"}` {
		t.Fatalf("data = %s", env.Data)
	}
	if !env.Known() {
		t.Fatal("ItemUpdated v1 should be known")
	}
}

func TestNewRoundTrip(t *testing.T) {
	col := uuid.New()
	env, err := event.New(event.ItemCreated,
		event.Entity{Type: event.EntityItem, ID: uuid.New(), CollectionID: &col},
		map[string]string{"title": "hello"}, event.WithTrace("trace-1"), event.WithActor(uuid.New()))
	if err != nil {
		t.Fatal(err)
	}
	if env.EventID.Version() != 7 {
		t.Fatalf("event_id is UUID version %d, want 7", env.EventID.Version())
	}
	if env.Version != 1 || env.OccurredAt.Location().String() != "UTC" {
		t.Fatalf("version %d, zone %s", env.Version, env.OccurredAt.Location())
	}
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	back, err := event.Decode(raw)
	if err != nil {
		t.Fatalf("decode what New built: %v\n%s", err, raw)
	}
	if back.EventID != env.EventID || !back.OccurredAt.Equal(env.OccurredAt) || back.Trace() != "trace-1" ||
		*back.Entity.CollectionID != col || *back.ActorUserID != *env.ActorUserID {
		t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, back)
	}
}

func TestNewRejectsInvalid(t *testing.T) {
	_, err := event.New(event.ItemCreated, event.Entity{Type: event.EntityItem, ID: uuid.New()}, map[string]any{})
	if err == nil || !strings.Contains(err.Error(), "entity.collection_id: required for ItemCreated events") {
		t.Fatalf("err = %v", err)
	}
	_, err = event.New(event.JobCreated, event.Entity{Type: event.EntityJob, ID: uuid.New()}, []int{1})
	if err == nil || !strings.Contains(err.Error(), "data: must be a JSON object") {
		t.Fatalf("err = %v", err)
	}
}

func TestRecordKeyAndHeaders(t *testing.T) {
	col := uuid.New()
	item := uuid.New()
	env, err := event.New(event.ItemDeleted, event.Entity{Type: event.EntityItem, ID: item, CollectionID: &col}, nil,
		event.WithTrace("t-9"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := event.Record("topic-a", env)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != col.String() || r.Topic != "topic-a" {
		t.Fatalf("key %s topic %s", r.Key, r.Topic)
	}
	for k, want := range map[string]string{"event_type": "ItemDeleted", "event_version": "1", "trace_id": "t-9"} {
		if got := string(event.Header(r, k)); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	job, err := event.New(event.JobCreated, event.Entity{Type: event.EntityJob, ID: item}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err = event.Record("topic-a", job)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != item.String() || event.Header(r, "trace_id") != nil {
		t.Fatalf("job record key %s, trace header %q", r.Key, event.Header(r, "trace_id"))
	}
}

// Invalid UTF-8 gets one verdict wherever it is (not only where a field is read as a
// string): the envelope is not JSON text, and is dead-lettered as not-json.
func TestDecodeInvalidUTF8Anywhere(t *testing.T) {
	valid := `{"event_id":"0192f0a4-7c3e-7b1a-9d2e-4f5a6b7c8d9e","event_type":"CollectionCreated","version":1,` +
		`"occurred_at":"2025-01-15T10:30:00Z","trace_id":"T","entity":{"type":"Collection","id":"8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"},` +
		`"data":{"name":"N"},"extra":"X"}`
	if _, err := event.Decode([]byte(valid)); err != nil {
		t.Fatalf("the valid envelope: %v", err)
	}
	for _, where := range []string{`"T"`, `"N"`, `"X"`, `"CollectionCreated"`} {
		bad := strings.Replace(valid, where, where[:2]+"\xff\xfe"+where[2:], 1)
		_, err := event.Decode([]byte(bad))
		var inv *event.InvalidError
		if !asInvalid(err, &inv) || !inv.NotJSON() || !strings.Contains(err.Error(), "not UTF-8") {
			t.Errorf("invalid UTF-8 in %s: %v, want a not-JSON error saying not UTF-8", where, err)
		}
	}
}

// A member name given twice is an error at any depth, named by its path; a key written
// with escapes is the key it decodes to.
func TestDecodeMemberNamesOnce(t *testing.T) {
	base := `{"event_id":"0192f0a4-7c3e-7b1a-9d2e-4f5a6b7c8d9e","event_type":"CollectionCreated","version":1,` +
		`"occurred_at":"2025-01-15T10:30:00Z","entity":{"type":"Collection","id":"8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"},`
	for _, c := range []struct{ data, field string }{
		{`"data":{"a":1,"b":{"c":1,"c":2}}}`, "data.b.c"},
		{`"data":{"list":[{"x":1},{"x":1,"x":2}]}}`, "data.list[1].x"},
		{`"data":{"a":1},"extra":1,"extra":2}`, "extra"},
		{`"data":{"a":1,"\u0061":2}}`, "data.a"},
	} {
		_, err := event.Decode([]byte(base + c.data))
		var inv *event.InvalidError
		if !asInvalid(err, &inv) || len(inv.Problems) != 1 || inv.Problems[0].Field != c.field || inv.NotJSON() {
			t.Errorf("%s: %v, want one problem with %s", c.data, err, c.field)
		}
	}
	env, err := event.Decode([]byte(`{"event\u005fid":"0192f0a4-7c3e-7b1a-9d2e-4f5a6b7c8d9e","event_type":"CollectionCreated","version":1,` +
		`"occurred_at":"2025-01-15T10:30:00Z","entity":{"type":"Collection","id":"8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"},"data":{}}`))
	if err != nil || env.EventID.String() != "0192f0a4-7c3e-7b1a-9d2e-4f5a6b7c8d9e" {
		t.Fatalf("an escaped key: %v", err)
	}
}

// A hostile record (nesting as deep as JSON allows, thousands of repeated names) is
// refused with a bounded list of problems.
func TestDecodeHostileShapes(t *testing.T) {
	base := `{"event_id":"0192f0a4-7c3e-7b1a-9d2e-4f5a6b7c8d9e","event_type":"CollectionCreated","version":1,` +
		`"occurred_at":"2025-01-15T10:30:00Z","entity":{"type":"Collection","id":"8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"},"data":`
	deep := base + `{"a":` + strings.Repeat(`[`, 9_000) + strings.Repeat(`]`, 9_000) + `}}`
	if _, err := event.Decode([]byte(deep)); err != nil {
		t.Fatalf("9,000 levels of nesting, all names distinct: %v", err)
	}
	dups := base + `{` + strings.Repeat(`"a":1,`, 50_000) + `"a":1}}`
	_, err := event.Decode([]byte(dups))
	var inv *event.InvalidError
	if !asInvalid(err, &inv) || len(inv.Problems) > 20 || inv.Problems[0].Field != "data.a" {
		t.Fatalf("50,000 repeated names: %v", err)
	}
}
