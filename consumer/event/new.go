package event

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Option adjusts an envelope built by New.
type Option func(*Envelope)

// WithActor sets actor_user_id.
func WithActor(id uuid.UUID) Option {
	return func(e *Envelope) { e.ActorUserID = &id }
}

// WithTrace sets trace_id; an empty id leaves it null.
func WithTrace(id string) Option {
	return func(e *Envelope) {
		if id != "" {
			e.TraceID = &id
		}
	}
}

// WithOccurredAt overrides occurred_at (converted to UTC).
func WithOccurredAt(t time.Time) Option {
	return func(e *Envelope) { e.OccurredAt = t.UTC().Truncate(time.Microsecond) }
}

// WithEventID overrides the generated event id (for replays and tests).
func WithEventID(id uuid.UUID) Option {
	return func(e *Envelope) { e.EventID = id }
}

// New builds a valid v1 envelope: a fresh UUIDv7 event_id (time-ordered), version 1,
// occurred_at now in UTC (microsecond precision, what Postgres keeps). data must
// marshal to a JSON object. The result is validated with the same rules as Decode.
func New(typ Type, entity Entity, data any, opts ...Option) (*Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new event id: %w", err)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("marshal %s data: %w", typ, err)
	}
	if data == nil {
		raw = []byte("{}")
	}
	env := &Envelope{
		EventID:    id,
		EventType:  typ,
		Version:    CurrentVersion,
		OccurredAt: time.Now().UTC().Truncate(time.Microsecond),
		Entity:     entity,
		Data:       raw,
	}
	for _, o := range opts {
		o(env)
	}
	if err := Validate(env); err != nil {
		return nil, err
	}
	return env, nil
}

// Validate checks an envelope built in Go with the same rules Decode applies to bytes.
func Validate(env *Envelope) error {
	raw, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("marshal envelope: %w", err)
	}
	_, err = Decode(raw)
	return err
}
