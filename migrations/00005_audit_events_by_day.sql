-- audit_events partitioned by range of occurred_at (the consumer creates one partition per
-- UTC day as events need it). Each insert then touches only its day's indexes, which stay
-- small and hot: on one table, the indexes by entity and collection (random ids) grow past
-- memory, and after every checkpoint nearly every insert dirties a page no insert has
-- touched since, so the write rate falls as the table grows. Dropping a partition also
-- ends a day's retention without a DELETE.
--
-- A partitioned table's unique key must hold the partition key, so the primary key is
-- (event_id, occurred_at). A redelivered event is the same envelope, so it still meets
-- its first copy there.
--
-- Only an empty, unpartitioned audit_events is replaced (a new install, or one that never
-- stored an event). A table that holds rows is left as it is, since converting it means
-- copying it under a lock the DBA should choose the time of (README: "Partitioning
-- audit_events by time"). A table a DBA already partitioned is left alone too.
-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE;
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass) = 'p' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM audit_events) THEN
        RAISE NOTICE 'audit_events holds rows: left as one table (see the README on partitioning it by time)';
        RETURN;
    END IF;
    DROP TABLE audit_events;
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
        envelope        bytea       NOT NULL,
        kafka_topic     text        NOT NULL,
        kafka_partition integer     NOT NULL,
        kafka_offset    bigint      NOT NULL,
        received_at     timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT audit_events_pkey PRIMARY KEY (event_id, occurred_at)
    ) PARTITION BY RANGE (occurred_at);
    COMMENT ON TABLE audit_events IS 'Every event of atlas.domain-events.v1, once (deduplicated by event_id and occurred_at), partitioned by UTC day of occurred_at. Written by atlas consume audit, which creates the partitions.';
    CREATE INDEX audit_events_entity_time_idx ON audit_events (entity_type, entity_id, occurred_at);
    CREATE INDEX audit_events_collection_time_idx ON audit_events (collection_id, occurred_at) WHERE collection_id IS NOT NULL;
    CREATE INDEX audit_events_actor_time_idx ON audit_events (actor_user_id, occurred_at) WHERE actor_user_id IS NOT NULL;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE;
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass) <> 'p' THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT FROM audit_events) THEN
        RAISE EXCEPTION 'audit_events holds rows in its day partitions: copy them into one table by hand before going below migration 00005';
    END IF;
    DROP TABLE audit_events;
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
        envelope        bytea       NOT NULL,
        kafka_topic     text        NOT NULL,
        kafka_partition integer     NOT NULL,
        kafka_offset    bigint      NOT NULL,
        received_at     timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT audit_events_pkey PRIMARY KEY (event_id)
    );
    COMMENT ON TABLE audit_events IS 'Every event of atlas.domain-events.v1, once (deduplicated by event_id). Written by atlas consume audit.';
    CREATE INDEX audit_events_entity_time_idx ON audit_events (entity_type, entity_id, occurred_at);
    CREATE INDEX audit_events_collection_time_idx ON audit_events (collection_id, occurred_at) WHERE collection_id IS NOT NULL;
    CREATE INDEX audit_events_actor_time_idx ON audit_events (actor_user_id, occurred_at) WHERE actor_user_id IS NOT NULL;
END $$;
-- +goose StatementEnd
