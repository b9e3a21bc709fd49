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

// InvalidKind says what is wrong with an input as a whole.
type InvalidKind int

const (
	// InvalidEnvelope: a JSON object that breaks the envelope rules.
	InvalidEnvelope InvalidKind = iota
	// NotJSONObject: not a JSON object at all (not JSON, not UTF-8, or another JSON value).
	NotJSONObject
)

// InvalidError is returned by Decode and Validate. It lists every problem found.
type InvalidError struct {
	Kind     InvalidKind
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
func (e *InvalidError) NotJSON() bool { return e.Kind == NotJSONObject }

func notJSON(reason string) *InvalidError {
	return &InvalidError{Kind: NotJSONObject, Problems: []Problem{{Reason: reason}}}
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
	EventID, EventType, Version, OccurredAt, ActorUserID, TraceID, Entity, Data json.RawMessage
}

// The contract's keys, spelled as it spells them. Keys are matched exactly: Go's JSON
// decoding (and others') would take "EVENT_ID" for "event_id", which the JSON Schema
// does not.
var (
	envelopeKeys = [...]string{"event_id", "event_type", "version", "occurred_at", "actor_user_id", "trace_id", "entity", "data"}
	entityKeys   = [...]string{"type", "id", "collection_id"}
)

// Decode parses and validates one v1 envelope. Unknown fields are tolerated; a key that
// differs from a contract key only in case, or a contract key given twice, is not. An
// unknown event_type or a version above CurrentVersion decodes as a valid envelope for
// which Known() is false. On failure the error is an *InvalidError naming each bad field.
func Decode(raw []byte) (*Envelope, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		return nil, notJSON("not JSON: empty input")
	}
	if !utf8.Valid(trimmed) {
		return nil, notJSON(fmt.Sprintf("not UTF-8: invalid byte at offset %d (JSON text must be UTF-8)", invalidUTF8At(trimmed)))
	}
	if !fastjson.Valid(trimmed) {
		return nil, notJSON("not JSON: " + syntaxReason(trimmed))
	}
	if trimmed[0] != '{' {
		return nil, notJSON("not a JSON object: the envelope must be an object")
	}
	v := validator{}
	var w wire
	m := v.members("", trimmed, envelopeKeys[:], true)
	w.EventID, w.EventType, w.Version, w.OccurredAt, w.ActorUserID, w.TraceID, w.Entity, w.Data = m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]
	env := &Envelope{Raw: raw}
	env.EventID = v.eventID(w.EventID)
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

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// members returns the raw values of the contract keys in the object obj (valid JSON),
// in the order of keys (nil when absent). A key that differs from a contract key only in
// case, or a contract key given twice in any spelling, is a problem of that field: JSON
// readers disagree on which of two values wins, so none is taken. With walk, it also
// reports any other member name given twice, here or in the nested values (see
// uniqueNamesAt), in the same pass.
func (v *validator) members(prefix string, obj []byte, keys []string, walk bool) []json.RawMessage {
	out := make([]json.RawMessage, len(keys))
	// per key: how often it was given, and its spellings in order
	var given [len(envelopeKeys)]int
	var spelt [len(envelopeKeys)][]string
	var buf [16][]byte
	others := buf[:0]      // names that are not contract keys
	i := skipSpace(obj, 1) // past '{'
	for i < len(obj) && obj[i] == '"' {
		end := skipString(obj, i)
		key := obj[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			key = []byte(keyName(key))
		}
		i = skipSpace(obj, skipSpace(obj, end)+1) // past ':'
		start := i
		if walk && (obj[i] == '{' || obj[i] == '[') {
			i = v.uniqueNamesAt(obj, i, &pathElem{name: key})
		} else {
			i = skipValue(obj, i)
		}
		value := obj[start:i]
		contract := false
		for j, k := range keys {
			exact := string(key) == k
			if !exact && !strings.EqualFold(string(key), k) {
				continue
			}
			contract = true
			given[j]++
			if exact && out[j] == nil {
				out[j] = value
			}
			if !exact || given[j] > 1 {
				if len(spelt[j]) == 0 && given[j] > 1 {
					spelt[j] = append(spelt[j], k) // the exact spelling came first
				}
				spelt[j] = append(spelt[j], string(key))
			}
			break
		}
		if !contract && walk {
			for _, o := range others {
				if bytes.Equal(o, key) {
					v.fail(prefix+string(key), "given twice: readers disagree on which value wins")
					break
				}
			}
			others = append(others, key)
		}
		i = nextElement(obj, i)
	}
	for j, k := range keys {
		switch {
		case len(spelt[j]) == 0:
			continue
		case given[j] == 1:
			v.fail(prefix+k, "given as %s: keys are case-sensitive, spell it %s", strconv.Quote(spelt[j][0]), strconv.Quote(k))
		default:
			quoted := make([]string, len(spelt[j]))
			for n, s := range spelt[j] {
				quoted[n] = strconv.Quote(s)
			}
			v.fail(prefix+k, "given %d times (%s): readers disagree on which value wins", given[j], strings.Join(quoted, ", "))
		}
		out[j] = nil
	}
	return out
}

