package indexer

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/atlas-platform/atlas-operator/consumer/pgtx"
)

// Item is an item's current state in Postgres, the source of truth.
type Item struct {
	ID           uuid.UUID
	CollectionID uuid.UUID
	Title        string
	Content      string
	SourceURL    *string
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Version      int64
	Deleted      bool
}

// itemsQuery is the indexer's one read: the current state of every item of a batch, in
// one round trip.
const itemsQuery = `SELECT id, collection_id, title, content, source_url, created_at, updated_at, version, deleted_at IS NOT NULL
FROM items WHERE id = ANY($1)`

// store is the indexer's Postgres side.
type store struct{ pool *pgxpool.Pool }

// items reads the current state of the given items; absent ids have no row (yet, or
// any more).
func (s store) items(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*Item, error) {
	rows, err := s.pool.Query(ctx, itemsQuery, uuidArray(ids))
	if err != nil {
		return nil, fmt.Errorf("read %d items: %w", len(ids), err)
	}
	defer rows.Close()
	out := make(map[uuid.UUID]*Item, len(ids))
	for rows.Next() {
		var it Item
		var id, coll pgtype.UUID
		if err := rows.Scan(&id, &coll, &it.Title, &it.Content, &it.SourceURL, &it.CreatedAt, &it.UpdatedAt, &it.Version, &it.Deleted); err != nil {
			return nil, fmt.Errorf("read items: %w", err)
		}
		it.ID, it.CollectionID = id.Bytes, coll.Bytes
		out[it.ID] = &it
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	return out, nil
}

// target returns the indexer_targets id of (index uuid, consumer group), creating it.
func (s store) target(ctx context.Context, indexUUID, indexName, group string) (int32, error) {
	var id int32
	err := s.pool.QueryRow(ctx, `INSERT INTO indexer_targets (index_uuid, index_name, consumer_group) VALUES ($1, $2, $3)
ON CONFLICT (index_uuid, consumer_group) DO UPDATE SET index_name = EXCLUDED.index_name RETURNING id`, indexUUID, indexName, group).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record the target index %s (uuid %s) of group %s: %w", indexName, indexUUID, group, err)
	}
	return id, nil
}

// applied returns which of the event ids the target already holds the effect of.
func (s store) applied(ctx context.Context, target int32, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	return s.ids(ctx, "applied events", `SELECT event_id FROM indexer_applied_events WHERE target_id = $1 AND event_id = ANY($2)`, target, uuidArray(ids))
}

// deletedItems returns which of the item ids are recorded as hard-deleted.
func (s store) deletedItems(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	return s.ids(ctx, "deleted items", `SELECT item_id FROM indexer_deleted_items WHERE item_id = ANY($1)`, uuidArray(ids))
}

func (s store) ids(ctx context.Context, what, query string, args ...any) (map[uuid.UUID]bool, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer rows.Close()
	out := map[uuid.UUID]bool{}
	for rows.Next() {
		var id pgtype.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		out[id.Bytes] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// record stores, in one durable transaction, the events whose effect the target now
// holds and the items newly known to be hard-deleted (item -> the ItemDeleted event that
// showed it). It runs only after the search server accepted the effect, so a crash never
// marks unindexed work as done, and its commit survives a crash before the offsets move.
func (s store) record(ctx context.Context, target int32, applied []uuid.UUID, hardDeleted map[uuid.UUID]uuid.UUID) error {
	b := &pgx.Batch{}
	if len(applied) > 0 {
		b.Queue(`INSERT INTO indexer_applied_events (target_id, event_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING`, target, uuidArray(applied))
	}
	if len(hardDeleted) > 0 {
		items, events := make([]uuid.UUID, 0, len(hardDeleted)), make([]uuid.UUID, 0, len(hardDeleted))
		for item, ev := range hardDeleted {
			items, events = append(items, item), append(events, ev)
		}
		b.Queue(`INSERT INTO indexer_deleted_items (item_id, event_id) SELECT * FROM unnest($1::uuid[], $2::uuid[]) ON CONFLICT DO NOTHING`, uuidArray(items), uuidArray(events))
	}
	if b.Len() == 0 {
		return nil
	}
	err := pgtx.Durable(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return fmt.Errorf("record %d applied events and %d hard-deleted items: %w", len(applied), len(hardDeleted), err)
	}
	return nil
}

// prune forgets applied event ids older than retention (hard deletes are kept).
func (s store) prune(ctx context.Context, retention time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM indexer_applied_events WHERE applied_at < now() - $1::interval`, retention)
	if err != nil {
		return 0, fmt.Errorf("prune applied events: %w", err)
	}
	return tag.RowsAffected(), nil
}

func uuidArray(ids []uuid.UUID) []pgtype.UUID {
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = pgtype.UUID{Bytes: id, Valid: true}
	}
	return out
}
