-- The indexer's record of applied events (deduplication by event_id), pruned after a
-- retention period.
-- +goose Up
CREATE TABLE indexer_processed_events (
    event_id     uuid        NOT NULL PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX indexer_processed_events_processed_at_idx ON indexer_processed_events (processed_at);

-- +goose Down
DROP TABLE indexer_processed_events;
