package indexer

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
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

// items reads the current state of the given items; absent ids are hard-deleted items.
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

// processed returns which of the event ids were already applied.
func (s store) processed(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT event_id FROM indexer_processed_events WHERE event_id = ANY($1)`, uuidArray(ids))
	if err != nil {
		return nil, fmt.Errorf("read processed events: %w", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]bool{}
	for rows.Next() {
		var id pgtype.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read processed events: %w", err)
		}
		out[id.Bytes] = true
	}
	return out, rows.Err()
}

// markProcessed records event ids as applied. It runs only after the search server
// accepted their effect, so a crash never marks unindexed work as done.
func (s store) markProcessed(ctx context.Context, ids []uuid.UUID) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO indexer_processed_events (event_id) SELECT unnest($1::uuid[]) ON CONFLICT (event_id) DO NOTHING`, uuidArray(ids))
	if err != nil {
		return fmt.Errorf("record %d processed events: %w", len(ids), err)
	}
	return nil
}

// prune forgets applied event ids older than retention.
func (s store) prune(ctx context.Context, retention time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM indexer_processed_events WHERE processed_at < now() - $1::interval`, retention)
	if err != nil {
		return 0, fmt.Errorf("prune processed events: %w", err)
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
