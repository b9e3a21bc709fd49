// Package event owns the v1 contract of the Atlas domain events published to
// atlas.domain-events.v1: the envelope types, a strict decoder and validator,
// construction of new events and publishing them with franz-go.
//
// The package performs no I/O besides publishing.
package event

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// CurrentVersion is the envelope version this package produces and fully understands.
const CurrentVersion = 1

// Type is an event_type value, such as "ItemCreated".
type Type string

// The ten event types of envelope v1.
const (
	CollectionCreated     Type = "CollectionCreated"
	CollectionUpdated     Type = "CollectionUpdated"
	CollectionDeleted     Type = "CollectionDeleted"
	MembershipAdded       Type = "MembershipAdded"
	MembershipRoleChanged Type = "MembershipRoleChanged"
	MembershipRemoved     Type = "MembershipRemoved"
	ItemCreated           Type = "ItemCreated"
	ItemUpdated           Type = "ItemUpdated"
	ItemDeleted           Type = "ItemDeleted"
	JobCreated            Type = "JobCreated"
	JobUpdated            Type = "JobUpdated"
)

// EntityType is an entity.type value.
type EntityType string

// The entity types of envelope v1.
const (
	EntityItem       EntityType = "Item"
	EntityCollection EntityType = "Collection"
	EntityMembership EntityType = "Membership"
	EntityJob        EntityType = "Job"
)

// families maps every known event type to the entity type it is about.
var families = map[Type]EntityType{
	CollectionCreated:     EntityCollection,
	CollectionUpdated:     EntityCollection,
	CollectionDeleted:     EntityCollection,
	MembershipAdded:       EntityMembership,
	MembershipRoleChanged: EntityMembership,
	MembershipRemoved:     EntityMembership,
	ItemCreated:           EntityItem,
	ItemUpdated:           EntityItem,
	ItemDeleted:           EntityItem,
	JobCreated:            EntityJob,
	JobUpdated:            EntityJob,
}

// Types returns the known event types of envelope v1.
func Types() []Type {
	return []Type{
		CollectionCreated, CollectionUpdated, CollectionDeleted,
		MembershipAdded, MembershipRoleChanged, MembershipRemoved,
		ItemCreated, ItemUpdated, ItemDeleted,
		JobCreated, JobUpdated,
	}
}

// Known reports whether t is one of the v1 event types.
func (t Type) Known() bool {
	_, ok := families[t]
	return ok
}

// EntityType returns the entity type events of type t are about, and false for unknown types.
func (t Type) EntityType() (EntityType, bool) {
	e, ok := families[t]
	return e, ok
}

// needsCollection reports whether events of type t must carry entity.collection_id.
func (t Type) needsCollection() bool {
	e := families[t]
	return e == EntityItem || e == EntityMembership
}

// Entity names what an event is about.
type Entity struct {
	Type EntityType `json:"type"`
	ID   uuid.UUID  `json:"id"`
	// CollectionID is required for Item and Membership events, optional otherwise.
	CollectionID *uuid.UUID `json:"collection_id,omitempty"`
}

// Envelope is a decoded and validated v1 envelope.
type Envelope struct {
	EventID     uuid.UUID       `json:"event_id"`
	EventType   Type            `json:"event_type"`
	Version     int             `json:"version"`
	OccurredAt  time.Time       `json:"occurred_at"`
	ActorUserID *uuid.UUID      `json:"actor_user_id"`
	TraceID     *string         `json:"trace_id"`
	Entity      Entity          `json:"entity"`
	Data        json.RawMessage `json:"data"`

	// Raw holds the bytes the envelope was decoded from (nil for envelopes built with New).
	// Unknown fields are kept there: consumers that store the envelope store Raw.
	Raw []byte `json:"-"`
}

// Known reports whether this consumer build fully understands the envelope: a v1 event
// type at a version no higher than CurrentVersion. Unknown envelopes are still valid
// (the audit records them); consumers decide what they handle.
func (e *Envelope) Known() bool {
	return e.EventType.Known() && e.Version <= CurrentVersion
}

// PartitionKey is the Kafka record key: the collection id, or the entity id when the
// event has no collection, so one collection's events stay ordered.
func (e *Envelope) PartitionKey() string {
	if e.Entity.CollectionID != nil {
		return e.Entity.CollectionID.String()
	}
	return e.Entity.ID.String()
}

// Trace returns the trace id, or "" when the event carries none.
func (e *Envelope) Trace() string {
	if e.TraceID == nil {
		return ""
	}
	return *e.TraceID
}
