// Package itemwriter stands in for the Atlas API's write side in tests, benchmarks and
// the local demo: it applies item events to the reference items table (migrations/
// 00002), as the API commits an item change before it publishes the event. Production
// items are written by the Atlas API itself; the indexer only reads them.
package itemwriter

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/atlas-platform/atlas-operator/consumer/event"
)

// Execer runs a batch of statements (a *pgxpool.Pool or a pgx.Tx).
type Execer interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// HardDeleteQuarter hard-deletes one item in four (by id) and soft-deletes the others,
// so both kinds of delete occur.
func HardDeleteQuarter(id uuid.UUID) bool { return id[0]%4 == 0 }

// Apply writes the item events of envs to the items table in one round trip, in order:
// ItemCreated inserts, ItemUpdated updates the given fields and the version,
// ItemDeleted deletes the row when hardDelete says so and marks it deleted otherwise.
// Other events are ignored.
func Apply(ctx context.Context, db Execer, envs []*event.Envelope, hardDelete func(uuid.UUID) bool) error {
	batch := &pgx.Batch{}
	for _, e := range envs {
		if e.Entity.Type != event.EntityItem {
			continue
		}
		var d struct {
			Title     *string `json:"title"`
			Content   *string `json:"content"`
			SourceURL *string `json:"source_url"`
			Version   int64   `json:"version"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("event %s: item data: %w", e.EventID, err)
		}
		id := e.Entity.ID
		switch e.EventType {
		case event.ItemCreated:
			if e.Entity.CollectionID == nil || d.Title == nil {
				return fmt.Errorf("event %s: ItemCreated without collection or title", e.EventID)
			}
			content := ""
			if d.Content != nil {
				content = *d.Content
			}
			batch.Queue(`INSERT INTO items (id, collection_id, title, content, source_url, created_at, updated_at, version)
				VALUES ($1, $2, $3, $4, $5, $6, $6, $7)`, id, *e.Entity.CollectionID, *d.Title, content, d.SourceURL, e.OccurredAt, d.Version)
		case event.ItemUpdated:
			batch.Queue(`UPDATE items SET title = coalesce($2, title), content = coalesce($3, content), updated_at = $4, version = $5 WHERE id = $1`,
				id, d.Title, d.Content, e.OccurredAt, d.Version)
		case event.ItemDeleted:
			if hardDelete != nil && hardDelete(id) {
				batch.Queue(`DELETE FROM items WHERE id = $1`, id)
			} else {
				batch.Queue(`UPDATE items SET deleted_at = $2, version = $3 WHERE id = $1`, id, e.OccurredAt, d.Version)
			}
		}
	}
	if batch.Len() == 0 {
		return nil
	}
	if err := db.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("apply %d item events to items: %w", batch.Len(), err)
	}
	return nil
}