// keyName decodes a key as written (quotes excluded).
func keyName(raw []byte) string {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var name string
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	_ = fastjson.Unmarshal(quoted, &name)
	return name
}

// pathElem is one step of the path to a nested value: a member name or an array index.
type pathElem struct {
	parent *pathElem
	name   []byte
	index  int
}

func (p *pathElem) String() string {
	if p == nil {
		return ""
	}
	parent := p.parent.String()
	switch {
	case p.name == nil:
		return parent + "[" + strconv.Itoa(p.index) + "]"
	case parent == "":
		return string(p.name)
	default:
		return parent + "." + string(p.name)
	}
}

// uniqueNamesAt reports a member name given twice in any object of the value starting at
// b[i] (valid JSON), at any depth, and returns the offset just past the value: an
// envelope is an I-JSON message (RFC 7493), and readers disagree on which of two values
// wins. One pass over the bytes however deep the nesting; a path is only spelt out for a
// problem.
func (v *validator) uniqueNamesAt(b []byte, i int, path *pathElem) int {
	switch b[i] {
	case '{':
		var names [16][]byte
		seen := names[:0]
		i = skipSpace(b, i+1)
		for i < len(b) && b[i] == '"' {
			end := skipString(b, i)
			key := b[i+1 : end-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				key = []byte(keyName(key))
			}
			for _, k := range seen {
				if bytes.Equal(k, key) {
					v.fail((&pathElem{parent: path, name: key}).String(), "given twice: readers disagree on which value wins")
					break
				}
			}
			seen = append(seen, key)
			i = skipSpace(b, skipSpace(b, end)+1) // past ':'
			if b[i] == '{' || b[i] == '[' {
				i = v.uniqueNamesAt(b, i, &pathElem{parent: path, name: key})
			} else {
				i = skipValue(b, i)
			}
			i = nextElement(b, i)
		}
		return i + 1 // past '}'
	case '[':
		i = skipSpace(b, i+1)
		for n := 0; i < len(b) && b[i] != ']'; n++ {
			if b[i] == '{' || b[i] == '[' {
				i = v.uniqueNamesAt(b, i, &pathElem{parent: path, index: n})
			} else {
				i = skipValue(b, i)
			}
			i = nextElement(b, i)
		}
		return i + 1 // past ']'
	default:
		return skipValue(b, i)
	}
}

