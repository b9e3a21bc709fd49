-- The item read model. The Atlas API owns this table in production; this is its reference
-- schema, so the indexer (which only reads it) can be developed and tested against it.
-- +goose Up
CREATE TABLE IF NOT EXISTS items (
    id            uuid        NOT NULL PRIMARY KEY,
    collection_id uuid        NOT NULL,
    title         text        NOT NULL,
    content       text        NOT NULL DEFAULT '',
    source_url    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- increases with every change, deletes included: the search index's external version
    version       bigint      NOT NULL CHECK (version > 0),
    -- soft delete: the item is gone for readers
    deleted_at    timestamptz
);

-- +goose Down
DROP TABLE items;
