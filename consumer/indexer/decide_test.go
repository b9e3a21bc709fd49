package indexer

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestDecide(t *testing.T) {
	live := &Item{Version: 7}
	soft := &Item{Version: 8, Deleted: true}
	for _, c := range []struct {
		name                       string
		row                        *Item
		deletedEvent, knownDeleted bool
		want                       action
	}{
		{"a live row is written", live, false, false, writeDocument},
		{"a live row wins over an ItemDeleted event of the batch (the row is the truth)", live, true, false, writeDocument},
		{"a live row wins over a recorded hard delete", live, false, true, writeDocument},
		{"a soft-deleted row is deleted at its version", soft, false, false, softDelete},
		{"a soft-deleted row with an ItemDeleted event", soft, true, true, softDelete},
		{"no row and an ItemDeleted event: a hard delete", nil, true, false, hardDelete},
		{"no row and a recorded hard delete (a replay of older events)", nil, false, true, hardDelete},
		{"no row and nothing explaining it: wait for the row", nil, false, false, awaitRow},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := decide(c.row, c.deletedEvent, c.knownDeleted); got != c.want {
				t.Fatalf("decide = %v, want %v", got, c.want)
			}
		})
	}
}

func TestRowDeadline(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const wait = 30 * time.Second
	for _, c := range []struct {
		name               string
		occurredAt, seenAt time.Time
		want               time.Time
	}{
		{"a fresh event waits from when it occurred", now.Add(-2 * time.Second), now, now.Add(28 * time.Second)},
		{"a replayed old event does not wait", now.Add(-time.Hour), now, now.Add(-time.Hour + wait)},
		{"a producer clock ahead does not stretch the wait", now.Add(time.Hour), now, now.Add(wait)},
		{"no occurred_at: from when it was first seen", time.Time{}, now, now.Add(wait)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := rowDeadline(c.occurredAt, c.seenAt, wait); !got.Equal(c.want) {
				t.Fatalf("rowDeadline = %v, want %v", got, c.want)
			}
		})
	}
}

func TestOpFor(t *testing.T) {
	id := uuid.New()
	url := "https://example.com/a"
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	row := &Item{ID: id, CollectionID: uuid.New(), Title: "t", Content: "c", SourceURL: &url, CreatedAt: created, UpdatedAt: created, Version: 4}
	w := opFor(id, row, writeDocument)
	if w.delete() || w.version != 4 || w.doc == nil || w.doc.Title != "t" || w.doc.CreatedAt != "2026-01-02T02:04:05.000000006Z" || *w.doc.SourceURL != url {
		t.Fatalf("write op %+v doc %+v", w, w.doc)
	}
	if s := opFor(id, &Item{Version: 9, Deleted: true}, softDelete); !s.delete() || s.version != 9 || s.doc != nil {
		t.Fatalf("soft delete op %+v", s)
	}
	if h := opFor(id, nil, hardDelete); !h.delete() || h.version != hardDeleteVersion || h.doc != nil {
		t.Fatalf("hard delete op %+v", h)
	}
}