// nextElement returns the offset of the next member or element after a value that ends
// at b[i]: past the whitespace and a comma, if any.
func nextElement(b []byte, i int) int {
	i = skipSpace(b, i)
	if i < len(b) && b[i] == ',' {
		i = skipSpace(b, i+1)
	}
	return i
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset just past the string starting at b[i] ('"'): the next
// quote not escaped by an odd number of backslashes, found with bytes.IndexByte.
func skipString(b []byte, i int) int {
	for from := i + 1; ; {
		j := bytes.IndexByte(b[from:], '"')
		if j < 0 {
			return len(b)
		}
		end := from + j
		k := end - 1
		for k > i && b[k] == '\\' {
			k--
		}
		if (end-1-k)%2 == 0 {
			return end + 1
		}
		from = end + 1
	}
}

// skipValue returns the offset just past the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) && !bytes.ContainsRune([]byte(",}] \t\n\r"), rune(b[i])) {
			i++
		}
		return i
	}
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

// maxProblems bounds the problems listed for one input (a hostile record may hold
// thousands); the last one says that more were not listed.
const maxProblems = 20

// fail records a problem of field; a field already found wrong keeps its first problem
// (a misspelt key is not also "required").
func (v *validator) fail(field, format string, args ...any) {
	if len(v.problems) >= maxProblems {
		return
	}
	for _, p := range v.problems {
		if p.Field == field && field != "" {
			return
		}
	}
	if len(v.problems) == maxProblems-1 {
		v.problems = append(v.problems, Problem{Reason: "more problems, not listed"})
		return
	}
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

// eventID decodes event_id: a UUID, and not the nil UUID (all zeros), which a producer
// sends when it forgot to set one.
func (v *validator) eventID(raw json.RawMessage) uuid.UUID {
	before := len(v.problems)
	id := v.uuid("event_id", raw)
	if len(v.problems) == before && id == uuid.Nil {
		v.fail("event_id", "must not be the nil UUID 00000000-0000-0000-0000-000000000000")
	}
	return id
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

// rfc3339Shape checks the RFC 3339 date-time grammar exactly as the contract (and the
// JSON Schema's pattern) spells it: YYYY-MM-DDTHH:MM:SS with hours 00-23, minutes and
// seconds 00-59 (no leap second, which Go's time cannot hold), an optional fraction of
// one or more digits after '.', then Z or an offset of ±HH:MM within 23:59. time.Parse
// alone is looser (a comma before the fraction, offsets like +24:00); it checks the date.
func rfc3339Shape(s string) bool {
	digits := func(from, to int) bool {
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	// hhmm checks HH:MM at i (HH 00-23, MM 00-59).
	hhmm := func(i int) bool {
		return digits(i, i+2) && s[i+2] == ':' && digits(i+3, i+5) && (s[i] < '2' || s[i] == '2' && s[i+1] <= '3') && s[i+3] <= '5'
	}
	if len(s) < 20 || !digits(0, 4) || s[4] != '-' || !digits(5, 7) || s[7] != '-' || !digits(8, 10) || s[10] != 'T' ||
		!hhmm(11) || s[16] != ':' || !digits(17, 19) || s[17] > '5' {
		return false
	}
	i := 19
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return false
		}
		i = j
	}
	switch {
	case i == len(s)-1:
		return s[i] == 'Z'
	case i == len(s)-6:
		return (s[i] == '+' || s[i] == '-') && hhmm(i+1)
	default:
		return false
	}
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
	m := v.members("entity.", raw, entityKeys[:], false)
	rawType, rawID, rawCollection := m[0], m[1], m[2]
	var e Entity
	if s, ok := v.str("entity.type", rawType); ok {
		e.Type = EntityType(s)
		if s == "" {
			v.fail("entity.type", "must not be empty")
		}
	}
	e.ID = v.uuid("entity.id", rawID)
	e.CollectionID = v.optionalUUID("entity.collection_id", rawCollection)

	// Family rules hold for the v1 event types; newer versions and unknown types
	// may define their own.
	want, known := typ.EntityType()
	if !known || version != CurrentVersion {
		return e
	}
	if e.Type != "" && e.Type != want {
		v.fail("entity.type", "must be %q for %s events, got %q", want, typ, e.Type)
	}
	if typ.needsCollection() && e.CollectionID == nil && (rawCollection == nil || isNull(rawCollection)) {
		v.fail("entity.collection_id", "required for %s events", typ)
	}
	return e
}
