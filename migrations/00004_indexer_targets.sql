-- The indexer's record of applied events becomes per target: a target is one concrete
-- search index (by its uuid, so a re-created index with the same name is a new target)
-- written by one consumer group. A new group or a new index therefore rebuilds from the
-- topic instead of counting every event as already applied. Hard deletes are recorded
-- per item, because a missing row alone does not prove a delete (the row may not be
-- committed, or visible, yet) and item ids are never reused.
-- +goose Up
CREATE TABLE indexer_targets (
    id             integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    index_uuid     text        NOT NULL,
    index_name     text        NOT NULL,
    consumer_group text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT indexer_targets_index_group_key UNIQUE (index_uuid, consumer_group)
);
COMMENT ON TABLE indexer_targets IS 'Search indexes (by uuid) and the consumer groups writing them; each has its own record of applied events.';

CREATE TABLE indexer_applied_events (
    target_id  integer     NOT NULL,
    event_id   uuid        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT indexer_applied_events_pkey PRIMARY KEY (target_id, event_id)
);
CREATE INDEX indexer_applied_events_applied_at_idx ON indexer_applied_events (applied_at);
COMMENT ON TABLE indexer_applied_events IS 'Item events whose effect a target holds (written after the search server accepted it); pruned after a retention period.';

CREATE TABLE indexer_deleted_items (
    item_id     uuid        NOT NULL PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    -- the ItemDeleted event that met the missing row; null when the trigger recorded it
    event_id    uuid
);
COMMENT ON TABLE indexer_deleted_items IS 'Items known to be hard-deleted. Never pruned: item ids are never reused.';

-- Hard deletes are recorded where they happen, in the deleting transaction, so the record
-- is visible wherever the missing row is (a replica included) and a consumer far behind
-- the topic still tells a deleted item from a row not committed yet. The indexer also
-- records an ItemDeleted event that meets a missing row, for items deleted where this
-- trigger was not installed.
-- +goose StatementBegin
CREATE FUNCTION indexer_record_hard_deletes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO indexer_deleted_items (item_id) SELECT id FROM gone ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER items_record_hard_deletes AFTER DELETE ON items
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION indexer_record_hard_deletes();

-- Its ids say nothing about which index holds their effect.
DROP TABLE indexer_processed_events;

-- +goose Down
DROP TRIGGER items_record_hard_deletes ON items;
DROP FUNCTION indexer_record_hard_deletes();
CREATE TABLE indexer_processed_events (
    event_id     uuid        NOT NULL PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX indexer_processed_events_processed_at_idx ON indexer_processed_events (processed_at);
DROP TABLE indexer_deleted_items;
DROP TABLE indexer_applied_events;
DROP TABLE indexer_targets;
