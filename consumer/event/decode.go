package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	fastjson "github.com/segmentio/encoding/json"
)

// Problem is one reason an envelope is invalid, naming the field (dotted path) it is about.
type Problem struct {
	Field  string
	Reason string
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Reason
	}
	return p.Field + ": " + p.Reason
}

// InvalidError is returned by Decode and Validate. It lists every problem found.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid event envelope: " + strings.Join(parts, "; ")
}

// NotJSON reports whether the input was not a JSON object at all (as opposed to a
// JSON object that breaks the envelope rules).
func (e *InvalidError) NotJSON() bool {
	return len(e.Problems) == 1 && e.Problems[0].Field == "" && strings.HasPrefix(e.Problems[0].Reason, "not ")
}

const (
	maxEventTypeLen = 128
	maxTraceIDLen   = 256
)

var (
	eventTypePattern = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

// canonicalUUID reports whether s is a UUID in its canonical 8-4-4-4-12 hex form, the
// only form the contract accepts (uuid.Parse also takes braces, URNs and no hyphens).
func canonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// wire is the envelope as it arrives: every field raw, so the validator can tell a
// missing field from a null one and a string from a number, and report each precisely.
type wire struct {
	EventID     json.RawMessage `json:"event_id"`
	EventType   json.RawMessage `json:"event_type"`
	Version     json.RawMessage `json:"version"`
	OccurredAt  json.RawMessage `json:"occurred_at"`
	ActorUserID json.RawMessage `json:"actor_user_id"`
	TraceID     json.RawMessage `json:"trace_id"`
	Entity      json.RawMessage `json:"entity"`
	Data        json.RawMessage `json:"data"`
}

type wireEntity struct {
	Type         json.RawMessage `json:"type"`
	ID           json.RawMessage `json:"id"`
	CollectionID json.RawMessage `json:"collection_id"`
}

// Decode parses and validates one v1 envelope. Unknown fields are tolerated. An unknown
// event_type or a version above CurrentVersion decodes as a valid envelope for which
// Known() is false. On failure the error is an *InvalidError naming each bad field.
func Decode(raw []byte) (*Envelope, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return nil, &InvalidError{Problems: []Problem{{Reason: "not JSON: empty input"}}}
	}
	if trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return nil, &InvalidError{Problems: []Problem{{Reason: "not JSON: " + syntaxReason(trimmed)}}}
		}
		return nil, &InvalidError{Problems: []Problem{{Reason: "not a JSON object: the envelope must be an object"}}}
	}
	var w wire
	if err := fastjson.Unmarshal(trimmed, &w); err != nil {
		return nil, &InvalidError{Problems: []Problem{{Reason: "not JSON: " + syntaxReason(trimmed)}}}
	}
	v := validator{}
	env := &Envelope{Raw: raw}
	env.EventID = v.uuid("event_id", w.EventID)
	env.EventType = Type(v.eventType(w.EventType))
	env.Version = v.version(w.Version)
	env.OccurredAt = v.timestamp("occurred_at", w.OccurredAt)
	env.ActorUserID = v.optionalUUID("actor_user_id", w.ActorUserID)
	env.TraceID = v.traceID(w.TraceID)
	env.Entity = v.entity(w.Entity, env.EventType, env.Version)
	env.Data = v.object("data", w.Data)
	if len(v.problems) > 0 {
		return nil, &InvalidError{Problems: v.problems}
	}
	return env, nil
}

// syntaxReason describes why data is not JSON, with the byte offset where known.
func syntaxReason(data []byte) string {
	var x any
	err := json.Unmarshal(data, &x)
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "unexpected content"
}

type validator struct {
	problems []Problem
}

