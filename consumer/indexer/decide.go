package indexer

import (
	"time"

	"github.com/google/uuid"
)

// hardDeleteVersion is the external version of the delete of an item known to be
// hard-deleted. Item ids are never reused, so no later state of the item can exist: the
// delete must beat every version a stale writer could still send while the search server
// remembers it (index.gc_deletes). After that, only the recorded hard delete
// (indexer_deleted_items) and reads younger than MaxReadAge keep the item out.
const hardDeleteVersion int64 = 1 << 62

// action is what the index must hold for one item.
type action int

const (
	writeDocument action = iota // the row's current state, at the row's version
	softDelete                  // no document, at the row's version (deleted_at is set)
	hardDelete                  // no document, at hardDeleteVersion: the item is gone for good
	awaitRow                    // no row, and nothing says the item was deleted: wait for it
)

func (a action) String() string {
	return [...]string{"write", "soft-delete", "hard-delete", "await-row"}[a]
}

// decide chooses what the index must hold for an item from its row (nil when the items
// table has none), whether the batch holds an ItemDeleted event for it, and whether it is
// recorded as hard-deleted. A missing row alone is no proof of a delete: the producer's
// transaction may not be visible yet (a replica behind, a publisher that commits late),
// and deleting at hardDeleteVersion would keep the item out of the index for good.
func decide(row *Item, deletedEvent, knownDeleted bool) action {
	switch {
	case row != nil && row.Deleted:
		return softDelete
	case row != nil:
		return writeDocument
	case deletedEvent || knownDeleted:
		return hardDelete
	default:
		return awaitRow
	}
}

// rowDeadline is when an event whose item has no row stops waiting for it and is
// dead-lettered as item-missing: timeout after the earlier of the event's occurred_at and
// the moment this consumer first saw it. The producer commits a row before it publishes
// the event, so an old event (a replay) whose row is missing does not wait at all, while a
// fresh one waits out a replica's lag; a producer clock ahead of ours cannot stretch it.
func rowDeadline(occurredAt, firstSeen time.Time, timeout time.Duration) time.Time {
	start := firstSeen
	if !occurredAt.IsZero() && occurredAt.Before(start) {
		start = occurredAt
	}
	return start.Add(timeout)
}

// op is one bulk operation on one item's document.
type op struct {
	id      uuid.UUID
	action  action
	version int64
	doc     *document
}

func (o op) delete() bool { return o.action != writeDocument }

// document is what the index holds for an item.
type document struct {
	ID           string  `json:"id"`
	CollectionID string  `json:"collection_id"`
	Title        string  `json:"title"`
	Content      string  `json:"content"`
	SourceURL    *string `json:"source_url,omitempty"`
	CreatedAt    string  `json:"created_at"`
	UpdatedAt    string  `json:"updated_at"`
	Version      int64   `json:"version"`
}

// opFor builds the operation of a decided action (never awaitRow). Every operation
// carries a version, so an older state can never overwrite a newer one.
func opFor(id uuid.UUID, row *Item, a action) op {
	switch a {
	case hardDelete:
		return op{id: id, action: a, version: hardDeleteVersion}
	case softDelete:
		return op{id: id, action: a, version: row.Version}
	default:
		return op{id: id, action: a, version: row.Version, doc: &document{
			ID: row.ID.String(), CollectionID: row.CollectionID.String(), Title: row.Title, Content: row.Content,
			SourceURL: row.SourceURL, CreatedAt: row.CreatedAt.UTC().Format(time.RFC3339Nano),
			UpdatedAt: row.UpdatedAt.UTC().Format(time.RFC3339Nano), Version: row.Version,
		}}
	}
}
