package indexer

import (
	"encoding/json"
	"testing"
)

func TestOutcomeOf(t *testing.T) {
	mapping := json.RawMessage(`{"type":"mapper_parsing_exception","reason":"failed to parse field [title]"}`)
	for _, c := range []struct {
		name       string
		isDelete   bool
		status     int
		body       json.RawMessage
		want       outcome
		wantReason string
	}{
		{"created", false, 201, nil, applied, ""},
		{"updated", false, 200, nil, applied, ""},
		{"deleted", true, 200, nil, applied, ""},
		{"the delete of a document that is not there", true, 404, nil, applied, ""},
		{"an index that is missing is retried, not the event's fault", false, 404, json.RawMessage(`{"type":"index_not_found_exception","reason":"no such index"}`), retry, "index_not_found_exception: no such index"},
		{"a newer version is there", false, 409, json.RawMessage(`{"type":"version_conflict_engine_exception"}`), conflict, ""},
		{"a newer delete is there", true, 409, nil, conflict, ""},
		{"throttled", false, 429, json.RawMessage(`{"type":"es_rejected_execution_exception","reason":"queue full"}`), retry, "es_rejected_execution_exception: queue full"},
		{"server error without a body", false, 503, nil, retry, "status 503"},
		{"a mapping error is for good", false, 400, mapping, rejected, "mapper_parsing_exception: failed to parse field [title]"},
		{"an error body that is not an object", false, 400, json.RawMessage(`"bad"`), rejected, `"bad"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := outcomeOf(c.isDelete, c.status, c.body)
			if r.outcome != c.want || r.reason != c.wantReason {
				t.Fatalf("outcomeOf(%v, %d) = %v %q, want %v %q", c.isDelete, c.status, r.outcome, r.reason, c.want, c.wantReason)
			}
		})
	}
}
