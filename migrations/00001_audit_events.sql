-- The audit trail: every domain event exactly once, keyed by its event_id.
-- +goose Up
CREATE TABLE audit_events (
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    version         integer     NOT NULL,
    occurred_at     timestamptz NOT NULL,
    actor_user_id   uuid,
    trace_id        text,
    entity_type     text        NOT NULL,
    entity_id       uuid        NOT NULL,
    collection_id   uuid,
    data            jsonb       NOT NULL,
    -- the envelope exactly as it was received (bytes, not re-serialised)
    envelope        bytea       NOT NULL,
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_events_pkey PRIMARY KEY (event_id)
);

COMMENT ON TABLE audit_events IS 'Every event of atlas.domain-events.v1, once (deduplicated by event_id). Written by atlas consume audit.';

-- "What happened to this entity, in order?"
CREATE INDEX audit_events_entity_time_idx ON audit_events (entity_type, entity_id, occurred_at);
-- "What happened in this collection over a period?"
CREATE INDEX audit_events_collection_time_idx ON audit_events (collection_id, occurred_at) WHERE collection_id IS NOT NULL;
-- "What did this user do over a period?"
CREATE INDEX audit_events_actor_time_idx ON audit_events (actor_user_id, occurred_at) WHERE actor_user_id IS NOT NULL;

-- +goose Down
DROP TABLE audit_events;
