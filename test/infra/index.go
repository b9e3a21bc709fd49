package infra

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/jackc/pgx/v5/pgxpool"
)

// IndexedItem is what the indexer keeps of an item, as the items table and a search
// document both hold it.
type IndexedItem struct {
	Title   string `json:"title"`
	Content string `json:"content"`
	Version int64  `json:"version"`
}

// IndexedItems returns every document of the default search server's index (or alias)
// by id, after a refresh; none when the index does not exist.
func IndexedItems(t testing.TB, index string) map[string]IndexedItem {
	t.Helper()
	return DefaultSearch.IndexedItems(t, index)
}

// IndexedItems returns every document of the index (or alias) by id, after a refresh;
// none when the index does not exist.
func (e SearchEngine) IndexedItems(t testing.TB, index string) map[string]IndexedItem {
	t.Helper()
	es := e.Client(t)
	ctx := context.Background()
	if resp, err := es.Indices.Refresh(es.Indices.Refresh.WithIndex(index), es.Indices.Refresh.WithContext(ctx)); err == nil {
		resp.Body.Close()
	}
	const page = 5000
	out := map[string]IndexedItem{}
	var after []any
	for {
		q := map[string]any{"size": page, "sort": []any{map[string]any{"id": "asc"}}, "query": map[string]any{"match_all": map[string]any{}}}
		if after != nil {
			q["search_after"] = after
		}
		raw, _ := json.Marshal(q)
		// An index the indexer has just created answers 503 (no shard started yet) for a
		// moment: that is not an answer about its documents, so ask again.
		var resp *esapi.Response
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			var err error
			resp, err = es.Search(es.Search.WithIndex(index), es.Search.WithBody(strings.NewReader(string(raw))), es.Search.WithContext(ctx))
			if err != nil {
				t.Fatalf("search %s: %v", index, err)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				break
			}
			resp.Body.Close()
		}
		var res struct {
			Hits struct {
				Hits []struct {
					ID     string      `json:"_id"`
					Source IndexedItem `json:"_source"`
					Sort   []any       `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		err := json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if resp.StatusCode == 404 {
			return out
		}
		if err != nil || resp.IsError() {
			t.Fatalf("search %s: %s %v", index, resp.Status(), err)
		}
		for _, h := range res.Hits.Hits {
			out[h.ID] = h.Source
		}
		if len(res.Hits.Hits) < page {
			return out
		}
		after = res.Hits.Hits[len(res.Hits.Hits)-1].Sort
	}
}

// LiveItems returns the items of the table that are not deleted, by id.
func LiveItems(t testing.TB, pool *pgxpool.Pool) map[string]IndexedItem {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id::text, title, content, version FROM items WHERE deleted_at IS NULL`)
	if err != nil {
		t.Fatalf("read the items table: %v", err)
	}
	defer rows.Close()
	out := map[string]IndexedItem{}
	for rows.Next() {
		var id string
		var d IndexedItem
		if err := rows.Scan(&id, &d.Title, &d.Content, &d.Version); err != nil {
			t.Fatalf("read the items table: %v", err)
		}
		out[id] = d
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the items table: %v", err)
	}
	return out
}

// IndexDiff describes how the default search server's index differs from the live items
// of the table ("" when it holds exactly them, each at the table's version).
func IndexDiff(t testing.TB, pool *pgxpool.Pool, index string) string {
	t.Helper()
	return DefaultSearch.IndexDiff(t, pool, index)
}

// IndexDiff describes how the index differs from the live items of the table ("" when
// it holds exactly them, each at the table's version).
func (e SearchEngine) IndexDiff(t testing.TB, pool *pgxpool.Pool, index string) string {
	t.Helper()
	want, got := LiveItems(t, pool), e.IndexedItems(t, index)
	missing, extra, stale := 0, 0, 0
	var example string
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing++
		case g != w:
			stale++
			if example == "" {
				example = fmt.Sprintf(" (item %s: indexed v%d %q, table v%d %q)", id, g.Version, g.Title, w.Version, w.Title)
			}
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra++
		}
	}
	if missing+extra+stale == 0 {
		return ""
	}
	return fmt.Sprintf("%d live items, %d documents: %d missing, %d that should be gone, %d stale%s", len(want), len(got), missing, extra, stale, example)
}

// CountDocuments counts the documents of the default search server's index (or alias),
// after a refresh.
func CountDocuments(t testing.TB, index string) int {
	t.Helper()
	es := DefaultSearch.Client(t)
	ctx := context.Background()
	if resp, err := es.Indices.Refresh(es.Indices.Refresh.WithIndex(index), es.Indices.Refresh.WithContext(ctx)); err == nil {
		resp.Body.Close()
	}
	resp, err := es.Count(es.Count.WithIndex(index), es.Count.WithContext(ctx))
	if err != nil {
		t.Fatalf("count %s: %v", index, err)
	}
	defer resp.Body.Close()
	var res struct {
		Count int `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.IsError() {
		t.Fatalf("count %s: %s %v", index, resp.Status(), err)
	}
	return res.Count
}