func (v *validator) fail(field, format string, args ...any) {
	v.problems = append(v.problems, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func isNull(raw json.RawMessage) bool {
	return string(raw) == "null"
}

// jsonKind names the JSON type of raw for error messages.
func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// str decodes a required string field, reporting missing and wrongly typed values.
func (v *validator) str(field string, raw json.RawMessage) (string, bool) {
	if raw == nil {
		v.fail(field, "required")
		return "", false
	}
	if raw[0] != '"' {
		v.fail(field, "must be a string, got %s", jsonKind(raw))
		return "", false
	}
	// Fast path: raw was validated by the enclosing Unmarshal, so a quoted string with
	// no escapes is its own content.
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if err := fastjson.Unmarshal(raw, &s); err != nil {
		v.fail(field, "invalid string: %v", err)
		return "", false
	}
	return s, true
}

func (v *validator) uuid(field string, raw json.RawMessage) uuid.UUID {
	s, ok := v.str(field, raw)
	if !ok {
		return uuid.Nil
	}
	return v.parseUUID(field, s)
}

func (v *validator) parseUUID(field, s string) uuid.UUID {
	if !canonicalUUID(s) {
		v.fail(field, "not a UUID: %s", strconv.Quote(s))
		return uuid.Nil
	}
	id, err := uuid.Parse(s)
	if err != nil {
		v.fail(field, "not a UUID: %s", strconv.Quote(s))
	}
	return id
}

// optionalUUID accepts a missing field or null (nil result) or a UUID string.
func (v *validator) optionalUUID(field string, raw json.RawMessage) *uuid.UUID {
	if raw == nil || isNull(raw) {
		return nil
	}
	id := v.uuid(field, raw)
	return &id
}

func (v *validator) eventType(raw json.RawMessage) string {
	s, ok := v.str("event_type", raw)
	if !ok {
		return ""
	}
	switch {
	case s == "":
		v.fail("event_type", "must not be empty")
	case len(s) > maxEventTypeLen:
		v.fail("event_type", "longer than %d characters", maxEventTypeLen)
	case !eventTypePattern.MatchString(s):
		v.fail("event_type", "must be a PascalCase name such as \"ItemCreated\", got %s", strconv.Quote(s))
	}
	return s
}

func (v *validator) version(raw json.RawMessage) int {
	if raw == nil {
		v.fail("version", "required")
		return 0
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		v.fail("version", "must be a positive integer, got %s", jsonKind(raw))
		return 0
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f > math.MaxInt32 {
		v.fail("version", "must be a positive integer, got %s", raw)
		return 0
	}
	if f < 1 {
		v.fail("version", "must be a positive integer, got %s", raw)
		return 0
	}
	return int(f)
}

func (v *validator) timestamp(field string, raw json.RawMessage) time.Time {
	s, ok := v.str(field, raw)
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !rfc3339Shape(s) {
		v.fail(field, "not an RFC 3339 timestamp with a time zone (like 2026-01-31T12:00:00Z): %s", strconv.Quote(s))
		return time.Time{}
	}
	return t
}

// rfc3339Shape rejects what time.Parse tolerates but RFC 3339 does not (single-digit
// fields are already rejected; a lowercase zone letter or a missing zone are not allowed).
func rfc3339Shape(s string) bool {
	return len(s) >= len("2006-01-02T15:04:05Z") && s[10] == 'T' &&
		(strings.HasSuffix(s, "Z") || s[len(s)-6] == '+' || s[len(s)-6] == '-')
}

func (v *validator) traceID(raw json.RawMessage) *string {
	if raw == nil || isNull(raw) {
		return nil
	}
	s, ok := v.str("trace_id", raw)
	if !ok {
		return nil
	}
	switch {
	case s == "":
		v.fail("trace_id", "must not be empty (use null when there is no trace)")
	case utf8.RuneCountInString(s) > maxTraceIDLen:
		v.fail("trace_id", "longer than %d characters", maxTraceIDLen)
	}
	return &s
}

func (v *validator) object(field string, raw json.RawMessage) json.RawMessage {
	if raw == nil {
		v.fail(field, "required")
		return nil
	}
	if raw[0] != '{' {
		v.fail(field, "must be a JSON object, got %s", jsonKind(raw))
		return nil
	}
	return raw
}

func (v *validator) entity(raw json.RawMessage, typ Type, version int) Entity {
	if v.object("entity", raw) == nil {
		return Entity{}
	}
	var w wireEntity
	if err := fastjson.Unmarshal(raw, &w); err != nil {
		v.fail("entity", "invalid: %v", err)
		return Entity{}
	}
	var e Entity
	if s, ok := v.str("entity.type", w.Type); ok {
		e.Type = EntityType(s)
		if s == "" {
			v.fail("entity.type", "must not be empty")
		}
	}
	e.ID = v.uuid("entity.id", w.ID)
	e.CollectionID = v.optionalUUID("entity.collection_id", w.CollectionID)

	// Family rules hold for the v1 event types; newer versions and unknown types
	// may define their own.
	want, known := typ.EntityType()
	if !known || version != CurrentVersion {
		return e
	}
	if e.Type != "" && e.Type != want {
		v.fail("entity.type", "must be %q for %s events, got %q", want, typ, e.Type)
	}
	if typ.needsCollection() && e.CollectionID == nil && (w.CollectionID == nil || isNull(w.CollectionID)) {
		v.fail("entity.collection_id", "required for %s events", typ)
	}
	return e
}
